"""Chapter 7: the safetensors file format, read and written by hand.

A safetensors file is the simplest way to store named tensors:

    8 bytes      N, the header length (unsigned 64-bit, little-endian)
    N bytes      a JSON header: {"name": {"dtype": "F32", "shape": [768, 2304], "data_offsets": [begin, end]}, ...,
                 "__metadata__": {"format": "pt"}} (optional string metadata), padded with spaces
    the rest     the tensors' raw bytes, little-endian and row-major, each at [begin, end) of this data section

Nothing in it can run code (unlike a pickled .bin checkpoint), and because the bytes are laid out exactly
as they sit in memory, the reader can memory-map the file: a tensor is a view on the file's pages, read
from disk only when touched, never copied twice. The `safetensors` package does the same; it is used
only in the tests, as an oracle.

The reader trusts nothing in a file (see read_header): a damaged or hostile one raises minigpt.files.InputError,
a ValueError whose message names the file, and never makes the reader allocate more than the file holds.
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from minigpt.files import InputError, atomic_open

# The format's dtype names and their torch equivalents.
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
# Newer dtypes, where this torch has them.
for _name, _attr in [("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("U16", "uint16"),
                     ("U32", "uint32"), ("U64", "uint64")]:
    if hasattr(torch, _attr):
        DTYPES[_name] = getattr(torch, _attr)
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}

MAX_HEADER = 100_000_000   # the safetensors package's own limit; a header is a few kB per hundred tensors
# torch keeps sizes and strides as signed 64-bit integers; even an empty tensor's shape must fit (see _check_entry).
MAX_ELEMENTS = 2 ** 63


def _check_byteorder() -> None:
    # The data are little-endian; viewing them as tensors without swapping bytes needs a little-endian CPU
    # (every x86 and ARM machine in practice).
    if sys.byteorder != "little":
        raise RuntimeError("this reader assumes a little-endian machine")


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict], dict[str, str], int]:
    """Return (tensor entries, metadata, offset of the data section) without reading any tensor data.

    Everything the header says is checked against the format before it is used, so that a damaged or hostile
    file raises InputError (naming the file) and never makes the reader allocate what the file does not hold:
    the header length against the file size, the JSON (no duplicate names), each entry's dtype, shape and
    offsets, and the layout, in which the tensors must tile the data section exactly, without gaps or overlaps
    (the format forbids holes, so that no other content can hide in a file).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header_len = _header_length(path, f.read(8), size)
        raw = f.read(header_len)
    header = _parse_header_json(path, raw)
    metadata = _check_metadata(path, header.pop("__metadata__", None))
    for name, entry in header.items():
        _check_entry(path, name, entry)
    _check_layout(path, header, size - 8 - header_len)
    return header, metadata, 8 + header_len


def _header_length(path: Path, first: bytes, size: int) -> int:
    if len(first) < 8:
        raise InputError(f"{path} is not a safetensors file: shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", first)
    if header_len > min(MAX_HEADER, size - 8):
        raise InputError(f"{path} is not a safetensors file (or is truncated): its first 8 bytes announce "
                         f"a {header_len}-byte header in a {size}-byte file")
    return header_len


def _parse_header_json(path: Path, raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant,
                            parse_int=_json_int, parse_float=_finite_float)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: the safetensors header is not UTF-8 text (byte {8 + e.start})") from None
    except RecursionError:
        # json recurses once per nesting level; a header nested thousands deep is damage or an attack
        raise InputError(f"{path}: the safetensors header is nested too deeply to be one") from None
    except ValueError as e:   # JSONDecodeError, a duplicate name, an integer of thousands of digits, ...
        raise InputError(f"{path}: the safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: the safetensors header must be a JSON object, got {type(header).__name__}")
    return header


# Hooks for json.loads that make Python's JSON reader as strict as the safetensors package's (serde_json).
def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"the name {twice!r:.100} appears twice; the format forbids duplicate names")
    return dict(pairs)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _json_int(text: str):
    # serde_json reads -0 as a float, which no size or offset may be; Python would make it the integer 0.
    return -0.0 if text == "-0" else int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


def _check_metadata(path: Path, metadata) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InputError(f"{path}: the header's __metadata__ must map names to strings, got {metadata!r:.200}")
    return metadata


