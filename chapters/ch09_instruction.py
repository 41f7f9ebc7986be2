"""Chapter 9: instruction finetuning — teach a GPT to answer requests, then score its answers.

    python chapters/ch09_instruction.py                                # bundled data, small random-init GPT, CPU
    python chapters/ch09_instruction.py --style phi3 --mask-prompt     # other prompt layout; loss on answers only
    python chapters/ch09_instruction.py --data my_records.jsonl        # any Alpaca-style JSON/JSONL (split 85/5/10)
    python chapters/ch09_instruction.py --weights gpt2-medium --epochs 2   # GPT-2 355M (on a GPU)
    python chapters/ch09_instruction.py --weights gpt2 --lora-rank 16  # train LoRA adapters, not every weight
    python chapters/ch09_instruction.py --download-alpaca --no-verify --weights gpt2-medium   # Stanford Alpaca
    python chapters/ch09_instruction.py --judge --judge-model llama3.2 # also let a local Ollama model grade

The script loads and checks the records, shows how one becomes a prompt and a padded batch with -100 targets,
prints a memory estimate, lets the model answer a few test requests, times a few training batches and says how
long finetuning will take, finetunes it with chapter 6's training loop (loss printed and plotted), lets it answer
the same requests again, then answers the whole test split (saved next to the references in test_responses.json)
and scores it: exact match, token F1, ROUGE-L and the perplexity of the reference answers.

How much it trains by default (--epochs and --steps override it): a number of epochs, because what finetuning
teaches depends on how often the model sees each record: 7 epochs from random weights (the bundled data's run
was still improving there), 2 from pretrained weights (more starts to memorise the answers). On a CPU the epochs
are lowered, if need be, so that training reads at most 450,000 tokens (about 4 epochs of the bundled data or of
a 1,100-record Alpaca file): time grows with the tokens read, and one thread read 700-1,160 tokens/s on the
project's 2-core CPU, idle or beside a busy process, so default training takes 7 to 11 minutes there whatever
the data (answering the test split adds time in proportion to its size; --max-test limits it). The measurements
are in minigpt/INSTRUCTION_RESULTS.md.
"""
import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

from minigpt import cli
from minigpt.files import InputError, write_text_atomic
from minigpt.instruct import (CLOSED_MAX_WORDS, STYLES, InstructionDataset, LengthGroupedBatchSampler, check_splits,
                              collate_instructions, download_alpaca, finetune, format_prompt, generate_responses,
                              instruction_loader, load_records, load_splits, response_perplexity, score_responses,
                              split_records, write_responses)
from minigpt.judge import OLLAMA_CHAT_URL, check_local_url, judge_with_ollama, ollama_status
from minigpt.loading import open_base_model
from minigpt.lora import ALL_LINEAR, apply_lora, count_trainable, lora_settings, merge_lora
from minigpt.model import GPTConfig, estimate_memory
from minigpt.speed import cpu_threads
from minigpt.tokenizer import gpt2_tiktoken_encoding
from minigpt.train import IGNORE_INDEX, TrainConfig, TrainingInterrupted, forward_backward

