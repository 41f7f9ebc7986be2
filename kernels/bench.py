"""Chapter 5 benchmark: the Triton kernels against PyTorch's own, on a CUDA GPU.

    python -m kernels.bench                 # everything (several minutes: the autotuner times each tile shape once)
    python -m kernels.bench --quick         # a few sizes of each
    python -m kernels.bench --only attention --out out/bench
    python -m kernels.bench --gpu-check --out DIR   # the bounded check for a GPU lent for minutes (section 4)

Three measurements, each printed as a table (Markdown, ready to paste into kernels/BENCHMARKS.md) and saved as a PNG
plot and a JSON file in --out:
  1. attention TFLOP/s, forward and forward+backward, bf16, causal or not, head dims 64 and 128, sequence lengths
     1k…16k at a constant 16k tokens per batch (batch = 16384 / N) and a constant model width (heads = 2048 / D);
     against torch's scaled_dot_product_attention with each backend forced (flash, cuDNN, memory-efficient).
     FLOPs: forward 4·B·H·N²·D (two matmuls of 2·N²·D each per head), halved when causal; forward+backward 3.5 times
     that (the backward does five such matmuls against the forward's two, 2.5 times the work).
  2. LayerNorm GB/s, forward and forward+backward, bf16, 16384 rows of N = 768…8192 features, against
     torch.nn.functional.layer_norm, with a device-to-device copy of the same tensor as the ceiling.
     Bytes (e = 2 bytes per element, the O(N) parameters and O(M) statistics left out): forward reads x and writes y,
     2·M·N·e; forward+backward adds reading x and dy and writing dx, 5·M·N·e in all. Copy: 2·M·N·e.
  3. One GPT-2 small (124M) training step, forward + loss + backward at batch 8 × 1024 tokens under bf16 autocast,
     with torch's attention/LayerNorm and with the Triton ones.
The GPU, torch and Triton versions are printed with the results: numbers only mean something next to them.

--gpu-check (issue 18) runs a bounded version in about 6.5 minutes on one GPU: (a) the machine, its versions and a
matmul and a copy as ceilings, (b) chapter 5's GPU tests, (c) causal attention at head dims 64 and 128, N = 1k, 4k,
16k, (d) LayerNorm at N = 768…8192, each stage under its own time budget and each checked against the targets in
kernels/BENCHMARKS.md; the report (gpu_check.json, gpu_check.md) is rewritten after every stage, plots come last.
With --dry-run it runs at toy sizes on the CPU. The exit code is 1 when a stage failed or timed out.
"""
import argparse
import contextlib
import gc
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from minigpt.files import save_figure, write_text_atomic

ATTENTION_SEQ_LENS = [1024, 2048, 4096, 8192, 16384]
ATTENTION_SEQ_LENS_QUICK = [1024, 4096]
LAYERNORM_WIDTHS = [768, 1024, 1280, 1600, 2048, 3072, 4096, 6144, 8192]
LAYERNORM_WIDTHS_QUICK = [768, 1600, 4096]
TOKENS_PER_BATCH = 16384  # batch · seq_len for the attention sweep
MODEL_WIDTH = 2048        # heads · head_dim for the attention sweep
LAYERNORM_ROWS = 16384


def _time_ms(fn, device: str = "cuda") -> float:
    """Median time of fn in milliseconds (Triton's do_bench: warm-up, L2 flushed between runs, CUDA events)."""
    fn()  # the first call compiles and autotunes: keep it out of the measurement
    if device != "cuda":  # --dry-run on the CPU: one timed call, the number means nothing
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    import triton.testing
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


# ----------------------------------------------------------------------------------------------------------------------
# 1. Attention
# ----------------------------------------------------------------------------------------------------------------------

