"""Chapters 6-9: decoding — turning next-token logits into text, fast (KV cache) and batched.

A language model only scores the next token. Generating text is a loop: score, pick one token, append it,
repeat. *How* to pick is the decoding strategy: the most likely token (greedy, temperature 0), or a random
draw from the softmax after sharpening/flattening it (temperature) and cutting its tail (top-k keeps the k
best tokens, top-p the smallest set holding probability mass p). *How fast* depends on the KV cache: the
prompt is run once ("prefill"), then each step feeds only the one new token and reuses the keys and values
of all earlier ones, instead of recomputing the whole context every step.

Batches of prompts of different lengths are left-padded (with an attention mask, see minigpt/model.py) so
that every row's next token sits in the last column; each row stops on its own at `eos_id`.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

import torch
import torch.nn as nn


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """Probabilities (..., vocab) to sample the next token from, after temperature, top-k and top-p.

    The order is the usual one (as in Hugging Face's generate): divide the logits by the temperature, keep
    the `top_k` largest, then keep the smallest set of the most likely tokens whose probability adds up to at
    least `top_p`, and renormalise. Tokens cut away get probability exactly 0.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to sample (use sample_next_token for 0 = greedy), got {temperature}")
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
        if top_k < logits.shape[-1]:
            # Scatter the k best back into a -inf canvas: exactly k survive, even when values tie.
            best, where = torch.topk(logits, top_k, dim=-1)
            logits = torch.full_like(logits, float("-inf")).scatter(-1, where, best)
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        # Keep a token while the mass of the tokens before it is still below p: the smallest prefix with
        # mass >= p. The most likely token always stays (the mass before it is 0).
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token id per row of `logits` (..., vocab); returns (..., 1) int64 ids.

    temperature 0 is greedy decoding: the argmax (top_k and top_p cannot change it: the best token is always
    kept). A positive temperature samples from `next_token_distribution`, with `generator` for reproducible
    draws (it must live on the logits' device).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = next_token_distribution(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])  # torch.multinomial wants (rows, vocab)
    ids = torch.multinomial(flat, num_samples=1, generator=generator)
    return ids.reshape(*probs.shape[:-1], 1)


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, *, context_size: int | None = None,
             temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
             eos_id: int | None = None, seed: int | None = None, use_cache: bool = True,
             attention_mask: torch.Tensor | None = None,
             on_token: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Append up to `max_new_tokens` tokens to each row of `idx` (batch, tokens); return prompt + new tokens.

    - temperature/top_k/top_p: see `sample_next_token`; `seed` makes sampling reproducible (its own
      torch.Generator, the global random state is left alone).
    - eos_id: a row that produces it is finished: its later columns hold eos_id and it is no longer computed
      (its KV-cache rows are dropped). Generation stops early once every row is finished, so the result can
      be shorter than tokens + max_new_tokens.
    - attention_mask (batch, tokens): 1 for real tokens, 0 for left padding (see `generate_text`).
    - on_token(new_ids): called after each step with the (batch,) tokens just appended (streaming).
    - use_cache: prefill the prompt once, then feed one token per step (model(new, cache=..., attention_mask=...)).
      The model's position embeddings end at `context_size` (default: model.cfg.context_length). When the
      cache is full, generation falls back to the cache-free way for the remaining steps: recompute the last
      `context_size` tokens every step (a sliding window). A window shifted by one changes every position,
      so cached keys could not be reused anyway; this keeps cached and uncached results identical.
      A model without `new_cache()` is always run without a cache.
    The model is put in eval mode (no dropout) for the call and restored afterwards.
    """
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx must be (batch, tokens) token ids with at least one token, got shape {tuple(idx.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    cfg = getattr(model, "cfg", None)
    if context_size is None:
        if cfg is None:
            raise ValueError("pass context_size: the model has no .cfg.context_length to take it from")
        context_size = cfg.context_length
    elif cfg is not None and context_size > cfg.context_length:
        raise ValueError(f"context_size {context_size} exceeds the model's context length {cfg.context_length}")
    batch = idx.shape[0]
    mask = None
    if attention_mask is not None:
        if attention_mask.shape != idx.shape:
            raise ValueError(f"attention_mask must have the shape of idx {tuple(idx.shape)}, "
                             f"got {tuple(attention_mask.shape)}")
        mask = attention_mask.to(device=idx.device, dtype=torch.long)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=idx.device)
        generator.manual_seed(seed)
    cache = model.new_cache() if use_cache and hasattr(model, "new_cache") else None
    window_start = 0          # first column the cache covers
    active = torch.arange(batch, device=idx.device)   # rows still generating
    pad = eos_id if eos_id is not None else 0
    out = idx

    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            tokens = out[active]
            rows_mask = mask[active] if mask is not None else None
            total = tokens.shape[1]
            if cache is not None and len(cache) == 0:                       # prefill
                window_start = max(0, total - context_size)
                logits = _call(model, tokens[:, window_start:], cache, rows_mask, window_start)
            elif cache is not None and total - window_start <= context_size:   # one new token
                logits = _call(model, tokens[:, -1:], cache, rows_mask, window_start)
            else:                                                           # no cache, or the cache is full
                cache = None
                start = max(0, total - context_size)
                logits = _call(model, tokens[:, start:], None, rows_mask, start)

            next_ids = sample_next_token(logits[:, -1, :], temperature, top_k, top_p, generator).squeeze(-1)
            column = torch.full((batch,), pad, dtype=out.dtype, device=out.device)
            column[active] = next_ids.to(out.dtype)
            out = torch.cat([out, column[:, None]], dim=1)
            if mask is not None:
                real = torch.zeros(batch, dtype=mask.dtype, device=mask.device)
                real[active] = 1   # finished rows get (right) padding
                mask = torch.cat([mask, real[:, None]], dim=1)
            if on_token is not None:
                on_token(column)
            if eos_id is not None:
                still = next_ids != eos_id
                if not still.all():
                    active = active[still]
                    if cache is not None:
                        cache.reorder(still.nonzero().squeeze(-1))
                    if active.numel() == 0:
                        break
    finally:
        model.train(was_training)
    return out


def _call(model: nn.Module, tokens: torch.Tensor, cache, mask: torch.Tensor | None, start: int) -> torch.Tensor:
    """Run the model on `tokens`, passing cache and mask (columns from `start` on) only when there are any.

    Leaving out unused keywords lets `generate` drive any model(idx) -> logits, such as chapter 4's.
    """
    kwargs = {}
    if hasattr(model, "new_cache"):  # a GPTModel: generation needs only the last position's logits
        kwargs["last_only"] = True
    if cache is not None:
        kwargs["cache"] = cache
    if mask is not None:
        kwargs["attention_mask"] = mask[:, start:]
    return model(tokens, **kwargs)


class _TerminalStream:
    """Print one row's new tokens as they arrive, decoding the whole tail each time.

    Byte-level BPE can split one character (an emoji, an accented letter) over several tokens; decoding
    token by token would print replacement characters, so wait until the text decodes cleanly.
    """

    def __init__(self, tokenizer, eos_id: int | None, file=sys.stdout):
        self.tokenizer, self.eos_id, self.file = tokenizer, eos_id, file
        self.ids: list[int] = []
        self.printed = 0
        self.done = False

    def __call__(self, new_ids: torch.Tensor) -> None:
        token = int(new_ids[0])
        if self.done or token == self.eos_id:
            self.done = True
            return
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if not text.endswith("\ufffd"):
            print(text[self.printed:], end="", flush=True, file=self.file)
            self.printed = len(text)


def generate_text(model: nn.Module, tokenizer, prompts: str | Sequence[str], max_new_tokens: int = 50, *,
                  temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                  eos_id: int | None = None, seed: int | None = None, use_cache: bool = True,
                  context_size: int | None = None, stream: bool = False, include_prompt: bool = False,
                  device: torch.device | str | None = None) -> list[str]:
    """Continue each prompt; return one string per prompt (the new text, or prompt + new text).

    `tokenizer` needs encode(str) -> list[int] and decode(list[int]) -> str (chapter 1's tokenizer or
    tiktoken). Prompts of different lengths are left-padded into one batch with an attention mask, so they
    are generated together and each gives what it would give alone. Text stops before a row's first eos_id.
    stream=True (one prompt only) prints the new text to the terminal as it is generated.
    """
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise ValueError("prompts is empty: pass a string or a list of strings")
    if stream and len(prompt_list) != 1:
        raise ValueError(f"stream=True prints one prompt's text; got {len(prompt_list)} prompts")
    encoded = [list(tokenizer.encode(p)) for p in prompt_list]
    for prompt, ids in zip(prompt_list, encoded):
        if not ids:
            raise ValueError(f"prompt {prompt!r} encodes to no tokens; the model needs at least one to continue")
    if device is None:
        device = next(model.parameters()).device
    longest = max(len(ids) for ids in encoded)
    pad = eos_id if eos_id is not None else 0
    idx = torch.tensor([[pad] * (longest - len(ids)) + ids for ids in encoded], device=device)
    mask = None
    if any(len(ids) != longest for ids in encoded):
        mask = torch.tensor([[0] * (longest - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
    on_token = _TerminalStream(tokenizer, eos_id) if stream else None
    out = generate(model, idx, max_new_tokens, context_size=context_size, temperature=temperature, top_k=top_k,
                   top_p=top_p, eos_id=eos_id, seed=seed, use_cache=use_cache, attention_mask=mask, on_token=on_token)
    if stream:
        print(flush=True)
    texts = []
    for prompt, row in zip(prompt_list, out[:, longest:].tolist()):
        if eos_id is not None and eos_id in row:
            row = row[:row.index(eos_id)]
        text = tokenizer.decode(row)
        texts.append(prompt + text if include_prompt else text)
    return texts
