"""Chapter 13: learning from preferences — a reward model and DPO on top of chapter 9's instruction model.

    python chapters/ch13_preferences.py                                 # bundled preferences, CPU, a few minutes
    python chapters/ch13_preferences.py --checkpoint out/ch09/ckpt.pt   # start from your chapter 9 model
    python chapters/ch13_preferences.py --lora-rank 8                   # DPO trains adapters; reference = adapters off
    python chapters/ch13_preferences.py --reference live --beta 0.3     # reference log-probs at every step
    python chapters/ch13_preferences.py --rpo-alpha 0                   # plain DPO, without RPO's next-token term
    python chapters/ch13_preferences.py --data my_preferences/          # train/validation/test .json(l), either format

The script starts from an instruction model (a chapter 9 checkpoint if out/ch09/ckpt.pt exists, else a small one it
trains itself), shows how a ranked record becomes pairs, trains a reward model on the ranked answers (Bradley–Terry,
every pair of a prompt in one batch), then trains the policy with DPO against a frozen reference, both through
chapter 6's train(). It reports, with 95% intervals, how often the model prefers the better answer of held-out pairs
before and after DPO, and how the reward model scores the policy's own answers before and after; it shows answers
side by side and saves the curves as PNG files and the numbers as JSON in --out.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch

from minigpt.checkpoint import load_checkpoint
from minigpt.classify import save_classifier
from minigpt.cli import (ArgumentParser, non_negative_float, non_negative_int, positive_float, positive_int,
                         user_errors)
from minigpt.device import pick_device
from minigpt.dpo import AnswerLoss, frozen_reference, pair_logprobs, train_dpo
from minigpt.files import InputError, write_text_atomic
from minigpt.instruct import (STYLES, InstructionDataset, finetune, generate_responses, load_splits,
                              response_perplexity)
from minigpt.loading import load_base_model, model_from_checkpoint
from minigpt.metrics import bootstrap_interval
from minigpt.lora import ALL_LINEAR, apply_lora, count_trainable, lora_settings
from minigpt.model import GPTConfig, GPTModel
from minigpt.preference import (PairDataset, PairMetrics, RankedDataset, best_pairs, load_preference_splits,
                                ranked_pairs, reward_margins, reward_model_from, reward_scores,
                                train_reward_model)
from minigpt.tokenizer import gpt2_tiktoken_encoding
from minigpt.train import TrainConfig, TrainingInterrupted

CHAPTER9_CHECKPOINT = Path("out/ch09/ckpt.pt")
# Peak learning rate of the small instruction model trained here. Chapter 9's from random weights is 5e-3, with the
# loss on prompt and answer; on the answer tokens alone (a third as many per batch) 5e-3 trained worse than 3e-3.
SFT_LR = 3e-3


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="ch13_preferences.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", type=Path, help="folder with train/validation/test .jsonl or .json preference files "
                                                "(default: the bundled data/preferences)")
    data.add_argument("--style", choices=STYLES, help="prompt layout (default: the checkpoint's, else alpaca)")
    start = p.add_argument_group("the starting model")
    start.add_argument("--checkpoint", type=Path, help="a chapter 9 checkpoint (default: out/ch09/ckpt.pt if present)")
    start.add_argument("--weights", help='GPT-2 weights ("gpt2", ... or a local path); not instruction-tuned')
    start.add_argument("--sft-steps", type=positive_int, default=400,
                       help="steps of the small instruction model trained here when no checkpoint is found")
    rm = p.add_argument_group("reward model")
    rm.add_argument("--rm-steps", type=positive_int, default=100, help="optimizer steps")
    rm.add_argument("--rm-lr", type=positive_float, default=3e-4, help="peak learning rate")
    rm.add_argument("--batch-size", type=positive_int, default=8, help="prompts per step (each with all its answers)")
    dpo = p.add_argument_group("DPO")
    dpo.add_argument("--dpo-steps", type=positive_int, default=240, help="optimizer steps")
    dpo.add_argument("--dpo-batch-size", type=positive_int, default=4,
                     help="pairs per step (4 pairs for 240 steps moved held-out accuracy more than 8 for 120)")
    dpo.add_argument("--dpo-lr", type=positive_float, help="peak learning rate (default 1e-3, with LoRA 2e-3)")
    dpo.add_argument("--beta", type=positive_float, default=0.1, help="DPO's β: how far the policy may move")
    dpo.add_argument("--rpo-alpha", type=non_negative_float, default=1.0,
                     help="weight of the chosen answers' mean next-token loss added to each pair's DPO loss (RPO; "
                          "0: plain DPO, whose own answers degrade here)")
    dpo.add_argument("--lora-rank", type=non_negative_int, default=0,
                     help="train LoRA adapters of this rank (0: every weight); the reference is then the policy "
                          "with its adapters off")
    dpo.add_argument("--reference", choices=("auto", "cached", "live"), default="auto",
                     help="compute the reference log-probabilities once before training (cached), or at every step "
                          "(live); auto: cached when the run sees every training pair at least once")

    p.add_argument("--generate", type=non_negative_int, default=48,
                   help="held-out requests the policy answers before and after DPO, for the reward model to score")
    p.add_argument("--max-new-tokens", type=positive_int, default=32)
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: 1 for a small model, which is "
                                                        "faster on a busy 2-core machine)")
    p.add_argument("--device", default="auto", help='"auto" (cuda if available, else cpu), "cpu", "cuda", ...')
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", type=Path, default=Path("out/ch13"), help="output folder")
    return p


def check_args(args, parser: ArgumentParser) -> None:
    """Everything that can be checked before any work, reported as one line."""
    if args.checkpoint and args.weights:
        parser.error("give --checkpoint or --weights, not both")
    if args.checkpoint and not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if args.data and not args.data.is_dir():
        parser.error(f"--data {args.data}: not a folder (it needs train/validation/test .jsonl or .json files)")
    try:
        args.device = pick_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")


# ------------------------------------------------------------------------------------------ the start

def starting_model(args, tokenizer) -> tuple[GPTModel, str, str]:
    """(instruction model, prompt style, where it came from): a checkpoint, GPT-2 weights, or one trained here."""
    checkpoint = args.checkpoint or (CHAPTER9_CHECKPOINT if CHAPTER9_CHECKPOINT.is_file() and not args.weights
                                     else None)
    if checkpoint:
        stored = load_checkpoint(checkpoint)
        model, _ = model_from_checkpoint(stored, args.device, checkpoint)
        if not isinstance(model, GPTModel):
            raise InputError(f"{checkpoint} holds a {type(model).__name__}, not a language model")
        style = args.style or (stored.get("extra") or {}).get("style") or "alpaca"
        return model.train(), style, f"the checkpoint {checkpoint}"
    style = args.style or "alpaca"
    earlier = args.out / "sft" / "ckpt.pt"   # this script's own instruction model, from an earlier run
    settings = {"steps": args.sft_steps, "learning_rate": SFT_LR, "loss": "answer tokens", "seed": args.seed}
    if not args.weights and earlier.is_file():
        stored = load_checkpoint(earlier)
        extra = stored.get("extra") or {}
        if extra.get("sft") == settings and extra.get("style") == style:
            model, _ = model_from_checkpoint(stored, args.device, earlier)
            return model.train(), style, f"the instruction model an earlier run trained ({earlier})"
    if args.weights:
        model = load_base_model(weights=args.weights, device=args.device)
        return model.train(), style, f"GPT-2 weights {args.weights} (not instruction-tuned: expect weak answers)"
    args.stage = "the instruction model"
    torch.manual_seed(args.seed)
    model = load_base_model(config=GPTConfig.preset("tiny", tie_weights=True, drop_rate=0.0), device=args.device)
    splits = load_splits()
    print(f"No chapter 9 checkpoint at {CHAPTER9_CHECKPOINT}: training a small instruction model first "
          f"({args.sft_steps} steps of chapter 9's finetuning on the bundled instructions, loss on the answer "
          f"tokens only, the output head computed there alone).")
    datasets = [InstructionDataset(splits[name], tokenizer, style, model.cfg.context_length)
                for name in ("train", "validation")]
    config = TrainConfig(max_steps=args.sft_steps, learning_rate=SFT_LR, min_lr=SFT_LR / 10, warmup_steps=20,
                         eval_every=0, eval_batches=10, out_dir=str(args.out / "sft"), seed=args.seed, log_every=10)
    history = finetune(model, *datasets, config, batch_size=8, mask_prompt=True, seed=args.seed, loss=AnswerLoss(),
                       extra={"chapter": 13, "style": style, "lora": None, "sft": settings})
    print(f"Instruction model: validation loss {history['val_loss'][-1]:.3f} after {args.sft_steps} steps "
          f"(checkpoint {history['checkpoint']}).\n")
    return model, style, f"a small instruction model trained here ({args.sft_steps} steps, {history['checkpoint']})"


def show_ranked_example(item) -> None:
    print("One ranked record (best first) and what becomes of it:")
    for rank, (answer, kind) in enumerate(zip(item.responses, item.kinds or ["?"] * len(item.responses)), 1):
        print(f"  {rank}. [{kind}] {answer[:90]!r}{'…' if len(answer) > 90 else ''}")
    k = len(item.responses)
    print(f"  The reward model compares all {k}·{k - 1}/2 = {len(ranked_pairs(k))} pairs {ranked_pairs(k)} in one "
          f"batch (each answer scored once); DPO takes the best against each other: {best_pairs(k)}.\n")


# ----------------------------------------------------------------------------------- measurements

def interval_text(mean: float, low: float, high: float, percent: bool = True) -> str:
    if percent:
        return f"{mean:.1%} (95% interval {low:.1%} to {high:.1%})"
    return f"{mean:+.3f} (95% interval {low:+.3f} to {high:+.3f})"


def accuracy(margins: torch.Tensor, pairs: PairDataset) -> tuple[float, float, float]:
    """Share of pairs with a positive margin, with a bootstrap interval over prompts."""
    return bootstrap_interval((margins > 0).float().tolist(), pairs.groups)


def by_kind(margins: torch.Tensor, pairs: PairDataset) -> dict[str, float]:
    kinds = sorted(set(pairs.kinds))
    return {k: float((margins[[i for i, x in enumerate(pairs.kinds) if x == k]] > 0).float().mean()) for k in kinds}


def answer_and_score(policy, reward_model, tokenizer, items, style: str, args) -> tuple[list[str], torch.Tensor]:
    """The policy's greedy answers to `items` (chapter 9's generation) and the reward model's score of each."""
    answers = generate_responses(policy, tokenizer, [i.request for i in items], style, args.max_new_tokens,
                                 batch_size=16, progress=True)
    sequences = [tokenizer.encode_ordinary(i.prompt) + tokenizer.encode_ordinary(a) for i, a in zip(items, answers)]
    return answers, reward_scores(reward_model, sequences)


