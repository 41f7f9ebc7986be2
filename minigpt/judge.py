"""Chapters 9 and 12's optional judge: a local LLM (through Ollama) grades answers.

Word-overlap scores (minigpt/metrics.py) miss answers that are right in other words; a stronger model asked to
compare each answer with the reference catches some of those. Two ways to ask:
  judge_with_ollama    one answer at a time, graded 0-100 against the reference (chapter 9)
  compare_with_ollama  two models' answers side by side, asked which is better (chapter 12). Judges favour one
                       position (often the first), so every pair is asked in both orders and the two verdicts are
                       averaged: a judge that always says "first" then scores every pair a tie, not a win.
This is tooling, never required: the chapters run and score without it. Only a server on this machine is contacted
(localhost URLs), so the records never leave it.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Sequence

from minigpt.instruct import format_prompt

OLLAMA_CHAT_URL = "http://localhost:11434/api/chat"
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}

JUDGE_PROMPT = (
    "You are grading an answer to a request. Compare the answer with the reference answer and decide how "
    "correct and complete it is.\n\n"
    "Request:\n{prompt}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{response}\n\n"
    "Reply with one whole number from 0 (wrong or unrelated) to 100 (as good as the reference), and nothing else."
)


COMPARE_PROMPT = (
    "You are comparing two answers to a request. Decide which answer is more correct and helpful; the reference "
    "answer shows what a good answer says.\n\n"
    "Request:\n{prompt}\n\nReference answer:\n{reference}\n\n"
    "Answer 1:\n{first}\n\nAnswer 2:\n{second}\n\n"
    "Reply with exactly one of: 1 (answer 1 is better), 2 (answer 2 is better), or 0 (they are equally good)."
)


def check_local_url(url: str) -> urllib.parse.SplitResult:
    """The URL's parts if it is http on this machine; ValueError otherwise (the judge sends it the records)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"the judge only talks to a local Ollama server (http://localhost:PORT/...), got {url!r}")
    return parts


def ollama_status(url: str = OLLAMA_CHAT_URL, model: str | None = None, timeout: float = 2.0) -> str | None:
    """None if an Ollama server answers at `url`'s host (and has `model`, if given); else why not, in a sentence."""
    parts = check_local_url(url)
    tags_url = f"{parts.scheme}://{parts.netloc}/api/tags"
    try:
        with urllib.request.urlopen(tags_url, timeout=timeout) as response:
            listing = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as e:
        return (f"no Ollama server answered at {parts.scheme}://{parts.netloc} ({getattr(e, 'reason', e)}). "
                f"The judge is optional; to use it, install Ollama, run `ollama serve` and `ollama pull MODEL`.")
    if model is not None:
        names = {m.get("name", "") for m in listing.get("models", [])}
        if model not in names and f"{model}:latest" not in names:
            return (f"the Ollama server has no model {model!r} (it has {sorted(names) or 'none'}); "
                    f"run `ollama pull {model}` or pass one of those")
    return None


def _require_server(url: str, model: str) -> None:
    """ValueError for a URL off this machine; RuntimeError with ollama_status's sentence when no server or model."""
    check_local_url(url)
    problem = ollama_status(url, model)
    if problem:
        raise RuntimeError(problem)


def parse_judge_score(reply: str) -> int | None:
    """The first whole number from 0 to 100 in the judge's reply, or None if there is none."""
    for number in re.findall(r"\d+", reply):
        if 0 <= int(number) <= 100:
            return int(number)
    return None


def judge_with_ollama(records: Sequence[dict], responses: Sequence[str], model: str = "llama3.2",
                      url: str = OLLAMA_CHAT_URL, style: str = "alpaca", seed: int = 123,
                      timeout: float = 120.0, progress: bool = True) -> list[int | None]:
    """Ask a local Ollama model to grade each response 0-100 against its reference (None where unparseable).

    Raises RuntimeError with `ollama_status`'s explanation when no server (or no such model) is there.
    Only localhost URLs are accepted: the records never leave the machine.
    """
    from tqdm import tqdm

    _require_server(url, model)
    scores = []
    pairs = list(zip(records, responses))
    for record, response in tqdm(pairs, desc=f"judging with {model}", unit="answer", disable=not progress):
        prompt = format_prompt(record, style)
        content = JUDGE_PROMPT.format(prompt=prompt, reference=record["output"], response=response)
        scores.append(parse_judge_score(_ask(url, model, content, seed, timeout)))
    return scores


def _ask(url: str, model: str, content: str, seed: int, timeout: float) -> str:
    """One chat turn with the local server, deterministic (temperature 0, seeded): the reply's text."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}], "stream": False,
                       "options": {"temperature": 0, "seed": seed}}).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        answer = json.loads(reply.read().decode("utf-8"))
    return answer.get("message", {}).get("content", "")


def parse_preference(reply: str) -> int | None:
    """1 or 2 for the answer the judge prefers, 0 for a tie, None when the reply names none of them."""
    match = re.search(r"[012]", reply)
    return int(match.group()) if match else None


def compare_with_ollama(records: Sequence[dict], answers_a: Sequence[str], answers_b: Sequence[str],
                        model: str = "llama3.2", url: str = OLLAMA_CHAT_URL, style: str = "alpaca", seed: int = 123,
                        timeout: float = 120.0, progress: bool = True) -> list[float | None]:
    """For each record, how much the judge prefers answer A over answer B: 1 (A better), 0.5 (tie), 0 (B better).

    Each pair is judged twice, A first and then B first, and the two verdicts are averaged, so that the judge's
    liking for a position cancels: 0.5 may mean a tie or two verdicts that only followed the position. None
    where either reply could not be read.
    """
    from tqdm import tqdm

    if not len(records) == len(answers_a) == len(answers_b):
        raise ValueError(f"need one answer from each model per record, got {len(records)} records, "
                         f"{len(answers_a)} and {len(answers_b)} answers")
    _require_server(url, model)
    # A verdict on (first, second) as A's share: 1 -> the first won, 2 -> the second, 0 -> a tie.
    share_of_first = {1: 1.0, 2: 0.0, 0: 0.5}
    results: list[float | None] = []
    triples = list(zip(records, answers_a, answers_b))
    for record, a, b in tqdm(triples, desc=f"comparing with {model}", unit="pair", disable=not progress):
        prompt, reference = format_prompt(record, style), record["output"]
        verdicts = [parse_preference(_ask(url, model, COMPARE_PROMPT.format(prompt=prompt, reference=reference,
                                                                            first=first, second=second),
                                          seed, timeout))
                    for first, second in ((a, b), (b, a))]
        if None in verdicts:
            results.append(None)
            continue
        a_first, b_first = share_of_first[verdicts[0]], 1.0 - share_of_first[verdicts[1]]
        results.append((a_first + b_first) / 2)
    return results
