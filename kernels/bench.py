"""Chapter 5 benchmark: the Triton kernels against PyTorch's own, on a CUDA GPU.

    python -m kernels.bench                 # everything (several minutes: the autotuner times each tile shape once)
    python -m kernels.bench --quick         # a few sizes of each
    python -m kernels.bench --only attention --out out/bench

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
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from minigpt.files import atomic_open, write_text_atomic

ATTENTION_SEQ_LENS = [1024, 2048, 4096, 8192, 16384]
ATTENTION_SEQ_LENS_QUICK = [1024, 4096]
LAYERNORM_WIDTHS = [768, 1024, 1280, 1600, 2048, 3072, 4096, 6144, 8192]
LAYERNORM_WIDTHS_QUICK = [768, 1600, 4096]
TOKENS_PER_BATCH = 16384  # batch · seq_len for the attention sweep
MODEL_WIDTH = 2048        # heads · head_dim for the attention sweep
LAYERNORM_ROWS = 16384


def _save_figure(fig, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")


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
    dtype = torch.bfloat16 if device == "cuda" else torch.float32  # the interpreter cannot do bf16 products
    print(f"\nAttention, {str(dtype)[6:]}, batch·seq_len = {tokens}, heads·head_dim = {width}: "
          f"{len(shapes)} shapes × {len(providers)} implementations (the first Triton call of each shape autotunes)")
    for head_dim, causal, n in shapes:
        batch, heads = max(1, tokens // n), max(1, width // head_dim)
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
                except RuntimeError as error:  # a backend that does not support this shape/GPU
                    row[mode] = None
                    row.setdefault("error", str(error).splitlines()[0][:120])
            results.append(row)
            print(f"  D={head_dim:3d} {'causal' if causal else 'full  '} N={n:5d} {name:15s} "
                  f"fwd {_fmt(row['fwd'])} TFLOP/s, fwd+bwd {_fmt(row['fwd+bwd'])} TFLOP/s", flush=True)
        del q, k, v, grad_out
        if device == "cuda":
            torch.cuda.empty_cache()
    _print_attention_tables(results, list(providers), str(dtype)[6:])
    _print_chosen_tiles()
    _plot_attention(results, list(providers), out_dir / "attention_tflops.png")
    return results


def _print_attention_tables(results: list[dict], providers: list[str], dtype_name: str) -> None:
    for mode in ("fwd", "fwd+bwd"):
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
        print(f"\nAttention {mode}, TFLOP/s ({dtype_name}; higher is better)\n" + _markdown_table(header, rows))


def _print_chosen_tiles() -> None:
    """The tile shapes the autotuner picked for each shape it saw (worth recording next to the numbers)."""
    from kernels import attention
    lines = []
    for (kernel, dim_class), tuner in attention._TUNED.items():
        for key, config in getattr(tuner, "cache", {}).items():
            lines.append(f"  {kernel:5s} (seq_len, head_dim, causal, dropout, precision, dtypes...) = {key}: "
                         f"{config.kwargs} num_warps={config.num_warps} num_stages={config.num_stages}")
    if lines:
        print("\nTiles chosen by the autotuner:\n" + "\n".join(sorted(lines)))


def _plot_attention(results: list[dict], providers: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 4, figsize=(18, 8), sharex=True)
    panels = [(mode, d, c) for mode in ("fwd", "fwd+bwd") for d in (64, 128) for c in (True, False)]
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
    _save_figure(fig, path)
    plt.close(fig)
    print(f"Saved {path}")


# ----------------------------------------------------------------------------------------------------------------------
# 2. LayerNorm
# ----------------------------------------------------------------------------------------------------------------------

def bench_layernorm(widths: list[int], out_dir: Path, device: str = "cuda", rows: int = LAYERNORM_ROWS) -> list[dict]:
    from kernels.layernorm import layer_norm
    providers = {"triton": lambda x, w, b: layer_norm(x, w, b),
                 "torch": lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b)}
    results = []
    print(f"\nLayerNorm, bf16, {rows} rows: GB/s counted as forward 2·M·N·2 bytes, "
          f"forward+backward 5·M·N·2 bytes, copy 2·M·N·2 bytes")
    for n in widths:
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
        results.append(row)
        print(f"  N={n:5d} triton fwd {row['triton fwd']:.0f} GB/s, torch fwd {row['torch fwd']:.0f} GB/s, "
              f"triton fwd+bwd {row['triton fwd+bwd']:.0f} GB/s, torch fwd+bwd {row['torch fwd+bwd']:.0f} GB/s, "
              f"copy {row['copy']:.0f} GB/s", flush=True)
        del x, w, b, grad_y, copy_target
    header = ["N", "triton fwd", "torch fwd", "fwd ratio", "triton fwd+bwd", "torch fwd+bwd", "fwd+bwd ratio", "copy"]
    table = [[str(r["width"]), _fmt(r["triton fwd"]), _fmt(r["torch fwd"]), f"{r['triton fwd'] / r['torch fwd']:.2f}x",
             _fmt(r["triton fwd+bwd"]), _fmt(r["torch fwd+bwd"]),
             f"{r['triton fwd+bwd'] / r['torch fwd+bwd']:.2f}x", _fmt(r["copy"])] for r in results]
    print(f"\nLayerNorm GB/s (bf16, M = {rows}; higher is better)\n" + _markdown_table(header, table))
    _plot_layernorm(results, rows, out_dir / "layernorm_gbps.png")
    return results


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
    _save_figure(fig, path)
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
    args = parser.parse_args(argv)
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
