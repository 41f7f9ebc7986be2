"""Chapter 8: finetuning a GPT to classify text (SMS spam or not).

A GPT turns every token into a vector; the last token's vector has seen the whole message through causal
attention, so a small linear layer on it can tell spam from ham. We swap the 50,257-way output head for a
2-way one, pool one position per message (the last real token, not a padding token), and train with cross-
entropy: the head alone, the last blocks too, everything, or low-rank adapters (LoRA, `minigpt/lora.py`).

The file goes data → dataset → model → training → use: read the UCI SMS format, split and balance it, pad the
token ids into batches, wrap GPTModel in GPTClassifier, train and evaluate, classify new text, save and load.
"""
from __future__ import annotations

import dataclasses
import os
import random
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from minigpt.checkpoint import load_checkpoint, portable_config
from minigpt.files import InputError, atomic_open, write_bytes_atomic
from minigpt.lora import ALL_LINEAR, ATTENTION_QV, apply_lora, count_trainable, lora_settings
from minigpt.model import GPTModel
from minigpt.tokenizer import GPT2_EOT_ID

LABELS = ("ham", "spam")   # class 0 and class 1
PAD_TOKEN_ID = GPT2_EOT_ID   # <|endoftext|>: GPT-2 has no padding token, and this one never occurs inside a message

# The UCI SMS Spam Collection (5,574 messages, 4,827 ham and 747 spam). The sha256 of the zip is the one pinned
# by two independent public projects that download this URL; it was not checked here (no network).
SMS_SPAM_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_SPAM_SHA256 = "1587ea43e58e82b14ff1f5425c88e17f8496bfcdb67a583dbff9eefaf9963ce3"

Example = tuple[str, str]  # (label, text)


# ----------------------------------------------------------------------------------------------- data


def read_sms_file(path: str | os.PathLike, labels: Sequence[str] = LABELS) -> list[Example]:
    """Read the UCI SMS Spam Collection format: one message per line, `ham` or `spam`, a TAB, the text.

    A header line on the first line (such as "label<TAB>text") is skipped with a warning; blank lines are
    skipped; any other line that is not `<label><TAB><text>` raises InputError (a ValueError) naming file:line,
    and so does a line that is not UTF-8. Whatever the bytes, nothing else is raised.
    """
    path = Path(path)
    examples: list[Example] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").removeprefix("\ufeff" if number == 1 else "").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{number}: not UTF-8 text ({e.reason} at byte {e.start}); "
                                 f"save the file as UTF-8") from None
            if not line.strip():
                continue
            label, tab, text = line.partition("\t")
            if tab and label in labels and text.strip():
                examples.append((label, text))   # a message may itself contain TABs: only the first one splits
                continue
            if number == 1 and tab and label.strip().lower() in ("label", "class", "category", "v1", "type"):
                warnings.warn(f"{path}:1: skipped the header line {line[:40]!r}; the UCI format has no header")
                continue
            if not tab:
                problem = "no TAB between label and text"
            elif label not in labels:
                problem = f"unknown label {label[:20]!r}"
            else:
                problem = "empty message"
            raise InputError(f"{path}:{number}: {problem}; expected {' or '.join(labels)}, a TAB, then the message "
                             f"text, got {line[:60]!r}")
    if not examples:
        raise InputError(f"{path} holds no messages; expected lines like 'ham<TAB>See you at 8'")
    return examples


def write_sms_file(examples: Sequence[Example], path: str | os.PathLike) -> Path:
    """Write examples in the UCI format, atomically (a crash never leaves half a file)."""
    path = Path(path)
    for label, text in examples:
        if "\n" in text or "\r" in text:
            raise ValueError(f"a message cannot contain a line break in the UCI format: {text[:40]!r}")
    write_bytes_atomic(path, "".join(f"{label}\t{text}\n" for label, text in examples).encode("utf-8"))
    return path


