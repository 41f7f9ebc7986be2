"""Chapter 12: evaluating a language model — perplexity, bits per byte, and multiple choice by log-likelihood.

Every model minigpt makes (a random init, chapter 6/9/11 checkpoints, GPT-2's weights) is scored here the same way:
by the probabilities it gives to text. Read in this order:

  1. encode_pair, logits_at              a context and a continuation as token ids, cut the way the harness cuts
                                         them; the output head applied only where a score is read
  2. continuation_logprobs               Σ log p(continuation | context) for many requests, in padded batches
  3. shared_context_logprobs             the same, with each item's context computed once for all its choices
  4. text_perplexity                     a sliding window over a long text: every token scored with as much
                                         context as the model allows; perplexity and bits per byte
  5. fit_shots, score_task, TaskResult   a multiple-choice task: k-shot prompts that fit the context, every
                                         choice scored, the accuracy rules of lm-evaluation-harness, 95% intervals
  6. score_generations                   generated answers: exact match, token F1, ROUGE-L, BLEU, with intervals

The accuracy rules are those of EleutherAI's lm-evaluation-harness: `acc` picks the choice with the highest summed
log-likelihood, `acc_norm` the highest log-likelihood per character of the choice (longer endings are not punished
for having more tokens), and this module adds `acc_bytes`, per UTF-8 byte (the fair unit across scripts). A letter
task's choices are the one-token continuations " A", " B", ...: the model's next-token logits after the prompt,
softmaxed over the letters, decide.

What it does not do: no generation-based multiple choice (parsing "The answer is B" from free text), no calibration,
no mutual-information normalisation, no data-parallel scoring.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from minigpt.files import InputError
from minigpt.metrics import (bootstrap_interval, corpus_bleu, exact_match, is_closed_task, rouge_l, token_f1,
                             wilson_interval)
from minigpt.metrics import bits_per_byte as _bits_per_byte
from minigpt.model import find_gpt
from minigpt.tasks import LETTERS, ChoiceItem, Task, chance, context_text, continuations, shots_for
from minigpt.tokenizer import end_of_text_id


# ------------------------------------------------------------------------------------ 1. requests and logits

def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids), split where the context's text ends, as lm-evaluation-harness does.

    Spaces at the end of the context move to the continuation ("Answer: " + "B" is scored as "Answer:" + " B"):
    byte-level BPE glues a space to the word after it, so " B" is one token and "B" after a space-token another.
    The pair is encoded whole and cut after the context's own tokens, so the continuation's ids are those the
    model would see in running text. Text is encoded as ordinary text: "<|endoftext|>" inside a question is
    spelt out, never the special token.
    """
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode_ordinary(context + continuation)
    context_ids = tokenizer.encode_ordinary(context)
    return context_ids, whole[len(context_ids):]


def _gpt(model: nn.Module):
    gpt = find_gpt(model)
    if gpt is None or not hasattr(gpt, "new_cache"):
        raise TypeError(f"this needs a language model with a GPTModel inside; got {type(model).__name__}")
    return gpt


def logits_at(model: nn.Module, inputs: torch.Tensor, keep: torch.Tensor, **kwargs) -> torch.Tensor:
    """The model's logits at the positions where `keep` (batch, tokens) is True: (kept positions, vocab).

    The output head (emb_dim × vocabulary, 50,257 rows for GPT-2) is the largest matrix product of a small model,
    and a score needs its output only where a continuation's tokens are predicted. A forward hook on the final
    LayerNorm hands the head those rows alone.
    """
    gpt = _gpt(model)
    handle = gpt.final_norm.register_forward_hook(lambda module, args, output: output[keep])
    try:
        return model(inputs, **kwargs)
    finally:
        handle.remove()


# ------------------------------------------------------------------------- 2. log-likelihood of continuations

def _window(context: list[int], continuation: list[int], context_length: int) -> tuple[list[int], int]:
    """The model's input for one request and how many of its last positions predict the continuation.

    The input is context + continuation without its last token (nothing is predicted after it), cut from the left
    to the model's context length: the oldest context goes first. An empty context cannot predict the first token;
    such requests get the end-of-text token as context (see continuation_logprobs).
    """
    if len(continuation) > context_length:
        raise InputError(f"a continuation of {len(continuation)} tokens does not fit the model's context of "
                         f"{context_length} tokens")
    tokens = (context + continuation)[-(context_length + 1):]
    return tokens[:-1], len(continuation)


