"""Chapter 10 data: build the bundled messy web corpus, with ground-truth labels for every document.

Chapter 10 cleans a corpus stage by stage (extraction, language ID, rule filters, quality scoring,
deduplication) and reports its own precision and recall per stage. That needs a corpus whose every document is
known: which stage should remove it and why, which document a near-duplicate was copied from and at what
Jaccard similarity. This script makes one from the hand-written sentences in text_bank.py:

    raw/web/page_NNN.html     HTML pages: an article inside navigation, cookie banners, scripts, share links
    raw/wiki/entry_NNN.txt    encyclopaedia-style entries about invented towns, one per file
    raw/crawl.jsonl           {"id", "text"}: web text, good and bad, in five languages, with copies
    raw/dialogue.jsonl        {"id", "completion", "source"}: dialogues with filler words ("嗯嗯", "um")
    raw/instructions.jsonl    {"id", "completion", "source"}: instruction data for continued pretraining
    labels.jsonl              per document: the stage that should remove it ("keep" if none) and the kind
    quality.jsonl             good and poor examples (train and held-out test) for the quality classifier
    langid.jsonl              language samples: "train" from the topic sentences, "test" from the held-out ones

    python data/corpus/make_corpus.py            # write everything here
    python data/corpus/make_corpus.py --check    # verify the committed files byte for byte (exit 1 if not)

Standard library only (plus minigpt/files.py, itself standard library, for atomic writes). Deterministic: one
seeded random.Random drives every choice, and nothing depends on set or hash order.
"""
from __future__ import annotations

import argparse
import html
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

import text_bank as tb  # beside this script: `python data/corpus/make_corpus.py` puts its folder on the import path

from minigpt.files import write_text_atomic

HERE = Path(__file__).resolve().parent

SEED = 20240917
SHINGLE = 5            # words per shingle, as minigpt.dedup uses
DUP_THRESHOLD = 0.8    # a near copy at or above this Jaccard is labelled a duplicate

# Counts of each kind of document (the corpus is about 1.2 MB).
N_CRAWL_EN, N_CRAWL_ZH, N_FOREIGN = 700, 220, 40        # N_FOREIGN per language (fr, de, es)
N_PAGES, N_EMPTY_PAGES, N_PAGE_COPIES = 90, 8, 10
N_WIKI = 80
N_EXACT, N_NEAR = 80, 160
N_BAD = {"banned_words": 30, "stuffing": 30, "keyboard": 30, "symbols": 25, "short": 30, "ellipsis": 25,
         "repeated_lines": 25, "mojibake": 25, "salad": 50, "ad_copy": 40}
N_DIALOGUE_ZH, N_DIALOGUE_EN, N_INSTRUCTIONS = 70, 30, 60
N_QUALITY = {"train": 400, "test": 150}   # per class

# The same word definition as minigpt/dedup.py: a CJK character is a word; otherwise a run of letters/digits.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
WORD = re.compile(rf"[{CJK}]|[^\W_{CJK}]+")


def words_of(text: str) -> list[str]:
    return WORD.findall(unicodedata.normalize("NFKC", text).lower())


