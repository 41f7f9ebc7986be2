"""Chapter 12: multiple-choice tasks — what a question is, how it becomes a prompt, and the files it comes from.

Read in this order:
  1. ChoiceItem, Task           one question (a context, its choices, the right one) and a set of them
  2. letter_block, context_text  how a question is written out for the model, as lm-evaluation-harness writes it
  3. readers                    HellaSwag JSONL, ARC JSONL, MMLU CSV, C-Eval CSV, each as the harness reads it
  4. BUNDLED, load_task         the original sets shipped in data/eval, and one door to any of them (the public
                                sets are fetched and unpacked by minigpt/task_downloads.py, tooling beside this)

Two kinds of task (the names the common harnesses use):
  completion  the choices are continuations of the context (HellaSwag, ARC): the model scores each ending's
              log-likelihood given the context, and the likeliest ending is its answer
  letter      the choices are listed under the question with letters (MMLU, C-Eval): the model reads the whole
              list and its next-token logits for " A", " B", ... decide

What it does not do: no generation tasks (minigpt/metrics.py scores generated answers), no chain-of-thought prompts,
no task configuration files: a task is a Python object built by a reader.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from minigpt.files import InputError

LETTERS = "ABCDEFGHIJ"


# ------------------------------------------------------------------------------------------ 1. items and tasks

@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice question.

    query: completion tasks: the context the choices continue; letter tasks: the question alone
    choices: the endings (completion) or the options' texts without their letters (letter)
    answer: index of the right choice; None when the split has no public answers (such a split is refused
            for scoring)
    subject: the MMLU/C-Eval subject ("high_school_physics", "computer_network"), "" when there is none
    source: "file:line" of the item, for messages
    """
    query: str
    choices: tuple[str, ...]
    answer: int | None
    subject: str = ""
    source: str = ""


@dataclass
class Task:
    """A named set of items of one kind, with the dev items that k-shot prompts draw from (letter tasks).

    delimiter: what goes between the context and a choice (" " for every task here, as in the harness)
    answer_cue: the line that ends a letter prompt ("Answer:"; C-Eval's "答案：")
    description: a letter prompt's first line, with {subject} filled in (MMLU: "The following are multiple choice
                 questions (with answers) about {subject}.\\n\\n"); "" for none
    subject_names: how the description names a subject key, where it is not the key with spaces (C-Eval's
                   Chinese names: "computer_network" -> "计算机网络"); empty for MMLU
    chance: the accuracy of guessing uniformly (mean of 1/len(choices) over the items)
    """
    name: str
    kind: Literal["completion", "letter"]
    items: list[ChoiceItem]
    shots: list[ChoiceItem] = field(default_factory=list)
    language: str = "en"
    delimiter: str = " "
    answer_cue: str = "Answer:"
    description: str = ""
    subject_names: dict[str, str] = field(default_factory=dict)

    @property
    def chance(self) -> float:
        return chance(self.items)


def chance(items: Sequence[ChoiceItem]) -> float:
    """The accuracy of guessing uniformly: the mean of 1/len(choices) over the items (0 for none)."""
    return sum(1 / len(item.choices) for item in items) / len(items) if items else 0.0


# ------------------------------------------------------------------------------------------ 2. prompts

def subject_name(subject: str, names: dict[str, str] | None = None) -> str:
    """ "high_school_physics" -> "high school physics", as the description line says it; `names` first, if given
    ("middle_school_mathematics" -> "初中数学" for C-Eval)."""
    if names and subject in names:
        return names[subject]
    return subject.replace("_", " ")


def letter_block(item: ChoiceItem, task: Task, with_answer: bool = False) -> str:
    """The question, its lettered options and the answer cue; with the right letter after it for a shot:

        Which gas do plants take in?
        A. oxygen
        B. carbon dioxide
        Answer: B
    """
    lines = [item.query.strip()] + [f"{LETTERS[i]}. {text}" for i, text in enumerate(item.choices)]
    block = "\n".join(lines + [task.answer_cue])
    return block + task.delimiter + LETTERS[item.answer] if with_answer else block