MiB = 1024 ** 2
# Learning rates that work: a model trained from scratch takes large steps; pretrained weights need small
# ones, or finetuning wipes out what pretraining learned. LoRA's update starts at zero and is scaled by
# alpha / rank, so it sits in between.
DEFAULT_LR = {"scratch": 5e-3, "pretrained": 5e-5, "lora": 5e-4}
# The default amount of training (see the module docstring): epochs by where the weights come from, and on a
# CPU at most CPU_TOKEN_BUDGET training tokens (prompt, response and end token of each record seen).
DEFAULT_EPOCHS = {"scratch": 7, "pretrained": 2}
CPU_TOKEN_BUDGET = 450_000
TIMED_BATCHES = 6   # training batches timed for the estimate; the first one warms up and is not counted
# The random-init model: small enough to finetune on a laptop CPU in minutes. No dropout: a few epochs over a
# small dataset is too little training to overfit, and dropout would only slow the learning down.
SCRATCH_CONFIG = GPTConfig.preset("tiny", tie_weights=True, drop_rate=0.0)


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="ch09_instruction.py", description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="Alpaca-style records: a JSON array or JSONL file (split "
                                                  "85/5/10), or a folder with train/validation/test files (default: "
                                                  "the bundled data/instructions)")
    source.add_argument("--download-alpaca", action="store_true",
                        help="download Stanford Alpaca's alpaca_data.json (52k records) and split it")
    data.add_argument("--no-verify", action="store_true",
                      help="with --download-alpaca, download without a sha256 check (none is pinned)")
    data.add_argument("--max-train", type=cli.positive_int, help="use only the first N training records")
    data.add_argument("--max-test", type=cli.positive_int, help="generate and score only the first N test records")
    data.add_argument("--style", choices=STYLES, default="alpaca", help="prompt layout")
    model = p.add_argument_group("model")
    start = model.add_mutually_exclusive_group()
    start.add_argument("--weights", type=cli.non_empty,
                       help='start from GPT-2 weights: "gpt2", "gpt2-medium", ... or a local path')
    start.add_argument("--checkpoint", type=Path, help="start from a chapter 6 checkpoint")
    model.add_argument("--lora-rank", type=cli.non_negative_int, default=0,
                       help="train LoRA adapters of this rank on every Linear layer of the blocks (0: train every "
                            "weight)")
    model.add_argument("--lora-alpha", type=cli.positive_float, default=None,
                       help="LoRA scale numerator (default: 2 x rank)")
    train = p.add_argument_group("training")
    amount = train.add_mutually_exclusive_group()
    amount.add_argument("--epochs", type=cli.positive_float,
                        help="passes over the training records (default: 7 from random weights, 2 from pretrained "
                             "ones; on a CPU at most 450,000 training tokens)")
    amount.add_argument("--steps", type=cli.positive_int, help="optimizer steps (instead of --epochs)")
    train.add_argument("--batch-size", type=cli.positive_int, default=8)
    train.add_argument("--lr", type=cli.positive_float,
                       help="peak learning rate (default depends on the start, see DEFAULT_LR)")
    train.add_argument("--mask-prompt", action="store_true", help="count only response tokens in the loss")
    train.add_argument("--max-new-tokens", type=cli.positive_int,
                       help="longest answer generated (default: the longest test reference + 8 tokens, at most 256 "
                            "and half the context)")
    judge = p.add_argument_group("optional judge (a local Ollama server, never required)")
    judge.add_argument("--judge", action="store_true", help="also grade the test answers with a local Ollama model")
    judge.add_argument("--judge-model", type=cli.non_empty, default="llama3.2", help="Ollama model name")
    judge.add_argument("--judge-url", type=local_url, default=OLLAMA_CHAT_URL,
                       help="Ollama chat endpoint (an http URL on localhost: the records never leave the machine)")
    p.add_argument("--device", default="auto", help='"auto" (cuda if available, else cpu), "cpu", "cuda", ...')
    p.add_argument("--threads", type=cli.positive_int,
                   help="CPU threads (default: 1 for a model narrower than 512, which gains little from more and "
                        "loses a lot on a busy machine; torch's default for wider ones)")
    p.add_argument("--seed", type=cli.non_negative_int, default=123)
    p.add_argument("--out", type=Path, default=Path("out/ch09"), help="output folder")
    return p