def shingles(text: str) -> set[tuple[str, ...]]:
    w = words_of(text)
    if len(w) < SHINGLE:
        return {tuple(w)} if w else set()
    return {tuple(w[i:i + SHINGLE]) for i in range(len(w) - SHINGLE + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# ---------------------------------------------------------------------------------------------------------------
# Filling templates

class Writer:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def pick(self, items):
        return items[self.rng.randrange(len(items))]

    def fill(self, template: str, lang: str = "en") -> str:
        r = self.rng
        names = {"en": tb.NAMES, "zh": tb.NAMES_ZH, "fr": tb.NAMES_FR, "de": tb.NAMES_DE, "es": tb.NAMES_ES}[lang]
        cities = {"zh": tb.CITIES_ZH, "fr": tb.CITIES_FR, "de": tb.CITIES_DE, "es": tb.CITIES_ES}.get(lang, tb.TOWNS)
        days = {"zh": tb.DAYS_ZH, "fr": tb.DAYS_FR, "de": tb.DAYS_DE, "es": tb.DAYS_ES}.get(lang, tb.DAYS)
        values = {
            "name": self.pick(names), "town": self.pick(tb.TOWNS), "town2": self.pick(tb.TOWNS),
            "city": self.pick(cities), "day": self.pick(days), "month": self.pick(tb.MONTHS),
            "place": self.pick(tb.PLACES), "veg": self.pick(tb.VEG), "num": str(r.randint(2, 90)),
            "num3": f"{r.randint(0, 999):03d}", "year": str(r.randint(1881, 2021)),
            "year2": str(r.randint(1190, 1480)), "year3": str(r.randint(1838, 1899)),
            "river": self.pick(tb.RIVERS), "region": self.pick(tb.REGIONS), "road": self.pick(tb.ROADS),
            "saint": self.pick(tb.SAINTS), "century": self.pick(tb.CENTURIES), "material": self.pick(tb.MATERIALS),
            "industry": self.pick(tb.INDUSTRIES), "twin": self.pick(tb.TWINS), "ground": self.pick(tb.GROUNDS),
            "product": self.pick(tb.PRODUCTS_ZH if lang == "zh" else tb.PRODUCTS),
        }
        return template.format(**values)

    def sentences(self, bank: list[str], k: int, lang: str = "en") -> list[str]:
        return [self.fill(s, lang) for s in self.rng.sample(bank, k)]

    def article(self, lang: str = "en") -> tuple[str, list[str]]:
        """(title, paragraphs) of a good document on a random topic."""
        r = self.rng
        if lang == "en":
            topic = self.pick(sorted(tb.TOPICS_EN))
            sents = self.sentences(tb.TOPICS_EN[topic], r.randint(6, 9))
            cut = [0] + sorted(r.sample(range(2, len(sents) - 1), 2)) + [len(sents)]
            paragraphs = [" ".join(sents[a:b]) for a, b in zip(cut, cut[1:])]
            title = f"{topic.capitalize()} notes from {self.pick(tb.TOWNS)}"
        elif lang == "zh":
            topic = self.pick(sorted(tb.TOPICS_ZH))
            sents = self.sentences(tb.TOPICS_ZH[topic], r.randint(5, 7), "zh")
            cut = [0, len(sents) // 2, len(sents)]
            paragraphs = ["".join(sents[a:b]) for a, b in zip(cut, cut[1:])]
            title = {"cooking": "家常菜", "park": "公园的一天", "study": "学习笔记", "train": "坐火车旅行"}[topic]
        else:
            bank = {"fr": tb.TOPICS_FR, "de": tb.TOPICS_DE, "es": tb.TOPICS_ES}[lang]
            paragraphs = [" ".join(self.sentences(bank, r.randint(5, 8), lang))]
            title = ""
        return title, paragraphs


def as_text(title: str, paragraphs: list[str]) -> str:
    return "\n\n".join(([title] if title else []) + paragraphs)


# ---------------------------------------------------------------------------------------------------------------
# Bad documents of each kind

def bad_document(w: Writer, kind: str) -> str:
    r = w.rng
    if kind == "banned_words":
        return " ".join(w.fill(s) for s in r.sample(tb.SPAM, 3)) + " " + as_text("", w.article()[1][:1])
    if kind == "stuffing":
        return " ".join(w.pick(tb.STUFFING[:4]) for _ in range(r.randint(40, 70)))
    if kind == "keyboard":
        lines = []
        for _ in range(r.randint(6, 12)):
            lines.append(" ".join(w.pick(tb.KEYBOARD_ROWS)[r.randint(0, 3):][:r.randint(3, 8)]
                                  for _ in range(r.randint(4, 9))))
        return "\n".join(lines)
    if kind == "symbols":
        words = as_text(*w.article()).split()[:r.randint(40, 60)]
        out = []
        for word in words:
            out.append(word)
            out.extend(w.pick(tb.SYMBOL_BITS) for _ in range(r.randint(1, 3)))
        return " ".join(out)
    if kind == "short":
        return w.pick(tb.SHORT)
    if kind == "ellipsis":
        lines = []
        for _ in range(r.randint(8, 14)):
            sent = w.fill(w.pick(tb.TOPICS_EN[w.pick(sorted(tb.TOPICS_EN))]))
            cut = sent.split()[:r.randint(6, 10)]
            lines.append(" ".join(cut) + w.pick(["...", "…"]))
        return "\n".join(lines)
    if kind == "repeated_lines":
        block = w.sentences(tb.TOPICS_EN[w.pick(sorted(tb.TOPICS_EN))], 3)
        return "\n".join(block * r.randint(5, 8))
    if kind == "mojibake":
        text = as_text(*w.article())
        text = text.replace("'", "\u2019") + " Caf\u00e9 owners say it is \u201cthe best\u201d r\u00e9sum\u00e9 of the year."
        return text.encode("utf-8").decode("cp1252", errors="replace")
    if kind == "salad":
        lang = "zh" if r.random() < 0.25 else "en"
        text = as_text("", w.article(lang)[1])
        if lang == "zh":
            chars = list(text.replace("\n", ""))
            r.shuffle(chars)
            return "".join(chars)
        tokens = text.split()
        r.shuffle(tokens)
        return " ".join(tokens)
    if kind == "ad_copy":
        if r.random() < 0.25:
            return "".join(w.fill(s, "zh") for s in r.sample(tb.AD_COPY_ZH, 5))
        return " ".join(w.fill(s) for s in r.sample(tb.AD_COPY, r.randint(6, 9)))
    raise ValueError(kind)


# Which stage of chapter 10 should remove each kind, and under which reason.
EXPECTED_STAGE = {"banned_words": "rules", "stuffing": "rules", "keyboard": "rules", "symbols": "rules",
                  "short": "rules", "ellipsis": "rules", "repeated_lines": "rules", "mojibake": "extract",
                  "salad": "quality", "ad_copy": "quality", "empty_page": "extract"}


# ---------------------------------------------------------------------------------------------------------------
# Copies: exact and near (edited to a target Jaccard)

def near_copy(w: Writer, text: str, target: float) -> tuple[str, float]:
    """Edit words of `text` one at a time until its shingle Jaccard with the original falls to `target` or below."""
    r = w.rng
    original = shingles(text)
    cjk = bool(re.search(f"[{CJK}]", text))
    units = list(text) if cjk else text.split(" ")
    vocabulary = tb.NAMES_ZH + tb.CITIES_ZH if cjk else [v for v in tb.VEG + tb.PLACES + tb.MONTHS if " " not in v]
    similarity = 1.0
    while True:
        i = r.randrange(len(units))
        if cjk and not re.match(f"[{CJK}]", units[i]):
            continue
        edit = r.random()
        replacement = w.pick(vocabulary)
        if edit < 0.6:
            trail = "" if cjk else re.sub(r"^.*?([^\w]*)$", r"\1", units[i])
            units[i] = replacement + trail
        elif edit < 0.8:
            units.insert(i, replacement)
        elif len(units) > 20:
            del units[i]
        candidate = ("" if cjk else " ").join(units)
        similarity = jaccard(original, shingles(candidate))
        if similarity <= target:
            return candidate, similarity


def whitespace_variant(w: Writer, text: str) -> str:
    # Same words, different spacing and line breaks: exact after normalisation, different as raw bytes.
    return "  " + text.replace(". ", ".  ").replace("\n\n", "\n \n") + "\n"


# ---------------------------------------------------------------------------------------------------------------
# HTML pages

def page_html(w: Writer, title: str, paragraphs: list[str], lang: str) -> str:
    r = w.rng
    nav = "".join(f'<li><a href="/{item.lower().replace(" ", "-")}">{item}</a></li>'
                  for item in r.sample(tb.NAV_ITEMS, 6))
    share = " | ".join(r.sample(tb.SHARE_TEXT, 3))
    related = "".join(f"<li><a href='/post/{r.randint(100, 999)}'>{t}</a></li>" for t in r.sample(tb.RELATED, 3))
    body = ""
    if title:
        body += f"<h1>{html.escape(title)}</h1>\n"
    for p in paragraphs:
        body += f"<p>{html.escape(p)}</p>\n"
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title or 'Page')} | {w.pick(tb.TOWNS)} Daily</title>\n"
            f"<style>body {{ font-family: sans-serif; }} .nav li {{ display: inline; }}</style>\n"
            f"<script>window.dataLayer = window.dataLayer || []; function track(e) {{ dataLayer.push(e); }}</script>\n"
            f"</head>\n<body>\n<header><div class=\"logo\">{w.pick(tb.TOWNS)} Daily</div>\n"
            f'<nav><ul class="nav">{nav}</ul></nav></header>\n'
            f'<div class="cookie-banner">{tb.COOKIE_TEXT} <button>Accept</button></div>\n'
            f"<main><article>\n{body}</article>\n"
            f'<div class="share">{share}</div></main>\n'
            f'<aside class="sidebar"><h3>{w.pick(tb.RELATED)}</h3><ul>{related}</ul></aside>\n'
            f"<footer><p>&copy; {r.randint(2015, 2024)} {w.pick(tb.TOWNS)} Daily. All rights reserved.</p>"
            f'<a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>\n'
            f"<script>track({{page: {r.randint(1, 99999)}}});</script>\n</body>\n</html>\n")


