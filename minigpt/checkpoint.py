"""Chapter 6: checkpoints — everything a run needs to continue exactly where it stopped, written so none is lost.

A training run is more than its weights: AdamW's moment estimates, the step number, where each process was in its
data, the random generators (dropout masks, shuffling) and the loss history all decide what happens next. A
checkpoint saves all of them, so a resumed run computes the very same losses as one that never stopped (on a CPU,
bit for bit). Read it in this order:
  1. seed_everything, rng_state, set_rng_state   every random generator a run uses, saved and restored
  2. unwrap                                      the module to save, from under DDP and torch.compile wrappers
  3. save_checkpoint, load_checkpoint            one file, written atomically (a crash keeps the previous one),
                                                 read with weights_only=True (loading never runs code)
  4. tokenizer_record, tokenizer_from_record     which tokenizer decodes the model, saved beside the weights
  5. portable_config                             a saved GPTConfig made to run on the device at hand

What train() stores (minigpt/train.py): "format", "kind" ("lm"), "model" (state_dict), "model_config" (the GPTModel
inside, as a dict), "train_config", "optimizer", "step", "data_state" and "rng" (one per process), "history",
"tokenizer" (a record from minigpt.tokenizer.tokenizer_record) and "extra" (the script's own settings). To get a
model back with its tokenizer, use minigpt.loading.load_model, which opens every kind of checkpoint minigpt writes.
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
import random
import signal
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from minigpt.files import InputError, atomic_open
from minigpt.model import GPTConfig
from minigpt.tokenizer import GPT2_EOT_ID, BPETokenizer, gpt2_tiktoken_encoding, gpt2_tokenizer

CHECKPOINT_FORMAT = 2   # 2: random states as tensors, every entry readable with weights_only=True


# --------------------------------------------------------------------------------------------- 1. random state

def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and every CUDA device) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)   # also seeds all CUDA devices


def rng_state() -> dict:
    """Every generator's state as tensors and plain Python values, so a checkpoint loads with weights_only=True."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"],
                         n["cached_gaussian"]))
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

def plain(value: Any, where: str = "checkpoint") -> Any:
    """`value` with numpy numbers made Python numbers, numpy arrays tensors and paths strings: what weights_only reads.

    Anything else that is not a tensor, a plain container or a plain value is refused here, when the checkpoint is
    written, rather than found unreadable when it is loaded.
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor, torch.Size, torch.dtype)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return type(value)((k, plain(v, f"{where}[{k!r}]")) for k, v in value.items()) \
            if isinstance(value, OrderedDict) else {k: plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where} is a {type(value).__name__}; a checkpoint holds only tensors, numbers, strings and "
                    f"lists/tuples/dicts of them (so that loading it can never run code)")


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> Path:
    """torch.save `checkpoint` (made `plain`) to `path` atomically: a temporary file beside it, then os.replace.

    A crash mid-write leaves the previous checkpoint intact; Ctrl-C during the write waits for it to finish
    (hold_interrupts), so a save is never cut off halfway inside torch's writer.
    """
    path = Path(path)
    checkpoint = plain(checkpoint)
    with hold_interrupts(), atomic_open(path, "wb") as f:
        torch.save(checkpoint, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint minigpt wrote (the entries are listed in the module docstring), never running code.

    torch.load(weights_only=True) builds only tensors and plain containers; a file that needs anything else (a
    checkpoint from before format 2, whose random states held numpy objects, or a file someone crafted) is refused
    with an InputError naming it and the one-time conversion for files you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path} holds more than tensors and plain values, so loading it could run code: refused. "
                         f"If it is a minigpt checkpoint from before format {CHECKPOINT_FORMAT} that you wrote or "
                         f"trust, convert it once with: python -m minigpt.checkpoint convert {path}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:   # not a zip/pickle torch can read: cut short?
        raise InputError(f"{path} is not a readable checkpoint ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:160] if str(error) else 'no detail'}); is it complete?") \
            from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise InputError(f"{path} is not a minigpt checkpoint (expected a dict with a 'model' entry)")
    return checkpoint


@contextlib.contextmanager
def hold_interrupts() -> Iterator[None]:
    """Run the block to its end even if Ctrl-C comes; raise the KeyboardInterrupt after it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def convert_old_checkpoint(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Rewrite a format-1 checkpoint (numpy random states, maybe paths in `extra`) as format 2, for a file you trust.

    This is the one place minigpt unpickles with weights_only=False, and only on the user's explicit command.
    """
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise InputError(f"{path} is not a minigpt checkpoint (expected a dict with a 'model' entry)")
    for state in checkpoint.get("rng", []):
        if isinstance(state.get("numpy"), tuple):
            name, keys, position, has_gauss, cached_gaussian = state["numpy"]
            state["numpy"] = {"name": name, "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
                              "position": int(position), "has_gauss": int(has_gauss),
                              "cached_gaussian": float(cached_gaussian)}
    if "format" in checkpoint:
        checkpoint["format"] = CHECKPOINT_FORMAT
    return save_checkpoint(out or path, checkpoint)


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


def main(argv: list[str] | None = None) -> None:
    from minigpt.cli import ArgumentParser, user_errors
    parser = ArgumentParser(prog="python -m minigpt.checkpoint",
                            description="Convert a checkpoint from before format 2 (which loading now refuses, since "
                                        "unpickling it could run code) into one that loads safely. Run it only on "
                                        "files you wrote or trust.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="rewrite an old checkpoint in the current format")
    convert.add_argument("path", help="the checkpoint to convert (rewritten in place unless --out is given)")
    convert.add_argument("--out", help="write the converted checkpoint here instead")
    args = parser.parse_args(argv)
    with user_errors(parser.prog):
        written = convert_old_checkpoint(args.path, args.out)
        load_checkpoint(written)   # it now loads with weights_only=True
        print(f"converted {args.path} -> {written}")


if __name__ == "__main__":
    main()
