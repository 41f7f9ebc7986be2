"""Chapter 2: turning text into training examples, from one story to sharded corpora and mixtures of sources.

A language model learns to predict the next token, so every training example is a window of `max_length` token
ids (the inputs) paired with the same window moved one token to the right (the targets). `GPTDataset` slides such
windows over one long stream of ids in which documents are joined by `<|endoftext|>` (by a blank line when the
tokenizer has no such token, as one trained in chapter 1 without special tokens); a corpus too large for
memory is tokenized once into binary shards (minigpt/prepare.py) that `ShardDataset` reads through memory maps, and
`MixedDataset` draws windows from several sources with chosen probabilities (say 20% domain text, 80% general).

Token shard format (version 1), one file per shard, named `train_000000.bin`, `val_000000.bin`, ...:

    bytes 0-3    magic b"MGTK"
    bytes 4-7    format version, uint32 little-endian (1)
    bytes 8-15   number of tokens N, uint64 little-endian
    bytes 16-    N token ids, uint16 little-endian (so the vocabulary must have at most 65536 entries)

Within a split, documents are separated by one `<|endoftext|>` id, and the stream continues from one shard into
the next. minigpt/prepare.py writes shards from text files (`python -m minigpt.prepare --input ... --out DIR`), with
a `meta.json` (settings, inputs, shard list) written last, so a folder with a `meta.json` holds a complete
preparation.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from minigpt.files import InputError, write_bytes_atomic
from minigpt.tokenizer import end_of_text_id

EOT = "<|endoftext|>"
FALLBACK_SEPARATOR = "\n\n"  # between documents when the tokenizer has no <|endoftext|> (see document_separator)
STORIES_DIR = Path(__file__).resolve().parent.parent / "data" / "stories"

SHARD_MAGIC = b"MGTK"
SHARD_VERSION = 1
SHARD_HEADER = struct.Struct("<4sIQ")  # magic, version, token count: 16 bytes, so the ids start 2-byte aligned
SHARD_DTYPE = np.dtype("<u2")
META_FILE = "meta.json"


# ---------------------------------------------------------------------------------------------------------------
# Documents and token ids

def _encode_ordinary(tokenizer, text: str) -> list[int]:
    # A document's own text is ordinary text: a literal "<|endoftext|>" inside it must not become the separator.
    if hasattr(tokenizer, "encode_ordinary"):
        return list(tokenizer.encode_ordinary(text))
    return list(tokenizer.encode(text, allowed_special=set(), disallowed_special=()))


def document_separator(tokenizer) -> list[int]:
    """The ids put between two documents: the <|endoftext|> id, or the ids of a blank line if the tokenizer has none.

    A tokenizer trained in chapter 1 without special tokens has no id that could only mean "a new document starts";
    a blank line (FALLBACK_SEPARATOR, read as ordinary text) at least keeps the last word of one document from
    running into the first of the next. Train with special_tokens=["<|endoftext|>"] for a true separator.
    """
    eot = end_of_text_id(tokenizer)
    return [int(eot)] if eot is not None else _encode_ordinary(tokenizer, FALLBACK_SEPARATOR)


def load_stories(folder: str | os.PathLike | None = None) -> list[str]:
    """The texts of the `.txt` files in `folder` (default: the bundled data/stories), in sorted file-name order.

    A folder that is missing or holds no .txt file raises FileNotFoundError; a story that is not UTF-8 text or
    holds nothing but whitespace raises InputError naming the file (and, for bad UTF-8, the byte offset).
    """
    folder = Path(folder) if folder is not None else STORIES_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected a folder of .txt stories (data/stories)")
    files = sorted(f for f in folder.glob("*.txt") if f.is_file())
    if not files:
        raise FileNotFoundError(f"{folder} holds no .txt files; expected one story per .txt file")
    return [read_story(f) for f in files]


def read_story(path: str | os.PathLike) -> str:
    """One story file's text, stripped, with "\\n" newlines; InputError if it is not UTF-8 or holds no text."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text: byte {e.start} is {e.object[e.start:e.start + 1]!r} "
                         f"({e.reason}); save the story as UTF-8") from None
    # Decoding the bytes whole (not through a text-mode file) keeps the error's offset the file's own; the newlines
    # are then made "\n" as text mode would. The newline that ends a file is not part of the story; stripping it
    # keeps document boundaries clean.
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise InputError(f"{path} holds no text; remove it or write a story into it")
    return text


