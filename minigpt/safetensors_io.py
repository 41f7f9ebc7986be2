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

from minigpt.files import atomic_open

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

MAX_HEADER = 100 * 1024 * 1024   # a header is a few kB per hundred tensors; more means a corrupt file


def _check_byteorder() -> None:
    # The data are little-endian; viewing them as tensors without swapping bytes needs a little-endian CPU
    # (every x86 and ARM machine in practice).
    if sys.byteorder != "little":
        raise RuntimeError("this reader assumes a little-endian machine")


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict], dict[str, str], int]:
    """Return (tensor entries, metadata, offset of the data section) without reading any tensor data."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) < 8:
            raise ValueError(f"{path} is not a safetensors file: shorter than the 8-byte header length")
        (header_len,) = struct.unpack("<Q", first)
        if header_len > min(MAX_HEADER, size - 8):
            raise ValueError(f"{path} is not a safetensors file (or is truncated): its first 8 bytes announce "
                             f"a {header_len}-byte header in a {size}-byte file")
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: the safetensors header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + header_len
    data_size = size - data_start
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise ValueError(f"{path}: header entry {name!r} needs dtype, shape and data_offsets, got {entry!r}")
        if entry["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {entry['dtype']!r}; "
                             f"this reader knows {sorted(DTYPES)}")
        begin, end = entry["data_offsets"]
        expected = math.prod(entry["shape"]) * DTYPES[entry["dtype"]].itemsize
        if not 0 <= begin <= end <= data_size or end - begin != expected:
            raise ValueError(f"{path}: tensor {name!r} ({entry['dtype']} {entry['shape']}) has data_offsets "
                             f"{[begin, end]}: needs {expected} bytes inside a {data_size}-byte data section "
                             f"(a truncated or corrupt file)")
    return header, metadata, data_start


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, as CPU tensors memory-mapped from it (no copy is made).

    The mapping is copy-on-write: writing to a tensor changes memory, never the file. Clone a tensor (or
    copy it into a parameter, as load_gpt2 does) before the file is deleted or overwritten.
    """
    _check_byteorder()
    header, _, data_start = read_header(path)
    if not header:
        return {}
    # One map of the whole file; torch.frombuffer then views slices of it without copying.
    mapped = np.memmap(path, dtype=np.uint8, mode="c")
    tensors = {}
    for name, entry in header.items():
        dtype = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        count = (end - begin) // dtype.itemsize
        if count == 0:
            tensors[name] = torch.empty(entry["shape"], dtype=dtype)
        else:
            flat = torch.frombuffer(mapped, dtype=dtype, count=count, offset=data_start + begin)
            tensors[name] = flat.view(entry["shape"])
    return tensors


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
