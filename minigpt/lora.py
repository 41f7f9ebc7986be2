"""Chapter 8 (reused by chapter 9): LoRA, low-rank adaptation of a frozen model.

Finetuning changes a weight matrix W (out x in) by some ΔW. LoRA bets that the useful ΔW has low rank and
writes it as B @ A, with A (rank x in) and B (out x rank): for rank 8 on a 768 x 768 matrix that is 12,288
trainable numbers instead of 589,824. The layer computes W x + (alpha / rank) · B A x with W frozen. B starts
at zero, so the adapted model starts out computing exactly what the original did; after training, B A can be
added into W once ("merging") and inference costs nothing extra. Switched off (`adapters_disabled`, chapter 13),
the adapted model computes the original model again: DPO's reference model without a second copy of the weights.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn as nn

# Names of the Linear layers in minigpt's TransformerBlock, for `targets`. The LoRA paper adapts only the query
# and value projections; adapting all of them trains more numbers and usually learns a little faster.
ATTENTION_QV = ("W_query", "W_value")
ALL_LINEAR = ("W_query", "W_key", "W_value", "out_proj", "ff.layers.0", "ff.layers.2")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update: y = base(x) + (alpha / rank) · x Aᵀ Bᵀ."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank}")
        self.base = base
        self.base.requires_grad_(False)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.rank, self.alpha = rank, alpha
        # Dividing by the rank keeps the update's size about the same when the rank changes, so a learning
        # rate found for one rank works for another (the LoRA paper's convention; peft's default too).
        self.scaling = alpha / rank
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.A = nn.Parameter(torch.empty(rank, self.in_features, **factory))
        self.B = nn.Parameter(torch.zeros(self.out_features, rank, **factory))
        # A gets nn.Linear's own default initialisation; B = 0 makes B @ A = 0, so training starts from the
        # original model and the first gradient step reaches B (the gradient of A is zero while B is).
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.enabled = True   # False: the layer is its base layer alone (see adapters_disabled)

    def delta_weight(self) -> torch.Tensor:
        """The change LoRA makes to the base weight: (alpha / rank) · B @ A, shape (out, in)."""
        return self.scaling * (self.B @ self.A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.base(x)
        # Two thin matrix products (x Aᵀ is only `rank` wide) instead of forming the full (out x in) B A.
        return self.base(x) + self.scaling * (self.dropout(x) @ self.A.T @ self.B.T)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, alpha={self.alpha}"


def _matches(name: str, targets: tuple[str, ...]) -> bool:
    """True if the module path `name` is a target or ends with ".target" ("trf_blocks.0.att.W_query" ~ "W_query")."""
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, targets: tuple[str, ...] = ATTENTION_QV,
               dropout: float = 0.0, freeze_base: bool = True) -> list[str]:
    """Replace every nn.Linear whose path ends with one of `targets` by a LoRALinear around it, in place.

    With `freeze_base` (the point of LoRA) every other parameter of the model is frozen too, so only the A and
    B matrices train; unfreeze a new task head yourself. Returns the paths of the replaced layers.
    """
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    chosen = [name for name, module in model.named_modules()
              if isinstance(module, nn.Linear) and not isinstance(module, LoRALinear) and _matches(name, targets)]
    if not chosen:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"no nn.Linear layer matches targets {targets}; the model's Linear layers are "
                         f"{linear[:8]}{' ...' if len(linear) > 8 else ''}")
    if freeze_base:
        model.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha, dropout))
    return chosen


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every LoRALinear of `model` computes its frozen base layer alone: the model before finetuning.

    Chapter 13's DPO uses it as the reference model: with LoRA the base weights never change, so switching the
    adapters off gives back the starting model without keeping a second copy. Raises ValueError if `model` has no
    LoRA layers (there would be nothing to switch off). The previous state is restored on leaving, even on error.
    """
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    if not layers:
        raise ValueError("the model has no LoRA layers to switch off (apply_lora first)")
    before = [layer.enabled for layer in layers]
    for layer in layers:
        layer.enabled = False
    try:
        yield model
    finally:
        for layer, enabled in zip(layers, before):
            layer.enabled = enabled


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRALinear into a plain nn.Linear with weight W + (alpha / rank) · B A, in place; returns model.

    The merged model computes the same outputs (up to rounding) with no extra matrix products, and is an
    ordinary model again: it can be saved, exported or adapted anew.
    """
    lora_layers = [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, lora in lora_layers:
        merged = lora.base
        merged.weight += lora.delta_weight().to(merged.weight.dtype)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, merged)
    return model


def lora_settings(model: nn.Module) -> dict | None:
    """The rank, alpha and layer paths of the model's LoRA layers (for a checkpoint), or None without LoRA."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    if not layers:
        return None
    first = next(iter(layers.values()))
    if any((m.rank, m.alpha) != (first.rank, first.alpha) for m in layers.values()):
        raise ValueError("the LoRA layers have different ranks or alphas; lora_settings expects one setting")
    return {"rank": first.rank, "alpha": first.alpha, "targets": sorted(layers)}


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a tied parameter counts once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