def shot_text(item: ChoiceItem, task: Task) -> str:
    """One solved example for a k-shot prompt: a letter block with its answer, or a context and its ending."""
    if task.kind == "letter":
        return letter_block(item, task, with_answer=True)
    return item.query + task.delimiter + item.choices[item.answer]


def context_text(item: ChoiceItem, task: Task, shots: tuple[ChoiceItem, ...] | list[ChoiceItem] = ()) -> str:
    """Everything before the choice: the description, the solved shots (blank-line separated), the question."""
    head = task.description.format(subject=subject_name(item.subject, task.subject_names)) if task.description else ""
    question = letter_block(item, task) if task.kind == "letter" else item.query
    return head + "\n\n".join([shot_text(s, task) for s in shots] + [question])


def continuations(item: ChoiceItem, task: Task) -> list[str]:
    """What is scored after the context: " A", " B", ... for a letter task, " " + each ending for a completion."""
    if task.kind == "letter":
        return [task.delimiter + LETTERS[i] for i in range(len(item.choices))]
    return [task.delimiter + choice for choice in item.choices]


def shots_for(item: ChoiceItem, task: Task, k: int) -> list[ChoiceItem]:
    """The first k dev items of the item's subject (all dev items when none share it), never the item itself.

    "First k" as the harness's default sampler for MMLU and C-Eval: the same shots for every question of a
    subject, so results do not depend on a random draw.
    """
    if k <= 0 or not task.shots:
        return []
    same = [s for s in task.shots if s.subject == item.subject and s != item]
    pool = same or [s for s in task.shots if s != item]
    return pool[:k]


# ------------------------------------------------------------------------------------------ 3. readers
#
# Each reader follows its dataset's own file format and lm-evaluation-harness's definition of the task (its
# hellaswag, arc_easy/arc_challenge, mmlu and ceval-valid configurations), so that a score here means what a score
# there means. A file that is not in the format stops with one line naming file:line and what was expected. A split
# whose answers are not public is read (answer None) and refused only for scoring, by require_answers.

SPLITS = ("dev", "val", "test")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _existing_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"{path} {'is a folder' if path.is_dir() else 'does not exist'}; expected {what}")
    return path


def _jsonl_objects(path: Path, example: str) -> Iterator[tuple[str, dict]]:
    """("file:line", object) for each non-blank line of a JSON Lines file; a byte-order mark on line 1 is allowed."""
    count = 0
    with open(_existing_file(path, f"a JSON Lines file, one object per line like {example}"), "rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8").removeprefix("\ufeff" if number == 1 else "")
            except UnicodeDecodeError as e:
                raise InputError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8") \
                    from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: not valid JSON ({e.msg}, column {e.colno}); expected one object per line "
                                 f"like {example}") from None
            if not isinstance(record, dict):
                raise InputError(f"{where}: expected a JSON object like {example}, got {type(record).__name__}")
            count += 1
            yield where, record
    if count == 0:
        raise InputError(f"{path} holds no questions; expected one JSON object per line like {example}")


def _field(record: dict, key: str, where: str, expected: str, shown: str = "") -> object:
    if key not in record:
        raise InputError(f"{where}: missing field {shown or key!r}; {expected}")
    return record[key]


def _string(record: dict, key: str, where: str, expected: str, shown: str = "") -> str:
    value = _field(record, key, where, expected, shown)
    if not isinstance(value, str):
        raise InputError(f"{where}: field {shown or key!r} must be a string, got {type(value).__name__}; {expected}")
    return value


HELLASWAG_EXAMPLE = '{"activity_label": ..., "ctx_a": ..., "ctx_b": ..., "endings": [4 strings], "label": 0}'
HELLASWAG_FIELDS = "a HellaSwag line has activity_label, ctx_a, ctx_b (strings), endings (a list) and label (0-3)"


