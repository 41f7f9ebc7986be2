"""Chapter 10, stage 3: rule filters in the style of Gopher, C4 and RefinedWeb, and filler-word removal.

Most bad web text is easy to spot with a ruler: too short, too many symbols, no ordinary words, the same line over
and over, a list of snippets that all end in "...". DeepMind's Gopher (MassiveText), Google's C4 and Falcon's
RefinedWeb each publish a list of such rules with thresholds; this module writes a selection of them as plain
data: a `Rule` has a name, a threshold, whether the threshold is a minimum or a maximum, a one-line reason, and a
function that measures one number on an analysed text. A document fails on the first rule it breaks.

Read it in this order:
  1. Analysed                     a text cut once into words, lines and paragraphs, shared by all rules
  2. the measures                 one small function per rule (word_count, symbol_ratio, top_ngram_share, ...)
  3. Rule, default_rules          the rules with their thresholds and reasons; first_failure applies them
  4. remove_fillers               "嗯嗯", "啊啊", "um", "uh" taken out of dialogue

CJK-safe: words are counted with minigpt.corpus.words, where every Chinese character is a word, so Chinese
text is not "three words long"; mean word length is measured on non-CJK words only; the stop-word rule uses the
stop words of the document's language. The thresholds are Gopher's except where our documents are smaller
(min_words) — each rule's reason says what it catches.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from minigpt.corpus import CJK_RE, words

# Gopher's English stop words (a document needs at least two of them), and the same idea for the other languages
# of the chapter: the commonest function words, which any real sentence uses and keyboard junk never does.
STOP_WORDS = {
    "en": {"the", "be", "to", "of", "and", "that", "have", "with"},
    "zh": set("的了是在和有我不就也都这他她你们要会"),
    "fr": {"le", "la", "les", "de", "et", "un", "une", "est", "que", "des", "en", "du"},
    "de": {"der", "die", "das", "und", "ist", "zu", "den", "mit", "ein", "eine", "nicht", "von"},
    "es": {"el", "la", "los", "las", "de", "y", "que", "en", "un", "una", "es", "por"},
}
# C4 dropped every page with a word from a list of bad words. This list is a small illustration of the idea;
# a real list is long and language-specific.
BANNED_WORDS = {"viagra", "casino", "porn", "xxx", "escort", "jackpot", "赌场", "博彩", "色情"}
ELLIPSES = ("...", "…")
BULLETS = ("•", "-", "*", "·", "‣", "▪", "–")
_PUNCTUATION = "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum()) + "…“”‘’«»„–—"


# ---------------------------------------------------------------------------------------------------------------
# 1. A text analysed once

@dataclass
class Analysed:
    """A document's text with the pieces every rule needs, each computed the first time it is asked for."""
    text: str
    lang: str = ""

    @cached_property
    def words(self) -> list[str]:
        return words(self.text)

    @cached_property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.split("\n") if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in re.split(r"\n\s*\n", self.text) if p.strip()]

    @cached_property
    def non_space_chars(self) -> int:
        return sum(1 for c in self.text if not c.isspace())


# ---------------------------------------------------------------------------------------------------------------
# 2. Measures: one number per rule (None: the rule does not apply to this text)

def word_count(t: Analysed) -> float:
    return len(t.words)


def mean_word_length(t: Analysed) -> float | None:
    # As Gopher measures it: whitespace-separated tokens (a URL is one long word), without surrounding
    # punctuation. Tokens with CJK characters are left out: Chinese has no spaces, so its "tokens" are whole
    # sentences. With fewer than 10 other tokens (Chinese text) the rule does not apply.
    tokens = [tok.strip(_PUNCTUATION) for tok in t.text.split()]
    latin = [tok for tok in tokens if tok and not CJK_RE.search(tok)]
    return sum(map(len, latin)) / len(latin) if len(latin) >= 10 else None


def symbol_ratio(t: Analysed) -> float:
    """Share of non-space characters that are punctuation or symbols (Unicode categories P* and S*)."""
    symbols = sum(1 for c in t.text if unicodedata.category(c)[0] in "PS")
    return symbols / max(t.non_space_chars, 1)


def hash_ellipsis_ratio(t: Analysed) -> float:
    """Gopher's symbol-to-word ratio: '#' and ellipses per word."""
    count = t.text.count("#") + t.text.count("...") + t.text.count("…")
    return count / max(len(t.words), 1)