def stratified_split(examples: Sequence[Example], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                     seed: int = 123) -> tuple[list[Example], list[Example], list[Example]]:
    """Shuffle each class with `seed` and cut it into train/validation/test by `fractions`.

    Splitting per class keeps the class ratio the same in all three parts. The same seed gives the same split.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers that sum to 1, got {fractions}")
    rng = random.Random(seed)
    parts: tuple[list[Example], list[Example], list[Example]] = ([], [], [])
    for label in sorted({label for label, _ in examples}):
        group = [e for e in examples if e[0] == label]
        rng.shuffle(group)
        n_train = round(fractions[0] * len(group))
        n_val = round(fractions[1] * len(group))
        parts[0].extend(group[:n_train])
        parts[1].extend(group[n_train:n_train + n_val])
        parts[2].extend(group[n_train + n_val:])
    for part in parts:
        rng.shuffle(part)   # mix the classes again
    return parts


def check_split(examples: Sequence[Example], what: str, source: str | os.PathLike,
                labels: Sequence[str] = LABELS, advice: str = "") -> None:
    """Raise InputError, naming `source` (the file) and `what` ("the test split"), if `examples` cannot train or
    measure a classifier.

    An empty split measures nothing. A split of one class measures nothing either: a model that always answers
    that class scores 100% on it (and training on one class teaches only that answer). `advice` ends the message.
    """
    needs = f"it needs messages of each class ({' and '.join(labels)}){advice}"
    if not examples:
        raise InputError(f"{source}: {what} has no messages; {needs}")
    counts = Counter(label for label, _ in examples)
    if len(counts) == 1:
        (label, n), = counts.items()
        raise InputError(f"{source}: every message in {what} is {label!r} ({n}): always answering {label!r} would "
                         f"score 100% on it, so it can neither train nor measure anything; {needs}")


def majority_baseline(examples: Sequence[Example], labels: Sequence[str] = LABELS) -> tuple[str, float]:
    """(label, accuracy) of the best constant answer on `examples`: the most frequent label (ties: first in
    `labels`). A classifier is worth something only where its accuracy beats this."""
    if not examples:
        raise ValueError("majority_baseline needs at least one example")
    counts = Counter(label for label, _ in examples)
    label = max(labels, key=lambda l: (counts[l], -list(labels).index(l)))
    return label, counts[label] / len(examples)


def format_accuracy(accuracy: float, baseline: tuple[str, float]) -> str:
    """ "93.4% (always answering 'ham' would score 50.0%)": an accuracy means something only beside that."""
    label, score = baseline
    return f"{accuracy:.1%} (always answering {label!r} would score {score:.1%})"


def undersample(examples: Sequence[Example], seed: int = 123) -> list[Example]:
    """Keep as many examples of each class as the rarest class has, chosen at random; order is kept.

    With 87% ham, a model that always says "ham" is 87% accurate; on balanced data chance is 50%, so accuracy
    means what it says, and the training signal is not dominated by one class.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, (label, _) in enumerate(examples):
        by_label.setdefault(label, []).append(i)
    smallest = min(len(indices) for indices in by_label.values())
    keep = set()
    for label in sorted(by_label):
        keep.update(rng.sample(by_label[label], smallest))
    return [e for i, e in enumerate(examples) if i in keep]


def download_sms_spam(verify: bool = True, quiet: bool = False, local: str | os.PathLike | None = None) -> Path:
    """Download the UCI SMS Spam Collection zip (cached), extract `SMSSpamCollection` into the cache, return its path.

    `local`: a copy of the zip downloaded elsewhere (no network then). `verify=False` skips the sha256 check,
    for a repackaged zip whose checksum differs from the pinned one.
    """
    from minigpt.download import cache_dir, download
    archive = download(SMS_SPAM_URL, "sms+spam+collection.zip", SMS_SPAM_SHA256 if verify else None,
                       local=local, subdir="sms", quiet=quiet)
    if not zipfile.is_zipfile(archive):
        raise InputError(f"{archive} is not a zip file; pass the UCI zip, or the SMSSpamCollection file inside it")
    with zipfile.ZipFile(archive) as z:
        if "SMSSpamCollection" not in z.namelist():
            raise InputError(f"{archive} has no SMSSpamCollection file (it holds {z.namelist()[:10]})")
        target = cache_dir() / "sms" / "SMSSpamCollection"
        write_bytes_atomic(target, z.read("SMSSpamCollection"))   # half a megabyte: extracting again costs nothing
    return target


