"""Chapter 11: teaching a GPT a new language: extend its vocabulary, grow its embeddings, continue pretraining.

    python chapters/ch11_vocabulary.py                         # a small story model learns Chinese (CPU, ~3-5 minutes)
    python chapters/ch11_vocabulary.py --new-tokens 2000 --shares 0,0.2,1
    python chapters/ch11_vocabulary.py --base out/ch06/ckpt.pt    # start from chapter 6's model (GPT-2's vocabulary)
    python chapters/ch11_vocabulary.py --weights PATH --steps 20 --batch-size 4   # GPT-2 124M (slow on a CPU)

By default the script first makes the model it extends: a chapter 1 tokenizer trained on the bundled English stories
(1,024 ids, <|endoftext|> last) and a 4-layer GPT pretrained on them for half a minute. Then, in order:
  1. learns --new-tokens Chinese tokens on data/chinese/train.txt on top of that tokenizer (minigpt/vocab.py), checks
     the result against tiktoken, saves it in minigpt's format and as a tiktoken rank file, and shows the compression;
  2. grows the model's embedding (and head) for the new ids (minigpt/grow.py), checks that old ids give the old logits
     and that transformers computes the same logits from the grown model exported in GPT-2's layout;
  3. trains only the new rows on Chinese for a few steps, then everything on a mix of Chinese and stories at each
     --shares value (chapter 2's MixedDataset, chapter 6's train()), scoring held-out Chinese and held-out stories in
     bits per byte, and once more with the old tokenizer at one share, to compare tokenizers at equal compute;
  4. prints samples before and after, and writes compression.png, sweep.png and results.json to --out.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path

import torch

from minigpt.batches import WindowBatches, fixed_batches
from minigpt.cli import ArgumentParser, fraction, non_negative_int, positive_float, positive_int, user_errors
from minigpt.data import GPTDataset, join_documents, load_stories, split_ids
from minigpt.device import pick_device
from minigpt.files import InputError, save_figure, write_text_atomic
from minigpt.gpt2 import export_gpt2, load_gpt2
from minigpt.grow import grow_model, held_out_score, mixture, token_bytes, train_all, train_only_new_rows
from minigpt.loading import load_model
from minigpt.model import GPTConfig, GPTModel
from minigpt.tokenizer import GPT2_ENDOFTEXT, GPT2_EOT_ID, BPETokenizer, gpt2_tokenizer, load_tiktoken_ranks
from minigpt.train import TrainConfig, sample_text, train
from minigpt.vocab import (compression, extend_tokenizer, max_new_tokens, mergeable_ranks, new_tokens,
                           save_tiktoken_ranks, show_token, tiktoken_encoding)

CHINESE = Path(__file__).resolve().parent.parent / "data" / "chinese"
BASE_VOCAB = 1024    # the default base tokenizer: 1,023 BPE tokens learned on the stories + <|endoftext|>
PROMPTS = ("小明在", "Once upon a time")


def share_list(text: str) -> list[float]:
    """argparse type: comma-separated domain shares, each between 0 and 1."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers between 0 and 1 separated by commas, got {text!r}")
        if not 0 <= value <= 1:
            raise argparse.ArgumentTypeError(f"each share must be between 0 and 1, got {part}")
        values.append(value)
    return values


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="ch11_vocabulary.py", description=__doc__.split("\n\n")[0],
                       epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    start = p.add_argument_group("the model to extend (default: a small story model made here)")
    start.add_argument("--base", help="a minigpt checkpoint (e.g. out/ch06/ckpt.pt) to extend")
    start.add_argument("--weights", help="GPT-2 weights: a model.safetensors or a folder holding one")
    start.add_argument("--base-steps", type=positive_int, default=70, help="pretraining steps of the default model")
    data = p.add_argument_group("data")
    data.add_argument("--domain", default=str(CHINESE / "train.txt"),
                      help="domain text, documents separated by blank lines")
    data.add_argument("--heldout", default=str(CHINESE / "heldout.txt"), help="held-out domain text")
    data.add_argument("--eval-docs", type=positive_int, default=40, help="held-out documents scored")
    vocab = p.add_argument_group("vocabulary")
    vocab.add_argument("--new-tokens", type=positive_int, default=1000, help="tokens to learn on the domain text")
    training = p.add_argument_group("continued pretraining")
    training.add_argument("--shares", type=share_list, default=[0.0, 0.15, 0.5, 1.0], help="domain shares to sweep")
    training.add_argument("--compare-share", type=fraction, default=0.5,
                          help="share at which the old tokenizer is trained too (--no-compare: not at all)")
    training.add_argument("--no-compare", action="store_true", help="skip the old-tokenizer run")
    training.add_argument("--new-rows-steps", type=non_negative_int, default=20, help="steps training new rows only")
    training.add_argument("--steps", type=positive_int, default=60, help="steps per domain share")
    training.add_argument("--batch-size", type=positive_int, default=8)
    training.add_argument("--context", type=positive_int, default=128, help="tokens per window")
    training.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--threads", type=non_negative_int, default=1,
                   help="CPU threads for torch (default 1: small matrices gain little from more, and on a busy "
                        "machine threads wait for each other; 0 keeps torch's choice)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--out", default="out/ch11", help="folder for tokenizers, checkpoints, figures and results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.base and args.weights:
        p.error("--base and --weights both name a model to extend; give one")
    for name in ("base", "weights", "domain", "heldout"):
        path = getattr(args, name)
        if path and not Path(path).exists():
            p.error(f"--{name} {path}: no such file or folder")
    limit = max_new_tokens(gpt2_tokenizer()) if (args.weights or args.base) else 2 ** 16 - BASE_VOCAB
    if args.new_tokens > limit:   # for --base the checkpoint's own tokenizer is checked again once it is read
        p.error(f"--new-tokens {args.new_tokens:,}: token shards hold ids below 65,536, so at most {limit:,} new "
                f"tokens fit this base vocabulary")
    return args


