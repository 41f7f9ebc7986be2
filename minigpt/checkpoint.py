"""Chapter 6: checkpoints — everything a run needs to continue exactly where it stopped, written so none is lost.

A training run is more than its weights: AdamW's moment estimates, the step number, where each process was in its
data, the random generators (dropout masks, shuffling) and the loss history all decide what happens next. A
checkpoint saves all of them, so a resumed run computes the very same losses as one that never stopped (on a CPU,
bit for bit). Read it in this order:
  1. seed_everything, rng_state, set_rng_state   every random generator a run uses, saved and restored
  2. unwrap                                      the module to save, from under DDP and torch.compile wrappers
  3. save_checkpoint, load_checkpoint            one file, written atomically (a crash keeps the previous one)
  4. tokenizer_record, tokenizer_from_record     which tokenizer decodes the model, saved beside the weights
  5. portable_config                             a saved GPTConfig made to run on the device at hand

What train() stores (minigpt/train.py): "format", "kind" ("lm"), "model" (state_dict), "model_config" (the GPTModel
inside, as a dict), "train_config", "optimizer", "step", "data_state" and "rng" (one per process), "history",
"tokenizer" (a record from minigpt.tokenizer.tokenizer_record) and "extra" (the script's own settings). To get a
model back with its tokenizer, use minigpt.loading.load_model, which opens every kind of checkpoint minigpt writes.
"""
from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from minigpt.files import atomic_open
from minigpt.model import GPTConfig
from minigpt.tokenizer import GPT2_EOT_ID, BPETokenizer, gpt2_tiktoken_encoding, gpt2_tokenizer

CHECKPOINT_FORMAT = 1


# --------------------------------------------------------------------------------------------- 1. random state

def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and every CUDA device) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)   # also seeds all CUDA devices


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --------------------------------------------------------------------------------------------- 2. what to save

def unwrap(model: nn.Module) -> nn.Module:
    """The module under DDP (.module) and torch.compile (._orig_mod) wrappers: the one whose state_dict to save."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# --------------------------------------------------------------------------------------------- 3. the file

def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> Path:
    """torch.save `checkpoint` to `path` atomically: a temporary file in the same folder, then os.replace.

    A crash mid-write leaves the previous checkpoint intact and no partial file behind.
    """
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(checkpoint, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by train() (the entries are listed in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    # weights_only=False: the checkpoint holds RNG states and numpy arrays besides tensors. Load only
    # checkpoints you wrote or trust (unpickling can run code).
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a minigpt checkpoint (expected a dict with a 'model' entry)")
    return checkpoint


# --------------------------------------------------------------------------------------------- 4. the tokenizer

def tokenizer_record(tokenizer) -> str | dict:
    """The name "gpt2" for GPT-2's tokenizer (tiktoken's or ours), else {"name": "minigpt-bpe", "text": ...}.

    A trained or extended BPETokenizer is stored whole (its `to_text()`, a few hundred kB at most), so a checkpoint
    never depends on a tokenizer file that may have moved.
    """
    if getattr(tokenizer, "name", None) == "gpt2" and getattr(tokenizer, "n_vocab", None) == GPT2_EOT_ID + 1:
        return "gpt2"
    if isinstance(tokenizer, BPETokenizer):
        if tokenizer.vocab_size == GPT2_EOT_ID + 1 and tokenizer.vocab == _gpt2_vocab():
            return "gpt2"
        return {"name": "minigpt-bpe", "text": tokenizer.to_text()}
    raise ValueError(f"cannot record a {type(tokenizer).__name__} in a checkpoint: use GPT-2's tokenizer or a "
                     f"minigpt BPETokenizer")


def tokenizer_from_record(record: str | dict | None):
    """The tokenizer a `tokenizer_record` names: GPT-2's as a tiktoken Encoding (fast), or the stored BPETokenizer."""
    if record is None or record == "gpt2":   # None: checkpoints from before tokenizers were recorded
        return gpt2_tiktoken_encoding()
    if isinstance(record, dict) and record.get("name") == "minigpt-bpe" and isinstance(record.get("text"), str):
        return BPETokenizer.from_text(record["text"], "the checkpoint's tokenizer")
    raise ValueError(f"unknown tokenizer record {str(record)[:80]!r}: expected GPT-2's or a minigpt BPETokenizer")


@functools.lru_cache(maxsize=1)
def _gpt2_vocab() -> list[bytes]:
    return gpt2_tokenizer().vocab


# --------------------------------------------------------------------------------------------- 5. the device

def portable_config(config: dict, device: str | torch.device) -> GPTConfig:
    """The GPTConfig a checkpoint recorded, with Triton implementations swapped for torch's off CUDA."""
    config = dict(config)
    if torch.device(device).type != "cuda":
        for key in ("attention_impl", "layernorm_impl"):
            if config.get(key) == "triton":
                config[key] = "torch"
    return GPTConfig(**config)
