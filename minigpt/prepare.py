"""Chapter 2: preparing a corpus once — text files tokenized into the token shards that minigpt/data.py reads.

    python -m minigpt.prepare --input FILES_OR_FOLDERS... --out DIR [--val-fraction 0.005]

Read it in this order: `iter_documents` (what counts as a document in a .txt or .jsonl file), `_ShardWriter` (one
split's token stream cut into shard files), `prepare_shards` (documents sent whole to train or validation, then the
manifest `meta.json`, written last), and `main`, the command line. The shard format is described in minigpt/data.py.
A repeated run with the same inputs and settings sees the matching `meta.json` and does nothing.
"""
from __future__ import annotations

import argparse
import codecs
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minigpt import cli
from minigpt.data import EOT, META_FILE, SHARD_DTYPE, SHARD_VERSION, read_shard, write_shard
from minigpt.files import InputError, remove_stale_temporaries, write_bytes_atomic

PROG = "python -m minigpt.prepare"
# Each split keeps one shard's tokens in memory while it fills (2 bytes a token): 2**30 tokens make 2 GiB.
MAX_SHARD_TOKENS = 2 ** 30


def _input_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl") and p.is_file())
            if not found:
                raise FileNotFoundError(f"the folder {path} holds no .txt or .jsonl files")
            files.extend(found)
        elif not path.is_file():
            raise FileNotFoundError(f"input {path} does not exist")
        elif path.suffix not in (".txt", ".jsonl"):
            raise InputError(f"input {path}: expected a .txt file (one document, or documents separated by {EOT}) "
                             f"or a .jsonl file (one JSON object with a \"text\" field per line)")
        else:
            files.append(path)
    return files


def iter_documents(path: Path) -> Iterator[str]:
    """The documents of one input file.

    A .txt file is one document, or several when it contains the <|endoftext|> separator (the format of common
    plain-text dumps); surrounding whitespace is trimmed and empty pieces skipped. A .jsonl file has one JSON
    object per line whose "text" field is a document. Bytes that are not UTF-8 are an InputError naming the file
    and the byte offset (and the line, for .jsonl).
    """
    if path.suffix == ".txt":
        pending = ""
        for chunk in _utf8_chunks(path):
            pieces = (pending + chunk).split(EOT)
            pending = pieces.pop()
            yield from (p.strip() for p in pieces if p.strip())
        if pending.strip():
            yield pending.strip()
    elif path.suffix == ".jsonl":
        offset = 0
        with open(path, "rb") as f:
            for line_number, raw in enumerate(f, 1):
                line = _decode_line(raw, path, line_number, offset)
                offset += len(raw)
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{line_number} is not valid JSON ({e})") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise InputError(f"{path}:{line_number}: expected a JSON object with a string \"text\" field")
                if record["text"]:
                    yield record["text"]
    else:
        raise InputError(f"{path}: expected a .txt or .jsonl file")