def local_url(text: str) -> str:
    """argparse type: an http URL on this machine (the judge sends it the test records)."""
    try:
        check_local_url(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an http URL on localhost, 127.0.0.1 or [::1] (such as "
                                         f"{OLLAMA_CHAT_URL}), got {text!r}") from None
    return text


def check_args(parser: cli.ArgumentParser, args: argparse.Namespace) -> torch.device:
    """Everything that can be checked before any work: one line naming the option and exit status 2 if not.
    Returns the device. Limits that depend on loaded weights (their context) are checked once they are loaded."""
    device = cli.check_common_options(parser, args)
    if args.data is not None and not args.data.exists():
        parser.error(f"--data {args.data}: no such file or folder")
    if args.lora_alpha is not None and not args.lora_rank:
        parser.error("--lora-alpha: applies only with --lora-rank 1 or more")
    if not (args.weights or args.checkpoint):   # the random-init model: its context is known now
        problem = answer_length_problem(args.max_new_tokens, SCRATCH_CONFIG.context_length)
        if problem:
            parser.error(problem)
    return device


def answer_length_problem(max_new_tokens: int | None, context: int) -> str | None:
    """Why --max-new-tokens does not fit the model's context (None if it does, or was not given)."""
    if max_new_tokens is None or max_new_tokens < context:
        return None
    return (f"--max-new-tokens {max_new_tokens}: must be below the model's context length ({context} tokens), "
            f"which the prompt shares")


def read_data(args) -> tuple[dict[str, list[dict]], str]:
    """The train/validation/test records and a sentence saying where they came from; refused (InputError, naming
    the file) if the training or test split is empty."""
    if args.download_alpaca:
        try:
            path = download_alpaca(verify=not args.no_verify)
        except (OSError, RuntimeError) as e:   # offline, or no checksum to verify against: the user's to fix
            raise InputError(str(e)) from None
        splits, source, where = split_records(load_records(path), seed=args.seed), \
            f"Stanford Alpaca ({path}), split 85/5/10", path
    else:
        splits = load_splits(args.data, seed=args.seed)
        where = args.data if args.data is not None else "the bundled data/instructions"
        source = "the bundled data/instructions" if args.data is None else \
            f"{args.data}" + (", split 85/5/10" if args.data.is_file() else "")
    check_splits(splits, where)
    if args.max_train:
        splits["train"] = splits["train"][:args.max_train]
    if args.max_test:
        splits["test"] = splits["test"][:args.max_test]
    return splits, source


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


def format_duration(seconds: float) -> str:
    """ "4 min 05 s", or "45 s" under a minute."""
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def build_model(args, device):
    """The model to finetune (LoRA adapters added if asked), its config, and whether it starts pretrained."""
    pretrained = bool(args.weights or args.checkpoint)
    model = open_base_model(args.weights, args.checkpoint, SCRATCH_CONFIG, device)
    cfg = model.cfg
    problem = answer_length_problem(args.max_new_tokens, cfg.context_length)
    if problem:
        raise InputError(problem)
    origin = (f"GPT-2 weights {args.weights}" if args.weights else f"checkpoint {args.checkpoint}"
              if args.checkpoint else "random initialisation (the 'tiny' preset with tied embeddings)")
    print(f"\nBase model: {origin}: {cfg.n_layers} layers, {cfg.emb_dim} wide, context {cfg.context_length}.")
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(model, args.threads))
        print(f"Using {torch.get_num_threads()} CPU thread(s)" +
              ("." if args.threads else " (--threads changes it: one is faster for a small model on a busy machine)."))
    if args.lora_rank:
        alpha = args.lora_alpha if args.lora_alpha is not None else 2.0 * args.lora_rank
        apply_lora(model, args.lora_rank, alpha, ALL_LINEAR)
        model.to(device)
    trainable, total = count_trainable(model)
    print(f"{trainable:,} of {total:,} parameters train" +
          (f" (LoRA rank {args.lora_rank} on every Linear layer of the blocks)." if args.lora_rank else "."))
    return model, cfg, pretrained


def print_memory(cfg: GPTConfig, args, dataset: InstructionDataset, device) -> None:
    longest = min(max(dataset.lengths()), cfg.context_length)
    memory = estimate_memory(cfg, args.batch_size, longest, training=True, mixed_precision=device.type == "cuda")
    print(f"Memory estimate for full training at batch size {args.batch_size} x {longest} tokens "
          f"({'bf16 mixed precision' if device.type == 'cuda' else 'fp32'}): {memory['total'] / MiB:,.0f} MiB ("
          + ", ".join(f"{k} {v / MiB:,.0f}" for k, v in memory.items() if k != "total") + ")"
          + (" — LoRA needs far less for gradients and AdamW state." if args.lora_rank else "."))


def epoch_tokens(dataset: InstructionDataset, context: int) -> int:
    """Tokens the model reads in one pass over `dataset` (each record's prompt and response, cut to the context)."""
    return sum(min(length, context) for length in dataset.lengths())


def training_plan(args, dataset: InstructionDataset, context: int, pretrained: bool, device) -> tuple[int, str]:
    """The optimizer steps to take, and a sentence saying how many epochs and tokens that is, and why."""
    per_epoch = math.ceil(len(dataset) / args.batch_size)
    tokens = epoch_tokens(dataset, context)
    if args.steps:
        steps, why = args.steps, "--steps"
    else:
        if args.epochs:
            epochs, why = args.epochs, "--epochs"
        else:
            epochs = DEFAULT_EPOCHS["pretrained" if pretrained else "scratch"]
            why = f"the default from {'pretrained' if pretrained else 'random'} weights"
            if device.type == "cpu" and epochs * tokens > CPU_TOKEN_BUDGET:
                epochs = CPU_TOKEN_BUDGET / tokens
                why += f", lowered to read at most {CPU_TOKEN_BUDGET:,} tokens on a CPU"
        steps = max(1, round(epochs * per_epoch))
    epochs = steps / per_epoch
    return steps, (f"{steps} steps of {args.batch_size} records: {epochs:.1f} epochs of {len(dataset)} records, "
                   f"about {epochs * tokens:,.0f} tokens ({why})")


