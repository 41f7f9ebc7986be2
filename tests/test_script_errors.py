"""The edge of every chapter script (1-7) and of the two data-preparation commands: a bad option or a bad file
ends the run with one line that names it, exit status 2, and no traceback.

Each script's `main(argv)` runs in this process (the scripts are imported by path: chapters/ and data/ are not
packages), so a case costs milliseconds rather than a fresh interpreter. Option errors must be found before the
script does anything at all, so for them nothing may reach stdout; data errors (a story that is not UTF-8, a
damaged safetensors header, a config.json that is a list, too little text for a window) are found when the file
is read, before any model is built, trained or downloaded. Every input is tiny and lives under a temporary folder.
"""
import functools
import importlib
import json
import struct
from pathlib import Path

import pytest
import torch

from minigpt.backends import triton_available
from minigpt.prepare import prepare_shards
from minigpt.safetensors_io import save_safetensors
from minigpt.tokenizer import gpt2_tiktoken_encoding
from tests._scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"ch01": "chapters/ch01_tokenizer.py", "ch02": "chapters/ch02_data.py", "ch03": "chapters/ch03_attention.py",
           "ch04": "chapters/ch04_gpt_model.py", "ch05": "chapters/ch05_kernels.py",
           "ch06": "chapters/ch06_pretraining.py", "ch07": "chapters/ch07_gpt2.py",
           "tinystories": "data/prepare_tinystories.py", "prepare": "minigpt.prepare"}
PROGS = {"prepare": "python -m minigpt.prepare"}   # the others are named by their file
OUT_GIVEN_BY_CASE = {"ch04", "prepare", "tinystories"}   # ch04 writes nothing; the other two name --out per case

STORY = ("Once upon a time a small fox counted the stars above the hill. Every night she lost count and began "
         "again, until an owl showed her how to count them in fives. ") * 3


@functools.cache
def script(name: str):
    """The script's module, imported once (by path for the files; minigpt.prepare by its name)."""
    where = SCRIPTS[name]
    if not where.endswith(".py"):
        return importlib.import_module(where)
    return load_script(ROOT / where, f"script_{Path(where).stem}")


