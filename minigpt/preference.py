"""Chapter 13: learning from preferences — the data, and a reward model that learns to score answers.

After instruction finetuning (chapter 9) a model answers, but nothing has told it which of two answers is better. The
next stage learns that from people's preferences: for a prompt, answers ranked best first. InstructGPT trains a
*reward model* on them (a GPT whose head gives one number per answer, trained so that the better answer of every pair
scores higher: the Bradley–Terry loss −log σ(r_better − r_worse)) and then optimises the policy against it with
reinforcement learning; DPO (minigpt/dpo.py) skips the reward model and trains the policy on the pairs directly.

Read it in this order:
  1. RankedPrompt, load_preferences      the two file formats (ranked lists; chosen/rejected pairs, also as whole
                                         "\\n\\nHuman: … \\n\\nAssistant: …" dialogues), JSON or JSONL, file:line errors
  2. ranked_pairs, best_pairs            K ranked answers -> their K·(K−1)/2 pairs (or the best against each other)
  3. tokenize_prompts, PairDataset       token ids; the pairs DPO and the held-out accuracy use
  4. collate_ranked, BradleyTerryLoss    a reward-model batch (every answer of a prompt once, the pairs as indices),
                                         and its loss for chapter 6's train()
  5. reward_model_from, train_reward_model, reward_scores, reward_margins
  6. PairMetrics                         what the learner sees: margins and accuracy per step (95% intervals:
                                         minigpt.metrics.bootstrap_interval)
What it does not do: no reinforcement learning against the reward model (see minigpt/dpo.py's docstring for where
PPO and GRPO would go), no ties between answers, no per-token rewards.
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from minigpt.classify import GPTClassifier, pad_or_truncate
from minigpt.files import InputError
from minigpt.instruct import END_TOKEN_ID, LengthGroupedBatchSampler, collate_instructions, format_prompt
from minigpt.model import GPTModel
from minigpt.train import TrainConfig, train

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DIR = REPO_ROOT / "data" / "preferences"
SPLIT_NAMES = ("train", "validation", "test")
DIALOGUE_TURN = "\n\nAssistant:"   # where an answer starts in a whole-dialogue string


# ------------------------------------------------------------------------------------------- 1. records

@dataclass
class RankedPrompt:
    """One prompt (the exact text the model reads before answering) and its answers, best first (at least two)."""
    prompt: str
    responses: list[str]
    kinds: list[str] | None = None   # what each answer is ("good", "refusal", ...), if the data says
    where: str = ""                  # file:line, for messages
    request: dict | None = None      # {"instruction", "input"} of a ranked record: what chapter 9's generation takes


def _text(record: dict, field: str, where: str, allow_empty: bool = False) -> str:
    value = record.get(field)
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InputError(f"{where}: field {field!r} is empty")
    return value


def split_dialogue(chosen: str, rejected: str, where: str = "") -> tuple[str, str, str]:
    """(prompt, chosen answer, rejected answer) from two whole dialogues that share everything up to the last answer.

    The prompt is the shared text up to and including the last "\\n\\nAssistant:" in it; what follows in each string
    is its answer. Raises InputError if the two share no such prefix or an answer is empty.
    """
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(DIALOGUE_TURN)
    if cut < 0:
        raise InputError(f"{where}: 'chosen' and 'rejected' do not share a prompt ending in {DIALOGUE_TURN!r}; "
                         f"give a 'prompt' field, or whole dialogues that differ only in the last answer")
    cut += len(DIALOGUE_TURN)
    if not chosen[cut:].strip() or not rejected[cut:].strip():
        raise InputError(f"{where}: an answer after the shared prompt is empty")
    return chosen[:cut], chosen[cut:], rejected[cut:]


def check_preference(record: Any, where: str, style: str = "alpaca") -> RankedPrompt:
    """A RankedPrompt from one record of either format, or InputError naming `where`.

    Ranked: {"instruction", "input" (optional), "output": [best, ..., worst], "kinds" (optional)}; the prompt is
    chapter 9's `format_prompt` in `style`. Pairs: {"prompt", "chosen", "rejected"}, the prompt laid out the same way
    unless style is "raw" (used as it is); or {"chosen", "rejected"} as whole dialogues (see split_dialogue).
    """
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if isinstance(record.get("output"), list):
        answers = record["output"]
        if len(answers) < 2 or not all(isinstance(a, str) and a.strip() for a in answers):
            raise InputError(f"{where}: field 'output' must list at least two non-empty answers, best first")
        if len(set(answers)) != len(answers):
            raise InputError(f"{where}: field 'output' holds the same answer twice; a ranking needs different answers")
        kinds = record.get("kinds")
        if kinds is not None and (not isinstance(kinds, list) or len(kinds) != len(answers)):
            raise InputError(f"{where}: field 'kinds' must be a list with one entry per answer")
        request = {"instruction": _text(record, "instruction", where),
                   "input": _text(record, "input", where, allow_empty=True) if "input" in record else ""}
        prompt = format_prompt(request, style) if style != "raw" else \
            request["instruction"] + (f"\n{request['input']}" if request["input"] else "")
        return RankedPrompt(prompt, list(answers), kinds, where, request)
    if "chosen" in record or "rejected" in record:
        chosen, rejected = _text(record, "chosen", where), _text(record, "rejected", where)
        if "prompt" in record:
            prompt = _text(record, "prompt", where)
            if style != "raw":
                prompt = format_prompt({"instruction": prompt, "input": ""}, style)
        else:
            prompt, chosen, rejected = split_dialogue(chosen, rejected, where)
        if chosen == rejected:
            raise InputError(f"{where}: 'chosen' and 'rejected' are the same answer")
        return RankedPrompt(prompt, [chosen, rejected], None, where)
    raise InputError(f"{where}: expected a ranked record ('instruction', 'output': [best, ..., worst]) or a pair "
                     f"('prompt', 'chosen', 'rejected'), got fields {sorted(record)[:6]}")


def _json_array(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """(line, value) for each element of a JSON array, so that errors can name the line a record starts on."""
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    while True:
        while at < len(text) and text[at] in " \t\r\n,":
            at += 1
        if at >= len(text):
            raise InputError(f"{path}:{text.count(chr(10)) + 1}: the JSON array is not closed with ']'")
        if text[at] == "]":
            return
        line = text.count("\n", 0, at) + 1
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        yield line, value


def _json_lines(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """(line, value) for each non-blank line of a JSONL file."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{number}: not valid JSON ({e.msg}); a JSONL file holds one object per "
                                 f"line") from None