def _is_size(value) -> bool:
    """A JSON integer >= 0 (true and false are ints in Python but not sizes)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(path: Path, name: str, entry) -> None:
    """One tensor's entry: a known dtype, a shape of sizes, and [begin, end] offsets holding exactly its bytes."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise InputError(f"{path}: header entry {name!r} needs dtype, shape and data_offsets, got {entry!r:.200}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise InputError(f"{path}: tensor {name!r} has dtype {dtype!r:.50}; this reader knows {sorted(DTYPES)}")
    if not isinstance(shape, list) or not all(_is_size(n) for n in shape):
        raise InputError(f"{path}: tensor {name!r} has shape {shape!r:.200}; a shape is a list of sizes >= 0")
    # An empty tensor holds no bytes whatever its other sizes, but torch must still be able to describe it.
    if math.prod(max(n, 1) for n in shape) >= MAX_ELEMENTS:
        raise InputError(f"{path}: tensor {name!r} has shape {shape!r:.200}, too large for any tensor")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_size(n) for n in offsets)
            and offsets[0] <= offsets[1]):
        raise InputError(f"{path}: tensor {name!r} has data_offsets {offsets!r:.200}; expected [begin, end] with "
                         f"0 <= begin <= end")
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != expected:
        raise InputError(f"{path}: tensor {name!r} ({dtype} {shape}) needs {expected} bytes, but its data_offsets "
                         f"{offsets} span {offsets[1] - offsets[0]} (a corrupt file)")


def _check_layout(path: Path, header: dict[str, dict], data_size: int) -> None:
    """The tensors, in offset order, must tile [0, data_size) exactly: no gap, no overlap, nothing past the end."""
    reached = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        if begin != reached:
            what = "overlaps the tensor before it" if begin < reached else f"leaves bytes {reached}-{begin} unused"
            raise InputError(f"{path}: tensor {name!r} at data_offsets {[begin, end]} {what} (a corrupt file)")
        reached = end
    if reached > data_size:
        raise InputError(f"{path}: the tensors need a {reached}-byte data section, the file holds {data_size} "
                         f"(a truncated or corrupt file)")
    if reached < data_size:
        raise InputError(f"{path}: {data_size - reached} bytes after the last tensor belong to none (a corrupt "
                         f"file, or not a safetensors file)")


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, as CPU tensors memory-mapped from it (no copy is made).

    The mapping is copy-on-write: writing to a tensor changes memory, never the file. Clone a tensor (or
    copy it into a parameter, as load_gpt2 does) before the file is deleted or overwritten. A tensor whose
    bytes do not start at a multiple of its element size (the format allows it; minigpt's writer never does
    it) is copied into aligned memory instead, since CPU kernels may assume aligned elements.
    """
    _check_byteorder()
    header, _, data_start = read_header(path)
    if not header:
        return {}
    # One map of the whole file; torch.frombuffer then views slices of it without copying.
    mapped = np.memmap(path, dtype=np.uint8, mode="c")
    return {name: _tensor(mapped, entry, data_start) for name, entry in header.items()}


def _tensor(mapped: np.memmap, entry: dict, data_start: int) -> torch.Tensor:
    dtype = DTYPES[entry["dtype"]]
    begin, end = entry["data_offsets"]
    if begin == end:
        return torch.empty(entry["shape"], dtype=dtype)
    offset = data_start + begin
    if offset % dtype.itemsize == 0:
        flat = torch.frombuffer(mapped, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=offset)
    else:
        flat = torch.frombuffer(mapped, dtype=torch.uint8, count=end - begin, offset=offset).clone().view(dtype)
    return flat.view(entry["shape"])


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> Path:
    """Write `tensors` to `path` in the safetensors format, atomically (a temporary file, then a rename).

    Each tensor is written once, in name order; tensors that share memory are written as separate copies
    (the format has no notion of sharing; tied weights are usually stored once under one name).
    """
    _check_byteorder()
    path = Path(path)
    header: dict[str, object] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("safetensors metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    names = sorted(tensors)
    offset = 0
    for name in names:
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name!r} is a {type(t).__name__}, not a tensor")
        if t.dtype not in DTYPE_NAMES:
            raise ValueError(f"{name!r} has dtype {t.dtype}, which safetensors cannot store")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad the header with spaces so the data start on an 8-byte boundary: tensors can then be mapped aligned.
    raw += b" " * (-(8 + len(raw)) % 8)

    with atomic_open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in names:
            t = tensors[name].detach()
            if t.numel() == 0:
                continue
            # Bytes of the tensor as stored in memory (row-major); .view(uint8) also handles bfloat16,
            # which numpy has no type for.
            data = t.to("cpu").contiguous().reshape(-1).view(torch.uint8)
            f.write(data.numpy().data)
    return path
