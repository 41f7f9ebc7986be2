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
import sys
from pathlib import Path


import argparse
import json
import time

import torch

from minigpt.classify import (LABELS, POOLINGS, STRATEGIES, GPTClassifier, SpamDataset, classify, confusion_matrix,
                              download_sms_spam, evaluate_classifier, make_loader, predict, read_sms_file,
                              save_classifier, set_trainable, stratified_split, train_classifier, undersample)
from minigpt.device import pick_device
from minigpt.files import atomic_open, save_figure
from minigpt.loading import load_base_model, load_model
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


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data", type=Path, help="a file in the UCI SMS format to split 70/10/20, or the UCI zip "
                                                "downloaded elsewhere (default: the bundled data/sms splits)")
    data.add_argument("--download", action="store_true", help="download the UCI SMS Spam Collection and split it")
    data.add_argument("--no-verify", action="store_true", help="with --download, skip the sha256 check")
    data.add_argument("--balance", choices=("all", "train", "none"), default="all",
                      help="undersample the larger class in every split, in the training split only, or nowhere")
    data.add_argument("--max-length", type=int, help="tokens per message (default: the longest training message, "
                                                     "at most the context length)")
    model = p.add_argument_group("model")
    model.add_argument("--weights", help='start from GPT-2 weights: "gpt2", "gpt2-medium", ... or a local path')
    model.add_argument("--checkpoint", type=Path, help="start from a chapter 6 checkpoint")
    model.add_argument("--emb-dim", type=int, default=128, help="width of the random-init model")
    model.add_argument("--n-layers", type=int, default=4, help="blocks of the random-init model")
    model.add_argument("--n-heads", type=int, default=4, help="heads of the random-init model")
    model.add_argument("--pooling", choices=POOLINGS, default="last", help="which token(s) classify the message")
    model.add_argument("--compare-pooling", action="store_true",
                       help="afterwards, train the same model once per pooling and compare test accuracy")
    train = p.add_argument_group("training")
    train.add_argument("--strategy", choices=STRATEGIES, default="all", help="which parameters train")
    train.add_argument("--last-blocks", type=int, default=1, help='blocks that train with --strategy last')
    train.add_argument("--lora-rank", type=int, default=8)
    train.add_argument("--lora-alpha", type=float, default=16.0)
    train.add_argument("--lora-targets", default="qv", help='"qv" (W_query, W_value), "all" (every Linear in a '
                                                           'block), or comma-separated layer names')
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, help="learning rate (default depends on the strategy, see DEFAULT_LR)")
    train.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--device", default="auto", help='"auto" (cuda if available, else cpu), "cpu", "cuda", ...')
    p.add_argument("--threads", type=int, help="CPU threads (default: 1 for the small random-init model, which "
                                               "gains little from more and loses a lot on a busy machine)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", type=Path, default=Path("out/ch08"), help="folder for figures, metrics and the model")
    return p.parse_args()


def load_splits(args) -> tuple[list, list, list, str]:
    """Train/validation/test examples and a sentence saying where they came from."""
    if args.data or args.download:
        if args.download or args.data.suffix == ".zip":
            path = download_sms_spam(verify=not args.no_verify, local=args.data)
        else:
            path = args.data
        examples = read_sms_file(path)
        train, val, test = stratified_split(examples, (0.7, 0.1, 0.2), seed=args.seed)
        return train, val, test, f"{path} ({len(examples)} messages), split 70/10/20 per class with seed {args.seed}"
    files = [BUNDLED / f"{name}.tsv" for name in ("train", "validation", "test")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"the bundled data is missing ({', '.join(missing)}); "
                                f"run `python data/sms/make_sms.py` or pass --data PATH")
    train, val, test = (read_sms_file(f) for f in files)
    return train, val, test, f"the bundled SMS data in {BUNDLED} (its fixed train/validation/test split)"


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
    ax.imshow(matrix, cmap="Blues")
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


