"""Chapter 12's test file: multiple-choice tasks read from the public benchmarks' formats (minigpt/tasks.py), their
downloads (minigpt/task_downloads.py), BLEU (minigpt/metrics.py), and scoring (minigpt/evaluate.py): log-likelihoods
against transformers' GPT-2 on the same weights, sliding-window perplexity against a token-by-token loop, k-shot
prompts, the harness's accuracy rules, Wilson intervals against their definition, the pairwise judge.

References are independent of the code under test: every expected query, prompt and answer index below is written
out by hand from the datasets' formats and lm-evaluation-harness's task definitions; the CSV files are written as
raw text with their quoting done by hand, not with the csv module the readers use; archives are built with the
standard library's zipfile and tarfile. BLEU is compared with sacrebleu, which is a test requirement
(requirements.txt), imported normally so that a missing copy fails loudly instead of skipping.
"""
import io
import json
import math
import random
import statistics
import tarfile
import threading
import urllib.error
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch
import transformers
from hypothesis import given, strategies as st
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

from minigpt import task_downloads
from minigpt.files import InputError
from minigpt.tokenizer import gpt2_tiktoken_encoding
from tests._impl import load_impl

tasks = load_impl("minigpt.tasks")
metrics = load_impl("minigpt.metrics")
evaluate = load_impl("minigpt.evaluate")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))   # bytes: the line endings are exactly the ones written here
    return path


def jsonl(path: Path, records: list) -> Path:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def hellaswag_record(label=0, **fields) -> dict:
    record = {"ind": 1, "activity_label": "Baking cookies", "ctx_a": "A woman pours flour into a bowl.",
              "ctx_b": "she", "endings": ["stirs in two eggs.", "paints the bowl.", "sings to the oven.",
                                          "drives away."], "source_id": "made-up", "split": "val",
              "split_type": "indomain", "label": label}
    record.update(fields)
    return record


def arc_record(stem="Which gas do plants take in?", texts=("oxygen", "carbon dioxide", "helium", "neon"),
               labels="ABCD", key="B") -> dict:
    record = {"id": "made-up-1", "question": {"stem": stem, "choices": [{"text": t, "label": lab}
                                                                         for t, lab in zip(texts, labels)]}}
    if key is not None:
        record["answerKey"] = key
    return record


# ------------------------------------------------------------------------------------------ HellaSwag

def test_hellaswag_query_and_endings_as_the_harness_builds_them(tmp_path):
    path = jsonl(tmp_path / "hellaswag_val.jsonl", [
        hellaswag_record(label="2", ctx_b="she Mixes"),   # a numeric string; capitalize() lower-cases the rest
        hellaswag_record(label=0, activity_label="Personal Care and Style", ctx_b="",
                         ctx_a="[header] How to braid hair [title] Brush your hair first. [step] Tangles make "
                               "braids uneven.",
                         endings=["[substeps] Part it  in the middle.", "  Cut it all off. ", "Dye it [blue].",
                                  "Go   to sleep."]),
    ])
    task = tasks.read_hellaswag(path)
    assert (task.name, task.kind, task.shots) == ("hellaswag", "completion", [])
    first, second = task.items
    assert first.query == "Baking cookies: A woman pours flour into a bowl. She mixes"
    assert first.choices == ("stirs in two eggs.", "paints the bowl.", "sings to the oven.", "drives away.")
    assert (first.answer, first.source) == (2, f"{path}:1")
    # Worked by hand: strip; " [title]" -> ". "; every [...] removed; each double space once made single. The
    # bracket removal comes after the strip, so "[substeps] Part..." keeps the space that followed the marker.
    assert second.query == ("Personal Care and Style: How to braid hair. Brush your hair first. Tangles make braids "
                            "uneven.")
    assert second.choices == (" Part it in the middle.", "Cut it all off.", "Dye it .", "Go  to sleep.")
    assert second.answer == 0
    assert tasks.context_text(first, task) == first.query
    assert tasks.continuations(first, task) == [" stirs in two eggs.", " paints the bowl.", " sings to the oven.",
                                                " drives away."]


def test_hellaswag_test_split_without_labels_is_read_but_refused_for_scoring(tmp_path):
    unlabelled = hellaswag_record()
    del unlabelled["label"]
    path = jsonl(tmp_path / "hellaswag_test.jsonl", [unlabelled, hellaswag_record(label="")])
    task = tasks.read_hellaswag(path)
    assert [item.answer for item in task.items] == [None, None]
    with pytest.raises(InputError) as error:
        tasks.require_answers(task)
    message = str(error.value)
    assert message.startswith(f"{path}:1:") and "hellaswag_val.jsonl" in message and "\n" not in message


# ------------------------------------------------------------------------------------------ ARC

def test_arc_letters_numbers_three_and_five_choices(tmp_path):
    path = jsonl(tmp_path / "ARC-Easy-Test.jsonl", [
        arc_record(),
        arc_record("How many legs has a spider?", ("six", "eight", "ten"), ["1", "2", "3"], key="2"),
        arc_record("Which is a planet?", ("Moon", "Sun", "Io", "Ceres", "Mars"), "ABCDE", key="E"),
        arc_record(key=None),
    ])
    task = tasks.read_arc(path)
    assert (task.name, task.kind) == ("arc", "completion")
    assert [item.answer for item in task.items] == [1, 1, 4, None]
    assert task.items[0].query == "Question: Which gas do plants take in?\nAnswer:"
    assert task.items[1].choices == ("six", "eight", "ten")
    assert task.items[2].source == f"{path}:3"
    assert task.chance == pytest.approx((1 / 4 + 1 / 3 + 1 / 5 + 1 / 4) / 4)
    assert tasks.continuations(task.items[1], task) == [" six", " eight", " ten"]


# ------------------------------------------------------------------------------------------ MMLU

# Raw CSV, quoted by hand: a question spanning two lines, commas and doubled quotes inside fields, a CRLF ending.
PHYSICS_TEST = ('"A ball is dropped.\nWhat happens?",It rises,It falls,"It floats, forever",It stops,B\r\n'
                '"What is 1,000 + 2,000?","3,000","30,00",300,"3"",000",A\n')
PHYSICS_DEV = ("Which unit measures force?,joule,watt,newton,pascal,C\n"
               "What falls faster in a vacuum?,a feather,a stone,neither,both,C\n")
ASTRONOMY_TEST = "What is the Sun?,a planet,a star,a moon,a comet,B\n"
ASTRONOMY_DEV = "Which planet is largest?,Mars,Earth,Jupiter,Venus,C\n"


def mmlu_folder(root: Path) -> Path:
    write(root / "data" / "test" / "high_school_physics_test.csv", PHYSICS_TEST)
    write(root / "data" / "dev" / "high_school_physics_dev.csv", PHYSICS_DEV)
    write(root / "data" / "test" / "astronomy_test.csv", ASTRONOMY_TEST)
    write(root / "data" / "dev" / "astronomy_dev.csv", ASTRONOMY_DEV)
    return root