# ------------------------------------------------------------------------------------------ dataset


def pad_or_truncate(ids: Sequence[int], length: int, pad_token_id: int = PAD_TOKEN_ID) -> list[int]:
    """The first `length` ids, followed by `pad_token_id` up to `length` (padding goes on the right)."""
    ids = list(ids[:length])
    return ids + [pad_token_id] * (length - len(ids))


class SpamDataset(Dataset):
    """Token ids of each message, truncated and right-padded to one length, with the true lengths and labels.

    Padding goes on the right: in a causal model a real token never attends to a later position, so the
    padding cannot change any real token's vector, and no attention mask is needed. The true lengths are
    stored (not recovered by looking for the pad id) so that pooling knows where each message ends.
    """

    def __init__(self, examples: Sequence[Example], encode: Callable[[str], list[int]], max_length: int | None = None,
                 pad_token_id: int = PAD_TOKEN_ID, labels: Sequence[str] = LABELS):
        encoded = [encode(text) for _, text in examples]
        if any(len(ids) == 0 for ids in encoded):
            raise ValueError("a message encoded to zero tokens; every message needs at least one token")
        self.max_length = max_length or max(len(ids) for ids in encoded)
        self.truncated = sum(len(ids) > self.max_length for ids in encoded)
        self.input_ids = torch.tensor([pad_or_truncate(ids, self.max_length, pad_token_id) for ids in encoded])
        self.lengths = torch.tensor([min(len(ids), self.max_length) for ids in encoded])
        unknown = {label for label, _ in examples} - set(labels)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not among the classes {list(labels)}")
        self.targets = torch.tensor([list(labels).index(label) for label, _ in examples])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.input_ids[i], self.lengths[i], self.targets[i]