def _attention_providers():
    """name -> function(q, k, v, causal). SDPA backends that this torch does not have are left out."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from kernels.attention import flash_attention

    providers = {"triton": lambda q, k, v, causal: flash_attention(q, k, v, causal=causal)}
    for name, backend_name in (("sdpa-flash", "FLASH_ATTENTION"), ("sdpa-cudnn", "CUDNN_ATTENTION"),
                               ("sdpa-efficient", "EFFICIENT_ATTENTION")):
        backend = getattr(SDPBackend, backend_name, None)
        if backend is None:
            continue

        def run(q, k, v, causal, backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        providers[name] = run
    return providers


def bench_attention(seq_lens: list[int], out_dir: Path, device: str = "cuda", tokens: int = TOKENS_PER_BATCH,
                    width: int = MODEL_WIDTH) -> list[dict]:
    providers = _attention_providers()
    results = []
    shapes = [(head_dim, causal, n) for head_dim in (64, 128) for causal in (True, False) for n in seq_lens]
    dtype = _attention_dtype(device)
    print(f"\nAttention, {str(dtype)[6:]}, batch·seq_len = {tokens}, heads·head_dim = {width}: "
          f"{len(shapes)} shapes × {len(providers)} implementations (the first Triton call of each shape autotunes)")
    for head_dim, causal, n in shapes:
        measure_attention_shape(providers, head_dim, causal, n, results, device, tokens, width)
    _print_attention_tables(results, list(providers), str(dtype)[6:])
    _print_chosen_tiles()
    _plot_attention(results, list(providers), out_dir / "attention_tflops.png")
    return results


def _attention_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device == "cuda" else torch.float32  # the interpreter cannot do bf16 products


def measure_attention_shape(providers: dict, head_dim: int, causal: bool, n: int, into: list[dict],
                            device: str = "cuda", tokens: int = TOKENS_PER_BATCH, width: int = MODEL_WIDTH) -> None:
    """Times every provider forward and forward+backward at one shape; appends one row per provider to `into` as
    soon as it is measured (so that a run stopped halfway keeps the rows it finished)."""
    batch, heads = max(1, tokens // n), max(1, width // head_dim)
    dtype = _attention_dtype(device)
    q, k, v = (torch.randn(batch, heads, n, head_dim, device=device, dtype=dtype, requires_grad=True)
               for _ in range(3))
    grad_out = torch.randn_like(q)
    flops_fwd = 4 * batch * heads * n * n * head_dim * (0.5 if causal else 1.0)
    for name, attend in providers.items():
        row = dict(provider=name, head_dim=head_dim, causal=causal, seq_len=n, batch=batch, heads=heads)
        for mode, flops in (("fwd", flops_fwd), ("fwd+bwd", 3.5 * flops_fwd)):
            if mode == "fwd":
                def fn():
                    with torch.no_grad():
                        attend(q, k, v, causal)
            else:
                def fn():
                    torch.autograd.grad(attend(q, k, v, causal), (q, k, v), grad_out)
            try:
                ms = _time_ms(fn, device)
                row[mode] = flops / (ms * 1e-3) / 1e12
            except Exception as error:  # a backend that does not support this shape/GPU: n/a, the others still run
                row[mode] = None
                row.setdefault("error", f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}")
        into.append(row)
        print(f"  D={head_dim:3d} {'causal' if causal else 'full  '} N={n:5d} {name:15s} "
              f"fwd {_fmt(row['fwd'])} TFLOP/s, fwd+bwd {_fmt(row['fwd+bwd'])} TFLOP/s", flush=True)
    del q, k, v, grad_out
    if device == "cuda":
        torch.cuda.empty_cache()


def _print_attention_tables(results: list[dict], providers: list[str], dtype_name: str) -> None:
    for mode in ("fwd", "fwd+bwd"):
        print(f"\nAttention {mode}, TFLOP/s ({dtype_name}; higher is better)\n"
              + attention_table(results, providers, mode))


def attention_table(results: list[dict], providers: list[str], mode: str) -> str:
    """Markdown table of one mode's TFLOP/s, a row per (head dim, causal, N), with Triton's ratios to flash and cuDNN."""
    header = ["D", "causal", "N"] + providers + ["triton/flash", "triton/cudnn"]
    rows = []
    keys = sorted({(r["head_dim"], r["causal"], r["seq_len"]) for r in results}, key=lambda t: (t[0], not t[1], t[2]))
    for head_dim, causal, n in keys:
        by_provider = {r["provider"]: r.get(mode) for r in results
                       if (r["head_dim"], r["causal"], r["seq_len"]) == (head_dim, causal, n)}
        ratios = []
        for other in ("sdpa-flash", "sdpa-cudnn"):
            a, b = by_provider.get("triton"), by_provider.get(other)
            ratios.append(f"{a / b:.2f}x" if a and b else "n/a")
        rows.append([str(head_dim), "yes" if causal else "no", str(n)]
                    + [_fmt(by_provider.get(p)) for p in providers] + ratios)
    return _markdown_table(header, rows)


def chosen_tiles() -> list[str]:
    """The tile shapes the autotuner picked for each shape it saw (worth recording next to the numbers)."""
    from kernels import attention
    lines = []
    for (kernel, dim_class), tuner in attention._TUNED.items():
        for key, config in getattr(tuner, "cache", {}).items():
            lines.append(f"{kernel:5s} (seq_len, head_dim, causal, dropout, precision, dtypes...) = {key}: "
                         f"{config.kwargs} num_warps={config.num_warps} num_stages={config.num_stages}")
    return sorted(lines)


def _print_chosen_tiles() -> None:
    lines = chosen_tiles()
    if lines:
        print("\nTiles chosen by the autotuner:\n" + "\n".join("  " + line for line in lines))


def _plot_attention(results: list[dict], providers: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    columns = sorted({(r["head_dim"], r["causal"]) for r in results}, key=lambda t: (t[0], not t[1]))
    fig, axes = plt.subplots(2, len(columns), figsize=(4.5 * len(columns), 8), sharex=True, squeeze=False)
    panels = [(mode, d, c) for mode in ("fwd", "fwd+bwd") for d, c in columns]
    for ax, (mode, head_dim, causal) in zip(axes.flat, panels):
        for provider in providers:
            points = sorted((r["seq_len"], r[mode]) for r in results if r["provider"] == provider
                            and r["head_dim"] == head_dim and r["causal"] == causal and r.get(mode))
            if points:
                ax.plot(*zip(*points), marker="o", label=provider)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{mode}, D={head_dim}, {'causal' if causal else 'full'}")
        ax.set_xlabel("sequence length")
        ax.set_ylabel("TFLOP/s")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(f"Attention TFLOP/s, {_device_name()}")
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)
    print(f"Saved {path}")


# ----------------------------------------------------------------------------------------------------------------------
# 2. LayerNorm
# ----------------------------------------------------------------------------------------------------------------------

def bench_layernorm(widths: list[int], out_dir: Path, device: str = "cuda", rows: int = LAYERNORM_ROWS) -> list[dict]:
    results = []
    print(f"\nLayerNorm, bf16, {rows} rows: GB/s counted as forward 2·M·N·2 bytes, "
          f"forward+backward 5·M·N·2 bytes, copy 2·M·N·2 bytes")
    for n in widths:
        results.append(measure_layernorm_width(n, rows, device))
    print(f"\nLayerNorm GB/s (bf16, M = {rows}; higher is better)\n" + layernorm_table(results))
    _plot_layernorm(results, rows, out_dir / "layernorm_gbps.png")
    return results


def measure_layernorm_width(n: int, rows: int = LAYERNORM_ROWS, device: str = "cuda") -> dict:
    """GB/s of the Triton LayerNorm, F.layer_norm (forward, forward+backward) and a copy, on (rows, n) bf16."""
    from kernels.layernorm import layer_norm
    providers = {"triton": lambda x, w, b: layer_norm(x, w, b),
                 "torch": lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b)}
    x = torch.randn(rows, n, device=device, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(n, device=device, dtype=torch.bfloat16, requires_grad=True)
    b = torch.randn(n, device=device, dtype=torch.bfloat16, requires_grad=True)
    grad_y = torch.randn_like(x)
    tensor_bytes = rows * n * x.element_size()
    copy_target = torch.empty_like(x)
    row = dict(width=n, copy=2 * tensor_bytes / (_time_ms(lambda: copy_target.copy_(x), device) * 1e-3) / 1e9)
    for name, norm in providers.items():
        def forward():
            with torch.no_grad():
                norm(x, w, b)

        def forward_backward():
            torch.autograd.grad(norm(x, w, b), (x, w, b), grad_y)
        row[f"{name} fwd"] = 2 * tensor_bytes / (_time_ms(forward, device) * 1e-3) / 1e9
        row[f"{name} fwd+bwd"] = 5 * tensor_bytes / (_time_ms(forward_backward, device) * 1e-3) / 1e9
    print(f"  N={n:5d} triton fwd {row['triton fwd']:.0f} GB/s, torch fwd {row['torch fwd']:.0f} GB/s, "
          f"triton fwd+bwd {row['triton fwd+bwd']:.0f} GB/s, torch fwd+bwd {row['torch fwd+bwd']:.0f} GB/s, "
          f"copy {row['copy']:.0f} GB/s", flush=True)
    return row


def layernorm_table(results: list[dict]) -> str:
    header = ["N", "triton fwd", "torch fwd", "fwd ratio", "triton fwd+bwd", "torch fwd+bwd", "fwd+bwd ratio", "copy",
              "triton fwd / copy"]
    table = [[str(r["width"]), _fmt(r["triton fwd"]), _fmt(r["torch fwd"]), f"{r['triton fwd'] / r['torch fwd']:.2f}x",
             _fmt(r["triton fwd+bwd"]), _fmt(r["torch fwd+bwd"]),
             f"{r['triton fwd+bwd'] / r['torch fwd+bwd']:.2f}x", _fmt(r["copy"]),
             f"{r['triton fwd'] / r['copy']:.0%}"] for r in results]
    return _markdown_table(header, table)


def _plot_layernorm(results: list[dict], rows: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    widths = [r["width"] for r in results]
    for ax, mode in zip(axes, ("fwd", "fwd+bwd")):
        for provider in ("triton", "torch"):
            ax.plot(widths, [r[f"{provider} {mode}"] for r in results], marker="o", label=provider)
        ax.plot(widths, [r["copy"] for r in results], linestyle="--", color="gray", label="copy (ceiling)")
        ax.set_title(f"LayerNorm {mode}, bf16, M={rows}")
        ax.set_xlabel("features N")
        ax.set_ylabel("GB/s")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"LayerNorm GB/s, {_device_name()}")
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)
    print(f"Saved {path}")


# ----------------------------------------------------------------------------------------------------------------------
# 3. A GPT-2 small training step
# ----------------------------------------------------------------------------------------------------------------------

def bench_gpt2_step(steps: int, batch: int = 8, seq_len: int = 1024, device: str = "cuda",
                    preset: str = "gpt2-small", **overrides) -> list[dict]:
    from minigpt.model import GPTConfig, GPTModel
    results = []
    print(f"\n{preset} forward + loss + backward, batch {batch} × {seq_len} tokens, bf16 autocast, "
          f"train mode (dropout on), median of {steps} steps")
    for attention_impl, layernorm_impl in (("torch", "torch"), ("triton", "torch"), ("torch", "triton"),
                                           ("triton", "triton")):
        torch.manual_seed(0)
        cfg = GPTConfig.preset(preset, attention_impl=attention_impl, layernorm_impl=layernorm_impl, **overrides)
        model = GPTModel(cfg).to(device).train()
        tokens = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), device=device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]

        def step():
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                logits = model(inputs)
                loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
            loss.backward()
            model.zero_grad(set_to_none=True)

        synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for _ in range(3 if device == "cuda" else 1):  # compile, autotune, warm the allocator
            step()
        times = []
        for _ in range(steps):
            synchronize()
            start = time.perf_counter()
            step()
            synchronize()
            times.append((time.perf_counter() - start) * 1e3)
        ms = sorted(times)[len(times) // 2]
        results.append(dict(attention=attention_impl, layernorm=layernorm_impl, ms=ms,
                            tokens_per_s=batch * seq_len / (ms * 1e-3)))
        print(f"  attention={attention_impl:6s} layernorm={layernorm_impl:6s} {ms:7.1f} ms/step, "
              f"{batch * seq_len / (ms * 1e-3):,.0f} tokens/s", flush=True)
        del model, tokens
        if device == "cuda":
            torch.cuda.empty_cache()
    base = results[0]["ms"]
    rows = [[r["attention"], r["layernorm"], f"{r['ms']:.1f}", f"{r['tokens_per_s']:,.0f}", f"{base / r['ms']:.2f}x"]
            for r in results]
    print(f"\n{preset} training step (forward+backward)\n"
          + _markdown_table(["attention", "layernorm", "ms/step", "tokens/s", "speed-up"], rows))
    return results


# ----------------------------------------------------------------------------------------------------------------------
# 4. The GPU check (issue 18): one bounded command for a GPU machine lent for a few minutes.
#
#    Stages run in order, each under its own time budget; the whole report (JSON and Markdown) is rewritten after
#    every stage, so whatever stops the run (a stage's budget, the machine's time limit) leaves the stages before it.
#    A stage that raises is recorded with its error and the next one runs. A stage's budget is enforced with SIGALRM:
#    the alarm raises StageTimeout in the middle of whatever the stage is doing, and the rows it had finished stay.
# ----------------------------------------------------------------------------------------------------------------------

GPU_CHECK_JSON, GPU_CHECK_MD, GPU_CHECK_LOG = "gpu_check.json", "gpu_check.md", "gpu_check_pytest.log"
GPU_CHECK_PLOTS = {"attention": "gpu_check_attention.png", "layernorm": "gpu_check_layernorm.png"}
GPU_CHECK_STAGES = ("machine", "tests", "attention", "layernorm", "plots")
# Seconds per stage on a GPU: about 6.5 minutes in all, so that start-up and imports fit in 7. On a fresh machine
# the tests stage compiles most kernels (fixed tiles, and 3 autotune candidates for the big bf16 test) into Triton's
# disk cache; the attention stage reuses them and compiles what is left.
GPU_CHECK_BUDGETS = {"machine": 30, "tests": 170, "attention": 130, "layernorm": 45, "plots": 15}
GPU_CHECK_AUTOTUNE_CANDIDATES = "3"  # MINIGPT_AUTOTUNE_CANDIDATES: tiles the autotuner tries per kernel and head dim
GPU_CHECK_TESTS = ["-m", "pytest", "-m", "gpu", "tests/test_ch05_kernels.py", "-x", "-q", "--durations=15"]
GPU_CHECK_SIZES = dict(matmul=8192, copy_elements=2**29, head_dims=(64, 128), seq_lens=(1024, 4096, 16384),
                       tokens=TOKENS_PER_BATCH, width=MODEL_WIDTH, layernorm_rows=LAYERNORM_ROWS,
                       layernorm_widths=(768, 1024, 1280, 1600, 4096, 8192))
GPU_CHECK_DRY_SIZES = dict(matmul=128, copy_elements=2**16, head_dims=(64, 128), seq_lens=(16, 40), tokens=40,
                           width=256, layernorm_rows=4, layernorm_widths=(768, 4096))
# (mode, versus, at least): Triton's TFLOP/s over the SDPA backend's, causal bf16, every head dim and N.
ATTENTION_TARGETS = [(mode, versus, at_least) for mode in ("fwd+bwd", "fwd")
                     for versus, at_least in (("sdpa-flash", 1.1), ("sdpa-cudnn", 0.85))]
# (quantity, ratio of which row fields, at least, widths it applies to).
LAYERNORM_TARGETS = [("fwd vs F.layer_norm", ("triton fwd", "torch fwd"), 1.3, lambda n: n >= 2048),
                     ("fwd vs copy", ("triton fwd", "copy"), 0.85, lambda n: n >= 2048),
                     ("fwd+bwd vs F.layer_norm", ("triton fwd+bwd", "torch fwd+bwd"), 1.2,
                      lambda n: n in (768, 1024, 1280, 1600))]
LAYERNORM_TARGET_SCOPE = {"fwd vs F.layer_norm": "N >= 2048", "fwd vs copy": "N >= 2048",
                          "fwd+bwd vs F.layer_norm": "N = 768, 1024, 1280, 1600"}


class StageTimeout(BaseException):
    """Raised by the alarm when a stage runs past its budget. A BaseException, so that no `except Exception` in torch,
    Triton or the stage itself swallows it."""


@contextlib.contextmanager
def _alarm(seconds: float):
    """Raise StageTimeout in this (main) thread after `seconds`; no alarm where signals are unavailable."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = [True]

    def ring(signum, frame):
        if armed[0]:
            raise StageTimeout()
    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class GpuCheck:
    """State shared by the stages: where to write, the sizes, the device, and the report so far."""

    def __init__(self, out_dir: Path, dry_run: bool, budgets: dict[str, float], *,
                 title: str = "kernels.bench --gpu-check (issue 18)", sizes: dict | None = None,
                 files: tuple[str, str] = (GPU_CHECK_JSON, GPU_CHECK_MD), markdown=None):
        """`title`, `sizes`, `files` (JSON, Markdown) and `markdown` (report -> text) default to this chapter's check;
        minigpt/bench_train.py's training check (issue 19) passes its own."""
        self.out_dir, self.dry_run, self.budgets = Path(out_dir), dry_run, budgets
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.sizes = sizes if sizes is not None else GPU_CHECK_DRY_SIZES if dry_run else GPU_CHECK_SIZES
        self.files, self.markdown = files, markdown or gpu_check_markdown
        self.deadline = float("inf")  # of the stage running now (time.monotonic)
        self.report = dict(check=title, dry_run=dry_run, device=self.device,
                           started=time.strftime("%Y-%m-%d %H:%M:%S %Z"), budgets_s=budgets, sizes=self.sizes,
                           autotune_candidates=os.environ.get("MINIGPT_AUTOTUNE_CANDIDATES"), stages=[])

    def stage(self, name: str) -> dict | None:
        return next((s for s in self.report["stages"] if s["name"] == name), None)

    def save(self) -> None:
        write_text_atomic(self.out_dir / self.files[0], json.dumps(self.report, indent=2, default=str))
        write_text_atomic(self.out_dir / self.files[1], self.markdown(self.report))

    def run(self, name: str, fn) -> dict:
        budget = self.budgets[name]
        record = dict(name=name, status="running", budget_s=budget, seconds=None, result={})
        self.report["stages"].append(record)
        self.save()  # a run killed during this stage leaves "running" against it
        print(f"\n=== gpu-check stage {name} (budget {budget:g} s) ===", flush=True)
        start = time.monotonic()
        self.deadline = start + budget
        try:
            with _alarm(budget):
                fn(self, record["result"])
            record["status"] = "ok"
        except StageTimeout:
            record["status"] = "timed out"
            record["error"] = (f"timed out after {time.monotonic() - start:.1f} s (budget {budget:g} s); finished: "
                               f"{record['result'].get('progress', 'nothing recorded')}")
        except KeyboardInterrupt:
            record["status"], record["error"] = "interrupted", "interrupted (Ctrl-C)"
            raise
        except Exception as error:  # recorded; the next stage still runs
            if time.monotonic() >= self.deadline:
                # The alarm fired inside C++ code (torch.save's writer, say), which reported it as its own error.
                record["status"] = "timed out"
                record["error"] = (f"timed out after {time.monotonic() - start:.1f} s (budget {budget:g} s), "
                                   f"inside {type(error).__name__}; finished: "
                                   f"{record['result'].get('progress', 'nothing recorded')}")
            else:
                record["status"] = "failed"
                record["error"] = f"{type(error).__name__}: {error}"
            record["traceback"] = traceback.format_exc()[-4000:]
        finally:
            record["seconds"] = round(time.monotonic() - start, 2)
            gc.collect()
            if self.device == "cuda":
                torch.cuda.empty_cache()
            self.save()
            print(f"=== {name}: {record['status']} in {record['seconds']:.1f} s"
                  + (f" ({record['error']})" if record.get("error") else ""), flush=True)
        return record


