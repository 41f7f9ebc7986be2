"""Chapter 9: instruction finetuning — teaching a GPT to answer requests — and measuring how well it does.

A pretrained GPT continues text; it does not know that "What is the capital of Peru?" wants an answer. We show
it thousands of (instruction, optional input, response) records written in one fixed prompt layout (Alpaca's
"### Instruction: … ### Response:" or Phi-3's "<|user|> … <|assistant|>") and train it, with the ordinary
next-token loss, to continue each prompt with the response and then the end token. Afterwards it answers
prompts in that layout, and stops by itself. Scores compare its answers with reference answers.

Read it in this order:
  1. load_records, split_records          Alpaca-style JSON / JSONL, checked record by record
  2. format_prompt, format_example        the two prompt styles; earlier turns ("history") cut oldest-first
  3. InstructionDataset, collate_instructions, LengthGroupedBatchSampler, instruction_loader
                                          token ids -> padded (inputs, targets) batches, -100 where no loss
  4. generate_responses, extract_response the finetuned model answering the test prompts
  5. normalize_answer, exact_match, token_f1, lcs_length, rouge_l, response_perplexity, score_responses
  6. finetune                             chapter 6's training loop on these batches
A finetuned checkpoint opens with minigpt.loading.load_model (LoRA adapters merged); the optional local LLM judge
(Ollama) is tooling and lives in minigpt/judge.py.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Sampler

from minigpt.files import InputError, write_text_atomic
from minigpt.metrics import (CLOSED_MAX_WORDS, answer_tokens, exact_match, is_closed_task,  # noqa: F401 (chapter 9's API)
                             lcs_length, normalize_answer, rouge_l, score_responses, token_f1)
from minigpt.tokenizer import GPT2_EOT_ID
from minigpt.train import IGNORE_INDEX, TrainConfig, evaluate, train

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DIR = REPO_ROOT / "data" / "instructions"
SPLIT_NAMES = ("train", "validation", "test")

END_TOKEN_ID = GPT2_EOT_ID   # <|endoftext|> ends every response, and pads batches (GPT-2 has no padding token)

# The Stanford Alpaca data (52,002 records, written by text-davinci-003). Its sha256 could not be looked up
# here (no network, and no public source pinning it was found), so it is None and `download_alpaca` refuses
# to run without verify=False (the chapter script's --no-verify).
ALPACA_URL = "https://raw.githubusercontent.com/tatsu-lab/stanford_alpaca/main/alpaca_data.json"
ALPACA_SHA256: str | None = None

STYLES = ("alpaca", "phi3")
RECORD_FIELDS = ("instruction", "input", "output")


class RecordError(InputError):
    """A record that is not {"instruction": str, "input": str, "output": str, "history": [...]}."""


# ------------------------------------------------------------------------------------------- 1. records


def check_record(record: Any, where: str) -> dict:
    """Return `record` as {"instruction", "input", "output"[, "history"]}, or raise RecordError naming `where`.

    "input" may be missing (it means ""); other fields must be strings, the instruction and output non-empty.
    "history", if present, is a list of earlier turns, oldest first, each with the same three fields. Fields
    this chapter does not use (an id, a category) are kept as they are.
    """
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object with fields {RECORD_FIELDS}, got {type(record).__name__}")
    checked = dict(record)
    checked.setdefault("input", "")
    if checked["input"] is None:
        checked["input"] = ""
    for field in RECORD_FIELDS:
        if field not in checked:
            raise RecordError(f"{where}: missing field {field!r} (a record needs {RECORD_FIELDS[0]!r} and "
                              f"{RECORD_FIELDS[2]!r}; {RECORD_FIELDS[1]!r} is optional)")
        if not isinstance(checked[field], str):
            raise RecordError(f"{where}: field {field!r} must be a string, got {_describe(checked[field])}")
        if field != "input" and not checked[field].strip():
            raise RecordError(f"{where}: field {field!r} is empty")
        if not _is_unicode_text(checked[field]):
            raise RecordError(f"{where}: field {field!r} holds a lone surrogate (a \\ud800-\\udfff escape that is "
                              f"half of a character), which is not text")
    if "history" in checked:
        history = checked["history"]
        if history is None:
            history = []
        if not isinstance(history, list):
            raise RecordError(f"{where}: field 'history' must be a list of earlier turns, got {type(history).__name__}")
        turns = []
        for i, turn in enumerate(history):
            if isinstance(turn, dict) and "history" in turn:
                raise RecordError(f"{where}: field 'history[{i}]' has a history of its own; list every earlier "
                                  f"turn in the outer record's history, oldest first")
            turns.append(check_record(turn, f"{where}: field 'history[{i}]'"))
        checked["history"] = turns
    extra = sorted(set(checked) - {*RECORD_FIELDS, "history"})
    if extra and not _writable({k: checked[k] for k in extra}):
        # Fields this chapter does not read are still written back out beside the answers (write_responses).
        raise RecordError(f"{where}: one of the fields {extra} cannot be written back as JSON text (a lone "
                          f"surrogate such as \\ud800, or nesting thousands of levels deep)")
    return checked


def _describe(value: Any) -> str:
    """A value's type and a short look at it; a list or object is not printed (it may be huge, or deeply nested)."""
    shown = "" if value is None or isinstance(value, (list, dict)) else f" {repr(value)[:60]}"
    return f"{'null' if value is None else type(value).__name__}{shown}"


