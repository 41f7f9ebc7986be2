"""Build chapter 12's bundled multiple-choice sets, in the file formats of the public benchmarks they stand in for.

    python data/eval/make_eval_sets.py           # rewrite every file under data/eval (atomically)
    python data/eval/make_eval_sets.py --check   # exit 1, naming the file, if a file here differs from what it makes

What it writes (the readers chapter 12 has for the real data sets read these as well):

    stories.jsonl             HellaSwag JSONL: which ending really follows, English (from data/stories)
    chinese_stories.jsonl     the same, Chinese (from data/chinese/heldout.txt)
    science_arc.jsonl         ARC JSONL: science and everyday-reasoning questions with 3, 4 or 5 choices
    facts_en/{dev,test}/      MMLU CSV (no header): arithmetic, world_geography, word_meanings, everyday_science
    facts_zh/{dev,val}/       C-Eval CSV (with header): middle_school_mathematics, middle_school_biology,
                              middle_school_geography, chinese_language_and_literature

The questions of ARC, MMLU and C-Eval kind are written by hand in question_bank.py beside this file, except the
arithmetic subjects, which this script generates. The story sets take their contexts and right endings from the
bundled stories and their wrong endings from *other* stories, so that a model trained on the stories (chapter 6,
chapter 11) can beat chance by knowing which sentence follows which, while an untrained model cannot.

Standard library only (plus minigpt/files.py, itself standard library, for atomic writes); deterministic (SEED, and no set or hash ordering decides anything), so the committed files
are reproduced byte for byte. All text here and in question_bank.py was written for minigpt (CC0, see data/README.md).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import random
import re
import sys
from pathlib import Path

from minigpt.files import write_bytes_atomic

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
STORIES_DIR = DATA / "stories"
CHINESE_FILE = DATA / "chinese" / "heldout.txt"
SEED = 1212

STORY_ITEMS_PER_STORY = 31      # at most, from each of the 5 stories (the fox story has 26 that qualify): 150
CHINESE_ITEMS = 80              # one per held-out story, for 80 of the 110
ENDING_WORDS = (4, 32)          # a right English ending (a whole sentence) has this many words
SHORT_CONTEXT = 12              # a context sentence shorter than this many words gets the sentence before it too
ARC_NUMERIC_LABELS = 15         # this many 4-choice ARC questions are labelled "1".."4" instead of "A".."D"
ARITHMETIC_ITEMS = 45           # 5 dev + 40 test
ZH_MATH_ITEMS = 30              # 5 dev + 25 val

# Words that may open the next sentence as HellaSwag's ctx_b ("She" -> endings "closed the door."): common,
# capitalised only because they start a sentence, so the harness's ctx_b.capitalize() leaves them as they are.
CTX_B_WORDS = ("The", "She", "He", "It", "Then", "There", "They", "When", "But", "In", "On", "At", "By", "Each",
               "And", "After", "So", "All", "His", "Her", "Every", "One", "That", "This", "A", "For")


def load_module(path: Path, name: str):
    """A sibling script or data module imported by path (this folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bank = load_module(HERE / "question_bank.py", "minigpt_eval_question_bank")


# ---------------------------------------------------------------------------------------------- shared helpers

def balanced_positions(rng: random.Random, count: int, size: int) -> list[int]:
    """`count` answer positions among `size` choices, each position as often as possible, in seeded order."""
    positions = [i % size for i in range(count)]
    rng.shuffle(positions)
    return positions


def place(rng: random.Random, right: str, wrong: list[str], position: int) -> list[str]:
    """The choices with the right one at `position` and the wrong ones around it in seeded order."""
    wrong = list(wrong)
    rng.shuffle(wrong)
    return wrong[:position] + [right] + wrong[position:]


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def check_choices(where: str, choices: list[str]) -> None:
    if len({norm(c) for c in choices}) != len(choices) or any(not c.strip() for c in choices):
        raise ValueError(f"{where}: choices are not distinct non-empty strings: {choices}")
    if any(ch in c for c in choices for ch in "[]"):
        raise ValueError(f"{where}: square brackets would be removed by the harness's preprocessing: {choices}")


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def csv_bytes(rows: list[list[str]], header: list[str] | None = None) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")   # quotes a field only when it holds a comma, quote or newline
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------- English stories

def read_story(path: Path) -> str:
    """A story's text as minigpt.data.read_story gives it (what chapter 6 trains on): "\\n" newlines, stripped."""
    return path.read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").strip()


def english_sentences(body: str) -> list[str]:
    """The story's sentences in order. A sentence ends at . ! or ? followed by a space and a capital or a quote,
    but never inside a quotation, so a speech and the words that say who spoke stay together
    ('"Do you know why we do this, Pepper?" Tomas asked her one night.'); a paragraph always ends one."""
    sentences = []
    for paragraph in body.split("\n\n"):
        text = " ".join(paragraph.split())
        start, quotes = 0, 0
        for i, ch in enumerate(text):
            quotes += ch == '"'
            if (ch in ".!?" and quotes % 2 == 0 and text[i + 1:i + 2] == " "
                    and (text[i + 2:i + 3].isupper() or text[i + 2:i + 3] == '"')):
                sentences.append(text[start:i + 1])
                start = i + 2
        if text[start:]:
            sentences.append(text[start:])
    return sentences


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def story_names(texts: list[str]) -> set[str]:
    """The names in the stories (pepper, brindle, millbrook, thursday), lower-cased: words that appear capitalised
    after a lower-case word or a comma somewhere (so not merely because they start a sentence) and never in lower
    case."""
    lower = {w for text in texts for w in re.findall(r"\b[a-z][a-z']*", text)}
    inside = {m.lower() for text in texts for m in re.findall(r"(?<=[a-z,;] )[A-Z][a-z']*", text)}
    return inside - lower - {"i"}


def english_story_items() -> list[dict]:
    """HellaSwag items from data/stories: up to STORY_ITEMS_PER_STORY per story.

    The right ending is the sentence that follows the context in the story, and it names someone or something of
    the story (Pepper, Miss Brindle, Thursday); each wrong ending is a sentence of another story, of similar length,
    that names someone or something this story never mentions. So every ending carries a name, the wrong ones are
    clearly another story's, and telling them apart takes knowing which names belong to which story.
    """
    rng = random.Random(SEED)
    stories = []
    for path in sorted(STORIES_DIR.glob("*.txt")):
        title, body = read_story(path).split("\n", 1)
        sentences = english_sentences(body)
        stories.append({"file": path.name, "title": title.strip(), "sentences": sentences,
                        "text": norm(" ".join(sentences)), "vocabulary": words_of(body)})
    names = story_names([" ".join(story["sentences"]) for story in stories])

    def usable(sentence: str) -> bool:
        return (ENDING_WORDS[0] <= len(sentence.split()) <= ENDING_WORDS[1] and sentence.count('"') % 2 == 0
                and "[" not in sentence and "]" not in sentence)

    def similar_length(a: str, b: str) -> bool:
        n, m = len(a.split()), len(b.split())
        return abs(n - m) <= max(3, round(0.3 * n))

    def split_first(sentence: str) -> tuple[str, str]:
        return tuple((sentence.split(" ", 1) + [""])[:2])

    items = []
    for s, story in enumerate(stories):
        # other stories' sentences that name someone or something this story never mentions
        others = [(o, w) for o, other in enumerate(stories) if o != s for w in other["sentences"]
                  if usable(w) and (words_of(w) - story["vocabulary"]) & names and norm(w) not in story["text"]]
        candidates = []
        for i, target in enumerate(story["sentences"]):
            context = story["sentences"][max(0, i - 2):i]
            if i == 0 or not usable(target) or any(c.count('"') % 2 for c in context):
                continue
            if len(context) == 2 and len(context[1].split()) >= SHORT_CONTEXT:
                context = context[1:]
            first, rest = split_first(target)
            choices = []
            if first in CTX_B_WORDS and len(rest.split()) >= 4 and words_of(rest) & names:
                pool = [(o, split_first(w)[1]) for o, w in others if split_first(w)[0] == first]
                pool = [(o, w) for o, w in pool if similar_length(rest, w) and words_of(w) & names
                        and norm(w) != norm(rest)]
                if len({norm(w) for _, w in pool}) >= 3:
                    choices = [(first, rest, pool)]
            if not choices and words_of(target) & names:
                pool = [(o, w) for o, w in others if similar_length(target, w) and norm(w) != norm(target)]
                alike = [(o, w) for o, w in pool if w.startswith('"') == target.startswith('"')]
                pool = alike if len({norm(w) for _, w in alike}) >= 3 else pool
                if len({norm(w) for _, w in pool}) >= 3:
                    choices = [("", target, pool)]
            for ctx_b, right, pool in choices:
                candidates.append((i, " ".join(context), ctx_b, right, pool))
        chosen = sorted(rng.sample(range(len(candidates)), min(STORY_ITEMS_PER_STORY, len(candidates))))
        for c in chosen:
            i, ctx_a, ctx_b, right, pool = candidates[c]
            # one wrong ending from each of three other stories where the pool allows, so no story dominates
            by_story: dict[int, list[str]] = {}
            for o, w in pool:
                by_story.setdefault(o, []).append(w)
            wrong: list[str] = []
            story_order = sorted(by_story)
            rng.shuffle(story_order)
            for o in story_order * 3:
                options = [w for w in by_story[o] if norm(w) not in {norm(x) for x in wrong}]
                if options and len(wrong) < 3:
                    wrong.append(rng.choice(options))
            items.append({"story": story, "sentence": i, "ctx_a": ctx_a, "ctx_b": ctx_b, "right": right,
                          "wrong": wrong})
    return hellaswag_records(rng, items, lambda item: item["story"]["title"], lambda item: item["story"]["file"])


def hellaswag_records(rng: random.Random, items: list[dict], label_of, source_of) -> list[dict]:
    """HellaSwag lines, in seeded order (so the first lines already mix the stories), right endings balanced over
    the four positions."""
    rng.shuffle(items)
    positions = balanced_positions(rng, len(items), 4)
    records, seen = [], set()
    for ind, (item, position) in enumerate(zip(items, positions)):
        endings = place(rng, item["right"], item["wrong"], position)
        check_choices(f"{source_of(item)} sentence {item['sentence']}", endings)
        key = (norm(item["ctx_a"]), norm(item["ctx_b"]), norm(item["right"]))
        if key in seen:
            raise ValueError(f"duplicate story item: {key}")
        seen.add(key)
        ctx = item["ctx_a"] + " " + item["ctx_b"] if item["ctx_b"] else item["ctx_a"]
        records.append({"ind": ind, "activity_label": label_of(item), "ctx_a": item["ctx_a"], "ctx_b": item["ctx_b"],
                        "ctx": ctx, "endings": endings, "label": position, "split": "val",
                        "split_type": "indomain", "source_id": source_of(item)})
    return records


# ---------------------------------------------------------------------------------------------- Chinese stories

def chinese_story_items() -> list[dict]:
    rng = random.Random(SEED + 1)
    people = load_module(DATA / "chinese" / "make_chinese.py", "minigpt_make_chinese").PEOPLE
    documents = []
    for number, block in enumerate(CHINESE_FILE.read_text(encoding="utf-8").strip().split("\n\n"), start=1):
        title, body = block.split("\n", 1)
        sentences = re.findall(r"[^。！？\n]+[。！？]”?", body)
        documents.append({"number": number, "title": title, "sentences": sentences,
                          "people": {p for p in people if p in block}})

    names_in: dict[str, frozenset[str]] = {}

    def named(sentence: str) -> frozenset[str]:
        if sentence not in names_in:
            names_in[sentence] = frozenset(p for p in people if p in sentence)
        return names_in[sentence]

    every = [(d, w) for d, doc in enumerate(documents) for w in doc["sentences"] if named(w)]

    items = []
    for d, doc in enumerate(documents):
        candidates = []
        for i, target in enumerate(doc["sentences"]):
            context = doc["sentences"][max(0, i - 3):i]
            if i < 2 or not named(target) or not named(target) <= named("".join(context)):
                continue
            pool = sorted({w for o, w in every if o != d and not named(w) & doc["people"]
                           and w not in doc["sentences"]
                           and abs(len(w) - len(target)) <= max(2, round(0.15 * len(target)))})
            if len(pool) >= 3:
                candidates.append((i, "".join(context), target, pool))
        if candidates:
            i, ctx_a, right, pool = rng.choice(candidates)
            items.append({"doc": doc, "sentence": i, "ctx_a": ctx_a, "ctx_b": "", "right": right,
                          "wrong": rng.sample(pool, 3)})
    items = [items[k] for k in sorted(rng.sample(range(len(items)), CHINESE_ITEMS))]
    return hellaswag_records(rng, items, lambda item: "故事",
                             lambda item: f"chinese/heldout.txt#{item['doc']['number']}")


# ---------------------------------------------------------------------------------------------- ARC

def arc_records() -> list[dict]:
    rng = random.Random(SEED + 2)
    entries = list(bank.ARC)
    rng.shuffle(entries)
    pools = {size: balanced_positions(rng, sum(1 + len(w) == size for _, _, w in entries), size) for size in (3, 4, 5)}
    four = [k for k, (_, _, w) in enumerate(entries) if len(w) == 3]
    numeric = set(rng.sample(four, ARC_NUMERIC_LABELS))
    records = []
    for k, (stem, right, wrong) in enumerate(entries):
        size = 1 + len(wrong)
        position = pools[size].pop()
        choices = place(rng, right, wrong, position)
        check_choices(stem, choices)
        labels = "1234" if k in numeric else "ABCDE"[:size]
        records.append({"id": f"MINIGPT_SCI_{k + 1:04d}",
                        "question": {"stem": stem, "choices": [{"text": t, "label": lab}
                                                               for t, lab in zip(choices, labels)]},
                        "answerKey": labels[position]})
    return records


# ---------------------------------------------------------------------------------------------- arithmetic

NAMES_EN = ["Mia", "Omar", "Lena", "Ravi", "Hannah", "Tom", "Aisha", "Leo", "Nora", "Ben", "Yuki", "Sam"]
THINGS_EN = ["marbles", "stickers", "apples", "pencils", "stamps", "shells", "cards", "buttons"]
NAMES_ZH = ["小明", "小红", "小刚", "小丽", "小军", "小芳", "小华", "小兰"]
THINGS_ZH = [("个", "苹果"), ("本", "书"), ("支", "铅笔"), ("张", "邮票"), ("颗", "糖"), ("个", "气球")]


def near_numbers(rng: random.Random, answer: int, extra: tuple[int, ...] = ()) -> list[int]:
    """Three wrong answers close to the right one (off by one, two, ten, or a factor's worth), all positive."""
    candidates = [answer + d for d in (-10, -2, -1, 1, 2, 10)] + list(extra)
    candidates = sorted({c for c in candidates if c > 0 and c != answer})
    return rng.sample(candidates, 3)


def english_arithmetic(rng: random.Random) -> tuple[str, int, list[int]]:
    kind = rng.choice(["sum", "difference", "product", "add_story", "take_story", "groups_story", "share_story"])
    if kind == "sum":
        a, b = rng.randint(12, 89), rng.randint(12, 89)
        return f"What is {a} + {b}?", a + b, near_numbers(rng, a + b)
    if kind == "difference":
        a = rng.randint(30, 99)
        b = rng.randint(11, a - 5)
        return f"What is {a} - {b}?", a - b, near_numbers(rng, a - b)
    if kind == "product":
        a, b = rng.randint(3, 12), rng.randint(3, 12)
        return f"What is {a} × {b}?", a * b, near_numbers(rng, a * b, (a * (b - 1), a * (b + 1)))
    name, thing = rng.choice(NAMES_EN), rng.choice(THINGS_EN)
    if kind == "add_story":
        a, b = rng.randint(8, 40), rng.randint(5, 30)
        return (f"{name} has {a} {thing} and is given {b} more. How many {thing} does {name} have now?", a + b,
                near_numbers(rng, a + b))
    if kind == "take_story":
        a = rng.randint(20, 60)
        b = rng.randint(5, a - 6)
        return (f"{name} had {a} {thing} and gave away {b} of them. How many {thing} are left?", a - b,
                near_numbers(rng, a - b))
    if kind == "groups_story":
        a, b = rng.randint(3, 9), rng.randint(4, 12)
        return (f"{name} fills {a} bags with {b} {thing} in each bag. How many {thing} is that in all?", a * b,
                near_numbers(rng, a * b, (a * (b - 1), (a + 1) * b)))
    a, b = rng.randint(2, 9), rng.randint(3, 12)
    return (f"{name} shares {a * b} {thing} equally among {a} friends. How many {thing} does each friend get?", b,
            near_numbers(rng, b, (b + 3,)))


def chinese_arithmetic(rng: random.Random) -> tuple[str, int, list[int], str]:
    kind = rng.choice(["加", "减", "乘", "除", "方程", "买", "剩"])
    if kind == "加":
        a, b = rng.randint(12, 89), rng.randint(12, 89)
        return f"{a} 加 {b} 等于多少？", a + b, near_numbers(rng, a + b), f"{a} + {b} = {a + b}。"
    if kind == "减":
        a = rng.randint(30, 99)
        b = rng.randint(11, a - 5)
        return f"{a} 减 {b} 等于多少？", a - b, near_numbers(rng, a - b), f"{a} - {b} = {a - b}。"
    if kind == "乘":
        a, b = rng.randint(3, 12), rng.randint(3, 12)
        return (f"{a} 乘 {b} 等于多少？", a * b, near_numbers(rng, a * b, (a * (b - 1), a * (b + 1))),
                f"{a} × {b} = {a * b}。")
    if kind == "除":
        a, b = rng.randint(2, 9), rng.randint(3, 12)
        return (f"{a * b} 除以 {a} 等于多少？", b, near_numbers(rng, b, (b + 3,)), f"{a * b} ÷ {a} = {b}。")
    if kind == "方程":
        x, b = rng.randint(5, 40), rng.randint(3, 30)
        return (f"如果 x + {b} = {x + b}，那么 x 等于多少？", x, near_numbers(rng, x, (x + b,)),
                f"x = {x + b} - {b} = {x}。")
    name = rng.choice(NAMES_ZH)
    unit, thing = rng.choice(THINGS_ZH)
    if kind == "买":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return (f"{name}每天买 {a} {unit}{thing}，{b} 天一共买了多少{unit}？", a * b,
                near_numbers(rng, a * b, (a + b,)), f"{a} × {b} = {a * b}。")
    a = rng.randint(15, 60)
    b = rng.randint(4, a - 6)
    return (f"{name}有 {a} {unit}{thing}，送给同学 {b} {unit}，还剩多少{unit}？", a - b, near_numbers(rng, a - b),
            f"{a} - {b} = {a - b}。")


def unique_generated(rng: random.Random, make, count: int, taken: set[str]) -> list[tuple]:
    """`count` generated questions, none repeating another (or anything in `taken`)."""
    out = []
    while len(out) < count:
        item = make(rng)
        if norm(item[0]) not in taken:
            taken.add(norm(item[0]))
            out.append(item)
    return out


# ---------------------------------------------------------------------------------------------- MMLU and C-Eval

def lettered(rng: random.Random, entries: list[tuple], where: str) -> list[tuple[str, list[str], str, tuple]]:
    """(question, four choices, answer letter, the entry's extra fields) with the letters balanced."""
    out = []
    for entry, position in zip(entries, balanced_positions(rng, len(entries), 4)):
        question, right, wrong, extra = entry[0], entry[1], list(entry[2:5]), tuple(entry[5:])
        choices = place(rng, str(right), [str(w) for w in wrong], position)
        check_choices(f"{where}: {question}", choices)
        out.append((question, choices, "ABCD"[position], extra))
    return out


def mmlu_files(taken: set[str]) -> dict[Path, bytes]:
    rng = random.Random(SEED + 3)
    subjects = {}
    arithmetic = [(q, a, *w) for q, a, w in unique_generated(rng, english_arithmetic, ARITHMETIC_ITEMS, taken)]
    subjects["arithmetic"] = {"dev": arithmetic[:5], "test": arithmetic[5:]}
    for subject, splits in bank.MMLU_EN.items():
        test = list(splits["test"])
        rng.shuffle(test)
        subjects[subject] = {"dev": list(splits["dev"]), "test": test}
    files = {}
    for subject, splits in subjects.items():
        for split, entries in splits.items():
            rows = [[q, *choices, letter] for q, choices, letter, _ in lettered(rng, entries, f"{subject} {split}")]
            files[HERE / "facts_en" / split / f"{subject}_{split}.csv"] = csv_bytes(rows)
    return files


def ceval_files(taken: set[str]) -> dict[Path, bytes]:
    rng = random.Random(SEED + 4)
    subjects = {}
    math = [(q, a, *w, e) for q, a, w, e in unique_generated(rng, chinese_arithmetic, ZH_MATH_ITEMS, taken)]
    subjects["middle_school_mathematics"] = {"dev": math[:5], "val": [m[:5] for m in math[5:]]}
    for subject, splits in bank.CEVAL_ZH.items():
        val = list(splits["val"])
        rng.shuffle(val)
        subjects[subject] = {"dev": list(splits["dev"]), "val": val}
    files = {}
    for subject, splits in subjects.items():
        for split, entries in splits.items():
            rows = [[str(k), q, *choices, letter, *extra]
                    for k, (q, choices, letter, extra) in enumerate(lettered(rng, entries, f"{subject} {split}"))]
            header = ["id", "question", "A", "B", "C", "D", "answer"] + (["explanation"] if split == "dev" else [])
            if any(len(row) != len(header) for row in rows):
                raise ValueError(f"{subject} {split}: every dev entry needs an explanation, no val entry has one")
            files[HERE / "facts_zh" / split / f"{subject}_{split}.csv"] = csv_bytes(rows, header)
    return files


# ---------------------------------------------------------------------------------------------- all files

def build() -> dict[Path, bytes]:
    """Every file this script writes, path -> bytes, after checking that no question text occurs twice."""
    taken: set[str] = set()
    written = [e[0] for e in bank.ARC]
    for splits in list(bank.MMLU_EN.values()) + list(bank.CEVAL_ZH.values()):
        written += [e[0] for entries in splits.values() for e in entries]
    for question in written:
        if norm(question) in taken:
            raise ValueError(f"question written twice in question_bank.py: {question!r}")
        taken.add(norm(question))
    files = {HERE / "stories.jsonl": jsonl(english_story_items()),
             HERE / "chinese_stories.jsonl": jsonl(chinese_story_items()),
             HERE / "science_arc.jsonl": jsonl(arc_records())}
    files.update(mmlu_files(taken))
    files.update(ceval_files(taken))
    return files


def describe(path: Path, data: bytes) -> str:
    lines = data.decode("utf-8").count("\n")
    items = lines - 1 if "facts_zh" in path.parts else lines   # C-Eval files have a header row
    return f"{path.relative_to(DATA.parent)}: {items} items"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build chapter 12's bundled multiple-choice sets (HellaSwag, ARC, "
                                                 "MMLU and C-Eval formats) under data/eval, deterministically.")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 and name every file under data/eval that differs from what this "
                             "script makes (or is missing)")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        bad = [f"{path.relative_to(DATA.parent)} ({'missing' if not path.exists() else 'differs'})"
               for path, data in files.items() if not path.exists() or path.read_bytes() != data]
        if bad:
            print("These files do not match what make_eval_sets.py makes (run it without --check to rewrite "
                  "them):\n  " + "\n  ".join(bad))
            return 1
        print(f"All {len(files)} files under {HERE} match make_eval_sets.py (seed {SEED}).")
        return 0
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
        print(describe(path, data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
