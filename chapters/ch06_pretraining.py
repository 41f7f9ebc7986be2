"""Chapter 6: pretrain a GPT from random weights, then let it write.

    python chapters/ch06_pretraining.py                    # tiny GPT on the bundled stories, CPU, about 2 minutes
    python chapters/ch06_pretraining.py --data DIR         # token shards from `python -m minigpt.prepare`
    python chapters/ch06_pretraining.py --mix "dirA:0.8,dirB:0.2"    # several shard folders, mixed
    python chapters/ch06_pretraining.py --resume out/ch06/ckpt.pt --steps 400   # continue a run exactly
    python chapters/ch06_pretraining.py --preset gpt2-124m --bench-steps 30    # time training steps (GPU)
    torchrun --nproc_per_node=2 chapters/ch06_pretraining.py --data DIR        # DistributedDataParallel

The loop itself is minigpt/train.py; this script chooses the model, the data and the settings, and reports.
"""
import argparse
import math
import time
from pathlib import Path


import torch
import torch.distributed as dist

from minigpt import cli
from minigpt.backends import auto_impls, triton_available
from minigpt.batches import WindowBatches, fixed_batches
from minigpt.bench_train import benchmark
from minigpt.checkpoint import load_checkpoint
from minigpt.data import STORIES_DIR, GPTDataset, MixedDataset, ShardDataset, join_documents, load_stories, split_ids
from minigpt.device import pick_device
from minigpt.distributed import setup_distributed
from minigpt.files import InputError
from minigpt.generate import generate
from minigpt.loading import load_model
from minigpt.model import MODEL_SIZES, GPTConfig, GPTModel, count_parameters
from minigpt.speed import flops_per_token
from minigpt.tokenizer import gpt2_tiktoken_encoding
from minigpt.train import PRESET_FIELDS, PRESETS, TrainConfig, TrainingInterrupted, plot_losses, train

PROG = Path(__file__).name