def _utf8_chunks(path: Path, chunk_bytes: int = 1 << 24) -> Iterator[str]:
    """The file's text, 16 MB at a time (big dumps stream), decoded incrementally so an error knows its byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = 0   # bytes handed to the decoder before this chunk
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            held = len(decoder.getstate()[0])   # the start of a character split across two chunks
            try:
                yield decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise InputError(f"{path}: not UTF-8 text at byte {consumed - held + e.start} ({e.reason}); "
                                 f"convert the file to UTF-8") from None
            consumed += len(chunk)
        try:
            yield decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not UTF-8 text at byte {consumed - len(e.object) + e.start} (the file ends "
                             f"inside a character)") from None


def _decode_line(raw: bytes, path: Path, line_number: int, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}:{line_number}: not UTF-8 text at byte {offset + e.start} ({e.reason}); "
                         f"convert the file to UTF-8") from None


class _ShardWriter:
    """Appends documents (separated by <|endoftext|>) to one split's stream, writing a shard whenever one is full."""

    def __init__(self, out_dir: Path, split: str, shard_tokens: int, eot: int):
        self.out_dir, self.split, self.shard_tokens, self.eot = out_dir, split, shard_tokens, eot
        self.buffer = np.empty(shard_tokens, dtype=SHARD_DTYPE)  # pages are only touched as they fill
        self.filled = 0
        self.tokens = 0
        self.documents = 0
        self.shards: list[dict] = []

    def add_document(self, ids: Sequence[int]) -> None:
        if self.documents:
            self._extend(np.array([self.eot], dtype=SHARD_DTYPE))
        self._extend(np.asarray(ids, dtype=SHARD_DTYPE))
        self.documents += 1

    def _extend(self, ids: np.ndarray) -> None:
        while len(ids):
            take = min(len(ids), self.shard_tokens - self.filled)
            self.buffer[self.filled:self.filled + take] = ids[:take]
            self.filled += take
            self.tokens += take
            ids = ids[take:]
            if self.filled == self.shard_tokens:
                self.flush()

    def flush(self) -> None:
        if self.filled:
            name = f"{self.split}_{len(self.shards):06d}.bin"
            write_shard(self.out_dir / name, self.buffer[:self.filled])
            self.shards.append({"file": name, "tokens": int(self.filled)})
            self.filled = 0


def _prepared_matches(out_dir: Path, settings: dict) -> dict | None:
    """The existing manifest if `out_dir` already holds this exact preparation, complete and intact."""
    meta = out_dir / META_FILE
    if not meta.exists():
        return None
    try:
        manifest = json.loads(meta.read_text())
        if manifest.get("settings") != settings:
            return None
        for split in manifest["splits"].values():
            for shard in split["shards"]:
                if len(read_shard(out_dir / shard["file"])) != shard["tokens"]:
                    return None
    except (OSError, ValueError, KeyError):
        return None
    return manifest


def prepare_shards(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, val_fraction: float = 0.005,
                   shard_tokens: int = 100_000_000, encoding=None, force: bool = False,
                   progress: bool = True) -> dict:
    """Tokenize text files into train/val shards in `out_dir`; return the manifest (also saved as meta.json).

    Documents go to validation whole: a document is sent there whenever validation holds less than `val_fraction`
    of the tokens so far, which keeps the share close to val_fraction all through the corpus without a first pass.
    A repeated call with the same inputs (path, size, modification time) and settings does nothing.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be at least 1, got {shard_tokens}")
    if encoding is None:
        from minigpt.tokenizer import gpt2_tiktoken_encoding
        encoding = gpt2_tiktoken_encoding()
    if encoding.n_vocab > 1 << 16:
        raise ValueError(f"the encoding has {encoding.n_vocab} tokens; uint16 shards hold at most 65536")
    out_dir = Path(out_dir)
    files = _input_files(inputs)
    settings = {
        "format_version": SHARD_VERSION, "encoding": encoding.name, "n_vocab": encoding.n_vocab,
        "val_fraction": val_fraction, "shard_tokens": shard_tokens,
        "inputs": [{"path": str(f.resolve()), "bytes": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns}
                   for f in files],
    }
    if not force and (manifest := _prepared_matches(out_dir, settings)) is not None:
        print(f"{out_dir} already holds these shards (meta.json matches the inputs and settings); nothing to do")
        return manifest

    # Build everything in a temporary folder beside out_dir and swap it in only when complete: a failure (bad input,
    # Ctrl-C, a full disk) leaves the previous preparation exactly as it was. A folder a killed run left behind is
    # removed at the next start (its name carries the dead writer's process id).
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir.parent)
    building = out_dir.parent / f".{out_dir.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    building.mkdir()
    try:
        manifest = _tokenize(files, building, encoding, val_fraction, shard_tokens, progress)
        manifest = {"settings": settings, **manifest}
        write_bytes_atomic(building / META_FILE, json.dumps(manifest, indent=1).encode())   # meta.json last
        _swap_in(building, out_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    for split, info in manifest["splits"].items():
        print(f"{split}: {info['documents']} documents, {info['tokens']:,} tokens in {len(info['shards'])} shards")
    print(f"wrote {out_dir}")
    return manifest


def _tokenize(files: list[Path], out_dir: Path, encoding, val_fraction: float, shard_tokens: int,
              progress: bool) -> dict:
    """Encode every document of `files` into train/val shards in `out_dir`; return the manifest's "splits"."""
    writers = {split: _ShardWriter(out_dir, split, shard_tokens, encoding.eot_token) for split in ("train", "val")}
    bar = tqdm(total=sum(f.stat().st_size for f in files), unit="B", unit_scale=True, desc="tokenizing",
               disable=not progress)
    done_bytes = 0
    for f in files:
        batch: list[str] = []
        batch_chars = 0
        for doc in iter_documents(f):
            batch.append(doc)
            batch_chars += len(doc)
            if len(batch) >= 1024 or batch_chars >= 1 << 24:  # batches keep tiktoken's threads busy, memory bounded
                _encode_batch(batch, encoding, writers, val_fraction)
                batch, batch_chars = [], 0
        if batch:
            _encode_batch(batch, encoding, writers, val_fraction)
        done_bytes += f.stat().st_size
        bar.update(done_bytes - bar.n)  # count markup and separators too, so the bar ends at 100%
    bar.close()
    for writer in writers.values():
        writer.flush()
    if writers["train"].tokens == 0:
        raise InputError(f"the inputs hold no training text ({writers['val'].documents} documents, all sent to "
                         f"validation); give more documents or a smaller val_fraction")
    return {"splits": {split: {"tokens": w.tokens, "documents": w.documents, "shards": w.shards}
                       for split, w in writers.items() if w.documents}}