def hellaswag_preprocess(text: str) -> str:
    """The harness's clean-up of HellaSwag text. The WikiHow part carries markers: " [title]" becomes a sentence
    break, any other bracketed marker ("[header]", "[step]") goes, and a double space left behind becomes one
    (in one pass, as the harness does it: three spaces become two)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)   # shortest bracketed runs, so "[a] text [b]" keeps its text
    return text.replace("  ", " ")


def _hellaswag_label(value: object, count: int, where: str) -> int | None:
    if value is None or value == "":
        return None   # the test split: its labels are not public
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if text not in {str(i) for i in range(count)}:
        raise InputError(f"{where}: field 'label' must be the index of the right ending, 0 to {count - 1} (a number "
                         f"or a numeric string), got {_short(value)}")
    return int(text)


def read_hellaswag(path: str | os.PathLike) -> Task:
    """A HellaSwag JSONL file (hellaswag_val.jsonl) as a completion task: each context with its four endings.

    As the harness: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()) and choices =
    the preprocessed endings (hellaswag_preprocess). str.capitalize also lower-cases the rest of ctx_b; the harness
    does that, so the queries here do too. label is an int or a numeric string; a line without one (the test split)
    gets answer None.
    """
    path = Path(path)
    items = []
    for where, record in _jsonl_objects(path, HELLASWAG_EXAMPLE):
        activity, ctx_a, ctx_b = (_string(record, key, where, HELLASWAG_FIELDS)
                                  for key in ("activity_label", "ctx_a", "ctx_b"))
        endings = _field(record, "endings", where, HELLASWAG_FIELDS)
        if not isinstance(endings, list) or len(endings) < 2 or \
                not all(isinstance(e, str) and e.strip() for e in endings):
            raise InputError(f"{where}: field 'endings' must be a list of at least two non-empty strings (HellaSwag "
                             f"has four), got {_short(endings)}")
        choices = tuple(hellaswag_preprocess(e) for e in endings)
        query = hellaswag_preprocess(f"{activity}: {ctx_a} {ctx_b.capitalize()}")
        items.append(ChoiceItem(query, choices, _hellaswag_label(record.get("label"), len(choices), where),
                                source=where))
    return Task("hellaswag", "completion", items)


ARC_EXAMPLE = '{"id": ..., "question": {"stem": ..., "choices": [{"text": ..., "label": "A"}, ...]}, "answerKey": "A"}'
ARC_FIELDS = ('an ARC line has "question": {"stem": text, "choices": [{"text", "label"}, ...]} and "answerKey" '
              '(one of the labels)')


def read_arc(path: str | os.PathLike) -> Task:
    """An ARC JSONL file (ARC-Easy-Test.jsonl, ARC-Challenge-Test.jsonl, ...) as a completion task: the query
    "Question: {stem}\\nAnswer:" continued by each choice's text, as the harness's arc_easy and arc_challenge.

    Questions have 3 to 5 choices, labelled "A".."E" or (some of them) "1".."5"; the answer is the position of
    answerKey among the labels, so either kind works. A line without answerKey gets answer None.
    """
    path = Path(path)
    items = []
    for where, record in _jsonl_objects(path, ARC_EXAMPLE):
        question = _field(record, "question", where, ARC_FIELDS)
        if not isinstance(question, dict):
            raise InputError(f"{where}: field 'question' must be an object, got {type(question).__name__}; "
                             f"{ARC_FIELDS}")
        stem = _string(question, "stem", where, ARC_FIELDS, "question.stem")
        choices = _field(question, "choices", where, ARC_FIELDS, "question.choices")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, dict) for c in choices):
            raise InputError(f"{where}: field 'question.choices' must list at least two {{\"text\", \"label\"}} "
                             f"objects (ARC has 3 to 5), got {_short(choices)}")
        texts = tuple(_string(c, "text", where, ARC_FIELDS, "question.choices[].text") for c in choices)
        labels = [_string(c, "label", where, ARC_FIELDS, "question.choices[].label") for c in choices]
        if not all(text.strip() for text in texts):
            raise InputError(f"{where}: a choice's text is empty; every choice must say something to be scored")
        if len(set(labels)) != len(labels):
            raise InputError(f"{where}: the choices' labels repeat ({', '.join(labels)}); each needs its own")
        key = record.get("answerKey")
        if key is None or key == "":
            answer = None
        elif key in labels:
            answer = labels.index(key)
        else:
            raise InputError(f"{where}: answerKey {_short(key)} is not one of the choices' labels "
                             f"({', '.join(labels)})")
        items.append(ChoiceItem(f"Question: {stem}\nAnswer:", texts, answer, source=where))
    return Task("arc", "completion", items)


def _csv_rows(path: Path, what: str) -> Iterator[tuple[str, list[str]]]:
    """("file:line", fields) for each record of a CSV file, `line` being where the record starts (a quoted field
    may hold commas, doubled quotes and line breaks, so a record can span lines). Blank lines are skipped."""
    raw = _existing_file(path, what).read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text ({e.reason}); save the file as UTF-8") from None
    # strict: a stray character after a closing quote or a quote left open is an error, not a silently merged field
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(f"{path}:{start}: not valid CSV ({e}); expected {what}") from None
        where, start = f"{path}:{start}", reader.line_num + 1
        if row:
            yield where, row


_SPLIT_FILE = re.compile(r"(?P<subject>.+)_(?P<split>dev|val|test)\.csv")


def _subject_and_split(path: Path, layout: str) -> tuple[str, str]:
    match = _SPLIT_FILE.fullmatch(path.name)
    if not match:
        raise InputError(f"{path}: the file name must be {{subject}}_{{split}}.csv, split dev, val or test (like "
                         f"astronomy_test.csv): the subject comes from it; expected {layout}")
    return match["subject"], match["split"]


def _letter_item(question: str, options: list[str], answer: str, subject: str, where: str,
                 answer_optional: bool) -> ChoiceItem:
    letters = LETTERS[:len(options)]
    if not question.strip():
        raise InputError(f"{where}: the question is empty")
    if answer == "" and answer_optional:
        index = None   # a split whose answers are not public
    elif len(answer) == 1 and answer in letters:
        index = letters.index(answer)
    else:
        raise InputError(f"{where}: the answer must be one of the letters {', '.join(letters)}, got {_short(answer)}")
    return ChoiceItem(question, tuple(options), index, subject, where)


def _split_files(root: Path, split: str) -> list[Path]:
    """The {subject}_{split}.csv files of an unpacked folder: in root/split/, or one level down (MMLU's data.tar
    unpacks to data/dev, data/val, data/test)."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    for folder in [root / split] + [child / split for child in sorted(root.iterdir()) if child.is_dir()]:
        files = sorted(folder.glob(f"*_{split}.csv"))
        if files:
            return files
    return []