def read_documents(path: str | Path) -> list[str]:
    """Documents of a text file, separated by blank lines."""
    docs = [d.strip() for d in Path(path).read_text(encoding="utf-8").split("\n\n") if d.strip()]
    if not docs:
        raise InputError(f"{path} holds no text")
    return docs


# --------------------------------------------------------------------------------------------- the base model

def small_story_model(args, stories: list[str], device, say) -> tuple[GPTModel, BPETokenizer]:
    """Chapter 1's tokenizer and chapter 6's loop on the stories: the English-only model the chapter extends."""
    tokenizer = BPETokenizer().train("\n\n".join(stories), BASE_VOCAB, [GPT2_ENDOFTEXT])
    train_ids, val_ids = split_ids(join_documents(stories, tokenizer), 0.1)
    torch.manual_seed(args.seed)
    model = GPTModel(GPTConfig.preset("tiny", vocab_size=tokenizer.vocab_size, context_length=args.context,
                                      tie_weights=True, drop_rate=0.1)).to(device)
    say(f"Base model: a chapter 1 tokenizer trained on the stories ({tokenizer.vocab_size:,} ids, "
        f"<|endoftext|> = {tokenizer.special_tokens[GPT2_ENDOFTEXT]}) and a 4-layer GPT pretrained on "
        f"{len(train_ids):,} story tokens for {args.base_steps} steps.")
    config = TrainConfig(max_steps=args.base_steps, learning_rate=4e-3, min_lr=4e-4, warmup_steps=15,
                         eval_every=0, eval_batches=4, sample_tokens=20, out_dir=str(Path(args.out) / "base"),
                         seed=args.seed, progress=not args.quiet)
    batches = WindowBatches(GPTDataset(train_ids, args.context, args.context), args.batch_size, seed=args.seed)
    val = fixed_batches(GPTDataset(val_ids, args.context, args.context), args.batch_size, 4)
    train(model, batches, val, config, tokenizer=tokenizer)
    return model.eval(), tokenizer


