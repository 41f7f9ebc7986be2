"""Chapter 10, stage 1: reading a raw corpus and extracting clean text from it.

A web corpus arrives as HTML pages, plain text files and JSON lines, with navigation menus, cookie banners and
scripts around the text that matters, with characters in several equivalent Unicode spellings, invisible control
characters, and text that was decoded with the wrong encoding ("cafÃ©" for "café"). Before any filter can judge a
document, it has to be read (every problem reported with its file and line), its main text pulled out of the
HTML, and its characters normalised.

Read it in this order:
  1. Document, InputProblem          what flows through the chapter, and how bad input is reported
  2. read_documents                  .txt / .html / .jsonl files and folders -> Documents (ids, sources)
  3. html_to_text                    the standard library's HTMLParser, keeping paragraphs and headings only
  4. normalise, mojibake_sequences   NFKC, control characters, and text that reads as UTF-8 seen as cp1252
  5. words                           the word definition every later stage shares (CJK characters are words)

The later stages live in minigpt/langid.py (2), minigpt/filters.py (3), minigpt/quality.py (4),
minigpt/dedup.py (5) and minigpt/mixture.py (6); minigpt/corpus_pipeline.py runs them in order.
This module does not detect languages, judge quality or remove anything: it only reads and cleans characters.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from minigpt.files import InputError

TEXT_SUFFIXES = (".txt", ".html", ".htm", ".jsonl")

# CJK scripts are written without spaces, so "a word" there is one character (Han, kana, Hangul). Every stage
# that counts or compares words uses this one definition, so Chinese text is never "one long word".
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
WORD_RE = re.compile(rf"[{CJK}]|[^\W_{CJK}]+")
CJK_RE = re.compile(f"[{CJK}]")


def words(text: str) -> list[str]:
    """Lower-cased words: each CJK character on its own, else maximal runs of letters and digits."""
    return WORD_RE.findall(text.lower())


# ---------------------------------------------------------------------------------------------------------------
# 1. Documents and input problems

@dataclass
class Document:
    """One document on its way through the stages. `text` changes (extraction, filler removal); `id` never."""
    id: str
    source: str
    text: str
    location: str = ""                        # file (and line) it came from, for messages
    lang: str = ""                            # set by language identification
    lang_probability: float = 0.0
    quality: float | None = None              # set by quality scoring: P(good)
    flags: list[str] = field(default_factory=list)   # notes such as "mojibake", shown in the report
    tokens: int = 0                           # GPT-2 tokens of `text`, kept up to date by the pipeline


@dataclass
class InputProblem:
    location: str    # "path" or "path:line"
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class CorpusInputError(InputError):
    """Bad input met with on_error="fail": the message starts with file:line."""


# ---------------------------------------------------------------------------------------------------------------
# 2. Reading files and folders

def read_documents(inputs: Sequence[str | Path], source: str | None = None, on_error: str = "skip",
                   problems: list[InputProblem] | None = None) -> Iterator[Document]:
    """Documents from files and folders, in the order given (a folder's files in sorted path order).

    - A folder's documents are its files, identified by their path relative to the folder's parent
      ("web/page_001.html"), with the folder's name as their source unless `source` is given.
    - A file given directly is identified by its name; its source is `source`, else the file's stem.
    - A .jsonl file holds one record per line: "text", or "completion" (the pretraining format whose "source"
      field names the mixing group). A record's "id" is its id, else "file:line"; its "source" field, when
      present, is its source.
    Bad input (an unreadable file, a line that is not JSON, a record without text) is appended to `problems` and
    skipped when on_error="skip", or raised as CorpusInputError when on_error="fail"; it is never dropped silently.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    problems = [] if problems is None else problems

    def report(location: str, message: str) -> None:
        problem = InputProblem(location, message)
        if on_error == "fail":
            raise CorpusInputError(str(problem))
        problems.append(problem)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                report(str(path), "the folder holds no files")
            for file in files:
                doc_id = file.relative_to(path.parent).as_posix()
                yield from _read_file(file, doc_id, source or path.name, report)
        elif path.is_file():
            yield from _read_file(path, path.name, source or path.stem, report)
        else:
            report(str(path), "no such file or folder")


def _read_file(path: Path, doc_id: str, source: str, report) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        report(str(path), f"not a {'/'.join(TEXT_SUFFIXES)} file; skipped")
        return
    try:
        raw = path.read_bytes()
    except OSError as e:
        report(str(path), f"cannot be read ({e.strerror or e})")
        return
    # Undecodable bytes become U+FFFD rather than stopping the run; normalise() counts them as broken encoding.
    text = raw.decode("utf-8", errors="replace")
    if suffix == ".jsonl":
        yield from _jsonl_documents(text, path, source, report)
    elif suffix in (".html", ".htm"):
        yield Document(doc_id, source, html_to_text(text), str(path))
    else:
        yield Document(doc_id, source, text, str(path))


def _jsonl_documents(text: str, path: Path, source: str, report) -> Iterator[Document]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            report(where, f"not valid JSON ({e}); skipped")
            continue
        if not isinstance(record, dict):
            report(where, "expected a JSON object with a \"text\" or \"completion\" field; skipped")
            continue
        body = record.get("text", record.get("completion"))
        if not isinstance(body, str):
            report(where, "the record has no string \"text\" or \"completion\" field; skipped")
            continue
        doc_id = str(record["id"]) if "id" in record else f"{path.name}:{number}"
        record_source = record.get("source")
        yield Document(doc_id, record_source if isinstance(record_source, str) else source, body, where)


# ---------------------------------------------------------------------------------------------------------------
# 3. HTML to text

# Elements whose whole content is boilerplate or not text at all.
SKIP_TAGS = {"script", "style", "noscript", "template", "head", "nav", "header", "footer", "aside", "form",
             "button", "select", "svg", "iframe", "canvas", "menu"}
# Elements that end a line of text (a paragraph, a heading, a list item, a table row...).
BLOCK_TAGS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "br", "tr", "table", "blockquote",
              "pre", "article", "section", "main", "dd", "dt", "figcaption", "hr"}
