"""Chapter 11, part 1: extending a BPE vocabulary for a new language without moving any existing id.

GPT-2's byte-level BPE learned its merges on English web text, so it cuts Chinese into pieces of characters: "编码"
is 6 tokens. A model then spends several times the context and compute on a Chinese sentence that it spends on an
English one. The fix (Chinese-LLaMA, BELLE): learn new tokens on text of the new language *on top of* the existing
vocabulary, give them ids after the existing ones, and grow the model's embedding (minigpt/grow.py).

How the extension works: cut the domain text into chunks with the tokenizer's own pattern, encode each chunk with the
existing tokenizer (its pieces are where BPE would stand after all the old merges), and continue BPE from there. Each
new token gets the next id, and since ids are ranks (tiktoken's rule: the pair whose concatenated bytes have the
lowest rank merges first), the new merges rank after every old one. That is why nothing old moves:
  - every old id keeps its bytes, and
  - text in which no new merge applies encodes to exactly the old ids (the old merges all run first).
One subtlety makes the training exact under that rule: when a new token appears, a pair next to it may spell an
existing token (which encoding by rank merges at once), and another pair may spell the new token too. So after each
merge the affected chunks are re-encoded by rank from their pieces (`_continue_by_rank`) rather than by replacing the
one pair, and the extended ranks load into tiktoken.Encoding and give the same ids as minigpt's encoder.

Where the new ids go: after every existing id, special tokens included. GPT-2's <|endoftext|> keeps 50256 (its
50,256 ordinary tokens are 0-50255), so the new tokens are 50257, 50258, ...; id 50256 stays a special token among
ordinary ones (minigpt's BPETokenizer keeps a `None` in `vocab` for it, and a tiktoken rank file simply has no line
50256). A chapter 1 tokenizer trained with <|endoftext|> has it last too, and the same holds.

The cap: token shards store ids as uint16 (minigpt/data.py), so a vocabulary may reach 65,536 ids: at most 15,279
new tokens on GPT-2's 50,257. Asking for more is refused with that number (shards would need a wider id type).

Read it in this order:
  1. max_new_tokens, domain_chunks       the cap, and the chunks of the domain text with their counts
  2. _continue_by_rank, extend_merges    continued BPE training, exact under encoding by rank
  3. extend_tokenizer                    the extended BPETokenizer (old ids unchanged, new ones after them)
  4. tiktoken_encoding, save_tiktoken_ranks, new_tokens, compression   checking, saving and showing the result

What it does not do: it never removes or renumbers a token (a vocabulary trained from scratch on both languages
would be smaller for the same compression), and it learns no new special tokens.
"""
from __future__ import annotations

import base64
import heapq
from collections import Counter
from itertools import chain
from pathlib import Path
from typing import Iterable

import numpy as np

from minigpt.data import SHARD_DTYPE
from minigpt.files import InputError, write_text_atomic
from minigpt.tokenizer import TIKTOKEN_R50K_PATTERN, GPT2_SPLIT_PATTERN, BPETokenizer, pair_index

ID_LIMIT = int(np.iinfo(SHARD_DTYPE).max) + 1   # 65,536: ids a uint16 token shard can hold
INFINITY = float("inf")


# --------------------------------------------------------------------------------------------- 1. the domain text

def max_new_tokens(base: BPETokenizer) -> int:
    """How many tokens can be added to `base` before an id no longer fits a uint16 shard (15,279 for GPT-2)."""
    return ID_LIMIT - base.vocab_size


def domain_chunks(base: BPETokenizer, documents: Iterable[str]) -> Counter:
    """How often each chunk (the base pattern's pre-tokenization) occurs in the documents; merges never cross chunks."""
    return Counter(chain.from_iterable(base.pre_tokenize(doc) for doc in documents))


# --------------------------------------------------------------------------------------------- 2. continued BPE

