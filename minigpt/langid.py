"""Chapter 10, stage 2: language identification with a naive Bayes model of character n-grams.

Languages differ in which short runs of letters they use: "th" and " the " are English, "ei" and "sch" German,
"ão" Portuguese, and Chinese text is made of Han characters. A naive Bayes classifier counts the character
n-grams (here n = 1, 2, 3) of sample text in each language and then asks which language makes a new text's
n-grams most probable, treating them as independent (that is the "naive" part):

    log P(lang | text) = log P(lang) + sum over n-grams g of the text:  log P(g | lang)  + constant

P(g | lang) is the n-gram's count in that language's samples with add-alpha smoothing, so an n-gram never seen
in a language lowers the score instead of making it impossible. LLaMA's data pipeline used a classifier of this
family (fastText, on character n-grams too) to keep only the languages it wanted.

Read it in this order: char_ngrams -> NaiveBayesLangID.fit -> NaiveBayesLangID.log_likelihoods -> predict.
It does not detect mixed-language documents: a document gets the one language that explains it best.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

LANGID_SAMPLES = Path(__file__).resolve().parent.parent / "data" / "corpus" / "langid.jsonl"

# Digits, punctuation and symbols say nothing about the language (and URLs mislead), so they become spaces.
_NOT_LETTERS = re.compile(r"[\W\d_]+")


def clean_for_langid(text: str) -> str:
    """Lower-case letters only, runs of anything else as one space, with a space at both ends (word edges)."""
    return " " + _NOT_LETTERS.sub(" ", text.lower()).strip() + " "


def char_ngrams(text: str, orders: Sequence[int] = (1, 2, 3)) -> Counter:
    """Counts of the character n-grams of the cleaned text, for each n in `orders` (n-grams of spaces dropped)."""
    cleaned = clean_for_langid(text)
    counts: Counter = Counter()
    for n in orders:
        for i in range(len(cleaned) - n + 1):
            gram = cleaned[i:i + n]
            if not gram.isspace():
                counts[gram] += 1
    return counts


class NaiveBayesLangID:
    """Multinomial naive Bayes over character 1-, 2- and 3-grams, with add-alpha smoothing and equal priors.

    Equal priors, because the share of each language in the training samples says nothing about the corpus the
    model will be used on. Each n-gram order has its own distribution (P(g | lang, n)), so the many trigrams do
    not crowd out the unigrams. Probabilities from naive Bayes are overconfident on long texts (it multiplies
    hundreds of not-really-independent factors); use them to rank, and the threshold only to catch texts that
    fit no language well.
    """

    def __init__(self, orders: Sequence[int] = (1, 2, 3), alpha: float = 0.5, max_chars: int = 1000):
        if alpha <= 0:
            raise ValueError(f"alpha must be positive (it keeps unseen n-grams possible), got {alpha}")
        self.orders = tuple(orders)
        self.alpha = alpha
        self.max_chars = max_chars   # a thousand characters decide the language; reading more only costs time
        self.languages: list[str] = []
        self.index: dict[str, int] = {}          # n-gram -> row of log_prob
        self.log_prob = np.zeros((0, 0))         # (n-grams + one "unseen" row per order, languages)
        self.unseen_row: dict[int, int] = {}

    def fit(self, samples: Iterable[tuple[str, str]]) -> "NaiveBayesLangID":
        """Count n-grams per language from (language, text) pairs and turn the counts into log-probabilities."""
        counts: dict[str, Counter] = {}
        for lang, text in samples:
            counts.setdefault(lang, Counter()).update(char_ngrams(text, self.orders))
        if len(counts) < 2:
            raise ValueError(f"language identification needs samples of at least two languages, got {sorted(counts)}")
        self.languages = sorted(counts)
        grams = sorted({g for c in counts.values() for g in c})
        self.index = {g: i for i, g in enumerate(grams)}
        table = np.array([[counts[lang][g] for lang in self.languages] for g in grams], dtype=np.float64)
        orders = np.array([len(g) for g in grams])
        log_prob = np.empty((len(grams) + len(self.orders), len(self.languages)))
        for k, n in enumerate(self.orders):
            rows = orders == n
            vocabulary = rows.sum() + 1                    # + 1: room for every n-gram not seen in training
            totals = table[rows].sum(axis=0)               # n-grams of order n seen per language
            denominator = totals + self.alpha * vocabulary
            log_prob[:len(grams)][rows] = np.log((table[rows] + self.alpha) / denominator)
            self.unseen_row[n] = len(grams) + k
            log_prob[len(grams) + k] = np.log(self.alpha / denominator)
        self.log_prob = log_prob
        return self

    def log_likelihoods(self, text: str) -> np.ndarray:
        """log P(text | lang) for each language in self.languages (up to a constant shared by all languages)."""
        if not self.languages:
            raise RuntimeError("the model has not been trained: call fit() first")
        grams = char_ngrams(text[:self.max_chars], self.orders)
        if not grams:
            return np.zeros(len(self.languages))
        rows = np.array([self.index.get(g, self.unseen_row[len(g)]) for g in grams])
        times = np.array(list(grams.values()), dtype=np.float64)
        return times @ self.log_prob[rows]

    def predict(self, text: str) -> tuple[str, float]:
        """(most probable language, its posterior probability); ("", 0.0) for text without letters."""
        scores = self.log_likelihoods(text)
        if not np.any(scores):
            return "", 0.0
        posterior = np.exp(scores - scores.max())
        posterior /= posterior.sum()
        best = int(np.argmax(posterior))
        return self.languages[best], float(posterior[best])


def load_language_samples(path: str | Path = LANGID_SAMPLES, split: str = "train") -> list[tuple[str, str]]:
    """(language, text) pairs of one split of data/corpus/langid.jsonl (or a file in the same format)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            record = json.loads(line)
            if record.get("split", split) == split:
                if not isinstance(record.get("lang"), str) or not isinstance(record.get("text"), str):
                    raise ValueError(f"{path}:{number}: expected {{\"lang\": ..., \"text\": ...}}")
                rows.append((record["lang"], record["text"]))
    if not rows:
        raise ValueError(f"{path} has no samples in split {split!r}")
    return rows


def train_default(path: str | Path = LANGID_SAMPLES) -> NaiveBayesLangID:
    """The chapter's identifier: trained on the bundled samples in English, Chinese, French, German, Spanish."""
    return NaiveBayesLangID().fit(load_language_samples(path, "train"))


__all__ = ["clean_for_langid", "char_ngrams", "NaiveBayesLangID", "load_language_samples", "train_default"]