def base_model(args, stories, device, say) -> tuple[GPTModel, BPETokenizer]:
    """(model, BPETokenizer) to extend: GPT-2's weights, a checkpoint, or the small story model."""
    if args.weights:
        say(f"Base model: GPT-2 from {args.weights}, with GPT-2's tokenizer (50,257 ids, <|endoftext|> = 50256).")
        return load_gpt2(args.weights, device=device), gpt2_tokenizer()
    if args.base:
        model, tokenizer = load_model(args.base, device)
        if not isinstance(model, GPTModel):
            raise InputError(f"{args.base} holds a {type(model).__name__}, not a language model")
        if not isinstance(tokenizer, BPETokenizer):   # GPT-2's, recorded by name and opened as a tiktoken Encoding
            tokenizer = gpt2_tokenizer()
        if args.new_tokens > max_new_tokens(tokenizer):
            raise InputError(f"--new-tokens {args.new_tokens:,}: at most {max_new_tokens(tokenizer):,} new tokens "
                             f"fit uint16 token shards after {args.base}'s {tokenizer.vocab_size:,} ids")
        say(f"Base model: {args.base} ({model.cfg.n_layers} layers, vocabulary {tokenizer.vocab_size:,}).")
        return model, tokenizer
    return small_story_model(args, stories, device, say)


# --------------------------------------------------------------------------------------------- steps 1 and 2

def extend_and_show(args, old: BPETokenizer, domain_docs, heldout_text: str, out: Path, say) -> tuple:
    started = time.perf_counter()
    new = extend_tokenizer(old, domain_docs, args.new_tokens, progress=not args.quiet)
    added = new_tokens(old, new)
    say(f"\n1. Learned {len(added):,} new tokens in {time.perf_counter() - started:.1f} s: ids "
        f"{added[0][0]:,}..{added[-1][0]:,} (the old ids 0..{old.vocab_size - 1:,} are unchanged; "
        f"<|endoftext|> keeps {new.special_tokens.get(GPT2_ENDOFTEXT)}).")
    new.save(out / "tokenizer.txt")
    save_tiktoken_ranks(new, out / "tokenizer.tiktoken")
    same_ranks = load_tiktoken_ranks(out / "tokenizer.tiktoken") == mergeable_ranks(new)
    same_ids = tiktoken_encoding(new).encode_ordinary(heldout_text) == new.encode_ordinary(heldout_text)
    say(f"   Saved {out / 'tokenizer.txt'} (minigpt) and {out / 'tokenizer.tiktoken'} (tiktoken ranks, reads back "
        f"{'the same' if same_ranks else 'DIFFERENT'}); tiktoken with these ranks gives "
        f"{'the same ids as minigpt' if same_ids else 'DIFFERENT ids'} on the held-out text.")
    rng = random.Random(args.seed)
    shown = [show_token(b) for _, b in added[:12]] + ["..."] + \
        [show_token(b) for _, b in sorted(rng.sample(added, min(12, len(added))))]
    say("   The first new tokens, then a random dozen: " + " | ".join(shown))
    rows = {"GPT-2 (reference)": compression(gpt2_tokenizer(), heldout_text)} if old.vocab_size != 50257 else {}
    rows[f"before ({old.vocab_size:,} ids)"] = compression(old, heldout_text)
    rows[f"after (+{len(added):,})"] = compression(new, heldout_text)
    say(f"\n   {'held-out Chinese':<22} {'tokens':>8} {'tokens/char':>12} {'bytes/token':>12}")
    for name, row in rows.items():
        say(f"   {name:<22} {row['tokens']:>8,} {row['tokens_per_char']:>12.3f} {row['bytes_per_token']:>12.2f}")
    plot_compression(rows, out / "compression.png")
    return new, rows


