"""Chapter 1: a byte-level BPE tokenizer, trained here, and GPT-2's tokenizer rebuilt exactly.

Text is turned into UTF-8 bytes, so any string can be encoded with a base vocabulary of 256 tokens. Byte pair
encoding (BPE) then learns new tokens by repeatedly merging the most frequent adjacent pair of tokens. A regex
first cuts text into chunks (words, numbers, punctuation, whitespace) so that merges never cross those borders.
Encoding replays the merges by rank; with GPT-2's rank file and split pattern it gives exactly tiktoken's ids.

Read it in this order:
  1. count_pairs, merge             the two operations BPE is made of
  2. train_merges_naive             training as in the textbook: recount every pair after every merge
  3. train_merges                   the same merges, fast: only the counts a merge changed are updated
  4. BPETokenizer                   pre-tokenization, training, encode/decode, special tokens, save/load
  5. gpt2_tokenizer                 GPT-2's vocabulary from data/gpt2.tiktoken (and gpt2_tiktoken_encoding)
  6. minigpt/long_pieces.py         speed only: the same tokens for long chunks (a line of 10,000 '=' is one)

What it does not do: no normalisation (NFC/NFKC) and no byte fallback tricks; special tokens are recognised only
when `encode` is told to allow them. Its speed against tiktoken and Hugging Face `tokenizers` is measured by
`python -m minigpt.bench_tokenizer` (results in minigpt/TOKENIZER_BENCHMARK.md).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import json
import operator
import re
from collections import Counter, defaultdict
from itertools import chain
from pathlib import Path
from typing import Collection, Iterable, Literal

import regex

from minigpt.files import write_text_atomic
from minigpt.long_pieces import bpe_long

# GPT-2's pre-tokenization pattern, as released with GPT-2. Its alternatives, tried left to right at each position:
#   's|'t|'re|'ve|'m|'ll|'d   English contractions (lower case only: "DON'T" splits differently from "don't")
#    ?\p{L}+                  a run of letters, with at most one space in front: " hello"
#    ?\p{N}+                  a run of digits (any script), with at most one space in front: " 2024"
#    ?[^\s\p{L}\p{N}]+        a run of everything else (punctuation, symbols, emoji): " (){"
#   \s+(?!\S)                 whitespace not followed by a non-space: all of a run but its last character,
#                             which stays to become the leading space of the next word; or a run at the end
#   \s+                       any remaining whitespace (a single newline or tab before a word)
# tiktoken writes the same pattern with possessive quantifiers; both split every string identically.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# The same pattern for text that is pure ASCII, where \p{L} is [A-Za-z], \p{N} is [0-9] and \s is [\t\n\v\f\r ].
# Python's own `re` runs it about twice as fast as the `regex` module runs the Unicode one (see pre_tokenize).
GPT2_ASCII_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\t\n\x0b\x0c\r A-Za-z0-9]+"""
                      r"""|[\t\n\x0b\x0c\r ]+(?![^\t\n\x0b\x0c\r ])|[\t\n\x0b\x0c\r ]+""")
# tiktoken's r50k_base spelling of it, used for the tiktoken Encoding so the tests compare two independent regexes.
TIKTOKEN_R50K_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

REPO_ROOT = Path(__file__).resolve().parent.parent
GPT2_RANKS_PATH = REPO_ROOT / "data" / "gpt2.tiktoken"
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_ENDOFTEXT = "<|endoftext|>"
GPT2_EOT_ID = 50256   # its id: right after the 50,256 byte-level tokens; GPT-2 also pads and stops with it

FORMAT_HEADER = "minigpt-bpe 1"


# ---------------------------------------------------------------------------------------------------------------
# 1. The two operations of BPE.

