"""Chapters 9, 11 and 12: measures of a language model that every later chapter shares, each in one place.

Generated answers (chapter 9, and chapter 12's evaluation): exact match after normalising (lower case, no
punctuation or articles), token F1 over those words, and ROUGE-L from the longest common subsequence. BLEU (chapter
12) is the corpus score machine translation reports, computed as sacrebleu computes it by default, so that a number
here can be set beside a published one.

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
from dataclasses import dataclass
from functools import lru_cache
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
    # The interval always holds p; min/max only undo rounding (at p = 0, centre − half is 1e-17, not 0).
    return min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)


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


# ------------------------------------------------------------------------------------------ BLEU
#
# BLEU (Papineni et al., 2002) compares a system's outputs with reference texts over the whole corpus: for each n
# from 1 to 4, the share of the hypotheses' n-grams that also occur in their references (each n-gram counted at most
# as often as it occurs in the reference that has it most: "clipped"), combined as a geometric mean and multiplied
# by a brevity penalty, so that short outputs cannot score by saying little:
#     BLEU = BP * exp(mean over n of log p_n),   BP = 1 if c >= r else exp(1 - r/c)
# where c is the total hypothesis length and r the sum, over sentences, of the reference length closest to each
# hypothesis's length (a tie goes to the shorter reference). Scores are on sacrebleu's scale, 0 to 100, and follow
# its defaults exactly: the 13a tokenizer, no lower-casing, "exp" smoothing.

BLEU_MAX_ORDER = 4


@dataclass(frozen=True)
class BleuScore:
    """A corpus BLEU score and what it is made of.

    score: 0 to 100; precisions: p_1..p_4 in percent (after smoothing); brevity_penalty: BP in [0, 1];
    hypothesis_length, reference_length: c and r above, in tokens; counts: clipped matches per n;
    totals: the hypotheses' n-grams per n.
    """
    score: float
    precisions: tuple[float, ...]
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int
    counts: tuple[int, ...]
    totals: tuple[int, ...]


# mteval-v13a's tokenization (the NIST script WMT used; sacrebleu's "13a"), applied in this order:
#   1. every ASCII punctuation mark except ' , - . becomes a token of its own
#   2. a period or comma after a non-digit is split off; so is one before a non-digit ("3.14" and "1,000" stay)
#   3. a hyphen after a digit is split off ("10-20" -> "10 - 20"; "well-known" stays)
_13A_RULES = [
    (re.compile(r"""([!"#$%&()*+/:;<=>?@\[\\\]^_`{|}~])"""), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]

# The characters sacrebleu's "zh" tokenizer makes tokens of their own: CJK ideographs, CJK punctuation, full-width
# forms, radicals, phonetic symbols, some symbol blocks. Its table writes two supplementary-plane ranges with 4-digit
# escapes ("\u20000"), which Python reads as two characters, and it compares strings, so those rows in effect cover
# U+2001-U+2A6D (general punctuation such as "—" and "“", arrows, mathematical symbols, ...) and U+2F81-U+2FA1, not
# Extension B. These are the ranges as sacrebleu applies them, which is what a score comparable to its scores needs.
_ZH_RANGES = [
    (0x3400, 0x4DB5), (0x4E00, 0x9FA5), (0x9FA6, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A), (0xFA70, 0xFAD9),
    (0x2001, 0x2A6D), (0x2F81, 0x2FA1), (0xFF00, 0xFFEF), (0x2E80, 0x2EFF), (0x3000, 0x303F), (0x31C0, 0x31EF),
    (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF), (0x3100, 0x312F), (0x31A0, 0x31BF), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F),
    (0x2600, 0x26FF), (0x2700, 0x27BF), (0x3200, 0x32FF), (0x3300, 0x33FF),
]
_ZH_CHARACTER = re.compile("([" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in _ZH_RANGES) + "])")
BLEU_TOKENIZERS = ("13a", "zh", "none")
BLEU_SMOOTHING = ("exp", "floor", "none")


def _mteval_rules(line: str) -> str:
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _tokenize_13a(line: str) -> str:
    # The language-independent part first: markup of the WMT files (<skipped>, a hyphen that ends a line, the
    # four SGML entities, in this order, so "&amp;lt;" ends as "<" as in the original) and line breaks.
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return _mteval_rules(f" {line} ")


def _tokenize_zh(line: str) -> str:
    # Each Chinese character is a word of its own (Chinese has no spaces between words); the rest as 13a's rules,
    # without its markup step.
    return _mteval_rules(_ZH_CHARACTER.sub(r" \1 ", line.strip()))


@lru_cache(maxsize=1 << 16)
def bleu_tokens(text: str, tokenize: str = "13a", lowercase: bool = False) -> tuple[str, ...]:
    """The tokens BLEU counts in `text`: lower-cased if asked, trailing whitespace dropped, then "13a", "zh" or
    "none" (split at whitespace only). Cached: bootstrap intervals score the same sentences many times."""
    if tokenize not in BLEU_TOKENIZERS:
        raise ValueError(f"unknown BLEU tokenizer {tokenize!r}; expected one of {', '.join(BLEU_TOKENIZERS)}")
    text = (text.lower() if lowercase else text).rstrip()
    if tokenize == "13a":
        text = _tokenize_13a(text)
    elif tokenize == "zh":
        text = _tokenize_zh(text)
    return tuple(text.split())


