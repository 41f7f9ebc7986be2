"""Chapter 9: instruction finetuning — teach a GPT to answer requests, then score its answers.

    python chapters/ch09_instruction.py                                # bundled data, small random-init GPT, CPU
    python chapters/ch09_instruction.py --style phi3 --mask-prompt     # other prompt layout; loss on answers only
    python chapters/ch09_instruction.py --data my_records.jsonl        # any Alpaca-style JSON/JSONL (split 85/5/10)
    python chapters/ch09_instruction.py --weights gpt2-medium --steps 600   # GPT-2 355M (on a GPU)
    python chapters/ch09_instruction.py --weights gpt2 --lora-rank 16  # train LoRA adapters, not every weight
    python chapters/ch09_instruction.py --download-alpaca --no-verify --weights gpt2-medium   # Stanford Alpaca
    python chapters/ch09_instruction.py --judge --judge-model llama3.2 # also let a local Ollama model grade

The script loads and checks the records, shows how one becomes a prompt and a padded batch with -100 targets,
prints a memory estimate, lets the model answer a few test requests, finetunes it with chapter 6's training
loop (loss printed and plotted), lets it answer the same requests again, then answers the whole test split
(saved next to the references in test_responses.json) and scores it: exact match, token F1, ROUGE-L and the
perplexity of the reference answers.
"""
import sys
from pathlib import Path


import argparse
import json
import math
import random
import time

import torch

from minigpt.device import pick_device
from minigpt.files import write_text_atomic
from minigpt.instruct import (CLOSED_MAX_WORDS, STYLES, InstructionDataset, collate_instructions, download_alpaca,
                              finetune, format_prompt, generate_responses, load_records, load_splits,
                              response_perplexity, score_responses, split_records, write_responses)
from minigpt.judge import OLLAMA_CHAT_URL, judge_with_ollama, ollama_status
from minigpt.loading import load_base_model
from minigpt.lora import ALL_LINEAR, apply_lora, count_trainable, lora_settings, merge_lora
from minigpt.model import GPTConfig, estimate_memory
from minigpt.tokenizer import gpt2_tiktoken_encoding
from minigpt.train import IGNORE_INDEX, TrainConfig

MiB = 1024 ** 2
# Learning rates that work: a model trained from scratch takes large steps; pretrained weights need small
# ones, or finetuning wipes out what pretraining learned. LoRA's update starts at zero and is scaled by
# alpha / rank, so it sits in between.
DEFAULT_LR = {"scratch": 5e-3, "pretrained": 5e-5, "lora": 5e-4}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", type=Path, help="Alpaca-style records: a JSON array or JSONL file (split 85/5/10), "
                                                "or a folder with train/validation/test files (default: the bundled "
                                                "data/instructions)")
    data.add_argument("--download-alpaca", action="store_true",
                      help="download Stanford Alpaca's alpaca_data.json (52k records) and split it")
    data.add_argument("--no-verify", action="store_true",
                      help="with --download-alpaca, download without a sha256 check (none is pinned)")
    data.add_argument("--max-train", type=int, help="use only the first N training records")
    data.add_argument("--max-test", type=int, help="generate and score only the first N test records")
    data.add_argument("--style", choices=STYLES, default="alpaca", help="prompt layout")
    model = p.add_argument_group("model")
    model.add_argument("--weights", help='start from GPT-2 weights: "gpt2", "gpt2-medium", ... or a local path')
    model.add_argument("--checkpoint", type=Path, help="start from a chapter 6 checkpoint")
    model.add_argument("--lora-rank", type=int, default=0, help="train LoRA adapters of this rank on every Linear "
                                                                "layer of the blocks (0: train every weight)")
    model.add_argument("--lora-alpha", type=float, default=None, help="LoRA scale numerator (default: 2 x rank)")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int, default=1500, help="optimizer steps")
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, help="peak learning rate (default depends on the start, see DEFAULT_LR)")
    train.add_argument("--mask-prompt", action="store_true", help="count only response tokens in the loss")
    train.add_argument("--max-new-tokens", type=int,
                       help="longest answer generated (default: the longest test reference + 8 tokens, at most 256)")
    judge = p.add_argument_group("optional judge (a local Ollama server, never required)")
    judge.add_argument("--judge", action="store_true", help="also grade the test answers with a local Ollama model")
    judge.add_argument("--judge-model", default="llama3.2", help="Ollama model name")
    judge.add_argument("--judge-url", default=OLLAMA_CHAT_URL, help="Ollama chat endpoint (localhost only)")
    p.add_argument("--device", default="auto", help='"auto" (cuda if available, else cpu), "cpu", "cuda", ...')
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", type=Path, default=Path("out/ch09"), help="output folder")
    return p.parse_args()


def read_data(args) -> tuple[dict[str, list[dict]], str]:
    if args.download_alpaca:
        path = download_alpaca(verify=not args.no_verify)
        return split_records(load_records(path), seed=args.seed), f"Stanford Alpaca ({path}), split 85/5/10"
    splits = load_splits(args.data, seed=args.seed)
    if args.data is None:
        return splits, "the bundled data/instructions"
    return splits, f"{args.data}" + (", split 85/5/10" if args.data.is_file() else "")