def load_preferences(path: str | os.PathLike, style: str = "alpaca") -> list[RankedPrompt]:
    """Read a JSON array or JSONL file of preference records (either format, see check_preference)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no preference data here (expected a JSON array or JSONL file)", str(path))
    text = path.read_text(encoding="utf-8-sig")
    values = _json_array(text, path) if text.lstrip().startswith("[") else _json_lines(text, path)
    records = [check_preference(value, f"{path}:{line}", style) for line, value in values]
    if not records:
        raise InputError(f"{path} holds no preference records")
    return records


def load_preference_splits(path: str | os.PathLike | None = None, style: str = "alpaca"
                           ) -> dict[str, list[RankedPrompt]]:
    """train/validation/test from a folder of {split}.json(l) files (default: the bundled data/preferences)."""
    folder = Path(path) if path is not None else BUNDLED_DIR
    splits = {}
    for name in SPLIT_NAMES:
        found = [folder / f"{name}{ext}" for ext in (".jsonl", ".json") if (folder / f"{name}{ext}").is_file()]
        if not found:
            raise FileNotFoundError(2, f"no {name}.jsonl or {name}.json in this folder", str(folder))
        splits[name] = load_preferences(found[0], style)
    return splits


# ------------------------------------------------------------------------------------------- 2. pairs

def ranked_pairs(k: int) -> list[tuple[int, int]]:
    """Every (better, worse) pair of k answers ranked best first: k·(k−1)/2 of them, as InstructGPT trains on."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def best_pairs(k: int) -> list[tuple[int, int]]:
    """The best answer against each of the others: k − 1 (chosen, rejected) pairs."""
    return [(0, j) for j in range(1, k)]


