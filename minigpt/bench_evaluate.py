"""Chapter 12 benchmark: how fast multiple-choice items are scored, minigpt against a plain transformers loop.

    python -m minigpt.bench_evaluate             # GPT-2 small shape; writes minigpt/EVALUATION_BENCHMARKS.md
    python -m minigpt.bench_evaluate --size tiny --items 100 --repeats 5
    python -m minigpt.bench_evaluate --lm-eval-python /work/venv-lmeval/bin/python   # lm-evaluation-harness too
    python -m minigpt.bench_evaluate --quick --out /tmp/note.md                       # seconds: a smoke test

One GPT-2-shaped model with random weights is made by transformers (GPT2LMHeadModel), saved with save_pretrained
and loaded into minigpt with minigpt.gpt2.load_gpt2: both sides hold the same weights. Speed does not depend on
the weights' values, and random weights still give every choice a different log-likelihood, so the predictions
can be compared too. Two synthetic task sets are generated (seeded) from English text that every Python ships
(pydoc's help topics): completion items like HellaSwag's (a context of 40-80 tokens, four endings of 10-30 tokens,
zero-shot) and letter items like MMLU's (5-shot prompts of about 300-600 tokens, four choices " A" .. " D").

Timed, on the same items, each from the item's text to its choices' log-likelihoods (prompt building and
tokenisation included):
  minigpt, score_task              minigpt.evaluate.score_task: padded batches, each context run once (auto)
  minigpt, share_context=False     the same with padded batches only (every choice runs its whole context)
  transformers, plain loop         for each item, for each choice: one forward of context + choice, as one would
                                   write it by hand: model(torch.tensor([ids])).logits, log_softmax, sum
  transformers, padded batches     the same requests, right-padded into batches of --batch-size (optional)
  lm-eval HFLM.loglikelihood       lm-evaluation-harness's Hugging Face backend on the same strings, in another
                                   Python (--lm-eval-python), where it is installed
Every method gets the same token ids (minigpt.evaluate.fit_shots, which cuts pairs as the harness does) and the
same cut to the model's context. The log-likelihoods of every method are compared with the plain loop's (largest
difference, same predictions), so the comparison is of equal work. Not a test: timings depend on the machine
and its load; the median of --repeats interleaved runs is reported. Budget: at the GPT-2 small shape on one
thread of a busy 2-core CPU, one round of all five methods took about 10 s per completion item and 30 s per
letter item (the note's run: --items 20 --letter-items 6, about 20 minutes).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from minigpt import evaluate, tasks
from minigpt.bench_tokenizer import replace_section
from minigpt.cli import ArgumentParser, positive_int, user_errors
from minigpt.files import write_text_atomic
from minigpt.tasks import ChoiceItem, Task
from minigpt.tokenizer import gpt2_tiktoken_encoding

SIZES = {   # transformers' GPT2Config fields; "tiny" is minigpt's tiny preset's shape with GPT-2's 1,024 positions
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12),
    "tiny": dict(n_layer=4, n_embd=128, n_head=4),
}
SIZE_TITLES = {"gpt2": "GPT-2 small shape (124M parameters)",
               "tiny": "tiny shape (4 layers, width 128, 4 heads, 1,024 positions)"}
REFERENCE = "transformers, plain loop"   # every other method's log-likelihoods are compared with this one's
SHOTS = {"completion": 0, "letter": 5}
SUBJECTS = ["high_school_physics", "world_religions", "computer_security", "philosophy", "nutrition",
            "econometrics", "astronomy", "jurisprudence"]
WORKER_MARK = "@@bench_evaluate@@ "      # the lm-eval worker's answers on stdout start with this


# ------------------------------------------------------------------------------------------ models

def build_models(size: str, folder: Path, seed: int = 0):
    """(transformers GPT2LMHeadModel, minigpt GPTModel) with the same random weights, both in eval mode.

    The transformers model is made and saved to `folder` (model.safetensors, config.json); minigpt loads that file.
    """
    import transformers

    from minigpt.gpt2 import load_gpt2

    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_positions=1024, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     **SIZES[size])
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.save_pretrained(folder)
    return hf, load_gpt2(folder, quiet=True)


def hf_tokenizer_files(encoding, folder: Path) -> None:
    """Write GPT-2's tokenizer in Hugging Face's format into `folder`, from the ranks minigpt ships (offline).

    lm-evaluation-harness tokenizes strings itself with AutoTokenizer.from_pretrained(folder). A rank table holds
    the merges implicitly: token t of rank r is made by the last merge of byte-level BPE over t's bytes with the
    tokens of rank < r, and that merge's two halves are line r of GPT-2's merges.txt.
    """
    import tokenizers
    import transformers
    from tokenizers import decoders, models, pre_tokenizers

    ranks = {encoding.decode_single_token_bytes(i): i for i in range(encoding.n_vocab - 1)}
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    byte_char = {b: chr(b) for b in printable} | {b: chr(256 + k) for k, b in enumerate(others)}

    def spell(piece: bytes) -> str:
        return "".join(byte_char[b] for b in piece)

    merges = []
    for token, rank in sorted(ranks.items(), key=lambda pair: pair[1]):
        if len(token) < 2:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = min((ranks.get(parts[i] + parts[i + 1], rank), i) for i in range(len(parts) - 1))
            if best[0] >= rank:
                break
            parts[best[1]:best[1] + 2] = [parts[best[1]] + parts[best[1] + 1]]
        if len(parts) == 2:
            merges.append((spell(parts[0]), spell(parts[1])))
    vocab = {spell(token): rank for token, rank in ranks.items()}
    model = tokenizers.Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    model.add_special_tokens(["<|endoftext|>"])
    wrapped = transformers.PreTrainedTokenizerFast(tokenizer_object=model, bos_token="<|endoftext|>",
                                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    wrapped.save_pretrained(folder)


# ------------------------------------------------------------------------------------------ synthetic items

def english_words() -> list[str]:
    """The words of pydoc's help topics (the language reference in English), in order: text every Python ships."""
    from pydoc_data.topics import topics

    return " ".join(topics[name] for name in sorted(topics)).split()


