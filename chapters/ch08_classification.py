"""Chapter 8: finetune a GPT to tell spam from ham, with a new 2-way head, and optionally with LoRA.

    python chapters/ch08_classification.py                          # bundled SMS data, small random-init GPT, CPU
    python chapters/ch08_classification.py --strategy lora          # train low-rank adapters instead
    python chapters/ch08_classification.py --compare-pooling        # last vs first vs mean token: why the last
    python chapters/ch08_classification.py --data my_messages.tsv   # any file in the UCI format (split 70/10/20)
    python chapters/ch08_classification.py --download --weights gpt2 --strategy lora   # real data, GPT-2 124M

The script reads and balances the data, builds the classifier, trains it, plots loss and accuracy per epoch,
prints and plots the test confusion matrix, merges LoRA adapters (checking that outputs do not change), saves
the classifier and loads it back, and classifies a few new messages.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from minigpt import cli
from minigpt.classify import (LABELS, POOLINGS, STRATEGIES, GPTClassifier, SpamDataset, check_split, classify,
                              confusion_matrix, download_sms_spam, evaluate_classifier, format_accuracy,
                              majority_baseline, make_loader, predict, read_sms_file, save_classifier, set_trainable,
                              stratified_split, train_classifier, undersample)
from minigpt.loading import open_base_model
from minigpt.speed import cpu_threads
from minigpt.files import InputError, atomic_open, save_figure
from minigpt.loading import load_model
from minigpt.lora import ALL_LINEAR, ATTENTION_QV, merge_lora
from minigpt.model import GPTConfig, GPTModel
from minigpt.tokenizer import gpt2_tiktoken_encoding

BUNDLED = Path(__file__).resolve().parent.parent / "data" / "sms"

# Learning rates that work for each case: a model trained from scratch and a new head need large steps;
# pretrained weights need small ones, or finetuning destroys what pretraining learned. LoRA's B starts at zero
# and its update is scaled by alpha / rank, so it sits in between.
DEFAULT_LR = {"scratch": 5e-4, "head": 1e-3, "last": 5e-5, "all": 5e-5, "lora": 5e-4}

NEW_MESSAGES = [
    "Are we still on for lunch tomorrow? I can book a table for 1",
    "Hiya, just landed, will call you from the taxi",
    "WINNER! You have been chosen for a £750 prize. Text CLAIM to 80155 now to collect. £1.50/msg",
    "Your account is on hold. Confirm your card details today at www.secure-account-check.example",
]


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="ch08_classification.py", description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", type=Path, help="a file in the UCI SMS format to split 70/10/20, or the UCI zip "
                                                "downloaded elsewhere (default: the bundled data/sms splits)")
    data.add_argument("--download", action="store_true", help="download the UCI SMS Spam Collection and split it")
    data.add_argument("--no-verify", action="store_true", help="with --download, skip the sha256 check")
    data.add_argument("--balance", choices=("all", "train", "none"), default="all",
                      help="undersample the larger class in every split, in the training split only, or nowhere")
    data.add_argument("--max-length", type=cli.positive_int,
                      help="tokens per message (default: the longest training message, at most the context length)")
    model = p.add_argument_group("model")
    start = model.add_mutually_exclusive_group()
    start.add_argument("--weights", type=cli.non_empty,
                       help='start from GPT-2 weights: "gpt2", "gpt2-medium", ... or a local path')
    start.add_argument("--checkpoint", type=Path, help="start from a chapter 6 checkpoint")
    model.add_argument("--emb-dim", type=cli.positive_int, default=128, help="width of the random-init model")
    model.add_argument("--n-layers", type=cli.positive_int, default=4, help="blocks of the random-init model")
    model.add_argument("--n-heads", type=cli.positive_int, default=4, help="heads of the random-init model")
    model.add_argument("--pooling", choices=POOLINGS, default="last", help="which token(s) classify the message")
    model.add_argument("--compare-pooling", action="store_true",
                       help="afterwards, train the same model once per pooling and compare test accuracy")
    train = p.add_argument_group("training")
    train.add_argument("--strategy", choices=STRATEGIES, default="all", help="which parameters train")
    train.add_argument("--last-blocks", type=cli.positive_int, default=1, help="blocks that train with --strategy last")
    train.add_argument("--lora-rank", type=cli.positive_int, default=8)
    train.add_argument("--lora-alpha", type=cli.positive_float, default=16.0)
    train.add_argument("--lora-targets", default="qv", help='"qv" (W_query, W_value), "all" (every Linear in a '
                                                           'block), or comma-separated layer names')
    train.add_argument("--epochs", type=cli.positive_int, default=5)
    train.add_argument("--batch-size", type=cli.positive_int, default=8)
    train.add_argument("--lr", type=cli.positive_float,
                       help="learning rate (default depends on the strategy, see DEFAULT_LR)")
    train.add_argument("--weight-decay", type=cli.non_negative_float, default=0.1)
    p.add_argument("--device", default="auto", help='"auto" (cuda if available, else cpu), "cpu", "cuda", ...')
    p.add_argument("--threads", type=cli.positive_int,
                   help="CPU threads (default: 1 for a model narrower than 512, which gains little from more and "
                        "loses a lot on a busy machine; torch's default for wider ones)")
    p.add_argument("--seed", type=cli.non_negative_int, default=123)
    p.add_argument("--out", type=Path, default=Path("out/ch08"), help="folder for figures, metrics and the model")
    return p


def check_args(parser: cli.ArgumentParser, args: argparse.Namespace) -> torch.device:
    """Everything that can be checked before any work: one line naming the option and exit status 2 if not.
    Returns the device. Limits that depend on a loaded model (its context, its blocks) are checked once it is
    loaded (check_against_model)."""
    device = cli.check_common_options(parser, args)
    if args.data is not None and not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    if not (args.weights or args.checkpoint):   # the random-init model: its shape is known now
        if args.emb_dim % args.n_heads:
            parser.error(f"--emb-dim {args.emb_dim} must be a multiple of --n-heads {args.n_heads}")
        cfg = random_init_config(args)
        if args.max_length is not None and args.max_length > cfg.context_length:
            parser.error(f"--max-length {args.max_length}: the model reads at most {cfg.context_length} tokens")
        if args.strategy == "last" and args.last_blocks > args.n_layers:
            parser.error(f"--last-blocks {args.last_blocks}: the model has {args.n_layers} blocks (--n-layers)")
    if args.strategy == "lora":
        problem = lora_target_problem(args.lora_targets)
        if problem:
            parser.error(f"--lora-targets {args.lora_targets!r}: {problem}")
    return device


def random_init_config(args: argparse.Namespace) -> GPTConfig:
    return GPTConfig.preset("tiny", emb_dim=args.emb_dim, n_layers=args.n_layers, n_heads=args.n_heads)


def lora_target_problem(spec: str) -> str | None:
    """Why `spec` names no Linear layers of a transformer block (None if it does). Every GPTModel has the same
    layer names, so a small one built on the meta device (shapes only, no memory) lists them."""
    with torch.device("meta"):
        block = GPTModel(GPTConfig.preset("tiny", n_layers=1)).trf_blocks[0]
    block_layers = [name for name, module in block.named_modules() if isinstance(module, torch.nn.Linear)]
    targets = lora_targets(spec)
    unknown = [t for t in targets if not any(n == t or n.endswith("." + t) for n in block_layers)]
    if targets and not unknown:
        return None
    return (f"expected qv, all, or comma-separated Linear layers of a block ({', '.join(block_layers)})"
            + (f"; {', '.join(unknown)} is none of them" if unknown else ""))


def check_against_model(args: argparse.Namespace, gpt: GPTModel) -> None:
    """The limits a loaded model sets (GPT-2's context, its number of blocks), before any training."""
    if args.max_length is not None and args.max_length > gpt.cfg.context_length:
        raise InputError(f"--max-length {args.max_length}: the model reads at most {gpt.cfg.context_length} tokens")
    if args.strategy == "last" and args.last_blocks > gpt.cfg.n_layers:
        raise InputError(f"--last-blocks {args.last_blocks}: the model has {gpt.cfg.n_layers} blocks")


def load_splits(args) -> tuple[list, list, list, str]:
    """Train/validation/test examples and a sentence saying where they came from. Splits that cannot train or
    measure anything (empty, or one class only) are refused with an InputError naming the file."""
    if args.data or args.download:
        if args.download or args.data.suffix == ".zip":
            path = fetch_collection(args)
        else:
            path = args.data
        examples = read_sms_file(path)
        check_split(examples, "the file", path)
        splits = stratified_split(examples, (0.7, 0.1, 0.2), seed=args.seed)
        for name, part in zip(("train", "validation", "test"), splits):
            check_split(part, f"the {name} split ({len(examples)} messages split 70/10/20 per class)", path,
                        advice="; give each class at least 10 messages")
        return (*splits, f"{path} ({len(examples)} messages), split 70/10/20 per class with seed {args.seed}")
    files = [BUNDLED / f"{name}.tsv" for name in ("train", "validation", "test")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"the bundled data is missing ({', '.join(missing)}); "
                                f"run `python data/sms/make_sms.py` or pass --data PATH")
    splits = [read_sms_file(f) for f in files]
    for name, part, path in zip(("train", "validation", "test"), splits, files):
        check_split(part, f"the {name} split", path)
    return (*splits, f"the bundled SMS data in {BUNDLED} (its fixed train/validation/test split)")


def fetch_collection(args) -> Path:
    """The UCI collection: downloaded (or taken from the zip given as --data) and checked against its sha256."""
    try:
        return download_sms_spam(verify=not args.no_verify, local=args.data)
    except (OSError, RuntimeError, ValueError) as e:
        if isinstance(e, (InputError, FileNotFoundError)):
            raise
        # The download helper's errors (offline, a checksum that does not match) are about the user's network
        # or file, not bugs: one line.
        hint = " (--no-verify skips the check)" if "sha256" in str(e) else ""
        raise InputError(f"{e}{hint}") from None


def describe(name: str, examples: list) -> str:
    counts = {label: sum(1 for l, _ in examples if l == label) for label in LABELS}
    return f"{name}: {len(examples)} ({', '.join(f'{n} {label}' for label, n in counts.items())})"


def lora_targets(spec: str) -> tuple[str, ...]:
    return {"qv": ATTENTION_QV, "all": ALL_LINEAR}.get(spec) or tuple(t.strip() for t in spec.split(",") if t.strip())


def plot_history(history: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["train_loss"]) + 1)
    for split in ("train", "val", "test"):
        if f"{split}_loss" in history:
            ax_loss.plot(epochs, history[f"{split}_loss"], marker="o", label=split)
            ax_acc.plot(epochs, [100 * a for a in history[f"{split}_acc"]], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(matrix: torch.Tensor, labels, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true", title="test confusion matrix")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)


def print_confusion(matrix: torch.Tensor, labels) -> None:
    width = max(len(f"predicted {l}") for l in labels) + 2
    print(" " * 12 + "".join(f"predicted {l}".rjust(width) for l in labels))
    for i, label in enumerate(labels):
        print(f"true {label}".ljust(12) + "".join(str(int(n)).rjust(width) for n in matrix[i]))


def trainable_table(cfg: GPTConfig, args) -> None:
    """Print how many parameters each strategy trains, on a model built on the 'meta' device (shapes only,
    no memory, no time), so the table costs nothing even for GPT-2 XL."""
    print("Parameters each strategy trains:")
    for strategy in STRATEGIES:
        with torch.device("meta"):
            model = GPTClassifier(GPTModel(cfg))
            trainable, total = set_trainable(model, strategy, args.last_blocks, args.lora_rank, args.lora_alpha,
                                             lora_targets(args.lora_targets))
        print(f"  {strategy:5s} {trainable:>13,} of {total:,} ({trainable / total:.2%})")


def show_reading(model: GPTClassifier, text: str, encoding) -> None:
    """Print the spam probability at every position of one message. A causal model's position t has seen
    tokens 0..t only: the first position knows one token, the last one knows the whole message."""
    ids = encoding.encode(text, disallowed_special=())[:model.gpt.cfg.context_length]
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model.gpt(torch.tensor([ids], device=device)).float(), dim=-1)[0, :, 1]
    print("Reading one test message token by token: the spam probability at each position. Position t has seen")
    print("tokens 0..t only; training taught the last position, so only its answer is reliable:")
    print("  " + " ".join(f"{encoding.decode([i])!r}:{p:.2f}" for i, p in zip(ids, probs.tolist())))


def compare_pooling(args, cfg: GPTConfig, device, lr: float, loaders: dict, baselines: dict) -> None:
    """Train the same model from the same start once per pooling; print the test accuracy of each."""
    print(f"Comparing poolings ({args.epochs} epochs each, same data, same initial weights):")
    for pooling in POOLINGS:
        torch.manual_seed(args.seed)
        gpt = open_base_model(args.weights, args.checkpoint, cfg, device)
        model = GPTClassifier(gpt, num_classes=2, pooling=pooling).to(device)
        set_trainable(model, args.strategy, args.last_blocks, args.lora_rank, args.lora_alpha,
                      lora_targets(args.lora_targets))
        model.to(device)
        history = train_classifier(model, *loaders.values(), epochs=args.epochs, lr=lr,
                                   weight_decay=args.weight_decay, device=device, progress=False)
        print(f"  {pooling:5s} test accuracy {format_accuracy(history['test_acc'][-1], baselines['test'])}; "
              f"validation {history['val_acc'][-1]:.1%}, train {history['train_acc'][-1]:.1%}")


def prepare_data(args) -> tuple[list, list, list, str]:
    """Read, check and (by default) balance the splits, and print what they hold."""
    train, val, test, source = load_splits(args)
    print(f"Data: {source}.")
    if args.balance != "none":
        train = undersample(train, args.seed)
        if args.balance == "all":
            val, test = undersample(val, args.seed), undersample(test, args.seed)
        print(f"Undersampled the larger class in {'every split' if args.balance == 'all' else 'the training split'},"
              f" so that always answering one class scores 50%:")
    for name, examples in (("train", train), ("validation", val), ("test", test)):
        print("  " + describe(name, examples))
    return train, val, test, source


def build_classifier(args, device) -> tuple[GPTClassifier, GPTConfig, int, int]:
    """The base GPT with a 2-way head and the chosen parameters trainable: (model, base config, trainable, total)."""
    cfg = random_init_config(args)
    gpt = open_base_model(args.weights, args.checkpoint, cfg, device)
    check_against_model(args, gpt)
    origin = (f"GPT-2 weights {args.weights}" if args.weights else f"checkpoint {args.checkpoint}" if args.checkpoint
              else "random initialisation")
    print(f"Base model: {origin} ({gpt.cfg.n_layers} layers, {gpt.cfg.emb_dim} wide, "
          f"context {gpt.cfg.context_length}).")
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(gpt, args.threads))
        print(f"Using {torch.get_num_threads()} CPU thread(s)" +
              ("." if args.threads else " (--threads changes it: one is faster for a small model on a busy machine)."))
    trainable_table(gpt.cfg, args)
    model = GPTClassifier(gpt, num_classes=2, pooling=args.pooling).to(device)
    trainable, total = set_trainable(model, args.strategy, args.last_blocks, args.lora_rank, args.lora_alpha,
                                     lora_targets(args.lora_targets))
    model.to(device)   # LoRA matrices are created on their layer's device already; this is for safety
    print(f"Strategy {args.strategy!r} with {args.pooling!r} pooling: {trainable:,} of {total:,} parameters train.")
    return model, cfg, trainable, total