def _read_letter_files(path: Path, split: str, read_file: Callable[[Path], list[ChoiceItem]],
                       layout: str) -> tuple[list[ChoiceItem], list[ChoiceItem]]:
    """(items, shots) from one {subject}_{split}.csv file or a folder of them; the shots are the dev split's."""
    if path.is_file():
        subject, file_split = _subject_and_split(path, layout)
        items = read_file(path)
        dev = path.parent.parent / "dev" / f"{subject}_dev.csv"   # the subject's dev file, where there is one
        shots = items if file_split == "dev" else read_file(dev) if dev.is_file() else []
    elif path.is_dir():
        files = _split_files(path, split)
        if not files:
            raise InputError(f"{path} has no {split} files ({split}/{{subject}}_{split}.csv); expected {layout}")
        items = [item for file in files for item in read_file(file)]
        shots = items if split == "dev" else [item for file in _split_files(path, "dev") for item in read_file(file)]
    else:
        raise InputError(f"{path} does not exist; expected {layout}")
    unanswered = next((shot for shot in shots if shot.answer is None), None)
    if unanswered is not None:
        raise InputError(f"{unanswered.source}: a dev question has no answer, but the shots of a prompt show theirs")
    return items, shots


MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}.\n\n"
MMLU_COLUMNS = "six fields, no header: question, A, B, C, D, answer letter"
MMLU_LAYOUT = ("MMLU's unpacked folder (dev/, val/ and test/ holding {subject}_{split}.csv files; data.tar unpacks "
               "to data/) or one of those CSV files")