def compare_pooling(args, cfg: GPTConfig, device, lr: float, train_loader, val_loader, test_loader) -> None:
    """Train the same model from the same start once per pooling; print the test accuracy of each."""
    print(f"Comparing poolings ({args.epochs} epochs each, same data, same initial weights):")
    for pooling in POOLINGS:
        torch.manual_seed(args.seed)
        gpt = load_base_model(args.weights, str(args.checkpoint) if args.checkpoint else None, cfg, device)
        model = GPTClassifier(gpt, num_classes=2, pooling=pooling).to(device)
        set_trainable(model, args.strategy, args.last_blocks, args.lora_rank, args.lora_alpha,
                      lora_targets(args.lora_targets))
        model.to(device)
        history = train_classifier(model, train_loader, val_loader, test_loader, epochs=args.epochs, lr=lr,
                                   weight_decay=args.weight_decay, device=device, progress=False)
        print(f"  {pooling:5s} test accuracy {history['test_acc'][-1]:.1%} "
              f"(validation {history['val_acc'][-1]:.1%}, train {history['train_acc'][-1]:.1%})")


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Figures, metrics and the model go to {args.out}/; running on {device}.")
    start = time.time()

    try:
        train, val, test, source = load_splits(args)
    except (OSError, RuntimeError, ValueError) as e:
        hint = " (--no-verify skips the check)" if "sha256" in str(e) else ""
        sys.exit(f"error: {e}{hint}")
    print(f"Data: {source}.")
    if args.balance != "none":
        train = undersample(train, args.seed)
        if args.balance == "all":
            val, test = undersample(val, args.seed), undersample(test, args.seed)
        print(f"Undersampled the larger class in {'every split' if args.balance == 'all' else 'the training split'},"
              f" so that always answering one class scores 50%:")
    for name, examples in (("train", train), ("validation", val), ("test", test)):
        print("  " + describe(name, examples))

    pretrained = bool(args.weights or args.checkpoint)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or (torch.get_num_threads() if pretrained else 1))
        print(f"Using {torch.get_num_threads()} CPU thread(s).")
    cfg = GPTConfig.preset("tiny", emb_dim=args.emb_dim, n_layers=args.n_layers, n_heads=args.n_heads)
    gpt = load_base_model(args.weights, str(args.checkpoint) if args.checkpoint else None, cfg, device)
    origin = (f"GPT-2 weights {args.weights}" if args.weights else f"checkpoint {args.checkpoint}" if args.checkpoint
              else "random initialisation")
    print(f"Base model: {origin} ({gpt.cfg.n_layers} layers, {gpt.cfg.emb_dim} wide, "
          f"context {gpt.cfg.context_length}).")
    trainable_table(gpt.cfg, args)
    model = GPTClassifier(gpt, num_classes=2, pooling=args.pooling).to(device)
    trainable, total = set_trainable(model, args.strategy, args.last_blocks, args.lora_rank, args.lora_alpha,
                                     lora_targets(args.lora_targets))
    model.to(device)   # LoRA matrices are created on their layer's device already; this is for safety
    print(f"Strategy {args.strategy!r} with {args.pooling!r} pooling: {trainable:,} of {total:,} parameters train.")

    encoding = gpt2_tiktoken_encoding()
    if gpt.cfg.vocab_size < encoding.n_vocab:
        sys.exit(f"error: the model knows {gpt.cfg.vocab_size:,} token ids, GPT-2's tokenizer uses {encoding.n_vocab:,}")
    encode = lambda text: encoding.encode(text, disallowed_special=())  # "<|endoftext|>" in a message is just text
    longest = max(len(encode(text)) for _, text in train)
    max_length = args.max_length or min(longest, gpt.cfg.context_length)
    datasets = [SpamDataset(examples, encode, max_length) for examples in (train, val, test)]
    print(f"Messages are cut or padded (with <|endoftext|>) to {max_length} tokens; "
          f"{sum(d.truncated for d in datasets)} were cut.")
    train_loader = make_loader(datasets[0], args.batch_size, shuffle=True, seed=args.seed)
    val_loader, test_loader = (make_loader(d, 32) for d in datasets[1:])

    lr = args.lr or (DEFAULT_LR[args.strategy] if pretrained else DEFAULT_LR["scratch"])
    print(f"Training for {args.epochs} epochs, batch size {args.batch_size}, learning rate {lr:g}.")
    _, acc_before = evaluate_classifier(model, test_loader, device)
    print(f"Test accuracy before training: {acc_before:.1%}")
    history = train_classifier(model, train_loader, val_loader, test_loader, epochs=args.epochs, lr=lr,
                               weight_decay=args.weight_decay, device=device)
    plot_history(history, args.out / "loss_accuracy.png")
    print(f"Saved the loss and accuracy curves to {args.out / 'loss_accuracy.png'}.")

    predicted, true = predict(model, test_loader, device)
    matrix = confusion_matrix(predicted, true, 2)
    print("Test confusion matrix (rows: the true class, columns: the prediction):")
    print_confusion(matrix, model.labels)
    plot_confusion(matrix, model.labels, args.out / "confusion_matrix.png")

    if args.strategy == "lora":
        model.eval()
        batch = next(iter(test_loader))
        with torch.no_grad():
            before = model(batch[0].to(device), batch[1].to(device))
            merge_lora(model.gpt)
            after = model(batch[0].to(device), batch[1].to(device))
        print(f"Merged the LoRA matrices into the weights; logits changed by at most "
              f"{(after - before).abs().max().item():.2e} (rounding only).")

    path = save_classifier(model, args.out / "classifier.pt", max_length=max_length)
    reloaded, _ = load_model(path, device)
    _, reloaded_acc = evaluate_classifier(reloaded, test_loader, device)
    print(f"Saved the classifier to {path} and loaded it back (load_model): test accuracy {reloaded_acc:.1%}.")

    spam_examples = [text for label, text in test if label == "spam"]
    if spam_examples:
        show_reading(reloaded, min(spam_examples, key=len), encoding)
    print("Classifying new messages:")
    for text in NEW_MESSAGES:
        label, prob = classify(reloaded, text, encode, max_length)
        print(f"  {label:4s} ({prob:.1%})  {text}")

    if args.compare_pooling:
        compare_pooling(args, cfg, device, lr, train_loader, val_loader, test_loader)

    metrics = {"source": source, "strategy": args.strategy, "pooling": args.pooling, "lr": lr,
               "trainable_parameters": trainable, "total_parameters": total, "history": history,
               "confusion_matrix": matrix.tolist(), "seconds": round(time.time() - start, 1)}
    with atomic_open(args.out / "metrics.json") as f:
        json.dump(metrics, f, indent=1)
    print(f"Test accuracy: {history['test_acc'][-1]:.1%} (validation {history['val_acc'][-1]:.1%}, "
          f"train {history['train_acc'][-1]:.1%}); took {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