def ellipsis_line_share(t: Analysed) -> float:
    return sum(line.endswith(ELLIPSES) for line in t.lines) / max(len(t.lines), 1)


def bullet_line_share(t: Analysed) -> float:
    return sum(line.startswith(BULLETS) for line in t.lines) / max(len(t.lines), 1)


def alphabetic_word_share(t: Analysed) -> float:
    """Share of whitespace-separated tokens with at least one letter (Han characters are letters too)."""
    tokens = t.text.split()
    return sum(any(c.isalpha() for c in tok) for tok in tokens) / max(len(tokens), 1)


def stop_word_count(t: Analysed) -> float:
    stop = STOP_WORDS.get(t.lang) or set().union(*STOP_WORDS.values())
    return sum(1 for w in t.words if w in stop)


def banned_word_count(t: Analysed) -> float:
    # CJK banned words are several characters long, so they are searched in the text, not among the words.
    latin = sum(1 for w in t.words if w in BANNED_WORDS)
    return latin + sum(t.text.count(b) for b in BANNED_WORDS if CJK_RE.match(b))


def duplicate_line_share(t: Analysed) -> float:
    """Share of lines that repeat an earlier line."""
    return _repeats(t.lines) / max(len(t.lines), 1)


def duplicate_paragraph_share(t: Analysed) -> float:
    return _repeats(t.paragraphs) / max(len(t.paragraphs), 1)


def _repeats(items: Sequence[str]) -> int:
    return len(items) - len(set(items))


def top_ngram_share(n: int) -> Callable[[Analysed], float | None]:
    """Share of the text's word characters covered by its most frequent word n-gram (Gopher, n = 2, 3, 4)."""
    def measure(t: Analysed) -> float | None:
        grams = Counter(tuple(t.words[i:i + n]) for i in range(len(t.words) - n + 1))
        if not grams:
            return None
        gram, times = grams.most_common(1)[0]
        return times * sum(map(len, gram)) / max(sum(map(len, t.words)), 1)
    measure.__name__ = f"top_{n}gram_share"
    return measure


def duplicate_ngram_share(n: int) -> Callable[[Analysed], float | None]:
    """Share of word characters inside word n-grams that occur more than once (Gopher, n = 5 ... 10)."""
    def measure(t: Analysed) -> float | None:
        w = t.words
        if len(w) < n:
            return None
        grams = Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
        covered = [False] * len(w)
        for i in range(len(w) - n + 1):
            if grams[tuple(w[i:i + n])] > 1:
                covered[i:i + n] = [True] * n
        return sum(len(x) for x, c in zip(w, covered) if c) / max(sum(map(len, w)), 1)
    measure.__name__ = f"duplicate_{n}gram_share"
    return measure


# ---------------------------------------------------------------------------------------------------------------
# 3. Rules

@dataclass(frozen=True)
class Rule:
    name: str
    threshold: float
    bound: str            # "min": the measure must be >= threshold; "max": it must be <= threshold
    reason: str           # one line: what failing this rule says about a document
    measure: Callable[[Analysed], float | None]

    def failure(self, t: Analysed) -> str | None:
        """None if the text passes, else a line saying which rule failed, with the measured value."""
        value = self.measure(t)
        if value is None:
            return None
        bad = value < self.threshold if self.bound == "min" else value > self.threshold
        if not bad:
            return None
        sign = "<" if self.bound == "min" else ">"
        return f"{self.name}: {value:.3g} {sign} {self.threshold:g} ({self.reason})"