class _Spans:
    """Runs of consecutive words from the text, cut to a number of tokens."""

    def __init__(self, encoding, rng: np.random.Generator):
        self.words, self.encoding, self.rng = english_words(), encoding, rng

    def take(self, low: int, high: int, start: int | None = None) -> tuple[str, int]:
        """(text of `low`..`high` tokens, the index after its last word), from word `start` (default: anywhere;
        a span that comes out shorter than `low`, where one long word would overshoot, is drawn again)."""
        while True:
            target = int(self.rng.integers(low, high + 1))
            i = int(self.rng.integers(0, len(self.words) - 400)) if start is None else start
            end = i + 1
            while len(self.encoding.encode_ordinary(" ".join(self.words[i:end + 1]))) <= target:
                end += 1
            text = " ".join(self.words[i:end])
            if start is not None or len(self.encoding.encode_ordinary(text)) >= low:
                return text, end


def completion_task(encoding, count: int, seed: int = 0, context: tuple[int, int] = (40, 80),
                    ending: tuple[int, int] = (10, 30)) -> Task:
    """HellaSwag-like items: a context, its true continuation and three endings taken from elsewhere."""
    spans = _Spans(encoding, np.random.default_rng(seed))
    items = []
    for n in range(count):
        query, after = spans.take(*context)
        true, _ = spans.take(*ending, start=after)
        answer = int(spans.rng.integers(4))
        choices = [spans.take(*ending)[0] for _ in range(3)]
        choices.insert(answer, true)
        items.append(ChoiceItem(query, tuple(choices), answer, source=f"synthetic:{n + 1}"))
    return Task("synthetic completion", "completion", items)


def letter_task(encoding, count: int, seed: int = 0, question: tuple[int, int] = (15, 45),
                option: tuple[int, int] = (2, 12)) -> Task:
    """MMLU-like items in eight subjects, five dev items per subject for the 5-shot prompts."""
    spans = _Spans(encoding, np.random.default_rng(seed + 1))

    def item(subject: str, label: str) -> ChoiceItem:
        text = spans.take(*question)[0].rstrip(".,;:") + "?"
        return ChoiceItem(text, tuple(spans.take(*option)[0] for _ in range(4)), int(spans.rng.integers(4)),
                          subject=subject, source=label)

    shots = [item(s, f"synthetic dev {s}:{k + 1}") for s in SUBJECTS for k in range(SHOTS["letter"])]
    items = [item(SUBJECTS[n % len(SUBJECTS)], f"synthetic:{n + 1}") for n in range(count)]
    return Task("synthetic letter", "letter", items, shots=shots,
                description="The following are multiple choice questions (with answers) about {subject}.\n\n")


def bundled_tasks(count: int) -> dict[str, Task]:
    """The bundled sets (data/eval) through minigpt.tasks.load_task: the stories (completion) and facts-en (letter)."""
    found = {}
    for name in ("stories", "facts-en"):
        task = tasks.load_task(name)
        task.items = task.items[:count]
        found[task.kind] = task
    return found


