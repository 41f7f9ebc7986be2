"""Chapter 9's optional judge: a local LLM (through Ollama) grades the finetuned model's answers 0-100.

Word-overlap scores (minigpt/instruct.py) miss answers that are right in other words; a stronger model asked to
compare each answer with the reference catches some of those. This is tooling, never required: the chapter runs and
scores without it. Only a server on this machine is contacted (localhost URLs), so the records never leave it.
Chapter 12 builds its judged evaluation on this.
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


def _check_local(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"the judge only talks to a local Ollama server (http://localhost:PORT/...), got {url!r}")
    return parts


def ollama_status(url: str = OLLAMA_CHAT_URL, model: str | None = None, timeout: float = 2.0) -> str | None:
    """None if an Ollama server answers at `url`'s host (and has `model`, if given); else why not, in a sentence."""
    parts = _check_local(url)
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

    _check_local(url)
    problem = ollama_status(url, model)
    if problem:
        raise RuntimeError(problem)
    scores = []
    pairs = list(zip(records, responses))
    for record, response in tqdm(pairs, desc=f"judging with {model}", unit="answer", disable=not progress):
        prompt = format_prompt(record, style)
        content = JUDGE_PROMPT.format(prompt=prompt, reference=record["output"], response=response)
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}], "stream": False,
                           "options": {"temperature": 0, "seed": seed}}).encode("utf-8")
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            answer = json.loads(reply.read().decode("utf-8"))
        scores.append(parse_judge_score(answer.get("message", {}).get("content", "")))
    return scores
