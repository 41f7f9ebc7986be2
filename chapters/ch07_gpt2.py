"""Chapter 7: load OpenAI's GPT-2 into minigpt, generate with a KV cache, measure perplexity.

    python chapters/ch07_gpt2.py                          # downloads gpt2 (124M, 548 MB) once into the cache
    python chapters/ch07_gpt2.py --size gpt2-medium       # 355M; also gpt2-large, gpt2-xl
    python chapters/ch07_gpt2.py --weights ~/model.safetensors   # a copy you downloaded yourself
    python chapters/ch07_gpt2.py --offline                # never touch the network: the random-weights demo

Without network and without a local copy the script says what it needs, then shows the same steps on a
GPT-2-small-shaped checkpoint with random weights that it writes itself with minigpt's exporter (the text
it generates is gibberish then; the loading, caching and measuring are the same).
"""
import argparse
import time
from pathlib import Path


import torch
import torch.nn.functional as F

from minigpt import cli
from minigpt.data import STORIES_DIR, read_story
from minigpt.device import pick_device
from minigpt.files import InputError, save_figure, write_text_atomic
from minigpt.generate import generate, generate_text
from minigpt.gpt2 import describe, export_gpt2, gpt2_size, load_gpt2, weights_url
from minigpt.model import GPT2_SIZES, GPTConfig, GPTModel
from minigpt.tokenizer import GPT2_EOT_ID, gpt2_tiktoken_encoding, gpt2_tokenizer
from minigpt.train import evaluate

PROMPTS = ["The lighthouse keeper opened the door and", "Once upon a time,", "The best way to learn is"]
PROG = Path(__file__).name


def parse_args(argv=None) -> argparse.Namespace:
    """The options, each checked before any work (a bad one: one line, exit status 2)."""
    p = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", help=f"one of {', '.join(GPT2_SIZES)} (default gpt2, 124M; with --weights: "
                                  f"checks the file is that size)")
    p.add_argument("--weights", help="a local model.safetensors (or a directory holding it) instead of a download")
    p.add_argument("--offline", action="store_true", help="do not download; use --weights or the random demo")
    p.add_argument("--demo-layers", type=cli.int_range(1, 12), default=2,
                   help="layers of the random-weights demo model, 1 to 12 (GPT-2 small has 12; fewer keep the "
                        "demo fast)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--device", type=cli.device, default="auto", help="cpu, cuda, or auto (cuda if available)")
    p.add_argument("--max-new-tokens", type=cli.non_negative_int, default=30)
    p.add_argument("--temperature", type=cli.non_negative_float, default=0.8,
                   help="for the sampled generation (0: greedy)")
    p.add_argument("--top-k", type=cli.positive_int, default=40)
    p.add_argument("--top-p", type=cli.probability, default=0.95, help="above 0 and at most 1 (1: off)")
    p.add_argument("--story", default=str(sorted(STORIES_DIR.glob("*.txt"))[0]),
                   help="text whose perplexity is measured (default: the first bundled story)")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--out", type=cli.output_folder, default="out/ch07", help="output folder")
    args = p.parse_args(argv)
    if args.size is not None and gpt2_size(args.size) is None:
        p.error(f"argument --size: must be one of {', '.join(GPT2_SIZES)} (or 124M, 355M, 774M, 1558M), "
                f"got {args.size!r}")
    if args.weights is not None and not Path(args.weights).expanduser().exists():
        p.error(f"argument --weights: no file or folder {args.weights}")
    if args.top_p == 0:
        p.error("argument --top-p: must be above 0 (it keeps the likeliest tokens up to that probability), got 0")
    if not Path(args.story).is_file():
        p.error(f"argument --story: no file {args.story}")
    return args


def check_tokenizers() -> "object":
    """Chapter 1's tokenizer and tiktoken must give GPT-2 the same ids it was trained on."""
    ours, tiktoken_gpt2 = gpt2_tokenizer(), gpt2_tiktoken_encoding()
    text = "Hello, world! GPT-2's tokenizer splits ' tokens' like this: naïve café 🙂<|endoftext|>"
    a = ours.encode(text, allowed_special="all")
    b = tiktoken_gpt2.encode(text, allowed_special="all")
    print(f"Chapter 1's tokenizer and tiktoken on {text!r}:\n  {a}\n  "
          f"{'the same ids' if a == b else 'DIFFERENT ids: ' + str(b)}; decoded back: {ours.decode(a) == text}")
    if a != b:
        raise SystemExit("the tokenizers disagree; GPT-2 would see the wrong tokens")
    return tiktoken_gpt2


def get_model(args, dtype: torch.dtype, device: torch.device, out: Path) -> tuple[GPTModel, bool]:
    """(model, real weights?) — the real GPT-2 if it can be had, else the random-weights demo."""
    name = gpt2_size(args.size or "gpt2")   # parse_args has checked --size
    if args.weights:
        # With --size the file must be that size; without, its configuration is read from its shapes. A file that
        # is not what it should be raises InputError naming it, printed by main as one line.
        print(f"Loading {args.weights} ...")
        return load_gpt2(args.size or args.weights, dtype=dtype, device=device,
                         weights=args.weights if args.size else None), True
    if not args.offline:
        print(f"Loading {name} (downloaded once from {weights_url(name)} into the cache) ...")
        try:
            return load_gpt2(name, dtype=dtype, device=device), True
        except RuntimeError as e:
            print(f"\nNo GPT-2 weights: {e}\n")
    else:
        print(f"--offline: not downloading {weights_url(name)}. Pass --weights PATH (a model.safetensors file or "
              f"a directory holding it) to use a copy you have.\n")
    print(f"Demonstrating on a model shaped like GPT-2 small (its vocabulary, width and heads; {args.demo_layers} "
          f"layers instead of 12, for speed) with RANDOM weights: minigpt writes it as a Hugging Face checkpoint "
          f"(export_gpt2) and loads it back the way it would load GPT-2.")
    torch.manual_seed(args.seed)
    cfg = GPTConfig.preset("gpt2", n_layers=args.demo_layers, qkv_bias=True, tie_weights=True, drop_rate=0.0)
    directory = export_gpt2(GPTModel(cfg), out / "random_gpt2_small")
    print(f"  wrote {directory} ({(directory / 'model.safetensors').stat().st_size / 1e6:.0f} MB)")
    return load_gpt2(directory, dtype=dtype, device=device), False