# Elements without an end tag: they never enter the stack of open elements.
VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "track", "wbr"}
# class/id words that mark boilerplate even on a plain <div> (cookie banners, share bars, sidebars).
BOILERPLATE_HINT = re.compile(r"nav|menu|cookie|banner|footer|sidebar|share|social|related|comment|advert|promo|"
                              r"breadcrumb|subscribe|popup|newsletter", re.IGNORECASE)
# Whole lines that are boilerplate wherever they appear (RefinedWeb removes such lines too).
BOILERPLATE_LINE = re.compile(r"all rights reserved|cookie policy|accept cookies|privacy policy|terms of use|"
                              r"share on |sign in to |subscribe to our", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML page block by block, skipping boilerplate elements and their content."""

    def __init__(self):
        super().__init__(convert_charrefs=True)   # "&amp;" and "&#x27;" arrive as "&" and "'"
        self.blocks: list[str] = []
        self.current: list[str] = []
        self.stack: list[tuple[str, bool]] = []   # (tag, is this element boilerplate?)
        self.skipping = 0                         # boilerplate elements open right now
        self.in_pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in BLOCK_TAGS:
            self._end_block()
        if tag in VOID_TAGS:
            return
        hints = " ".join(value or "" for name, value in attrs if name in ("class", "id", "role"))
        skip = tag in SKIP_TAGS or bool(BOILERPLATE_HINT.search(hints))
        self.stack.append((tag, skip))
        self.skipping += skip
        self.in_pre += tag == "pre"

    def handle_endtag(self, tag):
        if tag in BLOCK_TAGS:
            self._end_block()
        # HTML lets some end tags be left out (<p>, <li>): close everything opened since the matching start tag.
        if any(open_tag == tag for open_tag, _ in self.stack):
            while self.stack:
                open_tag, skip = self.stack.pop()
                self.skipping -= skip
                self.in_pre -= open_tag == "pre"
                if open_tag == tag:
                    break

    def handle_data(self, data):
        if not self.skipping:
            self.current.append(data)

    def _end_block(self):
        text = "".join(self.current)
        self.current = []
        if not self.in_pre:
            text = " ".join(text.split())   # in HTML any run of whitespace shows as one space
        if text.strip():
            self.blocks.append(text.strip("\n"))

    def close(self):
        super().close()
        self._end_block()


def html_to_text(page: str) -> str:
    """The main text of an HTML page: headings and paragraphs, one block per paragraph, blank lines between.

    Drops scripts, styles, the <head>, navigation, headers, footers, sidebars, forms and any element whose class or
    id names boilerplate (cookie banners, share bars), then whole lines that are boilerplate ("All rights
    reserved"). Does not judge whether what is left is worth keeping: that is the later stages' work.
    """
    parser = _TextExtractor()
    parser.feed(page)
    parser.close()
    return "\n\n".join(b for b in parser.blocks if not (BOILERPLATE_LINE.search(b) and len(b.split()) <= 20))


# ---------------------------------------------------------------------------------------------------------------
# 4. Characters: NFKC, control characters, broken encodings

def _continuation_chars() -> str:
    # The characters that bytes 0x80-0xBF (UTF-8 continuation bytes) become when decoded as Windows-1252, and
    # as Latin-1 (which gives the C1 control characters U+0080-U+009F for the first 32 of them).
    chars = [chr(byte) for byte in range(0x80, 0xC0)]
    for byte in range(0x80, 0xC0):
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:       # five bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) are undefined in cp1252
            pass
    return "".join(sorted(set(chars)))


# A UTF-8 lead byte (0xC2-0xF4) read as cp1252 is one of Â..ô; one to three continuation bytes follow it.
MOJIBAKE_CANDIDATE = re.compile("[\u00c2-\u00f4][" + re.escape(_continuation_chars()) + "]{1,3}")


def _decode_back(sequence: str) -> str | None:
    try:
        return sequence.encode("cp1252").decode("utf-8")
    except UnicodeError:
        try:
            return sequence.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None


def mojibake_sequences(text: str) -> list[str]:
    """Runs of characters that are UTF-8 bytes decoded as Windows-1252 (or Latin-1): "Ã©" for "é", "â€™" for "’".

    A candidate counts only if encoding it back to bytes gives valid UTF-8, so real text with accents
    ("Ångström", "señor") and every CJK text pass untouched.
    """
    return [m.group() for m in MOJIBAKE_CANDIDATE.finditer(text) if _decode_back(m.group()) is not None]


def repair_mojibake(text: str) -> str:
    """Undo the wrong decoding of each mojibake sequence (what a tool like ftfy does, in its simplest form)."""
    return MOJIBAKE_CANDIDATE.sub(lambda m: _decode_back(m.group()) or m.group(), text)


# Full-width punctuation (U+FF01-FF0F, FF1A-FF20, FF3B-FF40, FF5B-FF65); full-width letters and digits still fold.
FULLWIDTH_PUNCTUATION = re.compile("[\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]")
FULLWIDTH_PUNCTUATION_SPLIT = re.compile("([\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65])")


@dataclass
class Normalised:
    text: str
    controls_removed: int
    replacement_chars: int       # U+FFFD: bytes that were not valid UTF-8, or characters lost before us
    mojibake: list[str]


def normalise(text: str) -> Normalised:
    """NFKC, line endings, control and format characters, whitespace at line ends; count broken encodings.

    NFKC folds characters that mean the same into one spelling (full-width "Ａ" -> "A", the ligature "ﬁ" -> "fi",
    "①" -> "1"), so that filters and duplicate detection compare like with like; full-width punctuation, the
    normal punctuation of Chinese text, is left as it is. Tabs and newlines stay; other
    control characters (Cc) and invisible format characters (Cf: zero-width spaces, soft hyphens, byte-order
    marks) are removed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Look for mojibake before NFKC, which would turn the "™" of "â€™" into "TM" and hide it.
    mojibake = mojibake_sequences(text)
    # NFKC, except for full-width punctuation: NFKC would turn Chinese "，" "：" "？" into ASCII ", : ?", which
    # changes how Chinese text is written rather than how a character is encoded.
    text = "".join(piece if FULLWIDTH_PUNCTUATION.fullmatch(piece) else unicodedata.normalize("NFKC", piece)
                   for piece in FULLWIDTH_PUNCTUATION_SPLIT.split(text))
    kept = [c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf")]
    removed = len(text) - len(kept)
    text = "".join(kept)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Normalised(text, removed, text.count("\ufffd"), mojibake)


__all__ = ["CJK", "WORD_RE", "words", "Document", "InputProblem", "CorpusInputError", "read_documents",
           "html_to_text", "mojibake_sequences", "repair_mojibake", "normalise", "Normalised"]