def empty_page_html(w: Writer) -> str:
    """A page that is all boilerplate: extraction leaves no text."""
    return page_html(w, "", [], "en").replace("<article>\n</article>", "<article></article>")


# ---------------------------------------------------------------------------------------------------------------
# Dialogue and instructions

def dialogue(w: Writer, lang: str) -> tuple[str, str, int]:
    """(text with fillers, the same text without them, number of fillers inserted)."""
    r = w.rng
    bank, fillers, speakers, colon = ((tb.DIALOGUE_ZH, tb.FILLERS_ZH, ("甲", "乙"), "：") if lang == "zh"
                                      else (tb.DIALOGUE_EN, tb.FILLERS_EN, ("A", "B"), ": "))
    noisy, clean, count = [], [], 0
    for question, answer in r.sample(bank, r.randint(3, 5)):
        for speaker, line in zip(speakers, (w.fill(question, lang), w.fill(answer, lang))):
            if r.random() < 0.6:
                filler = w.pick(fillers)
                count += filler.count(",") + filler.count("，")   # one comma per filler word ("um, um, ")
            else:
                filler = ""
            noisy.append(f"{speaker}{colon}{line.replace('~', filler, 1)}")
            clean.append(f"{speaker}{colon}{line.replace('~', '', 1)}")
    return "\n".join(noisy), "\n".join(clean), count