def _mmlu_items(path: Path) -> list[ChoiceItem]:
    subject, _ = _subject_and_split(path, MMLU_LAYOUT)
    items = []
    for where, row in _csv_rows(path, f"MMLU CSV rows of {MMLU_COLUMNS}"):
        if len(row) != 6:
            raise InputError(f"{where}: {len(row)} fields, expected {MMLU_COLUMNS}")
        question, *options, answer = row
        items.append(_letter_item(question, options, answer.strip(), subject, where, answer_optional=False))
    if not items:
        raise InputError(f"{path} holds no questions; expected CSV rows of {MMLU_COLUMNS}")
    return items


def read_mmlu(path: str | os.PathLike, split: str = "test") -> Task:
    """MMLU (the CSV release) as a letter task, as the harness's mmlu_{subject} tasks.

    path: one {subject}_{split}.csv file (the subject comes from its name; it is its own split, and the same
          subject's dev file beside it, ../dev/{subject}_dev.csv, gives the shots if present) or the unpacked
          folder, whose `split` files are read, every subject, with the dev files as shots.
    Each prompt opens with "The following are multiple choice questions (with answers) about {subject}.", the
    subject's underscores as spaces, and ends with "Answer:".
    """
    items, shots = _read_letter_files(Path(path), split, _mmlu_items, MMLU_LAYOUT)
    return Task("mmlu", "letter", items, shots, description=MMLU_DESCRIPTION)


CEVAL_DESCRIPTION = "以下是中国关于{subject}的单项选择题，请选出其中的正确答案。\n\n"
CEVAL_HEADER = "id,question,A,B,C,D,answer"   # dev files add explanation; test files leave answer empty, or out
CEVAL_LAYOUT = ("C-Eval's unpacked folder (dev/, val/ and test/ holding {subject}_{split}.csv files with the header "
                f"{CEVAL_HEADER}) or one of those CSV files")
# C-Eval's 52 subjects: the file-name key and the Chinese name its prompts use (the harness's ceval-valid table).
CEVAL_SUBJECTS = {
    "computer_network": "计算机网络", "operating_system": "操作系统", "computer_architecture": "计算机组成",
    "college_programming": "大学编程", "college_physics": "大学物理", "college_chemistry": "大学化学",
    "advanced_mathematics": "高等数学", "probability_and_statistics": "概率统计", "discrete_mathematics": "离散数学",
    "electrical_engineer": "注册电气工程师", "metrology_engineer": "注册计量师",
    "high_school_mathematics": "高中数学", "high_school_physics": "高中物理", "high_school_chemistry": "高中化学",
    "high_school_biology": "高中生物", "middle_school_mathematics": "初中数学", "middle_school_biology": "初中生物",
    "middle_school_physics": "初中物理", "middle_school_chemistry": "初中化学", "veterinary_medicine": "兽医学",
    "college_economics": "大学经济学", "business_administration": "工商管理", "marxism": "马克思主义基本原理",
    "mao_zedong_thought": "毛泽东思想和中国特色社会主义理论体系概论", "education_science": "教育学",
    "teacher_qualification": "教师资格", "high_school_politics": "高中政治", "high_school_geography": "高中地理",
    "middle_school_politics": "初中政治", "middle_school_geography": "初中地理",
    "modern_chinese_history": "近代史纲要", "ideological_and_moral_cultivation": "思想道德修养与法律基础",
    "logic": "逻辑学", "law": "法学", "chinese_language_and_literature": "中国语言文学", "art_studies": "艺术学",
    "professional_tour_guide": "导游资格", "legal_professional": "法律职业资格", "high_school_chinese": "高中语文",
    "high_school_history": "高中历史", "middle_school_history": "初中历史",
    "civil_servant": "公务员", "sports_science": "体育学", "plant_protection": "植物保护", "basic_medicine": "基础医学",
    "clinical_medicine": "临床医学", "urban_and_rural_planner": "注册城乡规划师", "accountant": "注册会计师",
    "fire_engineer": "注册消防工程师", "environmental_impact_assessment_engineer": "环境影响评价工程师",
    "tax_accountant": "税务师", "physician": "医师资格",
}