def _continue_by_rank(parts: list[bytes], ranks: dict[bytes, int]) -> list[bytes]:
    """Encoding by rank, started from tokens instead of single bytes: merge the adjacent pair whose concatenation has
    the lowest rank (the leftmost on a tie) until no adjacent pair is a token. Starting from a chunk's encoding under
    fewer ranks gives what encoding its bytes with all the ranks gives, as long as the added ranks are the highest."""
    parts = list(parts)
    while len(parts) > 1:
        rank, i = min((ranks.get(a + b, INFINITY), i) for i, (a, b) in enumerate(zip(parts, parts[1:])))
        if rank == INFINITY:
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


def extend_merges(words: list[list[int]], counts: list[int], vocab: list[bytes | None], num_new: int,
                  progress: bool = False) -> list[tuple[tuple[int, int], int]]:
    """Add up to `num_new` tokens to `vocab` (in place, ids len(vocab), len(vocab)+1, ...) by continuing BPE.

    `words` are the distinct chunks as token ids under `vocab` (each the chunk's encoding by rank), each occurring
    counts[i] times. As in chapter 1's train_merges, pair counts are kept up to date, an index says which words hold
    each pair, and a heap of possibly stale (-count, pair) entries finds the most frequent pair, ties going to the
    smallest (first, second). Unlike it, a merge re-encodes each affected word by rank (`_continue_by_rank`), so the
    words always stand where tiktoken's encoder would put them. Returns the merges as ((first, second), new_id).
    """
    words = [list(word) for word in words]
    ranks = {token: i for i, token in enumerate(vocab) if token is not None}
    pair_counts, words_with, heap = pair_index(words, counts)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=num_new, desc="new BPE merges", unit="merge")
    merges = []
    while len(merges) < num_new and heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negative_count:   # a stale entry: put the pair back with its current count
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        token = vocab[pair[0]] + vocab[pair[1]]
        new_id = len(vocab)
        vocab.append(token)
        ranks[token] = new_id
        merges.append((pair, new_id))
        # Every word holding a pair that spells the new token changes: (first, second) and any other split of it.
        splits = [(ranks[token[:k]], ranks[token[k:]]) for k in range(1, len(token))
                  if token[:k] in ranks and token[k:] in ranks]
        affected = set().union(*(words_with.get(split, ()) for split in splits))
        grown = set()
        for i in affected:
            word = words[i]
            old_pairs = list(zip(word, word[1:]))
            new_word = [ranks[part] for part in _continue_by_rank([vocab[t] for t in word], ranks)]
            if new_word == word:   # the index lists words that lost the pair in an earlier merge
                continue
            new_pairs = list(zip(new_word, new_word[1:]))
            for old in old_pairs:
                pair_counts[old] -= counts[i]
            for new in new_pairs:
                pair_counts[new] += counts[i]
                words_with[new].add(i)
            grown.update(set(new_pairs) - set(old_pairs))
            words[i] = new_word
        for split in splits:
            pair_counts.pop(split, None)   # all merged now (their counts are 0)
            words_with.pop(split, None)
        for new in grown:
            if pair_counts[new] > 0:
                heapq.heappush(heap, (-pair_counts[new], new))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


# --------------------------------------------------------------------------------------------- 3. the tokenizer

def extend_tokenizer(base: BPETokenizer, documents: Iterable[str], num_new: int,
                     progress: bool = False) -> BPETokenizer:
    """`base` with up to `num_new` tokens learned on `documents`, numbered from base.vocab_size on.

    Old ids keep their bytes, special tokens keep their ids, and text that no new merge applies to encodes exactly as
    before (see the module docstring). Stops early when the documents run out of pairs. Raises InputError when the
    result would not fit a uint16 token shard.
    """
    if isinstance(num_new, bool) or not isinstance(num_new, int) or num_new < 1:
        raise InputError(f"the number of new tokens must be a positive integer, got {num_new!r}")
    if num_new > max_new_tokens(base):
        raise InputError(f"{num_new:,} new tokens would give ids up to {base.vocab_size + num_new - 1:,}, but token "
                         f"shards store ids as uint16 (minigpt/data.py): at most {max_new_tokens(base):,} new "
                         f"tokens fit after this tokenizer's {base.vocab_size:,}")
    documents = list(documents)
    chunks = domain_chunks(base, documents)
    words = [base.encode_ordinary(chunk) for chunk in chunks]
    # Ids up to vocab_size - 1 are taken (special tokens included): a special id among them stays a hole (None).
    vocab = list(base.vocab) + [None] * (base.vocab_size - len(base.vocab))
    extend_merges(words, list(chunks.values()), vocab, num_new, progress=progress)
    ranks = {token: i for i, token in enumerate(vocab) if token is not None}
    return BPETokenizer.from_ranks(ranks, base.pattern, base.special_tokens)