def instruction(w: Writer) -> str:
    topic = w.pick(sorted(tb.TOPICS_EN))
    body = " ".join(w.sentences(tb.TOPICS_EN[topic], 5))
    return f"### Instruction:\nWrite a short paragraph for a local newsletter about {topic}.\n\n### Response:\n{body}"


# ---------------------------------------------------------------------------------------------------------------
# Building everything

def build(seed: int = SEED) -> dict[str, str]:
    """Every output file's relative path -> its exact content."""
    w = Writer(seed)
    r = w.rng
    files: dict[str, str] = {}
    labels: list[dict] = []

    def label(doc_id, expect, kind, lang="en", **extra):
        labels.append({"id": doc_id, "expect": expect, "kind": kind, "lang": lang, **extra})

    # HTML pages: articles in boilerplate, a few pages that are only boilerplate, and the same article on a
    # second page with other boilerplate (an exact duplicate once extracted).
    page_articles = []
    for i in range(N_PAGES):
        lang = "zh" if i % 5 == 4 else "en"
        title, paragraphs = w.article(lang)
        page_articles.append((title, paragraphs, lang))
        doc_id = f"web/page_{i:03d}.html"
        files[f"raw/{doc_id}"] = page_html(w, title, paragraphs, lang)
        label(doc_id, "keep", "article", lang, article=as_text(title, paragraphs))
    for j in range(N_EMPTY_PAGES):
        doc_id = f"web/page_{N_PAGES + j:03d}.html"
        files[f"raw/{doc_id}"] = empty_page_html(w)
        label(doc_id, "extract", "empty_page")
    for j, i in enumerate(r.sample(range(N_PAGES), N_PAGE_COPIES)):
        doc_id = f"web/page_{N_PAGES + N_EMPTY_PAGES + j:03d}.html"
        title, paragraphs, lang = page_articles[i]
        files[f"raw/{doc_id}"] = page_html(w, title, paragraphs, lang)
        label(doc_id, "exact_dup", "page_copy", lang, dup_of=f"web/page_{i:03d}.html", jaccard=1.0)

    for i in range(N_WIKI):
        text = " ".join(w.sentences(tb.WIKI_EN, r.randint(7, 11)))
        doc_id = f"wiki/entry_{i:03d}.txt"
        files[f"raw/{doc_id}"] = text + "\n"
        label(doc_id, "keep", "wiki")

    # The crawl: good documents first, then (shuffled) foreign-language, bad documents and copies. Copies always
    # come after the document they copy, so "keep the first of a cluster" keeps the original.
    originals = []
    for i in range(N_CRAWL_EN + N_CRAWL_ZH):
        lang = "en" if i < N_CRAWL_EN else "zh"
        originals.append((as_text(*w.article(lang)), lang))
    r.shuffle(originals)
    crawl: list[dict] = []
    for i, (text, lang) in enumerate(originals):
        crawl.append({"id": f"crawl-{i:05d}", "text": text})
        label(f"crawl-{i:05d}", "keep", "article", lang)

    later: list[tuple[str, str, str, dict]] = []   # (text, expect, kind, extra)
    for lang in ("fr", "de", "es"):
        for _ in range(N_FOREIGN):
            later.append((as_text(*w.article(lang)), "langid", "foreign", {"lang": lang}))
    for kind, n in N_BAD.items():
        for _ in range(n):
            later.append((bad_document(w, kind), EXPECTED_STAGE[kind], kind, {}))
    for k in range(N_EXACT):
        i = r.randrange(len(originals))
        text = originals[i][0] if k % 2 else whitespace_variant(w, originals[i][0])
        later.append((text, "exact_dup", "exact_copy", {"lang": originals[i][1], "dup_of": f"crawl-{i:05d}",
                                                       "jaccard": 1.0}))
    for k in range(N_NEAR):
        i = r.randrange(len(originals))
        target = 0.5 + 0.48 * k / (N_NEAR - 1)   # evenly over [0.5, 0.98]
        text, similarity = near_copy(w, originals[i][0], target)
        expect = "near_dup" if similarity >= DUP_THRESHOLD else "keep"
        later.append((text, expect, "near_copy", {"lang": originals[i][1], "dup_of": f"crawl-{i:05d}",
                                                  "jaccard": round(similarity, 4)}))
    r.shuffle(later)
    for j, (text, expect, kind, extra) in enumerate(later):
        doc_id = f"crawl-{len(originals) + j:05d}"
        crawl.append({"id": doc_id, "text": text})
        label(doc_id, expect, kind, **{"lang": "en", **extra})

    lines = [json.dumps(rec, ensure_ascii=False) for rec in crawl]
    # Two broken lines, so the chapter shows how bad input is reported (file:line) and skipped: one is not JSON,
    # one is a record without text. They have no labels: they never become documents.
    lines.insert(400, '{"id": "crawl-broken-1", "text": "an unterminated string}')
    lines.insert(900, '{"id": "crawl-broken-2", "title": "a record without a text field"}')
    files["raw/crawl.jsonl"] = "\n".join(lines) + "\n"

    records, seen = [], []
    for i in range(N_DIALOGUE_ZH + N_DIALOGUE_EN):
        lang = "zh" if i < N_DIALOGUE_ZH else "en"
        # Dialogues reuse a small bank of exchanges: draw again until this one is not a near copy of another.
        for _attempt in range(500):
            noisy, clean, count = dialogue(w, lang)
            mine = shingles(clean)
            if all(jaccard(mine, other) < 0.6 for other in seen):
                break
        else:
            raise AssertionError("could not draw a dialogue distinct from the others; write more exchanges")
        seen.append(mine)
        records.append({"id": f"dialogue-{i:04d}", "completion": noisy, "source": "dialogue"})
        label(f"dialogue-{i:04d}", "keep", "dialogue", lang, clean=clean, fillers=count)
    files["raw/dialogue.jsonl"] = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in records)
    records = [{"id": f"instruction-{i:04d}", "completion": instruction(w), "source": "instructions"}
               for i in range(N_INSTRUCTIONS)]
    for rec in records:
        label(rec["id"], "keep", "instruction")
    files["raw/instructions.jsonl"] = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in records)
    files["labels.jsonl"] = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in labels)

    files["quality.jsonl"] = quality_examples(Writer(seed + 1))
    files["langid.jsonl"] = language_samples(Writer(seed + 2))
    check_originals_are_distinct([t for t, _ in originals] + [as_text(*a[:2]) for a in page_articles])
    return files