# ------------------------------------------------------------------------------------------ figures

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _smooth(values: list[float], width: int) -> list[float]:
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1])
            for i in range(len(values))]


def plot_curves(history: dict, metrics: PairMetrics, eval_calls: int, title: str, score_name: str,
                path: Path) -> Path:
    """Accuracy and margin per training step (one batch each: no accumulation here) and per evaluation."""
    from minigpt.files import save_figure
    plt = _plt()
    train, val = PairMetrics.curve(metrics.train, 1), PairMetrics.curve(metrics.eval, eval_calls)
    steps = history["step"][-len(train["margin"]):] if train["margin"] else []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "accuracy", "share of pairs ranked right"),
                           (axes[1], "margin", f"{score_name}(chosen) − {score_name}(rejected)")):
        width = max(1, len(steps) // 15)
        ax.plot(steps, train[key], color="tab:blue", alpha=0.3, lw=1, label="training batches")
        ax.plot(steps, _smooth(train[key], width), color="tab:blue", lw=2, label=f"training (mean of last {width})")
        ax.plot(history["val_step"][-len(val[key]):] if val[key] else [], val[key], "o-", color="tab:orange", lw=2,
                label="validation pairs")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].axhline(0.5, color="gray", ls=":", lw=1)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_before_after(results: dict, path: Path) -> Path:
    from minigpt.files import save_figure
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = [(axes[0], "preference accuracy on held-out pairs", ("accuracy_before", "accuracy_after")),
              (axes[1], "reward model's score of the policy's answers", ("reward_before", "reward_after"))]
    for ax, title, keys in panels:
        values = [results[k] for k in keys if k in results]
        if not values:
            ax.set_visible(False)
            continue
        means = [v["mean"] for v in values]
        errors = [[m - v["low"] for m, v in zip(means, values)], [v["high"] - m for m, v in zip(means, values)]]
        ax.bar(["before DPO", "after DPO"][:len(values)], means, yerr=errors, capsize=8,
               color=["tab:gray", "tab:green"][:len(values)])
        ax.set_title(title + "\n(bars: 95% intervals, bootstrap over prompts)", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ the run

def reward_stage(sft: GPTModel, splits: dict, test_pairs: PairDataset, tokenizer, args, results: dict):
    context = sft.cfg.context_length
    reward_model = reward_model_from(sft)
    train_set, val_set = (RankedDataset(splits[n], tokenizer, context) for n in ("train", "validation"))
    pairs_per_step = sum(len(ranked_pairs(len(i.responses))) for i in splits["train"]) / len(splits["train"]) \
        * args.batch_size
    print(f"Reward model: the instruction model with a 1-number head (chapter 8's GPTClassifier, last-token pooling), "
          f"{args.rm_steps} steps of {args.batch_size} prompts (~{pairs_per_step:.0f} pairs), Bradley–Terry loss.")
    eval_every = max(1, args.rm_steps // 4)
    config = TrainConfig(max_steps=args.rm_steps, learning_rate=args.rm_lr, min_lr=args.rm_lr / 10,
                         warmup_steps=max(1, args.rm_steps // 10), eval_every=eval_every,
                         eval_batches=math.ceil(len(val_set) / args.batch_size),   # all of them: a fair sample
                         out_dir=str(args.out / "reward"), seed=args.seed, log_every=5)
    t0, args.stage = time.time(), "the reward model"
    history, loss = train_reward_model(reward_model, train_set, val_set, config, batch_size=args.batch_size,
                                       seed=args.seed, extra={"chapter": 13, "stage": "reward model"})
    seconds = time.time() - t0
    path = save_classifier(reward_model, args.out / "reward_model.pt")
    margins = reward_margins(reward_model, test_pairs)
    results["reward_model"] = {"seconds": seconds, "held_out": dict(zip(("mean", "low", "high"),
                                                                         accuracy(margins, test_pairs))),
                               "by_kind": by_kind(margins, test_pairs), "val_loss": history["val_loss"]}
    figure = plot_curves(history, loss.metrics, min(config.eval_batches, math.ceil(len(val_set) / args.batch_size)),
                         "Reward model: Bradley–Terry training",
                         "r", args.out / "reward_model.png")
    print(f"Reward model trained in {seconds:.0f} s; it ranks {interval_text(*accuracy(margins, test_pairs))} of "
          f"the {len(test_pairs)} held-out pairs right (chance: 50%). By kind of rejected answer: "
          + ", ".join(f"{k} {v:.0%}" for k, v in results["reward_model"]["by_kind"].items()))
    print(f"Saved it to {path} (minigpt.loading.load_model opens it) and its curves to {figure}.\n")
    return reward_model


def dpo_stage(sft: GPTModel, splits: dict, test_pairs: PairDataset, tokenizer, args):
    context = sft.cfg.context_length
    train_pairs, val_pairs = (PairDataset(splits[n], tokenizer, context) for n in ("train", "validation"))
    policy = copy.deepcopy(sft)
    reference = None
    if args.lora_rank:
        apply_lora(policy, args.lora_rank, 2.0 * args.lora_rank, ALL_LINEAR)
        policy.to(args.device)
    else:
        reference = frozen_reference(sft)
    lr = args.dpo_lr or (2e-3 if args.lora_rank else 1e-3)
    cached = args.reference == "cached" or (args.reference == "auto" and
                                            args.dpo_steps * args.dpo_batch_size >= len(train_pairs))
    trainable, total = count_trainable(policy)
    rpo = f", RPO weight α = {args.rpo_alpha:g} on the chosen answers' next-token loss" if args.rpo_alpha else ""
    print(f"DPO: {len(train_pairs)} training pairs (the best answer against each worse one), {args.dpo_steps} steps "
          f"of {args.dpo_batch_size} pairs, β = {args.beta}"
          f"{rpo}"
          f", peak learning rate {lr:g}, {trainable:,} of {total:,} "
          f"parameters training; reference: "
          f"{'the policy with its LoRA adapters off' if args.lora_rank else 'a frozen copy'}, log-probabilities "
          f"{'computed once and cached' if cached else 'computed at every step'}.")
    eval_every = max(1, args.dpo_steps // 3)   # each evaluation reads all 300 validation pairs: 3 of them
    config = TrainConfig(max_steps=args.dpo_steps, learning_rate=lr, min_lr=lr / 10,
                         warmup_steps=max(1, args.dpo_steps // 10), weight_decay=0.0, eval_every=eval_every,
                         # All validation pairs: the first few length-sorted batches would be the rambling ones only.
                         eval_batches=math.ceil(len(val_pairs) / args.dpo_batch_size), out_dir=str(args.out / "dpo"),
                         seed=args.seed, log_every=5)
    t0, args.stage = time.time(), "DPO"
    history, loss = train_dpo(policy, train_pairs, val_pairs, config, beta=args.beta, alpha=args.rpo_alpha,
                              reference=reference,
                              cache=cached, batch_size=args.dpo_batch_size, seed=args.seed,
                              extra={"chapter": 13, "stage": "dpo", "lora": lora_settings(policy), "beta": args.beta,
                                     "rpo_alpha": args.rpo_alpha})
    seconds = time.time() - t0
    figure = plot_curves(history, loss.metrics,
                         min(config.eval_batches, math.ceil(len(val_pairs) / args.dpo_batch_size)),
                         f"DPO (β = {args.beta}): implicit rewards β·(log π − log π_ref)", "reward",
                         args.out / "dpo.png")
    print(f"DPO took {seconds:.0f} s (checkpoint {history['checkpoint']}); curves of the reward margin and the "
          f"preference accuracy in {figure}.\n")
    return policy, seconds


def run(args) -> None:
    device = args.device
    small = args.weights is None
    torch.set_num_threads(args.threads or (1 if small else torch.get_num_threads()))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Figures, numbers and checkpoints go to {args.out}/; running on {device} with "
          f"{torch.get_num_threads()} CPU thread(s).")
    start = time.time()
    tokenizer = gpt2_tiktoken_encoding()
    sft, style, origin = starting_model(args, tokenizer)
    splits = load_preference_splits(args.data, style)
    print(f"Starting model: {origin}; prompt layout {style!r}.")
    print("Preference data: " + ", ".join(f"{len(v)} {k}" for k, v in splits.items()) + " prompts with ranked answers"
          f" ({args.data or 'the bundled data/preferences'}).")
    show_ranked_example(splits["train"][0])
    test_pairs = PairDataset(splits["test"], tokenizer, sft.cfg.context_length)
    results = {"start": origin, "style": style, "held_out_pairs": len(test_pairs)}

    reward_model = reward_stage(sft, splits, test_pairs, tokenizer, args, results)

    before = pair_logprobs(sft, test_pairs)
    margins_before = before[:, 0] - before[:, 1]
    generated = [i for i in splits["test"] if i.request][:args.generate]
    answers_before, scores_before = answer_and_score(sft, reward_model, tokenizer, generated, style, args) \
        if generated else ([], None)

    # Does the policy still model good answers? The perplexity of the bundled validation instructions' reference
    # answers, before and after DPO (chapter 9's measure; not measured with --data, which may be of another kind).
    answer_check = InstructionDataset(load_splits()["validation"], tokenizer, style, sft.cfg.context_length) \
        if args.data is None else None
    perplexity_before = response_perplexity(sft, answer_check) if answer_check is not None else None

    policy, dpo_seconds = dpo_stage(sft, splits, test_pairs, tokenizer, args)

    after = pair_logprobs(policy, test_pairs)
    margins_after = after[:, 0] - after[:, 1]
    for name, margins in (("before", margins_before), ("after", margins_after)):
        results[f"accuracy_{name}"] = dict(zip(("mean", "low", "high"), accuracy(margins, test_pairs)))
        results[f"accuracy_{name}_by_kind"] = by_kind(margins, test_pairs)
    gain = ((margins_after > 0).float() - (margins_before > 0).float()).tolist()
    results["logprob_change"] = {"chosen": float((after[:, 0] - before[:, 0]).mean()),
                                 "rejected": float((after[:, 1] - before[:, 1]).mean())}
    results["accuracy_gain"] = dict(zip(("mean", "low", "high"), bootstrap_interval(gain, test_pairs.groups)))
    results["dpo_seconds"] = dpo_seconds
    print(f"Held-out preference accuracy (share of the {len(test_pairs)} pairs with log π(chosen) > log π(rejected)):")
    print(f"  before DPO: {interval_text(*results['accuracy_before'].values())}")
    print(f"  after DPO:  {interval_text(*results['accuracy_after'].values())}")
    print(f"  change:     {interval_text(*results['accuracy_gain'].values())} (paired: the same pairs before and "
          f"after)")
    for kind in results["accuracy_before_by_kind"]:
        print(f"    rejected answer {kind:14}: {results['accuracy_before_by_kind'][kind]:.0%} -> "
              f"{results['accuracy_after_by_kind'][kind]:.0%}")
    print(f"  mean change of log π over the held-out pairs: chosen answers {results['logprob_change']['chosen']:+.1f}"
          f" nats, rejected ones {results['logprob_change']['rejected']:+.1f}.")
    if answer_check is not None:
        results["answer_perplexity"] = {"before": perplexity_before, "after": response_perplexity(policy, answer_check)}
        print(f"  perplexity of the {len(answer_check)} validation instructions' reference answers (chapter 9's "
              f"measure; lower is better): before {perplexity_before:.2f}, after "
              f"{results['answer_perplexity']['after']:.2f}.")
    if generated:
        answers_after, scores_after = answer_and_score(policy, reward_model, tokenizer, generated, style, args)
        results["reward_before"] = dict(zip(("mean", "low", "high"), bootstrap_interval(scores_before.tolist())))
        results["reward_after"] = dict(zip(("mean", "low", "high"), bootstrap_interval(scores_after.tolist())))
        change = bootstrap_interval((scores_after - scores_before).tolist())
        print(f"The reward model's mean score of the policy's own answers to {len(generated)} held-out requests: "
              f"before {results['reward_before']['mean']:+.3f}, after {results['reward_after']['mean']:+.3f}, "
              f"change {interval_text(*change, percent=False)}.\n")
        show_side_by_side(generated, answers_before, answers_after, scores_before, scores_after)
        results["samples"] = [{"instruction": i.request["instruction"], "input": i.request["input"],
                               "reference": i.responses[0], "before": b, "after": a, "reward_before": float(sb),
                               "reward_after": float(sa)}
                              for i, b, a, sb, sa in zip(generated, answers_before, answers_after, scores_before,
                                                         scores_after)]
    figure = plot_before_after(results, args.out / "before_after.png")
    results["seconds"] = time.time() - start
    path = write_text_atomic(args.out / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"Saved the before/after figure to {figure} and every number (with the answers) to {path}. "
          f"Total time {results['seconds']:.0f} s.")


def show_side_by_side(items, before: list[str], after: list[str], scores_before, scores_after, shown: int = 4) -> None:
    print("Answers before and after DPO (reward model's score in brackets):")
    for item, b, a, sb, sa in list(zip(items, before, after, scores_before, scores_after))[:shown]:
        request = item.request["instruction"] + (f" [{item.request['input']}]" if item.request["input"] else "")
        print(f"  request:   {request}\n  reference: {item.responses[0]}\n"
              f"  before:    [{float(sb):+.2f}] {b!r}\n  after:     [{float(sa):+.2f}] {a!r}")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(args, parser)
    with user_errors(parser.prog):
        try:
            run(args)
        except TrainingInterrupted as stop:
            where = f"the last checkpoint is {stop.checkpoint}" if stop.checkpoint else "no checkpoint was written yet"
            print(f"\nStopped by Ctrl-C after step {stop.step} of {args.stage}; {where} (this chapter has no "
                  f"--resume: run it again, which reuses a finished instruction model and redoes the other stages, "
                  f"a minute or two each).", file=sys.stderr)
            raise SystemExit(130) from None
        except KeyboardInterrupt:
            print("\nStopped by Ctrl-C between training stages; nothing half-written was left behind.",
                  file=sys.stderr)
            raise SystemExit(130) from None

if __name__ == "__main__":
    main()
