"""The bundled datasets are exactly what their generator scripts make, so nobody can hand-edit one silently."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["data/sms/make_sms.py", "data/instructions/make_instructions.py"])
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