def count_pairs(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict[tuple[int, int], int]:
    """Add `weight` to `counts` for every adjacent pair in `ids`: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, left to right: merge([5, 5, 5], (5, 5), 9) -> [9, 5]."""
    first, second = pair
    merged = []
    i = 0
    while i < len(ids):
        if ids[i] == first and i + 1 < len(ids) and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def _add_token(vocab: list[bytes], ids_of: dict[bytes, int], pair: tuple[int, int]) -> int:
    """The id for the merge of `pair`: a new token, or the existing one when its bytes are already a token."""
    # Two different splits can spell the same bytes ("a"+"bc" after "ab"+"c"). Giving them one id keeps every
    # token's bytes unique, which is what encoding by rank (and tiktoken) requires.
    token = vocab[pair[0]] + vocab[pair[1]]
    if token not in ids_of:
        ids_of[token] = len(vocab)
        vocab.append(token)
    return ids_of[token]


# ---------------------------------------------------------------------------------------------------------------
# 2. Training, the naive way. `words` are the distinct chunks of the training text as token ids, each counted once
# with its number of occurrences in `counts`: "the" appearing 10,000 times is one word of weight 10,000.
# Ties between equally frequent pairs go to the smallest pair of ids, (first, second) compared as a tuple, so the
# merges depend only on the text and the vocabulary size.

def train_merges_naive(words: list[list[int]], counts: list[int], vocab: list[bytes],
                       vocab_size: int) -> list[tuple[tuple[int, int], int]]:
    """Merge the most frequent pair until `vocab` (extended in place) has `vocab_size` tokens; recount every time.

    Returns the merges in order, as ((first, second), new_id). Stops early if no pair is left to merge.
    """
    words = [list(word) for word in words]
    ids_of = {token: i for i, token in enumerate(vocab)}
    merges = []
    while len(vocab) < vocab_size:
        pair_counts: dict[tuple[int, int], int] = {}
        for word, count in zip(words, counts):
            count_pairs(word, pair_counts, count)
        if not pair_counts:
            break
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        new_id = _add_token(vocab, ids_of, best)
        words = [merge(word, best, new_id) for word in words]
        merges.append((best, new_id))
    return merges


# ---------------------------------------------------------------------------------------------------------------
# 3. Training, fast. The naive loop recounts every pair of every word for each merge, although a merge changes only
# the words that contain its pair. Here the pair counts are kept from one merge to the next, an index says which
# words contain each pair, and a heap finds the most frequent pair. After merging (a, b) -> n in a word, the word's
# old pairs are subtracted and its new ones added; only pairs containing n can have grown.
#
# The heap holds (-count, pair) entries that may be stale: when a count drops, its old entry stays. An entry whose
# count no longer matches is pushed back with the current count when popped. Every entry is at least the pair's
# true count, so the first entry that does match is the true maximum, with the same tie-break as the naive loop.

def pair_index(words: list[list[int]], counts: list[int]) -> tuple[dict, dict, list]:
    """What the fast loop keeps: pair -> count, pair -> indices of the words that contain it, a heap of (-count, pair).

    Chapter 11's continued training (minigpt/vocab.py) starts from the same three.
    """
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    words_with: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            words_with[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    return pair_counts, words_with, heap


def train_merges(words: list[list[int]], counts: list[int], vocab: list[bytes], vocab_size: int,
                 progress: bool = False) -> list[tuple[tuple[int, int], int]]:
    """Exactly the merges of `train_merges_naive`, without recounting (see the comment above)."""
    words = [list(word) for word in words]
    ids_of = {token: i for i, token in enumerate(vocab)}
    pair_counts, words_with, heap = pair_index(words, counts)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=max(vocab_size - len(vocab), 0), desc="BPE merges", unit="merge")
    merges = []
    while len(vocab) < vocab_size and heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negative_count:
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        vocab_before = len(vocab)
        new_id = _add_token(vocab, ids_of, pair)
        merges.append((pair, new_id))
        grown = set()
        for i in words_with.pop(pair):
            word = words[i]
            new_word = merge(word, pair, new_id)
            if len(new_word) == len(word):  # the index may list words that lost the pair in an earlier merge
                continue
            count = counts[i]
            for old_pair in zip(word, word[1:]):
                pair_counts[old_pair] -= count
            for new_pair in zip(new_word, new_word[1:]):
                pair_counts[new_pair] += count
                if new_id in new_pair:
                    words_with[new_pair].add(i)
                    grown.add(new_pair)
            words[i] = new_word
        del pair_counts[pair]  # every occurrence was merged: its count is now 0
        for new_pair in grown:
            heapq.heappush(heap, (-pair_counts[new_pair], new_pair))
        if bar is not None:
            bar.update(len(vocab) - vocab_before)
    if bar is not None:
        bar.close()
    return merges


# ---------------------------------------------------------------------------------------------------------------
# Encoding one chunk: start from single bytes and keep merging the adjacent pair whose concatenation has the lowest
# rank (token id), the leftmost one on a tie, until no adjacent pair is a token. This is tiktoken's rule. It replays
# the training merges in order, and needs no merge list: the vocabulary's bytes -> id map is enough.

INFINITY = float("inf")


def bpe_by_rank(piece: bytes, ranks: dict[bytes, int], max_rank: float = INFINITY) -> list[bytes]:
    """Split `piece` into tokens by merging the lowest-ranked adjacent pair first (ranks below `max_rank` only)."""
    parts = [piece[i:i + 1] for i in range(len(piece))]
    pair_ranks = [ranks.get(a + b, INFINITY) for a, b in zip(parts, parts[1:])]
    while pair_ranks:
        best = min(pair_ranks)
        if best >= max_rank:
            break
        i = pair_ranks.index(best)  # the leftmost of the lowest
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        # Only the pairs on both sides of the merged token changed.
        if i > 0:
            pair_ranks[i - 1] = ranks.get(parts[i - 1] + parts[i], INFINITY)
        if i < len(pair_ranks):
            pair_ranks[i] = ranks.get(parts[i] + parts[i + 1], INFINITY)
    return parts


class _ChunkCache(dict):
    """chunk text -> token ids; a missing chunk is encoded on first use and remembered."""

    def __init__(self, encode_chunk):
        super().__init__()
        self.encode_chunk = encode_chunk

    def __missing__(self, chunk: str) -> list[int]:
        ids = self.encode_chunk(chunk)
        if len(chunk) <= 256:  # long chunks rarely repeat; keep the memory for the words that do
            self[chunk] = ids
        return ids


def _well_formed(text: str) -> str:
    """tiktoken's treatment of surrogates: pairs become the character they encode, lone ones U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


# ---------------------------------------------------------------------------------------------------------------
# 4. The tokenizer.

class BPETokenizer:
    """A byte-level BPE tokenizer: ids 0..255 (for a fresh one) are the bytes, later ids are merges, then specials.

    `pattern` is the pre-tokenization regex (GPT-2's by default); `pattern=None` treats the whole text as one chunk,
    the plain BPE of the textbook, whose merges can cross word borders ("e t" from "the tree").
    """

    CACHE_LIMIT = 500_000  # cached chunks before the cache starts over (bounds memory on huge corpora)
    BLOCK_SIZE = 2_000  # characters per block when choosing between the ASCII and the Unicode split (pre_tokenize)

    def __init__(self, pattern: str | None = GPT2_SPLIT_PATTERN):
        self.pattern = pattern
        self._split = regex.compile(pattern) if pattern is not None else None
        self._ascii_split = re.compile(GPT2_ASCII_PATTERN) if pattern in _GPT2_PATTERNS else None
        self._set_vocab([bytes([b]) for b in range(256)], merges={}, special_tokens={})

    def _set_vocab(self, vocab: list[bytes | None], merges: dict[tuple[int, int], int] | None,
                   special_tokens: dict[str, int]) -> None:
        # id -> bytes, for the byte and merged tokens. None marks an id held by a special token among the ordinary
        # ones: chapter 11 adds tokens to GPT-2's after its <|endoftext|> = 50256, which keeps its id.
        self.vocab = vocab
        self._ranks = {token: i for i, token in enumerate(vocab) if token is not None}
        holes = {i for i, token in enumerate(vocab) if token is None}
        if len(self._ranks) + len(holes) != len(vocab):
            raise ValueError("two token ids have the same bytes; a BPE vocabulary spells each token once")
        if not holes <= set(special_tokens.values()):
            raise ValueError(f"ids {sorted(holes - set(special_tokens.values()))[:5]} have no token: an id among "
                             f"the ordinary tokens may only be left empty for a special token")
        self._merges = merges  # None: recovered from the vocabulary when first asked for (see `merges`)
        for text, i in special_tokens.items():
            if not isinstance(text, str) or not text:
                raise ValueError(f"special tokens must be non-empty strings, got {text!r}")
            if not isinstance(i, int) or (i < len(vocab) and i not in holes):
                raise ValueError(f"special token {text!r} has id {i!r}; special ids come after the "
                                 f"{len(vocab)} ordinary tokens (or fill an id left empty for them)")
        if len(set(special_tokens.values())) != len(special_tokens):
            raise ValueError(f"two special tokens share an id: {special_tokens}")
        self.special_tokens = dict(special_tokens)
        self._bytes_of = {i: token for i, token in enumerate(vocab) if token is not None}
        self._bytes_of.update((i, text.encode("utf-8")) for text, i in special_tokens.items())
        self._vocab_size = max(self._bytes_of) + 1
        self._cache = _ChunkCache(self._encode_chunk)

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included (like tiktoken's n_vocab)."""
        return self._vocab_size

    @property
    def merges(self) -> dict[tuple[int, int], int]:
        """(first, second) -> merged id, in the order they were learned."""
        if self._merges is None:
            # A vocabulary loaded from ranks (GPT-2's) has no merge list; each token's merge is found by encoding
            # its bytes with the tokens ranked before it, which leaves exactly two parts in a BPE vocabulary.
            merges = {}
            for i, token in enumerate(self.vocab):
                if token is not None and len(token) > 1:
                    parts = bpe_by_rank(token, self._ranks, max_rank=i)
                    if len(parts) != 2:
                        raise ValueError(f"token {i} ({token!r}) is not the merge of two earlier tokens")
                    merges[(self._ranks[parts[0]], self._ranks[parts[1]])] = i
            self._merges = merges
        return self._merges

    # -- training ---------------------------------------------------------------------------------------------

    def _chunk_counts(self, text: str, special_tokens: Iterable[str]) -> Counter:
        """How often each distinct pre-tokenized chunk occurs; special tokens are cut out and never learned from."""
        text = _well_formed(text)
        specials = sorted(special_tokens, key=len, reverse=True)
        pieces = regex.split("|".join(map(regex.escape, specials)), text) if specials else [text]
        counts: Counter = Counter()
        for piece in pieces:
            counts.update(self.pre_tokenize(piece))
        return counts

    def train(self, text: str, vocab_size: int, special_tokens: list[str] | None = None, *,
              naive: bool = False, progress: bool = False) -> "BPETokenizer":
        """Learn merges from `text` until there are `vocab_size` ids, `special_tokens` included (they get the last ids).

        Starts from the 256 bytes and forgets any earlier vocabulary. Stops early if the text runs out of pairs.
        Each merge takes the most frequent pair, and of equally frequent ones the smallest (first id, second id), so
        the same text and vocab_size always give the same merges. `naive=True` uses the recounting loop (same merges,
        much slower). Returns self.
        """
        special_tokens = list(special_tokens or [])
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256 + len(special_tokens):
            raise ValueError(f"vocab_size must be an int of at least 256 + {len(special_tokens)} special tokens, "
                             f"got {vocab_size!r}")
        if not isinstance(text, str):
            raise TypeError(f"train expects the training text as a str, got {type(text).__name__}")
        if any(not isinstance(s, str) or not s for s in special_tokens) or len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens must be a list of distinct non-empty strings, got {special_tokens!r}")
        chunk_counts = self._chunk_counts(text, special_tokens)
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        vocab = [bytes([b]) for b in range(256)]
        target = vocab_size - len(special_tokens)
        if naive:
            merges = train_merges_naive(words, list(chunk_counts.values()), vocab, target)
        else:
            merges = train_merges(words, list(chunk_counts.values()), vocab, target, progress=progress)
        specials = {text: len(vocab) + k for k, text in enumerate(special_tokens)}
        self._set_vocab(vocab, dict(merges), specials)
        return self

    # -- encoding ---------------------------------------------------------------------------------------------

    def _encode_chunk(self, chunk: str) -> list[int]:
        piece = chunk.encode("utf-8")
        ranks = self._ranks
        if piece in ranks:  # most chunks of ordinary text are a single token
            return [ranks[piece]]
        if len(piece) >= 512:
            return bpe_long(piece, ranks, self.vocab)
        return [ranks[part] for part in bpe_by_rank(piece, ranks)]

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, reading special-token text as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if len(self._cache) > self.CACHE_LIMIT:
            self._cache.clear()
        try:
            return self._encode_chunks(text)
        except UnicodeEncodeError:  # lone surrogates cannot be UTF-8: fix them up the way tiktoken does
            return self._encode_chunks(_well_formed(text))

    def _encode_chunks(self, text: str) -> list[int]:
        # The cache does the work: chunk -> ids, encoded on a miss. map and chain keep the loop out of Python.
        return list(chain.from_iterable(map(self._cache.__getitem__, self.pre_tokenize(text))))

    def pre_tokenize(self, text: str) -> list[str]:
        """The chunks the pattern cuts `text` into, which BPE then encodes one by one (no pattern: the whole text)."""
        if self._split is None:
            return [text] if text else []
        if self._ascii_split is None:
            return self._split.findall(text)
        # A speed-up that gives the same chunks: cut the text into blocks at places where every chunk ends (a
        # whitespace character after a non-whitespace one: no alternative of the pattern continues across that), then
        # split each pure-ASCII block with the ASCII pattern and only the others with the Unicode one.
        chunks = []
        start = 0
        while start < len(text):
            found = _CHUNK_BORDER.search(text, start + self.BLOCK_SIZE)
            end = found.end() if found else len(text)
            block = text[start:end]
            chunks += (self._ascii_split if block.isascii() else self._split).findall(block)
            start = end
        return chunks

    def encode(self, text: str, *, allowed_special: Literal["all"] | Collection[str] = frozenset(),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Token ids of `text`, with tiktoken's rules for special tokens.

        Text spelling an allowed special token becomes its id. By default no special token is allowed and all are
        disallowed: text containing one raises ValueError (it may come from an untrusted user). Pass
        `allowed_special="all"` or a set of them to encode them as special ids, or `disallowed_special=()` to read
        them as ordinary text. As in tiktoken, a name in `allowed_special` that is not a special token of this
        tokenizer is ignored, and any text in `disallowed_special` raises when it occurs, special token or not.
        Where one special token is a prefix of another and both match at one place, tiktoken's choice depends on
        its internal hash order; here the longest allowed one wins. Unlike tiktoken, which reads a bare string as a
        set of characters, a str other than "all" (or None) raises TypeError; any collection will do for a set.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        else:  # only names that are special tokens can match: a chapter may allow <|endoftext|> to any tokenizer
            allowed = set(_string_set(allowed_special, "allowed_special")) & self.special_tokens.keys()
        if disallowed_special == "all":
            disallowed = set(self.special_tokens) - allowed
        else:
            disallowed = set(_string_set(disallowed_special, "disallowed_special"))
        if disallowed:
            if found := _special_regex(frozenset(disallowed)).search(text):
                token = found.group()
                raise ValueError(
                    f"the text contains the special token {token!r}, which is disallowed. To encode it as the "
                    f"special token, pass allowed_special={{{token!r}}} (or 'all'); to encode it as ordinary text, "
                    f"pass disallowed_special=() or a set without it.")
        if not allowed:
            return self.encode_ordinary(text)
        ids = []
        # split with a capture group alternates ordinary text (even positions) and special tokens (odd positions)
        for k, piece in enumerate(_special_regex(frozenset(allowed)).split(text)):
            if k % 2:
                ids.append(self.special_tokens[piece])
            elif piece:
                ids.extend(self.encode_ordinary(piece))
        return ids

    # -- decoding ---------------------------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes the ids stand for."""
        ids = list(ids)
        try:
            return b"".join(map(self._bytes_of.__getitem__, ids))
        except (KeyError, TypeError):
            pass
        for k, i in enumerate(ids):  # slow path: integers of other types (a 0-d tensor), or an error to report
            try:
                ids[k] = operator.index(i)
            except TypeError:
                raise ValueError(f"token ids must be integers, got {i!r}") from None
            if ids[k] not in self._bytes_of:
                raise ValueError(f"{i!r} is not a token id of this tokenizer (ids are 0..{self.vocab_size - 1})")
        return b"".join(map(self._bytes_of.__getitem__, ids))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of the ids; bytes that are not valid UTF-8 (a token sequence cut inside a character) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- saving and loading -----------------------------------------------------------------------------------

    def to_text(self) -> str:
        """The tokenizer as readable text: pattern, the 256 byte tokens, merges in order, special tokens.

        Each merge line reads `merge <new id> <first id> <second id> <the new token's text>`; the text is for people
        (Python repr, b'...' when it is not whole UTF-8) and is ignored when loading.
        """
        lines = [FORMAT_HEADER,
                 "# Tab-separated. byte: id, byte value. merge: new id, first id, second id. special: id, text.",
                 "# The last column of byte and merge lines shows the token's text (Python repr) and is not read back.",
                 f"pattern\t{json.dumps(self.pattern)}"]
        lines += [f"byte\t{i}\t{token[0]}\t{_show(token)}" for i, token in enumerate(self.vocab)
                  if token is not None and len(token) == 1]
        lines += [f"merge\t{new_id}\t{a}\t{b}\t{_show(self.vocab[new_id])}" for (a, b), new_id in self.merges.items()]
        lines += [f"special\t{i}\t{json.dumps(text, ensure_ascii=False)}" for text, i in self.special_tokens.items()]
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        """Write `to_text()` to `path` (atomically)."""
        write_text_atomic(path, self.to_text(), newline="\n")

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        """Read a file written by `save`."""
        path = Path(path)
        return cls.from_text(path.read_text(encoding="utf-8"), str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "the tokenizer text") -> "BPETokenizer":
        """Rebuild a tokenizer from `to_text()`'s output; errors name `source` and the line."""
        lines = text.splitlines()
        if not lines or lines[0] != FORMAT_HEADER:
            raise ValueError(f"{source} is not a minigpt tokenizer file (its first line should be {FORMAT_HEADER!r})")
        pattern, tokens, merges, specials = None, {}, {}, {}
        for number, line in enumerate(lines[1:], start=2):
            if not line or line.startswith("#"):
                continue
            kind, *fields = line.split("\t")
            try:
                if kind == "pattern":
                    pattern = json.loads(fields[0])
                elif kind == "byte":
                    i, value = int(fields[0]), int(fields[1])
                    _define(tokens, i, bytes([value]))
                elif kind == "merge":
                    i, a, b = int(fields[0]), int(fields[1]), int(fields[2])
                    _define(tokens, i, tokens[a] + tokens[b])
                    merges[(a, b)] = i
                elif kind == "special":
                    specials[json.loads(fields[1])] = int(fields[0])
                else:
                    raise ValueError(f"unknown line kind {kind!r}")
            except (ValueError, IndexError, KeyError) as error:
                raise ValueError(f"{source}, line {number}: cannot read {line!r} ({error!r})") from None
        if set(range(max(tokens, default=-1) + 1)) - tokens.keys() - set(specials.values()):
            raise ValueError(f"{source}: token ids must run from 0 without gaps (but for special tokens' ids)")
        tokenizer = cls(pattern)
        tokenizer._set_vocab([tokens.get(i) for i in range(max(tokens, default=-1) + 1)], merges, specials)
        return tokenizer

    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], pattern: str | None,
                   special_tokens: dict[str, int] | None = None) -> "BPETokenizer":
        """A tokenizer from tiktoken-style mergeable ranks (token bytes -> id), as in a .tiktoken file."""
        special_tokens = dict(special_tokens or {})
        ids = set(ranks.values())
        size = max(ids, default=-1) + 1
        if len(ids) != len(ranks) or min(ids, default=0) < 0 or set(range(size)) - ids - set(special_tokens.values()):
            raise ValueError("the ranks must be the ids 0..n-1, each once (but for ids that special tokens hold)")
        vocab: list[bytes | None] = [None] * size   # None: an id a special token holds (see _set_vocab)
        for token, i in ranks.items():
            vocab[i] = token
        if sum(token is not None and len(token) == 1 for token in vocab) != 256:
            raise ValueError("the ranks must include all 256 single bytes, or some text could not be encoded")
        tokenizer = cls(pattern)
        tokenizer._set_vocab(vocab, None, special_tokens)
        return tokenizer

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"


_GPT2_PATTERNS = (GPT2_SPLIT_PATTERN, TIKTOKEN_R50K_PATTERN)
_CHUNK_BORDER = regex.compile(r"\S(?=\s)")  # its end is a place where every GPT-2 chunk ends


def _string_set(value, name: str) -> Collection[str]:
    if isinstance(value, str) or not isinstance(value, Collection) or not all(isinstance(s, str) for s in value):
        raise TypeError(f"{name} must be 'all' or a collection of special-token strings such as "
                        f"{{'<|endoftext|>'}}, got {value!r}")
    return value


@functools.lru_cache(maxsize=64)
def _special_regex(specials: frozenset[str]) -> regex.Pattern:
    # Longest first, so that a special token that starts with another one wins.
    return regex.compile("(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")")


def _show(token: bytes) -> str:
    try:
        return repr(token.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(token)


def _define(tokens: dict[int, bytes], i: int, token: bytes) -> None:
    if i in tokens and tokens[i] != token:
        raise ValueError(f"id {i} is defined twice, as {tokens[i]!r} and {token!r}")
    tokens[i] = token


# ---------------------------------------------------------------------------------------------------------------
# 5. GPT-2's tokenizer (tiktoken's r50k_base) from the rank file shipped in data/ (see data/GPT2_VOCAB.md).

def load_tiktoken_ranks(path: str | Path, sha256: str | None = None) -> dict[bytes, int]:
    """Read a .tiktoken file (lines `<base64 token bytes> <rank>`), checking its sha256 when one is given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rank file {path} not found; the repository ships data/gpt2.tiktoken (see "
                                f"data/GPT2_VOCAB.md): install minigpt from a clone with `pip install -e .` (a wheel "
                                f"does not carry data/), or pass the file's path")
    data = path.read_bytes()
    if sha256 is not None and (actual := hashlib.sha256(data).hexdigest()) != sha256:
        raise ValueError(f"{path} has sha256 {actual}, expected {sha256}: the file is damaged or not GPT-2's")
    ranks = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if line:
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
            except ValueError:
                raise ValueError(f"{path}, line {number}: expected '<base64> <rank>', got {line[:80]!r}") from None
    return ranks


def gpt2_tokenizer(path: str | Path = GPT2_RANKS_PATH) -> BPETokenizer:
    """GPT-2's tokenizer: 50,256 byte-level BPE tokens plus <|endoftext|> = 50256, identical to tiktoken's."""
    ranks = load_tiktoken_ranks(path, GPT2_RANKS_SHA256)
    return BPETokenizer.from_ranks(ranks, GPT2_SPLIT_PATTERN, {GPT2_ENDOFTEXT: GPT2_EOT_ID})


def gpt2_tiktoken_encoding(path: str | Path = GPT2_RANKS_PATH):
    """A tiktoken Encoding for GPT-2 built from the shipped file, offline (tiktoken.get_encoding downloads).

    Same ids as `gpt2_tokenizer()`, computed in Rust: the fast choice for tokenizing large corpora.
    """
    import tiktoken

    ranks = load_tiktoken_ranks(path, GPT2_RANKS_SHA256)
    return tiktoken.Encoding(name="gpt2", pat_str=TIKTOKEN_R50K_PATTERN, mergeable_ranks=ranks,
                             special_tokens={GPT2_ENDOFTEXT: GPT2_EOT_ID}, explicit_n_vocab=GPT2_EOT_ID + 1)


def end_of_text_id(tokenizer) -> int | None:
    """The id of <|endoftext|> in a BPETokenizer (its special_tokens) or a tiktoken Encoding; None if it has none."""
    special = getattr(tokenizer, "special_tokens", None)
    if isinstance(special, dict):
        return special.get(GPT2_ENDOFTEXT)
    special_set = getattr(tokenizer, "special_tokens_set", None)   # tiktoken's Encoding
    if special_set is not None and GPT2_ENDOFTEXT in special_set:
        return tokenizer.eot_token
    return None