def join_documents(docs: Sequence[str], tokenizer) -> list[int]:
    """Token ids of all documents, each encoded alone as ordinary text, with `document_separator` between neighbours.

    With an <|endoftext|> token that is one id, and the result equals tiktoken's encoding of
    "<|endoftext|>".join(docs) with that token allowed; without one, the separator is the ids of a blank line.
    """
    if isinstance(docs, str) or not docs:
        raise ValueError("join_documents expects a non-empty list of document strings")
    separator = document_separator(tokenizer)
    ids: list[int] = []
    for i, doc in enumerate(docs):
        if i:
            ids.extend(separator)
        ids.extend(_encode_ordinary(tokenizer, doc))
    return ids


def split_ids(ids, val_fraction: float = 0.1):
    """Cut a token sequence into (train, validation): the last `val_fraction` of the tokens validate.

    A cut at the end rather than a random sample keeps validation text unseen as a whole: with overlapping windows,
    randomly chosen validation windows would share most of their tokens with training windows.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and (n_val == 0 or n_val == len(ids)):
        raise ValueError(f"{len(ids)} tokens are too few to set {val_fraction:.1%} aside for validation")
    cut = len(ids) - n_val
    return ids[:cut], ids[cut:]


# ---------------------------------------------------------------------------------------------------------------
# Sliding windows over one token stream

def stack_pairs(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) windows stacked into one (batch, tokens) inputs tensor and one targets tensor."""
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


class GPTDataset(Dataset):
    """(inputs, targets) windows of `max_length` ids over one token stream; targets are inputs shifted by one.

    Windows start every `stride` tokens (stride < max_length overlaps them, stride == max_length tiles them). When
    the regular windows stop short of the end, one more window is aligned to the end, so no token is ever dropped:
    a long document is cut into many windows, never truncated to its first.
    """

    def __init__(self, token_ids, max_length: int, stride: int):
        ids = token_ids.long() if torch.is_tensor(token_ids) else torch.from_numpy(np.array(token_ids, np.int64))
        if ids.ndim != 1:
            raise ValueError(f"token_ids must be one flat sequence of ids, got shape {tuple(ids.shape)}")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        if not 1 <= stride <= max_length:
            raise ValueError(f"stride must be between 1 and max_length={max_length} (a larger stride would skip "
                             f"tokens), got {stride}")
        if len(ids) < max_length + 1:
            raise ValueError(f"max_length={max_length} needs at least {max_length + 1} tokens (the targets reach one "
                             f"token further than the inputs), but the data has {len(ids)}; use a smaller max_length "
                             f"or more text")
        last_start = len(ids) - (max_length + 1)
        starts = list(range(0, last_start + 1, stride))
        if starts[-1] != last_start:
            starts.append(last_start)
        self.token_ids = ids
        self.max_length = max_length
        self.stride = stride
        self.starts = torch.tensor(starts, dtype=torch.long)

    @classmethod
    def from_text(cls, text: str, tokenizer, max_length: int, stride: int) -> "GPTDataset":
        """Tokenize `text` and window it; each <|endoftext|> written in it separates documents.

        The ids are `join_documents(text.split("<|endoftext|>"), tokenizer)`: with any tokenizer, so one without
        that token gets a blank line at each (see document_separator); other special-token text is ordinary text.
        """
        return cls(join_documents(text.split(EOT), tokenizer), max_length, stride)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(self.starts[index])
        window = self.token_ids[start:start + self.max_length + 1]
        return window[:-1], window[1:]