def _writable(value: Any) -> bool:
    try:
        return _is_unicode_text(json.dumps(value, ensure_ascii=False))
    except RecursionError:
        return False


def _is_unicode_text(text: str) -> bool:
    """Whether `text` can be written as UTF-8: JSON's "\\ud800" escapes can put half a character into a str."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_records(path: str | os.PathLike) -> list[dict]:
    """Read Alpaca-style records from a JSON array file or a JSONL file (one object per line).

    The format is taken from the content, not the name: a file whose first non-blank character is "[" is a
    JSON array, anything else is read line by line. Every record is checked (`check_record`); an error is a
    RecordError that names file:line (the line where the record starts, and for a JSON array its index too)
    and says what is wrong. Nothing in a file, however broken, raises anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no instruction data at {path}: expected a JSON array or JSONL file of records "
                                f"{{\"instruction\", \"input\", \"output\"}}")
    text = _read_utf8(path)
    start = _JSON_SPACE.match(text).end()
    if text.startswith("[", start):
        records = _array_records(text, start, path)
        if not records:
            raise RecordError(f"{path} holds no records (an empty JSON array)")
        return records
    records = _jsonl_records(text, path)
    if not records:
        raise RecordError(f"{path} holds no records")
    return records


# Whitespace between JSON values, as the JSON grammar defines it (str.isspace() would also take "\x85" or "\u3000").
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")   # -sig: a byte order mark at the start is not part of the data
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise RecordError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start}); save the file as "
                          f"UTF-8") from None


def _decode_value(text: str, pos: int, path: Path, line: int, first_line: int = 1, hint: str = ""
                  ) -> tuple[Any, int]:
    """The JSON value starting at text[pos] and the index where it ends; every way of failing is a RecordError.

    `line` is the line the value starts on, `first_line` the line number of text's first line (for a text that
    is one line of a file), `hint` is added to a message about broken JSON.
    """
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}:{first_line - 1 + e.lineno}: not valid JSON ({e.msg}){hint}") from None
    except RecursionError:   # json recurses once per nesting level: thousands of "[" exhaust the stack
        raise RecordError(f"{path}:{line}: not valid JSON here (nested too deeply to be a record){hint}") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise RecordError(f"{path}:{line}: not valid JSON here ({e}){hint}") from None


_DECODER = json.JSONDecoder()


def _array_records(text: str, start: int, path: Path) -> list[dict]:
    """The checked records of the JSON array that opens at text[start], each located by the line it starts on.

    json.loads would parse the whole array at once and lose where each record was; decoding one element at a
    time keeps its position, so an error names the line to look at, as it does for JSONL.
    """
    records: list[dict] = []
    line, counted = 1, 0

    def line_at(pos: int) -> int:   # counting newlines incrementally keeps this linear in the file's length
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    pos = _JSON_SPACE.match(text, start + 1).end()
    if text.startswith("]", pos):
        return records
    while True:
        where = f"{path}:{line_at(pos)}: record {len(records)}"
        value, pos = _decode_value(text, pos, path, line)
        records.append(check_record(value, where))
        pos = _JSON_SPACE.match(text, pos).end()
        if text.startswith(",", pos):
            pos = _JSON_SPACE.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            break
        else:
            raise RecordError(f"{path}:{line_at(pos)}: not valid JSON (expected ',' or ']' after record "
                              f"{len(records) - 1})")
    rest = _JSON_SPACE.match(text, pos + 1).end()
    if rest != len(text):
        raise RecordError(f"{path}:{line_at(rest)}: not valid JSON (more text after the array's closing ']')")
    return records