def story_windows(ids: list[int], context: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The text cut into non-overlapping windows of the context length, one (inputs, targets) batch each.

    Each window predicts its tokens 2..n from the ones before, so the first token of each window is predicted
    without context: a slight overestimate of the perplexity, as in the usual quick measurement.
    """
    windows = []
    for start in range(0, len(ids) - 1, context):
        window = torch.tensor(ids[start:start + context + 1])
        if len(window) < 2:
            break
        windows.append((window[None, :-1], window[None, 1:]))
    return windows


@torch.no_grad()
def per_token_losses(model: GPTModel, windows: list[tuple[torch.Tensor, torch.Tensor]],
                     device: torch.device) -> torch.Tensor:
    """Every target token's cross-entropy, in text order: what the plot shows along the story."""
    losses = [F.cross_entropy(model(inputs.to(device))[0].float(), targets[0].to(device), reduction="none").cpu()
              for inputs, targets in windows]
    return torch.cat(losses)


def plot_losses(per_token: torch.Tensor, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    smooth = torch.nn.functional.avg_pool1d(per_token[None, None], 25, stride=1)[0, 0]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(per_token.numpy(), lw=0.4, alpha=0.4, label="each token")
    ax.plot(range(12, 12 + len(smooth)), smooth.numpy(), lw=1.5, label="average of 25")
    ax.set_xlabel("token position in the story")
    ax.set_ylabel("loss (nats)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def story_ids(path: str, tokenizer) -> list[int]:
    """The token ids of the --story text: UTF-8, and at least two tokens (one to predict from the other)."""
    ids = tokenizer.encode(read_story(path))
    if len(ids) < 2:
        raise InputError(f"--story {path}: {len(ids)} token; measuring perplexity needs at least 2")
    return ids


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """Load (or make) the model, generate three ways, time the KV cache, and measure perplexity on the story."""
    args = parse_args(argv)
    start = time.time()
    device = pick_device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"Chapter 7 on {device}; writing into {out}/\n")

    tokenizer = check_tokenizers()
    story_tokens = story_ids(args.story, tokenizer)   # before the model: a bad story should not wait for a download
    model, real = get_model(args, dtype, device, out)
    print(f"\nLoaded: {describe(model)}")
    if not real:
        print("(random weights: every generation below is gibberish, and the perplexity is about the vocabulary "
              "size; with GPT-2's weights the same code writes English)")

    print(f"\nGreedy continuation (temperature 0), streamed token by token with the KV cache:\n  {PROMPTS[0]}",
          end="")
    generate_text(model, tokenizer, PROMPTS[0], args.max_new_tokens, eos_id=GPT2_EOT_ID, stream=True)
    print(f"\nSampled (temperature {args.temperature}, top-k {args.top_k}, top-p {args.top_p}, seed {args.seed}):"
          f"\n  {PROMPTS[1]}", end="")
    generate_text(model, tokenizer, PROMPTS[1], args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                  top_p=args.top_p, seed=args.seed, eos_id=GPT2_EOT_ID, stream=True)
    print("\nThree prompts of different lengths in one left-padded batch (greedy, 15 tokens each):")
    batch = generate_text(model, tokenizer, PROMPTS, 15, eos_id=GPT2_EOT_ID)
    for prompt, text in zip(PROMPTS, batch):
        print(f"  {prompt}|{text!r}")

    # The KV cache's effect, on the same greedy generation.
    prompt = torch.tensor([tokenizer.encode(PROMPTS[2])], device=device)
    timings = {}
    for use_cache in (True, False):
        t = time.perf_counter()
        ids = generate(model, prompt, 16, use_cache=use_cache)
        timings[use_cache] = time.perf_counter() - t
        timings[f"ids{use_cache}"] = ids
    same = torch.equal(timings["idsTrue"], timings["idsFalse"])
    print(f"\n16 greedy tokens: {16 / timings[True]:.1f} tokens/s with the KV cache, {16 / timings[False]:.1f} "
          f"without (same tokens: {same}); the gap grows with the context (python -m minigpt.bench_generate).")

    story = Path(args.story)
    windows = story_windows(story_tokens, model.cfg.context_length)
    _, ppl = evaluate(model, windows)   # chapter 6's mean loss over every target token, exponentiated
    per_token = per_token_losses(model, windows, device)
    print(f"\nPerplexity on {story.name} ({len(story_tokens)} tokens, windows of {model.cfg.context_length}): {ppl:.1f}"
          + ("" if real else f" (uniform guessing over the vocabulary would give {model.cfg.vocab_size})"))
    figure = out / "story_loss.png"
    plot_losses(per_token, f"{'GPT-2' if real else 'random weights'}: next-token loss on {story.name}", figure)
    report = out / "generations.txt"
    write_text_atomic(report, "\n".join(f"{p}|{t}" for p, t in zip(PROMPTS, batch)) + f"\nperplexity {ppl:.2f}\n")
    print(f"Saved {figure} (loss per token along the story) and {report}. Done in {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