def fails_in_one_line(capsys, name: str, argv: list[str]) -> tuple[str, str]:
    """Run script `name` on `argv`: it must stop with exit status 2 and exactly one line on stderr, with no
    traceback anywhere. Returns (that line, what went to stdout)."""
    with pytest.raises(SystemExit) as stop:
        script(name).main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2, err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    prog = PROGS.get(name, Path(SCRIPTS[name]).name)
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0], out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Every input the cases below refer to by name ({name} in an argument), as strings."""
    root = tmp_path_factory.mktemp("inputs")
    paths = {"out": root / "out", "missing": root / "does-not-exist", "a_file": root / "a_file.txt"}
    paths["a_file"].write_text("not a folder\n", encoding="utf-8")
    paths["empty_dir"] = folder(root / "empty")
    paths["bad_utf8_dir"] = folder(root / "latin1", {"a.txt": "Once upon a time, café".encode("latin-1")})
    paths["bad_utf8_story"] = paths["bad_utf8_dir"] / "a.txt"
    paths["blank_dir"] = folder(root / "blank", {"a.txt": b"  \n\n"})
    paths["tiny_dir"] = folder(root / "tiny", {"a.txt": b"Hi there."})
    paths["one_token"] = root / "one_token.txt"
    paths["one_token"].write_text("Hi", encoding="utf-8")
    paths["story"] = root / "story.txt"
    paths["story"].write_text(STORY, encoding="utf-8")
    paths["notes_csv"] = root / "notes.csv"
    paths["notes_csv"].write_text("a,b\n", encoding="utf-8")
    paths["shards"] = root / "shards"            # one shard of ~100 tokens: windows of 200 do not fit
    prepare_shards([paths["story"]], paths["shards"], val_fraction=0.0, encoding=gpt2_tiktoken_encoding(),
                   progress=False)
    paths["bad_shards"] = folder(root / "bad_shards", {"train_000000.bin": b"XXXX" + bytes(20)})
    paths.update(weight_files(root))
    return {name: str(path) for name, path in paths.items()}


def folder(path: Path, contents: dict[str, bytes] | None = None) -> Path:
    path.mkdir()
    for name, data in (contents or {}).items():
        (path / name).write_bytes(data)
    return path


def weight_files(root: Path) -> dict[str, Path]:
    """Weights folders that are wrong in one way each: a junk file, config.json problems, mismatched tensors."""
    tiny = {"transformer.wte.weight": torch.zeros(10, 8), "transformer.wpe.weight": torch.zeros(4, 8)}
    out = {"junk": root / "junk.safetensors"}
    out["junk"].write_bytes(b"\xff" * 64)
    configs = {"config_list": "[1, 2]", "config_n_head_0": json.dumps({"n_head": 0}), "config_not_json": "{n_head: 12",
               "config_n_head_3": json.dumps({"n_head": 3})}
    for name, text in configs.items():
        out[name] = folder(root / name)
        save_safetensors(tiny, out[name] / "model.safetensors")
        (out[name] / "config.json").write_text(text, encoding="utf-8")
    out["mismatch"] = folder(root / "mismatch")          # of block 0 only one tensor: the other 11 are missing
    save_safetensors({**tiny, "transformer.h.0.ln_1.weight": torch.zeros(8)}, out["mismatch"] / "model.safetensors")
    (out["mismatch"] / "config.json").write_text(json.dumps({"n_head": 2}), encoding="utf-8")
    out["far_layer"] = folder(root / "far_layer")        # a layer number that would mean a billion layers
    save_safetensors({**tiny, "transformer.h.999999999.ln_1.weight": torch.zeros(8)},
                     out["far_layer"] / "model.safetensors")
    return out


def filled(argv: list[str], files: dict[str, str]) -> list[str]:
    return [arg.format(**files) for arg in argv]


# ---- options: each refused before any work, naming the option and what it allows ----------------------------

OPTION_CASES = [
    # (script, arguments, a piece of the one line)
    ("ch01", ["--vocab-size", "0"], "argument --vocab-size: must be between 257 and 4096"),
    ("ch01", ["--vocab-size", "256"], "argument --vocab-size"),
    ("ch01", ["--vocab-size", "100000"], "argument --vocab-size"),
    ("ch01", ["--vocab-size", "many"], "argument --vocab-size: expected an integer"),
    ("ch01", ["--seed", "-1"], "argument --seed"),
    ("ch01", ["--device", "tpu"], "argument --device: must be auto, cpu, cuda or cuda:N"),
    ("ch01", ["--out", "{a_file}"], "argument --out: {a_file} is a file"),
    ("ch02", ["--max-length", "1"], "argument --max-length: must be between 2"),
    ("ch02", ["--max-length", "-3"], "argument --max-length"),
    ("ch02", ["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    ("ch02", ["--embed-dim", "0"], "argument --embed-dim"),
    ("ch02", ["--embed-dim", "1000000"], "argument --embed-dim: must be between 1 and 4096"),
    ("ch02", ["--seed", "2.5"], "argument --seed"),
    ("ch02", ["--device", "tpu"], "argument --device"),
    ("ch03", ["--seed", "-1"], "argument --seed"),
    ("ch03", ["--seed", str(2 ** 64)], "argument --seed"),
    ("ch03", ["--out", "{a_file}"], "argument --out"),
    ("ch04", ["--prompt", ""], "argument --prompt: must not be empty"),
    ("ch04", ["--prompt", "   "], "argument --prompt"),
    ("ch04", ["--max-new-tokens", "-1"], "argument --max-new-tokens"),
    ("ch04", ["--preset", "gpt5"], "argument --preset: invalid choice"),
    ("ch04", ["--device", "tpu"], "argument --device"),
    ("ch05", ["--device", "tpu"], "argument --device"),
    ("ch05", ["--seed", "x"], "argument --seed"),
    ("ch05", ["--out", "{a_file}"], "argument --out"),
    ("ch06", ["--batch-size", "0"], "argument --batch-size"),
    ("ch06", ["--batch-size", "-4"], "argument --batch-size"),
    ("ch06", ["--steps", "0"], "argument --steps"),
    ("ch06", ["--lr", "0"], "argument --lr: must be a number above 0"),
    ("ch06", ["--lr", "-0.001"], "argument --lr"),
    ("ch06", ["--lr", "nan"], "argument --lr"),
    ("ch06", ["--lr", "inf"], "argument --lr"),
    ("ch06", ["--lr", "fast"], "argument --lr: expected a number"),
    ("ch06", ["--min-lr", "-1"], "argument --min-lr"),
    ("ch06", ["--min-lr", "1"], "--min-lr 1 is above the peak --lr 0.004"),
    ("ch06", ["--val-fraction", "1"], "argument --val-fraction: must be at least 0 and below 1"),
    ("ch06", ["--val-fraction", "-0.1"], "argument --val-fraction"),
    ("ch06", ["--context", "0"], "argument --context"),
    ("ch06", ["--context", "1000000"], "argument --context: the tiny preset's model has 256 positions"),
    ("ch06", ["--preset", "gpt2-124m", "--context", "4096"], "argument --context: the gpt2-124m preset's model has "
                                                              "1024 positions"),
    ("ch06", ["--dropout", "1"], "argument --dropout"),
    ("ch06", ["--grad-accum", "0"], "argument --grad-accum"),
    ("ch06", ["--warmup", "-1"], "argument --warmup"),
    ("ch06", ["--weight-decay", "-0.1"], "argument --weight-decay"),
    ("ch06", ["--grad-clip", "-1"], "argument --grad-clip"),
    ("ch06", ["--eval-every", "-1"], "argument --eval-every"),
    ("ch06", ["--eval-batches", "0"], "argument --eval-batches"),
    ("ch06", ["--sample-every", "-1"], "argument --sample-every"),
    ("ch06", ["--checkpoint-every", "-1"], "argument --checkpoint-every"),
    ("ch06", ["--bench-steps", "0"], "argument --bench-steps"),
    ("ch06", ["--prompt", ""], "argument --prompt"),
    ("ch06", ["--max-new-tokens", "-1"], "argument --max-new-tokens"),
    ("ch06", ["--temperature", "-0.5"], "argument --temperature"),
    ("ch06", ["--top-k", "0"], "argument --top-k"),
    ("ch06", ["--seed", "-1"], "argument --seed"),
    ("ch06", ["--device", "tpu"], "argument --device"),
    ("ch06", ["--preset", "huge"], "argument --preset"),
    ("ch06", ["--mix", "a:b"], "--mix: the weight of a must be a number, got 'b'"),
    ("ch06", ["--mix", "{shards}"], '--mix expects "folderA:weight,folderB:weight"'),
    ("ch06", ["--mix", ":0.5"], "--mix expects"),
    ("ch06", ["--mix", "{shards}:0"], "--mix: the weight of {shards} must be a number above 0"),
    ("ch06", ["--mix", "{shards}:-1"], "must be a number above 0"),
    ("ch06", ["--mix", "{shards}:nan"], "must be a number above 0"),
    ("ch06", ["--mix", "{missing}:1"], "--mix: {missing} is not a folder"),
    ("ch06", ["--mix", "{shards}:1,{shards}:2"], "--mix names {shards} twice"),
    ("ch06", ["--data", "{shards}", "--mix", "{shards}:1"], "--data and --mix exclude each other"),
    ("ch06", ["--data", "{missing}"], "argument --data: {missing} is not a folder"),
    ("ch06", ["--resume", "{missing}"], "argument --resume: no checkpoint at {missing}"),
    ("ch07", ["--size", "gpt3"], "argument --size: must be one of gpt2, gpt2-medium, gpt2-large, gpt2-xl"),
    ("ch07", ["--demo-layers", "0"], "argument --demo-layers: must be between 1 and 12"),
    ("ch07", ["--demo-layers", "13"], "argument --demo-layers"),
    ("ch07", ["--top-p", "0"], "argument --top-p: must be above 0"),
    ("ch07", ["--top-p", "1.5"], "argument --top-p"),
    ("ch07", ["--top-k", "0"], "argument --top-k"),
    ("ch07", ["--temperature", "-1"], "argument --temperature"),
    ("ch07", ["--max-new-tokens", "-1"], "argument --max-new-tokens"),
    ("ch07", ["--weights", "{missing}"], "argument --weights: no file or folder {missing}"),
    ("ch07", ["--story", "{missing}"], "argument --story: no file {missing}"),
    ("ch07", ["--story", "{empty_dir}"], "argument --story"),
    ("ch07", ["--dtype", "fp8"], "argument --dtype: invalid choice"),
    ("ch07", ["--seed", "-1"], "argument --seed"),
    ("prepare", ["--input", "{story}"], "the following arguments are required: --out"),
    ("prepare", ["--input", "{story}", "--out", "{out}", "--val-fraction", "1"], "argument --val-fraction"),
    ("prepare", ["--input", "{story}", "--out", "{out}", "--shard-tokens", "0"], "argument --shard-tokens"),
    ("prepare", ["--input", "{story}", "--out", "{out}", "--shard-tokens", str(10 ** 12)],
     "argument --shard-tokens: must be between 1 and 1073741824"),
    ("prepare", ["--input", "{story}", "--out", "{a_file}"], "argument --out"),
    ("tinystories", ["--val-fraction", "2"], "argument --val-fraction"),
    ("tinystories", ["--shard-tokens", "0"], "argument --shard-tokens"),
    ("tinystories", ["--local", "{missing}"], "argument --local: no file or folder {missing}"),
    ("tinystories", ["--files", "bogus"], "argument --files: invalid choice"),
    ("tinystories", ["--local", "{a_file}", "--files", "all"], "--local names one file"),
]


@pytest.mark.parametrize("name, argv, expected", OPTION_CASES,
                         ids=[f"{name} {' '.join(argv)}" for name, argv, _ in OPTION_CASES])
def test_a_bad_option_is_one_line_before_any_work(capsys, files, name, argv, expected):
    out_option = [] if name in OUT_GIVEN_BY_CASE or "--out" in argv else ["--out", "{out}"]
    line, out = fails_in_one_line(capsys, name, filled(argv + out_option, files))
    assert expected.format(**files) in line
    assert out == "", "the option should be refused before the script prints (or does) anything"


@pytest.mark.skipif(triton_available(), reason="Triton kernels run here, so --attention triton is valid")
def test_triton_attention_without_triton_is_one_line(capsys, files):
    line, out = fails_in_one_line(capsys, "ch06", ["--attention", "triton", "--out", files["out"]])
    assert "--attention/--layernorm triton need" in line and out == ""


# ---- files: damaged, foreign or too small, named in one line, before any model is built or trained -----------

DATA_CASES = [
    # (script, arguments, pieces of the one line)
    ("ch01", ["--stories", "{bad_utf8_dir}"], ["{bad_utf8_story} is not UTF-8 text: byte 21"]),
    ("ch01", ["--stories", "{empty_dir}"], ["{empty_dir} holds no .txt files"]),
    ("ch01", ["--stories", "{blank_dir}"], ["a.txt holds no text"]),
    ("ch01", ["--stories", "{missing}"], ["{missing} is not a folder"]),
    ("ch02", ["--stories", "{bad_utf8_dir}"], ["{bad_utf8_story}", "byte 21"]),
    ("ch02", ["--stories", "{tiny_dir}"], ["--max-length 8", "{tiny_dir}"]),
    ("ch02", ["--max-length", "100000"], ["--max-length 100000: the first story in", "has"]),
    ("ch02", ["--batch-size", "100000"], ["--batch-size 100000: the stories make only"]),
    ("ch02", ["--stories", "{tiny_dir}", "--max-length", "2"], ["{tiny_dir}: the shard and mixing examples need"]),
    ("ch04", ["--preset", "tiny", "--prompt", "word " * 300], ["--prompt is 301 tokens; tiny reads at most 256"]),
    ("ch06", ["--stories", "{bad_utf8_dir}"], ["{bad_utf8_story}", "byte 21"]),
    ("ch06", ["--stories", "{tiny_dir}"], ["--val-fraction 0.1 of {tiny_dir}", "too few"]),
    ("ch06", ["--stories", "{tiny_dir}", "--val-fraction", "0"], ["{tiny_dir}", "shorter than one window",
                                                                   "--context"]),
    ("ch06", ["--batch-size", "100000"], ["cannot fill a batch of 100000", "--batch-size"]),
    ("ch06", ["--data", "{shards}", "--context", "200"], ["{shards}: max_length=200 needs shards of at least 201"]),
    ("ch06", ["--data", "{shards}", "--context", "8", "--batch-size", "64"], ["{shards}: 13 training windows",
                                                                             "cannot fill a batch of 64"]),
    ("ch06", ["--data", "{bad_shards}"], ["train_000000.bin", "not a minigpt token shard"]),
    ("ch06", ["--mix", "{shards}:1,{bad_shards}:1", "--context", "8"], ["train_000000.bin",
                                                                        "not a minigpt token shard"]),
    ("ch06", ["--data", "{empty_dir}"], ["no 'train' shards found at {empty_dir}"]),
    ("ch07", ["--story", "{bad_utf8_story}"], ["{bad_utf8_story} is not UTF-8 text: byte 21"]),
    ("ch07", ["--story", "{one_token}"], ["--story {one_token}: 1 token"]),
    ("ch07", ["--weights", "{junk}"], ["{junk} is not a safetensors file"]),
    ("ch07", ["--weights", "{empty_dir}"], ["{empty_dir} holds no model.safetensors"]),
    ("ch07", ["--weights", "{config_list}"], ["config.json holds a JSON list"]),
    ("ch07", ["--weights", "{config_n_head_0}"], ["config.json: n_head must be", "got 0"]),
    ("ch07", ["--weights", "{config_not_json}"], ["config.json is not valid JSON"]),
    ("ch07", ["--weights", "{config_n_head_3}"], ["config.json: n_head 3 does not divide the width 8"]),
    ("ch07", ["--weights", "{mismatch}"], ["does not match a GPT-2", "h.0.ln_1.bias: missing"]),
    ("ch07", ["--weights", "{far_layer}"], ["names layer 999999999 but holds only 3 tensors"]),
    ("prepare", ["--input", "{missing}", "--out", "{out}"], ["input {missing} does not exist"]),
    ("prepare", ["--input", "{notes_csv}", "--out", "{out}"], ["input {notes_csv}: expected a .txt file"]),
    ("tinystories", ["--local", "{empty_dir}", "--out", "{out}"], ["TinyStories-valid.txt does not exist"]),
]


@pytest.mark.parametrize("name, argv, expected", DATA_CASES,
                         ids=[f"{name} {' '.join(argv)[:60]}" for name, argv, _ in DATA_CASES])
def test_a_bad_file_is_one_line_naming_it(capsys, files, name, argv, expected):
    extra = {"ch06": ["--quiet"], "ch07": ["--offline"]}.get(name, [])     # and never a download
    out_option = [] if name in OUT_GIVEN_BY_CASE else ["--out", "{out}"]
    line, out = fails_in_one_line(capsys, name, filled(argv + out_option + extra, files))
    for piece in expected:
        assert piece.format(**files) in line
    assert "Training:" not in out and "Loaded:" not in out, "the error should come before training or loading"


def test_an_internal_error_keeps_its_traceback(monkeypatch, files):
    # Only what the user can cause becomes one line: a bug (here a planted one) still shows where it happened.
    module = script("ch03")

    def broken(*args, **kwargs):
        raise ValueError("a bug, not a bad input")

    monkeypatch.setattr(module, "simple_self_attention", broken)
    with pytest.raises(ValueError, match="a bug"):
        module.main(["--out", files["out"]])


def test_one_line_errors_include_header_lengths_beyond_the_file(capsys, files, tmp_path):
    # The header-length field is read before anything else: a file that announces more header than it holds.
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(struct.pack("<Q", 10 ** 6) + b"{}")
    line, _ = fails_in_one_line(capsys, "ch07", ["--weights", str(weights), "--offline", "--out", files["out"]])
    assert f"{weights} is not a safetensors file (or is truncated)" in line


def test_a_checkpoint_that_is_empty_cut_short_foreign_or_unsafe_is_one_line(capsys, files, tmp_path):
    """--resume on a file that is not a whole minigpt checkpoint: one line naming it, and nothing unpickled runs."""
    class WritesAFile:
        def __reduce__(self):
            return Path.write_text, (tmp_path / "marker.txt", "the payload ran")

    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.zeros(4)}, "step": 1, "extra": {"args": {}}}, good)
    cases = {"empty.pt": b"", "cut.pt": good.read_bytes()[:40], "text.pt": b"not a checkpoint at all\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    torch.save({"model": {}, "step": 1, "extra": {"args": WritesAFile()}}, tmp_path / "payload.pt")
    for name in [*cases, "list.pt", "foreign.pt", "payload.pt"]:
        line, _ = fails_in_one_line(capsys, "ch06", ["--resume", str(tmp_path / name), "--out", files["out"]])
        assert str(tmp_path / name) in line, line
    assert not (tmp_path / "marker.txt").exists()


def test_ctrl_c_during_training_is_one_sentence_with_the_resume_command(capsys, files, monkeypatch, tmp_path):
    """Chapter 6 stopped by Ctrl-C: exit status 130 and one sentence with the step, the checkpoint and --resume."""
    from minigpt.train import TrainingInterrupted
    ch06 = script("ch06")

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted(17, str(tmp_path / "ckpt.pt"))

    monkeypatch.setattr(ch06, "train", interrupted)
    stories = folder(tmp_path / "stories", {"a.txt": STORY.encode() * 8, "b.txt": STORY.encode() * 8})
    with pytest.raises(SystemExit) as stop:
        ch06.main(["--stories", str(stories), "--context", "16", "--batch-size", "2", "--out", str(tmp_path),
                   "--quiet"])
    err = capsys.readouterr().err
    assert stop.value.code == 130 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "after step 17" in lines[0]
    assert f"chapters/ch06_pretraining.py --resume {tmp_path / 'ckpt.pt'}" in lines[0]