def quality_examples(w: Writer) -> str:
    """Good and poor documents for the quality classifier, made apart from the corpus (another seed)."""
    r = w.rng
    rows = []
    for split, n in N_QUALITY.items():
        for _ in range(n):
            kind = r.random()
            if kind < 0.12:
                text = " ".join(w.sentences(tb.WIKI_EN, r.randint(6, 10)))
            elif kind < 0.22:
                text = dialogue(w, "zh" if kind < 0.18 else "en")[1]   # dialogue and instructions are wanted
            elif kind < 0.27:                                          # text too, not only articles
                text = instruction(w)
            else:
                text = as_text(*w.article("zh" if kind > 0.8 else "en"))
            rows.append({"split": split, "label": "good", "text": text})
            poor = r.choice(["salad", "salad", "ad_copy", "ad_copy", "boilerplate"])
            if poor == "boilerplate":
                text = " ".join(r.sample(tb.NAV_ITEMS, 5) + [tb.COOKIE_TEXT] + r.sample(tb.SHARE_TEXT, 3)
                                + r.sample(tb.RELATED, 3))
            else:
                text = bad_document(w, poor)
            rows.append({"split": split, "label": "poor", "text": text})
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows)


def language_samples(w: Writer) -> str:
    """Training samples (filled topic sentences, 2-3 per sample) and the held-out test sentences."""
    banks = {"en": [s for topic in sorted(tb.TOPICS_EN) for s in tb.TOPICS_EN[topic]] + tb.WIKI_EN,
             "zh": [s for topic in sorted(tb.TOPICS_ZH) for s in tb.TOPICS_ZH[topic]],
             "fr": tb.TOPICS_FR, "de": tb.TOPICS_DE, "es": tb.TOPICS_ES}
    rows = []
    for lang, bank in banks.items():
        for _ in range(150):
            rows.append({"split": "train", "lang": lang,
                         "text": ("" if lang == "zh" else " ").join(w.sentences(bank, 2, lang))})
    for lang, sentences in tb.HELD_OUT.items():
        rows.extend({"split": "test", "lang": lang, "text": s} for s in sentences)
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows)


