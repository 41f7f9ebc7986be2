"""Chapter 12: evaluating a language model — perplexity, bits per byte, multiple choice by logits, generated answers.

    python chapters/ch12_evaluation.py                        # random init vs chapter 6 vs chapter 9, bundled tasks
    python chapters/ch12_evaluation.py --task facts-en --shots 5 --checkpoint out/ch06/ckpt.pt
    python chapters/ch12_evaluation.py --weights gpt2 --task hellaswag --limit 500   # GPT-2 124M (downloads both)
    python chapters/ch12_evaluation.py --weights ~/gpt2 --task mmlu --data ~/mmlu/data --shots 5
    python chapters/ch12_evaluation.py --task ceval --data ~/ceval-exam --split val --judge   # + a local judge

What it does, for every model: the bits per byte and perplexity of held-out text (the end of the bundled stories,
held-out Chinese, or the --text files), read with a sliding window; the accuracy on multiple-choice tasks, each
choice scored by the model's log-likelihood (completion tasks: the likeliest ending; letter tasks: the likeliest
of " A", " B", ... after a k-shot prompt), beside the accuracy of guessing and with a 95% interval; and for an
instruction model, its answers to the bundled test requests scored by exact match, token F1, ROUGE-L and BLEU.
It prints a report card, plots it (report_card.png) and writes every item's scores to items.jsonl and the card to
report.json in --out.

The default models: a randomly initialised GPT (what chance looks like), chapter 6's pretrained model and chapter
9's instruction model: their checkpoints (out/ch06/ckpt.pt, out/ch09/ckpt.pt) when those chapters have been run,
otherwise trained here first: chapter 6's default run (its tiny preset, 350 steps on the bundled stories) and a
short chapter 9 finetuning of it (100 steps), kept in --out for the next run.
Each model is scored with the tokenizer its checkpoint records.
"""
import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from minigpt import cli
from minigpt.batches import WindowBatches
from minigpt.checkpoint import load_checkpoint
from minigpt.data import GPTDataset, join_documents, load_stories, split_ids
from minigpt.device import pick_device
from minigpt.evaluate import score_generations, score_task, text_perplexity
from minigpt.files import InputError, atomic_open, save_figure, write_text_atomic
from minigpt.gpt2 import load_gpt2
from minigpt.instruct import InstructionDataset, finetune, generate_responses, load_splits
from minigpt.judge import OLLAMA_CHAT_URL, check_local_url, compare_with_ollama, judge_with_ollama, ollama_status
from minigpt.loading import model_from_checkpoint
from minigpt.model import GPTConfig, GPTModel
from minigpt.tasks import BUNDLED, load_task, task_names
from minigpt.tokenizer import gpt2_tiktoken_encoding
from minigpt.train import PRESETS, TrainConfig, TrainingInterrupted, train