_JSONL_HINT = "; a JSONL file holds one JSON object per line (or pass a JSON array starting with '[')"


def _jsonl_records(text: str, path: Path) -> list[dict]:
    """The checked records of a JSONL text, one object per line; blank lines are skipped."""
    records = []
    # Lines end at "\n" only, as in an editor: str.splitlines() would also cut at "\u2028" or "\x85", which JSON
    # allows unescaped inside a string, and so break a valid line in two.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        record, end = _decode_value(line, _JSON_SPACE.match(line).end(), path, number, first_line=number,
                                    hint=_JSONL_HINT)
        if _JSON_SPACE.match(line, end).end() != len(line):
            raise RecordError(f"{path}:{number}: not valid JSON (more text after the object); a JSONL file holds "
                              f"one JSON object per line")
        records.append(check_record(record, f"{path}:{number}"))
    return records


def split_records(records: Sequence[dict], fractions: tuple[float, float, float] = (0.85, 0.05, 0.10),
                  seed: int = 123) -> dict[str, list[dict]]:
    """Shuffle (seeded) and cut into {"train", "validation", "test"} with the given fractions."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers adding up to 1, got {fractions}")
    order = list(records)
    random.Random(seed).shuffle(order)
    n_test = round(len(order) * fractions[2])
    n_validation = round(len(order) * fractions[1])
    n_train = len(order) - n_test - n_validation
    return {"train": order[:n_train], "validation": order[n_train:n_train + n_validation],
            "test": order[n_train + n_validation:]}


def load_splits(path: str | os.PathLike | None = None, seed: int = 123) -> dict[str, list[dict]]:
    """The train/validation/test records: a folder holding train/validation/test .json or .jsonl files (default:
    the bundled data/instructions), or a single file that is split 85/5/10 with `seed`."""
    path = Path(path) if path is not None else BUNDLED_DIR
    if path.is_file():
        return split_records(load_records(path), seed=seed)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither an instruction data file nor a folder of split files")
    splits = {}
    for name in SPLIT_NAMES:
        found = [path / f"{name}{ext}" for ext in (".json", ".jsonl") if (path / f"{name}{ext}").is_file()]
        if not found:
            raise FileNotFoundError(f"{path} has no {name}.json or {name}.jsonl (a data folder needs "
                                    f"{', '.join(SPLIT_NAMES)}; or pass one file to have it split)")
        splits[name] = load_records(found[0])
    return splits


def check_splits(splits: dict[str, list[dict]], source: str | os.PathLike) -> None:
    """Raise InputError, naming `source`, if the training or the test split is empty: nothing to learn from, or
    nothing to score. (An empty validation split is allowed: it only watches the loss.)"""
    total = sum(len(records) for records in splits.values())
    for name in ("train", "test"):
        if not splits.get(name):
            raise InputError(f"{source}: the {name} split is empty ({total} records in all); give at least 6 "
                             f"records to split 85/5/10 (11 or more for a validation record too)")


def download_alpaca(verify: bool = True, quiet: bool = False) -> Path:
    """Download Stanford Alpaca's alpaca_data.json into the cache (once) and return its path.

    No sha256 is pinned (see ALPACA_SHA256), so the download is refused unless `verify=False`.
    """
    from minigpt.download import download
    if verify and ALPACA_SHA256 is None:
        raise RuntimeError("no sha256 is pinned for alpaca_data.json (it could not be looked up when this was "
                           "written), so the download cannot be verified; pass verify=False (--no-verify) to "
                           "download it unverified, or pass a local copy with --data")
    return download(ALPACA_URL, "alpaca_data.json", ALPACA_SHA256 if verify else None, subdir="alpaca",
                    quiet=quiet)


# ------------------------------------------------------------------------------------- 2. prompt styles

# Alpaca's layout (the Stanford Alpaca training prompt): a fixed preamble, then "### Instruction:",
# "### Input:" (only when there is input) and "### Response:" sections separated by blank lines.
ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")
ALPACA_PREAMBLE_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                              "further context. Write a response that appropriately completes the request.")
# Phi-3's chat layout. For GPT-2's tokenizer these markers are ordinary text (several tokens each).
PHI3_USER, PHI3_ASSISTANT, PHI3_END = "<|user|>\n", "<|assistant|>\n", "<|end|>\n"


def _turn(record: dict, style: str) -> str:
    """One request, ending with the response template (where the model's answer starts)."""
    if style == "alpaca":
        text = f"### Instruction:\n{record['instruction']}\n\n"
        if record.get("input"):
            text += f"### Input:\n{record['input']}\n\n"
        return text + "### Response:\n"
    user = record["instruction"] + (f"\n{record['input']}" if record.get("input") else "")
    return f"{PHI3_USER}{user}{PHI3_END}{PHI3_ASSISTANT}"


def _past_turn(record: dict, style: str) -> str:
    """An earlier request together with its answer, as it appears before the current request."""
    if style == "alpaca":
        return _turn(record, style) + record["output"] + "\n\n"
    return _turn(record, style) + record["output"] + PHI3_END


def _prompt_with_history(record: dict, style: str, history: Sequence[dict]) -> str:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    past = "".join(_past_turn(turn, style) for turn in history)
    if style == "alpaca":
        preamble = ALPACA_PREAMBLE_WITH_INPUT if record.get("input") else ALPACA_PREAMBLE
        return f"{preamble}\n\n{past}{_turn(record, style)}"
    return past + _turn(record, style)


def _count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode_ordinary(text))