def build_parser() -> cli.ArgumentParser:
    """Every option with the range it accepts; the checks between options are in check_args."""
    p = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny", help="model and settings (default tiny)")
    data = p.add_argument_group("data (default: the bundled stories in data/stories)")
    data.add_argument("--stories", default=str(STORIES_DIR), help="folder of .txt files to train on")
    data.add_argument("--val-fraction", type=cli.fraction, default=0.1,
                      help="share of the stories' tokens held out, in [0, 1)")
    data.add_argument("--data", help="folder of token shards (train_*.bin, val_*.bin) from `python -m "
                                     "minigpt.prepare`")
    data.add_argument("--mix", help='several shard folders with weights above 0, e.g. "dirA:0.8,dirB:0.2"')
    model = p.add_argument_group("model")
    model.add_argument("--context", type=cli.positive_int,
                       help="tokens per training window (context length), at most the model size's positions")
    model.add_argument("--dropout", type=cli.fraction, help="dropout rate, in [0, 1)")
    model.add_argument("--attention", choices=("auto", "ch3", "torch", "triton"), default="auto",
                       help="attention implementation (auto: chapter 5's Triton kernel on CUDA, else torch SDPA)")
    model.add_argument("--layernorm", choices=("auto", "formula", "torch", "triton"), default="auto",
                       help="LayerNorm implementation (auto: Triton on CUDA, else torch)")
    train_opts = p.add_argument_group("training (defaults come from the preset)")
    train_opts.add_argument("--steps", dest="max_steps", type=cli.positive_int, help="optimizer steps")
    train_opts.add_argument("--batch-size", type=cli.positive_int,
                            help="windows per micro-batch (per GPU under torchrun)")
    train_opts.add_argument("--grad-accum", dest="grad_accum_steps", type=cli.positive_int,
                            help="micro-batches per optimizer step")
    train_opts.add_argument("--lr", dest="learning_rate", type=cli.positive_float, help="peak learning rate")
    train_opts.add_argument("--min-lr", type=cli.non_negative_float,
                            help="learning rate at the end of the cosine decay (at most --lr)")
    train_opts.add_argument("--warmup", dest="warmup_steps", type=cli.non_negative_int, help="warmup steps")
    train_opts.add_argument("--weight-decay", type=cli.non_negative_float)
    train_opts.add_argument("--grad-clip", type=cli.non_negative_float, default=1.0,
                            help="max gradient norm (0: off)")
    train_opts.add_argument("--eval-every", type=cli.non_negative_int, help="steps between evaluations (0: at the end)")
    train_opts.add_argument("--eval-batches", type=cli.positive_int, default=20)
    train_opts.add_argument("--sample-every", type=cli.non_negative_int, help="steps between samples (0: at the end)")
    train_opts.add_argument("--checkpoint-every", type=cli.non_negative_int,
                            help="steps between checkpoints (0: at the end)")
    train_opts.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                            help="torch.compile the model (falls back to eager if it fails)")
    train_opts.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto",
                            help="auto: bf16 autocast on a GPU that has it, fp32 elsewhere")
    train_opts.add_argument("--resume", help="checkpoint to continue from (its model, data and settings are used; "
                                             "--steps may extend the run)")
    train_opts.add_argument("--bench-steps", type=cli.positive_int,
                            help="only time this many training steps on random tokens")
    gen = p.add_argument_group("generation")
    gen.add_argument("--prompt", type=cli.non_empty, default="Once upon a time")
    gen.add_argument("--max-new-tokens", type=cli.non_negative_int, default=60)
    gen.add_argument("--temperature", type=cli.non_negative_float, default=0.8, help="for the samples (0: greedy)")
    gen.add_argument("--top-k", type=cli.positive_int, default=40)
    p.add_argument("--device", type=cli.device, default="auto", help="auto (cuda if available, else cpu), cpu or cuda")
    p.add_argument("--seed", type=cli.seed, default=1337)
    p.add_argument("--out", type=cli.output_folder, default="out/ch06",
                   help="folder for the checkpoint and the loss plot")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The options, each checked alone (by its type) and against the others (check_args) before any work."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser: cli.ArgumentParser, args: argparse.Namespace) -> None:
    """What no single option's type can see: options that exclude each other, the data folders, the preset's limits."""
    if args.data and args.mix:
        parser.error("--data and --mix exclude each other: give one shard folder, or several with weights")
    if args.data and not Path(args.data).is_dir():
        parser.error(f"argument --data: {args.data} is not a folder (of token shards)")
    if args.mix:
        try:
            parse_mix(args.mix)
        except InputError as error:
            parser.error(str(error))
    if args.resume:
        if not Path(args.resume).is_file():
            parser.error(f"argument --resume: no checkpoint at {args.resume}")
        return   # the checkpoint's own settings are used; of the options above only --steps and --out count
    preset = PRESETS[args.preset]
    positions = MODEL_SIZES[preset["model"]["size"]].context_length
    if args.context is not None and args.context > positions:
        parser.error(f"argument --context: the {args.preset} preset's model has {positions} positions, so at most "
                     f"{positions}, got {args.context}")
    lr = args.learning_rate if args.learning_rate is not None else preset["train"]["learning_rate"]
    min_lr = args.min_lr if args.min_lr is not None else preset["train"]["min_lr"]
    if min_lr > lr:
        parser.error(f"--min-lr {min_lr:g} is above the peak --lr {lr:g} (one of them from the {args.preset} "
                     f"preset); the decay ends at --min-lr, so it must be at most --lr")
    if "triton" in (args.attention, args.layernorm) and not triton_available():
        parser.error("--attention/--layernorm triton need chapter 5's kernels, which run on a CUDA GPU with "
                     "Triton; use auto, torch, ch3 or formula here")


def parse_mix(text: str) -> dict[str, float]:
    """{folder: weight} from "dirA:0.8,dirB:0.2"; InputError (naming --mix) for anything else."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        folder, _, weight = part.strip().rpartition(":")   # rpartition: a Windows folder may hold a colon
        if not folder or not weight:
            raise InputError(f'--mix expects "folderA:weight,folderB:weight", got {text!r}')
        try:
            value = float(weight)
        except ValueError:
            raise InputError(f"--mix: the weight of {folder} must be a number, got {weight!r}") from None
        if not 0 < value < math.inf:
            raise InputError(f"--mix: the weight of {folder} must be a number above 0, got {weight}")
        if folder in weights:
            raise InputError(f"--mix names {folder} twice")
        if not Path(folder).is_dir():
            raise InputError(f"--mix: {folder} is not a folder (of token shards)")
        weights[folder] = value
    return weights


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every option left unset from the preset (the options carry TrainConfig's field names)."""
    preset = PRESETS[args.preset]
    if args.batch_size is None:
        args.batch_size = preset["batch_size"]
    for name in PRESET_FIELDS:
        if getattr(args, name) is None:
            setattr(args, name, preset["train"][name])
    return args


