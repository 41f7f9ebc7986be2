"""Chapter 12's tooling: the public benchmarks' files, downloaded once into the cache and unpacked safely.

minigpt/tasks.py reads the files; this module only gets them there. Every download goes through the project's one
helper, minigpt.download.download (the cache directory, resume, sha256, the offline message), and its failures come
back as one-line InputErrors saying that --data PATH reads a local copy instead.

Archives are unpacked member by member, and only the members the readers need (MMLU's data.tar also holds a large
auxiliary training set; ARC's 680 MB zip is nearly all a corpus of science sentences). A member whose name would land
outside the folder ("../x", "/etc/x", "C:x") makes the whole archive refused; tar members also pass the standard
library's "data" filter. The members go into a temporary folder beside the target, renamed onto it only once
complete, so an interrupted unpack never leaves half a folder that looks whole.

A local copy given with --data is not checked against a checksum: it may be any file in the format (a subset, a
translation), and the readers check its structure line by line.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

from minigpt.download import cache_dir, download, sha256_of
from minigpt.files import InputError

# Each sha256 below was looked up in public sources, not computed here (this was written offline).
HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
# Recorded for this file by Hugging Face's datasets library (datasets/hellaswag/dataset_infos.json, 12,246,618 bytes);
# several other public projects pin the same value.
HELLASWAG_SHA256 = "0aa3b88843990f3f10a97b9575c94d7b71fb2205240ba04ae4884d9e9c992588"
MMLU_URL = "https://people.eecs.berkeley.edu/~hendrycks/data.tar"
# Pinned for this archive by several independent public projects that download it.
MMLU_SHA256 = "bec563ba4bac1d6aaf04141cd7d1605d7a5ca833e38f994051e818489592989b"
CEVAL_URL = "https://huggingface.co/datasets/ceval/ceval-exam/resolve/main/ceval-exam.zip"
# No documented checksum was found, so the download is not verified; the reader checks every file's structure.
CEVAL_SHA256 = None
ARC_URL = "https://ai2-public-datasets.s3.amazonaws.com/arc/ARC-V1-Feb2018.zip"
# Recorded by Hugging Face's datasets library (datasets/ai2_arc/dataset_infos.json, 680,841,265 bytes) for the same
# release at AI2's earlier address, s3-us-west-2.amazonaws.com/ai2-website/data/ARC-V1-Feb2018.zip.
ARC_SHA256 = "6d2d5ab50b2ceec6ba5f79c921be77cf2de712ea25a2b3f4fff3acc101cecfa0"

ARC_SPLITS = {"train": "Train", "dev": "Dev", "test": "Test"}
# The members the readers use: {dev,val,test}/{subject}_{split}.csv (MMLU and C-Eval), ARC's question files.
_SPLIT_CSV = re.compile(r"(?:.*/)?(dev|val|test)/[^/]+_\1\.csv")
_ARC_QUESTIONS = re.compile(r"(?:.*/)?ARC-(Easy|Challenge)/ARC-\1-(Train|Dev|Test)\.jsonl")


def fetch(url: str, filename: str, sha256: str | None, subdir: str) -> Path:
    """`filename` in the cache (downloaded from `url` the first time); a failure is one InputError line."""
    try:
        return download(url, filename, sha256, subdir=subdir)
    except (RuntimeError, ValueError) as e:   # no network or refused (RuntimeError), a damaged file (ValueError)
        message = " ".join(str(e).split())
        raise InputError(f"{message} For chapter 12, --data PATH reads a local copy ({filename} itself, or the "
                         f"folder it unpacks to).") from e


def _unsafe(name: str) -> bool:
    """Whether an archive member called `name` would be written outside the folder it is unpacked into."""
    posix = name.replace("\\", "/")
    return posix.startswith("/") or re.match(r"[A-Za-z]:", posix) is not None or ".." in PurePosixPath(posix).parts


def _refuse(archive: Path, name: str) -> InputError:
    return InputError(f"{archive}: member {name!r} would be written outside the folder it unpacks to; refusing the "
                      f"archive (pass the archive as published, or a folder you unpacked)")


def _unpack_zip(archive: Path, folder: Path, wanted: Callable[[str], bool]) -> int:
    count = 0
    with zipfile.ZipFile(archive) as z:
        names = [info.filename for info in z.infolist()]
        bad = next((name for name in names if _unsafe(name)), None)
        if bad is not None:   # checked before anything is written
            raise _refuse(archive, bad)
        for info in z.infolist():
            if info.is_dir() or not wanted(info.filename):
                continue
            out = folder / info.filename
            out.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as source, open(out, "wb") as sink:
                shutil.copyfileobj(source, sink)
            count += 1
    return count


def _unpack_tar(archive: Path, folder: Path, wanted: Callable[[str], bool]) -> int:
    count = 0
    with tarfile.open(archive) as tar:
        for member in tar:   # streamed: a tar has no index to check first, so a bad member stops it midway
            if _unsafe(member.name):
                raise _refuse(archive, member.name)
            if member.isfile() and wanted(member.name):   # links, devices and folders are never needed
                tar.extract(member, folder, filter="data")
                count += 1
    return count


def unpack(archive: str | os.PathLike, target: str | os.PathLike, wanted: Callable[[str], bool]) -> Path:
    """Unpack the members of `archive` (zip or tar) whose names `wanted` accepts into the folder `target`.

    A folder already at `target` counts as done. The members go into a temporary folder beside it (named as
    minigpt.files names temporaries, so remove_stale_temporaries clears one a killed process left), which is
    renamed onto `target` only when every member is out.
    """
    archive, target = Path(archive), Path(target)
    if target.is_dir():
        return target
    if zipfile.is_zipfile(archive):
        unpack_members = _unpack_zip
    elif tarfile.is_tarfile(archive):
        unpack_members = _unpack_tar
    else:
        raise InputError(f"{archive} is neither a zip nor a tar archive; pass the archive as published, or the "
                         f"folder it unpacks to")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    partial.mkdir()
    try:
        try:
            count = unpack_members(archive, partial, wanted)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as e:   # truncated or corrupt
            raise InputError(f"{archive} is damaged ({type(e).__name__}: {e}); download it again") from None
        if count == 0:
            raise InputError(f"{archive} holds none of the files expected in it; pass the archive as published, or "
                             f"the folder it unpacks to")
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():   # not another process that finished first: a real failure
                raise
            shutil.rmtree(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def _archive_source(data: str | os.PathLike | None, url: str, filename: str, sha256: str | None, subdir: str,
                    wanted: Callable[[str], bool]) -> Path:
    """The folder a public archive unpacks to in the cache, downloading it if needed; or `data`, unpacked first if
    it is a copy of the archive. The folder is named by the archive's checksum, so another archive gets its own."""
    if data is None:
        archive, digest = fetch(url, filename, sha256, subdir), sha256
    else:
        archive, digest = Path(data).expanduser(), None
        if not _is_archive(archive):
            return archive   # a file or folder for the reader, which says what it expected if it is neither
    digest = digest or sha256_of(archive)
    return unpack(archive, cache_dir() / subdir / f"unpacked-{digest[:16]}", wanted)