def _ngrams(tokens: tuple[str, ...]) -> Counter:
    return Counter(tokens[i:i + n] for n in range(1, BLEU_MAX_ORDER + 1) for i in range(len(tokens) - n + 1))


@lru_cache(maxsize=1 << 16)
def _sentence_statistics(hypothesis: str, references: tuple[str, ...], tokenize: str,
                         lowercase: bool) -> tuple[int, ...]:
    """(c, r, matches for n = 1..4, hypothesis n-grams for n = 1..4) of one sentence."""
    words = bleu_tokens(hypothesis, tokenize, lowercase)
    reference_words = [bleu_tokens(r, tokenize, lowercase) for r in references]
    most = Counter()   # each n-gram's largest count in any one reference: the clip
    for ref in reference_words:
        for gram, count in _ngrams(ref).items():
            most[gram] = max(most[gram], count)
    matches, totals = [0] * BLEU_MAX_ORDER, [0] * BLEU_MAX_ORDER
    for gram, count in _ngrams(words).items():
        totals[len(gram) - 1] += count
        matches[len(gram) - 1] += min(count, most[gram])
    closest = min((abs(len(ref) - len(words)), len(ref)) for ref in reference_words)[1]   # ties: the shorter
    return (len(words), closest, *matches, *totals)


def _reference_sets(references: Sequence[str] | Sequence[Sequence[str]], count: int) -> list[tuple[str, ...]]:
    if len(references) != count:
        raise ValueError(f"need one reference (or list of references) per hypothesis, got {count} hypotheses and "
                         f"{len(references)} references")
    sets = [(r,) if isinstance(r, str) else tuple(r) for r in references]
    for i, refs in enumerate(sets):
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"references[{i}] must be a string or a non-empty list of strings, got {refs!r:.80}")
    return sets


def _bleu_from_statistics(stats: Sequence[int], smooth: str, effective_order: bool) -> BleuScore:
    c, r = stats[0], stats[1]
    matches, totals = tuple(stats[2:2 + BLEU_MAX_ORDER]), tuple(stats[2 + BLEU_MAX_ORDER:])
    penalty = 1.0 if c >= r else (math.exp(1 - r / c) if c > 0 else 0.0)
    precisions = [0.0] * BLEU_MAX_ORDER
    if not any(matches):
        return BleuScore(0.0, tuple(precisions), penalty, c, r, matches, totals)
    orders, halving = BLEU_MAX_ORDER, 1.0
    for n in range(BLEU_MAX_ORDER):
        if totals[n] == 0:   # no n-grams this long at all: later orders stay 0 (the score is 0 without eff. order)
            break
        if effective_order:
            orders = n + 1
        if matches[n]:
            precisions[n] = 100 * matches[n] / totals[n]
        elif smooth == "exp":   # NIST's smoothing (mteval-v13a): 1/2, 1/4, ... of a match for each empty order
            halving *= 2
            precisions[n] = 100 / (halving * totals[n])
        elif smooth == "floor":   # Chen and Cherry's method 1: 0.1 of a match
            precisions[n] = 100 * 0.1 / totals[n]
    used = precisions[:orders]
    score = 0.0 if 0.0 in used else penalty * math.exp(sum(math.log(p) for p in used) / orders)
    return BleuScore(score, tuple(precisions), penalty, c, r, matches, totals)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]],
                tokenize: str = "13a", smooth: str = "exp", lowercase: bool = False) -> BleuScore:
    """Corpus BLEU of `hypotheses` against `references`, as sacrebleu's corpus_bleu computes it (0 to 100).

    references[i] is the reference of hypotheses[i], or a list of them (the count may differ between sentences).
    tokenize: "13a" (sacrebleu's default, for English and most languages), "zh" (Chinese characters one by one) or
    "none" (the text is already tokenized). smooth: "exp" (the default), "floor" or "none": how an n-gram order
    without any match counts (with "none" it makes the score 0).
    The sentence statistics are summed first and BLEU computed once: a corpus score, not a mean of sentence scores.
    """
    if smooth not in BLEU_SMOOTHING:
        raise ValueError(f"unknown BLEU smoothing {smooth!r}; expected one of {', '.join(BLEU_SMOOTHING)}")
    if not hypotheses or not all(isinstance(h, str) for h in hypotheses):
        raise ValueError("corpus_bleu needs at least one hypothesis, each a string")
    totals = [0] * (2 + 2 * BLEU_MAX_ORDER)
    for hypothesis, refs in zip(hypotheses, _reference_sets(references, len(hypotheses))):
        for i, value in enumerate(_sentence_statistics(hypothesis, refs, tokenize, lowercase)):
            totals[i] += value
    return _bleu_from_statistics(totals, smooth, effective_order=False)


def sentence_bleu(hypothesis: str, references: str | Sequence[str], tokenize: str = "13a", smooth: str = "exp",
                  lowercase: bool = False) -> BleuScore:
    """BLEU of one sentence, as sacrebleu's sentence_bleu: as corpus_bleu, but only the n-gram orders the sentence
    has are averaged ("effective order"), so a sentence under four words is not 0 by definition. BLEU is meant for
    corpora; a sentence's score is noisy."""
    if smooth not in BLEU_SMOOTHING:
        raise ValueError(f"unknown BLEU smoothing {smooth!r}; expected one of {', '.join(BLEU_SMOOTHING)}")
    refs = _reference_sets([references], 1)[0]
    return _bleu_from_statistics(_sentence_statistics(hypothesis, refs, tokenize, lowercase), smooth,
                                 effective_order=True)