def batch_tokens(dataset: InstructionDataset, batch_size: int, context: int, shuffle: bool = True,
                 seed: int = 123) -> list[int]:
    """Tokens in each batch of one pass (padding included: what a step computes on), batched as the loaders do."""
    lengths = dataset.lengths()
    batches = LengthGroupedBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed).batches(0)
    return [len(b) * min(max(lengths[i] for i in b), context) for b in batches]


def measure_speed(model, dataset: InstructionDataset, args, context: int) -> tuple[float, int]:
    """Training tokens per second (forward and backward, padding included) and how many batches were timed.

    The first batch warms up (first calls allocate memory) and is not counted. The gradients are thrown away, so
    the model is as it was; train() seeds every random generator itself, so the run is the same as without this.
    """
    loader = instruction_loader(dataset, args.batch_size, shuffle=True, seed=args.seed, mask_prompt=args.mask_prompt,
                                allowed_max_length=context)
    batches = [batch for batch, _ in zip(loader, range(TIMED_BATCHES))]
    model.train()
    float(forward_backward(model, batches[:1]))   # float() waits for the device to finish
    timed = batches[1:] or batches[:1]
    start = time.perf_counter()
    for batch in timed:
        float(forward_backward(model, [batch]))
    elapsed = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return sum(inputs.numel() for inputs, _ in timed) / elapsed, len(timed)


def estimate_time(model, datasets: dict, args, context: int, config: TrainConfig) -> float:
    """Measure the speed now, print the estimated time of training and its evaluations, and return it in seconds.

    Training steps cost their tokens at the measured rate; an evaluation is a forward pass only, about a third
    of the work of forward and backward, over the first config.eval_batches validation batches.
    """
    rate, timed = measure_speed(model, datasets["train"], args, context)
    per_step = batch_tokens(datasets["train"], args.batch_size, context, seed=args.seed)
    seconds = config.max_steps * sum(per_step) / len(per_step) / rate
    if datasets["validation"]:
        # train() evaluates every eval_every steps and once more at the end.
        evaluations = (config.max_steps - 1) // config.eval_every + 1
        val = batch_tokens(datasets["validation"], args.batch_size, context, shuffle=False)[:config.eval_batches]
        seconds += evaluations * sum(val) / (3 * rate)
    print(f"Timed {timed} training batch(es): {rate:,.0f} tokens/s on this machine now. Finetuning should take "
          f"about {format_duration(seconds)}; other programs using the processor make it slower.")
    if seconds > 15 * 60:
        print("  That is long: --epochs or --steps shorten it.")
    return seconds


def print_scores(scores: dict, test: list, ppl_before: float) -> None:
    if scores["exact_match"] is None:
        exact = (f"not measured: no test reference is short enough (at most {CLOSED_MAX_WORDS} words) for one "
                 f"wording to be the right one")
    else:
        exact = (f"{scores['exact_match']:.1%} (normalized; the {scores['closed_tasks']} closed tasks, reference "
                 f"<= {CLOSED_MAX_WORDS} words)")
    print(f"Test scores ({len(test)} records):\n"
          f"  exact match: {exact}\n"
          f"  token F1: {scores['token_f1']:.1%}\n"
          f"  ROUGE-L F1: {scores['rouge_l']:.1%}\n"
          f"  perplexity of the reference answers: {scores['perplexity']:,.2f} (before finetuning "
          f"{ppl_before:,.1f})")


def run_judge(args, test: list, answers: list, scores: dict) -> None:
    problem = ollama_status(args.judge_url, args.judge_model)
    if problem:
        print(f"Skipping the judge: {problem}")
        return
    grades = judge_with_ollama(test, answers, args.judge_model, args.judge_url, args.style, args.seed)
    valid = [g for g in grades if g is not None]
    scores["judge_mean"] = sum(valid) / len(valid) if valid else None
    scores["judge_model"] = args.judge_model
    mean = f"{scores['judge_mean']:.1f} / 100" if valid else "none (no reply held a grade)"
    print(f"  {args.judge_model} (via Ollama) gave a mean grade of {mean} "
          f"({len(grades) - len(valid)} replies without a grade).")