def show_batch(dataset: InstructionDataset, encoding, mask_prompt: bool) -> None:
    """One tiny batch, column by column: the input token, and the target the model is trained to predict there."""
    by_length = sorted(range(len(dataset)), key=lambda i: len(dataset[i][0]))
    shortest = by_length[0]
    # A partner a few tokens longer, so the shortest example gets a few padding columns to show.
    partner = next((i for i in by_length if len(dataset[i][0]) >= len(dataset[shortest][0]) + 3), by_length[-1])
    inputs, targets = collate_instructions([dataset[shortest], dataset[partner]], mask_prompt=mask_prompt)
    n_real = len(dataset[shortest][0])
    print(f"A batch of two examples is {tuple(inputs.shape)}: the shorter one is padded with <|endoftext|> "
          f"(50256). Its last columns:")
    for t in range(max(0, n_real - 4), inputs.shape[1]):
        target = int(targets[0, t])
        shown = "-100 (ignored)" if target == IGNORE_INDEX else f"{target:5d} {encoding.decode([target])!r}"
        print(f"    input {int(inputs[0, t]):5d} {encoding.decode([int(inputs[0, t])])!r:16} -> target {shown}")
    hidden = int((targets[0] == IGNORE_INDEX).sum())
    print(f"  The first <|endoftext|> stays a target (so the model learns to stop); the padding after it is -100"
          f"{' and so is the prompt (--mask-prompt)' if mask_prompt else ''}: {hidden} of the row's "
          f"{targets.shape[1]} targets add nothing to the loss.\n")


def show_answers(title: str, records: list[dict], answers: list[str]) -> None:
    print(title)
    for record, answer in zip(records, answers):
        request = record["instruction"] + (f" [{record['input']}]" if record["input"] else "")
        if record.get("history"):
            request = f"(after {len(record['history'])} earlier turn(s)) " + request
        print(f"  request:   {request}\n  reference: {record['output']}\n  model:     {answer!r}")
    print()