def kept_history(record: dict, style: str = "alpaca", tokenizer=None, max_tokens: int | None = None) -> list[dict]:
    """The earlier turns that fit: the newest ones, as many as keep the prompt within `max_tokens` tokens.

    Without a tokenizer or a budget the whole history is kept. The current request itself is never cut: if it
    alone is longer than the budget, no history is kept and the prompt stays too long (the collate function's
    allowed_max_length cuts it then).
    """
    history = list(record.get("history") or [])
    if tokenizer is None or max_tokens is None:
        return history
    # Drop from the front (oldest first): the newest turns are the ones the current request refers to.
    while history and _count_tokens(tokenizer, _prompt_with_history(record, style, history)) > max_tokens:
        history.pop(0)
    return history


def format_prompt(record: dict, style: str = "alpaca", *, tokenizer=None, max_tokens: int | None = None) -> str:
    """The prompt for `record` in `style` ("alpaca" or "phi3"), ending with the response template.

    Earlier turns in record["history"] come first, oldest first. With `tokenizer` (anything with
    encode_ordinary) and `max_tokens`, the oldest turns are left out until the prompt fits in max_tokens tokens.
    """
    return _prompt_with_history(record, style, kept_history(record, style, tokenizer, max_tokens))


def format_example(record: dict, style: str = "alpaca") -> str:
    """Prompt followed by the reference response: the text the model is trained on (before the end token)."""
    return format_prompt(record, style) + record["output"]


def extract_response(generated: str, style: str = "alpaca") -> str:
    """The answer in the text a model generated after a prompt: up to where it starts a new turn, stripped.

    A model that learned the layout but not yet to stop goes on with "### Instruction:" or "<|user|>"; what
    follows is not part of its answer.
    """
    markers = ("\n### ", "### Instruction:", "### Response:") if style == "alpaca" else \
        (PHI3_END.strip(), PHI3_USER.strip(), PHI3_ASSISTANT.strip())
    cut = len(generated)
    for marker in markers:
        at = generated.find(marker)
        if at != -1:
            cut = min(cut, at)
    return generated[:cut].strip()


# ------------------------------------------------------------------------------- 3. tokens and batches