def _nvidia_smi() -> dict | None:
    fields = ("name", "driver_version", "memory.total", "power.limit", "clocks.max.sm")
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    return dict(zip(fields, (part.strip() for part in first.split(",")))) if first else None


def stage_machine(check: GpuCheck, result: dict) -> None:
    """(a) What the numbers were measured on, and two ceilings: a bf16 matmul's TFLOP/s, a device copy's GB/s."""
    import numpy
    import triton
    smi = _nvidia_smi()
    result.update(gpu=smi["name"] if smi else _device_name(), driver=smi["driver_version"] if smi else "unknown",
                  cuda=torch.version.cuda or "none", cudnn=torch.backends.cudnn.version() if check.device == "cuda"
                  else None, torch=torch.__version__, triton=triton.__version__, numpy=numpy.__version__,
                  python=platform.python_version(), platform=platform.platform(), nvidia_smi=smi)
    if check.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        result.update(compute_capability=f"{props.major}.{props.minor}", sm_count=props.multi_processor_count,
                      memory_gib=round(props.total_memory / 2**30, 1))
    result["progress"] = "versions"
    dtype = torch.bfloat16 if check.device == "cuda" else torch.float32  # CPU bf16 matmuls are slow
    n = check.sizes["matmul"]
    a, b = (torch.randn(n, n, device=check.device, dtype=dtype) for _ in range(2))
    c = torch.empty(n, n, device=check.device, dtype=dtype)
    result["matmul"] = f"{str(dtype)[6:]} {n}x{n}x{n}"
    result["matmul_tflops"] = 2 * n**3 / (_time_ms(lambda: torch.mm(a, b, out=c), check.device) * 1e-3) / 1e12
    result["progress"] = "versions, matmul"
    x = torch.empty(check.sizes["copy_elements"], device=check.device, dtype=dtype).normal_()
    y = torch.empty_like(x)
    result["copy"] = f"{str(dtype)[6:]}, {x.numel() * x.element_size() / 2**20:g} MiB read + written"
    result["copy_gbps"] = 2 * x.numel() * x.element_size() / (_time_ms(lambda: y.copy_(x), check.device) * 1e-3) / 1e9
    result["progress"] = "versions, matmul, copy"


