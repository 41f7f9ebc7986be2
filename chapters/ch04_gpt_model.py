"""Chapter 4: build GPT-2 small from its parts, count what it holds, estimate its memory, and let it babble.

    python chapters/ch04_gpt_model.py                 # GPT-2 small (124M), untrained, on the CPU
    python chapters/ch04_gpt_model.py --preset tiny   # the laptop-sized model chapter 6 trains
"""
import argparse
from dataclasses import replace
from pathlib import Path


import torch

from minigpt import cli
from minigpt.device import pick_device
from minigpt.files import InputError
from minigpt.model import (GPT2_SIZES, MODEL_SIZES, SIZE_ALIASES, GPTConfig, GPTModel, count_parameters, estimate_memory, estimate_parameters,
                           generate_text_simple)
from minigpt.tokenizer import gpt2_tokenizer

GiB = 1024 ** 3
PROG = Path(__file__).name


def layer_table(model: GPTModel, idx: torch.Tensor) -> None:
    """Run one forward pass with hooks that record each top-level part's output shape and parameter count."""
    rows = []

    def record(name):
        def hook(module, inputs, output):
            rows.append((name, tuple(output.shape), sum(p.numel() for p in module.parameters(recurse=True))))
        return hook

    handles = []
    for name in ("tok_emb", "pos_emb", "drop_emb"):
        handles.append(getattr(model, name).register_forward_hook(record(name)))
    block = model.trf_blocks[0]
    for name in ("norm1", "att", "norm2", "ff"):
        handles.append(getattr(block, name).register_forward_hook(record(f"trf_blocks[0].{name}")))
    handles.append(block.register_forward_hook(record("trf_blocks[0]")))
    handles.append(model.trf_blocks[-1].register_forward_hook(record(f"trf_blocks[{len(model.trf_blocks) - 1}]")))
    for name in ("final_norm", "out_head"):
        handles.append(getattr(model, name).register_forward_hook(record(name)))
    with torch.no_grad():
        model(idx)
    for h in handles:
        h.remove()
    print(f"{'module':<24}{'output shape':<22}{'parameters':>14}")
    for name, shape, n in rows:
        print(f"{name:<24}{str(shape):<22}{n:>14,}")
    print(f"(the {len(model.trf_blocks)} transformer blocks are identical; blocks 1..{len(model.trf_blocks) - 2} "
          f"are left out of the table)\n")


def parse_args(argv=None) -> argparse.Namespace:
    """The options, range-checked before any work (a bad one: one line, exit status 2)."""
    parser = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2-small", choices=sorted([*MODEL_SIZES, *SIZE_ALIASES]),
                        help="a model size from chapter 4's table, or an alias such as 124M (default gpt2-small)")
    parser.add_argument("--prompt", type=cli.non_empty, default="Hello, I am",
                        help="text to continue (at most the model's context length in tokens)")
    parser.add_argument("--max-new-tokens", type=cli.non_negative_int, default=10)
    parser.add_argument("--device", type=cli.device, default="auto",
                        help="auto (cuda if available, else cpu), cpu or cuda")
    parser.add_argument("--seed", type=cli.seed, default=123)
    return parser.parse_args(argv)


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """Build the model, tabulate it, count and estimate, then generate."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = pick_device(args.device)

    cfg = GPTConfig.preset(args.preset)
    tokenizer = gpt2_tokenizer()
    prompt = tokenizer.encode(args.prompt)
    if len(prompt) > cfg.context_length:   # checked before the model takes its memory
        raise InputError(f"--prompt is {len(prompt)} tokens; {args.preset} reads at most {cfg.context_length}")
    print(f"Building {args.preset}: {cfg.n_layers} blocks, width {cfg.emb_dim}, {cfg.n_heads} heads, "
          f"context {cfg.context_length}, vocabulary {cfg.vocab_size:,}, on {device}.")
    model = GPTModel(cfg).to(device).eval()
    idx = torch.tensor([prompt], device=device)
    layer_table(model, idx)

    total = count_parameters(model)
    head = model.out_head.weight.numel()
    print(f"Parameters: {total:,}. The output head alone holds {head:,} (vocabulary x width); GPT-2 shares it")
    print(f"with the token embedding (weight tying), which leaves {total - head:,}: the '124M' of GPT-2 small.")
    per_block = sum(p.numel() for p in model.trf_blocks[0].parameters())
    print(f"Each transformer block holds {per_block:,}: attention {sum(p.numel() for p in model.trf_blocks[0].att.parameters()):,}, "
          f"feed-forward {sum(p.numel() for p in model.trf_blocks[0].ff.parameters()):,}.\n")

    print("Memory estimate (GiB) for each GPT-2 size, weights tied as released; training = AdamW in bf16 mixed")
    print("precision (~20 bytes per parameter) plus activations for a batch of 8 x 1024 tokens with fused attention:")
    print(f"{'size':<13}{'parameters':>15}{'infer fp32':>12}{'infer bf16':>12}{'train states':>14}{'activations':>13}{'train total':>13}")
    for name in GPT2_SIZES:
        c = replace(MODEL_SIZES[name], tie_weights=True, qkv_bias=True)
        infer32 = estimate_memory(c, 1, 1024, training=False, mixed_precision=False)
        infer16 = estimate_memory(c, 1, 1024, training=False)
        train = estimate_memory(c, 8, 1024)
        states = train["weights"] + train["gradients"] + train["adamw_moments"]
        print(f"{name:<13}{estimate_parameters(c):>15,}{infer32['total'] / GiB:>12.2f}{infer16['total'] / GiB:>12.2f}"
              f"{states / GiB:>14.2f}{(train['activations'] + train['logits']) / GiB:>13.2f}{train['total'] / GiB:>13.2f}")
    print("Weights, gradients and AdamW's two moments grow with the parameters; activations grow with batch x tokens")
    print("and can be traded for compute (smaller micro-batches with gradient accumulation, or recomputation).\n")

    if device.type == "cuda":
        measure_peak_memory(cfg, device)

    print(f"An untrained model predicts tokens almost uniformly, so greedy decoding of {args.prompt!r} gives noise:")
    out = generate_text_simple(model, idx, max_new_tokens=args.max_new_tokens, context_size=cfg.context_length)
    print(f"  {tokenizer.decode(out[0].tolist())!r}")
    print("Chapter 6 trains it; chapter 7 loads OpenAI's trained weights into this very class.")


def measure_peak_memory(cfg: GPTConfig, device: torch.device, batch_size: int = 8) -> None:
    """Train one step in bf16 autocast and compare the measured peak with the estimate."""
    model = GPTModel(replace(cfg, tie_weights=True)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    torch.cuda.reset_peak_memory_stats(device)
    idx = torch.randint(0, cfg.vocab_size, (batch_size, cfg.context_length), device=device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(idx).flatten(0, 1).float(), idx.flatten())
    loss.backward()
    optimizer.step()
    peak = torch.cuda.max_memory_allocated(device)
    # This loop keeps fp32 weights and gradients (autocast casts on the fly) rather than separate bf16 copies.
    est = estimate_memory(replace(cfg, tie_weights=True), batch_size, cfg.context_length)
    print(f"Measured peak for one training step, batch {batch_size}: {peak / GiB:.2f} GiB; estimate "
          f"{est['total'] / GiB:.2f} GiB (autocast keeps fp32 weights and grads, so states differ a little).\n")
    del model, optimizer


if __name__ == "__main__":
    main()