# Tokens per forward pass at most (rows × padded width), whatever the batch size. On the project's 2-core CPU, GPT-2
# small scored eight 460-token prompts in 18.6 s as one batch and in 15.9 s as two batches of four (activations
# that outgrow the caches cost more than the extra calls), so long rows go in smaller batches. A GPU wants more:
# pass max_tokens= there.
MAX_BATCH_TOKENS = 2048


def _batches(order: list[int], widths: Sequence[int], batch_size: int, max_tokens: int) -> Iterator[list[int]]:
    """Consecutive runs of `order` (sorted widest first) of at most batch_size rows and max_tokens padded tokens."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or (len(batch) + 1) * widths[batch[0]] > max_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@torch.no_grad()
def continuation_logprobs(model: nn.Module, requests: Sequence[tuple[list[int], list[int]]],
                          batch_size: int = 16, eot_id: int | None = None, progress=None,
                          max_tokens: int = MAX_BATCH_TOKENS) -> list[float]:
    """Σ_t log p(continuation[t] | context, continuation[:t]) for each (context ids, continuation ids) request.

    Requests are sorted longest first and batched with right padding: a causal model's outputs at real positions
    never depend on the padding after them, so no attention mask is needed and a batch scores exactly what single
    requests would (up to the rounding of batched matrix products). `eot_id` is the context of requests without one.
    `progress` (a tqdm bar, optional) is advanced by the number of requests done.
    """
    gpt = _gpt(model)
    device = gpt.tok_emb.weight.device
    windows, lengths = [], []
    for context, continuation in requests:
        if not continuation:
            raise ValueError("every request needs at least one continuation token")
        if not context:
            if eot_id is None:
                raise InputError("a request with an empty context needs a tokenizer with <|endoftext|> to stand "
                                 "for the start of the text")
            context = [eot_id]
        window, scored = _window(context, continuation, gpt.cfg.context_length)
        windows.append(window)
        lengths.append(scored)
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    totals = [0.0] * len(windows)
    for batch in _batches(order, [len(w) for w in windows], batch_size, max_tokens):
        width = len(windows[batch[0]])
        inputs = torch.zeros(len(batch), width, dtype=torch.long)
        targets = torch.full((len(batch), width), -1, dtype=torch.long)
        for row, i in enumerate(batch):
            window, scored = windows[i], lengths[i]
            inputs[row, :len(window)] = torch.tensor(window)
            # Position p predicts token p + 1: the continuation's tokens are predicted by the last `scored`
            # positions of the window.
            targets[row, len(window) - scored:len(window)] = torch.tensor(requests[i][1])
        inputs, targets = inputs.to(device), targets.to(device)
        keep = targets >= 0
        logprobs = torch.log_softmax(logits_at(model, inputs, keep).float(), dim=-1)
        picked = logprobs.gather(1, targets[keep][:, None])[:, 0]
        rows = torch.arange(len(batch), device=device)[:, None].expand_as(targets)[keep]
        sums = torch.zeros(len(batch), dtype=torch.float64, device=device).index_add(0, rows, picked.double())
        for row, i in enumerate(batch):
            totals[i] = float(sums[row])
        if progress is not None:
            progress.update(len(batch))
    return totals


# ---------------------------------------------------------------------------- 3. one context, many choices

@torch.no_grad()
def shared_context_logprobs(model: nn.Module, items: Sequence[tuple[list[int], Sequence[list[int]]]],
                            batch_size: int = 16, progress=None, max_tokens: int = MAX_BATCH_TOKENS
                            ) -> list[list[float]]:
    """For each (context ids, [continuation ids, ...]) item, Σ log p(continuation | context) of every choice.

    The context is run once per item, not once per choice: a batch of contexts (left-padded, with an attention
    mask) fills a KV cache and gives the logits that predict each choice's first token; then the cache rows are
    repeated once per choice and the choices' remaining tokens are run on top of it. For a letter task every
    choice is one token (" A"), so the first pass is all there is: one forward pass per question instead of four.
    Every item must fit the model whole (context + longest choice − 1 ≤ context length); `score_task` sends the
    ones that do not to `continuation_logprobs`, which cuts contexts from the left.
    """
    gpt = _gpt(model)
    device = gpt.tok_emb.weight.device
    order = sorted(range(len(items)), key=lambda i: -len(items[i][0]))
    results: list[list[float]] = [[] for _ in items]
    for batch in _batches(order, [len(context) for context, _ in items], batch_size, max_tokens):
        contexts = [items[i][0] for i in batch]
        choices = [items[i][1] for i in batch]
        if any(not c for c in contexts) or any(not x for cs in choices for x in cs):
            raise ValueError("shared_context_logprobs needs non-empty contexts and choices")
        width = max(map(len, contexts))
        if width + max(len(x) for cs in choices for x in cs) - 1 > gpt.cfg.context_length:
            raise ValueError("an item does not fit the model's context; score it with continuation_logprobs")
        inputs = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, context in enumerate(contexts):          # left padding: every context ends at the last column
            inputs[row, width - len(context):] = torch.tensor(context)
            mask[row, width - len(context):] = 1
        inputs, mask = inputs.to(device), mask.to(device)
        cache = gpt.new_cache()
        first = torch.log_softmax(model(inputs, cache=cache, attention_mask=mask, last_only=True)[:, 0].float(), -1)
        sums = [[float(first[row, choice[0]]) for choice in cs] for row, cs in enumerate(choices)]
        rest = [(row, j, choice) for row, cs in enumerate(choices) for j, choice in enumerate(cs) if len(choice) > 1]
        if rest:
            # Choice k's tokens 0..n-2 are fed after the cached context and predict its tokens 1..n-1.
            length = max(len(choice) for _, _, choice in rest) - 1
            follow = torch.zeros(len(rest), length, dtype=torch.long)
            targets = torch.full((len(rest), length), -1, dtype=torch.long)
            for k, (_, _, choice) in enumerate(rest):
                follow[k, :len(choice) - 1] = torch.tensor(choice[:-1])
                targets[k, :len(choice) - 1] = torch.tensor(choice[1:])
            cache.reorder(torch.tensor([row for row, _, _ in rest], device=device))
            full_mask = torch.cat([mask[[row for row, _, _ in rest]],
                                   torch.ones(len(rest), length, dtype=torch.long, device=device)], dim=1)
            follow, targets = follow.to(device), targets.to(device)
            keep = targets >= 0
            logprobs = torch.log_softmax(
                logits_at(model, follow, keep, cache=cache, attention_mask=full_mask).float(), dim=-1)
            picked = logprobs.gather(1, targets[keep][:, None])[:, 0].double()
            owners = torch.arange(len(rest), device=device)[:, None].expand_as(targets)[keep]
            extra = torch.zeros(len(rest), dtype=torch.float64, device=device).index_add(0, owners, picked)
            for k, (row, j, _) in enumerate(rest):
                sums[row][j] += float(extra[k])
        for row, i in enumerate(batch):
            results[i] = sums[row]
        if progress is not None:
            progress.update(len(batch))
    return results


# ------------------------------------------------------------------------ 4. perplexity over a long text

@dataclass
class Perplexity:
    """What a model's predictions of a text add up to.

    nats: Σ −ln p over the predicted tokens; tokens: how many; num_bytes: the UTF-8 bytes those tokens spell.
    """
    nats: float
    tokens: int
    num_bytes: int
    context_length: int
    stride: int

    @property
    def loss(self) -> float:
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return _bits_per_byte(self.nats, self.num_bytes)


def sliding_windows(num_tokens: int, context_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored) windows over a sequence of `num_tokens` tokens, tokens 1.. predicted.

    Window w feeds tokens [begin, end) and predicts tokens begin+1 .. end; only those after the previous window's
    end are scored (from `first scored` on), so every token is scored once. The first window scores all of its
    predictions; each later one moves by `stride` and scores `stride` new tokens with at least
    context_length − stride tokens before them. stride = context_length: disjoint windows, the least work and
    the least context (a token at a window's start sees none); stride = 1: every token sees a full window.
    """
    if not 1 <= stride <= context_length:
        raise ValueError(f"stride must be between 1 and the context length {context_length}, got {stride}")
    windows, begin, scored_to = [], 0, 0
    while scored_to < num_tokens - 1:
        end = min(begin + context_length, num_tokens - 1)
        windows.append((begin, end, scored_to + 1))
        scored_to = end
        begin += stride
    return windows


