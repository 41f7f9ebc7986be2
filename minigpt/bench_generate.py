"""Chapter 7 benchmark: generation speed with and without the KV cache, beside transformers' generate.

    python -m minigpt.bench_generate                      # GPT-2 small shape, random weights, CPU
    python -m minigpt.bench_generate --weights PATH --device cuda --new-tokens 256
    python -m minigpt.bench_generate --device cuda --dtype bf16 --batch 1,16 --cache-only   # batch 1, then 16

Without a cache every new token recomputes the whole context (cost grows with its length); with one, the
prompt is processed once and each step runs one token through the model. The same weights are exported with
export_gpt2 and loaded into transformers' GPT2LMHeadModel, whose greedy generate is timed the same way, and
the tokens of every run are compared with minigpt's cached run: equal or not, the share of new tokens that
agree and the first step where a row differs (in bf16 two implementations that round differently can pick
different tokens where the best two logits nearly tie, and from there the rows go their own ways). Random
weights are used unless real ones are given or cached: speed does not depend on the weights' values. A batch
here is `batch` random prompts of one length, no padding. What it does not measure: sampling (greedy only),
prompts of different lengths in one batch, and time to first token on its own (prefill is inside each time).
"""
from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from minigpt.cli import ArgumentParser, positive_int, user_errors
from minigpt.device import pick_device
from minigpt.generate import generate
from minigpt.gpt2 import export_gpt2, load_gpt2
from minigpt.model import GPTConfig, GPTModel

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
REFERENCE = "minigpt, KV cache"   # the variant every other one is compared with


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn: Callable[[int], torch.Tensor], new_tokens: int, device: torch.device,
            repeats: int) -> tuple[float, torch.Tensor]:
    """Best wall time of `repeats` calls of fn(new_tokens), after a short warm-up call, and the last result."""
    result = fn(2)   # warm-up: first-call allocations, kernel selection
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = fn(new_tokens)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def build_model(weights: str | None, dtype: torch.dtype, device: torch.device, seed: int,
                **overrides) -> tuple[GPTModel, str]:
    """GPT-2 weights from `weights`, or GPT-2 small's shape (any field overridden) with random weights."""
    if weights:
        return load_gpt2(weights, dtype=dtype, device=device), f"GPT-2 weights from {weights}"
    torch.manual_seed(seed)
    cfg = GPTConfig.preset("gpt2-small", qkv_bias=True, tie_weights=True, drop_rate=0.0, **overrides)
    model = GPTModel(cfg).to(device=device, dtype=dtype).eval()
    shape = "GPT-2 small shape (124M)" if not overrides else f"GPT-2 layout, {overrides}"
    return model, f"{shape}, random weights"


def transformers_twin(model: GPTModel, dtype: torch.dtype, device: torch.device):
    """transformers' GPT2LMHeadModel holding `model`'s weights (through export_gpt2); None without transformers."""
    try:
        import transformers
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        export_gpt2(model, Path(tmp))   # the same weights, in Hugging Face's layout
        return transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=dtype).to(device).eval()


def variants(model: GPTModel, hf, prompt: torch.Tensor, cache_only: bool = False) -> dict[str, Callable]:
    """label -> fn(new_tokens) for minigpt's generate and transformers' (when `hf` is given), cached and not."""
    runs = {REFERENCE: lambda n: generate(model, prompt, n, use_cache=True)}
    if not cache_only:
        runs["minigpt, no cache"] = lambda n: generate(model, prompt, n, use_cache=False)
    if hf is None:
        return runs
    import transformers
    mask = torch.ones_like(prompt)

    def hf_generate(n: int, use_cache: bool) -> torch.Tensor:
        with torch.no_grad():
            return hf.generate(prompt, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               use_cache=use_cache, pad_token_id=model.cfg.vocab_size - 1)
    runs[f"transformers {transformers.__version__}, KV cache"] = lambda n: hf_generate(n, True)
    if not cache_only:
        runs[f"transformers {transformers.__version__}, no cache"] = lambda n: hf_generate(n, False)
    return runs


def agreement(out: torch.Tensor, reference: torch.Tensor, prompt_len: int) -> dict:
    """How far `out`'s new tokens agree with `reference`'s: equal at all, share equal, first differing step per row."""
    new, ref = out[:, prompt_len:].cpu(), reference[:, prompt_len:].cpu()
    if new.shape != ref.shape:
        return {"same_tokens": False, "share_equal": None, "first_difference": None}
    differs = new != ref
    first = [int(row.nonzero()[0]) if row.any() else None for row in differs]
    return {"same_tokens": not bool(differs.any()), "share_equal": float((~differs).float().mean()),
            "first_difference": min((f for f in first if f is not None), default=None)}


def compare(model: GPTModel, hf, batch: int, prompt_len: int, new_tokens: int, repeats: int = 1, seed: int = 0,
            cache_only: bool = False) -> list[dict]:
    """Time each variant on one batch of random prompts; one row per variant, with its agreement with minigpt's."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, model.cfg.vocab_size, (batch, prompt_len), generator=g).to(device)
    rows, outputs = [], {}
    for label, fn in variants(model, hf, prompt, cache_only).items():
        seconds, outputs[label] = time_it(fn, new_tokens, device, repeats)
        rows.append({"variant": label, "batch": batch, "prompt_len": prompt_len, "new_tokens": new_tokens,
                     "seconds": seconds, "tokens_per_s": batch * new_tokens / seconds})
    for row in rows:
        row.update(agreement(outputs[row["variant"]], outputs[REFERENCE], prompt_len))
    return rows


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        same = "same tokens" if row["same_tokens"] else \
            f"{row['share_equal']:.0%} of tokens equal, first difference at step {row['first_difference']}"
        print(f"  batch {row['batch']:3d}  {row['variant']:<36} {row['tokens_per_s']:9.1f} tokens/s  "
              f"({row['seconds']:.2f} s)  {same}")


def batch_sizes(text: str) -> list[int]:
    """argparse type: one batch size or several, comma-separated ("1,16")."""
    return [positive_int(part) for part in text.split(",")]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="a GPT-2 model.safetensors file or directory (default: random weights)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda if available)")
    parser.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    parser.add_argument("--batch", type=batch_sizes, default=[1], help="prompts per batch; several sizes "
                        "comma-separated run one after the other (default 1)")
    parser.add_argument("--prompt-len", type=positive_int, default=64)
    parser.add_argument("--new-tokens", type=positive_int, default=64)
    parser.add_argument("--repeats", type=positive_int, default=1, help="timed runs per variant (the best is kept)")
    parser.add_argument("--cache-only", action="store_true", help="skip the runs without a KV cache")
    parser.add_argument("--no-transformers", action="store_true", help="skip transformers' generate")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice). On a "
                        "shared, busy CPU one thread can be several times faster than waiting for a second")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    dtype = DTYPES[args.dtype]
    with user_errors(parser.prog):   # a --weights path that is not there: one line
        model, what = build_model(args.weights, dtype, device, args.seed)
    hf = None if args.no_transformers else transformers_twin(model, dtype, device)
    if hf is None and not args.no_transformers:
        print("transformers is not installed: skipping its generate")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"{what}; {args.dtype} on {device} ({name}); torch {torch.__version__}")
    print(f"prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, greedy, best of {args.repeats}; "
          f"tokens compared with {REFERENCE!r}")
    rows = []
    for batch in args.batch:
        rows += compare(model, hf, batch, args.prompt_len, args.new_tokens, args.repeats, args.seed, args.cache_only)
        print_rows([row for row in rows if row["batch"] == batch])
    return rows


if __name__ == "__main__":
    main()
