"""Build chapter 13's preference data from the bundled instructions: each request with answers ranked best first.

For every single-turn record of data/instructions/{train,validation,test}.json the reference answer is the best
one, and up to three worse answers are made from it, each of one named kind:

    rambling        the right answer, buried between sentences that say nothing
    wrong_fact      the right form with one fact changed: a computed number altered, or one word swapped for the
                    word another record's answer has in that place ("Brussels is the capital of Morocco.")
    ignores_input   the answer to the same instruction for a different input
    refusal         a refusal without a reason
    off_topic       the answer to an unrelated request

The ranking follows one rule: an answer holding the right content beats one without it; among the rest, one that
addresses the request beats one that does not (a refusal at least says it is not answering; an off-topic answer
pretends). So: good > rambling > wrong_fact > ignores_input > refusal > off_topic.

Output: JSONL in the ranked format of the InstructGPT-style articles, one record per line:
    {"instruction": ..., "input": ..., "output": [best, ..., worst], "kinds": ["good", ...]}
Standard library plus minigpt's atomic write; deterministic (SEED), so the committed files are reproduced byte for
byte:
    python data/preferences/make_preferences.py            # rewrite train/validation/test.jsonl here
    python data/preferences/make_preferences.py --check    # exit 1 if the committed files differ
All sentences in this file were written for minigpt (CC0, like the instructions they are built from).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from minigpt.files import write_bytes_atomic

HERE = Path(__file__).resolve().parent
INSTRUCTIONS = HERE.parent / "instructions"
SEED = 2024
# How many requests of each instruction split get ranked answers (the first ones in the split's order, skipping
# multi-turn records). Modest on purpose: chapter 13 trains on a laptop CPU in minutes.
SIZES = {"train": 700, "validation": 105, "test": 211}
WORSE_PER_RECORD = 3
KIND_ORDER = ("good", "rambling", "wrong_fact", "ignores_input", "refusal", "off_topic")

OPENERS = (
    "Well, that is an interesting thing to ask, and I have been thinking about questions like it for a while.",
    "Let me start by saying that there are many ways to look at a request like this one.",
    "Before I answer, it is worth remembering that every question has a little history behind it.",
    "This is the kind of question that people often ask, and it deserves a careful reply.",
    "Thank you for asking; I will try to be thorough, because details matter.",
)
FILLERS = (
    "Of course, different people may see it differently, and that is perfectly fine.",
    "I hope this is useful, although much more could be said on the subject.",
    "It is always a good idea to take your time with things like this.",
    "Some people find it helpful to write such things down and read them again later.",
    "In any case, it is nice to think about these matters now and then.",
    "There is a lot more to explore here if you are curious about it.",
)
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I would rather not answer this request.",
    "Unfortunately, I am not able to do that.",
    "I cannot assist with this one.",
    "That is not something I can answer, sorry.",
    "I'm afraid I won't be doing that task.",
)

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def single_turn(records: list[dict]) -> list[dict]:
    return [r for r in records if not r.get("history")]


def rambling(answer: str, rng: random.Random) -> str:
    before = rng.choice(OPENERS)
    after = rng.sample(FILLERS, 2)
    return f"{before} {answer} {after[0]} {after[1]}"


def changed_number(record: dict, rng: random.Random) -> str | None:
    """The answer with its last computed number changed (one not copied from the request), or None."""
    request = record["instruction"] + " " + record["input"]
    answer = record["output"]
    for match in reversed(list(_NUMBER.finditer(answer))):
        text = match.group()
        if re.search(rf"(?<![\d.]){re.escape(text)}(?![\d.]|\.\d)", request):
            continue   # a number copied from the request is not the computed fact
        digit = text[-1]
        replacement = rng.choice([d for d in "0123456789" if d != digit])
        return answer[:match.end() - 1] + replacement + answer[match.end():]
    return None


def _shape(word: str) -> str:
    """"Morocco." -> "a.", "39.2°F" -> "0.0°a": words of one shape can stand in for each other."""
    return re.sub(r"[^\W\d_]+", "a", re.sub(r"\d+", "0", word))


def swapped_word(record: dict, pool: list[dict], rng: random.Random) -> str | None:
    """The answer with one word taken from a same-shaped answer in `pool`, or None.

    Same-shaped: as many words, and as few positions as possible (but at least one, at most 3) where they differ.
    The last differing word is swapped, which in these templates is the fact ("... is the capital of Morocco."),
    and only for a word of the same shape (a number for a number, a word for a word).
    """
    words = record["output"].split()
    best, candidates = None, []
    for other in pool:
        theirs = other["output"].split()
        if len(theirs) != len(words) or other is record:
            continue
        differ = [i for i, (a, b) in enumerate(zip(words, theirs)) if a != b]
        if not differ or _shape(words[differ[-1]]) != _shape(theirs[differ[-1]]):
            continue
        if best is None or len(differ) < best:
            best, candidates = len(differ), []
        if len(differ) == best:
            candidates.append((theirs, differ[-1]))
    if not candidates or best > 3:
        return None
    theirs, at = rng.choice(candidates)
    changed = words[:at] + [theirs[at]] + words[at + 1:]
    result = " ".join(changed)
    return result if result != record["output"] else None


def wrong_fact(record: dict, pool: list[dict], rng: random.Random) -> str | None:
    return changed_number(record, rng) or swapped_word(record, pool, rng)


def ignores_input(record: dict, pools: list[list[dict]], rng: random.Random) -> str | None:
    """The answer another record gives to the same instruction with a different input (this split first)."""
    if not record["input"]:
        return None
    for pool in pools:
        others = [r["output"] for r in pool if r["instruction"] == record["instruction"]
                  and r["input"] != record["input"] and r["output"] != record["output"]]
        if others:
            return rng.choice(others)
    return None


def off_topic(record: dict, pool: list[dict], rng: random.Random) -> str:
    """The answer to a request that shares no word of the instruction's first three."""
    start = set(record["instruction"].lower().split()[:3])
    while True:
        other = rng.choice(pool)
        if other is not record and not start & set(other["instruction"].lower().split()[:3]) \
                and other["output"] != record["output"]:
            return other["output"]


