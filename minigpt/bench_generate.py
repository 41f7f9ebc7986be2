"""Chapter 7 benchmark: generation speed with and without the KV cache, beside transformers' generate.

    python -m minigpt.bench_generate                      # GPT-2 small shape, random weights, CPU
    python -m minigpt.bench_generate --weights PATH --device cuda --new-tokens 256

Without a cache every new token recomputes the whole context (cost grows with its length); with one, the
prompt is processed once and each step runs one token through the model. The same weights are exported with
export_gpt2 and loaded into transformers' GPT2LMHeadModel, whose greedy generate is timed the same way, and
the tokens of the three runs are compared. Random weights are used unless real ones are given or cached:
speed does not depend on the weights' values.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from minigpt.device import pick_device
from minigpt.generate import generate
from minigpt.gpt2 import export_gpt2, load_gpt2
from minigpt.model import GPTConfig, GPTModel

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn, new_tokens: int, device: torch.device, repeats: int) -> tuple[float, torch.Tensor]:
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


def build_model(weights: str | None, dtype: torch.dtype, device: torch.device, seed: int) -> tuple[GPTModel, str]:
    if weights:
        return load_gpt2(weights, dtype=dtype, device=device), f"GPT-2 weights from {weights}"
    torch.manual_seed(seed)
    cfg = GPTConfig.preset("gpt2-small", qkv_bias=True, tie_weights=True, drop_rate=0.0)
    model = GPTModel(cfg).to(device=device, dtype=dtype).eval()
    return model, "GPT-2 small shape (124M), random weights"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="a GPT-2 model.safetensors file or directory (default: random weights)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda if available)")
    parser.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per variant (the best is kept)")
    parser.add_argument("--no-transformers", action="store_true", help="skip transformers' generate")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice). On a "
                        "shared, busy CPU one thread can be several times faster than waiting for a second")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = pick_device(args.device)
    dtype = DTYPES[args.dtype]
    model, what = build_model(args.weights, dtype, device, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, model.cfg.vocab_size, (args.batch, args.prompt_len), generator=g).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"{what}; {args.dtype} on {device} ({name}); torch {torch.__version__}")
    print(f"batch {args.batch}, prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, greedy, "
          f"best of {args.repeats}")

    new = args.batch * args.new_tokens
    rows, outputs = [], {}
    variants = {
        "minigpt, KV cache": lambda n: generate(model, prompt, n, use_cache=True),
        "minigpt, no cache": lambda n: generate(model, prompt, n, use_cache=False),
    }
    if not args.no_transformers:
        try:
            import transformers
        except ImportError:
            print("transformers is not installed: skipping its generate")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                export_gpt2(model, Path(tmp))   # the same weights, in Hugging Face's layout
                hf = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=dtype).to(device).eval()
            mask = torch.ones_like(prompt)

            def hf_generate(n: int, use_cache: bool):
                with torch.no_grad():
                    return hf.generate(prompt, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                       do_sample=False, use_cache=use_cache, pad_token_id=model.cfg.vocab_size - 1)
            variants[f"transformers {transformers.__version__}, KV cache"] = lambda n: hf_generate(n, True)
            variants[f"transformers {transformers.__version__}, no cache"] = lambda n: hf_generate(n, False)

    for label, fn in variants.items():
        seconds, out = time_it(fn, args.new_tokens, device, args.repeats)
        outputs[label] = out
        rows.append({"variant": label, "seconds": seconds, "tokens_per_s": new / seconds})
        print(f"  {label:<36} {new / seconds:8.1f} tokens/s  ({seconds:.2f} s)")
    reference = outputs["minigpt, KV cache"]
    same = {label: torch.equal(out.cpu(), reference.cpu()) for label, out in outputs.items()}
    print("same tokens as minigpt with cache: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in same.items()))
    return rows


if __name__ == "__main__":
    main()