def grow_and_check(model, old, new, text: str, out: Path, say) -> GPTModel:
    grown = grow_model(model, old, new)
    ids_old = torch.tensor([old.encode_ordinary(text)[:64]], device=next(model.parameters()).device)
    with torch.no_grad():
        before, after = model.eval()(ids_old), grown.eval()(ids_old)
    same = (after[..., :old.vocab_size] - before).abs().max().item()
    say(f"\n2. Grew the token embedding{'' if grown.cfg.tie_weights else ' and the output head'} from "
        f"{model.cfg.vocab_size:,} to {grown.cfg.vocab_size:,} rows"
        f"{' (tied: one matrix)' if grown.cfg.tie_weights else ''}; each new row is the mean of its old pieces' "
        f"rows. On old ids the old logits are unchanged (largest difference {same:.1e}).")
    export_gpt2(grown, out / "hf", end_of_text_id=new.special_tokens.get(GPT2_ENDOFTEXT, GPT2_EOT_ID))
    try:
        import transformers
    except ImportError:
        say("   transformers is not installed: the check of the exported model is skipped.")
        return grown
    hf = transformers.GPT2LMHeadModel.from_pretrained(out / "hf").eval()
    ids = torch.tensor([new.encode_ordinary(text)[:grown.cfg.context_length]])
    with torch.no_grad():
        difference = (hf(ids.cpu()).logits - grown.cpu()(ids.cpu())).abs().max().item()
    grown.to(next(model.parameters()).device)
    say(f"   Exported in GPT-2's Hugging Face layout to {out / 'hf'} (vocab_size {grown.cfg.vocab_size:,}); "
        f"transformers' logits on {ids.shape[1]} Chinese tokens differ from minigpt's by at most {difference:.1e}.")
    return grown


# --------------------------------------------------------------------------------------------- step 3

def windows(docs: list[str], tokenizer, context: int) -> GPTDataset:
    return GPTDataset(join_documents(docs, tokenizer), context, context)