def trim_batch(batch: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Stack a batch and drop the padding columns every row of it has: (input_ids, lengths, targets).

    Padding sits on the right and changes no real token, so the cut columns change no prediction; short
    messages then cost less compute than the dataset's longest one.
    """
    input_ids, lengths, targets = (torch.stack(column) for column in zip(*batch))
    return input_ids[:, :int(lengths.max())], lengths, targets


def make_loader(dataset: SpamDataset, batch_size: int = 8, shuffle: bool = False, seed: int = 123) -> DataLoader:
    """Batches of (input_ids, lengths, targets); a seeded shuffle gives the same order for the same seed."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=trim_batch)


# -------------------------------------------------------------------------------------------- model

POOLINGS = ("last", "first", "mean")
STRATEGIES = ("head", "last", "all", "lora")


class GPTClassifier(nn.Module):
    """A GPTModel whose vocabulary head is replaced by Linear(emb_dim, num_classes), pooled to one vector.

    `pooling` picks which positions speak for the message: "last" (the last real token: in a causal model the
    only one that has seen every token), "first" (sees only itself), or "mean" over the real tokens.
    Because the head is linear, pooling its per-token outputs is the same as pooling the vectors under it.
    """

    def __init__(self, gpt: GPTModel, num_classes: int = 2, pooling: str = "last",
                 labels: Sequence[str] | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.gpt = gpt
        # A new head replaces the vocabulary head (with tied weights the token embedding keeps its own copy).
        like = gpt.tok_emb.weight   # same device and dtype as the model (GPT-2 may be loaded in bfloat16 on a GPU)
        self.gpt.out_head = nn.Linear(gpt.cfg.emb_dim, num_classes, device=like.device, dtype=like.dtype)
        if labels is None:
            labels = LABELS if num_classes == 2 else [str(i) for i in range(num_classes)]
        if len(labels) != num_classes:
            raise ValueError(f"{len(labels)} labels for {num_classes} classes")
        self.num_classes, self.pooling, self.labels = num_classes, pooling, tuple(labels)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (batch, num_classes) for right-padded ids (batch, tokens) with true `lengths` (batch,)."""
        per_token = self.gpt(input_ids)   # (batch, tokens, num_classes)
        batch, tokens = input_ids.shape
        if lengths is None:
            lengths = torch.full((batch,), tokens, device=input_ids.device)
        lengths = lengths.to(input_ids.device)
        if self.pooling == "last":
            return per_token[torch.arange(batch, device=input_ids.device), lengths - 1]
        if self.pooling == "first":
            return per_token[:, 0]
        real = (torch.arange(tokens, device=input_ids.device)[None, :] < lengths[:, None]).to(per_token.dtype)
        return (per_token * real[:, :, None]).sum(dim=1) / lengths[:, None].to(per_token.dtype)


def set_trainable(model: GPTClassifier, strategy: str, last_blocks: int = 1, lora_rank: int = 8,
                  lora_alpha: float = 16.0, lora_targets: Sequence[str] = ATTENTION_QV) -> tuple[int, int]:
    """Choose which parameters train; returns (trainable, total) parameter counts.

    "head": only the new head (the GPT is a frozen feature extractor); "last": the last `last_blocks`
    transformer blocks, the final LayerNorm and the head; "all": everything; "lora": LoRA adapters on
    `lora_targets` in every block plus the head (a new head has to be learned whole).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    gpt = model.gpt
    if strategy == "all":
        model.requires_grad_(True)
        return count_trainable(model)
    model.requires_grad_(False)
    if strategy == "last":
        if not 1 <= last_blocks <= len(gpt.trf_blocks):
            raise ValueError(f"last_blocks must be between 1 and {len(gpt.trf_blocks)}, got {last_blocks}")
        for block in gpt.trf_blocks[-last_blocks:]:
            block.requires_grad_(True)
        gpt.final_norm.requires_grad_(True)
    elif strategy == "lora":
        apply_lora(gpt, lora_rank, lora_alpha, tuple(lora_targets))
    gpt.out_head.requires_grad_(True)
    return count_trainable(model)


# ---------------------------------------------------------------------------------------- training


def evaluate_classifier(model: GPTClassifier, loader: DataLoader, device: str | torch.device,
             max_batches: int | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the loader's examples, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for i, (input_ids, lengths, targets) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            logits = model(input_ids.to(device), lengths.to(device)).float()
            targets = targets.to(device)
            total_loss += F.cross_entropy(logits, targets, reduction="sum").item()
            correct += (logits.argmax(dim=-1) == targets).sum().item()
            count += len(targets)
    model.train(was_training)
    return total_loss / max(count, 1), correct / max(count, 1)


def predict(model: GPTClassifier, loader: DataLoader, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes, true classes) for every example of the loader."""
    was_training = model.training
    model.eval()
    predicted, true = [], []
    with torch.no_grad():
        for input_ids, lengths, targets in loader:
            predicted.append(model(input_ids.to(device), lengths.to(device)).argmax(dim=-1).cpu())
            true.append(targets)
    model.train(was_training)
    return torch.cat(predicted), torch.cat(true)


def confusion_matrix(predicted: torch.Tensor, true: torch.Tensor, num_classes: int = 2) -> torch.Tensor:
    """counts[i, j] = how many examples of true class i were predicted as class j."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    counts.index_put_((true.long(), predicted.long()), torch.ones_like(true, dtype=torch.long), accumulate=True)
    return counts


def train_classifier(model: GPTClassifier, train_loader: DataLoader, val_loader: DataLoader,
                     test_loader: DataLoader | None = None, epochs: int = 5, lr: float = 5e-5,
                     weight_decay: float = 0.1, grad_clip: float | None = 1.0,
                     device: str | torch.device = "cpu", progress: bool = True,
                     baselines: dict[str, tuple[str, float]] | None = None) -> dict[str, list[float]]:
    """Train the trainable parameters with AdamW and cross-entropy; after each epoch measure loss and accuracy
    on every split. Returns the history: {"train_loss": [...], "train_acc": [...], "val_loss": ..., ...}.

    `baselines` ({"train": majority_baseline(...), "val": ..., "test": ...}) are printed beside the accuracies.
    """
    from tqdm import tqdm
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters; call set_trainable first")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    splits = {"train": train_loader, "val": val_loader, **({"test": test_loader} if test_loader else {})}
    history: dict[str, list[float]] = {f"{s}_{m}": [] for s in splits for m in ("loss", "acc")}
    model.train()
    for epoch in range(1, epochs + 1):
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        for input_ids, lengths, targets in bar:
            logits = model(input_ids.to(device), lengths.to(device))
            loss = F.cross_entropy(logits.float(), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        for split, loader in splits.items():
            split_loss, split_acc = evaluate_classifier(model, loader, device)
            history[f"{split}_loss"].append(split_loss)
            history[f"{split}_acc"].append(split_acc)
        if progress:
            print(f"epoch {epoch}: " + ", ".join(_epoch_summary(history, s, (baselines or {}).get(s))
                                                 for s in splits))
    return history


def _epoch_summary(history: dict, split: str, baseline: tuple[str, float] | None) -> str:
    accuracy = history[f"{split}_acc"][-1]
    shown = f"{accuracy:.1%}" if baseline is None else f"{accuracy:.1%} (majority {baseline[1]:.1%})"
    return f"{split} loss {history[f'{split}_loss'][-1]:.3f} acc {shown}"


# ---------------------------------------------------------------------------------------------- use


def classify(model: GPTClassifier, text: str, encode: Callable[[str], list[int]] | None = None,
             max_length: int | None = None) -> tuple[str, float]:
    """(label, probability of that label) for one message; `encode` defaults to GPT-2's tokenizer."""
    encode = encode or gpt2_encode()
    ids = encode(text)
    if not ids:
        raise ValueError("cannot classify an empty message")
    ids = ids[:max_length or model.gpt.cfg.context_length]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids], device=device)).float(), dim=-1)[0]
    model.train(was_training)
    best = int(probs.argmax())
    return model.labels[best], float(probs[best])