# ------------------------------------------------------------------------------------------ the methods

def fitted_requests(encoding, task: Task, context_length: int) -> list[list[tuple[list[int], list[int]]]]:
    """Each item's (context ids, choice ids) requests, as score_task builds them (shots that fit, harness cut)."""
    return [evaluate.fit_shots(encoding, item, task, SHOTS[task.kind], context_length)[0] for item in task.items]


def _window(context: list[int], choice: list[int], context_length: int) -> list[int]:
    """Context + choice without its last token, cut from the left to the context length (as the harness does)."""
    return (context + choice)[-(context_length + 1):][:-1]


@torch.no_grad()
def transformers_loop(hf, encoding, task: Task) -> list[list[float]]:
    """The plain loop: one forward per item and choice, the log-softmax of every position, the choice's summed."""
    length = hf.config.n_positions
    results = []
    for requests in fitted_requests(encoding, task, length):
        scores = []
        for context, choice in requests:
            ids = _window(context, choice, length)
            logits = hf(torch.tensor([ids])).logits[0]
            logprobs = torch.log_softmax(logits[len(ids) - len(choice):], dim=-1)
            scores.append(float(logprobs[torch.arange(len(choice)), torch.tensor(choice)].sum()))
        results.append(scores)
    return results


@torch.no_grad()
def transformers_batched(hf, encoding, task: Task, batch_size: int) -> list[list[float]]:
    """The same requests right-padded into batches (longest first), full logits: batching, nothing else."""
    length = hf.config.n_positions
    fitted = fitted_requests(encoding, task, length)
    flat = [(i, j, _window(c, x, length), x) for i, requests in enumerate(fitted) for j, (c, x) in enumerate(requests)]
    flat.sort(key=lambda r: -len(r[2]))
    results = [[0.0] * len(requests) for requests in fitted]
    for start in range(0, len(flat), batch_size):
        batch = flat[start:start + batch_size]
        inputs = torch.zeros(len(batch), len(batch[0][2]), dtype=torch.long)
        for row, (_, _, ids, _) in enumerate(batch):
            inputs[row, :len(ids)] = torch.tensor(ids)
        logprobs = torch.log_softmax(hf(inputs).logits, dim=-1)
        for row, (i, j, ids, choice) in enumerate(batch):
            positions = torch.arange(len(ids) - len(choice), len(ids))
            results[i][j] = float(logprobs[row, positions, torch.tensor(choice)].sum())
    return results


def minigpt_scores(model, encoding, task: Task, batch_size: int, share_context: bool | None) -> list[list[float]]:
    result = evaluate.score_task(model, encoding, task, shots=SHOTS[task.kind], batch_size=batch_size,
                                 share_context=share_context, progress=False)
    return [item.logprobs for item in result.items]


def methods(model, hf, encoding, batch_size: int, hf_batched: bool) -> dict[str, Callable[[Task], list]]:
    runs = {"minigpt, score_task": lambda t: minigpt_scores(model, encoding, t, batch_size, None),
            "minigpt, share_context=False": lambda t: minigpt_scores(model, encoding, t, batch_size, False),
            REFERENCE: lambda t: transformers_loop(hf, encoding, t)}
    if hf_batched:
        runs["transformers, padded batches"] = lambda t: transformers_batched(hf, encoding, t, batch_size)
    return runs


# ------------------------------------------------------------------------------------------ lm-evaluation-harness

def _prompts(task: Task, context_length: int, encoding) -> list[tuple[str, str]]:
    """Each request as the strings the harness gets: (the fitted prompt, the continuation), item by item."""
    pairs = []
    for item in task.items:
        _, used, _ = evaluate.fit_shots(encoding, item, task, SHOTS[task.kind], context_length)
        chosen = tasks.shots_for(item, task, SHOTS[task.kind])
        context = tasks.context_text(item, task, chosen[len(chosen) - used:])
        pairs += [(context, continuation) for continuation in tasks.continuations(item, task)]
    return pairs


