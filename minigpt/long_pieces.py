"""Chapter 1, speed only: BPE on long pieces, with exactly minigpt.tokenizer.bpe_by_rank's result.

bpe_by_rank rescans the piece after every merge: quadratic in its length. Merge levels: while the lowest-ranked pair is (a, b) and no pair a merge creates ranks
lower, BPE merges the occurrences of (a, b) one after another from the left, never overlapping: what str.replace
does. With each token written as one character, chr(id), a whole level is one replace, run in C. A level is taken
only if no pair that can arise next to the new token, (x, new) or (new, x) for any x present, ranks lower (a test
that may refuse a safe level, never admits an unsafe one); the heap finishes what levels leave. No other pair can
spell the new token where it is lowest: each occurrence of its bytes went through the same merges. Levels pay on
repetitive pieces (200,000 "a" take a dozen); a piece of many distinct tokens goes to the heap at once.

BPETokenizer sends a chunk here when it is long (a line of 10,000 "=" is one chunk); the tokens are the same as the
short-piece code's, only found faster. Nothing else in minigpt needs this file.
"""
from __future__ import annotations

import heapq
import sys

INFINITY = float("inf")   # the rank of a pair that is not a token

_MAX_LEVEL_SYMBOLS = 8  # distinct tokens in a piece beyond which the heap takes over
_MAX_LEVELS = 64  # bounds the scans of one piece when a vocabulary makes levels short


def bpe_long(piece: bytes, ranks: dict[bytes, int], vocab: list[bytes]) -> list[int]:
    """The ids of `bpe_by_rank(piece, ranks)` for a long piece: whole merge levels while they are safe, then a heap."""
    byte_ids = [ranks[bytes([b])] for b in range(256)]
    # Levels need the bytes to be ids 0-255 (as in GPT-2's and every trained vocabulary) and each id a character.
    if max(byte_ids) > 255 or len(vocab) > sys.maxunicode + 1:
        return [ranks[part] for part in _bpe_by_heap([piece[i:i + 1] for i in range(len(piece))], ranks)]
    text, finished = _merge_levels(piece.translate(bytes(byte_ids)).decode("latin-1"), ranks, vocab)
    if finished:
        return list(map(ord, text))
    return [ranks[part] for part in _bpe_by_heap([vocab[ord(c)] for c in text], ranks)]


def _merge_levels(text: str, ranks: dict[bytes, int], vocab: list[bytes]) -> tuple[str, bool]:
    """Merge whole levels of `text` (a token id per character); True once no pair is left, False at an unsafe level."""
    def rank(a: str, b: str) -> float:
        return ranks.get(vocab[ord(a)] + vocab[ord(b)], INFINITY)

    for _ in range(_MAX_LEVELS):
        symbols = set(text)
        if len(symbols) > _MAX_LEVEL_SYMBOLS:
            break
        candidates = sorted((r, a + b) for a in symbols for b in symbols if (r := rank(a, b)) < INFINITY)
        best, pair = next(((r, pair) for r, pair in candidates if pair in text), (None, None))
        if pair is None:
            return text, True
        new = chr(best)
        if any(min(rank(x, new), rank(new, x)) < best for x in symbols | {new}):
            break  # a pair this level may create would be merged before the rest of the level
        text = text.replace(pair, new)
    return text, False


def _bpe_by_heap(parts: list[bytes], ranks: dict[bytes, int]) -> list[bytes]:
    """`bpe_by_rank` continued from `parts`, the tokens of one piece so far: a heap and a linked list, O(n log n).

    The heap holds (rank, index) for adjacent pairs; the index (a part's position) makes ties go to the leftmost
    pair. An entry is stale if its pair changed since it was pushed; the pair's bytes then changed too, and so its rank.
    """
    n = len(parts)
    alive = dict(enumerate(parts))  # index -> token bytes, for the tokens still alive
    next_start = list(range(1, n + 1))
    prev_start = list(range(-1, n - 1))
    heap = [(rank, i) for i in range(n - 1) if (rank := ranks.get(parts[i] + parts[i + 1])) is not None]
    heapq.heapify(heap)
    while heap:
        rank, i = heapq.heappop(heap)
        j = next_start[i] if i in alive else n
        if j >= n or ranks.get(alive[i] + alive[j]) != rank:
            continue
        alive[i] += alive.pop(j)
        next_start[i] = next_start[j]
        if next_start[i] < n:
            prev_start[next_start[i]] = i
            if (right := ranks.get(alive[i] + alive[next_start[i]])) is not None:
                heapq.heappush(heap, (right, i))
        if (p := prev_start[i]) >= 0 and (left := ranks.get(alive[p] + alive[i])) is not None:
            heapq.heappush(heap, (left, p))
    return list(alive.values())  # a dict keeps the order its keys were added in: left to right