def _split_csv(name: str) -> bool:
    return _SPLIT_CSV.fullmatch(name) is not None


def _arc_questions(name: str) -> bool:
    return _ARC_QUESTIONS.fullmatch(name) is not None


def hellaswag_path(data: str | os.PathLike | None = None) -> Path:
    """HellaSwag's validation file: downloaded once, or `data` (the file, or a folder holding hellaswag_val.jsonl)."""
    if data is None:
        return fetch(HELLASWAG_URL, "hellaswag_val.jsonl", HELLASWAG_SHA256, "hellaswag")
    path = Path(data).expanduser()
    return path / "hellaswag_val.jsonl" if path.is_dir() else path


def mmlu_path(data: str | os.PathLike | None = None) -> Path:
    """MMLU's unpacked folder (data.tar downloaded and unpacked once), or `data`: a CSV file, a folder, data.tar."""
    return _archive_source(data, MMLU_URL, "data.tar", MMLU_SHA256, "mmlu", _split_csv)


def ceval_path(data: str | os.PathLike | None = None) -> Path:
    """C-Eval's unpacked folder (ceval-exam.zip downloaded and unpacked once), or `data`: a CSV file, a folder, the
    zip."""
    return _archive_source(data, CEVAL_URL, "ceval-exam.zip", CEVAL_SHA256, "ceval", _split_csv)


def arc_path(name: str, split: str, data: str | os.PathLike | None = None) -> Path:
    """The JSONL file of `split` of ARC-Easy ("arc-easy") or ARC-Challenge, from the zip (downloaded and unpacked
    once) or from `data`: an ARC JSONL file, the zip, or the folder it unpacks to."""
    if split not in ARC_SPLITS:
        raise InputError(f"unknown ARC split {split!r}; expected one of {', '.join(ARC_SPLITS)}")
    part = "ARC-Easy" if name == "arc-easy" else "ARC-Challenge"
    filename = f"{part}-{ARC_SPLITS[split]}.jsonl"
    found = _archive_source(data, ARC_URL, "ARC-V1-Feb2018.zip", ARC_SHA256, "arc", _arc_questions)
    if not found.is_dir():
        return found   # an ARC file given directly (read_arc says so if it does not exist)
    for candidate in [found / part / filename, *sorted(found.glob(f"*/{part}/{filename}"))]:
        if candidate.is_file():
            return candidate
    raise InputError(f"{found} has no {part}/{filename}; expected ARC's unpacked folder (the zip unpacks to "
                     f"ARC-V1-Feb2018-2/{part}/{filename}) or an ARC JSONL file")