def _encode_batch(docs: list[str], encoding, writers: dict, val_fraction: float) -> None:
    for ids in encoding.encode_ordinary_batch(docs):
        seen = writers["train"].tokens + writers["val"].tokens + len(ids)
        to_val = val_fraction > 0 and writers["val"].tokens < val_fraction * seen
        writers["val" if to_val else "train"].add_document(ids)


def _is_preparation_file(name: str) -> bool:
    return name == META_FILE or (name.endswith(".bin") and name.startswith(("train_", "val_")))


def _swap_in(built: Path, out_dir: Path) -> None:
    """Make the complete folder `built` the new `out_dir`, keeping any files of the user's that out_dir also held."""
    if out_dir.exists():
        for entry in out_dir.iterdir():
            if not _is_preparation_file(entry.name):
                os.replace(entry, built / entry.name)
        retired = out_dir.parent / f".{out_dir.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        os.replace(out_dir, retired)
        os.replace(built, out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(built, out_dir)


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", required=True, metavar="PATH",
                         help=f".txt files (one document each, or split on {EOT}), .jsonl files (a \"text\" "
                              f"field per line), or folders of them")
    parser.add_argument("--out", type=cli.output_folder, required=True,
                        help="output folder for the shards and meta.json")
    parser.add_argument("--val-fraction", type=cli.fraction, default=0.005,
                         help="share of tokens (whole documents) set aside for validation, in [0, 1) "
                              "(default 0.005)")
    parser.add_argument("--shard-tokens", type=cli.int_range(1, MAX_SHARD_TOKENS), default=100_000_000,
                         help=f"tokens per shard file, 1 to {MAX_SHARD_TOKENS:,} (default 100,000,000, i.e. 200 MB)")
    parser.add_argument("--force", action="store_true", help="prepare again even if the outputs match")
    args = parser.parse_args(argv)
    with cli.user_errors(PROG):
        try:
            prepare_shards(args.input, args.out, val_fraction=args.val_fraction, shard_tokens=args.shard_tokens,
                           force=args.force)
        except ValueError as error:
            # prepare_shards reports a bad input file (not UTF-8, a .jsonl line that is not JSON, ...) as a
            # ValueError; the settings it could also refuse were checked by the parser above.
            raise InputError(str(error)) from None


if __name__ == "__main__":
    main(sys.argv[1:])