def ranked_record(record: dict, split: list[dict], everything: list[dict], rng: random.Random) -> dict:
    made = {
        "rambling": rambling(record["output"], rng),
        "wrong_fact": wrong_fact(record, split, rng),
        "ignores_input": ignores_input(record, [split, everything], rng),
        "refusal": rng.choice(REFUSALS),
        "off_topic": off_topic(record, split, rng),
    }
    seen = {record["output"]}
    available = []
    for kind, text in made.items():   # a kind that could not be made, or repeats another answer, is left out
        if text is not None and text not in seen:
            available.append(kind)
            seen.add(text)
    chosen = sorted(rng.sample(available, min(WORSE_PER_RECORD, len(available))), key=KIND_ORDER.index)
    return {"instruction": record["instruction"], "input": record["input"],
            "output": [record["output"]] + [made[k] for k in chosen], "kinds": ["good"] + chosen}


def build(seed: int = SEED) -> dict[str, list[dict]]:
    splits = {name: single_turn(json.loads((INSTRUCTIONS / f"{name}.json").read_text(encoding="utf-8")))
              for name in SIZES}
    everything = [r for records in splits.values() for r in records]
    rng = random.Random(seed)
    return {name: [ranked_record(r, splits[name], everything, rng) for r in splits[name][:SIZES[name]]]
            for name in SIZES}


def to_jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def summary(splits: dict[str, list[dict]]) -> str:
    lines = ["split       records  " + "  ".join(f"{k:>13}" for k in KIND_ORDER[1:])]
    for name, records in splits.items():
        counts = [sum(k in r["kinds"] for r in records) for k in KIND_ORDER[1:]]
        lines.append(f"{name:11} {len(records):7}  " + "  ".join(f"{c:13}" for c in counts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build chapter 13's ranked preference data from the bundled "
                                                 "instructions, deterministically.")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the JSONL files (default: this one)")
    parser.add_argument("--check", action="store_true",
                        help="verify the files in --out byte for byte instead of writing; exit 1 if any differs")
    args = parser.parse_args(argv)
    splits = build()
    files = {args.out / f"{name}.jsonl": to_jsonl(records) for name, records in splits.items()}
    if args.check:
        stale = [str(path) for path, data in files.items() if not path.is_file() or path.read_bytes() != data]
        print("These files differ from what make_preferences.py makes (run it without --check):\n  "
              + "\n  ".join(stale) if stale else f"All {len(files)} files in {args.out} match (seed {SEED}).")
        return 1 if stale else 0
    for path, data in files.items():
        write_bytes_atomic(path, data)
    print(f"Wrote {', '.join(str(p) for p in files)}.\n{summary(splits)}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