def gpt2_encode() -> Callable[[str], list[int]]:
    """GPT-2's tokenizer as a function from text to ids; "<|endoftext|>" inside a message is encoded as text."""
    from minigpt.tokenizer import gpt2_tiktoken_encoding
    encoding = gpt2_tiktoken_encoding()
    return lambda text: encoding.encode(text, disallowed_special=())


def save_classifier(model: GPTClassifier, path: str | os.PathLike, **extra) -> Path:
    """Save weights and everything needed to rebuild the classifier (config, classes, pooling, LoRA), atomically.

    The file also records its kind and tokenizer (GPT-2's), so minigpt.loading.load_model can open it.
    """
    path = Path(path)
    state = {"kind": "classifier", "config": dataclasses.asdict(model.gpt.cfg), "num_classes": model.num_classes,
             "labels": list(model.labels), "pooling": model.pooling, "lora": lora_settings(model.gpt),
             "tokenizer": "gpt2", "model": model.state_dict(), **extra}
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
    return path


def classifier_from_state(state: dict, device: str | torch.device = "cpu") -> GPTClassifier:
    """Rebuild a classifier from what save_classifier stored (LoRA layers included), in eval mode."""
    model = GPTClassifier(GPTModel(portable_config(state["config"], device)), state["num_classes"], state["pooling"],
                          state["labels"])
    if state["lora"]:
        apply_lora(model.gpt, state["lora"]["rank"], state["lora"]["alpha"], tuple(state["lora"]["targets"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> GPTClassifier:
    """Rebuild a classifier saved by save_classifier, in eval mode."""
    return classifier_from_state(load_checkpoint(path), device)   # weights_only: loading never runs code


__all__ = ["LABELS", "PAD_TOKEN_ID", "SMS_SPAM_URL", "SMS_SPAM_SHA256", "read_sms_file", "write_sms_file",
           "stratified_split", "undersample", "download_sms_spam", "pad_or_truncate", "SpamDataset", "trim_batch",
           "make_loader", "GPTClassifier", "POOLINGS", "STRATEGIES", "set_trainable", "evaluate_classifier",
           "predict", "confusion_matrix", "train_classifier", "classify", "gpt2_encode", "save_classifier",
           "classifier_from_state", "load_classifier", "check_split", "majority_baseline", "format_accuracy",
           "ALL_LINEAR", "ATTENTION_QV"]
