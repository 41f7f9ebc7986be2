"""Chapter 10: the cleaning pipeline: every stage in the order a document meets it, a funnel, and an evaluation.

    extract -> langid -> rules (after filler removal in dialogue) -> quality -> exact_dup -> near_dup

Each stage is a function that takes the surviving documents and returns those it keeps plus a `Removal` (id,
source, stage, one-line reason; for a duplicate the id of the copy that was kept) for each one it drops, so that
every document that goes in comes out in exactly one of kept.jsonl and removed.jsonl. The funnel counts
documents and GPT-2 tokens in and out of every stage; `score_stages` compares what happened with ground-truth
labels (the bundled corpus has them: data/corpus/labels.jsonl) and gives precision and recall per stage.

Read it in this order: Settings -> the stage_* functions -> run_pipeline -> score_stages -> write_outputs.
The stages themselves are in minigpt/corpus.py, langid.py, filters.py, quality.py and dedup.py.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from minigpt.corpus import Document, InputProblem, normalise, words
from minigpt.dedup import ShingleHasher, exact_key, near_duplicates
from minigpt.files import atomic_open, write_text_atomic
from minigpt.filters import default_rules, first_failure, looks_like_dialogue, remove_fillers, with_thresholds

STAGES = ("extract", "langid", "rules", "quality", "exact_dup", "near_dup")
LABELS = Path(__file__).resolve().parent.parent / "data" / "corpus" / "labels.jsonl"


@dataclass
class Settings:
    langs: tuple[str, ...] = ("en", "zh")       # languages to keep
    min_lang_probability: float = 0.5
    max_broken_chars: int = 2                   # mojibake sequences + U+FFFD a document may have
    rule_thresholds: dict[str, float] = field(default_factory=dict)
    fillers: bool = True                        # remove filler words from dialogue before the rules
    quality_threshold: float = 0.5              # minimum P(good)
    dedup_threshold: float = 0.8                # Jaccard of 5-word shingles
    num_perm: int = 128
    seed: int = 1
    skip: frozenset[str] = frozenset()          # stages turned off


@dataclass
class Removal:
    id: str
    source: str
    stage: str
    reason: str
    dup_of: str | None = None
    jaccard: float | None = None

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class StageCount:
    stage: str
    docs_in: int
    docs_out: int
    tokens_in: int
    tokens_out: int
    reasons: Counter


@dataclass
class Result:
    kept: list[Document]
    removed: list[Removal]
    funnel: list[StageCount]
    fillers_removed: int = 0
    clusters: list[list[str]] = field(default_factory=list)   # near-duplicate clusters, kept id first
    problems: list[InputProblem] = field(default_factory=list)


def _removal(doc: Document, stage: str, reason: str, **extra) -> Removal:
    return Removal(doc.id, doc.source, stage, reason, **extra)


# ---------------------------------------------------------------------------------------------------------------
# The stages

def stage_extract(docs: list[Document], s: Settings) -> tuple[list[Document], list[Removal]]:
    """Normalise characters; drop documents with nothing left or with a broken encoding."""
    kept, removed = [], []
    for doc in docs:
        result = normalise(doc.text)
        doc.text = result.text
        broken = len(result.mojibake) + result.replacement_chars
        if broken:
            examples = ", ".join(sorted(set(result.mojibake))[:3])
            doc.flags.append(f"broken encoding: {len(result.mojibake)} mojibake sequences"
                             f"{' (' + examples + ')' if examples else ''}, {result.replacement_chars} U+FFFD")
        if not words(doc.text):
            removed.append(_removal(doc, "extract", "no text left after extraction"))
        elif broken > s.max_broken_chars:
            removed.append(_removal(doc, "extract", doc.flags[-1]))
        else:
            kept.append(doc)
    return kept, removed


def stage_langid(docs: list[Document], s: Settings, model) -> tuple[list[Document], list[Removal]]:
    kept, removed = [], []
    for doc in docs:
        doc.lang, doc.lang_probability = model.predict(doc.text)
        if doc.lang_probability < s.min_lang_probability:
            removed.append(_removal(doc, "langid", f"language unclear (best {doc.lang or 'none'}, "
                                                   f"p={doc.lang_probability:.2f} < {s.min_lang_probability})"))
        elif doc.lang not in s.langs:
            removed.append(_removal(doc, "langid", f"language {doc.lang} (p={doc.lang_probability:.2f}), "
                                                   f"not one of {', '.join(s.langs)}"))
        else:
            kept.append(doc)
    return kept, removed


def stage_rules(docs: list[Document], s: Settings) -> tuple[list[Document], list[Removal], int]:
    """Filler removal in dialogue, then the first failing rule (if any) removes a document."""
    rules = with_thresholds(default_rules(), s.rule_thresholds)
    kept, removed, fillers = [], [], 0
    for doc in docs:
        if s.fillers and looks_like_dialogue(doc.text):
            doc.text, n = remove_fillers(doc.text)
            fillers += n
        if "rules" in s.skip:
            kept.append(doc)
            continue
        failure = first_failure(doc.text, doc.lang, rules)
        if failure:
            removed.append(_removal(doc, "rules", failure[1]))
        else:
            kept.append(doc)
    return kept, removed, fillers


def stage_quality(docs: list[Document], s: Settings, model) -> tuple[list[Document], list[Removal]]:
    kept, removed = [], []
    for doc in docs:
        doc.quality = model.score(doc.text)
        if doc.quality < s.quality_threshold:
            removed.append(_removal(doc, "quality", f"low quality: P(good) {doc.quality:.2f} < {s.quality_threshold}"))
        else:
            kept.append(doc)
    return kept, removed


def stage_exact_dup(docs: list[Document], s: Settings) -> tuple[list[Document], list[Removal]]:
    first: dict[str, Document] = {}
    kept, removed = [], []
    for doc in docs:
        key = exact_key(doc.text)
        if key in first:
            removed.append(_removal(doc, "exact_dup", f"exact copy of {first[key].id} (same text up to case "
                                                      f"and spacing)", dup_of=first[key].id, jaccard=1.0))
        else:
            first[key] = doc
            kept.append(doc)
    return kept, removed


def stage_near_dup(docs: list[Document], s: Settings,
                   progress: bool = False) -> tuple[list[Document], list[Removal], list[list[str]]]:
    hasher = ShingleHasher()
    shingles = [hasher(doc.text) for doc in docs]
    found = near_duplicates(shingles, s.dedup_threshold, s.num_perm, seed=s.seed, progress=progress)
    removed = []
    for member, kept_index in sorted(found.duplicate_of.items()):
        doc, original = docs[member], docs[kept_index]
        similarity = found.jaccard_to_kept[member]
        removed.append(_removal(doc, "near_dup", f"near duplicate of {original.id} (Jaccard {similarity:.2f} "
                                                 f">= {s.dedup_threshold})",
                                dup_of=original.id, jaccard=round(similarity, 4)))
    kept = [doc for i, doc in enumerate(docs) if i not in found.duplicate_of]
    clusters = [[docs[i].id for i in group] for group in found.clusters]
    return kept, removed, clusters


# ---------------------------------------------------------------------------------------------------------------
# Running them in order

def count_tokens(docs: Sequence[Document], encoding) -> None:
    """Set each document's `tokens` (GPT-2 by default: a tiktoken Encoding, or any object with encode_ordinary)."""
    batch = getattr(encoding, "encode_ordinary_batch", None)
    texts = [d.text for d in docs]
    counts = [len(ids) for ids in batch(texts)] if batch else [len(encoding.encode_ordinary(t)) for t in texts]
    for doc, n in zip(docs, counts):
        doc.tokens = n