def create_dataloader(text_or_ids, batch_size: int = 4, max_length: int = 256, stride: int = 128,
                      shuffle: bool = True, drop_last: bool = True, num_workers: int = 0, seed: int = 123,
                      tokenizer=None) -> DataLoader:
    """A DataLoader of (inputs, targets) batches of shape (batch_size, max_length) from text, documents or ids.

    `text_or_ids`: a string (an <|endoftext|> in it separates documents, see GPTDataset.from_text), a list of
    document strings (joined by join_documents), or a sequence of token ids. `tokenizer`: GPT-2's by default, or
    any chapter 1 BPETokenizer, with or without an <|endoftext|> special token.
    The loader shuffles with its own generator seeded by `seed`, so the order of batches is the same on every run
    (and differs from epoch to epoch, as the generator moves on).
    """
    if isinstance(text_or_ids, str) or (isinstance(text_or_ids, Sequence) and text_or_ids
                                        and isinstance(text_or_ids[0], str)):
        if tokenizer is None:
            from minigpt.tokenizer import gpt2_tiktoken_encoding  # fast, and gives the same ids as chapter 1's
            tokenizer = gpt2_tiktoken_encoding()
        if isinstance(text_or_ids, str):
            dataset = GPTDataset.from_text(text_or_ids, tokenizer, max_length, stride)
        else:
            dataset = GPTDataset(join_documents(text_or_ids, tokenizer), max_length, stride)
    else:
        dataset = GPTDataset(text_or_ids, max_length, stride)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if drop_last and len(dataset) < batch_size:
        raise ValueError(f"only {len(dataset)} windows of max_length={max_length}, stride={stride}: fewer than "
                         f"batch_size={batch_size}, so drop_last=True would give no batch at all; use a smaller "
                         f"batch_size or stride, more text, or drop_last=False")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers, generator=generator)


# ---------------------------------------------------------------------------------------------------------------
# Visiting windows: a seeded permutation per epoch, one disjoint slice per rank, saveable position

class EpochOrder:
    """Hands out the indices 0..num_items-1 once per epoch, in a random order seeded by (seed, epoch).

    With `world_size` ranks (DistributedDataParallel), rank r takes positions r, r+w, r+2w, ... of the epoch's
    permutation, so ranks never see the same item in an epoch and together they see all of it (up to
    num_items % world_size items, a different few each epoch, left out so every rank takes the same number of
    steps). The order is a function of (seed, epoch), so (epoch, position) is all a checkpoint needs to resume.
    """

    def __init__(self, num_items: int, seed: int = 123, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if num_items < world_size:
            raise ValueError(f"{num_items} items cannot give each of {world_size} ranks at least one")
        self.num_items, self.seed, self.rank, self.world_size = num_items, seed, rank, world_size
        self.per_rank = num_items // world_size
        self.epoch = 0
        self.position = 0
        self._cached: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """This rank's indices for `epoch`, in the order they are visited."""
        if self._cached is None or self._cached[0] != epoch:
            permutation = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            mine = permutation[self.rank:self.per_rank * self.world_size:self.world_size]
            self._cached = (epoch, mine)
        return self._cached[1]

    def next_index(self) -> int:
        index = int(self.order(self.epoch)[self.position])
        self.position += 1
        if self.position == self.per_rank:
            self.epoch, self.position = self.epoch + 1, 0
        return index

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "num_items": self.num_items,
                "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: Mapping) -> None:
        for key in ("seed", "num_items", "rank", "world_size"):
            if state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: the saved state has {key}={state[key]}, this one has "
                                 f"{getattr(self, key)}; the order of windows would not be the same")
        if not 0 <= state["position"] < self.per_rank:
            raise ValueError(f"saved position {state['position']} is outside [0, {self.per_rank})")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


