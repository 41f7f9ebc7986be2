"""Chapters 4 and 5: which code computes attention's core and LayerNorm — the one switch between implementations.

The model (minigpt/model.py) always holds the same weights; only the arithmetic in the middle can be done three ways:

    attention_impl   "ch3"     the scores matrix written out, as chapter 3 builds it: softmax(QKᵀ/√d + mask)V
                     "torch"   torch's fused scaled_dot_product_attention (SDPA), which never stores the scores
                     "triton"  chapter 5's flash-attention kernel (CUDA; causal squares only)
    layernorm_impl   "formula" the mean/variance formula written out (in minigpt/model.py's LayerNorm)
                     "torch"   F.layer_norm
                     "triton"  chapter 5's fused LayerNorm kernel (CUDA)

Nothing else in minigpt imports kernels/: a model asks this module, and this module imports chapter 5 only when a
Triton implementation is chosen, so chapters 1-4 run where Triton is not installed. `auto_impls` says what a script
should choose on a device, and why, so the choice can be printed. A padding mask or a KV cache (generation,
chapters 6-9) needs an explicit mask, which the Triton kernel does not take: those calls use SDPA.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

ATTENTION_IMPLS = ("ch3", "torch", "triton")
LAYERNORM_IMPLS = ("formula", "torch", "triton")
TRITON_HEAD_DIMS = (16, 32, 64, 128)   # the kernel tiles the head dimension in powers of two >= 16 (tl.dot's minimum)
KERNELS_DIR = Path(__file__).resolve().parent.parent / "kernels"


_KERNELS = None   # chapter 5's package once loaded: forward passes (and torch.compile's tracing) only read it


def load_kernels():
    """Chapter 5's package, checked to be this repository's `kernels/` (a PyPI package has the same import name).

    Models call this when they are built with a Triton implementation, so an import problem shows at construction
    and the forward pass never touches the file system.
    """
    global _KERNELS
    if _KERNELS is None:
        import kernels
        found = Path(getattr(kernels, "__file__", "") or ".").resolve().parent
        if found != KERNELS_DIR:
            raise ImportError(f"`import kernels` found {found}, not minigpt's {KERNELS_DIR}: another package named "
                              f"'kernels' is installed; uninstall it (pip uninstall kernels) or run from this "
                              f"repository")
        import kernels.attention
        import kernels.layernorm
        _KERNELS = kernels
    return _KERNELS


def _kernels():
    return _KERNELS if _KERNELS is not None else load_kernels()


def triton_available() -> bool:
    """True when chapter 5's kernels can run here: CUDA, Triton installed, and kernels/ importable."""
    if not torch.cuda.is_available():
        return False
    try:
        load_kernels()
    except Exception:   # noqa: BLE001 - any import problem means "use torch's kernels"
        return False
    return True


def auto_impls(device: torch.device) -> tuple[str, str, str]:
    """(attention_impl, layernorm_impl, why) for `device`: chapter 5's kernels on CUDA when they load, else torch's."""
    if device.type == "cuda" and triton_available():
        return "triton", "triton", "chapter 5's Triton kernels (CUDA)"
    return "torch", "torch", "torch's fused kernels (the Triton kernels need CUDA)"


def attention_impl_for(impl: str, head_dim: int) -> str:
    """`impl`, or "torch" when the Triton kernel cannot take this head dimension."""
    if impl == "triton" and head_dim not in TRITON_HEAD_DIMS:
        return "torch"
    return impl


def causal_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, impl: str,
                     dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(QKᵀ/√d)V over a full causal square: (batch, heads, tokens, head_dim) each; training's common case."""
    if impl == "triton":
        return _kernels().attention.flash_attention(queries, keys, values, causal=True, dropout_p=dropout_p)
    if impl == "torch":
        return F.scaled_dot_product_attention(queries, keys, values, is_causal=True, dropout_p=dropout_p)
    num_tokens = queries.shape[2]
    allowed = torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=queries.device).tril()
    return explicit_attention(queries, keys, values, allowed, dropout_p)


def masked_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, allowed: torch.Tensor,
                     impl: str, dropout_p: float = 0.0) -> torch.Tensor:
    """Attention where `allowed` (broadcastable to batch, heads, queries, keys; True = may attend) says who sees whom."""
    if impl == "ch3":
        return explicit_attention(queries, keys, values, allowed, dropout_p)
    # The Triton kernel knows only the causal square; generation with a cache or padding (a small share of the
    # work) uses SDPA with the explicit mask.
    return F.scaled_dot_product_attention(queries, keys, values, attn_mask=allowed, dropout_p=dropout_p)


def explicit_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, allowed: torch.Tensor,
                       dropout_p: float = 0.0) -> torch.Tensor:
    """Chapter 3's computation: the (queries x keys) scores, masked, scaled, softmaxed, dropped out, times V."""
    scores = (queries @ keys.transpose(2, 3)).masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores / queries.shape[-1] ** 0.5, dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ values


def fused_layer_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float, impl: str) -> torch.Tensor:
    """LayerNorm in one kernel: torch's ("torch") or chapter 5's ("triton")."""
    if impl == "triton":
        return _kernels().layernorm.layer_norm(x, scale, shift, eps)
    return F.layer_norm(x, scale.shape, scale, shift, eps)
