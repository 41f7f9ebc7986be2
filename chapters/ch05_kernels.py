"""Chapter 5: fused GPU kernels for attention and LayerNorm, written in Triton.

Walks through the online softmax that lets FlashAttention process keys one tile at a time, draws which tiles a causal
kernel computes, skips or masks, then runs both Triton kernels (kernels/attention.py, kernels/layernorm.py) against
their plain-PyTorch references and prints the largest differences. Without a GPU the kernels run in Triton's
interpreter on the CPU, at tiny sizes; on a GPU they are compiled, and the benchmark's quick mode runs at the end.

    python chapters/ch05_kernels.py                 # CPU or GPU, whichever is there
    python chapters/ch05_kernels.py --no-bench      # skip the GPU benchmark
"""
from pathlib import Path


import argparse
import os
import time

import torch

from minigpt import cli
from minigpt.device import pick_device
from minigpt.files import save_figure

PROG = Path(__file__).name


def online_softmax_walkthrough(seed: int) -> dict:
    """One query row against 12 keys, taken 4 at a time, the way a FlashAttention program sees them."""
    generator = torch.Generator().manual_seed(seed)
    # q·k·scale for 12 keys, drifting upwards so that later tiles raise the maximum and force a rescale
    scores = (torch.randn(12, generator=generator) + 0.5 * torch.arange(12)).double()
    values = torch.randn(12, 3, generator=generator).double()    # each key's value vector (head_dim 3)
    block = 4
    print("Online softmax: one query's 12 scores, seen 4 keys at a time. The program never holds all 12.")
    print(f"  scores = {[round(s, 2) for s in scores.tolist()]}")
    m = torch.tensor(float("-inf"), dtype=torch.float64)  # running maximum
    l = torch.tensor(0.0, dtype=torch.float64)            # running sum of exp(score - m)
    acc = torch.zeros(3, dtype=torch.float64)             # running sum of exp(score - m) · value
    history = []
    for start in range(0, 12, block):
        s = scores[start:start + block]
        m_new = torch.maximum(m, s.max())
        alpha = torch.exp(m - m_new)  # the old terms were exp(x - m); now they must be exp(x - m_new)
        p = torch.exp(s - m_new)
        l = l * alpha + p.sum()
        acc = acc * alpha + p @ values[start:start + block]
        print(f"  keys {start:2d}-{start + block - 1:2d}: tile max {s.max().item():6.3f}  running max "
              f"{m_new.item():6.3f}  rescale old sums by exp(m_old - m_new) = {alpha.item():.4f}  running sum "
              f"{l.item():.4f}")
        m = m_new
        history.append((start + block, m.item(), l.item()))
    online = acc / l
    exact = torch.softmax(scores, dim=0) @ values
    error = (online - exact).abs().max().item()
    print(f"  output acc / l          = {[round(x, 6) for x in online.tolist()]}")
    print(f"  softmax(scores) @ values = {[round(x, 6) for x in exact.tolist()]}")
    print(f"  largest difference {error:.1e}: the same numbers, computed without ever storing the 12 probabilities.")
    print(f"  The kernel also keeps lse = m + log(l) = {(m + torch.log(l)).item():.4f} "
          f"(torch.logsumexp gives {torch.logsumexp(scores, 0).item():.4f}): the backward pass rebuilds every "
          f"probability as exp(score - lse).")
    return dict(history=history, error=error)