# ---------------------------------------------------------------------------------------------------------------
# Token shards

def write_shard(path: str | os.PathLike, token_ids) -> Path:
    """Write token ids as one shard file (format at the top of this module), atomically."""
    ids = np.asarray(token_ids)
    if ids.ndim != 1:
        raise ValueError(f"a shard holds one flat sequence of ids, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 16):
        raise ValueError(f"shard ids must be in [0, 65536) to fit uint16, got range [{ids.min()}, {ids.max()}]")
    path = Path(path)
    header = SHARD_HEADER.pack(SHARD_MAGIC, SHARD_VERSION, ids.size)
    # Atomic (temporary file, then rename): a reader sees the old shard or the whole new one, never half of it.
    write_bytes_atomic(path, header + ids.astype(SHARD_DTYPE).tobytes())
    return path


def read_shard(path: str | os.PathLike) -> np.memmap:
    """The token ids of a shard as a read-only uint16 memory map (nothing is read into RAM until it is used)."""
    path = Path(path)
    size = path.stat().st_size
    if size < SHARD_HEADER.size:
        raise InputError(f"{path} is {size} bytes, shorter than the {SHARD_HEADER.size}-byte shard header")
    with open(path, "rb") as f:
        magic, version, count = SHARD_HEADER.unpack(f.read(SHARD_HEADER.size))
    if magic != SHARD_MAGIC:
        raise InputError(f"{path} is not a minigpt token shard: magic {magic!r}, expected {SHARD_MAGIC!r}")
    if version != SHARD_VERSION:
        raise InputError(f"{path} has shard format version {version}; this code reads version {SHARD_VERSION}")
    expected = SHARD_HEADER.size + count * SHARD_DTYPE.itemsize
    if size != expected:
        raise InputError(f"{path} is {size} bytes but its header announces {count} tokens ({expected} bytes): "
                         f"the file is damaged or was cut short; prepare it again")
    if count == 0:
        return np.zeros(0, dtype=SHARD_DTYPE)  # np.memmap cannot map zero bytes
    return np.memmap(path, dtype=SHARD_DTYPE, mode="r", offset=SHARD_HEADER.size, shape=(count,))


def shard_paths(source: str | os.PathLike, split: str = "train") -> list[Path]:
    """The shard files of `split`: from a prepared folder's meta.json, its `{split}_*.bin` files, or a glob."""
    source = Path(source)
    if source.is_dir():
        meta = source / META_FILE
        if meta.exists():
            splits = json.loads(meta.read_text())["splits"]
            if split not in splits:
                raise ValueError(f"{meta} has no split {split!r}; it has {sorted(splits)}")
            paths = [source / s["file"] for s in splits[split]["shards"]]
        else:
            paths = sorted(source.glob(f"{split}_*.bin"))
    else:
        paths = sorted(source.parent.glob(source.name))
    if not paths:
        raise FileNotFoundError(f"no {split!r} shards found at {source} (expected {split}_*.bin files written by "
                                f"`python -m minigpt.prepare`)")
    return paths


def check_shards(source: str | os.PathLike, split: str, paths: Sequence[Path], shards: Sequence[np.ndarray],
                 vocab_size: int | None = None) -> None:
    """Check shards once, when they are opened, against meta.json and the model's vocabulary (`vocab_size`).

    An id the model has no embedding for would otherwise stop training with an IndexError at its first batch. So:
    meta.json's token count for each shard must equal the shard header's, the vocabulary the shards were made with
    (meta.json's n_vocab) must fit the model's, and each shard's largest id (one vectorised pass over the memory
    map) must be below both. Raises InputError naming the file.
    """
    meta_path = Path(source) / META_FILE
    limits = {}
    if vocab_size is not None:
        limits["the model's vocabulary"] = vocab_size
    if Path(source).is_dir() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            n_vocab = int(meta["settings"]["n_vocab"])
            listed = {s["file"]: int(s["tokens"]) for s in meta["splits"][split]["shards"]}
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{meta_path} is not a preparation manifest ({type(e).__name__}: {e}); prepare the "
                             f"folder again") from None
        for path, shard in zip(paths, shards):
            if listed.get(path.name) != len(shard):
                raise InputError(f"{path} holds {len(shard)} tokens but {meta_path} lists {listed.get(path.name)}: "
                                 f"the folder mixes two preparations; prepare it again")
        if vocab_size is not None and n_vocab > vocab_size:
            raise InputError(f"{meta_path}: the shards were made with a {n_vocab}-token vocabulary, larger than the "
                             f"model's {vocab_size}; use the tokenizer the model was built for")
        limits[f"the {n_vocab}-token vocabulary in {meta_path}"] = n_vocab
    if not limits:
        return
    what, limit = min(limits.items(), key=lambda item: item[1])
    for path, shard in zip(paths, shards):
        if len(shard) and (largest := int(shard.max())) >= limit:
            raise InputError(f"{path} holds token id {largest}, outside {what} (ids 0..{limit - 1}); the shards "
                             f"and the model must come from the same tokenizer")


