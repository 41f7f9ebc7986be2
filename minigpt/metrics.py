"""Chapters 9, 11 and 12: measures of a language model that every later chapter shares, each in one place.

Generated answers (chapter 9, and chapter 12's evaluation): exact match after normalising (lower case, no
punctuation or articles), token F1 over those words, and ROUGE-L from the longest common subsequence.

Uncertainty (chapters 12 and 13): a score on a few hundred items is itself an estimate. `wilson_interval` gives a 95%
interval for an accuracy (a share of independent right/wrong items); `bootstrap_interval` one for any mean, drawing
whole groups of related values (the pairs of one prompt) so that an interval is not narrower than the data allow.

Bits per byte: a loss per token depends on the vocabulary (a tokenizer with longer tokens has fewer, harder
predictions), so models with different tokenizers cannot be compared by it. Dividing the total loss of a text by the
text's UTF-8 bytes, and converting nats to bits, gives a number that does not depend on how the text was cut.
"""
from __future__ import annotations

import math
import statistics
import re
import unicodedata
from collections import Counter
from typing import Sequence

import numpy as np


def bits_per_byte(total_nats: float, num_bytes: int) -> float:
    """The summed cross-entropy (in nats) of the tokens that spell a text, per UTF-8 byte of that text, in bits.

    total_nats: the sum over every predicted token of -ln p(token); num_bytes: len(text.encode("utf-8")) of exactly
    the text those tokens spell (leave out the bytes of tokens that were given, not predicted, such as a first
    token with no context).
    """
    if num_bytes <= 0:
        raise ValueError(f"num_bytes must be positive, got {num_bytes}")
    return total_nats / (num_bytes * math.log(2))


ARTICLES = frozenset({"a", "an", "the"})
# A number (an optional minus sign that is not a hyphen inside a word, digits, and "," or "." groups) or a run
# of letters and digits. Everything else (punctuation, symbols) separates words.
_WORD = re.compile(r"(?<!\w)-?\d+(?:[.,]\d+)*|[^\W_]+")


def answer_tokens(text: str) -> list[str]:
    """Lower-cased words and numbers of `text`; punctuation dropped, "10,000" read as "10000"."""
    text = unicodedata.normalize("NFKC", text).lower()
    return [w.replace(",", "") if w[-1].isdigit() else w for w in _WORD.findall(text)]


def normalize_answer(text: str) -> str:
    """`answer_tokens` without articles, joined by single spaces: "The capital is Lima." -> "capital is lima"."""
    return " ".join(w for w in answer_tokens(text) if w not in ARTICLES)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the two agree after normalize_answer (case, punctuation, articles and spacing aside), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the bags of normalized words: 2·P·R / (P + R) with P = shared / predicted, R = shared / reference.

    A word counts as shared as often as it occurs in both. Two empty answers agree (1.0); one empty one: 0.0.
    """
    predicted = normalize_answer(prediction).split()
    wanted = normalize_answer(reference).split()
    if not predicted or not wanted:
        return float(predicted == wanted)
    shared = sum((Counter(predicted) & Counter(wanted)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(wanted)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of a and b (in order, not necessarily adjacent).

    Dynamic programming over prefixes: best[j] is the LCS of a[:i] and b[:j]. If a[i-1] == b[j-1] it extends
    the LCS of both prefixes by one; otherwise it is the better of dropping the last item of either. Only the
    previous row is needed, so memory is O(len(b)).
    """
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: precision = LCS / predicted words, recall = LCS / reference words, F1 = 2PR / (P + R).

    Words are `answer_tokens` (articles kept, as ROUGE does). Unlike token F1 it rewards words in the right order.
    """
    predicted, wanted = answer_tokens(prediction), answer_tokens(reference)
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = lcs_length(predicted, wanted)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


CLOSED_MAX_WORDS = 20


def is_closed_task(record: dict, max_words: int = CLOSED_MAX_WORDS) -> bool:
    """Whether exact match is a fair score for `record`: its reference is short (at most `max_words` words).

    A short reference ("The capital of Peru is Lima.") has essentially one right wording; a long one (a story,
    an explanation) has many, and exact match would call every good answer wrong.
    """
    return len(answer_tokens(record["output"])) <= max_words


def score_responses(records: Sequence[dict], responses: Sequence[str],
                    closed_max_words: int = CLOSED_MAX_WORDS) -> dict[str, float]:
    """Mean exact match (over closed tasks), token F1 and ROUGE-L (over all records), as fractions in [0, 1].

    Exact match is None when no record is a closed task: there is nothing it could fairly score.
    """
    if len(records) != len(responses) or not records:
        raise ValueError(f"need one response per record, got {len(records)} records and {len(responses)} responses")
    closed = [(r, p) for r, p in zip(records, responses) if is_closed_task(r, closed_max_words)]
    scores = {
        "exact_match": sum(exact_match(p, r["output"]) for r, p in closed) / len(closed) if closed else None,
        "closed_tasks": len(closed),
        "token_f1": sum(token_f1(p, r["output"]) for r, p in zip(records, responses)) / len(records),
        "rouge_l": sum(rouge_l(p, r["output"]) for r, p in zip(records, responses)) / len(records),
        "records": len(records),
    }
    return scores


# ------------------------------------------------------------------------------------------ uncertainty

def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): the Wilson score interval for a share `successes / total` of independent trials.

    With p = successes/total and z the normal quantile (1.96 for 95%), the interval is
        (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
    Unlike the textbook p ± z·sqrt(p(1-p)/n) it stays inside [0, 1] and is not zero-width at p = 0 or 1, which
    matters for the small test sets and weak models of these chapters.
    """
    if total <= 0 or not 0 <= successes <= total:
        raise ValueError(f"need 0 <= successes <= total and total > 0, got {successes} of {total}")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(values: Sequence[float], groups: Sequence[int] | None = None, confidence: float = 0.95,
                       resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and a percentile-bootstrap `confidence` interval for it.

    Values that are not independent (the pairs of one prompt share the prompt, often the same good answer) are drawn
    together: `groups` gives one id per value and the bootstrap resamples whole groups with replacement, so the
    interval is wider, and honest. For a share of correct items pass 1.0/0.0 values. Seeded: the same inputs give
    the same interval.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    groups = np.arange(values.size) if groups is None else np.asarray(groups)
    labels, index = np.unique(groups, return_inverse=True)
    sums = np.bincount(index, weights=values, minlength=labels.size)
    counts = np.bincount(index, minlength=labels.size).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, labels.size, size=(resamples, labels.size))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)   # ratio of sums: groups weigh by their size
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)