def check_extends(old: BPETokenizer, new: BPETokenizer) -> None:
    """Raise ValueError unless `new` is `old` with tokens added after its last id (same pattern, same specials)."""
    if new.pattern != old.pattern or new.special_tokens != old.special_tokens:
        raise ValueError("the tokenizers differ in their split pattern or special tokens: not an extension")
    if new.vocab_size < old.vocab_size or new.vocab[:len(old.vocab)] != old.vocab:
        raise ValueError("the new tokenizer changes some old id's bytes: not an extension")


def new_tokens(old: BPETokenizer, new: BPETokenizer) -> list[tuple[int, bytes]]:
    """(id, bytes) of the tokens `new` adds to `old`, in the order they were learned."""
    check_extends(old, new)
    return [(i, new.vocab[i]) for i in range(old.vocab_size, len(new.vocab)) if new.vocab[i] is not None]


# --------------------------------------------------------------------------------------------- 4. checking, saving

def mergeable_ranks(tokenizer: BPETokenizer) -> dict[bytes, int]:
    """token bytes -> id for the ordinary tokens: what a .tiktoken rank file lists (special tokens are not in it)."""
    return {token: i for i, token in enumerate(tokenizer.vocab) if token is not None}


def tiktoken_encoding(tokenizer: BPETokenizer, name: str = "minigpt-extended"):
    """The same tokenizer as a tiktoken.Encoding (its Rust encoder is an independent check, and fast)."""
    import tiktoken

    # tiktoken spells GPT-2's pattern with possessive quantifiers; minigpt's is the released one (same splits).
    pattern = TIKTOKEN_R50K_PATTERN if tokenizer.pattern == GPT2_SPLIT_PATTERN else tokenizer.pattern
    if pattern is None:
        raise ValueError("tiktoken needs a split pattern; this tokenizer treats the whole text as one chunk")
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=mergeable_ranks(tokenizer),
                             special_tokens=dict(tokenizer.special_tokens), explicit_n_vocab=tokenizer.vocab_size)


def save_tiktoken_ranks(tokenizer: BPETokenizer, path: str | Path) -> Path:
    """Write the ordinary tokens as a .tiktoken rank file (`<base64 bytes> <id>` per line, by id), atomically.

    minigpt.tokenizer.load_tiktoken_ranks reads it back; the special tokens and the split pattern are not part of
    the format (tiktoken takes them as arguments), so they are kept in minigpt's own file (BPETokenizer.save).
    """
    lines = [f"{base64.b64encode(token).decode('ascii')} {i}" for token, i in mergeable_ranks(tokenizer).items()]
    return write_text_atomic(path, "\n".join(lines) + "\n", newline="\n")


def compression(tokenizer, text: str) -> dict[str, float]:
    """Tokens, characters and UTF-8 bytes of `text`, with tokens per character and bytes per token."""
    tokens = len(tokenizer.encode_ordinary(text))
    chars, num_bytes = len(text), len(text.encode("utf-8"))
    return {"tokens": tokens, "chars": chars, "bytes": num_bytes, "tokens_per_char": tokens / chars,
            "bytes_per_token": num_bytes / tokens}


def show_token(token: bytes) -> str:
    """A token as readable text: its characters, or its bytes in hex where it cuts a UTF-8 character."""
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        return token.hex(" ")