class ShardDataset(IterableDataset):
    """(inputs, targets) windows read from memory-mapped token shards, in a seeded order, a disjoint slice per rank.

    Each shard is cut into consecutive windows of max_length + 1 tokens that start every max_length tokens: the
    inputs tile the shard, and a window's last target is the next window's first input, so every token but a
    shard's first is predicted exactly once per epoch. Windows are numbered across all shards and visited through
    an `EpochOrder`. Iterating yields the rest of the current epoch; `next_batch` runs on across epochs; and
    `state_dict()` / `load_state_dict()` save and restore the position exactly.
    """

    def __init__(self, source: str | os.PathLike, split: str = "train", max_length: int = 1024, seed: int = 123,
                 rank: int = 0, world_size: int = 1, vocab_size: int | None = None):
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.paths = shard_paths(source, split)
        self.shards = [read_shard(p) for p in self.paths]
        check_shards(source, split, self.paths, self.shards, vocab_size)
        self.max_length = max_length
        counts = [max(len(s) - 1, 0) // max_length for s in self.shards]
        total_tokens = sum(len(s) for s in self.shards)
        if sum(counts) == 0:
            raise InputError(f"{source}: max_length={max_length} needs shards of at least {max_length + 1} tokens, but the "
                             f"{split!r} shards hold {total_tokens} tokens (longest {max(map(len, self.shards))})")
        self.first_window = np.concatenate([[0], np.cumsum(counts)])  # window number where each shard begins
        self.num_windows = int(self.first_window[-1])
        self.order = EpochOrder(self.num_windows, seed, rank, world_size)

    def window(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window number `index` of all shards (0 <= index < num_windows), independent of the visiting order."""
        if not 0 <= index < self.num_windows:
            raise IndexError(f"window {index} is outside [0, {self.num_windows})")
        shard = int(np.searchsorted(self.first_window, index, side="right")) - 1
        start = (index - int(self.first_window[shard])) * self.max_length
        tokens = torch.from_numpy(self.shards[shard][start:start + self.max_length + 1].astype(np.int64))
        return tokens[:-1], tokens[1:]

    def next_window(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.window(self.order.next_index())

    def next_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next `batch_size` windows stacked to (batch_size, max_length) inputs and targets."""
        return stack_pairs([self.next_window() for _ in range(batch_size)])

    def __len__(self) -> int:
        return self.order.per_rank  # windows this rank sees per epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        _refuse_workers(self)
        epoch = self.order.epoch
        while self.order.epoch == epoch:
            yield self.next_window()

    def state_dict(self) -> dict:
        return {**self.order.state_dict(), "max_length": self.max_length}

    def load_state_dict(self, state: Mapping) -> None:
        if state["max_length"] != self.max_length:
            raise ValueError(f"cannot resume: saved max_length={state['max_length']}, this one {self.max_length}")
        self.order.load_state_dict(state)


def _refuse_workers(dataset) -> None:
    # Each DataLoader worker would get its own copy of the position and hand out the same windows again.
    if get_worker_info() is not None:
        raise RuntimeError(f"{type(dataset).__name__} keeps its own position for exact resume; use it with "
                           f"num_workers=0 (reading a memory map is cheap) or call next_batch()")


# ---------------------------------------------------------------------------------------------------------------
# Mixing sources

class _MapSource:
    """A map-style dataset (len + indexing, like GPTDataset) visited through an EpochOrder."""

    def __init__(self, dataset, seed: int, rank: int, world_size: int):
        self.dataset = dataset
        self.order = EpochOrder(len(dataset), seed, rank, world_size)

    def next_window(self):
        return self.dataset[self.order.next_index()]

    def state_dict(self) -> dict:
        return self.order.state_dict()

    def load_state_dict(self, state: Mapping) -> None:
        self.order.load_state_dict(state)


class MixedDataset(IterableDataset):
    """Windows drawn from several sources, each draw picking source `name` with probability weights[name].

    A source is a ShardDataset (or anything with next_window/state_dict/load_state_dict) or a map-style dataset
    such as GPTDataset, which is then visited in its own seeded order (rank/world_size give each rank a disjoint
    slice of it). The choice of source uses one seeded generator whose state is saved with the sources' positions,
    so a resumed run draws exactly what the uninterrupted one would have. Iteration never ends: a source that runs
    out starts its next epoch, as continued pretraining repeats a small domain corpus while streaming a large one.
    """

    def __init__(self, sources: Mapping[str, object], weights: Mapping[str, float], seed: int = 123,
                 rank: int = 0, world_size: int = 1):
        if not sources:
            raise ValueError("MixedDataset needs at least one source")
        if set(sources) != set(weights):
            raise ValueError(f"weights must name exactly the sources: sources {sorted(sources)}, "
                             f"weights {sorted(weights)}")
        self.names = list(sources)
        raw = np.array([float(weights[n]) for n in self.names])
        if not np.all(np.isfinite(raw)) or np.any(raw < 0) or raw.sum() <= 0:
            raise ValueError(f"weights must be finite, non-negative and not all zero, got {dict(weights)}")
        self.probabilities = dict(zip(self.names, raw / raw.sum()))
        self._cumulative = np.cumsum(raw / raw.sum())
        self._cumulative[-1] = 1.0  # so rounding can never let a uniform draw in [0, 1) fall past the last source
        self.sources = {}
        for i, name in enumerate(self.names):
            source = sources[name]
            if not hasattr(source, "next_window"):
                source_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
                source = _MapSource(source, source_seed, rank, world_size)
            self.sources[name] = source
        self._rng = np.random.default_rng(seed)
        self.counts = dict.fromkeys(self.names, 0)

    def next_source(self) -> str:
        # Inverse-CDF sampling: source i owns the interval [cumulative[i-1], cumulative[i]) of [0, 1).
        name = self.names[int(np.searchsorted(self._cumulative, self._rng.random(), side="right"))]
        self.counts[name] += 1
        return name

    def next_window(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sources[self.next_source()].next_window()

    def next_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return stack_pairs([self.next_window() for _ in range(batch_size)])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        _refuse_workers(self)
        while True:
            yield self.next_window()

    def state_dict(self) -> dict:
        return {"rng": self._rng.bit_generator.state, "counts": dict(self.counts),
                "sources": {name: source.state_dict() for name, source in self.sources.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        if set(state["sources"]) != set(self.names):
            raise ValueError(f"cannot resume: saved sources {sorted(state['sources'])}, these {sorted(self.names)}")
        for name, source in self.sources.items():
            source.load_state_dict(state["sources"][name])
        self._rng.bit_generator.state = state["rng"]
        self.counts = dict(state["counts"])