def _ceval_items(path: Path) -> list[ChoiceItem]:
    subject, _ = _subject_and_split(path, CEVAL_LAYOUT)
    rows = _csv_rows(path, f"a C-Eval CSV file: the header {CEVAL_HEADER}, then one row per question")
    first = next(rows, None)
    if first is None:
        raise InputError(f"{path} is empty; expected the header {CEVAL_HEADER} and one row per question")
    where, header = first
    header = [name.strip() for name in header]
    lacking = [name for name in ("question", "A", "B", "C", "D") if name not in header]
    if lacking:
        raise InputError(f"{where}: the header {_short(','.join(header))} lacks {', '.join(lacking)}; expected "
                         f"{CEVAL_HEADER} (dev files add explanation)")
    items = []
    for where, row in rows:
        if len(row) != len(header):
            raise InputError(f"{where}: {len(row)} fields, but the header has {len(header)} ({','.join(header)})")
        record = dict(zip(header, row))
        items.append(_letter_item(record["question"], [record[c] for c in "ABCD"], record.get("answer", "").strip(),
                                  subject, where, answer_optional=True))
    if not items:
        raise InputError(f"{path} holds the header but no questions")
    return items


def read_ceval(path: str | os.PathLike, split: str = "val") -> Task:
    """C-Eval (the CSV release) as a letter task, as the harness's ceval-valid_{subject} tasks.

    path: one {subject}_{split}.csv file or the unpacked folder (see read_mmlu; the dev files give the shots).
    The prompt opens with "以下是中国关于{subject}的单项选择题，请选出其中的正确答案。", the subject in Chinese
    (CEVAL_SUBJECTS), and ends with "答案："; the answer letter follows after a space, as in the harness. The test
    split's answers are not public: it reads with answer None and is refused for scoring.
    """
    items, shots = _read_letter_files(Path(path), split, _ceval_items, CEVAL_LAYOUT)
    return Task("ceval", "letter", items, shots, language="zh", answer_cue="答案：", description=CEVAL_DESCRIPTION,
                subject_names=dict(CEVAL_SUBJECTS))


_NO_PUBLIC_ANSWERS = {
    "ceval": "C-Eval's test answers are not public: score the val split (--split val)",
    "hellaswag": "HellaSwag's test labels are not public: score the validation file (hellaswag_val.jsonl)",
}


def require_answers(task: Task) -> Task:
    """`task` itself if every item has its answer; otherwise InputError naming the first item without one."""
    missing = [item for item in task.items if item.answer is None]
    if missing:
        hint = _NO_PUBLIC_ANSWERS.get(task.name, "scoring needs a split whose answers are given")
        raise InputError(f"{missing[0].source}: {len(missing)} of {len(task.items)} questions of {task.name} have no "
                         f"answer, so they cannot be scored; {hint}")
    return task


# ------------------------------------------------------------------------------------------ 4. BUNDLED, load_task

# data/eval of the repository this package sits in, found the way minigpt/tokenizer.py finds data/gpt2.tiktoken.
REPO_ROOT = Path(__file__).resolve().parent.parent
EVAL_DATA_DIR = REPO_ROOT / "data" / "eval"