class LmEvalWorker:
    """lm-evaluation-harness's HFLM in another Python (its own venv), answering one JSON line per command.

    Kept out of this Python on purpose: lm-eval brings datasets, evaluate, pandas and more, and stays out of
    requirements.txt. The worker is this module run with --lm-eval-worker; it needs torch and transformers.
    """

    def __init__(self, python: str, folder: Path, batch_size: int, threads: int):
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
                   HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false")
        self.log = folder.parent / "lm_eval_worker.log"   # its progress bars and warnings, and why it stopped
        with open(self.log, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen([python, "-m", "minigpt.bench_evaluate", "--lm-eval-worker",
                                             str(folder), "--batch-size", str(batch_size), "--threads", str(threads)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                            env=env)
        self.hello = self._answer()

    def _answer(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(WORKER_MARK):
                return json.loads(line[len(WORKER_MARK):])
        status = self.process.wait()
        last = [line for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"the lm-eval worker stopped (exit status {status}): {last[-1] if last else 'no message'}")

    def ask(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if "error" in answer:
            raise RuntimeError(f"lm-eval worker: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _worker(folder: str, batch_size: int, threads: int) -> None:
    """--lm-eval-worker: load HFLM on `folder`, then answer commands read from stdin, one JSON line each."""
    torch.set_num_threads(threads)
    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    def say(answer: dict) -> None:
        print(WORKER_MARK + json.dumps(answer), flush=True)

    lm = HFLM(pretrained=folder, backend="causal", device="cpu", dtype="float32", batch_size=batch_size,
              max_length=1024)
    say({"lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else version("lm_eval"),
         "python": sys.executable})
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["do"] == "loglikelihood":
                requests = [Instance("loglikelihood", {}, (c, x), k) for k, (c, x) in enumerate(command["pairs"])]
                start = time.perf_counter()
                scores = lm.loglikelihood(requests, disable_tqdm=True)
                say({"seconds": time.perf_counter() - start, "logprobs": [s for s, _ in scores],
                     "ids": [list(lm._encode_pair(c, x)) for c, x in command["pairs"][:command.get("ids", 0)]]})
            elif command["do"] == "task":
                say(_worker_task(lm, command["jsonl"], command["folder"]))
        except Exception as error:   # noqa: BLE001 - reported to the benchmark, which writes it in the note
            say({"error": f"{type(error).__name__}: {error}"})


def _worker_task(lm, jsonl: str, folder: str) -> dict:
    """A custom task (YAML over a local JSONL file) run by lm_eval.simple_evaluate, offline."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    Path(folder, "bench_completion.yaml").write_text(
        "task: bench_completion\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {jsonl}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{{{query}}}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{answer}}'\ntarget_delimiter: ' '\n"
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n", encoding="utf-8")
    start = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=["bench_completion"], task_manager=TaskManager(include_path=folder),
                          num_fewshot=0, log_samples=False)
    seconds = time.perf_counter() - start
    metrics = out["results"]["bench_completion"]
    return {"seconds": seconds, "acc": metrics.get("acc,none"), "acc_norm": metrics.get("acc_norm,none")}


# ------------------------------------------------------------------------------------------ measuring

def agreement(scores: list[list[float]], reference: list[list[float]], task: Task) -> dict:
    """Largest |difference| of the log-likelihoods, and how many items get the same acc / acc_norm prediction."""
    diff = max(abs(a - b) for s, r in zip(scores, reference) for a, b in zip(s, r))

    def picks(values, item):
        lengths = [max(len(t), 1) for t in evaluate.choice_texts(item, task)]
        return evaluate.argmax(values), evaluate.argmax([v / n for v, n in zip(values, lengths)])

    same = [(a == b, c == d) for s, r, item in zip(scores, reference, task.items)
            for (a, c), (b, d) in [(picks(s, item), picks(r, item))]]
    return {"max_abs_diff": diff, "same_acc": sum(x for x, _ in same), "same_acc_norm": sum(y for _, y in same),
            "items": len(task.items)}


def _load() -> tuple[float, float, float]:
    return os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3


def measure(task: Task, runs: dict[str, Callable], repeats: int, worker: LmEvalWorker | None,
            pairs: list[tuple[str, str]], warmup: bool = True) -> dict:
    """Warm every method up on one item, then `repeats` rounds in which each method scores all items once
    (the order rotates from round to round, so a busy spell of the shared machine does not hit one method only)."""
    names = list(runs) + (["lm-eval HFLM.loglikelihood"] if worker else [])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, list] = {}
    per_item = [len(item.choices) for item in task.items]
    if warmup:
        warm = Task(task.name, task.kind, task.items[:1], task.shots, description=task.description)
        for fn in runs.values():
            fn(warm)
        if worker:
            worker.ask(do="loglikelihood", pairs=pairs[:per_item[0]])
    for round_ in range(repeats):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            if name in runs:
                start = time.perf_counter()
                scores[name] = runs[name](task)
                seconds[name].append(time.perf_counter() - start)
            else:
                answer = worker.ask(do="loglikelihood", pairs=pairs, ids=len(pairs) if round_ == 0 else 0)
                seconds[name].append(answer["seconds"])
                flat = iter(answer["logprobs"])
                scores[name] = [[next(flat) for _ in range(n)] for n in per_item]
                if round_ == 0:
                    scores["_lm_eval_ids"] = answer["ids"]
        print(f"  {task.kind} round {round_ + 1}/{repeats}: " +
              ", ".join(f"{name} {len(task.items) / seconds[name][-1]:.2f} items/s" for name in order), flush=True)
    rows = []
    for name in names:
        rate = [len(task.items) / s for s in seconds[name]]
        rows.append({"method": name, "items_per_s": statistics.median(rate), "low": min(rate), "high": max(rate),
                     "seconds": statistics.median(seconds[name]),
                     **agreement(scores[name], scores[REFERENCE], task)})
    reference = next(r for r in rows if r["method"] == REFERENCE)["items_per_s"]
    for row in rows:
        row["speedup"] = row["items_per_s"] / reference
    return {"rows": rows, "lm_eval_ids": scores.get("_lm_eval_ids")}


def task_shape(encoding, task: Task, context_length: int) -> dict:
    """Token counts of the items: contexts (the whole prompt), choices, and the tokens the plain loop runs."""
    fitted = fitted_requests(encoding, task, context_length)
    contexts = [len(requests[0][0]) for requests in fitted]
    choices = [len(x) for requests in fitted for _, x in requests]
    start = time.perf_counter()
    fitted_requests(encoding, task, context_length)
    return {"items": len(task.items), "context": (min(contexts), int(np.median(contexts)), max(contexts)),
            "choice": (min(choices), int(np.median(choices)), max(choices)),
            "loop_tokens": sum(len(c) + len(x) - 1 for requests in fitted for c, x in requests),
            "tokenize_s": time.perf_counter() - start}


def _body(tokens: int, past: int, layers: int, width: int) -> int:
    """Multiply-adds of `tokens` new tokens through the blocks after `past` cached ones: 12·d² per token for the
    projections and the feed-forward, d per (query, key) pair twice (scores, weighted sum), causal."""
    pairs = tokens * past + tokens * (tokens + 1) // 2
    return layers * (12 * width * width * tokens + 2 * width * pairs)


def arithmetic(method: str, fitted: list, layers: int, width: int, vocab: int) -> int:
    """The multiply-adds a method does on the items' requests, padding left out (sorted batches pad little).

    What each skips: minigpt applies the output head (d × vocab per position) only where a choice token is
    predicted; score_task runs a shared context once (section 3 of minigpt/evaluate.py); lm-eval runs requests
    that share context + continuation[:-1] once (its one-token-continuation cache, a letter item's four choices).
    The ratio to the plain loop's count is the speedup that skipped work alone would explain.
    """
    total = 0
    for requests in fitted:
        windows = [len(c) + len(x) - 1 for c, x in requests]
        if method == "minigpt, score_task" and (len(requests[0][0]) > sum(len(x) for _, x in requests)
                                                 / len(requests) or all(len(x) == 1 for _, x in requests)):
            context = len(requests[0][0])
            total += _body(context, 0, layers, width) + width * vocab
            for _, x in requests:
                total += _body(len(x) - 1, context, layers, width) + width * vocab * (len(x) - 1)
        elif method.startswith("minigpt"):
            total += sum(_body(w, 0, layers, width) + width * vocab * len(x) for w, (_, x) in zip(windows, requests))
        elif method.startswith("lm-eval"):
            groups: dict[tuple, int] = {}
            for w, (c, x) in zip(windows, requests):
                key = tuple(c + x[:-1])
                groups[key] = max(groups.get(key, 0), w)
            total += sum(_body(w, 0, layers, width) + width * vocab * w for w in groups.values())
        else:   # transformers: every position of every request through the blocks and the head
            total += sum(_body(w, 0, layers, width) + width * vocab * w for w in windows)
    return total


# ------------------------------------------------------------------------------------------ the note

def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines()
            if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        model = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores ({model}, {platform.system()}), shared with other jobs"


def versions() -> str:
    import transformers
    names = {"Python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
             "numpy": np.__version__}
    for package in ("tiktoken", "tokenizers"):
        try:
            names[package] = version(package)
        except PackageNotFoundError:
            pass
    return ", ".join(f"{k} {v}" for k, v in names.items())


def section(args, command: str, shapes: dict, results: dict, loads: list, lm_eval: dict) -> str:
    load = lambda x: "/".join(f"{v:.2f}" for v in x)   # noqa: E731
    lines = [f"## {SIZE_TITLES[args.size]}", "",
             f"Written by `{command}` on {time.strftime('%Y-%m-%d')}: {machine()}; {versions()}. "
             f"torch.set_num_threads({args.threads}) on every side (lm-eval's worker too). Load average (1/5/15 min) "
             f"{load(loads[0])} at the start, {load(loads[-1])} at the end. Median of {args.repeats} interleaved "
             f"rounds (low-high in brackets); batch size {args.batch_size}; fp32; random weights.", ""]
    for kind, shape in shapes.items():
        lines.append(f"- {kind}: {shape['items']} items, {SHOTS[kind]}-shot; prompt {shape['context'][0]}-"
                     f"{shape['context'][2]} tokens (median {shape['context'][1]}), choices {shape['choice'][0]}-"
                     f"{shape['choice'][2]} tokens (median {shape['choice'][1]}); the plain loop runs "
                     f"{shape['loop_tokens']:,} tokens; building the prompts and tokenizing them (fit_shots, "
                     f"tiktoken) takes {shape['tokenize_s'] * 1e3:.0f} ms of each method's time.")
    lines += ["", "items/s: median (low-high). Arithmetic: the plain loop's multiply-adds over the method's "
              "(bench_evaluate.arithmetic: what the method skips, not how fast its kernels are); speedup / "
              "arithmetic near 1 means the method gains by skipping work alone.", "",
              "| task kind | method | items/s | speedup vs plain loop | arithmetic vs plain loop | max abs Δ "
              "log-likelihood | same acc prediction | same acc_norm prediction |", "|---|---|---|---|---|---|---|---|"]
    for kind, result in results.items():
        for row in result["rows"]:
            norm = "n/a (one letter)" if kind == "letter" else f"{row['same_acc_norm']}/{row['items']}"
            delta = "reference" if row["method"] == REFERENCE else f"{row['max_abs_diff']:.1e}"
            lines.append(f"| {kind} | {row['method']} | {row['items_per_s']:.3g} ({row['low']:.3g}-{row['high']:.3g})"
                         f" | {row['speedup']:.2f}x | {row['arithmetic']:.2f}x | {delta} | {row['same_acc']}/"
                         f"{row['items']} | {norm} |")
    lines += ["", lm_eval.get("text", "lm-eval: not run (no --lm-eval-python)."), ""]
    return "\n".join(lines)


INTRODUCTION = """# Evaluation benchmarks (chapter 12)

How fast `minigpt.evaluate.score_task` scores multiple-choice items, beside a plain loop over transformers' GPT-2
and lm-evaluation-harness's Hugging Face backend, on the same weights and the same token ids. Written by
`python -m minigpt.bench_evaluate` (see its --help and docstring); each run replaces the section of its model size
and keeps the rest. Timings depend on the machine and its load: repeat before trusting a small difference.

The methods, each timed from the items' text to their choices' log-likelihoods:

- minigpt, score_task: padded batches; each context run once for all its choices (a KV cache), the output head
  applied only where a choice token is predicted.
- minigpt, share_context=False: the same padded batches and trimmed head, every choice with its whole context.
- transformers, plain loop: for each item and choice, `model(torch.tensor([ids])).logits`, log_softmax, the
  choice's positions summed: how one would write it by hand. The reference of every comparison.
- transformers, padded batches: the loop's requests right-padded into batches (full logits).
- lm-eval HFLM.loglikelihood: lm-evaluation-harness's Hugging Face backend, in its own venv, called directly on
  Instance requests holding the same prompt strings; it batches, and runs requests that share context +
  continuation[:-1] once (a letter item's four one-token choices).

All get the same items, prompts, token ids (minigpt.evaluate.fit_shots; lm-eval's own tokenization is checked
against it) and cut to the context; the largest log-likelihood difference to the plain loop and the number of equal
predictions show that the work is the same. Not measured: GPUs, bf16, real weights (speed does not depend on them),
generation tasks, and lm-eval's own task pipeline beyond one offline custom-task check.

lm-eval's venv, kept apart from minigpt's (it installed from the registry in about two minutes, about 760 MB:
datasets, pandas, scikit-learn and more; it is not in requirements.txt). lm-eval 0.4.13 brings torch and
transformers only with its `[hf]` extra, so they come from minigpt's venv through a .pth file, written before
accelerate (which HFLM imports) is installed so that pip finds torch there: both sides run the very same torch
and transformers.

    python3 -m venv /work/venv-lmeval && /work/venv-lmeval/bin/pip install lm-eval
    echo /work/venv/lib/python3.11/site-packages > /work/venv-lmeval/lib/python3.11/site-packages/minigpt_venv.pth
    /work/venv-lmeval/bin/pip install accelerate
    python -m minigpt.bench_evaluate --lm-eval-python /work/venv-lmeval/bin/python
"""


def head(note: str) -> str:
    """The note so far, or its introduction when there is none."""
    return note if note.strip() else INTRODUCTION


# ------------------------------------------------------------------------------------------ main

def run_lm_eval(worker: LmEvalWorker | None, tasks_: dict[str, Task], results: dict, encoding, tmp: Path,
                expected_ids: dict) -> dict:
    """The note's paragraph on lm-evaluation-harness: versions, token ids compared, the custom-task check."""
    if worker is None:
        return {}
    text = [f"lm-eval {worker.hello['lm_eval']} ran in a separate venv ({worker.hello['python']}), HFLM(pretrained="
            "<the saved folder>, backend='causal', device='cpu', dtype='float32', batch_size=--batch-size, "
            "max_length=1024), its `loglikelihood` called directly on Instance requests built from the same "
            "prompt strings; GPT-2's tokenizer was written into the folder from minigpt's rank file "
            "(data/gpt2.tiktoken) in Hugging Face's format, since the harness tokenizes strings itself."]
    for kind, result in results.items():
        ids = result.get("lm_eval_ids")
        if ids is not None:
            same = sum(list(map(list, a)) == list(map(list, b)) for a, b in zip(ids, expected_ids[kind]))
            text.append(f"Token ids of the {kind} requests: {same}/{len(ids)} identical to minigpt's "
                        "(fit_shots/encode_pair).")
    completion = tasks_.get("completion")
    if completion is not None:
        jsonl = tmp / "completion.jsonl"
        jsonl.write_text("".join(json.dumps({"query": i.query, "choices": list(i.choices), "answer": i.answer}) + "\n"
                                 for i in completion.items), encoding="utf-8")
        (tmp / "lm_eval_tasks").mkdir(exist_ok=True)
        try:
            answer = worker.ask(do="task", jsonl=str(jsonl), folder=str(tmp / "lm_eval_tasks"))
            text.append(f"A custom task (YAML, `dataset_path: json` over a local JSONL file of the completion items, "
                        f"`output_type: multiple_choice`) ran through `lm_eval.simple_evaluate` with "
                        f"HF_DATASETS_OFFLINE=1 in {answer['seconds']:.1f} s (once, dataset loading included): acc "
                        f"{answer['acc']:.4f}, acc_norm {answer['acc_norm']:.4f}, against minigpt's score_task "
                        f"{results['completion']['acc']:.4f} and {results['completion']['acc_norm']:.4f} on the same "
                        "items.")
        except RuntimeError as error:
            text.append(f"The custom-task check (a YAML task over a local JSONL file, offline) failed: {error}")
    return {"text": " ".join(text)}


def kind_list(text: str) -> list[str]:
    """argparse type: task kinds, comma-separated ("completion,letter")."""
    import argparse

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds or set(kinds) - set(SHOTS):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SHOTS)}, comma-separated; got {text!r}")
    return kinds


def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="gpt2", help="the model's shape (default gpt2: "
                        "GPT-2 small, 124M; tiny: 4 layers, width 128, 4 heads)")
    parser.add_argument("--items", type=positive_int, default=100, help="completion items (default 100)")
    parser.add_argument("--letter-items", type=positive_int, help="letter items (default: as --items); a 5-shot "
                        "letter item costs the plain loop about 6 times a completion item at GPT-2 small's shape")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed rounds; the median is reported")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads on every side (default 1: "
                        "fair on a shared machine, and what the note's numbers use)")
    parser.add_argument("--tasks", choices=["synthetic", "bundled"], default="synthetic",
                        help="synthetic items (default) or data/eval's through minigpt.tasks.load_task")
    parser.add_argument("--kinds", type=kind_list, default=list(SHOTS), help="which task kinds, comma-separated "
                        "(default completion,letter)")
    parser.add_argument("--hf-batched", type=kind_list, default=list(SHOTS), metavar="KINDS",
                        help="the task kinds on which transformers in padded batches runs (default both; on a CPU "
                        "its full logits make it slow, most of all on letter prompts)")
    parser.add_argument("--no-hf-batched", action="store_true", help="skip transformers in padded batches")
    parser.add_argument("--lm-eval-python", help="a Python with lm-eval installed (its own venv); "
                        "default: $MINIGPT_LM_EVAL_PYTHON, else lm-eval is not run")
    parser.add_argument("--out", default=str(Path(__file__).with_name("EVALUATION_BENCHMARKS.md")),
                        help="the Markdown note (default minigpt/EVALUATION_BENCHMARKS.md); the section of this "
                        "--size is replaced, others kept")
    parser.add_argument("--quick", action="store_true", help="tiny model, 3 completion and 2 short letter items, "
                        "1 round, no warm-up: a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm-eval-worker", metavar="FOLDER", help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.lm_eval_worker:
        _worker(args.lm_eval_worker, args.batch_size, args.threads)
        return {}
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return benchmark(args, argv)
    finally:
        torch.set_num_threads(threads)   # main() may run inside another program (the tests)


def benchmark(args, argv: list[str] | None) -> dict:
    if args.quick:
        args.size, args.items, args.letter_items, args.repeats = "tiny", 3, 2, 1
    kinds = args.kinds
    lm_python = args.lm_eval_python or os.environ.get("MINIGPT_LM_EVAL_PYTHON")
    command = "python -m minigpt.bench_evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    loads = [_load()]
    encoding = gpt2_tiktoken_encoding()
    with user_errors("bench_evaluate"), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        hf, model = build_models(args.size, folder, args.seed)
        context_length = hf.config.n_positions
        if args.tasks == "bundled":
            all_tasks = bundled_tasks(args.items)
        elif args.quick:   # short letter prompts (about 200 tokens): the code paths, not the sizes
            all_tasks = {"completion": completion_task(encoding, args.items, args.seed),
                         "letter": letter_task(encoding, args.letter_items, args.seed, (8, 16), (1, 4))}
        else:
            all_tasks = {"completion": completion_task(encoding, args.items, args.seed),
                         "letter": letter_task(encoding, args.letter_items or args.items, args.seed)}
        chosen = {kind: all_tasks[kind] for kind in kinds if kind in all_tasks}
        worker, lm_eval = None, {}
        if lm_python:
            hf_tokenizer_files(encoding, folder)
            try:
                worker = LmEvalWorker(lm_python, folder, args.batch_size, args.threads)
            except (OSError, RuntimeError) as error:
                lm_eval = {"text": f"lm-eval was asked for ({lm_python}) but did not start: {error}"}
                print(lm_eval["text"], file=sys.stderr)
        shapes, results, expected_ids = {}, {}, {}
        try:
            for kind, task in chosen.items():
                shapes[kind] = task_shape(encoding, task, context_length)
                print(f"{kind}: {shapes[kind]}", flush=True)
                pairs = _prompts(task, context_length, encoding) if worker else []
                expected_ids[kind] = [r for requests in fitted_requests(encoding, task, context_length)
                                      for r in requests]
                batched = kind in args.hf_batched and not args.no_hf_batched
                runs = methods(model, hf, encoding, args.batch_size, batched)
                results[kind] = measure(task, runs, args.repeats, worker, pairs, warmup=not args.quick)
                fitted = fitted_requests(encoding, task, context_length)
                dims = (hf.config.n_layer, hf.config.n_embd, hf.config.vocab_size)
                loop = arithmetic(REFERENCE, fitted, *dims)
                for row in results[kind]["rows"]:
                    row["arithmetic"] = loop / arithmetic(row["method"], fitted, *dims)
                scored = evaluate.score_task(model, encoding, task, shots=SHOTS[kind], batch_size=args.batch_size,
                                             progress=False)
                results[kind]["acc"], results[kind]["acc_norm"] = scored.accuracy("acc")[0], \
                    scored.accuracy("acc_norm")[0]
                loads.append(_load())
            lm_eval = run_lm_eval(worker, chosen, results, encoding, Path(tmp), expected_ids) or lm_eval
        finally:
            if worker:
                worker.close()
    text = section(args, command, shapes, results, loads, lm_eval)
    out = Path(args.out)
    write_text_atomic(out, replace_section(head(out.read_text(encoding="utf-8") if out.exists() else ""), text),
                      newline="\n")
    print(text)
    print(f"Note written to {out}")
    return {"shapes": shapes, "results": results, "lm_eval": lm_eval}


def argparse_hidden() -> str:
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
