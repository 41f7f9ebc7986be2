"""Chapter 6's benchmark: how long one full training step takes, in tokens/s and MFU, beside the memory estimate.

    python chapters/ch06_pretraining.py --preset gpt2-124m --bench-steps 30        # the usual way in (a GPU)
    python -m minigpt.bench_train --size tiny --batch-size 8 --context 128         # any size, straight from here

A step is forward, loss, backward, gradient clipping and AdamW, on random tokens: they cost the same FLOPs as text,
so this measures the loop itself, not the data pipeline. The first `warmup` steps (compilation, autotuning,
allocator growth) are not timed. Peak memory on a GPU is printed beside chapter 4's estimate_memory.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time

import torch
import torch.nn as nn
from tqdm import tqdm

from minigpt.checkpoint import unwrap
from minigpt.device import pick_device
from minigpt.model import MODEL_SIZES, GPTConfig, GPTModel, estimate_memory
from minigpt.speed import (compile_model, device_peak_flops, first_call_or_eager, flops_per_token, format_mfu, mfu,
                           prepare_device)
from minigpt.train import TrainConfig, autocast_context, forward_backward, make_optimizer


def random_batches(vocab_size: int, batch_size: int, seq_len: int, device: torch.device, seed: int,
                   count: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` (inputs, targets) batches of random token ids below min(vocab_size, 50257), on `device`."""
    generator = torch.Generator().manual_seed(seed)
    rows = [torch.randint(0, min(vocab_size, 50257), (batch_size, seq_len + 1), generator=generator)
            for _ in range(count)]
    return [(b[:, :-1].contiguous().to(device), b[:, 1:].contiguous().to(device)) for b in rows]


def benchmark(model: nn.Module, batch_size: int, seq_len: int, steps: int = 20, warmup: int = 5,
              config: TrainConfig | None = None) -> dict:
    """Time full training steps (forward, backward, clip, AdamW) on random tokens; print and return the numbers."""
    config = config or TrainConfig(max_steps=steps + warmup)
    raw = unwrap(model)
    device = next(raw.parameters()).device
    cuda = device.type == "cuda"
    prepare_device(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    autocast = functools.partial(autocast_context, device, config.dtype)
    optimizer = make_optimizer(raw, config)
    step_model = compile_model(raw) if config.compile else raw
    vocab = raw.cfg.vocab_size if hasattr(raw, "cfg") else 50257
    batches = random_batches(vocab, batch_size, seq_len, device, config.seed)

    def one_step(net: nn.Module, i: int) -> torch.Tensor:
        # As in a training step, nothing here waits for the GPU (the loss stays a tensor), so Python queues the next
        # step while the GPU works; the timer below waits for the GPU once, at the end.
        loss = forward_backward(net, [batches[i % len(batches)]], autocast, target_count=batch_size * seq_len,
                                device=device)
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    raw.train()
    for i in tqdm(range(warmup), desc="warm-up (not timed)", file=sys.stdout):
        if i == 0:
            _, step_model = first_call_or_eager(lambda net: one_step(net, 0), step_model, raw,
                                                lambda: optimizer.zero_grad(set_to_none=True))
        else:
            one_step(step_model, i)
    if cuda:
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i in tqdm(range(steps), desc="timed steps", file=sys.stdout):
        one_step(step_model, i)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) / steps
    return _report(raw, device, batch_size, seq_len, steps, seconds, config)


def _report(raw: nn.Module, device: torch.device, batch_size: int, seq_len: int, steps: int, seconds: float,
            config: TrainConfig) -> dict:
    cuda = device.type == "cuda"
    tokens_per_s = batch_size * seq_len / seconds
    fpt = flops_per_token(raw, seq_len)
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = device_peak_flops(device)
    utilisation = mfu(fpt, tokens_per_s, peak)
    result = {"device": device_name, "ms_per_step": 1000 * seconds, "tokens_per_s": tokens_per_s,
              "mfu": utilisation, "flops_per_token": fpt, "peak_flops": peak,
              "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None}
    if hasattr(raw, "cfg"):
        mixed = cuda and config.dtype != "float32"
        result["estimated_memory_bytes"] = estimate_memory(raw.cfg, batch_size, seq_len, training=True,
                                                           mixed_precision=mixed)["total"]
    gib = 2 ** 30
    print(f"benchmark on {device_name}: batch {batch_size} x {seq_len} tokens, {steps} timed steps")
    flops_note = f" (6N + 12·L·T·d = {fpt:,} FLOPs/token)" if fpt else ""
    print(f"  {result['ms_per_step']:.1f} ms/step, {tokens_per_s:,.0f} tokens/s, MFU {format_mfu(utilisation)}"
          f"{flops_note}")
    estimate = result.get("estimated_memory_bytes")
    measured = f"{result['peak_memory_bytes'] / gib:.2f} GiB allocated at peak" if cuda else \
        "peak memory not measured on a CPU"
    print(f"  {measured}; chapter 4's estimate_memory says "
          + (f"{estimate / gib:.2f} GiB" if estimate is not None else "nothing (not a GPTModel)"))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", help=f"a model size: {', '.join(MODEL_SIZES)} (default tiny)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--context", type=int, help="tokens per window (default: the size's context length)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu or cuda")
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    device = pick_device(args.device)
    overrides = {"context_length": args.context} if args.context else {}
    cfg = GPTConfig.preset(args.size, drop_rate=0.0, **overrides)
    model = GPTModel(cfg).to(device)
    config = TrainConfig(max_steps=args.steps + args.warmup, compile=args.compile)
    return benchmark(model, args.batch_size, cfg.context_length, args.steps, args.warmup, config)


if __name__ == "__main__":
    main()
