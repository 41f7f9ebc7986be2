"""The one download helper every chapter uses: cache directory, resume, sha256, progress bar, clear offline errors.

Weights and datasets live in a cache directory (``~/.cache/minigpt``, or ``$MINIGPT_CACHE``). A download goes to
``NAME.part`` first and is renamed only once its sha256 matches, so an interrupted download resumes where it
stopped (an HTTP Range request) and a half-written file is never mistaken for a whole one. A local copy of the
file can always be passed instead, and no network is touched then.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where downloads are kept: $MINIGPT_CACHE, else ~/.cache/minigpt."""
    return Path(os.environ.get("MINIGPT_CACHE", Path.home() / ".cache" / "minigpt")).expanduser()


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None) -> Path:
    """Raise a clear error if `path` does not have the expected sha256 (None: no check)."""
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise ValueError(f"{path} has sha256 {actual}, expected {sha256}: the file is damaged or a different "
                             f"version; delete it and download again, or pass the right file")
    return path


def download(url: str, filename: str, sha256: str | None = None, *, local: str | os.PathLike | None = None,
             subdir: str = "", quiet: bool = False) -> Path:
    """Return a path to `filename`: `local` if given, the cached copy if present, else download `url`.

    `sha256` (hex) is checked for a downloaded or cached file, and for a local one. Without network the error
    names the file, the URL and how to pass a local copy instead.
    """
    if local is not None:
        path = Path(local).expanduser()
        if path.is_dir():
            path = path / filename
        if not path.is_file():
            raise FileNotFoundError(f"local copy {path} of {filename} does not exist")
        return verify(path, sha256)

    target = cache_dir() / subdir / filename
    if target.is_file():
        return verify(target, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "minigpt"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part file is already complete
            part.replace(target)
            return verify(target, sha256)
        raise RuntimeError(_offline_message(filename, url, target, f"HTTP {e.code} {e.reason}")) from e
    except (urllib.error.URLError, OSError) as e:
        raise RuntimeError(_offline_message(filename, url, target, str(getattr(e, "reason", e)))) from e

    with response:
        if have and response.status != 206:  # the server ignored the Range header: start over
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                           desc=filename, disable=quiet) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
    try:
        verify(part, sha256)
    except ValueError:
        part.unlink()
        raise
    part.replace(target)
    return target


def _offline_message(filename: str, url: str, target: Path, reason: str) -> str:
    return (f"could not download {filename} from {url} ({reason}).\n"
            f"Download it elsewhere and either put it at {target} or pass its path to the script "
            f"(a local file or directory is always accepted instead of a download).")