def _pytest_counts(output: str) -> dict:
    """Counts from pytest's last summary line ("3 passed, 2 skipped in 4.1s"), else from its progress characters."""
    for line in reversed(output.splitlines()):
        found = re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)", line)
        if found and re.search(r"\bin [\d.]+s", line):
            return {("error" if word.startswith("error") else word): int(count) for count, word in found}
    progress = "".join(line.split("[")[0].strip() for line in output.splitlines()
                       if re.fullmatch(r"[.FEsxX]+(\s+\[\s*\d+%\])?", line.strip()))
    names = {".": "passed", "F": "failed", "E": "error", "s": "skipped", "x": "xfailed", "X": "xpassed"}
    counts: dict[str, int] = {}
    for char in progress:
        counts[names[char]] = counts.get(names[char], 0) + 1
    return counts


def stage_tests(check: GpuCheck, result: dict) -> None:
    """(b) Chapter 5's GPU tests in a subprocess, stopped before this stage's budget runs out."""
    candidates = os.environ.get("MINIGPT_AUTOTUNE_CANDIDATES", GPU_CHECK_AUTOTUNE_CANDIDATES)
    result["autotune_candidates"] = candidates
    run_pytest(check, result, GPU_CHECK_TESTS, GPU_CHECK_LOG, {"MINIGPT_AUTOTUNE_CANDIDATES": candidates})