def tile_map(seq_len: int, block_m: int, block_n: int) -> torch.Tensor:
    """For causal attention: 0 = tile skipped (all keys in the future), 1 = computed without a mask, 2 = masked."""
    rows, cols = -(-seq_len // block_m), -(-seq_len // block_n)
    kinds = torch.zeros(rows, cols, dtype=torch.long)
    for i in range(rows):
        first_query, end_query = i * block_m, min((i + 1) * block_m, seq_len)
        for j in range(cols):
            if (j + 1) * block_n <= first_query:
                kinds[i, j] = 1  # every key of the tile comes before every query of the tile
            elif j * block_n < end_query:
                kinds[i, j] = 2  # the diagonal: some keys are in some queries' future
    return kinds


def plot_figures(walkthrough: dict, kinds: torch.Tensor, seq_len: int, block_m: int, block_n: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    keys_seen, maxima, sums = zip(*walkthrough["history"])
    left.step(keys_seen, maxima, where="post", marker="o", label="running max m")
    left.step(keys_seen, sums, where="post", marker="s", label="running sum l")
    left.set_xlabel("keys processed")
    left.set_title("Online softmax: statistics after each tile of 4 keys")
    left.legend()
    left.grid(alpha=0.3)
    right.imshow(kinds.numpy(), cmap=ListedColormap(["#eeeeee", "#4c72b0", "#dd8452"]), vmin=0, vmax=2,
                 extent=(0, kinds.shape[1] * block_n, kinds.shape[0] * block_m, 0))  # axes in token positions
    right.set_title(f"Causal attention, N={seq_len}: tiles of {block_m} queries × {block_n} keys\n"
                    "grey: skipped, blue: no mask needed, orange: masked (diagonal)")
    right.set_xlabel("key position")
    right.set_ylabel("query position")
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)


def check_kernels(device: str, seed: int) -> None:
    """Both kernels against their references: forward outputs and every gradient."""
    from kernels.attention import attention_reference, flash_attention
    from kernels.layernorm import layer_norm, layer_norm_reference

    torch.manual_seed(seed)
    on_gpu = device == "cuda"
    # Interpreted, every program runs in numpy one after another: keep the CPU shapes tiny. fp32 on the CPU (the
    # interpreter's bf16 products are wrong), bf16 on the GPU (the dtype the kernels are built for).
    dtype = torch.bfloat16 if on_gpu else torch.float32
    batch, heads, seq_len, head_dim = (4, 8, 1024, 64) if on_gpu else (1, 2, 45, 32)
    print(f"\nFlash attention kernel vs attention_reference (float64), shape (batch {batch}, heads {heads}, "
          f"seq_len {seq_len}, head_dim {head_dim}), {str(dtype)[6:]}, on {device}"
          + ("" if on_gpu else " in the Triton interpreter"))
    for causal in (True, False):
        q, k, v = (torch.randn(batch, heads, seq_len, head_dim, device=device, dtype=dtype, requires_grad=True)
                   for _ in range(3))
        grad_out = torch.randn_like(q)
        start = time.perf_counter()
        out = flash_attention(q, k, v, causal=causal)
        grads = torch.autograd.grad(out, (q, k, v), grad_out)
        elapsed = time.perf_counter() - start
        exact_inputs = [t.detach().double().requires_grad_() for t in (q, k, v)]
        exact = attention_reference(*exact_inputs, causal=causal)
        exact_grads = torch.autograd.grad(exact, exact_inputs, grad_out.double())
        errors = [(a.double() - b).abs().max().item() for a, b in zip((out, *grads), (exact, *exact_grads))]
        print(f"  {'causal' if causal else 'full  '}: max |error| output {errors[0]:.1e}, dQ {errors[1]:.1e}, "
              f"dK {errors[2]:.1e}, dV {errors[3]:.1e}  ({elapsed:.2f} s"
              + (", the first call compiles and autotunes)" if on_gpu and causal else ")"))

    rows, width = (4096, 1600) if on_gpu else (37, 100)
    print(f"\nLayerNorm kernel vs layer_norm_reference (float64), {rows} rows × {width} features, "
          f"{str(dtype)[6:]}, on {device}")
    x = (torch.randn(rows, width, device=device) * 3 + 1).to(dtype).requires_grad_()
    weight = torch.randn(width, device=device, requires_grad=True)
    bias = torch.randn(width, device=device, requires_grad=True)
    grad_y = torch.randn_like(x)
    y = layer_norm(x, weight, bias)
    grads = torch.autograd.grad(y, (x, weight, bias), grad_y)
    exact_inputs = [t.detach().double().requires_grad_() for t in (x, weight, bias)]
    exact = layer_norm_reference(*exact_inputs)
    exact_grads = torch.autograd.grad(exact, exact_inputs, grad_y.double())
    errors = [(a.double() - b).abs().max().item() for a, b in zip((y, *grads), (exact, *exact_grads))]
    print(f"  max |error| output {errors[0]:.1e}, dx {errors[1]:.1e}, dweight {errors[2]:.1e}, dbias {errors[3]:.1e}")
    if dtype != torch.float32:
        print("  (bf16 keeps 8 significant bits: an error near 1% of the largest value is one rounding of the output)")


def parse_args(argv=None) -> argparse.Namespace:
    """The options, checked before any work (a bad one: one line, exit status 2)."""
    parser = cli.ArgumentParser(prog=PROG, description="Chapter 5: Triton kernels for attention and LayerNorm.")
    parser.add_argument("--device", type=cli.device, default="auto",
                        help="auto (cuda if available, else cpu), cuda or cpu")
    parser.add_argument("--seed", type=cli.seed, default=0)
    parser.add_argument("--out", type=cli.output_folder, default="out/ch05",
                        help="folder for the figure (and benchmark)")
    parser.add_argument("--no-bench", action="store_true", help="on a GPU, skip the quick benchmark")
    args = parser.parse_args(argv)
    args.out = Path(args.out)
    return args


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """The walk-through and the tile map on any machine; the kernels' checks where Triton runs."""
    args = parse_args(argv)
    device = pick_device(args.device).type
    if device == "cpu":
        # Must be set before triton compiles anything: the kernels then run in numpy, one program at a time.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    print(f"Chapter 5 on {device}; figures go to {args.out}/")

    walkthrough = online_softmax_walkthrough(args.seed)
    seq_len, block_m, block_n = 512, 128, 64
    kinds = tile_map(seq_len, block_m, block_n)
    computed = (kinds > 0).sum().item()
    print(f"\nTiling: causal attention over N={seq_len} keys, tiles of {block_m} queries × {block_n} keys: "
          f"{computed} of {kinds.numel()} tiles are computed, {(kinds == 2).sum().item()} of them need a mask "
          f"(the diagonal); the other {kinds.numel() - computed} lie wholly in the future and are skipped.")
    print(f"Why tiles: at N=4096 one head's score matrix is {4096 * 4096 * 2 / 2**20:.0f} MiB in bf16, "
          f"against {4 * 4096 * 64 * 2 / 2**20:.0f} MiB for its Q, K, V and output (head_dim 64). Keeping scores "
          f"in on-chip memory, tile by tile, removes that traffic.")
    figure = args.out / "online_softmax_and_tiles.png"
    plot_figures(walkthrough, kinds, seq_len, block_m, block_n, figure)
    print(f"Saved {figure}")

    try:
        import triton  # noqa: F401
    except ImportError:
        print("\nTriton is not installed here (it ships for Linux), so the kernels cannot run; the walk-through above "
              "is the whole chapter on this machine.")
        return
    check_kernels(device, args.seed)

    if device == "cuda" and not args.no_bench:
        from kernels import bench
        print("\nQuick benchmark (python -m kernels.bench for the full one):")
        bench.main(["--quick", "--out", str(args.out / "bench")])


if __name__ == "__main__":
    main()
