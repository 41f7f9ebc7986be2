"""Chapters 6-9: one way to get a model back — `load_model` opens every checkpoint minigpt writes.

A trained model is only useful again with its tokenizer, so each checkpoint records both (the weights and a tokenizer
record, minigpt/tokenizer.py), and `load_model(path, device)` returns the two together:

    kind "lm"          chapter 6's train() (pretraining) and chapter 9's finetune(): a GPTModel; LoRA adapters
                       (recorded in extra["lora"]) are rebuilt, loaded and merged into the weights
    kind "classifier"  chapter 8's save_classifier: a GPTClassifier, its LoRA layers kept as they were saved

`load_base_model` is what the finetuning chapters (8, 9) start from: GPT-2's weights, a chapter 6 checkpoint, or a
fresh model. This module sits after the chapters whose files it opens and imports them; none of them imports it.
The Triton kernels need CUDA: on another device a model saved with them uses torch's (same weights, same results up
to rounding).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from minigpt.checkpoint import load_checkpoint, portable_config, tokenizer_from_record
from minigpt.classify import classifier_from_state
from minigpt.files import InputError
from minigpt.lora import apply_lora, merge_lora
from minigpt.model import GPTConfig, GPTModel


def checkpoint_kind(checkpoint: dict) -> str:
    """ "lm" or "classifier"; files written before checkpoints named their kind are told apart by their entries."""
    if "kind" in checkpoint:
        return checkpoint["kind"]
    return "classifier" if "num_classes" in checkpoint else "lm"


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, object]:
    """(model in eval mode on `device`, the tokenizer that decodes it) from any checkpoint minigpt writes."""
    return model_from_checkpoint(load_checkpoint(path), device, path)


def model_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu",
                          path: str | os.PathLike = "the checkpoint") -> tuple[nn.Module, object]:
    """load_model for a checkpoint already read with load_checkpoint (a script that also reads its "extra" entries
    opens the file once); `path` names it in errors."""
    kind = checkpoint_kind(checkpoint)
    tokenizer = tokenizer_from_record(checkpoint.get("tokenizer"))
    if kind == "classifier":
        return classifier_from_state(checkpoint, device), tokenizer
    if kind != "lm":
        raise ValueError(f"{path}: unknown checkpoint kind {kind!r} (expected 'lm' or 'classifier')")
    if checkpoint.get("model_config") is None:
        raise ValueError(f"{path} holds no GPTModel configuration (model_config): it was not trained around a "
                         f"GPTModel, so load it with its own class and minigpt.checkpoint.load_checkpoint")
    model = GPTModel(portable_config(checkpoint["model_config"], device))
    lora = (checkpoint.get("extra") or {}).get("lora")
    if lora:
        apply_lora(model, lora["rank"], lora["alpha"], tuple(lora["targets"]))
    model.load_state_dict(checkpoint["model"])
    if lora:
        model = merge_lora(model)
    return model.to(device).eval(), tokenizer


def load_base_model(weights: str | None = None, checkpoint: str | os.PathLike | None = None,
                    config: GPTConfig | None = None, device: str | torch.device = "cpu") -> GPTModel:
    """The GPT to finetune: GPT-2 weights (a size like "gpt2" or a local path), a chapter 6 checkpoint, or a
    randomly initialised model of `config` (default: the tiny size)."""
    if weights and checkpoint:
        raise ValueError("pass GPT-2 weights or a checkpoint, not both")
    if weights:
        from minigpt.gpt2 import load_gpt2
        return load_gpt2(weights, device=device)
    if checkpoint:
        model, _ = load_model(Path(checkpoint), device)
        if not isinstance(model, GPTModel):
            raise ValueError(f"{checkpoint} holds a {type(model).__name__}, not a pretrained GPTModel")
        return model
    return GPTModel(config or GPTConfig.preset("tiny")).to(device)


def open_base_model(weights: str | None, checkpoint: str | os.PathLike | None, config, device) -> GPTModel:
    """minigpt.loading.load_base_model, with a failure to open the weights or checkpoint raised as InputError.

    Chapters 8 and 9 start from a file the user names; a missing download, a truncated or foreign file or a
    bad config is the user's to fix, so the scripts print it as one line. (Until the loaders raise InputError
    themselves, every OSError, RuntimeError and ValueError while loading is taken to be such a failure.)
    """
    if not (weights or checkpoint):
        return load_base_model(None, None, config, device)   # a fresh model: nothing the user gave can be wrong
    try:
        return load_base_model(weights, str(checkpoint) if checkpoint else None, config, device)
    except (InputError, FileNotFoundError):
        raise
    except (OSError, RuntimeError, ValueError) as e:
        what = f"GPT-2 weights {weights!r}" if weights else f"checkpoint {checkpoint}"
        raise InputError(f"could not load {what}: {type(e).__name__}: {e}") from None