def run_pipeline(docs: list[Document], settings: Settings, langid_model=None, quality_model=None,
                 encoding=None, progress: bool = True) -> Result:
    """Every stage not in settings.skip, in order; the funnel counts documents and tokens around each."""
    if encoding is None:
        from minigpt.tokenizer import gpt2_tiktoken_encoding
        encoding = gpt2_tiktoken_encoding()
    unknown = set(settings.skip) - set(STAGES) - {"fillers"}
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; the stages are {', '.join(STAGES)}")
    count_tokens(docs, encoding)
    result = Result([], [], [])
    for stage in tqdm(STAGES, desc="stages", unit="stage", disable=not progress):
        docs_in, tokens_in = len(docs), sum(d.tokens for d in docs)
        if stage in settings.skip and stage != "rules":   # "rules" still removes fillers when skipped
            result.funnel.append(StageCount(stage, docs_in, docs_in, tokens_in, tokens_in, Counter({"skipped": 0})))
            continue
        if stage == "extract":
            docs, removed = stage_extract(docs, settings)
        elif stage == "langid":
            docs, removed = stage_langid(docs, settings, langid_model)
        elif stage == "rules":
            docs, removed, result.fillers_removed = stage_rules(docs, settings)
        elif stage == "quality":
            docs, removed = stage_quality(docs, settings, quality_model)
        elif stage == "exact_dup":
            docs, removed = stage_exact_dup(docs, settings)
        else:
            # Its own progress bars only for corpora large enough to wait for.
            docs, removed, result.clusters = stage_near_dup(docs, settings, progress and len(docs) > 20_000)
        count_tokens(docs, encoding)   # extraction and filler removal change texts, so count again
        result.removed.extend(removed)
        result.funnel.append(StageCount(stage, docs_in, len(docs), tokens_in, sum(d.tokens for d in docs),
                                        Counter(reason_kind(r.reason) for r in removed)))
    result.kept = docs
    return result