def text_perplexity(model: nn.Module, tokenizer, text: str, stride: int | None = None,
                    batch_size: int = 8, progress=None) -> Perplexity:
    """Perplexity and bits per byte of `text`, every token scored with as much context as a window of the
    model's context length and `stride` (default half the context length) gives.

    With an <|endoftext|> token it is put before the text, so the first token is predicted too and the bytes are
    all of the text's; without one the first token is given, and its bytes are left out of the count.
    """
    gpt = _gpt(model)
    length = gpt.cfg.context_length
    stride = stride or max(1, length // 2)
    eot = end_of_text_id(tokenizer)
    ids = tokenizer.encode_ordinary(text)
    sequence = ([eot] if eot is not None else []) + ids
    if len(sequence) < 2:
        raise InputError("the text is too short to score: it needs at least one token to predict")
    windows = sliding_windows(len(sequence), length, stride)
    requests = [(sequence[begin:first], sequence[first:end + 1]) for begin, end, first in windows]
    nats = -sum(continuation_logprobs(model, requests, batch_size, progress=progress))
    predicted = sequence[1:]
    num_bytes = len(text.encode("utf-8")) if eot is not None else len(tokenizer.decode_bytes(predicted))
    return Perplexity(nats, len(predicted), num_bytes, length, stride)


# ------------------------------------------------------------------------------ 5. multiple-choice tasks

@dataclass
class ItemResult:
    """One question scored: the log-likelihood of each choice and the choices the three rules pick."""
    index: int
    logprobs: list[float]
    gold: int
    prediction: int            # acc: the highest Σ log p
    prediction_norm: int       # acc_norm: the highest Σ log p per character of the choice
    prediction_bytes: int      # acc_bytes: the highest Σ log p per UTF-8 byte of the choice
    shots: int                 # the solved examples that fitted before the question
    truncated: bool            # the prompt still did not fit and lost its oldest tokens


@dataclass
class TaskResult:
    task: str
    kind: str
    chance: float
    items: list[ItemResult] = field(default_factory=list)

    def accuracy(self, rule: str = "acc") -> tuple[float, float, float]:
        """(accuracy, low, high) for `rule` ("acc", "acc_norm" or "acc_bytes"), with a 95% Wilson interval."""
        attribute = {"acc": "prediction", "acc_norm": "prediction_norm", "acc_bytes": "prediction_bytes"}[rule]
        right = sum(getattr(item, attribute) == item.gold for item in self.items)
        low, high = wilson_interval(right, len(self.items))
        return right / len(self.items), low, high

    @property
    def rules(self) -> tuple[str, ...]:
        # A letter task's choices are one letter each: per-character or per-byte scores would change nothing.
        return ("acc",) if self.kind == "letter" else ("acc", "acc_norm", "acc_bytes")


def argmax(values: Sequence[float]) -> int:
    """The index of the largest value, the first one on a tie (as numpy.argmax, which the harness uses)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def choice_texts(item: ChoiceItem, task: Task) -> list[str]:
    """The strings whose length normalises a choice's score: the ending (without the delimiter) or the letter."""
    return list(item.choices) if task.kind == "completion" else list(LETTERS[:len(item.choices)])


def fit_shots(tokenizer, item: ChoiceItem, task: Task, shots: int, context_length: int
              ) -> tuple[list[tuple[list[int], list[int]]], int, bool]:
    """(requests, shots used, truncated): the item's k-shot prompt as (context, choice) token requests.

    When the prompt and its longest choice do not fit the model's context, the oldest shot is dropped, then the
    next, down to none; a prompt that still does not fit is cut from the left when scored (truncated=True).
    Chapter 6's default model has 128 positions: a 5-shot MMLU-style prompt rarely fits, and the report says so.
    """
    chosen = shots_for(item, task, shots)
    while True:
        context = context_text(item, task, chosen)
        requests = [encode_pair(tokenizer, context, c) for c in continuations(item, task)]
        longest = max(len(c) + len(x) - 1 for c, x in requests)
        if longest <= context_length or not chosen:
            return requests, len(chosen), longest > context_length
        chosen = chosen[1:]


def _shares_pay(requests: list[tuple[list[int], list[int]]]) -> bool:
    """Running the context once pays when it is longer than the average choice (then it more than halves the work)."""
    context = len(requests[0][0])
    return context > sum(len(x) for _, x in requests) / len(requests)


def score_task(model: nn.Module, tokenizer, task: Task, shots: int = 0, limit: int | None = None,
               batch_size: int = 16, share_context: bool | None = None, progress: bool = True) -> TaskResult:
    """Score every item of `task` (the first `limit` items): each choice's log-likelihood given the prompt.

    share_context: run each item's prompt once for all its choices (section 3); None decides per item (always for a
    letter task, when the context is longer than the choices for a completion task). The result is the same either
    way, up to float rounding; only the time differs.
    """
    from tqdm import tqdm

    items = task.items[:limit] if limit is not None else task.items
    if not items:
        raise InputError(f"task {task.name} has no items to score")
    missing = next((item for item in items if item.answer is None), None)
    if missing is not None:
        raise InputError(f"{missing.source or task.name}: this split has no answers, so it cannot be scored")
    gpt = _gpt(model)
    eot = end_of_text_id(tokenizer)
    fitted = [fit_shots(tokenizer, item, task, shots, gpt.cfg.context_length) for item in items]
    shared = [i for i, (requests, _, truncated) in enumerate(fitted) if not truncated and all(c for c, _ in requests)
              and (share_context if share_context is not None else task.kind == "letter" or _shares_pay(requests))]
    alone = sorted(set(range(len(items))) - set(shared))
    logprobs: list[list[float]] = [[] for _ in items]
    bar = tqdm(total=len(shared) + sum(len(fitted[i][0]) for i in alone), desc=f"scoring {task.name}",
               unit="request", disable=not progress, leave=False)
    with bar:
        for i, scores in zip(shared, shared_context_logprobs(
                model, [(fitted[i][0][0][0], [x for _, x in fitted[i][0]]) for i in shared], batch_size, bar)):
            logprobs[i] = scores
        flat = [request for i in alone for request in fitted[i][0]]
        scores = iter(continuation_logprobs(model, flat, batch_size, eot, bar))
        for i in alone:
            logprobs[i] = [next(scores) for _ in fitted[i][0]]
    result = TaskResult(task.name, task.kind, chance(items))
    for index, (item, scores, (_, used, truncated)) in enumerate(zip(items, logprobs, fitted)):
        texts = choice_texts(item, task)
        per_char = [s / max(len(t), 1) for s, t in zip(scores, texts)]
        per_byte = [s / max(len(t.encode("utf-8")), 1) for s, t in zip(scores, texts)]
        result.items.append(ItemResult(index, scores, item.answer, argmax(scores), argmax(per_char),
                                       argmax(per_byte), used, truncated))
    return result


def letter_probabilities(item_result: ItemResult) -> list[float]:
    """A letter task's softmax over the letters' log-probabilities: how sure the model is of each option."""
    return torch.softmax(torch.tensor(item_result.logprobs, dtype=torch.float64), dim=0).tolist()


# ------------------------------------------------------------------------------ 6. generated answers

def score_generations(records: Sequence[dict], responses: Sequence[str], tokenize: str = "13a",
                      resamples: int = 1000, seed: int = 0) -> dict[str, tuple[float, float, float] | None]:
    """Each generated-answer metric as (value, low, high), in [0, 1] (BLEU in [0, 100]), 95% bootstrap intervals.

    exact_match is over closed tasks only (short references, minigpt.metrics.is_closed_task) and None when there
    are none; token_f1 and rouge_l are means over all records; BLEU is a corpus score (sacrebleu's default), so
    its interval resamples the records and recomputes the corpus score each time.
    """
    if len(records) != len(responses) or not records:
        raise ValueError(f"need one response per record, got {len(records)} records and {len(responses)} responses")
    references = [r["output"] for r in records]
    closed = [exact_match(p, r["output"]) for r, p in zip(records, responses) if is_closed_task(r)]
    scores: dict[str, tuple[float, float, float] | None] = {
        "exact_match": bootstrap_interval(closed, seed=seed) if closed else None,
        "token_f1": bootstrap_interval([token_f1(p, w) for p, w in zip(responses, references)], seed=seed),
        "rouge_l": bootstrap_interval([rouge_l(p, w) for p, w in zip(responses, references)], seed=seed),
    }
    draws = np.random.default_rng(seed).integers(0, len(records), size=(resamples, len(records)))
    bleu = corpus_bleu(list(responses), references, tokenize=tokenize).score
    resampled = [corpus_bleu([responses[i] for i in d], [references[i] for i in d], tokenize=tokenize).score
                 for d in draws]
    low, high = np.percentile(resampled, [2.5, 97.5])
    scores["bleu"] = (bleu, float(low), float(high))
    return scores