ROOT = Path(__file__).resolve().parent.parent
CHAPTER6_CHECKPOINT = ROOT / "out" / "ch06" / "ckpt.pt"
CHAPTER9_CHECKPOINT = ROOT / "out" / "ch09" / "ckpt.pt"
CHINESE_HELDOUT = ROOT / "data" / "chinese" / "heldout.txt"
CHINESE_CHARACTERS = 5000
DEFAULT_TASKS = ("stories", "science", "facts-en", "chinese-stories", "facts-zh")


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    models = p.add_argument_group("models (default: random init, chapter 6's and chapter 9's)")
    models.add_argument("--checkpoint", action="append", type=cli.non_empty, default=[],
                        help="a minigpt checkpoint to score (repeatable)")
    models.add_argument("--weights", action="append", type=cli.non_empty, default=[],
                        help="GPT-2 weights to score: a size (gpt2, gpt2-medium, ...: downloaded) or a safetensors "
                             "file or folder in Hugging Face's layout (repeatable)")
    models.add_argument("--pretrain-steps", type=cli.positive_int, default=350,
                        help="steps of the pretrained model trained here without out/ch06/ckpt.pt (default 350, "
                             "chapter 6's default run)")
    models.add_argument("--sft-steps", type=cli.positive_int, default=100,
                        help="steps of the instruction model trained here without out/ch09/ckpt.pt (default 100)")
    tasks = p.add_argument_group("tasks")
    tasks.add_argument("--task", action="append", type=cli.non_empty, default=[],
                       help=f"a task to score (repeatable; default: {', '.join(DEFAULT_TASKS)}); bundled: "
                            f"{', '.join(sorted(BUNDLED))}; downloaded: hellaswag, arc-easy, arc-challenge, mmlu, ceval")
    tasks.add_argument("--data", type=cli.non_empty, help="a local copy of the --task's data (file or folder)")
    tasks.add_argument("--split", type=cli.non_empty, help="the split to score (default: the task's usual one)")
    tasks.add_argument("--shots", type=cli.non_negative_int, default=None,
                       help="solved examples before each letter question (default 5; dropped oldest first to fit)")
    tasks.add_argument("--limit", type=cli.positive_int, help="score only the first N items of each task")
    tasks.add_argument("--text", action="append", type=cli.non_empty, default=[],
                       help="a UTF-8 text file to measure bits per byte and perplexity on (repeatable; default: the "
                            "end of the bundled stories that chapter 6 holds out, and the first 5,000 characters of "
                            "data/chinese/heldout.txt)")
    tasks.add_argument("--stride", type=cli.positive_int,
                       help="sliding-window step for long texts (default half the model's context)")
    tasks.add_argument("--max-answers", type=cli.non_negative_int, default=60,
                       help="test requests an instruction model answers (default 60; 0: none)")
    judge = p.add_argument_group("optional judge (a local Ollama server, never required)")
    judge.add_argument("--judge", action="store_true",
                       help="grade the answers with a local Ollama model, and compare two models' answers")
    judge.add_argument("--judge-model", type=cli.non_empty, default="llama3.2", help="Ollama model name")
    judge.add_argument("--judge-url", type=cli.non_empty, default=OLLAMA_CHAT_URL, help="a localhost chat URL")
    p.add_argument("--batch-size", type=cli.positive_int, default=16, help="requests per forward pass")
    p.add_argument("--out", type=cli.output_folder, default="out/ch12", help="output folder (default out/ch12)")
    p.add_argument("--threads", type=cli.positive_int, help="CPU threads (default: torch's, one per core; 1 is faster on a busy machine)")
    p.add_argument("--device", type=cli.device, default="auto", help="auto (cuda > cpu), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=1337, help="seed of the models trained here (default 1337, chapter 6's)")
    return p


def check_args(parser: cli.ArgumentParser, args: argparse.Namespace) -> None:
    """What no single option's type can see, checked before anything is loaded or trained."""
    known = task_names()
    for name in args.task:
        if name not in known:
            parser.error(f"argument --task: unknown task {name!r}; expected one of {', '.join(known)}")
    if args.data and len(args.task) != 1:
        parser.error("argument --data: give exactly one --task whose data it is")
    for path in args.checkpoint + args.text:
        if not Path(path).is_file():
            parser.error(f"{path}: no such file")
    try:
        check_local_url(args.judge_url)
    except ValueError as error:
        parser.error(f"argument --judge-url: {error}")
    args.out = Path(args.out)


# ------------------------------------------------------------------------------------------------ the models

def shown(path: Path) -> str:
    """A path as the learner would type it: relative to the repository when it is inside."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def earlier_run(path: Path, key: str, value: int, device) -> GPTModel | None:
    """The model a previous run of this script saved at `path`, if its extra[key] is `value`; else None."""
    if not path.is_file():
        return None
    stored = load_checkpoint(path)
    if (stored.get("extra") or {}).get(key) != value:
        return None
    return model_from_checkpoint(stored, device, path)[0]


def short_pretrained_model(args, tokenizer) -> tuple[GPTModel, str]:
    """What chapter 6's default run trains (its tiny preset on the bundled stories), without its evaluations."""
    path = args.out / "pretrained" / "ckpt.pt"
    earlier = earlier_run(path, "steps", args.pretrain_steps, args.device)
    if earlier is not None:
        return earlier, f"trained by an earlier run ({path})"
    print(f"No {shown(CHAPTER6_CHECKPOINT)}: pretraining chapter 6's tiny GPT on the bundled stories first "
          f"({args.pretrain_steps} steps of its default run).")
    preset = PRESETS["tiny"]
    overrides = dict(preset["model"])
    torch.manual_seed(args.seed)
    model = GPTModel(GPTConfig.preset(overrides.pop("size"), **overrides)).to(args.device)
    context = model.cfg.context_length
    train_ids, _ = split_ids(join_documents(load_stories(), tokenizer), 0.1)
    settings = dict(preset["train"], max_steps=args.pretrain_steps, eval_every=0, sample_every=0, checkpoint_every=0)
    config = TrainConfig(**settings, log_every=25, out_dir=str(path.parent), seed=args.seed)
    train(model, WindowBatches(GPTDataset(train_ids, context, context), preset["batch_size"], seed=args.seed), None,
          config, tokenizer=tokenizer, extra={"chapter": 12, "steps": args.pretrain_steps})
    return model.eval(), f"{args.pretrain_steps} steps of chapter 6's recipe here ({path})"


def short_instruction_model(args, base: GPTModel, tokenizer) -> tuple[GPTModel, str]:
    """Chapter 9's finetuning of the pretrained model on the bundled instructions, shortened."""
    path = args.out / "instruction" / "ckpt.pt"
    earlier = earlier_run(path, "sft_steps", args.sft_steps, args.device)
    if earlier is not None:
        return earlier, f"finetuned by an earlier run ({path})"
    print(f"No {shown(CHAPTER9_CHECKPOINT)}: finetuning it on the bundled instructions "
          f"({args.sft_steps} steps of chapter 9's finetuning).")
    model = copy.deepcopy(base).train()
    splits = load_splits()
    datasets = [InstructionDataset(splits[name], tokenizer, "alpaca", model.cfg.context_length)
                for name in ("train", "validation")]
    config = TrainConfig(max_steps=args.sft_steps, learning_rate=3e-3, min_lr=3e-4, warmup_steps=15, eval_every=0,
                         log_every=25, out_dir=str(path.parent), seed=args.seed)
    finetune(model, *datasets, config, batch_size=8, seed=args.seed,
             extra={"chapter": 12, "style": "alpaca", "lora": None, "sft_steps": args.sft_steps})
    return model.eval(), f"the model above finetuned {args.sft_steps} steps here ({path})"


def checkpoint_model(path: str, device) -> dict:
    stored = load_checkpoint(path)
    model, tokenizer = model_from_checkpoint(stored, device, path)
    if not isinstance(model, GPTModel):
        raise InputError(f"{path} holds a {type(model).__name__}, not a language model: chapter 12 scores the "
                         f"probabilities a GPT gives to text")
    style = (stored.get("extra") or {}).get("style")
    return dict(name=Path(path).parent.name or path, model=model, tokenizer=tokenizer, style=style,
                source=f"the checkpoint {path}")


def models_to_score(args) -> list[dict]:
    """Each model as {name, model, tokenizer, style (an instruction model's prompt style, or None), source}."""
    chosen = [checkpoint_model(path, args.device) for path in args.checkpoint]
    for weights in args.weights:
        chosen.append(dict(name=Path(weights).name, model=load_gpt2(weights, device=args.device).eval(),
                           tokenizer=gpt2_tiktoken_encoding(), style=None, source=f"GPT-2 weights {weights}"))
    if chosen:
        return chosen
    tokenizer = gpt2_tiktoken_encoding()
    torch.manual_seed(args.seed)
    overrides = dict(PRESETS["tiny"]["model"])
    random_model = GPTModel(GPTConfig.preset(overrides.pop("size"), **overrides)).to(args.device).eval()
    chosen.append(dict(name="random init", model=random_model, tokenizer=tokenizer, style=None,
                       source="chapter 4's tiny GPT, untrained"))
    if CHAPTER6_CHECKPOINT.is_file():
        chapter6 = checkpoint_model(str(CHAPTER6_CHECKPOINT), args.device)
    else:
        model, source = short_pretrained_model(args, tokenizer)
        chapter6 = dict(model=model, tokenizer=tokenizer, style=None, source=source)
    chosen.append(dict(chapter6, name="chapter 6 (pretrained)"))
    if CHAPTER9_CHECKPOINT.is_file():
        chapter9 = checkpoint_model(str(CHAPTER9_CHECKPOINT), args.device)
    else:
        model, source = short_instruction_model(args, chapter6["model"], chapter6["tokenizer"])
        chapter9 = dict(model=model, tokenizer=chapter6["tokenizer"], style="alpaca", source=source)
    chosen.append(dict(chapter9, name="chapter 9 (instructions)", style=chapter9["style"] or "alpaca"))
    return chosen


# -------------------------------------------------------------------------------------------- what is scored

def held_out_texts(args) -> dict[str, str]:
    """{name: text} for bits per byte: the --text files, or the end of the stories chapter 6 holds out (its split)
    and the held-out Chinese of chapter 11."""
    texts = {}
    if not args.text:
        tokenizer = gpt2_tiktoken_encoding()
        _, val_ids = split_ids(join_documents(load_stories(), tokenizer), 0.1)
        texts["held-out stories"] = tokenizer.decode(val_ids)
        if CHINESE_HELDOUT.is_file():
            # GPT-2's vocabulary spends about two tokens on a Chinese character, and each predicted token costs the
            # 50,257-wide output head: the first few thousand characters give a steady bits-per-byte for less.
            texts["held-out Chinese"] = CHINESE_HELDOUT.read_text(encoding="utf-8")[:CHINESE_CHARACTERS]
    for path in args.text:
        try:
            texts[Path(path).name] = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    return texts


def tasks_to_score(args) -> list:
    names = args.task or list(DEFAULT_TASKS)
    return [load_task(name, data=args.data, split=args.split) for name in names]


def score_model(entry: dict, tasks: list, texts: dict[str, str], args, items_file) -> dict:
    """Everything measured for one model: {"texts": {...}, "tasks": {...}}; each item's scores go to items_file."""
    model, tokenizer = entry["model"], entry["tokenizer"]
    card = {"source": entry["source"], "texts": {}, "tasks": {}}
    for name, text in texts.items():
        result = text_perplexity(model, tokenizer, text, stride=args.stride, batch_size=args.batch_size)
        card["texts"][name] = dict(bits_per_byte=result.bits_per_byte, perplexity=result.perplexity,
                                   tokens=result.tokens, bytes=result.num_bytes, stride=result.stride)
    for task in tasks:
        shots = args.shots if args.shots is not None else (5 if task.kind == "letter" else 0)
        result = score_task(model, tokenizer, task, shots=shots, limit=args.limit, batch_size=args.batch_size)
        card["tasks"][task.name] = dict(
            kind=task.kind, items=len(result.items), chance=result.chance, shots_asked=shots,
            shots_used=sum(i.shots for i in result.items) / len(result.items),
            truncated=sum(i.truncated for i in result.items),
            **{rule: result.accuracy(rule) for rule in result.rules})
        for item in result.items:
            items_file.write(json.dumps(dict(model=entry["name"], task=task.name, item=item.index,
                                             logprobs=item.logprobs, prediction=item.prediction,
                                             prediction_norm=item.prediction_norm, gold=item.gold,
                                             shots=item.shots, truncated=item.truncated)) + "\n")
    return card


def answer_requests(entry: dict, records: list, args) -> tuple[list[str], dict]:
    answers = generate_responses(entry["model"], entry["tokenizer"], records, entry["style"], max_new_tokens=48,
                                 batch_size=args.batch_size, device=args.device)
    return answers, score_generations(records, answers)


def judge_answers(answered: dict[str, list[str]], records: list, args) -> dict:
    problem = ollama_status(args.judge_url, args.judge_model)
    if problem:
        print(f"No judge: {problem}")
        return {}
    verdicts = {}
    for name, answers in answered.items():
        grades = [g for g in judge_with_ollama(records, answers, args.judge_model, args.judge_url) if g is not None]
        verdicts[name] = dict(mean_grade=sum(grades) / len(grades) if grades else None, graded=len(grades))
    if len(answered) >= 2:
        (a, answers_a), (b, answers_b) = list(answered.items())[:2]
        shares = [s for s in compare_with_ollama(records, answers_a, answers_b, args.judge_model, args.judge_url)
                  if s is not None]
        verdicts[f"{a} vs {b}"] = dict(share_for_first=sum(shares) / len(shares) if shares else None,
                                       compared=len(shares))
    return verdicts


# ------------------------------------------------------------------------------------------- the report card

def headline(task_card: dict) -> str:
    """The rule a task is usually reported by: acc_norm for completion tasks (HellaSwag's), acc for letter tasks."""
    return "acc_norm" if task_card["kind"] == "completion" else "acc"


def percent(value: tuple[float, float, float]) -> str:
    accuracy, low, high = value
    return f"{100 * accuracy:5.1f}% [{100 * low:4.1f}–{100 * high:4.1f}]"


def print_report(cards: dict[str, dict]) -> None:
    names = list(cards)
    width = 24
    print("\nReport card: accuracy with its 95% interval (Wilson), and what guessing scores.")
    print(f"{'':30}" + "".join(f"{n[:width]:>{width + 2}}" for n in names))
    first = cards[names[0]]
    for task, task_card in first["tasks"].items():
        shots = f", {task_card['shots_used']:.1f} of {task_card['shots_asked']} shots" if task_card["shots_asked"] \
            else ""
        print(f"{task} ({task_card['kind']}, {task_card['items']} items{shots}), chance "
              f"{100 * task_card['chance']:.1f}%")
        for rule in ("acc", "acc_norm", "acc_bytes"):
            if rule in task_card:
                print(f"  {rule:28}" + "".join(f"{percent(cards[n]['tasks'][task][rule]):>{width + 2}}"
                                               for n in names))
    print("Bits per byte (lower is better; perplexity in brackets):")
    for text in first["texts"]:
        print(f"  {text:28}" + "".join(
            f"{cards[n]['texts'][text]['bits_per_byte']:>{width - 10}.3f} ({cards[n]['texts'][text]['perplexity']:>9.4g})"
            for n in names))
    answered = [n for n in names if "answers" in cards[n]]
    for name in answered:
        scores = cards[name]["answers"]
        parts = [f"{metric} {100 * v[0]:.1f}% [{100 * v[1]:.1f}–{100 * v[2]:.1f}]" for metric, v in scores.items()
                 if v is not None and metric != "bleu"]
        bleu = scores["bleu"]
        print(f"{name}'s answers to {cards[name]['answered']} test requests: " + ", ".join(parts) +
              f", BLEU {bleu[0]:.1f} [{bleu[1]:.1f}–{bleu[2]:.1f}]")
    print("Where two models' intervals overlap, the test set is too small to say which is better.")


def plot_report(cards: dict[str, dict], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(cards)
    tasks = list(cards[names[0]]["tasks"])
    texts = list(cards[names[0]]["texts"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [max(len(tasks), 1),
                                                                                            max(len(texts), 1)]})
    width = 0.8 / len(names)
    for m, name in enumerate(names):
        values, errors = [], [[], []]
        for task in tasks:
            card = cards[name]["tasks"][task]
            accuracy, low, high = card[headline(card)]
            values.append(100 * accuracy)
            errors[0].append(100 * (accuracy - low))
            errors[1].append(100 * (high - accuracy))
        left.bar([t + m * width for t in range(len(tasks))], values, width, yerr=errors, capsize=3, label=name)
        right.bar([t + m * width for t in range(len(texts))],
                  [cards[name]["texts"][text]["bits_per_byte"] for text in texts], width, label=name)
    for t, task in enumerate(tasks):
        chance = 100 * cards[names[0]]["tasks"][task]["chance"]
        left.plot([t - width / 2, t + 0.8 - width / 2], [chance, chance], "k--", linewidth=1)
    left.set_xticks([t + 0.4 - width / 2 for t in range(len(tasks))],
                    [f"{task}\n({headline(cards[names[0]]['tasks'][task])})" for task in tasks], fontsize=8)
    left.set_ylabel("accuracy (%), 95% interval; dashed: chance")
    left.set_ylim(0, 100)
    left.legend(fontsize=8)
    right.set_xticks([t + 0.4 - width / 2 for t in range(len(texts))], texts, fontsize=8)
    right.set_ylabel("bits per byte (lower is better)")
    fig.suptitle("Chapter 12: the report card")
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- the chapter

def run(args) -> None:
    start = time.time()
    args.device = pick_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        # torch's default (a thread per core) is fastest on an idle machine; on a busy one a single thread is
        # (minigpt/speed.py's cpu_threads explains why), so this is the user's call.
        torch.set_num_threads(args.threads)
    tasks = tasks_to_score(args)          # bad task files are reported before any model is trained
    for task in tasks:
        print(f"Task {task.name}: {task.kind}, {len(task.items)} items, chance {100 * task.chance:.1f}%"
              + (f", {len(task.shots)} dev items for shots" if task.shots else ""))
    texts = held_out_texts(args)
    models = models_to_score(args)
    records = load_splits()["test"][:args.max_answers]
    cards, answered = {}, {}
    with atomic_open(args.out / "items.jsonl", "w", encoding="utf-8") as items_file:
        for entry in models:
            print(f"\nScoring {entry['name']} ({entry['source']}).")
            cards[entry["name"]] = score_model(entry, tasks, texts, args, items_file)
            if entry["style"] and records:
                answers, scores = answer_requests(entry, records, args)
                cards[entry["name"]].update(answers=scores, answered=len(records))
                answered[entry["name"]] = answers
    if args.judge and answered:
        judged = judge_answers(answered, records, args)
        if judged:
            cards["judge"] = judged
    report = {k: v for k, v in cards.items() if k != "judge"}
    print_report(report)
    for name, answers in answered.items():
        print(f"\n{name}, three of its answers:")
        for record, answer in list(zip(records, answers))[:3]:
            request = record["instruction"] + (f" [{record['input']}]" if record["input"] else "")
            print(f"  request:   {request}\n  reference: {record['output']}\n  answer:    {answer}")
    if "judge" in cards:
        print(f"Judge ({args.judge_model}): {json.dumps(cards['judge'])}")
    write_text_atomic(args.out / "report.json", json.dumps(cards, indent=2, ensure_ascii=False) + "\n")
    figure = plot_report(report, args.out / "report_card.png")
    print(f"\nWrote {args.out / 'items.jsonl'} (every item's log-likelihoods), {args.out / 'report.json'} and "
          f"{figure}. Took {time.time() - start:.0f} s.")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    with cli.user_errors(parser.prog):
        try:
            run(args)
        except TrainingInterrupted as stop:   # only the short models trained here: nothing to resume, rerun
            print(f"Stopped by Ctrl-C at step {stop.step} of a model trained here; run the script again to "
                  f"start it over.", file=sys.stderr)
            raise SystemExit(130)


if __name__ == "__main__":
    main()