def reason_kind(reason: str) -> str:
    """The reason without its numbers: "min_words: 3 < 30 (...)" -> "min_words"; used to tally reasons."""
    for marker in (":", " (", " of "):
        if marker in reason:
            reason = reason.split(marker)[0]
    return reason


# ---------------------------------------------------------------------------------------------------------------
# Evaluation against ground truth

def load_labels(path: str | Path = LABELS) -> dict[str, dict]:
    labels = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            record = json.loads(line)
            if "id" not in record or "expect" not in record:
                raise ValueError(f"{path}:{number}: a label needs an \"id\" and an \"expect\" field")
            labels[record["id"]] = record
    return labels


def score_stages(result: Result, labels: dict[str, dict]) -> dict:
    """Precision and recall of each stage's removals (and of "keep") against the labels' expected stage.

    precision(stage) = documents it removed that the labels say it should remove / documents it removed
    recall(stage)    = documents it removed that the labels say it should remove / documents labelled for it
    Documents without a label are left out (and counted).
    """
    predicted = {r.id: r.stage for r in result.removed}
    predicted.update({d.id: "keep" for d in result.kept})
    pairs = [(labels[i]["expect"], stage) for i, stage in predicted.items() if i in labels]
    per_stage = {}
    for stage in STAGES + ("keep",):
        said = sum(1 for _, p in pairs if p == stage)
        truth = sum(1 for t, _ in pairs if t == stage)
        hits = sum(1 for t, p in pairs if t == p == stage)
        per_stage[stage] = {"removed" if stage != "keep" else "kept": said, "labelled": truth, "correct": hits,
                            "precision": hits / said if said else None, "recall": hits / truth if truth else None}
    confusion = Counter(f"{t} -> {p}" for t, p in pairs if t != p)
    return {"per_stage": per_stage, "mistakes": dict(confusion.most_common()),
            "unlabelled": sum(1 for i in predicted if i not in labels),
            "accuracy": sum(t == p for t, p in pairs) / max(len(pairs), 1)}


def evaluate_fillers(result: Result, labels: dict[str, dict]) -> dict:
    """Dialogue documents whose cleaned text equals the labels' clean text, and fillers removed vs inserted."""
    dialogue = [d for d in result.kept if labels.get(d.id, {}).get("kind") == "dialogue"]
    exact = sum(d.text == normalise(labels[d.id]["clean"]).text for d in dialogue)
    inserted = sum(labels[i]["fillers"] for i in labels if labels[i].get("kind") == "dialogue")
    return {"dialogues": len(dialogue), "cleaned_exactly": exact, "fillers_inserted": inserted,
            "fillers_removed": result.fillers_removed}


# ---------------------------------------------------------------------------------------------------------------
# Outputs

def write_outputs(result: Result, out_dir: str | Path, report: dict) -> dict[str, Path]:
    """kept.jsonl (id, source, text), removed.jsonl (id, source, stage, reason[, dup_of, jaccard]), report.json;
    each written atomically, so an interrupted run leaves the previous files intact."""
    out_dir = Path(out_dir)
    paths = {"kept": out_dir / "kept.jsonl", "removed": out_dir / "removed.jsonl", "report": out_dir / "report.json"}
    with atomic_open(paths["kept"]) as f:
        for doc in result.kept:
            f.write(json.dumps({"id": doc.id, "source": doc.source, "text": doc.text}, ensure_ascii=False) + "\n")
    with atomic_open(paths["removed"]) as f:
        for removal in result.removed:
            f.write(json.dumps(removal.record(), ensure_ascii=False) + "\n")
    write_text_atomic(paths["report"], json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return paths


def funnel_rows(result: Result) -> list[dict]:
    return [{"stage": c.stage, "docs_in": c.docs_in, "docs_out": c.docs_out, "tokens_in": c.tokens_in,
             "tokens_out": c.tokens_out, "reasons": dict(c.reasons.most_common())} for c in result.funnel]


__all__ = ["STAGES", "LABELS", "Settings", "Removal", "StageCount", "Result", "stage_extract", "stage_langid",
           "stage_rules", "stage_quality", "stage_exact_dup", "stage_near_dup", "count_tokens", "run_pipeline",
           "reason_kind", "load_labels", "score_stages", "evaluate_fillers", "write_outputs", "funnel_rows"]