def make_loaders(args, gpt_cfg: GPTConfig, encode, splits: list) -> tuple[dict, int]:
    """{"train", "val", "test"} DataLoaders of the tokenized messages, and the length they are cut or padded to."""
    longest = max(len(encode(text)) for _, text in splits[0])
    max_length = args.max_length or min(longest, gpt_cfg.context_length)
    datasets = [SpamDataset(examples, encode, max_length) for examples in splits]
    print(f"Messages are cut or padded (with <|endoftext|>) to {max_length} tokens; "
          f"{sum(d.truncated for d in datasets)} were cut.")
    loaders = {"train": make_loader(datasets[0], args.batch_size, shuffle=True, seed=args.seed),
               "val": make_loader(datasets[1], 32), "test": make_loader(datasets[2], 32)}
    return loaders, max_length


def check_merge(model: GPTClassifier, loader, device) -> None:
    """Merge LoRA into the weights and show that the logits stay the same (up to rounding)."""
    model.eval()
    batch = next(iter(loader))
    with torch.no_grad():
        before = model(batch[0].to(device), batch[1].to(device))
        merge_lora(model.gpt)
        after = model(batch[0].to(device), batch[1].to(device))
    print(f"Merged the LoRA matrices into the weights; logits changed by at most "
          f"{(after - before).abs().max().item():.2e} (rounding only).")