def test_mmlu_folder_with_quoted_fields_subjects_and_dev_shots(tmp_path):
    root = mmlu_folder(tmp_path / "mmlu")
    task = tasks.read_mmlu(root)   # the folder above data/, as data.tar unpacks
    assert (task.name, task.kind, task.answer_cue) == ("mmlu", "letter", "Answer:")
    assert [(i.subject, i.answer) for i in task.items] == [("astronomy", 1), ("high_school_physics", 1),
                                                           ("high_school_physics", 0)]
    ball, sums = task.items[1:]
    assert ball.query == "A ball is dropped.\nWhat happens?"
    assert ball.choices == ("It rises", "It falls", "It floats, forever", "It stops")
    assert sums.choices == ("3,000", "30,00", "300", '3",000')
    physics = root / "data" / "test" / "high_school_physics_test.csv"
    assert (ball.source, sums.source) == (f"{physics}:1", f"{physics}:3")   # where each record starts
    assert [s.subject for s in task.shots] == ["astronomy", "high_school_physics", "high_school_physics"]

    shots = tasks.shots_for(ball, task, 1)
    assert tasks.context_text(ball, task, shots) == (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "Which unit measures force?\nA. joule\nB. watt\nC. newton\nD. pascal\nAnswer: C\n\n"
        "A ball is dropped.\nWhat happens?\nA. It rises\nB. It falls\nC. It floats, forever\nD. It stops\nAnswer:")
    assert tasks.continuations(ball, task) == [" A", " B", " C", " D"]


def test_mmlu_single_file_takes_its_subject_from_the_name_and_shots_from_dev_beside_it(tmp_path):
    root = mmlu_folder(tmp_path / "mmlu")
    task = tasks.read_mmlu(root / "data" / "test" / "astronomy_test.csv")
    assert [(i.subject, i.query) for i in task.items] == [("astronomy", "What is the Sun?")]
    assert [s.query for s in task.shots] == ["Which planet is largest?"]
    dev = tasks.read_mmlu(root / "data", split="dev")
    assert len(dev.items) == 3 and dev.shots == dev.items
    with pytest.raises(InputError, match="unknown split 'train'"):
        tasks.read_mmlu(root, split="train")
    with pytest.raises(InputError, match="has no val files"):
        tasks.read_mmlu(root, split="val")


# ------------------------------------------------------------------------------------------ C-Eval

CEVAL_DEV = ("id,question,A,B,C,D,answer,explanation\n"
             '0,1+1等于几？,1,2,3,4,B,"1. 一加一得二，所以选B"\n'
             "1,3×3等于几？,6,12,9,3,C,九\n"
             "2,10的一半是多少？,2,5,8,10,B,五\n")
CEVAL_VAL = "id,question,A,B,C,D,answer\n0,2的平方是多少？,2,4,6,8,B\n"
CEVAL_TEST = "id,question,A,B,C,D,answer\n0,5-3等于几？,1,2,3,4,\n"


def ceval_folder(root: Path) -> Path:
    write(root / "dev" / "middle_school_mathematics_dev.csv", CEVAL_DEV)
    write(root / "val" / "middle_school_mathematics_val.csv", CEVAL_VAL)
    write(root / "test" / "middle_school_mathematics_test.csv", CEVAL_TEST)
    write(root / "test" / "logic_test.csv", "id,question,A,B,C,D\n0,如果下雨地会湿吗？,会,不会,不一定,无关\n")
    return root


def test_ceval_two_shot_prompt_with_the_chinese_description(tmp_path):
    task = tasks.read_ceval(ceval_folder(tmp_path / "ceval"))   # default split: val
    assert (task.name, task.kind, task.language, task.answer_cue, task.delimiter) == \
        ("ceval", "letter", "zh", "答案：", " ")
    item, = task.items
    assert (item.subject, item.answer, len(task.shots)) == ("middle_school_mathematics", 1, 3)
    prompt = tasks.context_text(item, task, tasks.shots_for(item, task, 2))
    assert prompt == (
        "以下是中国关于初中数学的单项选择题，请选出其中的正确答案。\n\n"
        "1+1等于几？\nA. 1\nB. 2\nC. 3\nD. 4\n答案： B\n\n"
        "3×3等于几？\nA. 6\nB. 12\nC. 9\nD. 3\n答案： C\n\n"
        "2的平方是多少？\nA. 2\nB. 4\nC. 6\nD. 8\n答案：")
    assert tasks.continuations(item, task) == [" A", " B", " C", " D"]


def test_ceval_subject_table_has_the_52_subjects():
    assert len(tasks.CEVAL_SUBJECTS) == 52
    assert tasks.CEVAL_SUBJECTS["computer_network"] == "计算机网络"
    assert tasks.CEVAL_SUBJECTS["chinese_language_and_literature"] == "中国语言文学"
    # MMLU's descriptions are unchanged by the table: C-Eval's names apply only to tasks that carry them
    assert tasks.subject_name("computer_network") == "computer network"


def test_ceval_test_split_reads_without_answers_and_is_refused_for_scoring(tmp_path):
    root = ceval_folder(tmp_path / "ceval")
    task = tasks.read_ceval(root, split="test")
    assert [(i.subject, i.answer) for i in task.items] == [("logic", None), ("middle_school_mathematics", None)]
    with pytest.raises(InputError) as error:
        tasks.require_answers(task)
    message = str(error.value)
    assert message.startswith(f"{root / 'test' / 'logic_test.csv'}:2:") and "\n" not in message
    assert "C-Eval's test answers are not public" in message and "--split val" in message
    with pytest.raises(InputError, match="--split val"):
        tasks.load_task("ceval", data=root, split="test")
    assert len(tasks.load_task("ceval", data=root, split="test", scoring=False).items) == 2


# ------------------------------------------------------------------------------------------ malformed input

BAD_FILES = [
    # (file name, content, reader, line, what the message must say)
    ("h.jsonl", json.dumps(hellaswag_record()) + '\n{"ctx_a": "x",\n', "read_hellaswag", 2, "not valid JSON"),
    ("h.jsonl", json.dumps({k: v for k, v in hellaswag_record().items() if k != "ctx_b"}) + "\n", "read_hellaswag",
     1, "missing field 'ctx_b'"),
    ("h.jsonl", json.dumps(hellaswag_record(endings="one ending")) + "\n", "read_hellaswag", 1, "'endings'"),
    ("h.jsonl", json.dumps(hellaswag_record(endings=[])) + "\n", "read_hellaswag", 1, "'endings'"),
    ("h.jsonl", json.dumps(hellaswag_record(label="7")) + "\n", "read_hellaswag", 1, "'label'"),
    ("h.jsonl", json.dumps(hellaswag_record(label=True)) + "\n", "read_hellaswag", 1, "'label'"),
    ("h.jsonl", json.dumps(hellaswag_record(ctx_a=3)) + "\n", "read_hellaswag", 1, "must be a string"),
    ("h.jsonl", json.dumps(hellaswag_record()) + "\n\n[1, 2]\n", "read_hellaswag", 3, "JSON object"),
    ("a.jsonl", json.dumps(arc_record(key="F")) + "\n", "read_arc", 1, "answerKey 'F'"),
    ("a.jsonl", json.dumps(arc_record(texts=(), labels="")) + "\n", "read_arc", 1, "'question.choices'"),
    ("a.jsonl", json.dumps({"question": "Why?", "answerKey": "A"}) + "\n", "read_arc", 1, "'question'"),
    ("a.jsonl", json.dumps(arc_record(labels="AABC")) + "\n", "read_arc", 1, "repeat"),
    ("a.jsonl", json.dumps(arc_record(texts=("x", " ", "y", "z"))) + "\n", "read_arc", 1, "empty"),
    ("astronomy_test.csv", '"Two\nlines",a,b,c,d,A\nq,a,b,c,A\n', "read_mmlu", 3, "5 fields"),
    ("astronomy_test.csv", "q,a,b,c,d,A\nq,a,b,c,d,E\n", "read_mmlu", 2, "one of the letters A, B, C, D"),
    ("astronomy_test.csv", "q,a,b,c,d,\n", "read_mmlu", 1, "one of the letters"),
    ("astronomy_test.csv", '"never closed,a,b,c,d,A\n', "read_mmlu", 1, "not valid CSV"),
    ("logic_val.csv", "0,q,a,b,c,d,A\n", "read_ceval", 1, "header"),
    ("logic_val.csv", "id,question,A,B,C,D,answer\n0,q,a,b,c,d,F\n", "read_ceval", 2, "letters"),
    ("logic_val.csv", "id,question,A,B,C,D,answer\n0,q,a,b,c,d,A\n1,q,a,b,c,d,A,extra\n", "read_ceval", 3,
     "8 fields"),
    ("logic_val.csv", "id,question,A,B,C,D,answer\n0, ,a,b,c,d,A\n", "read_ceval", 2, "question is empty"),
]