def continue_pretraining(model, tokenizer, data: dict, share: float, args, out_dir: Path, steps: int,
                         say, sample_prompt: str = PROMPTS[0]) -> dict:
    """Train a copy of `model` on the mix at `share`; return its history and held-out scores."""
    model = copy.deepcopy(model).train()
    config = TrainConfig(max_steps=steps, learning_rate=args.lr, min_lr=args.lr / 10, warmup_steps=min(10, steps),
                         eval_every=max(1, steps // 5), eval_batches=len(data["domain_eval"]), sample_tokens=24,
                         sample_prompt=sample_prompt, out_dir=str(out_dir), seed=args.seed, progress=not args.quiet)
    batches = WindowBatches(mixture(data["domain"], data["general"], share, seed=args.seed), args.batch_size)
    history = train(model, batches, data["domain_eval"], config, tokenizer=tokenizer)
    scores = {name: held_out_score(model, data[f"{name}_eval"], data["lengths"]) for name in ("domain", "general")}
    return {"model": model, "history": history, "scores": scores}


def datasets(tokenizer, domain_docs, eval_docs, stories, context, batch_size) -> dict:
    story_train, story_val = split_ids(join_documents(stories, tokenizer), 0.1)
    return {"domain": windows(domain_docs, tokenizer, context),
            "general": GPTDataset(story_train, context, context),
            "domain_eval": fixed_batches(windows(eval_docs, tokenizer, context), batch_size, 10 ** 6),
            "general_eval": fixed_batches(GPTDataset(story_val, context, context), batch_size, 10 ** 6),
            "lengths": token_bytes(tokenizer)}


# --------------------------------------------------------------------------------------------- figures

def plot_compression(rows: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(rows)
    for ax, key, title in ((axes[0], "tokens_per_char", "tokens per character (lower: shorter sequences)"),
                           (axes[1], "bytes_per_token", "UTF-8 bytes per token (higher: longer tokens)")):
        values = [rows[n][key] for n in names]
        ax.bar(names, values, color=["tab:gray", "tab:blue", "tab:green"][-len(names):])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.2f}", ha="center", va="bottom")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, max(values) * 1.2)
    fig.suptitle("Held-out Chinese text before and after extending the vocabulary")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_sweep(runs: dict, start: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, run in runs.items():
        history, domain = run["history"], run["scores"]["domain"]
        to_bpb = domain["bits_per_byte"] / domain["loss"]   # bits per byte per nat per token, for this eval set
        left.plot(history["val_step"], [v * to_bpb for v in history["val_loss"]], "o-", ms=3, label=label)
    left.axhline(start["domain"]["bits_per_byte"], color="gray", ls=":", label="extended model at the start")
    left.set_xlabel("optimizer step")
    left.set_ylabel("held-out Chinese, bits per byte")
    left.set_title("learning the new language", fontsize=10)
    left.legend(fontsize=8)
    labels = list(runs)
    general = [runs[k]["scores"]["general"]["bits_per_byte"] for k in labels]
    right.bar(range(len(labels)), general, color="tab:orange")
    right.axhline(start["general"]["bits_per_byte"], color="gray", ls=":", label="before continued pretraining")
    right.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    right.set_ylabel("held-out stories, bits per byte")
    right.set_title("forgetting the old text (higher: worse)", fontsize=10)
    right.set_ylim(min(general + [start["general"]["bits_per_byte"]]) * 0.9, max(general) * 1.05)
    right.legend(fontsize=8)
    fig.suptitle("Continued pretraining at several domain shares (same steps, same batch)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- main

def main(argv=None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    with user_errors("ch11_vocabulary.py"):
        run(args, started)


def run(args, started: float) -> None:
    def say(message: str) -> None:
        print(message, flush=True)

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    domain_docs, heldout_docs = read_documents(args.domain), read_documents(args.heldout)
    eval_docs = heldout_docs[:args.eval_docs]
    heldout_text = "\n\n".join(eval_docs)
    stories = load_stories()
    say(f"Chapter 11: teaching a GPT a new language, on {device}. Domain text: {len(domain_docs):,} Chinese "
        f"documents ({sum(map(len, domain_docs)):,} characters) from {args.domain}; {len(eval_docs)} held-out "
        f"documents ({len(heldout_text):,} characters) from {args.heldout}; general text: the {len(stories)} stories.")

    model, old = base_model(args, stories, device, say)
    new, compression_rows = extend_and_show(args, old, domain_docs, heldout_text, out, say)
    grown = grow_and_check(model, old, new, heldout_text, out, say)

    data = datasets(new, domain_docs, eval_docs, stories, args.context, args.batch_size)
    start = {name: held_out_score(grown, data[f"{name}_eval"], data["lengths"]) for name in ("domain", "general")}
    old_data = datasets(old, domain_docs, eval_docs, stories, args.context, args.batch_size)
    base_scores = {name: held_out_score(model, old_data[f"{name}_eval"], old_data["lengths"])
                   for name in ("domain", "general")}
    say(f"\n3. Held-out scores in bits per byte (Chinese / stories): base model "
        f"{base_scores['domain']['bits_per_byte']:.3f} / {base_scores['general']['bits_per_byte']:.3f}; grown, "
        f"untrained {start['domain']['bits_per_byte']:.3f} / {start['general']['bits_per_byte']:.3f}.")
    if args.new_rows_steps:
        hooks = train_only_new_rows(grown, old.vocab_size)
        say(f"   Stage 1: {args.new_rows_steps} steps on Chinese training only the new rows "
            f"({(grown.cfg.vocab_size - old.vocab_size) * grown.cfg.emb_dim:,} weights; the rest frozen).")
        config = TrainConfig(max_steps=args.new_rows_steps, learning_rate=args.lr * 2, min_lr=args.lr / 5,
                             warmup_steps=5, weight_decay=0.0, eval_every=0, eval_batches=len(data["domain_eval"]),
                             sample_tokens=16, sample_prompt=PROMPTS[0], out_dir=str(out / "new_rows"),
                             seed=args.seed, progress=not args.quiet)
        train(grown, WindowBatches(data["domain"], args.batch_size, seed=args.seed), data["domain_eval"], config,
              tokenizer=new)
        train_all(grown, hooks)
        start = {name: held_out_score(grown, data[f"{name}_eval"], data["lengths"]) for name in ("domain", "general")}
        say(f"   After stage 1: {start['domain']['bits_per_byte']:.3f} / {start['general']['bits_per_byte']:.3f}.")

    runs = {}
    for share in args.shares:
        label = f"{share:.0%} Chinese"
        say(f"\n   Stage 2 at {label}: {args.steps} steps of {args.batch_size} x {args.context} tokens, all weights.")
        runs[label] = continue_pretraining(grown, new, data, share, args, out / f"mix_{round(share * 100):03d}",
                                           args.steps, say)
    if not args.no_compare:
        label = f"{args.compare_share:.0%} Chinese, old tokenizer"
        steps = args.steps + args.new_rows_steps   # the extended model's two stages together: equal compute
        say(f"\n   The same at {args.compare_share:.0%} with the old tokenizer and the ungrown model for {steps} steps "
            f"(stage 1 + stage 2), to compare tokenizers at equal compute (a window then holds fewer characters):")
        runs[label] = continue_pretraining(model, old, old_data, args.compare_share, args, out / "old_tokenizer",
                                           steps, say)
    report(args, runs, start, base_scores, compression_rows, model, old, new, out, say)
    say(f"\nWrote {out / 'compression.png'}, {out / 'sweep.png'} and {out / 'results.json'}. "
        f"Wall time {time.perf_counter() - started:.0f} s.")


def report(args, runs, start, base_scores, compression_rows, model, old, new, out: Path, say) -> None:
    say(f"\n   {'run':<32} {'Chinese bits/byte':>18} {'stories bits/byte':>18} {'Chinese nats/token':>19}")
    say(f"   {'base model, old tokenizer':<32} {base_scores['domain']['bits_per_byte']:>18.3f} "
        f"{base_scores['general']['bits_per_byte']:>18.3f} {base_scores['domain']['loss']:>19.3f}")
    for label, run in runs.items():
        d, g = run["scores"]["domain"], run["scores"]["general"]
        say(f"   {label:<32} {d['bits_per_byte']:>18.3f} {g['bits_per_byte']:>18.3f} {d['loss']:>19.3f}")
    say(f"   (before: grown model {start['domain']['bits_per_byte']:.3f} / {start['general']['bits_per_byte']:.3f}; "
        f"loss per token is not comparable across tokenizers, bits per byte is)")
    plot_sweep(runs, start, out / "sweep.png")

    say("\n4. Samples (temperature 0.8, top-k 40, the same seed) before and after:")
    samples = {"base model": [sample_text(model, old, prompt, 24, 0.8, 40, args.seed) for prompt in PROMPTS]}
    for label, run in runs.items():
        tokenizer = old if "old tokenizer" in label else new
        samples[label] = [sample_text(run["model"], tokenizer, prompt, 24, 0.8, 40, args.seed) for prompt in PROMPTS]
    for label, texts in samples.items():
        say(f"   {label:<30} " + "   ".join(repr(t) for t in texts))
    last = next(run for label, run in reversed(list(runs.items())) if "old tokenizer" not in label)
    reloaded, tokenizer = load_model(last["history"]["checkpoint"])
    say(f"   {last['history']['checkpoint']} records the extended tokenizer: load_model returns it "
        f"({'the same vocabulary' if tokenizer.vocab == new.vocab else 'a DIFFERENT vocabulary'}, {tokenizer!r}).")
    results = {"args": {k: v for k, v in vars(args).items()}, "compression": compression_rows,
               "base": base_scores, "start": start, "samples": samples,
               "runs": {label: {"scores": run["scores"], "val_step": run["history"]["val_step"],
                                "val_loss": run["history"]["val_loss"]} for label, run in runs.items()}}
    write_text_atomic(out / "results.json", json.dumps(results, indent=1, ensure_ascii=False) + "\n")



if __name__ == "__main__":
    main()