def run_pytest(check: GpuCheck, result: dict, pytest_args: list[str], log_name: str,
               env_overrides: dict[str, str] | None = None) -> None:
    """`python *pytest_args` from the repository root in a subprocess, stopped 3 s before the stage's budget runs out.

    Records the command, time limit, exit code, counts and output tail in `result` and the whole output in
    `log_name` (in the check's folder); raises StageTimeout if it was stopped and RuntimeError if tests failed.
    Shared with minigpt/bench_train.py's training check (issue 19), which runs the other chapters' GPU tests.
    """
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, *pytest_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_overrides or {})}
    result["command"] = "python " + " ".join(pytest_args)
    limit = max(1.0, check.deadline - time.monotonic() - 3.0)  # stop it ourselves, before the alarm would
    result["time_limit_s"] = round(limit, 1)
    lines: list[str] = []
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", start_new_session=True)
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if process.poll() is None:  # timed out here, or the alarm / Ctrl-C interrupted the wait
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=2)  # the pipe closes with the process
        output = "".join(lines)
        write_text_atomic(check.out_dir / log_name, output)
        result.update(returncode=process.returncode, counts=_pytest_counts(output), log=log_name,
                      tail=output[-3000:])
        result["progress"] = (f"pytest stopped after {limit:.0f} s: " if timed_out else "pytest finished: ") + \
            ", ".join(f"{v} {k}" for k, v in result["counts"].items())
    if timed_out:
        raise StageTimeout()
    if process.returncode not in (0, 5):  # 5: no tests collected
        raise RuntimeError(f"pytest exited with code {process.returncode}: {result['progress']}")