# The original sets shipped with the book, each in a public benchmark's format: name -> (reader, path in data/eval).
BUNDLED: dict[str, tuple[Callable[..., Task], str]] = {
    "stories": (read_hellaswag, "stories.jsonl"),                  # endings that continue bundled stories
    "chinese-stories": (read_hellaswag, "chinese_stories.jsonl"),
    "science": (read_arc, "science_arc.jsonl"),                    # 3 to 5 choices, some labelled 1-5
    "facts-en": (read_mmlu, "facts_en"),                           # dev/ and test/
    "facts-zh": (read_ceval, "facts_zh"),                          # dev/ and val/
}
BUNDLED_LANGUAGES = {"chinese-stories": "zh", "facts-zh": "zh"}   # the others are English
# The public benchmarks, downloaded on first use (or read from --data PATH).
PUBLIC = ("hellaswag", "arc-easy", "arc-challenge", "mmlu", "ceval")


def task_names() -> list[str]:
    return [*BUNDLED, *PUBLIC]


def load_task(name: str, data: str | os.PathLike | None = None, split: str | None = None,
              limit: int | None = None, *, scoring: bool = True) -> Task:
    """The task called `name`, one of task_names(): a bundled set or a public benchmark.

    data: a local file or folder to read instead; nothing is downloaded then. For a public benchmark: its file,
          the archive as downloaded (data.tar, ceval-exam.zip, ARC-V1-Feb2018.zip) or the folder it unpacks to.
          Without it the public sets are downloaded once into the cache (minigpt/task_downloads.py).
    split: for the MMLU and C-Eval layouts dev, val or test; for ARC train, dev or test. The default is the split
           the harness scores: test for MMLU and ARC, val for C-Eval (HellaSwag: its validation file).
    limit: keep only the first `limit` questions (the shots stay whole).
    scoring: refuse a split without answers (require_answers); False reads one anyway.
    """
    if name in BUNDLED:
        task = _bundled_task(name, data, split)
    elif name in PUBLIC:
        task = _public_task(name, data, split)
    else:
        raise InputError(f"unknown task {name!r}; expected one of {', '.join(task_names())}")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise InputError(f"limit must be a positive number of questions, got {limit!r}")
        task.items = task.items[:limit]
    return require_answers(task) if scoring else task


def _bundled_task(name: str, data: str | os.PathLike | None, split: str | None) -> Task:
    reader, relative = BUNDLED[name]
    path = EVAL_DATA_DIR / relative if data is None else Path(data)
    if data is None and not path.exists():
        raise InputError(f"the bundled task {name!r} needs {path}, which is missing (looked in {EVAL_DATA_DIR}, the "
                         f"data/eval folder of the repository minigpt was imported from); restore it (git checkout "
                         f"-- data/eval) or pass a copy with --data PATH")
    if split is None:
        task = reader(path)
    elif reader in (read_mmlu, read_ceval):
        task = reader(path, split)
    else:
        raise InputError(f"{name} is one file ({path}), with no splits to choose; leave out --split")
    task.name, task.language = name, BUNDLED_LANGUAGES.get(name, "en")
    return task


def _public_task(name: str, data: str | os.PathLike | None, split: str | None) -> Task:
    from minigpt import task_downloads   # tooling: urllib, archives and the cache, needed only here

    if name == "hellaswag":
        if split not in (None, "val"):
            raise InputError(f"hellaswag is scored on its validation file (the test labels are not public), so "
                             f"--split {split} does not apply; pass another HellaSwag file with --data PATH")
        task = read_hellaswag(task_downloads.hellaswag_path(data))
    elif name == "mmlu":
        task = read_mmlu(task_downloads.mmlu_path(data), split or "test")
    elif name == "ceval":
        task = read_ceval(task_downloads.ceval_path(data), split or "val")
    else:
        task = read_arc(task_downloads.arc_path(name, split or "test", data))
    task.name = name
    return task