def model_config(args: argparse.Namespace, device: torch.device, say) -> GPTConfig:
    overrides = dict(PRESETS[args.preset]["model"])
    size = overrides.pop("size")
    if args.context is not None:
        overrides["context_length"] = args.context
    if args.dropout is not None:
        overrides["drop_rate"] = args.dropout
    auto_attention, auto_layernorm, why = auto_impls(device)
    for option, field, auto in (("attention", "attention_impl", auto_attention),
                                ("layernorm", "layernorm_impl", auto_layernorm)):
        choice = getattr(args, option)
        if choice == "auto":
            choice = auto
            say(f"{option}: {choice}, {why}")
        overrides[field] = choice
    return GPTConfig.preset(size, **overrides)


def build_data(args, tokenizer, context: int, rank: int, world_size: int, say, vocab_size: int | None = None):
    """(train batches, validation batches, description) for the stories, one shard folder, or a mixture.

    Data too small for the settings (a window longer than the text, a batch larger than the windows) raises
    InputError naming the option to change, before any model is built.
    """
    if args.mix or args.data:
        return shard_data(args, context, rank, world_size, say, vocab_size)
    per_rank = args.batch_size
    stories = load_stories(args.stories)
    ids = join_documents(stories, tokenizer)
    try:
        train_ids, val_ids = split_ids(ids, args.val_fraction)
    except ValueError as error:   # its only other complaint, the range of val_fraction, is the parser's check
        raise InputError(f"--val-fraction {args.val_fraction} of {args.stories}: {error}") from None
    if len(train_ids) <= context:
        raise InputError(f"{args.stories}: its {len(train_ids)} training tokens are shorter than one window of "
                         f"--context {context} (the targets reach one token further); use a smaller --context or "
                         f"more text")
    # Windows that tile the text (stride = context): one epoch shows every training token once.
    train_set = GPTDataset(train_ids, context, context)
    if len(train_set) < per_rank * world_size:
        raise InputError(f"{args.stories}: {len(train_set)} training windows cannot fill a batch of {per_rank} on "
                         f"{world_size} process(es); use a smaller --batch-size or --context")
    val_set = GPTDataset(val_ids, context, context) if len(val_ids) > context else None
    if val_set is None:
        say(f"the held-out text ({len(val_ids)} tokens) is shorter than one window: no validation loss")
    steps_per_epoch = len(train_set) // (per_rank * world_size * args.grad_accum_steps)
    text = (f"{len(stories)} stories from {args.stories}: {len(ids):,} tokens, {len(train_ids):,} for training "
            f"({len(train_set)} windows of {context}, {max(steps_per_epoch, 1)} steps per epoch), the last "
            f"{len(val_ids):,} held out for validation")
    val = fixed_batches(val_set, per_rank, args.eval_batches) if val_set is not None else None
    return WindowBatches(train_set, per_rank, seed=args.seed, rank=rank, world_size=world_size), val, text