def _ratio_status(ratio: float | None, at_least: float) -> str:
    return "n/a" if ratio is None else ("met" if ratio >= at_least else "missed")


def attention_targets(rows: list[dict]) -> list[dict]:
    targets = []
    for mode, versus, at_least in ATTENTION_TARGETS:
        for head_dim, n in sorted({(r["head_dim"], r["seq_len"]) for r in rows if r["causal"]}):
            values = {r["provider"]: r.get(mode) for r in rows
                      if r["causal"] and (r["head_dim"], r["seq_len"]) == (head_dim, n)}
            if "triton" not in values or versus not in values:
                continue  # not measured yet
            ratio = values["triton"] / values[versus] if values["triton"] and values[versus] else None
            targets.append(dict(mode=mode, head_dim=head_dim, seq_len=n, versus=versus, at_least=at_least,
                                ratio=ratio, status=_ratio_status(ratio, at_least)))
    return targets


def stage_attention(check: GpuCheck, result: dict) -> None:
    """(c) Causal attention TFLOP/s, forward and forward+backward, Triton beside each SDPA backend, and the targets."""
    from kernels import attention
    providers = _attention_providers()
    sizes = check.sizes
    shapes = [(d, n) for n in sizes["seq_lens"] for d in sizes["head_dims"]]
    result.update(dtype=str(_attention_dtype(check.device))[6:], causal=True, tokens=sizes["tokens"],
                  width=sizes["width"], providers=list(providers), rows=[], targets=[],
                  autotune_candidates={f"{name} D{d}": len(getattr(tuner, "configs", []))
                                       for (name, d), tuner in attention._TUNED.items()} or "none (no autotuning)",
                  progress=f"0 of {len(shapes)} shapes")
    for i, (head_dim, n) in enumerate(shapes):
        measure_attention_shape(providers, head_dim, True, n, result["rows"], check.device, sizes["tokens"],
                                sizes["width"])
        result["targets"] = attention_targets(result["rows"])
        result["tiles"] = chosen_tiles()
        result["progress"] = f"{i + 1} of {len(shapes)} shapes (D, N): " + ", ".join(
            f"({d}, {m})" for d, m in shapes[:i + 1])


def layernorm_targets(rows: list[dict]) -> list[dict]:
    targets = []
    for name, (numerator, denominator), at_least, applies in LAYERNORM_TARGETS:
        for row in rows:
            if applies(row["width"]):
                ratio = row[numerator] / row[denominator] if row[denominator] else None
                targets.append(dict(target=name, width=row["width"], at_least=at_least, ratio=ratio,
                                    status=_ratio_status(ratio, at_least)))
    return targets


def stage_layernorm(check: GpuCheck, result: dict) -> None:
    """(d) LayerNorm GB/s, forward and forward+backward, Triton beside F.layer_norm and a copy, and the targets."""
    widths = check.sizes["layernorm_widths"]
    result.update(dtype="bfloat16", rows_m=check.sizes["layernorm_rows"], rows=[], targets=[],
                  progress=f"0 of {len(widths)} widths")
    for i, n in enumerate(widths):
        result["rows"].append(measure_layernorm_width(n, check.sizes["layernorm_rows"], check.device))
        result["targets"] = layernorm_targets(result["rows"])
        result["progress"] = f"{i + 1} of {len(widths)} widths: N = " + ", ".join(str(w) for w in widths[:i + 1])


def start_plots(result: dict) -> bool:
    """Begin a plots stage's result (files, notes, matplotlib's version); False, with a note, without matplotlib.
    Shared with minigpt/bench_train.py's training check (issue 19)."""
    result.update(files=[], notes=[])
    try:
        import matplotlib
    except ImportError:
        result["notes"].append("matplotlib is not installed: plots skipped")
        return False
    result["matplotlib"] = matplotlib.__version__
    return True


def stage_plots(check: GpuCheck, result: dict) -> None:
    """At most two PNGs, from whatever the attention and LayerNorm stages finished."""
    if not start_plots(result):
        return
    attention = (check.stage("attention") or {}).get("result", {})
    layernorm = (check.stage("layernorm") or {}).get("result", {})
    for name, rows, plot in (
            ("attention", attention.get("rows"),
             lambda rows, path: _plot_attention(rows, attention["providers"], path)),
            ("layernorm", layernorm.get("rows"),
             lambda rows, path: _plot_layernorm(rows, layernorm["rows_m"], path))):
        if not rows:
            result["notes"].append(f"no {name} results: {name} plot skipped")
            continue
        plot(rows, check.out_dir / GPU_CHECK_PLOTS[name])
        result["files"].append(GPU_CHECK_PLOTS[name])
        result["progress"] = ", ".join(result["files"])