# ------------------------------------------------------------------------------------------- 3. tokens

def tokenize_prompts(items: Sequence[RankedPrompt], tokenizer, max_length: int | None = None
                     ) -> list[tuple[list[int], list[list[int]]]]:
    """(prompt ids, [ids of each answer]) per prompt. The prompt is encoded apart from the answers so that the border
    is exact. With `max_length`, the prompt loses tokens from its start until its longest answer and the end token
    fit (the start of chapter 9's prompts is the fixed preamble; the request itself sits at the end)."""
    out = []
    for item in items:
        prompt = list(tokenizer.encode_ordinary(item.prompt))
        answers = [list(tokenizer.encode_ordinary(r)) for r in item.responses]
        if max_length is not None:
            room = max_length - 1 - max(len(a) for a in answers)
            if room < 1:
                raise InputError(f"{item.where}: an answer is {max(len(a) for a in answers)} tokens, too long for "
                                 f"the model's context of {max_length}")
            prompt = prompt[-room:]
        out.append((prompt, answers))
    return out


class PairDataset(Dataset):
    """(prompt ids, chosen ids, rejected ids) pairs, with the prompt each came from, its kind, and (optionally,
    see minigpt.dpo.cache_reference) the reference model's log-probabilities of both answers."""

    def __init__(self, items: Sequence[RankedPrompt], tokenizer, max_length: int | None = None,
                 pairs=best_pairs):
        self.pairs: list[tuple[list[int], list[int], list[int]]] = []
        self.groups: list[int] = []           # which prompt a pair comes from (pairs of one prompt are not independent)
        self.kinds: list[str] = []            # the rejected answer's kind
        for g, (item, (prompt, answers)) in enumerate(zip(items, tokenize_prompts(items, tokenizer, max_length))):
            for better, worse in pairs(len(answers)):
                self.pairs.append((prompt, answers[better], answers[worse]))
                self.groups.append(g)
                self.kinds.append(item.kinds[worse] if item.kinds else "rejected")
        self.reference: torch.Tensor | None = None   # (pairs, 2): log π_ref(chosen), log π_ref(rejected)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        ref = None if self.reference is None else self.reference[i]
        return (*self.pairs[i], ref)

    def lengths(self) -> list[int]:
        return [len(p) + max(len(c), len(r)) for p, c, r in self.pairs]


def collate_pairs(batch: Sequence, allowed_max_length: int | None = None) -> tuple[torch.Tensor, ...]:
    """(inputs, targets[, reference]) for DPO: chosen rows first, then the rejected rows in the same order.

    Chapter 9's collate_instructions does the padding and the masking (-100 on prompt and padding, the end token
    kept as a target), so the summed log-probability of a row is exactly its answer's. `reference` (2·pairs,) is
    there when every pair carries cached reference log-probabilities.
    """
    rows = [(p + c, len(p)) for p, c, _, _ in batch] + [(p + r, len(p)) for p, _, r, _ in batch]
    inputs, targets = collate_instructions(rows, mask_prompt=True, allowed_max_length=allowed_max_length)
    if all(item[3] is not None for item in batch):
        reference = torch.stack([item[3] for item in batch])   # (pairs, 2)
        return inputs, targets, torch.cat([reference[:, 0], reference[:, 1]])
    return inputs, targets