def shard_data(args, context: int, rank: int, world_size: int, say, vocab_size: int | None = None):
    """build_data for one shard folder (--data) or several mixed by weight (--mix)."""
    per_rank = args.batch_size
    weights = parse_mix(args.mix) if args.mix else {args.data: 1.0}
    sources = {folder: open_shards(folder, "train", context, seed=args.seed + i, rank=rank, world_size=world_size,
                                   vocab_size=vocab_size)
               for i, folder in enumerate(weights)}
    total = sum(s.num_windows for s in sources.values())
    if total < per_rank * world_size:
        raise InputError(f"{', '.join(weights)}: {total} training windows of --context {context} cannot fill a "
                         f"batch of {per_rank} on {world_size} process(es); use a smaller --batch-size or --context")
    source = sources[args.data] if args.data and not args.mix else MixedDataset(
        sources, weights, seed=args.seed, rank=rank, world_size=world_size)
    val = []
    for folder in weights:
        try:
            val += fixed_batches(ShardDataset(folder, "val", context, vocab_size=vocab_size), per_rank,
                                 max(1, args.eval_batches // len(weights)))
        except InputError:
            raise   # the validation shards exist but are wrong (ids outside the vocabulary, a mixed folder)
        except (FileNotFoundError, ValueError) as e:
            say(f"no validation windows from {folder} ({e})")
    text = (f"{total:,} training windows of {context} tokens from "
            + ", ".join(f"{f} ({100 * w / sum(weights.values()):.0f}%)" for f, w in weights.items()))
    return WindowBatches(source, per_rank), val or None, text


def open_shards(folder: str, split: str, context: int, **placement) -> ShardDataset:
    """ShardDataset(folder, ...), with its complaints about the folder (a damaged shard, shards shorter than a
    window, fewer windows than processes) as InputError naming the folder; no shards at all: FileNotFoundError."""
    try:
        return ShardDataset(folder, split, context, **placement)
    except InputError:
        raise
    except ValueError as error:   # raised for the folder's content only: the arguments are checked above
        raise InputError(f"{folder}: {error}") from None


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """Model, data, training, the loss report and a sample from the saved checkpoint."""
    started = time.perf_counter()
    args = parse_args(argv)
    rank, world_size, dist_device = setup_distributed()
    master = rank == 0

    def say(message: str) -> None:
        if master:
            print(message, flush=True)

    if args.resume:
        # The run's own settings, so that data order, model and schedule match; --steps may extend it.
        saved = load_checkpoint(args.resume)["extra"].get("args")
        if saved is None:
            raise InputError(f"{args.resume} has no saved script arguments; it was not written by this script")
        given = args
        args = argparse.Namespace(**saved)
        args.max_steps = given.max_steps or args.max_steps
        args.quiet, args.resume = given.quiet, given.resume
        args.out = given.out if given.out != "out/ch06" else args.out
    args = resolve(args)
    if dist_device is not None:
        device = dist_device
    else:
        device = pick_device(args.device)
    torch.manual_seed(args.seed)   # the same initial weights on every rank
    tokenizer = gpt2_tiktoken_encoding()

    say(f"Chapter 6: pretraining a GPT ({args.preset}) on {device}"
        + (f", {world_size} processes (DistributedDataParallel)" if world_size > 1 else "") + ".")
    model = None
    if args.resume:
        model, _ = load_model(args.resume, device)
        model.train()
        cfg = model.cfg
    else:
        cfg = model_config(args, device, say)

    config = TrainConfig(
        **{name: getattr(args, name) for name in PRESET_FIELDS}, grad_clip=args.grad_clip,
        eval_batches=args.eval_batches, sample_prompt=args.prompt, sample_tokens=30,
        sample_temperature=args.temperature, sample_top_k=args.top_k, out_dir=args.out, dtype=args.dtype,
        seed=args.seed, progress=not args.quiet)
    if not args.bench_steps:
        # The data first: too little of it for the settings is an error that should not wait for the model.
        train_batches, val_batches, description = build_data(args, tokenizer, cfg.context_length, rank,
                                                             world_size, say, cfg.vocab_size)
    if model is None:
        model = GPTModel(cfg).to(device)
    n_params = count_parameters(model)
    say(f"Model: {cfg.n_layers} layers, width {cfg.emb_dim}, {cfg.n_heads} heads, context {cfg.context_length}, "
        f"vocabulary {cfg.vocab_size:,}, {n_params:,} parameters"
        + (" (output head tied to the token embedding)" if cfg.tie_weights else "") + ".")

    if args.bench_steps:
        say(f"Benchmark: {args.bench_steps} timed steps of batch {args.batch_size} x {cfg.context_length} random "
            f"tokens (torch.compile {'on' if args.compile else 'off'}, dtype {args.dtype}).")
        benchmark(model, args.batch_size, cfg.context_length, steps=args.bench_steps,
                  warmup=min(5, args.bench_steps), config=config)
        return

    tokens_per_step = args.batch_size * cfg.context_length * config.grad_accum_steps * world_size
    say(f"Data: {description}.")
    say(f"Training: {config.max_steps} steps of {tokens_per_step:,} tokens ({args.batch_size} x {cfg.context_length}"
        f"{f' x {config.grad_accum_steps} micro-batches' if config.grad_accum_steps > 1 else ''}"
        f"{f' x {world_size} processes' if world_size > 1 else ''}), AdamW with peak learning rate "
        f"{config.learning_rate:g}, {config.warmup_steps} warmup steps, cosine decay to {config.min_lr:g}, weight "
        f"decay {config.weight_decay:g} on matrices, gradient clipping at {config.grad_clip:g}.")
    fpt = flops_per_token(model, cfg.context_length)
    say(f"Each token costs about {fpt / 1e6:.1f} MFLOPs to train (6N + 12·L·T·d). Checkpoints go to "
        f"{Path(args.out) / 'ckpt.pt'}.")

    try:
        history = train(model, train_batches, val_batches, config, tokenizer=tokenizer, resume=args.resume,
                        extra={"args": vars(args)})
    except TrainingInterrupted as stop:
        if not master:
            raise SystemExit(130) from None
        cli.report_interrupt(stop, cli.script_command(__file__))
    if not master:
        dist.destroy_process_group()
        return

    report(history, args)
    say(f"\nLoading the checkpoint back (load_model) and continuing the prompt {args.prompt!r} with "
        f"temperature {args.temperature}, top-k {args.top_k}:")
    reloaded, tokenizer = load_model(history["checkpoint"], device)
    prompt = torch.tensor([tokenizer.encode(args.prompt)], device=device)
    out = generate(reloaded, prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                   eos_id=tokenizer.eot_token, seed=args.seed)
    say("   " + tokenizer.decode([t for t in out[0].tolist() if t < tokenizer.n_vocab]).replace("\n", "\n   "))
    say(f"\nLoss curves: {Path(args.out) / 'loss.png'}. Wall time {time.perf_counter() - started:.0f} s.")
    if world_size > 1:
        dist.destroy_process_group()


def report(history: dict, args: argparse.Namespace) -> None:
    """Final numbers, an honest word about overfitting, and the loss plot with that word on it."""
    train_loss = history["train_loss"][-1]
    print(f"\nAfter {history['step'][-1]} steps ({history['tokens'][-1]:,} tokens): training loss {train_loss:.3f}",
          end="")
    if not history["val_loss"]:
        print(".")
        return
    val_losses, val_steps = history["val_loss"], history["val_step"]
    best = min(range(len(val_losses)), key=val_losses.__getitem__)
    final = val_losses[-1]
    print(f", validation loss {final:.3f} (lowest {val_losses[best]:.3f} at step {val_steps[best]}).")
    gap = final - train_loss
    small_data = not (args.data or args.mix)
    note = ""
    if final - val_losses[best] > 0.05:
        note = (f"Overfitting: validation loss rose from {val_losses[best]:.2f} (step {val_steps[best]}) "
                f"to {final:.2f} while training loss kept falling.")
    elif gap > 0.5:
        # Compare the last third of the run: is the validation loss still following the training loss?
        third = next(i for i, s in enumerate(val_steps) if s >= val_steps[-1] * 2 / 3)
        train_then = history["train_loss"][history["step"].index(val_steps[third])]
        note = (f"Memorising: training loss is {gap:.2f} below validation loss; over the last third of the run "
                f"training loss fell {train_then - train_loss:.2f}, validation loss only "
                f"{val_losses[third] - final:.2f}.")
    if note:
        print(note + (" The model learns these few stories by heart rather than language in general: "
                      "a few thousand tokens are far too little text for millions of parameters." if small_data else "")
              + " More text (--data; see data/prepare_tinystories.py), fewer steps or more dropout would help.")
    what = "the bundled stories" if small_data else "token shards"
    plot_losses(history, Path(args.out) / "loss.png",
                title=f"Chapter 6: {args.preset} GPT on {what}", note=note)


if __name__ == "__main__":
    main()
