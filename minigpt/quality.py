"""Chapter 10, stage 4: a quality classifier, logistic regression on hashed word n-grams.

Rules catch text that is broken; they cannot tell a coherent article from shuffled words or from advertising
copy that is grammatical and says nothing. GPT-3 and many after it trained a small linear classifier to tell
"text like our reference corpus" from "random crawl" and kept what scored well. This module does the same from
scratch, on examples of good and poor documents bundled with the project (data/corpus/quality.jsonl):

  features   each word unigram and bigram (a CJK character is a word) is hashed into one of 2**18 slots
             (the hashing trick: no vocabulary to build or store; a collision merely shares one weight); counts
             are damped with log(1 + count) and each document's vector is scaled to length 1
  model      p(good | x) = sigmoid(w . x + b)
  training   full-batch gradient descent on the mean log loss plus an L2 penalty (lambda/2)|w|^2

Read it in this order: hashed_features -> SparseRows -> log_loss_and_gradient -> QualityClassifier -> evaluate.
It scores fluency and content-likeness as the examples define them; it knows nothing about truth or safety.
"""
from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigpt.corpus import words

QUALITY_EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "corpus" / "quality.jsonl"
DIMENSION = 1 << 18


def hashed_features(text: str, dimension: int = DIMENSION) -> dict[int, float]:
    """slot -> value for one document: hashed unigrams and bigrams, log(1 + count), scaled to unit length.

    The hash is CRC-32 of the UTF-8 feature string, which is the same on every machine and every run (Python's
    own hash() is salted per process, so a model trained with it could not be used by another process).
    """
    w = words(text)
    grams = w + [a + " " + b for a, b in zip(w, w[1:])]
    counts = Counter(zlib.crc32(g.encode("utf-8")) % dimension for g in grams)
    if not counts:
        return {}
    values = {slot: float(np.log1p(c)) for slot, c in counts.items()}
    norm = float(np.sqrt(sum(v * v for v in values.values())))
    return {slot: v / norm for slot, v in values.items()}


class SparseRows:
    """Documents as sparse vectors in compressed-row form: row i's slots are indices[start[i]:start[i+1]]."""

    def __init__(self, rows: Sequence[dict[int, float]]):
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        self.start = np.concatenate([[0], np.cumsum(lengths)])
        self.indices = np.array([s for r in rows for s in r], dtype=np.int64)
        self.values = np.array([v for r in rows for v in r.values()], dtype=np.float64)
        self.row_of = np.repeat(np.arange(len(rows)), lengths)   # which row each stored value belongs to
        self.n_rows = len(rows)

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """X @ weights: one number per row."""
        return np.bincount(self.row_of, weights=weights[self.indices] * self.values, minlength=self.n_rows)

    def transpose_dot(self, per_row: np.ndarray, dimension: int) -> np.ndarray:
        """X.T @ per_row: one number per slot."""
        return np.bincount(self.indices, weights=self.values * per_row[self.row_of], minlength=dimension)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # the same function, without overflow for large |z|


def log_loss_and_gradient(X: SparseRows, y: np.ndarray, w: np.ndarray, b: float,
                          l2: float) -> tuple[float, np.ndarray, float]:
    """Mean log loss + (l2/2)|w|^2, and its gradient with respect to w and b.

    With p = sigmoid(Xw + b), the loss of one example is -[y log p + (1-y) log(1-p)] and its derivative with
    respect to the score Xw + b is simply p - y; the chain rule through the linear score gives X.T (p - y) / n.
    """
    z = X.dot(w) + b
    p = sigmoid(z)
    # log(1 + e^-z) for y = 1 and log(1 + e^z) for y = 0, written so that neither overflows.
    loss = float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)) + 0.5 * l2 * w @ w)
    error = (p - y) / len(y)
    return loss, X.transpose_dot(error, len(w)) + l2 * w, float(error.sum())


@dataclass
class QualityClassifier:
    """Logistic regression on hashed n-grams; `score(text)` is the probability that a document is good."""
    weights: np.ndarray
    bias: float
    dimension: int = DIMENSION

    @classmethod
    def train(cls, texts: Sequence[str], good: Sequence[bool], l2: float = 1e-4, steps: int = 300,
              learning_rate: float = 8.0, dimension: int = DIMENSION) -> "QualityClassifier":
        """Gradient descent from zero weights (the loss is convex, so the start does not matter, only the steps)."""
        if len(set(good)) < 2:
            raise ValueError("the quality classifier needs examples of both good and poor documents")
        X = SparseRows([hashed_features(t, dimension) for t in texts])
        y = np.asarray(good, dtype=np.float64)
        w, b = np.zeros(dimension), 0.0
        for _ in range(steps):
            _, grad_w, grad_b = log_loss_and_gradient(X, y, w, b, l2)
            w -= learning_rate * grad_w
            b -= learning_rate * grad_b
        return cls(w, b, dimension)

    def score(self, text: str) -> float:
        features = hashed_features(text, self.dimension)
        z = self.bias + sum(self.weights[slot] * v for slot, v in features.items())
        return float(sigmoid(np.array(z)))


def load_quality_examples(path: str | Path = QUALITY_EXAMPLES, split: str = "train") -> tuple[list[str], list[bool]]:
    """(texts, is_good) of one split of data/corpus/quality.jsonl (records {"split", "label", "text"})."""
    texts, good = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            record = json.loads(line)
            if record.get("split", split) != split:
                continue
            if record.get("label") not in ("good", "poor") or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}:{number}: expected {{\"label\": \"good\"|\"poor\", \"text\": ...}}")
            texts.append(record["text"])
            good.append(record["label"] == "good")
    if not texts:
        raise ValueError(f"{path} has no examples in split {split!r}")
    return texts, good


@dataclass
class Evaluation:
    precision: float      # of the documents called poor, the share that are poor
    recall: float         # of the poor documents, the share called poor
    accuracy: float
    n: int


def evaluate(classifier: QualityClassifier, texts: Sequence[str], good: Sequence[bool],
             threshold: float = 0.5) -> Evaluation:
    """Precision and recall of "poor" (the class the stage removes) at a score threshold."""
    called_poor = np.array([classifier.score(t) < threshold for t in texts])
    poor = ~np.asarray(good, dtype=bool)
    hits = int((called_poor & poor).sum())
    return Evaluation(hits / max(int(called_poor.sum()), 1), hits / max(int(poor.sum()), 1),
                      float((called_poor == poor).mean()), len(texts))


def train_default(path: str | Path = QUALITY_EXAMPLES) -> QualityClassifier:
    """The chapter's classifier, trained on the bundled examples' train split."""
    return QualityClassifier.train(*load_quality_examples(path, "train"))


__all__ = ["hashed_features", "SparseRows", "sigmoid", "log_loss_and_gradient", "QualityClassifier",
           "load_quality_examples", "evaluate", "Evaluation", "train_default"]