class InstructionDataset(Dataset):
    """Token ids of prompt + response for every record, and where the response starts.

    Item i is (ids, prompt_length): ids[:prompt_length] is the prompt, the rest the response. The end token is
    not included; collate_instructions appends it. With `max_length` (the model's context length) the oldest
    history turns are dropped until prompt, response and end token fit.
    """

    def __init__(self, records: Sequence[dict], tokenizer, style: str = "alpaca", max_length: int | None = None):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        self.records = list(records)
        self.style = style
        self.items: list[tuple[list[int], int]] = []
        for record in self.records:
            # Prompt and response are encoded separately so the border between them is exact. The prompt ends
            # with "\n", where GPT-2's pre-tokenizer always splits, so this gives the ids of the joined text.
            response = list(tokenizer.encode_ordinary(record["output"]))
            budget = None if max_length is None else max_length - len(response) - 1
            prompt = list(tokenizer.encode_ordinary(format_prompt(record, style, tokenizer=tokenizer,
                                                                  max_tokens=budget)))
            self.items.append((prompt + response, len(prompt)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.items[i]

    def lengths(self) -> list[int]:
        """Tokens per example: the width of a batch is its longest example's."""
        return [len(ids) for ids, _ in self.items]


def collate_instructions(batch: Sequence[tuple[Sequence[int], int]], pad_token_id: int = END_TOKEN_ID,
                         ignore_index: int = IGNORE_INDEX, allowed_max_length: int | None = None,
                         mask_prompt: bool = False, device: torch.device | str = "cpu"
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (ids, prompt_length) examples into (inputs, targets), both (batch, tokens) int64.

    Each example becomes ids + [end token], right-padded with `pad_token_id` (the end token itself) to the
    longest in the batch. Targets are the inputs shifted left by one: position t is trained to predict token
    t + 1. Target positions past the end token are set to `ignore_index`, so padding adds no loss, but the
    one end token stays a target: that is how the model learns to stop. With `mask_prompt` the targets that
    are prompt tokens are ignored too, so the loss counts only the response (and its end token).
    `allowed_max_length` cuts every row to at most that many tokens (the model's context length).
    """
    if not batch:
        raise ValueError("collate_instructions got an empty batch")
    longest = max(len(ids) for ids, _ in batch)
    inputs, targets = [], []
    for ids, prompt_length in batch:
        ids = list(ids)
        # At least one end token, and one column more than the inputs for the shift. The longest row's final
        # input is its last real token: an input column holding only its end token would predict nothing.
        padded = ids + [pad_token_id] * (longest + 1 - len(ids))
        row_targets = padded[1:]
        # row_targets[len(ids) - 1] is the end token (the target after the last real token); everything after
        # it is padding. Masking by position, not by value, keeps a real 50256 inside the text a target.
        row_targets[len(ids):] = [ignore_index] * (longest - len(ids))
        if mask_prompt:
            # Target t is token t + 1, so the prompt's tokens 1 .. prompt_length - 1 are targets 0 .. prompt_length - 2;
            # target prompt_length - 1 is the response's first token, which stays.
            hidden = max(prompt_length - 1, 0)
            row_targets[:hidden] = [ignore_index] * hidden
        inputs.append(padded[:-1])
        targets.append(row_targets)
    inputs_t = torch.tensor(inputs, dtype=torch.long)
    targets_t = torch.tensor(targets, dtype=torch.long)
    if allowed_max_length is not None:
        inputs_t, targets_t = inputs_t[:, :allowed_max_length], targets_t[:, :allowed_max_length]
    return inputs_t.to(device), targets_t.to(device)


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices whose examples have similar lengths, so little of each batch is padding.

    With `shuffle` (training): each epoch takes a seeded permutation, cuts it into groups of
    `group_batches` batches, sorts every group by length (longest first), cuts it into batches and shuffles
    the order of the batches. Every index appears exactly once per epoch. Without `shuffle` (evaluation) the
    indices are sorted by length once and cut into batches, the same way every time.
    Each pass over the sampler uses the next epoch's permutation (seed + epoch); `set_epoch` picks one.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 123,
                 drop_last: bool = False, group_batches: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if group_batches < 1:
            raise ValueError(f"group_batches must be a positive integer, got {group_batches}")
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.group_batches = drop_last, group_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of epoch `epoch` (the same for the same seed and epoch)."""
        n = len(self.lengths)
        rng = random.Random(self.seed + epoch)
        if self.shuffle:
            order = list(range(n))
            rng.shuffle(order)
            group = self.batch_size * self.group_batches
            # Sorting inside groups, not over everything, keeps batches random while lengths within one match.
            order = [i for start in range(0, n, group)
                     for i in sorted(order[start:start + group], key=lambda i: -self.lengths[i])]
        else:
            order = sorted(range(n), key=lambda i: (-self.lengths[i], i))
        batches = [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches(self.epoch)
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


def instruction_loader(dataset: InstructionDataset, batch_size: int = 8, shuffle: bool = True, seed: int = 123,
                       mask_prompt: bool = False, allowed_max_length: int | None = None,
                       drop_last: bool = False) -> DataLoader:
    """A DataLoader of (inputs, targets) batches grouped by length (see LengthGroupedBatchSampler)."""
    sampler = LengthGroupedBatchSampler(dataset.lengths(), batch_size, shuffle=shuffle, seed=seed,
                                        drop_last=drop_last)
    collate = partial(collate_instructions, mask_prompt=mask_prompt, allowed_max_length=allowed_max_length)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)


# ------------------------------------------------------------------------------------ 4. generation


def generate_responses(model: nn.Module, tokenizer, records: Sequence[dict], style: str = "alpaca",
                       max_new_tokens: int = 64, batch_size: int = 8, temperature: float = 0.0,
                       seed: int | None = None, device: torch.device | str | None = None,
                       progress: bool = True) -> list[str]:
    """The model's answer to every record's prompt (in the records' order), cut by `extract_response`.

    Prompts are sorted by length and generated in batches (left-padded, with a KV cache, each row stopping at
    its end token: minigpt/generate.py). History is cut so that prompt + max_new_tokens fits the context.
    """
    from tqdm import tqdm

    from minigpt.generate import generate_text

    context = model.cfg.context_length
    budget = max(context - max_new_tokens, 1)
    text_only = _OrdinaryText(tokenizer)
    prompts = [format_prompt(r, style, tokenizer=tokenizer, max_tokens=budget) for r in records]
    lengths = [_count_tokens(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    answers: list[str | None] = [None] * len(prompts)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="generating", unit="batch", disable=not progress or len(starts) < 2):
        chosen = order[start:start + batch_size]
        texts = generate_text(model, text_only, [prompts[i] for i in chosen], max_new_tokens,
                              temperature=temperature, seed=seed, eos_id=END_TOKEN_ID, device=device)
        for i, text in zip(chosen, texts):
            answers[i] = extract_response(text, style)
    return answers


class _OrdinaryText:
    """A tokenizer whose encode() reads every string as ordinary text, as InstructionDataset does: a literal
    "<|endoftext|>" in a record is text there, so it must be text in the prompt too (tiktoken would refuse it)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode_ordinary(text))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


def write_responses(records: Sequence[dict], responses: Sequence[str], path: str | os.PathLike,
                    key: str = "model_response") -> Path:
    """Write the records with each model answer next to its reference "output", as a JSON array (atomically)."""
    if len(records) != len(responses):
        raise ValueError(f"{len(records)} records but {len(responses)} responses")
    rows = [{**record, key: response} for record, response in zip(records, responses)]
    return write_text_atomic(path, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")


# --------------------------------------------------------------------------------------- 5. metrics

# exact match, token F1 and ROUGE-L live in minigpt/metrics.py (chapter 12 scores with them too).

def response_perplexity(model: nn.Module, dataset: InstructionDataset, batch_size: int = 8) -> float:
    """exp(mean cross-entropy) of the reference responses given their prompts, per token over the whole set.

    Only response tokens and the end token are scored (the prompt is masked), so this measures how well the
    model predicts the right answer, and the point where it stops, not how well it predicts the template.
    """
    loader = instruction_loader(dataset, batch_size, shuffle=False, mask_prompt=True,
                                allowed_max_length=model.cfg.context_length)
    _, perplexity = evaluate(model, loader)   # chapter 6's token-weighted mean over non-ignored targets
    return perplexity


# -------------------------------------------------------------------------------------- 6. training


def finetune(model: nn.Module, train_dataset: InstructionDataset, val_dataset: InstructionDataset | None = None,
             config=None, *, batch_size: int = 8, mask_prompt: bool = False, seed: int = 123, tokenizer=None,
             resume: str | os.PathLike | None = None, extra: dict | None = None, loss=None) -> dict:
    """Instruction finetuning is pretraining's loop on other batches: run chapter 6's `train` on them.

    `config` is a minigpt.train.TrainConfig (steps, learning rate, schedule, out_dir for the checkpoint and
    loss.png). Training batches are length-grouped and reshuffled every epoch (seeded); validation batches are
    the same every evaluation. `loss` goes to train() (default: its NextTokenLoss; chapter 13 passes one that
    computes the output head at the answer tokens only, with mask_prompt=True). Returns train()'s history (losses
    per step and per evaluation).
    """
    context = model.cfg.context_length
    train_loader = instruction_loader(train_dataset, batch_size, shuffle=True, seed=seed, mask_prompt=mask_prompt,
                                      allowed_max_length=context)
    val_loader = None if val_dataset is None or len(val_dataset) == 0 else \
        instruction_loader(val_dataset, batch_size, shuffle=False, mask_prompt=mask_prompt,
                           allowed_max_length=context)
    return train(model, train_loader, val_loader, config or TrainConfig(), loss=loss, tokenizer=tokenizer,
                 resume=resume, extra=extra)


# ------------------------------------------------------------------------------------------ helpers