def check_originals_are_distinct(texts: list[str]) -> None:
    """Fail if two documents meant to be distinct come near the duplicate threshold (their labels would be wrong).

    Documents on one topic share whole sentences, as templated pages of a real crawl do, so originals reach a
    Jaccard of about 0.6; anything at 0.75 or more would blur the line at DUP_THRESHOLD = 0.8.
    """
    index: dict[tuple, list[int]] = {}
    sets = [shingles(t) for t in texts]
    for i, s in enumerate(sets):
        for sh in s:
            index.setdefault(sh, []).append(i)
    shared: dict[tuple[int, int], int] = {}
    for docs in index.values():
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                shared[docs[a], docs[b]] = shared.get((docs[a], docs[b]), 0) + 1
    for (a, b), n in shared.items():
        similarity = n / (len(sets[a]) + len(sets[b]) - n)
        if similarity >= 0.75:
            raise AssertionError(f"originals {a} and {b} have Jaccard {similarity:.2f}; change the seed or texts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: data/corpus)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the files in --out differ from what this script makes")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        bad = [name for name, text in files.items()
               if not (args.out / name).is_file() or (args.out / name).read_text(encoding="utf-8") != text]
        if bad:
            print("These files differ from what make_corpus.py makes (run it without --check to rewrite them):\n  "
                  + "\n  ".join(sorted(bad)))
            return 1
        print(f"All {len(files)} files in {args.out} match the generator (seed {SEED}).")
        return 0
    for name, text in sorted(files.items()):
        write_text_atomic(args.out / name, text)
    total = sum(len(t.encode("utf-8")) for t in files.values())
    print(f"wrote {len(files)} files, {total:,} bytes, into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