@pytest.mark.parametrize("name, content, reader, line, says", BAD_FILES)
def test_malformed_files_stop_with_one_line_naming_file_and_line(tmp_path, name, content, reader, line, says):
    path = write(tmp_path / name, content)
    with pytest.raises(InputError) as error:
        getattr(tasks, reader)(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: ") and says in message and "\n" not in message, message


@pytest.mark.parametrize("name, reader", [("h.jsonl", "read_hellaswag"), ("a.jsonl", "read_arc"),
                                          ("astronomy_test.csv", "read_mmlu"), ("logic_val.csv", "read_ceval")])
def test_empty_and_non_utf8_files_are_refused(tmp_path, name, reader):
    empty = write(tmp_path / "empty" / name, "\n")
    with pytest.raises(InputError, match="holds no questions|is empty") as error:
        getattr(tasks, reader)(empty)
    assert str(empty) in str(error.value)
    latin = tmp_path / "latin" / name
    latin.parent.mkdir()
    latin.write_bytes(b"\n" + "caf\u00e9".encode("latin-1") + b"\n")
    with pytest.raises(InputError, match=f"^{latin}:2: not UTF-8"):
        getattr(tasks, reader)(latin)


def test_missing_paths_say_what_was_expected(tmp_path):
    with pytest.raises(InputError, match="does not exist; expected a JSON Lines file"):
        tasks.read_arc(tmp_path / "nothing.jsonl")
    with pytest.raises(InputError, match="does not exist; expected MMLU's unpacked folder"):
        tasks.read_mmlu(tmp_path / "nothing")
    with pytest.raises(InputError, match=r"\{subject\}_\{split\}\.csv"):
        tasks.read_mmlu(write(tmp_path / "questions.csv", "q,a,b,c,d,A\n"))


# ------------------------------------------------------------------------------------------ load_task

def test_task_names_and_bundled_paths_are_the_ones_documented():
    assert tasks.task_names() == ["stories", "chinese-stories", "science", "facts-en", "facts-zh",
                                  "hellaswag", "arc-easy", "arc-challenge", "mmlu", "ceval"]
    assert {name: path for name, (_, path) in tasks.BUNDLED.items()} == {
        "stories": "stories.jsonl", "chinese-stories": "chinese_stories.jsonl", "science": "science_arc.jsonl",
        "facts-en": "facts_en", "facts-zh": "facts_zh"}
    with pytest.raises(InputError) as error:
        tasks.load_task("hellaswag-xl")
    assert all(name in str(error.value) for name in tasks.task_names())


def bundled_copies(root: Path) -> None:
    jsonl(root / "stories.jsonl", [hellaswag_record(), hellaswag_record(label=1)])
    jsonl(root / "chinese_stories.jsonl", [hellaswag_record(activity_label="做饭", ctx_a="她打开冰箱。", ctx_b="",
                                                             endings=["拿出鸡蛋。", "唱歌。", "睡觉。", "跑步。"])])
    jsonl(root / "science_arc.jsonl", [arc_record(), arc_record(labels=["1", "2", "3", "4"], key="4")])
    write(root / "facts_en" / "dev" / "astronomy_dev.csv", ASTRONOMY_DEV)
    write(root / "facts_en" / "test" / "astronomy_test.csv", ASTRONOMY_TEST)
    write(root / "facts_zh" / "dev" / "middle_school_mathematics_dev.csv", CEVAL_DEV)
    write(root / "facts_zh" / "val" / "middle_school_mathematics_val.csv", CEVAL_VAL)


def test_bundled_tasks_read_from_data_eval(tmp_path, monkeypatch):
    bundled_copies(tmp_path)
    monkeypatch.setattr(tasks, "EVAL_DATA_DIR", tmp_path)
    loaded = {name: tasks.load_task(name) for name in tasks.BUNDLED}
    assert {name: (t.name, t.kind, t.language, len(t.items)) for name, t in loaded.items()} == {
        "stories": ("stories", "completion", "en", 2), "chinese-stories": ("chinese-stories", "completion", "zh", 1),
        "science": ("science", "completion", "en", 2), "facts-en": ("facts-en", "letter", "en", 1),
        "facts-zh": ("facts-zh", "letter", "zh", 1)}
    assert loaded["chinese-stories"].items[0].query == "做饭: 她打开冰箱。"
    assert loaded["science"].items[1].answer == 3
    zh = loaded["facts-zh"]
    assert tasks.context_text(zh.items[0], zh).startswith("以下是中国关于初中数学的单项选择题")
    assert len(tasks.load_task("stories", limit=1).items) == 1
    assert len(tasks.load_task("facts-zh", split="dev").items) == 3
    with pytest.raises(InputError, match="no splits"):
        tasks.load_task("science", split="test")
    with pytest.raises(InputError, match="positive number"):
        tasks.load_task("stories", limit=0)


def test_a_missing_bundled_file_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "EVAL_DATA_DIR", tmp_path / "eval")
    with pytest.raises(InputError) as error:
        tasks.load_task("science")
    message = str(error.value)
    assert str(tmp_path / "eval" / "science_arc.jsonl") in message and "looked in" in message and "--data" in message


@pytest.mark.parametrize("name", list(tasks.BUNDLED))
def test_the_shipped_bundled_files_read(name):
    path = tasks.EVAL_DATA_DIR / tasks.BUNDLED[name][1]
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout yet")
    task = tasks.load_task(name)
    assert task.items and all(item.answer is not None for item in task.items)


OFFLINE_FILES = [("hellaswag", "hellaswag_val.jsonl"), ("mmlu", "data.tar"), ("ceval", "ceval-exam.zip"),
                 ("arc-easy", "ARC-V1-Feb2018.zip")]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("name, filename", OFFLINE_FILES)
def test_offline_a_public_task_fails_with_the_download_helpers_message(cache, monkeypatch, name, filename):
    def no_network(request, timeout=None):
        raise urllib.error.URLError("no network in tests")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(InputError) as error:
        tasks.load_task(name)
    message = str(error.value)
    assert f"could not download {filename}" in message and "no network in tests" in message
    assert "--data PATH" in message and "\n" not in message


