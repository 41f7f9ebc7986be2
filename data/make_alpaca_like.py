"""Write a generated instruction file in Stanford Alpaca's format, as long as real Alpaca records, for timing chapter 9.

The bundled instructions (data/instructions) are short on purpose: answers of 6 words on average. Real
Alpaca-format files are not: Stanford Alpaca's outputs average about 270 characters, many are one word and a
few run past 2,000. Chapter 9's default amount of training and its time estimate have to hold up on such files,
so this script writes one to measure with. The text is GENERATED (common English words put into sentences by a
seeded random generator), not real Alpaca data: it has Alpaca's shape (the fields, the share of records with an
input, the spread of lengths) but says nothing, so a model trained on it learns the layout and the lengths only.

    python data/make_alpaca_like.py                               # out/alpaca_like.json, 1,100 records
    python data/make_alpaca_like.py --records 5000 --out out/big.json
    python chapters/ch09_instruction.py --data out/alpaca_like.json

Lengths: each output's length in characters is drawn from a log-normal distribution with a mean of 270 and a
median of about 180 (sigma 0.9), cut to 2..3,500 characters: about a quarter of the outputs are under 100
characters (closed tasks: a label, a word, a short fact) and about 3% are over 1,000. 40% of the records have an
input (as in Alpaca), of 20 to 600 characters. The same seed always writes the same file, byte for byte.
Standard library only, so it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
from pathlib import Path

SEED = 2024
OUTPUT_MEAN_CHARS = 270     # Stanford Alpaca's mean output length
OUTPUT_SIGMA = 0.9          # spread of log(length); the median is mean / exp(sigma^2 / 2), about 180
OUTPUT_RANGE = (2, 3500)
INPUT_SHARE = 0.4           # Alpaca: about 40% of the records have an input

WORDS = """
time person year way day thing man world life hand part child eye woman place work week case point government
company number group problem fact water room mother area money story month lot right study book job word business
issue side kind head house service friend father power hour game line end member law car city community name
president team minute idea kid body information back parent face others level office door health art war history
party result change morning reason research girl guy moment air teacher force education food plant energy garden
river mountain computer language music market system program question school country family state student night
good new first last long great little own other old right big high different small large next early young important
few public bad same able simple clear strong local free full special easy recent certain personal open red blue
green warm cold quick careful quiet bright
make take give find tell ask work seem feel try leave call keep let begin help show hear play run move like live
believe hold bring happen write provide sit stand lose pay meet include continue set learn lead understand watch
follow stop create speak read allow add spend grow offer remember love consider appear buy wait serve die send
expect build stay fall cut reach remain suggest raise pass explain describe improve reduce choose compare
""".split()
FUNCTION_WORDS = "the a of to and in that for with on as at by from this it is are can will may should".split()
OPENERS = ["", "", "", "In general, ", "For example, ", "However, ", "As a result, ", "In addition, ",
           "First, ", "Finally, ", "Most importantly, ", "To begin with, "]
TASKS = [  # (instruction template, whether the task usually comes with an input)
    ("Explain the importance of {w} in {w2}.", False), ("Describe a typical {w} in a {w2}.", False),
    ("Give three tips for improving your {w}.", False), ("Write a short story about a {w} and a {w2}.", False),
    ("Summarize the following text.", True), ("Rewrite the following sentence in a more formal tone.", True),
    ("Classify the following statement as positive or negative.", True), ("What is the main idea of this text?", True),
    ("Generate a list of ideas for a {w} project.", False), ("Compare a {w} with a {w2}.", False),
    ("Translate the following sentence into plain English.", True), ("Name a famous {w}.", False),
    ("Edit the following paragraph to fix the grammar.", True), ("Suggest a title for an article about {w}.", False),
    ("How can a {w} help a {w2}?", False), ("Find the odd one out in this list.", True),
]


def sentence(rng: random.Random, words: int) -> str:
    """`words` words of plausible-looking English: mostly content words, with function words in between."""
    picked = [rng.choice(FUNCTION_WORDS) if rng.random() < 0.35 else rng.choice(WORDS) for _ in range(words)]
    text = rng.choice(OPENERS) + " ".join(picked)
    return text[0].upper() + text[1:] + rng.choice(".....!?")


def text_of_length(rng: random.Random, chars: int, as_list: bool = False) -> str:
    """Sentences (or a numbered list) cut at a word boundary to about `chars` characters."""
    if chars < 25:   # a closed answer: a word or two
        return " ".join(rng.choice(WORDS) for _ in range(max(1, chars // 7))).capitalize()
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars:
        item = sentence(rng, rng.randint(5, 22))
        parts.append(f"{len(parts) + 1}. {item}" if as_list else item)
    text = ("\n" if as_list else " ").join(parts)
    if len(text) <= chars:
        return text
    return text[:chars].rsplit(" ", 1)[0].rstrip(",;.!?") + "."


def output_length(rng: random.Random) -> int:
    mu = math.log(OUTPUT_MEAN_CHARS) - OUTPUT_SIGMA ** 2 / 2   # so that the mean of the log-normal is the target
    return int(min(max(rng.lognormvariate(mu, OUTPUT_SIGMA), OUTPUT_RANGE[0]), OUTPUT_RANGE[1]))


def make_record(rng: random.Random) -> dict:
    template, wants_input = rng.choice(TASKS)
    instruction = template.format(w=rng.choice(WORDS), w2=rng.choice(WORDS))
    has_input = wants_input if rng.random() < 0.8 else not wants_input
    # Alpaca's inputs run from a few words to a paragraph.
    input_text = text_of_length(rng, rng.randint(20, 600)) if has_input and rng.random() < INPUT_SHARE / 0.5 else ""
    return {"instruction": instruction, "input": input_text,
            "output": text_of_length(rng, output_length(rng), as_list=instruction.startswith(("Generate a list", "Give three tips")))}


def make_records(n: int, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    return [make_record(rng) for _ in range(n)]


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1100, help="how many records")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", type=Path, default=Path("out/alpaca_like.json"))
    args = p.parse_args(argv)
    if args.records < 1:
        p.error(f"--records must be at least 1, got {args.records}")
    records = make_records(args.records, args.seed)
    write_atomic(args.out, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    lengths = sorted(len(r["output"]) for r in records)
    print(f"Wrote {len(records)} generated (not real) Alpaca-format records to {args.out}: output length mean "
          f"{sum(lengths) / len(lengths):.0f} characters, median {lengths[len(lengths) // 2]}, longest "
          f"{lengths[-1]}; {sum(bool(r['input']) for r in records) / len(records):.0%} with an input.")


if __name__ == "__main__":
    main()