def use_saved(path: Path, device, loaders: dict, baselines: dict, test: list, encoding, encode, max_length) -> None:
    """Load the saved classifier back, check it, and classify a few messages with it."""
    reloaded, _ = load_model(path, device)
    _, reloaded_acc = evaluate_classifier(reloaded, loaders["test"], device)
    print(f"Saved the classifier to {path} and loaded it back (load_model): test accuracy "
          f"{format_accuracy(reloaded_acc, baselines['test'])}.")
    spam_examples = [text for label, text in test if label == "spam"]
    if spam_examples:
        show_reading(reloaded, min(spam_examples, key=len), encoding)
    print("Classifying new messages:")
    for text in NEW_MESSAGES:
        label, prob = classify(reloaded, text, encode, max_length)
        print(f"  {label:4s} ({prob:.1%})  {text}")


def run(args, device) -> None:
    torch.manual_seed(args.seed)
    start = time.time()
    train, val, test, source = prepare_data(args)
    baselines = {"train": majority_baseline(train), "val": majority_baseline(val), "test": majority_baseline(test)}
    model, cfg, trainable, total = build_classifier(args, device)
    encoding = gpt2_tiktoken_encoding()
    if model.gpt.cfg.vocab_size < encoding.n_vocab:
        raise InputError(f"the model knows {model.gpt.cfg.vocab_size:,} token ids, GPT-2's tokenizer uses "
                         f"{encoding.n_vocab:,}: chapter 8 needs a model trained with GPT-2's tokenizer")
    encode = lambda text: encoding.encode(text, disallowed_special=())  # "<|endoftext|>" in a message is just text
    loaders, max_length = make_loaders(args, model.gpt.cfg, encode, [train, val, test])
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Figures, metrics and the model go to {args.out}/; running on {device}.")

    lr = args.lr or (DEFAULT_LR[args.strategy] if args.weights or args.checkpoint else DEFAULT_LR["scratch"])
    print(f"Training for {args.epochs} epochs, batch size {args.batch_size}, learning rate {lr:g}.")
    _, acc_before = evaluate_classifier(model, loaders["test"], device)
    print(f"Test accuracy before training: {format_accuracy(acc_before, baselines['test'])}")
    history = train_classifier(model, *loaders.values(), epochs=args.epochs, lr=lr,
                               weight_decay=args.weight_decay, device=device, baselines=baselines)
    plot_history(history, args.out / "loss_accuracy.png")
    print(f"Saved the loss and accuracy curves to {args.out / 'loss_accuracy.png'}.")

    predicted, true = predict(model, loaders["test"], device)
    matrix = confusion_matrix(predicted, true, 2)
    print("Test confusion matrix (rows: the true class, columns: the prediction):")
    print_confusion(matrix, model.labels)
    plot_confusion(matrix, model.labels, args.out / "confusion_matrix.png")
    if args.strategy == "lora":
        check_merge(model, loaders["test"], device)
    path = save_classifier(model, args.out / "classifier.pt", max_length=max_length)
    use_saved(path, device, loaders, baselines, test, encoding, encode, max_length)
    if args.compare_pooling:
        compare_pooling(args, cfg, device, lr, loaders, baselines)

    metrics = {"source": source, "strategy": args.strategy, "pooling": args.pooling, "lr": lr,
               "trainable_parameters": trainable, "total_parameters": total, "history": history,
               "majority_baselines": {split: {"label": label, "accuracy": score}
                                      for split, (label, score) in baselines.items()},
               "confusion_matrix": matrix.tolist(), "seconds": round(time.time() - start, 1)}
    with atomic_open(args.out / "metrics.json") as f:
        json.dump(metrics, f, indent=1)
    print(f"Test accuracy: {format_accuracy(history['test_acc'][-1], baselines['test'])}; validation "
          f"{history['val_acc'][-1]:.1%} (majority {baselines['val'][1]:.1%}), train {history['train_acc'][-1]:.1%} "
          f"(majority {baselines['train'][1]:.1%}). Took {time.time() - start:.0f} s.")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    with cli.user_errors(parser.prog):
        run(args, check_args(parser, args))


if __name__ == "__main__":
    main()