def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buffer.getvalue()


def test_ceval_is_downloaded_once_unpacked_and_swapped_in_whole(cache, monkeypatch):
    archive = zip_bytes({"dev/logic_dev.csv": CEVAL_DEV, "val/logic_val.csv": CEVAL_VAL, "README.md": "hi"})
    calls = []

    class Response(io.BytesIO):   # what download() reads of a urllib response
        status = 200
        headers = {"Content-Length": str(len(archive))}

    def serve(request, timeout=None):
        calls.append(request.full_url)
        return Response(archive)
    monkeypatch.setattr(urllib.request, "urlopen", serve)
    task = tasks.load_task("ceval")
    assert (task.name, task.items[0].subject, len(task.shots)) == ("ceval", "logic", 3)
    assert tasks.context_text(task.items[0], task).startswith("以下是中国关于逻辑学的单项选择题")
    tasks.load_task("ceval")
    assert calls == [task_downloads.CEVAL_URL]   # the second load reads the cache
    unpacked, = (cache / "ceval").glob("unpacked-*")
    assert sorted(p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*.csv")) == \
        ["dev/logic_dev.csv", "val/logic_val.csv"]
    assert not list((cache / "ceval").glob("*.tmp")) and not (unpacked / "README.md").exists()


def test_local_archives_unpack_only_the_question_files(cache, tmp_path):
    tar_path = tmp_path / "data.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, text in [("data/test/astronomy_test.csv", ASTRONOMY_TEST),
                           ("data/dev/astronomy_dev.csv", ASTRONOMY_DEV),
                           ("data/auxiliary_train/race.csv", "q,a,b,c,d,A\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    task = tasks.load_task("mmlu", data=tar_path)
    assert [(i.subject, i.answer) for i in task.items] == [("astronomy", 1)] and len(task.shots) == 1
    assert not list(cache.rglob("race.csv"))

    arc_zip = write(tmp_path / "ARC-V1-Feb2018.zip", "")
    arc_zip.write_bytes(zip_bytes({
        "ARC-V1-Feb2018-2/ARC-Easy/ARC-Easy-Test.jsonl": json.dumps(arc_record()) + "\n",
        "ARC-V1-Feb2018-2/ARC-Challenge/ARC-Challenge-Dev.jsonl": json.dumps(arc_record(key="C")) + "\n",
        "ARC-V1-Feb2018-2/ARC_Corpus.txt": "a large corpus"}))
    easy = tasks.load_task("arc-easy", data=arc_zip)
    challenge = tasks.load_task("arc-challenge", data=arc_zip, split="dev")
    assert (easy.name, easy.items[0].answer, challenge.name, challenge.items[0].answer) == \
        ("arc-easy", 1, "arc-challenge", 2)
    assert not list(cache.rglob("ARC_Corpus.txt"))
    with pytest.raises(InputError, match="has no ARC-Easy/ARC-Easy-Train.jsonl"):
        tasks.load_task("arc-easy", data=arc_zip, split="train")

    folder = tmp_path / "hs"
    jsonl(folder / "hellaswag_val.jsonl", [hellaswag_record(label=3)])
    assert tasks.load_task("hellaswag", data=folder).items[0].answer == 3
    with pytest.raises(InputError, match="validation file"):
        tasks.load_task("hellaswag", data=folder, split="test")


def test_damaged_and_unexpected_archives_are_one_line_errors(cache, tmp_path):
    whole = zip_bytes({"dev/logic_dev.csv": CEVAL_DEV, "val/logic_val.csv": CEVAL_VAL})
    cut = tmp_path / "cut" / "ceval-exam.zip"
    write(cut, "").write_bytes(whole[:len(whole) // 2])
    unrelated = tmp_path / "other" / "ceval-exam.zip"
    write(unrelated, "").write_bytes(zip_bytes({"notes/readme.txt": "nothing to read"}))
    for archive, says in [(cut, "neither a zip nor a tar archive"), (unrelated, "holds none of the files")]:
        with pytest.raises(InputError, match=says) as error:
            tasks.load_task("ceval", data=archive)
        assert str(archive) in str(error.value) and "\n" not in str(error.value)
    assert not list(cache.rglob("*.tmp"))


@pytest.mark.parametrize("evil", ["../evil_test.csv", "/tmp/evil_test.csv", "data/../../evil_test.csv"])
def test_archives_with_members_outside_their_folder_are_refused(cache, tmp_path, evil):
    members = {"data/test/astronomy_test.csv": ASTRONOMY_TEST, evil: "q,a,b,c,d,A\n"}
    zipped = tmp_path / "data.zip"
    zipped.write_bytes(zip_bytes(members))
    tarred = tmp_path / "data.tar"
    with tarfile.open(tarred, "w") as tar:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    for archive in (zipped, tarred):
        with pytest.raises(InputError, match="outside the folder it unpacks to"):
            task_downloads.unpack(archive, cache / "out", lambda name: True)
        assert not (cache / "out").exists() and not list(cache.glob("*.tmp"))
    assert not list(tmp_path.rglob("evil_test.csv")) and not Path("/tmp/evil_test.csv").exists()


# ------------------------------------------------------------------------------------------ BLEU
#
# The oracle is sacrebleu (2.x). Both sides compute the same formula from the same integer counts in float64, so
# any difference can only come from the order of floating-point operations: around 1e-13 of a score. A tolerance of
# 1e-9 leaves room for that and still catches any counting difference, since one n-gram more or less moves a score
# of a few hundred sentences by more than 1e-4. Lengths and counts must agree exactly.

BLEU_TOLERANCE = 1e-9
ENGLISH = ("the a cat dog sat on mat quickly Paris New-York well-known re-enter U.S. e.g. don't it's 3.14 1,000 "
           "10-20 $5 50% (see) [note] {x} #1 @home a&b &amp; &quot;hi&quot; &lt;b&gt; <skipped> C++ x/y ... naïve "
           "Café 'quoted' \"double\" -- end. again, yes! no? semi; colon: 2-3 -4 .5 ,x x, x. x.y 1.2.3").split()
CHINESE = list("我们今天去公园散步天气很好他说这本书非常有意思") + ["，", "。", "！", "？", "、", "“", "”", "《", "》",
                                                                   "：", "（", "）", "—", "…", "GPT-2", "3.5", "AI",
                                                                   "2024年", "€", "→", "™", "𠀀", "𠀁", "ＡＢ", "１２",
                                                                   "ChatGPT", "Hello", "e.g."]


def sentence(rng: random.Random, pool: list[str], joiner: str) -> str:
    words = [rng.choice(pool) for _ in range(rng.randint(1, 18))]
    if rng.random() < 0.3:
        words = [w.capitalize() if rng.random() < 0.3 else w.upper() if rng.random() < 0.1 else w for w in words]
    return joiner.join(words)


def variant(rng: random.Random, text: str, pool: list[str], joiner: str) -> str:
    """`text` with a few words dropped, swapped or replaced: shares some n-grams of every order with it."""
    words = text.split(joiner) if joiner else list(text)
    for _ in range(rng.randint(0, 4)):
        if not words:
            break
        i = rng.randrange(len(words))
        action = rng.choice(["drop", "swap", "replace", "insert"])
        if action == "drop":
            del words[i]
        elif action == "swap" and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif action == "replace":
            words[i] = rng.choice(pool)
        else:
            words.insert(i, rng.choice(pool))
    return joiner.join(words)


def corpus(seed: int, pool: list[str], joiner: str, size: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    hypotheses, references = [], []
    for _ in range(size):
        base = sentence(rng, pool, joiner)
        refs = [variant(rng, base, pool, joiner) for _ in range(rng.choice([1, 1, 2, 3]))]
        if rng.random() < 0.05:
            refs.append("")
        hypotheses.append("" if rng.random() < 0.08 else variant(rng, base, pool, joiner))
        references.append(refs)
    return hypotheses, references


def sacrebleu_streams(references: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference position, None where a sentence has fewer references."""
    most = max(len(refs) for refs in references)
    return [[refs[j] if j < len(refs) else None for refs in references] for j in range(most)]


def assert_same_bleu(ours, theirs):
    assert ours.score == pytest.approx(theirs.score, abs=BLEU_TOLERANCE)
    assert ours.precisions == pytest.approx(theirs.precisions, abs=BLEU_TOLERANCE)
    assert ours.brevity_penalty == pytest.approx(theirs.bp, abs=BLEU_TOLERANCE)
    assert (ours.hypothesis_length, ours.reference_length) == (theirs.sys_len, theirs.ref_len)
    assert (list(ours.counts), list(ours.totals)) == (list(theirs.counts), list(theirs.totals))


@pytest.mark.parametrize("tokenize, smooth, lowercase", [("13a", "exp", False), ("13a", "floor", False),
                                                         ("13a", "none", False), ("13a", "exp", True),
                                                         ("none", "exp", False)])
def test_corpus_bleu_agrees_with_sacrebleu_on_random_english(tokenize, smooth, lowercase):
    for seed in range(20):   # 20 corpora of 15 sentences: 300 sentences, 1 to 4 references each
        hypotheses, references = corpus(seed, ENGLISH, " ", 15)
        ours = metrics.corpus_bleu(hypotheses, references, tokenize=tokenize, smooth=smooth, lowercase=lowercase)
        theirs = sacrebleu.corpus_bleu(hypotheses, sacrebleu_streams(references), smooth_method=smooth,
                                       tokenize=tokenize, lowercase=lowercase, force=True)
        assert_same_bleu(ours, theirs)


def test_bleu_tokens_are_sacrebleus():
    thirteen_a, zh = Tokenizer13a(), TokenizerZh()
    for seed in range(20):
        hypotheses, references = corpus(seed, ENGLISH, " ", 15)
        for text in hypotheses + [r for refs in references for r in refs] + ["x-\ny &amp;lt; <skipped>z"]:
            assert " ".join(metrics.bleu_tokens(text)) == thirteen_a(text.rstrip())
        hypotheses, _ = corpus(seed, CHINESE, "", 15)
        for text in hypotheses:
            assert " ".join(metrics.bleu_tokens(text, "zh")) == zh(text.rstrip())


def test_zh_splits_every_character_as_sacrebleu_does():
    # Every code point of the Basic Multilingual Plane (and the start of Extension B), between ASCII letters so the
    # 13a rules around it apply too: sacrebleu's table, with its in-effect ranges, is matched character by character.
    zh = TokenizerZh()
    points = [p for p in range(0x10000) if not 0xD800 <= p < 0xE000] + list(range(0x20000, 0x20400))
    for start in range(0, len(points), 4096):
        text = "".join(f"x{chr(p)}" for p in points[start:start + 4096])
        assert list(metrics.bleu_tokens(text, "zh")) == zh(text).split()


@pytest.mark.parametrize("lowercase", [False, True])
def test_corpus_bleu_agrees_with_sacrebleu_on_chinese(lowercase):
    for seed in range(10):
        hypotheses, references = corpus(100 + seed, CHINESE, "", 20)
        ours = metrics.corpus_bleu(hypotheses, references, tokenize="zh", lowercase=lowercase)
        theirs = sacrebleu.corpus_bleu(hypotheses, sacrebleu_streams(references), tokenize="zh",
                                       lowercase=lowercase)
        assert_same_bleu(ours, theirs)


@pytest.mark.parametrize("smooth", ["exp", "floor", "none"])
def test_edge_corpora_no_4gram_matches_short_and_empty_hypotheses(smooth):
    rng = random.Random(7)
    plain = [f"word{i}" for i in range(40)]
    references = [rng.sample(plain, 3 * rng.randint(2, 4)) for _ in range(30)]   # distinct words in each
    corpora = {
        # the reference's three-word chunks in reverse order: uni-, bi- and trigrams match, no 4-gram does
        "chunks reversed": [" ".join(w for i in range(len(r) - 3, -1, -3) for w in r[i:i + 3]) for r in references],
        "short": [" ".join(r[:2]) for r in references],   # no hypothesis has a 4-gram at all
        "empty": ["" for _ in references],
    }
    references = [" ".join(r) for r in references]
    for name, hypotheses in corpora.items():
        ours = metrics.corpus_bleu(hypotheses, references, smooth=smooth)
        theirs = sacrebleu.corpus_bleu(hypotheses, [references], smooth_method=smooth, force=True)
        assert_same_bleu(ours, theirs)
    chunks = metrics.corpus_bleu(corpora["chunks reversed"], references, smooth=smooth)
    assert chunks.counts[3] == 0 and chunks.counts[2] > 0   # the case is really exercised
    assert (chunks.score > 0) == (smooth != "none")
    assert metrics.corpus_bleu(corpora["short"], references).score == 0.0


def test_sentence_bleu_agrees_with_sacrebleu():
    hypotheses, references = corpus(42, ENGLISH, " ", 60)
    for hypothesis, refs in zip(hypotheses, references):
        assert_same_bleu(metrics.sentence_bleu(hypothesis, refs), sacrebleu.sentence_bleu(hypothesis, refs))


def test_bleu_refuses_bad_arguments():
    with pytest.raises(ValueError, match="one reference"):
        metrics.corpus_bleu(["a b"], ["a b", "c"])
    with pytest.raises(ValueError, match="unknown BLEU tokenizer"):
        metrics.corpus_bleu(["a"], ["a"], tokenize="intl")
    with pytest.raises(ValueError, match="unknown BLEU smoothing"):
        metrics.corpus_bleu(["a"], ["a"], smooth="add-k")
    with pytest.raises(ValueError, match="non-empty list"):
        metrics.corpus_bleu(["a"], [[]])


# ---------------------------------------------------------------------- scoring: exactness against transformers

POSITIONS = 48      # a short context, so that some requests must be cut from the left


@pytest.fixture(scope="module")
def hf_and_ours(tmp_path_factory):
    """A GPT-2-shaped transformers model with random weights, and the same weights loaded into minigpt."""
    from minigpt.gpt2 import load_gpt2

    config = transformers.GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=50257, n_positions=POSITIONS)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():   # larger weights than transformers' init, so log-probabilities differ between tokens
        for p in hf.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    directory = tmp_path_factory.mktemp("hf_gpt2")
    hf.save_pretrained(directory, safe_serialization=True)
    return hf, load_gpt2(directory).eval()


def hf_logprob(hf, context: list[int], continuation: list[int]) -> float:
    """Σ log p(continuation | context) the direct way: one request, transformers' own forward pass, cut to fit."""
    tokens = (context + continuation)[-(POSITIONS + 1):]
    with torch.no_grad():
        logits = hf(torch.tensor([tokens[:-1]])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    n = len(continuation)
    positions = range(len(tokens) - 1 - n, len(tokens) - 1)
    return sum(float(logprobs[p, tokens[p + 1]]) for p in positions)


def random_requests(seed: int, count: int, longest_context: int = 70) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        context = torch.randint(0, 50257, (int(torch.randint(1, longest_context, (1,), generator=g)),), generator=g)
        continuation = torch.randint(0, 50257, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
        out.append((context.tolist(), continuation.tolist()))
    return out


# Summed float32 log-probabilities of up to a dozen tokens, each log-softmax of logits around ±10 with float32
# rounding (~1e-6 relative) in both implementations and different summation orders: 1e-4 absolute is a few
# times the rounding and far below any real difference (one wrong token or position shifts a sum by > 0.1).
LOGPROB_TOLERANCE = 1e-4


def test_continuation_logprobs_equal_transformers_one_request_at_a_time(hf_and_ours):
    hf, ours = hf_and_ours
    requests = random_requests(seed=2, count=24)
    assert any(len(c) + len(x) > POSITIONS + 1 for c, x in requests)     # some are cut from the left
    batched = evaluate.continuation_logprobs(ours, requests, batch_size=5)
    for (context, continuation), value in zip(requests, batched):
        assert value == pytest.approx(hf_logprob(hf, context, continuation), abs=LOGPROB_TOLERANCE)
    # A token budget smaller than five full rows splits the batches differently: the same numbers.
    budgeted = evaluate.continuation_logprobs(ours, requests, batch_size=5, max_tokens=100)
    assert budgeted == pytest.approx(batched, abs=LOGPROB_TOLERANCE)


def test_shared_context_scores_equal_transformers(hf_and_ours):
    hf, ours = hf_and_ours
    g = torch.Generator().manual_seed(3)
    items = []
    for k in range(9):
        context = torch.randint(0, 50257, (5 + 3 * k,), generator=g).tolist()
        choices = [torch.randint(0, 50257, (n,), generator=g).tolist() for n in (1, 4, 2, 7)[: 2 + k % 3]]
        items.append((context, choices))
    shared = evaluate.shared_context_logprobs(ours, items, batch_size=4, max_tokens=40)
    for (context, choices), values in zip(items, shared):
        for choice, value in zip(choices, values):
            assert value == pytest.approx(hf_logprob(hf, context, choice), abs=LOGPROB_TOLERANCE)


def test_a_request_without_context_is_scored_after_end_of_text(hf_and_ours):
    hf, ours = hf_and_ours
    value = evaluate.continuation_logprobs(ours, [([], [464, 3797, 3332])], eot_id=50256)[0]
    assert value == pytest.approx(hf_logprob(hf, [50256], [464, 3797, 3332]), abs=LOGPROB_TOLERANCE)
    with pytest.raises(InputError, match="endoftext"):
        evaluate.continuation_logprobs(ours, [([], [464])], eot_id=None)


# ------------------------------------------------------------------------------ scoring: perplexity windows

@given(st.integers(2, 300), st.integers(1, 40), st.data())
def test_sliding_windows_score_every_token_once_with_enough_context(num_tokens, context_length, data):
    stride = data.draw(st.integers(1, context_length))
    windows = evaluate.sliding_windows(num_tokens, context_length, stride)
    scored = [t for begin, end, first in windows for t in range(first, end + 1)]
    assert scored == list(range(1, num_tokens))
    for begin, end, first in windows:
        assert end - begin <= context_length
        if begin > 0:   # every window after the first gives each scored token at least L - stride context
            assert first - begin >= context_length - stride


def test_text_perplexity_with_stride_one_equals_a_token_by_token_loop(hf_and_ours):
    hf, ours = hf_and_ours
    tokenizer = gpt2_tiktoken_encoding()
    text = "The lighthouse keeper counted the boats that came home. " * 12
    ids = [50256] + tokenizer.encode_ordinary(text)
    assert len(ids) > 2 * POSITIONS
    # Every token t predicted from the POSITIONS tokens before it (or all of them): the definition.
    expected = -sum(hf_logprob(hf, ids[max(0, t - POSITIONS):t], [ids[t]]) for t in range(1, len(ids)))
    result = evaluate.text_perplexity(ours, tokenizer, text, stride=1, batch_size=32)
    assert result.tokens == len(ids) - 1 and result.num_bytes == len(text.encode("utf-8"))
    # ~120 terms of the LOGPROB_TOLERANCE kind, summed.
    assert result.nats == pytest.approx(expected, abs=120 * 1e-5)
    assert result.bits_per_byte == pytest.approx(expected / (len(text.encode("utf-8")) * math.log(2)), rel=1e-5)
    disjoint = evaluate.text_perplexity(ours, tokenizer, text, stride=POSITIONS)
    assert disjoint.tokens == result.tokens and disjoint.nats != pytest.approx(result.nats, abs=1e-3)


# -------------------------------------------------------------------------- multiple choice: prompts and rules

def letter_task(shots: int = 5) -> tasks.Task:
    dev = [tasks.ChoiceItem(f"What is {a} plus {a}?", (str(a), str(2 * a), str(3 * a), str(a + 1)), 1, "arithmetic")
           for a in range(1, shots + 1)]
    items = [tasks.ChoiceItem(f"What is {a} times 3?", (str(a), str(2 * a), str(3 * a), str(a + 3)), 2, "arithmetic")
             for a in range(1, 7)]
    return tasks.Task("sums", "letter", items, dev, description=MMLU_DESCRIPTION)


MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}.\n\n"


def test_k_shot_prompt_layout():
    task = letter_task()
    prompt = tasks.context_text(task.items[0], task, tasks.shots_for(task.items[0], task, 2))
    assert prompt == ("The following are multiple choice questions (with answers) about arithmetic.\n\n"
                      "What is 1 plus 1?\nA. 1\nB. 2\nC. 3\nD. 2\nAnswer: B\n\n"
                      "What is 2 plus 2?\nA. 2\nB. 4\nC. 6\nD. 3\nAnswer: B\n\n"
                      "What is 1 times 3?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:")
    assert tasks.continuations(task.items[0], task) == [" A", " B", " C", " D"]


def test_shots_are_dropped_oldest_first_until_the_prompt_fits():
    tokenizer = gpt2_tiktoken_encoding()
    task = letter_task()
    item = task.items[0]
    full, used, truncated = evaluate.fit_shots(tokenizer, item, task, 5, 10_000)
    assert used == 5 and not truncated
    one_shot = len(encode(tokenizer, tasks.context_text(item, task, task.shots[4:])))
    requests, used, truncated = evaluate.fit_shots(tokenizer, item, task, 5, one_shot)
    assert used == 1 and not truncated
    # The shot kept is the newest (the last of the five), right before the question.
    assert decode(tokenizer, requests[0][0]).endswith(tasks.context_text(item, task, task.shots[4:]))
    requests, used, truncated = evaluate.fit_shots(tokenizer, item, task, 5, 8)
    assert used == 0 and truncated


def encode(tokenizer, text):
    return tokenizer.encode_ordinary(text)


def decode(tokenizer, ids):
    return tokenizer.decode(ids)


@pytest.mark.parametrize("cue", ["Answer:", "Answer: "])
def test_letters_are_single_tokens_after_the_cue_with_or_without_a_trailing_space(cue):
    tokenizer = gpt2_tiktoken_encoding()
    for letter in "ABCD":
        context, continuation = evaluate.encode_pair(tokenizer, "Which one?\n" + cue, " " + letter if cue[-1] != " "
                                                     else letter)
        assert continuation == tokenizer.encode_ordinary(" " + letter) and len(continuation) == 1
        assert tokenizer.decode(context) == "Which one?\nAnswer:"


def test_letter_scores_on_a_tokenizer_where_the_space_and_letter_are_two_tokens():
    """A chapter 1 tokenizer trained on little text has no " A" token: the letter path must still be exact."""
    from minigpt.model import GPTConfig, GPTModel
    from minigpt.tokenizer import BPETokenizer

    tokenizer = BPETokenizer()
    tokenizer.train("the cat sat on the mat. " * 50, vocab_size=270)
    assert len(tokenizer.encode_ordinary(" A")) == 2
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=256, emb_dim=32, n_heads=2,
                               n_layers=2, drop_rate=0.0)).eval()
    task = letter_task()
    shared = evaluate.score_task(model, tokenizer, task, shots=1, share_context=True, progress=False)
    alone = evaluate.score_task(model, tokenizer, task, shots=1, share_context=False, progress=False)
    for a, b in zip(shared.items, alone.items):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4) and a.shots == 1


def test_accuracy_rules_are_the_harness_definitions():
    # Two endings: the first likelier in total, the second likelier per character and per byte.
    scores = [-10.0, -12.0]
    texts = ["short", "a longer ending"]
    assert evaluate.argmax(scores) == 0
    assert evaluate.argmax([s / len(t) for s, t in zip(scores, texts)]) == 1
    assert evaluate.argmax([-1.0, -1.0, -2.0]) == 0          # a tie goes to the first, as numpy.argmax


def test_score_task_predictions_follow_from_its_log_likelihoods(hf_and_ours):
    _, ours = hf_and_ours
    tokenizer = gpt2_tiktoken_encoding()
    items = [tasks.ChoiceItem(f"The {w} sat on the", ("mat", "very long ending about the sea", "dog", "é日本"), i % 4)
             for i, w in enumerate(["cat", "dog", "bird", "king", "queen", "child"])]
    task = tasks.Task("toy", "completion", items)
    result = evaluate.score_task(ours, tokenizer, task, progress=False)
    for item, scored in zip(items, result.items):
        lengths = [len(c) for c in item.choices]
        byte_lengths = [len(c.encode("utf-8")) for c in item.choices]
        assert scored.prediction == int(np.argmax(scored.logprobs))
        assert scored.prediction_norm == int(np.argmax(np.array(scored.logprobs) / lengths))
        assert scored.prediction_bytes == int(np.argmax(np.array(scored.logprobs) / byte_lengths))
        direct = [hf_logprob(_, *evaluate.encode_pair(tokenizer, item.query, " " + c)) for c in item.choices]
        assert scored.logprobs == pytest.approx(direct, abs=LOGPROB_TOLERANCE)
    assert result.chance == pytest.approx(0.25)


def test_a_split_without_answers_is_refused_by_score_task(hf_and_ours):
    _, ours = hf_and_ours
    task = tasks.Task("hidden", "letter", [tasks.ChoiceItem("Q?", ("a", "b"), None, source="test.csv:3")])
    with pytest.raises(InputError, match="test.csv:3.*no answers"):
        evaluate.score_task(ours, gpt2_tiktoken_encoding(), task, progress=False)


# --------------------------------------------------------------------------------------------- intervals

def test_bootstrap_interval_matches_the_normal_approximation():
    g = torch.Generator().manual_seed(3)
    values = (torch.rand(400, generator=g) < 0.7).float().tolist()
    mean, low, high = metrics.bootstrap_interval(values)
    half = 1.96 * math.sqrt(mean * (1 - mean) / 400)
    # 2,000 resamples: the percentile ends move by about 10% of the half-width from run to run of other seeds.
    assert low == pytest.approx(mean - half, abs=0.2 * half) and high == pytest.approx(mean + half, abs=0.2 * half)


def test_bootstrap_draws_whole_prompts():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    single = metrics.bootstrap_interval(values)
    # Each value three times within its own prompt: the same prompts are drawn, so the same interval, not a
    # narrower one as three times the independent data would give.
    tripled = metrics.bootstrap_interval([v for v in values for _ in range(3)], [i for i in range(8) for _ in range(3)])
    naive = metrics.bootstrap_interval([v for v in values for _ in range(3)])
    assert tripled == pytest.approx(single)
    assert naive[2] - naive[1] < tripled[2] - tripled[1]


@pytest.mark.parametrize("right,total", [(0, 10), (3, 10), (10, 10), (57, 200), (180, 200), (1, 1)])
def test_wilson_interval_is_the_set_of_shares_a_score_test_accepts(right, total):
    """Wilson's interval is {p : |p̂ − p| ≤ z·sqrt(p(1−p)/n)}: find its ends by bisection, independently."""
    z = statistics.NormalDist().inv_cdf(0.975)
    share = right / total

    def accepted(p):
        return abs(share - p) <= z * math.sqrt(p * (1 - p) / total) + 1e-15

    def edge(inside, outside):
        for _ in range(200):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        return inside

    low = 0.0 if accepted(0.0) else edge(share, 0.0)
    high = 1.0 if accepted(1.0) else edge(share, 1.0)
    assert metrics.wilson_interval(right, total) == pytest.approx((low, high), abs=1e-9)


# ------------------------------------------------------------------------------------- the pairwise judge

class FakeJudge(BaseHTTPRequestHandler):
    """A local stand-in for Ollama: `mode` "first" always prefers the first answer (a pure position bias);
    "lima" prefers whichever answer says Lima."""
    mode = "first"

    def do_GET(self):
        self._reply({"models": [{"name": "judge:latest"}]})

    def do_POST(self):
        content = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"][0]["content"]
        first = content.split("Answer 1:\n")[1].split("\n\nAnswer 2:")[0]
        second = content.split("Answer 2:\n")[1].split("\n\nReply")[0]
        if FakeJudge.mode == "first":
            verdict = "1"
        else:
            verdict = {(True, False): "1", (False, True): "2"}.get(("Lima" in first, "Lima" in second), "0")
        self._reply({"message": {"role": "assistant", "content": f"Verdict: {verdict}"}})

    def _reply(self, data):
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode,expected", [("first", [0.5, 0.5, 0.5]), ("lima", [1.0, 0.0, 0.5])])
def test_pairwise_judge_averages_both_orders(mode, expected):
    from minigpt import judge

    FakeJudge.mode = mode
    server = HTTPServer(("127.0.0.1", 0), FakeJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/chat"
        records = [{"instruction": "Capital of Peru?", "input": "", "output": "Lima."}] * 3
        shares = judge.compare_with_ollama(records, ["Lima.", "Quito.", "Paris."], ["Quito.", "Lima, Peru.", "Rome."],
                                           model="judge", url=url, progress=False)
        assert shares == expected
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError, match="local"):
        judge.compare_with_ollama(records, ["a"] * 3, ["b"] * 3, url="http://example.com/api/chat")


# ------------------------------------------------------------------------------------------- the chapter script

CHAPTER = Path(__file__).resolve().parent.parent / "chapters" / "ch12_evaluation.py"


@pytest.fixture
def chapter(monkeypatch, tmp_path):
    """The chapter script as a module, with chapters 6 and 9's checkpoints looked for where there are none, so that
    it trains its own short models whatever a learner has run in this clone."""
    from tests._scripts import load_script

    script = load_script(CHAPTER, "ch12_under_test")
    monkeypatch.setattr(script, "CHAPTER6_CHECKPOINT", tmp_path / "no-ch06" / "ckpt.pt")
    monkeypatch.setattr(script, "CHAPTER9_CHECKPOINT", tmp_path / "no-ch09" / "ckpt.pt")
    return script.main


@pytest.mark.slow
def test_chapter_script_scores_three_models_and_writes_items_report_and_card(chapter, tmp_path, capsys):
    text = write(tmp_path / "held_out.txt", "The fox counted the stars above the hill. " * 30)
    out = tmp_path / "out"
    chapter(["--pretrain-steps", "3", "--sft-steps", "2", "--task", "stories", "--task", "facts-zh", "--limit", "5",
             "--max-answers", "2", "--text", str(text), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Report card" in printed and "chance 25.0%" in printed
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert list(report) == ["random init", "chapter 6 (pretrained)", "chapter 9 (instructions)"]
    for card in report.values():
        assert set(card["tasks"]) == {"stories", "facts-zh"} and card["tasks"]["stories"]["items"] == 5
        accuracy, low, high = card["tasks"]["facts-zh"]["acc"]
        assert low <= accuracy <= high
        assert card["texts"]["held_out.txt"]["bits_per_byte"] > 0
    assert "answers" in report["chapter 9 (instructions)"] and "answers" not in report["random init"]
    items = [json.loads(line) for line in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(items) == 3 * (5 + 5)
    assert all(len(i["logprobs"]) == 4 and i["prediction"] == int(np.argmax(i["logprobs"])) for i in items)
    assert (out / "report_card.png").stat().st_size > 0


def test_chapter_script_refuses_bad_task_files_with_file_and_line(chapter, tmp_path, capsys):
    from tests._scripts import stopped_with_one_line

    bad = write(tmp_path / "bad.jsonl", '{"ctx_a": "x", "ctx_b": "", "activity_label": "a", "endings": ["a", "b"], '
                                        '"label": 0}\n{not json\n')
    message = stopped_with_one_line(chapter, ["--task", "hellaswag", "--data", str(bad), "--out", str(tmp_path)],
                                    capsys)
    assert f"{bad}:2" in message
    assert "--task" in stopped_with_one_line(chapter, ["--task", "nonsense", "--out", str(tmp_path)], capsys)
    assert "--data" in stopped_with_one_line(chapter, ["--data", str(bad), "--out", str(tmp_path)], capsys)


@pytest.mark.parametrize("argv,names", [
    (["--limit", "0"], "--limit"), (["--shots", "-1"], "--shots"), (["--stride", "x"], "--stride"),
    (["--judge-url", "http://example.com/api/chat"], "--judge-url"), (["--checkpoint", "nowhere.pt"], "nowhere.pt"),
    (["--text", "nowhere.txt"], "nowhere.txt"), (["--task", "stories", "--task", "science", "--data", "x"], "--data"),
    (["--batch-size", "0"], "--batch-size"), (["--device", "tpu"], "--device"),
])
def test_chapter_script_options_are_checked_before_any_work(chapter, tmp_path, capsys, argv, names):
    from tests._scripts import stopped_with_one_line

    message = stopped_with_one_line(chapter, argv + ["--out", str(tmp_path)], capsys)
    assert names in message and message.startswith("ch12_evaluation.py: error:")


def test_a_checkpoint_is_scored_with_the_tokenizer_it_records(chapter, tmp_path, capsys):
    """A chapter 1/11-style BPE tokenizer recorded in a checkpoint (not GPT-2's) is the one the script scores with:
    the bits per byte it reports equal text_perplexity's with that tokenizer, over that tokenizer's tokens."""
    from minigpt.batches import WindowBatches
    from minigpt.data import GPTDataset
    from minigpt.loading import load_model
    from minigpt.model import GPTConfig, GPTModel
    from minigpt.tokenizer import BPETokenizer
    from minigpt.train import TrainConfig, train

    text = "小狐狸数星星。The fox counted the stars above the hill, one by one. " * 40
    tokenizer = BPETokenizer()
    tokenizer.train(text, vocab_size=300, special_tokens=["<|endoftext|>"])
    ids = tokenizer.encode_ordinary(text)
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=32, emb_dim=32, n_heads=2, n_layers=1,
                               drop_rate=0.0))
    config = TrainConfig(max_steps=2, warmup_steps=1, eval_every=0, out_dir=str(tmp_path / "bpe"), progress=False)
    train(model, WindowBatches(GPTDataset(ids, 32, 32), 2), None, config, tokenizer=tokenizer)
    held_out = write(tmp_path / "held_out.txt", "小狐狸数星星。The fox counted the stars.")
    chapter(["--checkpoint", str(tmp_path / "bpe" / "ckpt.pt"), "--task", "facts-zh", "--limit", "3", "--text",
             str(held_out), "--out", str(tmp_path / "out")])
    capsys.readouterr()
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    (card,) = report.values()
    loaded, recorded = load_model(tmp_path / "bpe" / "ckpt.pt")
    assert isinstance(recorded, BPETokenizer) and recorded.vocab_size == tokenizer.vocab_size
    expected = evaluate.text_perplexity(loaded, recorded, held_out.read_text(encoding="utf-8"))
    assert card["texts"]["held_out.txt"]["bits_per_byte"] == pytest.approx(expected.bits_per_byte, rel=1e-6)
    assert card["texts"]["held_out.txt"]["tokens"] == len(tokenizer.encode_ordinary(held_out.read_text()))
    assert card["tasks"]["facts-zh"]["items"] == 3


# ------------------------------------------------------------------------------------------ generated answers

def test_score_generations_is_the_metrics_means_with_intervals_around_them():
    records = [{"instruction": f"q{i}", "input": "", "output": out} for i, out in enumerate(
        ["Lima.", "The capital of France is Paris.", "Seven", "It rains because water vapour cools and condenses.",
         "Blue", "A cat is a small animal that purrs."] * 4)]
    responses = ["lima", "Paris is the capital of France.", "six", "Water vapour cools.", "Blue.", "A dog barks."] * 4
    scores = evaluate.score_generations(records, responses, resamples=300)
    references = [r["output"] for r in records]
    closed = [metrics.exact_match(p, r) for p, r in zip(responses, references)]   # every reference here is short
    assert scores["exact_match"][0] == pytest.approx(sum(closed) / len(closed))
    f1 = [metrics.token_f1(p, r) for p, r in zip(responses, references)]
    assert scores["token_f1"][0] == pytest.approx(sum(f1) / len(f1))
    assert scores["bleu"][0] == pytest.approx(sacrebleu.corpus_bleu(responses, [references]).score, abs=1e-9)
    for value, low, high in scores.values():
        assert low <= value <= high and low < high
