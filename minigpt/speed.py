"""Chapter 6's tooling: how fast training runs, and the machine settings that make it run fast.

Read this beside minigpt/train.py, which logs throughput with these helpers, and minigpt/bench_train.py, which
times training steps with them. In order:
  1. FLOPs per token (6·N + 12·L·T·d), a table of GPUs' peak bf16 throughput, and MFU (achieved / peak).
  2. prepare_device: TF32 for the fp32 matmuls left on a GPU; on a CPU, glibc told to keep freed memory.
  3. compile_model and first_call_or_eager: torch.compile, and the one way back to eager when it fails.
  4. cpu_threads: how many CPU threads a small model should train on (chapters 8 and 9 use it).

FLOPs per token for MFU: 6·N + 12·L·T·d (the PaLM paper's estimate, also nanoGPT's), where N counts the parameters
that take part in matrix multiplications (everything except the token and position embedding tables; the output
head counts, tied or not), L layers, T the sequence length, d the width. 6·N is the forward (2 FLOPs per
multiply-add) plus the backward (twice the forward); 12·L·T·d is attention's QKᵀ and weights·V, which have no
parameters. Recomputation is not counted.
"""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

import torch
import torch.nn as nn

from minigpt.model import find_gpt

# --------------------------------------------------------------------------------------------- 1. FLOPs and MFU

# Peak dense bf16 tensor-core throughput (no 2:4 sparsity), FLOP/s, from NVIDIA's datasheets. Matched against
# torch.cuda.get_device_name() in order: the first row whose words all appear in the name wins, so the more
# specific names come first. A GPU not listed gives None, printed as "unknown": a wrong peak gives a wrong MFU.
PEAK_BF16_FLOPS: list[tuple[tuple[str, ...], float | None]] = [
    (("H100", "PCIE"), 756e12),
    (("H100", "NVL"), 835e12),
    (("H100",), 989e12),            # SXM5 ("NVIDIA H100 80GB HBM3")
    (("H200", "NVL"), 835e12),
    (("H200",), 989e12),
    (("GH200",), 989e12),
    (("B200",), 2250e12),
    (("A100",), 312e12),            # SXM4 and PCIe alike
    (("A10G",), None),              # AWS's A10 variant has less tensor throughput than the A10: unknown
    (("A10",), 125e12),
    (("L40S",), 362e12),
    (("L4",), 121e12),
    (("RTX 4090",), 165e12),
    (("RTX 3090",), 71e12),
]


def peak_flops(device_name: str | None) -> float | None:
    """Peak bf16 FLOP/s of the GPU called `device_name` (torch.cuda.get_device_name()), None if unknown."""
    if not device_name:
        return None
    name = device_name.upper()
    for words, flops in PEAK_BF16_FLOPS:
        if all(word in name for word in words):
            return flops
    return None


def device_peak_flops(device: torch.device) -> float | None:
    """peak_flops of `device` if it is a GPU; None on a CPU (no table: MFU is a GPU measure here)."""
    return peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def flops_per_token(model: nn.Module, seq_len: int) -> int | None:
    """Training FLOPs per token, 6·N + 12·L·T·d (see the module docstring); None if no GPTModel is inside `model`."""
    gpt = find_gpt(model)
    if gpt is None:
        return None
    cfg = gpt.cfg
    n_total = sum(p.numel() for p in gpt.parameters())
    n_matmul = n_total - gpt.pos_emb.weight.numel()
    if gpt.out_head.weight is not gpt.tok_emb.weight:
        n_matmul -= gpt.tok_emb.weight.numel()   # untied: the lookup table does no matmul, the head does
    return 6 * n_matmul + 12 * cfg.n_layers * seq_len * cfg.emb_dim


def mfu(flops_token: int | None, tokens_per_s: float, peak: float | None, world_size: int = 1) -> float | None:
    """Model FLOPs utilisation: the share of `world_size` GPUs' peak that the training FLOPs reach."""
    if peak is None or flops_token is None:
        return None
    return flops_token * tokens_per_s / (peak * world_size)


def format_mfu(mfu: float | None) -> str:
    return "unknown" if mfu is None else f"{100 * mfu:.1f}%"


# --------------------------------------------------------------------------------------------- 2. the machine

def prepare_device(device: torch.device) -> None:
    """Settings that make training steps faster on `device` without changing what they compute (beyond rounding).

    CUDA: TF32 for the fp32 matmuls that remain outside autocast (same speed class as bf16, ~10-bit mantissa).
    CPU: keep_freed_memory_on_cpu.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        keep_freed_memory_on_cpu()


def keep_freed_memory_on_cpu() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing large blocks back to the OS.

    Each CPU training step allocates and frees the same few large tensors (logits of batch x tokens x 50,257
    floats: 200 MB for 8 x 128 tokens). glibc serves blocks that large with mmap and unmaps them on free, so
    every step faults all those pages in again (zero-filled by the kernel): on a 2-core machine that costs
    about a quarter of the step time. Raising the mmap and trim thresholds to 1 GiB makes freed blocks
    reusable. Returns False where this is not glibc (macOS, Windows, musl): nothing changes there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3   # from glibc's <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------------------------- 3. torch.compile

def _compile_warning(e: Exception, when: str) -> None:
    first_line = str(e).splitlines()[0][:120] if str(e) else ""
    print(f"warning: torch.compile failed{when} ({type(e).__name__}: {first_line}); running eager")


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile(model), or `model` itself with a one-line warning where torch.compile is unavailable."""
    try:
        return torch.compile(model)
    except Exception as e:   # noqa: BLE001 - any failure means "run eager"
        _compile_warning(e, "")
        return model


Result = TypeVar("Result")


def first_call_or_eager(run: Callable[[nn.Module], Result], compiled: nn.Module, eager: nn.Module,
                        reset: Callable[[], None]) -> tuple[Result, nn.Module]:
    """run(compiled), falling back to run(eager) if compiling fails; returns (result, the model that ran).

    torch.compile compiles on the first call, so that is where it fails (no C compiler, an unsupported platform).
    `reset` undoes what the failed attempt may have left (gradients, random state) before the eager retry.
    """
    if compiled is eager:
        return run(eager), eager
    try:
        return run(compiled), compiled
    except Exception as e:   # noqa: BLE001
        _compile_warning(e, " on the first step")
        reset()
        return run(eager), eager


# ------------------------------------------------------------------------------------- CPU threads

SMALL_MODEL_WIDTH = 512   # emb_dim below which a model's matrix products are too small to share between threads


def cpu_threads(model: nn.Module, requested: int | None = None) -> int:
    """How many CPU threads torch should use to train `model`: `requested` if given, else 1 for a small model
    (emb_dim below SMALL_MODEL_WIDTH), else torch's current setting (by default one per core).

    One thread holds up on a busy machine; more do not. On the project's 2-core CPU a second thread made chapter
    9's small model 1.6-1.8x faster while nothing else ran, but beside one busy process it was 10% slower, and
    while other jobs shared the cores 1.3-4x slower (every product waits for its slowest thread, and a thread that
    shares its core runs only part of the time; minigpt/INSTRUCTION_RESULTS.md). Wide models keep torch's
    setting: their products are large enough to use every core of a bigger machine, where the gain outweighs
    that risk (not measured here: only 2 cores were available).
    """
    if requested is not None:
        return requested
    gpt = find_gpt(model)
    width = gpt.cfg.emb_dim if gpt is not None else SMALL_MODEL_WIDTH
    return 1 if width < SMALL_MODEL_WIDTH else torch.get_num_threads()