def finetune_timed(args, model, datasets: dict, cfg: GPTConfig, pretrained: bool, device) -> tuple[dict, dict]:
    """Plan the amount of training, estimate its time, train with chapter 6's loop; (history, timing facts)."""
    steps, plan = training_plan(args, datasets["train"], cfg.context_length, pretrained, device)
    lr = args.lr or DEFAULT_LR["lora" if args.lora_rank else "pretrained" if pretrained else "scratch"]
    print(f"Finetuning for {plan}, peak learning rate {lr:g}, loss on "
          f"{'response tokens only' if args.mask_prompt else 'prompt and response tokens'}.")
    if not datasets["validation"]:
        print("There are no validation records, so the validation loss is not measured.")
    config = TrainConfig(max_steps=steps, learning_rate=lr, min_lr=lr / 10,
                         warmup_steps=max(1, min(20, steps // 10)), weight_decay=0.1,
                         eval_every=max(1, steps // 4), eval_batches=50, out_dir=str(args.out),
                         seed=args.seed, log_every=5)
    estimate = estimate_time(model, datasets, args, cfg.context_length, config)
    extra = {"chapter": 9, "style": args.style, "lora": lora_settings(model),
             "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    start = time.time()
    try:
        history = finetune(model, datasets["train"], datasets["validation"], config, batch_size=args.batch_size,
                           mask_prompt=args.mask_prompt, seed=args.seed, extra=extra)
    except TrainingInterrupted as stop:
        # This script has no --resume (a finetuning run takes minutes); say what was kept, in one sentence.
        kept = f"the last checkpoint is {stop.checkpoint} (minigpt.loading.load_model opens it)" if stop.checkpoint \
            else "no checkpoint had been written yet"
        print(f"Stopped by Ctrl-C after step {stop.step}; {kept}.", file=sys.stderr)
        raise SystemExit(130) from None
    seconds = time.time() - start
    print(f"Finetuning took {format_duration(seconds)} ({seconds / steps:.2f} s/step; estimated "
          f"{format_duration(estimate)}).")
    timing = {"steps": steps, "seconds": round(seconds, 1), "estimated_seconds": round(estimate, 1),
              "threads": torch.get_num_threads() if device.type == "cpu" else None}
    return history, timing


def run(args, device) -> None:
    torch.manual_seed(args.seed)
    start = time.time()
    splits, source = read_data(args)
    with_history = sum(bool(r.get("history")) for rs in splits.values() for r in rs)
    print(f"Data: {source}: " + ", ".join(f"{len(v)} {k}" for k, v in splits.items()) +
          f" records ({with_history} with earlier turns).")
    if args.judge:   # said now, not after the training: the judge is optional, the run goes on without it
        problem = ollama_status(args.judge_url, args.judge_model)
        print(f"The judge will be skipped unless this changes: {problem}" if problem else
              f"The judge ({args.judge_model} at {args.judge_url}) answers.")

    encoding = gpt2_tiktoken_encoding()
    example = next((r for r in splits["train"] if r.get("history")), splits["train"][0])
    print(f"\nOne training record in the {args.style!r} layout (the model learns to write what follows the "
          f"prompt, then <|endoftext|>):\n" + "-" * 60 + "\n" + format_prompt(example, args.style) +
          example["output"] + "\n" + "-" * 60)

    model, cfg, pretrained = build_model(args, device)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Figures, answers, scores and the checkpoint go to {args.out}/; running on {device}.")
    datasets = {name: InstructionDataset(records, encoding, args.style, cfg.context_length)
                for name, records in splits.items()}
    print_memory(cfg, args, datasets["train"], device)
    print()
    show_batch(datasets["train"], encoding, args.mask_prompt)

    # ---- before finetuning
    if args.max_new_tokens is None:
        longest_answer = max(len(encoding.encode_ordinary(r["output"])) for r in splits["test"])
        # At most half the context, so that the prompt keeps the other half.
        args.max_new_tokens = min(256, longest_answer + 8, cfg.context_length // 2)
    print(f"Answers are generated greedily, up to {args.max_new_tokens} tokens, stopping at <|endoftext|>.")
    shown = random.Random(args.seed).sample(splits["test"], min(3, len(splits["test"])))
    before = generate_responses(model, encoding, shown, args.style, args.max_new_tokens, progress=False)
    show_answers("Before finetuning, the model answers:", shown, before)
    ppl_before = response_perplexity(model, datasets["test"], args.batch_size)
    print(f"Perplexity of the reference answers (given their prompts) before finetuning: {ppl_before:,.1f}\n")

    # ---- finetuning with chapter 6's loop
    history, timing = finetune_timed(args, model, datasets, cfg, pretrained, device)
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
    scores["training"] = timing
    print_scores(scores, test, ppl_before)
    if args.judge:
        run_judge(args, test, answers, scores)
    scores["seconds"] = round(time.time() - start, 1)
    save_json(args.out / "scores.json", scores)
    print(f"Saved the scores to {args.out / 'scores.json'}. Total time {format_duration(time.time() - start)}.")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    with cli.user_errors(parser.prog):
        run(args, check_args(parser, args))


if __name__ == "__main__":
    main()