def gpu_check(out_dir: Path, dry_run: bool = False, budget_scale: float = 1.0,
              stage_budgets: dict[str, float] | None = None) -> dict:
    """Runs the stages (a) machine, (b) tests, (c) attention, (d) LayerNorm, then the plots; returns the report."""
    if dry_run and not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are imported (lazily, in the stages)
    # Read when kernels.attention builds its autotuners: set before the first import (the stages import it lazily).
    os.environ.setdefault("MINIGPT_AUTOTUNE_CANDIDATES", GPU_CHECK_AUTOTUNE_CANDIDATES)
    budgets = {name: seconds * budget_scale for name, seconds in GPU_CHECK_BUDGETS.items()}
    budgets.update(stage_budgets or {})
    check = GpuCheck(out_dir, dry_run, budgets)
    if "kernels.attention" in sys.modules and not dry_run:
        check.report["note"] = ("kernels.attention was imported before the check began: its autotuners keep the "
                                "candidate count of that import (see the attention stage's autotune_candidates)")
    print(f"GPU check{' (DRY RUN: toy sizes, numbers meaningless)' if dry_run else ''} on {check.device}, "
          f"writing to {out_dir}/; budgets {budgets}")
    start = time.monotonic()
    stages = {"machine": stage_machine, "tests": stage_tests, "attention": stage_attention,
              "layernorm": stage_layernorm, "plots": stage_plots}  # looked up now: tests may replace one
    for name in GPU_CHECK_STAGES:
        check.run(name, stages[name])
    check.report["seconds"] = round(time.monotonic() - start, 1)
    check.report["finished"] = True
    check.save()
    print(f"\nGPU check done in {check.report['seconds']:.0f} s: "
          + ", ".join(f"{s['name']} {s['status']}" for s in check.report["stages"])
          + f"\nSaved {out_dir / GPU_CHECK_JSON} and {out_dir / GPU_CHECK_MD}")
    return check.report


def _num(x) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return "n/a" if x is None else str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def stage_heading(stage: dict, title: str) -> list[str]:
    """A stage's Markdown heading (title, status, seconds of its budget), then its error and traceback if any.
    Shared with minigpt/bench_train.py's training check (issue 19)."""
    seconds = "…" if stage["seconds"] is None else f"{stage['seconds']:.1f}"
    lines = [f"## {title}: {stage['status']} ({seconds} s of a {stage['budget_s']:g} s budget)", ""]
    if stage.get("error"):
        lines += [f"**{stage['error']}**", ""]
    if stage.get("traceback"):
        lines += ["```text", stage["traceback"].rstrip()[-1500:], "```", ""]
    return lines


def _markdown_stage(stage: dict) -> list[str]:
    result = stage["result"]
    title = {"machine": "(a) Machine", "tests": "(b) Chapter 5 GPU tests", "attention": "(c) Attention",
             "layernorm": "(d) LayerNorm", "plots": "Plots"}.get(stage["name"], stage["name"])
    lines = stage_heading(stage, title)
    if stage["name"] == "machine":
        keys = [k for k in ("gpu", "driver", "cuda", "cudnn", "torch", "triton", "numpy", "python", "compute_capability",
                            "sm_count", "memory_gib", "platform") if k in result]
        rows = [[k, _num(result[k])] for k in keys]
        if "matmul_tflops" in result:
            rows.append([f"matmul {result['matmul']}", f"{_num(result['matmul_tflops'])} TFLOP/s"])
        if "copy_gbps" in result:
            rows.append([f"copy, {result['copy']}", f"{_num(result['copy_gbps'])} GB/s"])
        lines += [_markdown_table(["", "value"], rows), ""]
    elif stage["name"] == "tests":
        if "command" in result:
            counts = ", ".join(f"{v} {k}" for k, v in result.get("counts", {}).items()) or "no counts"
            lines += [f"`{result['command']}` (time limit {result['time_limit_s']:g} s, MINIGPT_AUTOTUNE_CANDIDATES="
                      f"{result['autotune_candidates']}): {counts}; exit code "
                      f"{result.get('returncode')}; full output in `{result.get('log')}`.", "", "```text",
                      result.get("tail", "").rstrip()[-2000:], "```", ""]
    elif stage["name"] == "attention" and "rows" in result:
        lines += [f"{result['dtype']}, causal, batch·N = {result['tokens']}, heads·D = {result['width']}; "
                  f"autotune candidates per kernel: {result['autotune_candidates']}.", ""]
        for mode in ("fwd", "fwd+bwd"):
            lines += [f"TFLOP/s, {mode}:", "", attention_table(result["rows"], result["providers"], mode), ""]
        lines += ["Targets (Triton / SDPA backend):", "", _markdown_table(
            ["mode", "D", "N", "versus", "target", "ratio", ""],
            [[t["mode"], str(t["head_dim"]), str(t["seq_len"]), t["versus"], f">= {t['at_least']}x",
              "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}x", t["status"]] for t in result["targets"]]), ""]
        if result.get("tiles"):
            lines += ["Tiles the autotuner chose:", "", "```text", *result["tiles"], "```", ""]
    elif stage["name"] == "layernorm" and "rows" in result:
        lines += [f"bf16, M = {result['rows_m']} rows; GB/s (forward 2·M·N·2 bytes, forward+backward 5·M·N·2, "
                  f"copy 2·M·N·2).", ""]
        if result["rows"]:
            lines += [layernorm_table(result["rows"]), ""]
        lines += ["Targets:", "", _markdown_table(
            ["target", "applies to", "N", "at least", "ratio", ""],
            [[t["target"], LAYERNORM_TARGET_SCOPE[t["target"]], str(t["width"]), f"{t['at_least']}x",
              "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}x", t["status"]] for t in result["targets"]]), ""]
    elif stage["name"] == "plots":
        lines += [f"- `{name}`" for name in result.get("files", [])] + [f"- {n}" for n in result.get("notes", [])]
        lines.append("")
    if stage["status"] == "ok" and result.get("progress") and stage["name"] not in ("plots",):
        lines += [f"Finished: {result['progress']}.", ""]
    return lines