def print_loss_table(history: dict) -> None:
    """The training loss, averaged over tenths of the run: it should fall."""
    losses, steps = history["train_loss"], history["step"]
    size = max(1, len(losses) // 10)
    print("Training loss (mean over each tenth of the run):")
    for start in range(0, len(losses), size):
        chunk = losses[start:start + size]
        print(f"  steps {steps[start]:4d}-{steps[start + len(chunk) - 1]:4d}: {sum(chunk) / len(chunk):.3f}")
    if history["val_loss"]:
        print("Validation loss: " + ", ".join(f"step {s}: {v:.3f}"
                                              for s, v in zip(history["val_step"], history["val_loss"])))


def save_json(path: Path, data) -> None:
    """Write `data` as JSON atomically (a temporary file, then a rename): never a half-written file."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Figures, answers, scores and the checkpoint go to {args.out}/; running on {device}.")
    start = time.time()

    try:
        splits, source = read_data(args)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.max_train:
        splits["train"] = splits["train"][:args.max_train]
    if args.max_test:
        splits["test"] = splits["test"][:args.max_test]
    with_history = sum(bool(r.get("history")) for rs in splits.values() for r in rs)
    print(f"Data: {source}: " + ", ".join(f"{len(v)} {k}" for k, v in splits.items()) +
          f" records ({with_history} with earlier turns).")

    encoding = gpt2_tiktoken_encoding()
    example = next((r for r in splits["train"] if r.get("history")), splits["train"][0])
    print(f"\nOne training record in the {args.style!r} layout (the model learns to write what follows the "
          f"prompt, then <|endoftext|>):\n" + "-" * 60 + "\n" + format_prompt(example, args.style) +
          example["output"] + "\n" + "-" * 60)

    # ---- the model
    pretrained = bool(args.weights or args.checkpoint)
    # Small enough to finetune on a laptop CPU in minutes. No dropout: a few epochs over a small dataset is too
    # little training to overfit, and dropout would only slow the learning down.
    cfg = GPTConfig.preset("tiny", tie_weights=True, drop_rate=0.0)
    try:
        model = load_base_model(args.weights, str(args.checkpoint) if args.checkpoint else None, cfg, device)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    cfg = model.cfg
    origin = (f"GPT-2 weights {args.weights}" if args.weights else f"checkpoint {args.checkpoint}"
              if args.checkpoint else "random initialisation (the 'tiny' preset with tied embeddings)")
    print(f"\nBase model: {origin}: {cfg.n_layers} layers, {cfg.emb_dim} wide, context {cfg.context_length}.")
    if args.lora_rank:
        alpha = args.lora_alpha if args.lora_alpha is not None else 2.0 * args.lora_rank
        apply_lora(model, args.lora_rank, alpha, ALL_LINEAR)
        model.to(device)
    trainable, total = count_trainable(model)
    print(f"{trainable:,} of {total:,} parameters train" +
          (f" (LoRA rank {args.lora_rank} on every Linear layer of the blocks)." if args.lora_rank else "."))

    datasets = {name: InstructionDataset(records, encoding, args.style, cfg.context_length)
                for name, records in splits.items()}
    longest = min(max(datasets["train"].lengths()), cfg.context_length)
    memory = estimate_memory(cfg, args.batch_size, longest, training=True, mixed_precision=device.type == "cuda")
    print(f"Memory estimate for full training at batch size {args.batch_size} x {longest} tokens "
          f"({'bf16 mixed precision' if device.type == 'cuda' else 'fp32'}): {memory['total'] / MiB:,.0f} MiB ("
          + ", ".join(f"{k} {v / MiB:,.0f}" for k, v in memory.items() if k != "total") + ")"
          + (" — LoRA needs far less for gradients and AdamW state." if args.lora_rank else "."))
    print()
    show_batch(datasets["train"], encoding, args.mask_prompt)

    # ---- before finetuning
    if args.max_new_tokens is None:
        longest_answer = max(len(encoding.encode_ordinary(r["output"])) for r in splits["test"])
        args.max_new_tokens = min(256, longest_answer + 8)
    print(f"Answers are generated greedily, up to {args.max_new_tokens} tokens, stopping at <|endoftext|>.")
    shown = random.Random(args.seed).sample(splits["test"], min(3, len(splits["test"])))
    before = generate_responses(model, encoding, shown, args.style, args.max_new_tokens, progress=False)
    show_answers("Before finetuning, the model answers:", shown, before)
    ppl_before = response_perplexity(model, datasets["test"], args.batch_size)
    print(f"Perplexity of the reference answers (given their prompts) before finetuning: {ppl_before:,.1f}\n")

    # ---- finetuning with chapter 6's loop
    lr = args.lr or DEFAULT_LR["lora" if args.lora_rank else "pretrained" if pretrained else "scratch"]
    epochs = args.steps * args.batch_size / len(datasets["train"])
    print(f"Finetuning for {args.steps} steps of {args.batch_size} records ({epochs:.1f} epochs), peak learning "
          f"rate {lr:g}, loss on {'response tokens only' if args.mask_prompt else 'prompt and response tokens'}.")
    config = TrainConfig(max_steps=args.steps, learning_rate=lr, min_lr=lr / 10,
                         warmup_steps=max(1, min(20, args.steps // 10)), weight_decay=0.1,
                         eval_every=max(1, args.steps // 4), eval_batches=50, out_dir=str(args.out),
                         seed=args.seed, log_every=5)
    extra = {"chapter": 9, "style": args.style, "lora": lora_settings(model),
             "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    t0 = time.time()
    history = finetune(model, datasets["train"], datasets["validation"], config, batch_size=args.batch_size,
                       mask_prompt=args.mask_prompt, seed=args.seed, extra=extra)
    print(f"Finetuning took {time.time() - t0:.0f} s.")
    print_loss_table(history)
    print(f"Saved the loss curves to {args.out / 'loss.png'} and the checkpoint to {history['checkpoint']} "
          f"(reload it with minigpt.loading.load_model).\n")
    if args.lora_rank:
        merge_lora(model)
        print("Merged the LoRA matrices into the weights for generation.")

    # ---- after finetuning
    after = generate_responses(model, encoding, shown, args.style, args.max_new_tokens, progress=False)
    show_answers("After finetuning, the same requests:", shown, after)

    # ---- the test split
    test = splits["test"]
    print(f"Answering all {len(test)} test requests ...")
    answers = generate_responses(model, encoding, test, args.style, args.max_new_tokens, batch_size=16)
    path = write_responses(test, answers, args.out / "test_responses.json")
    print(f"Saved the answers next to the references (\"model_response\" beside \"output\") in {path}.")
    scores = score_responses(test, answers)
    scores["perplexity_before"] = ppl_before
    scores["perplexity"] = response_perplexity(model, datasets["test"], args.batch_size)
    print(f"Test scores ({len(test)} records):\n"
          f"  exact match (normalized; the {scores['closed_tasks']} closed tasks, reference <= {CLOSED_MAX_WORDS} "
          f"words): {scores['exact_match']:.1%}\n"
          f"  token F1: {scores['token_f1']:.1%}\n"
          f"  ROUGE-L F1: {scores['rouge_l']:.1%}\n"
          f"  perplexity of the reference answers: {scores['perplexity']:,.2f} (before finetuning "
          f"{ppl_before:,.1f})")
    if args.judge:
        problem = ollama_status(args.judge_url, args.judge_model)
        if problem:
            print(f"Skipping the judge: {problem}")
        else:
            grades = judge_with_ollama(test, answers, args.judge_model, args.judge_url, args.style, args.seed)
            valid = [g for g in grades if g is not None]
            scores["judge_mean"] = sum(valid) / len(valid) if valid else math.nan
            scores["judge_model"] = args.judge_model
            print(f"  {args.judge_model} (via Ollama) gave a mean grade of {scores['judge_mean']:.1f} / 100 "
                  f"({len(grades) - len(valid)} replies without a grade).")
    save_json(args.out / "scores.json", scores)
    print(f"Saved the scores to {args.out / 'scores.json'}. Total time {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
