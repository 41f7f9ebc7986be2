"""The bundled datasets are exactly what their generator scripts make, so nobody can hand-edit one silently."""
import collections
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["data/sms/make_sms.py", "data/instructions/make_instructions.py",
                                    "data/eval/make_eval_sets.py"])
def test_generated_data_matches_its_script(script):
    result = subprocess.run([sys.executable, str(ROOT / script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sms_files_are_in_the_uci_format_and_splits_partition_all():
    lines = {}
    for split in ("train", "validation", "test", "all"):
        rows = (ROOT / "data/sms" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        for row in rows:
            label, text = row.split("\t")  # exactly one TAB
            assert label in ("ham", "spam") and text.strip()
        lines[split] = rows
    assert sorted(lines["train"] + lines["validation"] + lines["test"]) == sorted(lines["all"])


def test_instruction_splits_are_disjoint_alpaca_records():
    seen = set()
    for split in ("train", "validation", "test"):
        for record in json.loads((ROOT / "data/instructions" / f"{split}.json").read_text(encoding="utf-8")):
            assert isinstance(record["instruction"], str) and isinstance(record["input"], str)
            assert isinstance(record["output"], str) and record["output"]
            key = (record["instruction"], record["input"])
            assert key not in seen, key
            seen.add(key)


def test_stories_are_long_enough_for_the_chapters():
    stories = sorted((ROOT / "data/stories").glob("*.txt"))
    assert sum(len(p.read_text(encoding="utf-8")) for p in stories) >= 20_000


EVAL = ROOT / "data/eval"
MMLU_SUBJECTS = ("arithmetic", "world_geography", "word_meanings", "everyday_science")
CEVAL_SUBJECTS = ("middle_school_mathematics", "middle_school_biology", "middle_school_geography",
                  "chinese_language_and_literature")


def _letters_balanced(name, answers):
    counts = collections.Counter(answers)
    assert max(counts.values()) <= 0.4 * len(answers), (name, counts)


def _read_csv(path, header):
    data = path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf"), f"{path} starts with a BOM"
    rows = list(csv.reader(data.decode("utf-8").splitlines()))
    if header:
        assert rows[0] == header, (path, rows[0])
        rows = rows[1:]
    return rows


def test_eval_sets_parse_in_their_benchmark_formats():
    """Chapter 12's bundled sets, checked with json/csv alone (not with the script that makes them)."""
    questions = collections.Counter()

    # HellaSwag JSONL: the right ending is what really follows the context in its story
    for name, low, high in (("stories.jsonl", 120, 180), ("chinese_stories.jsonl", 60, 100)):
        records = [json.loads(line) for line in (EVAL / name).read_text(encoding="utf-8").splitlines()]
        assert low <= len(records) <= high, (name, len(records))
        assert [r["ind"] for r in records] == list(range(len(records)))
        for r in records:
            assert set(r) == {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "label", "split",
                              "split_type", "source_id"}, r
            assert r["split"] == "val" and r["split_type"] == "indomain" and r["activity_label"]
            assert r["ctx"] == (r["ctx_a"] + " " + r["ctx_b"] if r["ctx_b"] else r["ctx_a"]), r
            assert r["ctx_b"].capitalize() == r["ctx_b"], r  # what lm-evaluation-harness does to ctx_b
            endings = r["endings"]
            assert len(endings) == 4 and all(e.strip() == e and e for e in endings), r
            assert len({e.lower() for e in endings}) == 4, r
            assert isinstance(r["label"], int) and 0 <= r["label"] < 4, r
            assert not re.search(r"[\[\]]", r["ctx"] + "".join(endings)), r  # the harness strips "[...]"
            if name == "stories.jsonl":
                source = " ".join((ROOT / "data/stories" / r["source_id"]).read_text(encoding="utf-8").split())
                follows = [f"{r['ctx']} {e}" in source for e in endings]
            else:
                number = int(r["source_id"].rsplit("#", 1)[1])
                story = (ROOT / "data/chinese/heldout.txt").read_text(encoding="utf-8").strip().split("\n\n")
                source = story[number - 1].replace("\n", "")
                follows = [r["ctx"] + e in source for e in endings]
            assert follows == [i == r["label"] for i in range(4)], r
        _letters_balanced(name, [r["label"] for r in records])

    # ARC JSONL: 3-5 choices labelled A.. or 1..
    records = [json.loads(line) for line in (EVAL / "science_arc.jsonl").read_text(encoding="utf-8").splitlines()]
    assert 80 <= len(records) <= 120 and len({r["id"] for r in records}) == len(records)
    numeric = 0
    for r in records:
        assert set(r) == {"id", "question", "answerKey"} and set(r["question"]) == {"stem", "choices"}, r
        labels = [c["label"] for c in r["question"]["choices"]]
        texts = [c["text"] for c in r["question"]["choices"]]
        assert 3 <= len(labels) <= 5 and labels in (list("ABCDE"[:len(labels)]), list("12345"[:len(labels)])), r
        assert r["answerKey"] in labels and len(set(texts)) == len(texts) and all(texts), r
        numeric += labels[0] == "1"
        questions[r["question"]["stem"]] += 1
    assert 0.05 <= numeric / len(records) <= 0.25, numeric
    _letters_balanced("science_arc.jsonl", [r["answerKey"] for r in records])

    # MMLU CSV (no header) and C-Eval CSV (header; dev has an explanation): dev exactly 5 per subject
    layouts = [("facts_en", MMLU_SUBJECTS, "test", (30, 50), None, None),
               ("facts_zh", CEVAL_SUBJECTS, "val", (20, 30), ["id", "question", "A", "B", "C", "D", "answer"],
                ["id", "question", "A", "B", "C", "D", "answer", "explanation"])]
    for folder, subjects, split, (low, high), header, dev_header in layouts:
        assert sorted(p.stem for p in (EVAL / folder / split).glob("*.csv")) == sorted(f"{s}_{split}"
                                                                                     for s in subjects)
        for subject in subjects:
            dev = _read_csv(EVAL / folder / "dev" / f"{subject}_dev.csv", dev_header)
            test = _read_csv(EVAL / folder / split / f"{subject}_{split}.csv", header)
            assert len(dev) == 5 and low <= len(test) <= high, (subject, len(dev), len(test))
            for rows, width in ((dev, 8 if header else 6), (test, 7 if header else 6)):
                for row in rows:
                    assert len(row) == width, row
                    fields = row[1:] if header else row
                    question, options, answer = fields[0], fields[1:5], fields[5]
                    assert question and answer in "ABCD" and len(answer) == 1, row
                    assert len(set(options)) == 4 and all(options), row
                    if header and width == 8:
                        assert row[7], row  # the dev explanation
                    questions[question] += 1
                if header:
                    assert [row[0] for row in rows] == [str(i) for i in range(len(rows))]
            _letters_balanced(f"{folder}/{split}/{subject}", [row[-1 if not header else 6] for row in test])
    repeated = [q for q, n in questions.items() if n > 1]
    assert not repeated, repeated  # no question twice, within a split or across dev/test and files