def gpu_check_markdown(report: dict) -> str:
    lines = ["# GPU check (issue 18)", ""]
    if report["dry_run"]:
        lines += ["**DRY RUN**: toy sizes, on the CPU in Triton's interpreter where there is no GPU; the numbers mean "
                  "nothing, the run only checks the command.", ""]
    lines += [f"`python -m kernels.bench --gpu-check` on {report['device']}, started {report['started']}"
              + (f", {report['seconds']:.0f} s in all." if report.get("seconds") is not None else
                 " (not finished: the stages below are those done so far)."), ""]
    if report.get("note"):
        lines += [report["note"], ""]
    lines += [_markdown_table(["stage", "status", "seconds", "budget"],
                              [[s["name"], s["status"], _num(s["seconds"]), f"{s['budget_s']:g}"]
                               for s in report["stages"]]), ""]
    for stage in report["stages"]:
        lines += _markdown_stage(stage)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------------

def _device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (Triton interpreter, dry run)"


def environment() -> dict:
    import triton
    return dict(gpu=_device_name(), torch=torch.__version__, triton=triton.__version__,
                cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark chapter 5's Triton kernels against PyTorch (needs a GPU).")
    parser.add_argument("--quick", action="store_true", help="fewer sizes (a couple of minutes)")
    parser.add_argument("--only", choices=("attention", "layernorm", "gpt2", "all"), default="all",
                        help="run one part of the benchmark")
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="folder for the plots and results.json")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every code path at toy sizes on the CPU in Triton's interpreter (checks the script "
                             "itself; the numbers mean nothing)")
    parser.add_argument("--gpu-check", action="store_true",
                        help="the bounded check for a GPU machine (issue 18, about 6.5 minutes): machine, chapter 5's "
                             "GPU tests, attention, LayerNorm, plots; each stage under its own time budget, the "
                             f"report ({GPU_CHECK_JSON}, {GPU_CHECK_MD}) rewritten in --out after every stage")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="--gpu-check: multiply every stage's time budget by this")
    parser.add_argument("--stage-budget", action="append", default=[], metavar="STAGE=SECONDS",
                        help=f"--gpu-check: one stage's budget in seconds ({', '.join(GPU_CHECK_STAGES)}); repeatable")
    args = parser.parse_args(argv)
    if args.gpu_check:
        stage_budgets = {}
        for item in args.stage_budget:
            name, _, seconds = item.partition("=")
            if name not in GPU_CHECK_STAGES:
                parser.error(f"--stage-budget: unknown stage {name!r} (one of {', '.join(GPU_CHECK_STAGES)})")
            stage_budgets[name] = float(seconds)
        if not args.dry_run and not torch.cuda.is_available():
            raise SystemExit("--gpu-check needs a CUDA GPU; none is visible here (--gpu-check --dry-run runs it on "
                             "the CPU at toy sizes)")
        report = gpu_check(args.out, args.dry_run, args.budget_scale, stage_budgets)
        if any(stage["status"] != "ok" for stage in report["stages"]):
            raise SystemExit(1)  # the report is written all the same
        return
    if args.dry_run:
        dry_run(args.out)
        return
    if not torch.cuda.is_available():
        raise SystemExit("kernels.bench measures GPU kernels and needs a CUDA GPU; none is visible here. "
                         "(The kernels' correctness can still be checked on the CPU: pytest tests/test_ch05_kernels.py)")
    env = environment()
    print("Benchmarking on " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print(f"Writing plots and results.json to {args.out}/")
    results = dict(environment=env, quick=args.quick)
    if args.only in ("attention", "all"):
        results["attention"] = bench_attention(ATTENTION_SEQ_LENS_QUICK if args.quick else ATTENTION_SEQ_LENS, args.out)
    if args.only in ("layernorm", "all"):
        results["layernorm"] = bench_layernorm(LAYERNORM_WIDTHS_QUICK if args.quick else LAYERNORM_WIDTHS, args.out)
    if args.only in ("gpt2", "all"):
        results["gpt2_step"] = bench_gpt2_step(steps=5 if args.quick else 20)
    name = "results.json" if args.only == "all" else f"results_{args.only}.json"
    write_text_atomic(args.out / name, json.dumps(results, indent=2))
    print(f"Saved {args.out / name}")


def dry_run(out_dir: Path) -> None:
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before kernels are imported (they are, lazily, below)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"Dry run on {device}: toy sizes, numbers meaningless; writing to {out_dir}/")
    results = dict(environment=environment(), dry_run=True)
    results["attention"] = bench_attention([40], out_dir, device=device, tokens=40, width=256)
    results["layernorm"] = bench_layernorm([7, 100], out_dir, device=device, rows=5)
    results["gpt2_step"] = bench_gpt2_step(steps=1, batch=1, seq_len=16, device=device, preset="tiny", n_layers=1)
    write_text_atomic(out_dir / "results_dry_run.json", json.dumps(results, indent=2))
    print(f"Saved {out_dir / 'results_dry_run.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