def default_rules() -> list[Rule]:
    """The chapter's rules in the order they are tried (cheap and common failures first)."""
    return [
        Rule("min_words", 30, "min", "too short to be a document", word_count),
        Rule("max_words", 100_000, "max", "too long: usually a data dump, not prose", word_count),
        Rule("banned_words", 0, "max", "contains a word from the banned list", banned_word_count),
        Rule("symbol_ratio", 0.25, "max", "too much punctuation and symbols for prose", symbol_ratio),
        Rule("hash_ellipsis_ratio", 0.1, "max", "many '#' or '...' per word: tags or truncated snippets",
             hash_ellipsis_ratio),
        Rule("ellipsis_lines", 0.3, "max", "most lines are cut off with an ellipsis", ellipsis_line_share),
        Rule("bullet_lines", 0.9, "max", "nearly every line is a bullet point", bullet_line_share),
        Rule("mean_word_length", 3, "min", "words too short on average (not prose)", mean_word_length),
        Rule("max_mean_word_length", 10, "max", "words too long on average (URLs, hashes, glued text)",
             mean_word_length),
        Rule("alphabetic_words", 0.8, "min", "too many tokens without a letter (numbers, symbols)",
             alphabetic_word_share),
        Rule("stop_words", 2, "min", "fewer than two stop words: not running text", stop_word_count),
        Rule("duplicate_lines", 0.3, "max", "many lines repeat earlier ones", duplicate_line_share),
        Rule("duplicate_paragraphs", 0.3, "max", "many paragraphs repeat earlier ones", duplicate_paragraph_share),
        Rule("top_2gram", 0.2, "max", "one word pair fills much of the text", top_ngram_share(2)),
        Rule("top_3gram", 0.18, "max", "one 3-word phrase fills much of the text", top_ngram_share(3)),
        Rule("top_4gram", 0.16, "max", "one 4-word phrase fills much of the text", top_ngram_share(4)),
        *[Rule(f"duplicate_{n}grams", threshold, "max", f"much of the text is repeated {n}-word runs",
               duplicate_ngram_share(n))
          for n, threshold in zip(range(5, 11), (0.15, 0.14, 0.13, 0.12, 0.11, 0.10))],
    ]


def with_thresholds(rules: Sequence[Rule], thresholds: dict[str, float]) -> list[Rule]:
    """The rules with some thresholds replaced, by rule name (an unknown name is an error, not ignored)."""
    unknown = set(thresholds) - {r.name for r in rules}
    if unknown:
        raise ValueError(f"no rule named {', '.join(sorted(unknown))}; rules: {', '.join(r.name for r in rules)}")
    return [replace(r, threshold=thresholds.get(r.name, r.threshold)) for r in rules]


def first_failure(text: str, lang: str = "", rules: Sequence[Rule] | None = None) -> tuple[str, str] | None:
    """(rule name, reason) of the first rule the text breaks, or None if it passes them all."""
    analysed = Analysed(text, lang)
    for rule in default_rules() if rules is None else rules:
        reason = rule.failure(analysed)
        if reason is not None:
            return rule.name, reason
    return None


# ---------------------------------------------------------------------------------------------------------------
# 4. Filler words in dialogue

# A speaker label at the start of a line: "甲：", "A: ", "Alice: ".
_SPEAKER = r"(?:^|(?<=\n))[^\n:：]{1,20}[:：]\s*"
# Chinese fillers: any run of 嗯/呃/额, or 啊 repeated; each with the comma that follows it. A single 啊 is left
# alone, because it is also a sentence-final particle ("好啊") that changes the meaning.
_FILLER_ZH = r"(?:[嗯呃额]+|啊{2,})[，,、]?\s*"
_FILLER_EN = r"\b(?:u+m+|u+h+|e+r+m*|h+m+)\b,?\s*"
_FILLERS = re.compile(rf"{_FILLER_ZH}|{_FILLER_EN}", re.IGNORECASE)
_DIALOGUE_LINE = re.compile(_SPEAKER)


def looks_like_dialogue(text: str) -> bool:
    """At least two lines that begin with a short speaker label and a colon."""
    return len(_DIALOGUE_LINE.findall(text)) >= 2


def remove_fillers(text: str) -> tuple[str, int]:
    """(text without filler words, how many were removed). Meant for dialogue: see looks_like_dialogue.

    Removes "嗯嗯", "嗯", "呃", "啊啊" (with their comma) and English "um", "uh", "er", "erm", "hmm". A filler at the
    start of an English sentence leaves the next word's capital as it is; one in the middle leaves the commas
    around it as one comma.
    """
    count = 0

    def drop(match: re.Match) -> str:
        nonlocal count
        count += 1
        return ""

    cleaned = _FILLERS.sub(drop, text)
    cleaned = re.sub(r",\s*,", ",", cleaned)
    cleaned = re.sub(r"[ \t]+\n", "\n", cleaned)
    return cleaned, count


__all__ = ["STOP_WORDS", "BANNED_WORDS", "Analysed", "Rule", "default_rules", "with_thresholds", "first_failure",
           "looks_like_dialogue", "remove_fillers", "word_count", "mean_word_length", "symbol_ratio",
           "hash_ellipsis_ratio", "ellipsis_line_share", "bullet_line_share", "alphabetic_word_share",
           "stop_word_count", "banned_word_count", "duplicate_line_share", "duplicate_paragraph_share",
           "top_ngram_share", "duplicate_ngram_share"]