def pair_loader(dataset: PairDataset, batch_size: int, shuffle: bool = True, seed: int = 123,
                allowed_max_length: int | None = None) -> DataLoader:
    """Length-grouped batches of pairs (chapter 9's sampler), reshuffled every epoch with `seed`."""
    sampler = LengthGroupedBatchSampler(dataset.lengths(), batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_sampler=sampler,
                      collate_fn=partial(collate_pairs, allowed_max_length=allowed_max_length))


# --------------------------------------------------------------------------------- 4. reward-model batches

class RankedDataset(Dataset):
    """Tokenized prompts with all their ranked answers: one item per prompt, for the reward model."""

    def __init__(self, items: Sequence[RankedPrompt], tokenizer, max_length: int | None = None):
        self.items = tokenize_prompts(items, tokenizer, max_length)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]

    def lengths(self) -> list[int]:
        return [len(p) + max(len(a) for a in answers) for p, answers in self.items]


def reward_batch(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, lengths): each sequence + the end token, right-padded (chapter 8's pad_or_truncate). The end token is
    where the reward is read: the one position that has seen the whole prompt and answer."""
    rows = [list(s) + [END_TOKEN_ID] for s in sequences]
    longest = max(len(r) for r in rows)
    ids = torch.tensor([pad_or_truncate(r, longest, END_TOKEN_ID) for r in rows])
    return ids, torch.tensor([len(r) for r in rows])


def collate_ranked(batch: Sequence[tuple[list[int], list[list[int]]]]) -> tuple[torch.Tensor, ...]:
    """(ids, lengths, better, worse, prompt_of): every answer of every prompt once, and the K·(K−1)/2 pairs of each
    prompt as row indices (better[p] beats worse[p]; prompt_of[p] says which prompt the pair belongs to).

    Scoring each answer once and comparing the scores in all pairs is InstructGPT's trick: a prompt's K answers cost
    K forward passes, not K·(K−1).
    """
    sequences, better, worse, prompt_of = [], [], [], []
    for g, (prompt, answers) in enumerate(batch):
        first = len(sequences)
        sequences += [prompt + a for a in answers]
        for i, j in ranked_pairs(len(answers)):
            better.append(first + i)
            worse.append(first + j)
            prompt_of.append(g)
    ids, lengths = reward_batch(sequences)
    return ids, lengths, torch.tensor(better), torch.tensor(worse), torch.tensor(prompt_of)


def ranked_loader(dataset: RankedDataset, batch_size: int, shuffle: bool = True, seed: int = 123) -> DataLoader:
    """Length-grouped batches of `batch_size` prompts (each with all its answers)."""
    sampler = LengthGroupedBatchSampler(dataset.lengths(), batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_ranked)


class PairMetrics:
    """The scores of both answers of every pair a loss saw, kept apart for training steps and for evaluations.

    train() does not know what a margin is; the loss does, so it records them here as it goes. A call with
    gradients enabled is a training micro-batch; one without (chapter 6's evaluate runs under no_grad) is an
    evaluation batch.
    """

    def __init__(self):
        self.train: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.eval: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        (self.train if torch.is_grad_enabled() else self.eval).append((chosen.detach().float(),
                                                                       rejected.detach().float()))

    @staticmethod
    def curve(records: list, calls_per_point: int) -> dict[str, list[float]]:
        """Mean chosen score, rejected score, margin and accuracy (share of pairs with chosen > rejected) per group of
        `calls_per_point` calls: one optimizer step's micro-batches, or one evaluation's batches."""
        out = {"chosen": [], "rejected": [], "margin": [], "accuracy": []}
        for start in range(0, len(records) - calls_per_point + 1, calls_per_point):
            chosen = torch.cat([c for c, _ in records[start:start + calls_per_point]])
            rejected = torch.cat([r for _, r in records[start:start + calls_per_point]])
            out["chosen"].append(chosen.mean().item())
            out["rejected"].append(rejected.mean().item())
            out["margin"].append((chosen - rejected).mean().item())
            out["accuracy"].append((chosen > rejected).float().mean().item())
        return out


class BradleyTerryLoss:
    """The reward model's loss for chapter 6's train(): −log σ(r_better − r_worse), each prompt weighing one.

    A prompt with K answers gives K·(K−1)/2 pairs; InstructGPT averages over a prompt's pairs, so that a prompt
    with many answers does not count more than one with two (the pairs of one prompt are strongly correlated).
    sizes(batch) -> (prompts, tokens); __call__ returns the sum over prompts of the mean over their pairs.
    """

    def __init__(self):
        self.metrics = PairMetrics()

    def sizes(self, batch: Sequence[torch.Tensor]) -> tuple[int, int]:
        ids, lengths, better, worse, prompt_of = batch
        if ids.dim() != 2 or len(lengths) != len(ids) or not len(better) == len(worse) == len(prompt_of):
            raise TypeError("a reward-model batch is (ids, lengths, better, worse, prompt_of), see collate_ranked")
        return int(torch.unique(prompt_of).numel()), ids.numel()

    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        ids, lengths, better, worse, prompt_of = batch
        scores = model(ids, lengths)[:, 0].float()
        chosen, rejected = scores[better], scores[worse]
        self.metrics.add(chosen, rejected)
        pairs_per_prompt = torch.bincount(prompt_of)[prompt_of].float()
        return (-F.logsigmoid(chosen - rejected) / pairs_per_prompt).sum()


# ----------------------------------------------------------------------------------------- 5. reward model

def reward_model_from(gpt: GPTModel) -> GPTClassifier:
    """A copy of `gpt` with chapter 8's head and pooling: one number per sequence, read at its last real token.

    InstructGPT starts its reward model from the instruction-tuned model: it already reads prompts and answers.
    """
    return GPTClassifier(copy.deepcopy(gpt), num_classes=1, pooling="last", labels=("reward",))


def train_reward_model(model: GPTClassifier, train_set: RankedDataset, val_set: RankedDataset | None,
                       config: TrainConfig, *, batch_size: int = 8, seed: int = 123,
                       resume: str | os.PathLike | None = None, extra: dict | None = None
                       ) -> tuple[dict, BradleyTerryLoss]:
    """Chapter 6's train() with the Bradley–Terry loss; returns (its history, the loss with its metrics).

    train() writes its checkpoint (config.out_dir/ckpt.pt) for --resume; it is labelled as a language model, so
    save the trained reward model with minigpt.classify.save_classifier for minigpt.loading.load_model to open.
    """
    loss = BradleyTerryLoss()
    val_batches = None if val_set is None or len(val_set) == 0 else ranked_loader(val_set, batch_size, shuffle=False)
    history = train(model, ranked_loader(train_set, batch_size, shuffle=True, seed=seed), val_batches, config,
                    loss=loss, resume=resume, extra=extra)
    return history, loss


@torch.no_grad()
def reward_scores(model: GPTClassifier, sequences: Sequence[Sequence[int]], batch_size: int = 32) -> torch.Tensor:
    """The reward of each token sequence (prompt + answer; the end token is added), in eval mode, as a float tensor."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))   # similar lengths, little padding
    scores = torch.empty(len(sequences))
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        ids, lengths = reward_batch([sequences[i] for i in chosen])
        scores[chosen] = model(ids.to(device), lengths.to(device))[:, 0].float().cpu()
    model.train(was_training)
    return scores


def reward_margins(model: GPTClassifier, pairs: PairDataset, batch_size: int = 32) -> torch.Tensor:
    """r(chosen) − r(rejected) for every pair: positive where the reward model agrees with the data."""
    chosen = reward_scores(model, [p + c for p, c, _ in pairs.pairs], batch_size)
    rejected = reward_scores(model, [p + r for p, _, r in pairs.pairs], batch_size)
    return chosen - rejected
