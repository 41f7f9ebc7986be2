"""Atomic file writes, shared by every module and chapter that saves something.

Training runs for minutes or hours and is often stopped with Ctrl-C, killed for memory or interrupted by a crash.
If a checkpoint, a token shard or a results file were written in place, such a stop halfway through would leave a
truncated file where a good one used to be, and the next run would fail on it (or, worse, quietly load half of it).
So every file is first written to a temporary file beside its target and then renamed onto it with os.replace.
The temporary file lives in the same folder so that the rename stays on one filesystem, where it is a single
atomic step: a reader sees the old file or the whole new one, never a mixture. If anything goes wrong the
temporary file is removed and the old file is left as it was.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class InputError(ValueError):
    """A file or setting the user gave is not what minigpt expects (the message names it and says what is wanted).

    Chapter scripts print these as one line and exit with status 2 (minigpt/cli.py); any other exception is a bug
    and keeps its traceback.
    """


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = None,
                newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on success it replaces `path`, on any error it is removed.

    `mode` is "w" (text, UTF-8 unless `encoding` says otherwise) or "wb" (bytes). The parent folder is created.
    The file gets the permissions a plain open() gives a new file (0o666 minus the umask), even when it replaces
    a file that had others.
    torch.save and matplotlib's savefig both accept the file object:
    ``with atomic_open(path, "wb") as f: torch.save(obj, f)``.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_open writes a whole new file: mode must be 'w' or 'wb', got {mode!r}")
    binary = "b" in mode
    if binary and (encoding is not None or newline is not None):
        raise ValueError("encoding and newline apply to text mode ('w') only")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create_beside(path)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else (encoding or "utf-8"), newline=newline) as f:
            yield f
            f.flush()
            # Closing hands the bytes to the operating system, which is all a crash or Ctrl-C of this process
            # needs. fsync also puts them on the disk before the rename, so that a power cut or a crash of the
            # machine cannot leave an empty file under the new name either; it costs one wait for the disk.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(path: Path) -> tuple[Path, int]:
    # Like tempfile.mkstemp, but created with mode 0o666 as open() does, so the umask (and a folder's default
    # ACL) decides the final permissions as for any other file; mkstemp would make every output private (0o600).
    # The name carries the writer's process id, so a file left by a writer that was killed (SIGKILL, a power cut)
    # can be told from one being written right now: see remove_stale_temporaries.
    while True:
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:   # another writer picked the same random name: draw again
            continue


_TEMPORARY = re.compile(r"^.+\.(\d+)-[0-9a-f]{8}\.tmp$")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (and folders) minigpt left in `folder` when their writer died; return them.

    An entry counts as stale when its name is one of minigpt's temporaries (NAME.PID-HEX.tmp: atomic_open's files,
    prepare's folders) and no process with that id is running on this machine. A live writer's entry is left alone
    (so is one whose id was reused by a new process: when in doubt, keep).
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)   # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, owned by someone else
        return True
    except OSError:   # platforms without kill(pid, 0): keep the file
        return True
    return True


def write_text_atomic(path: str | os.PathLike, text: str, newline: str | None = None) -> Path:
    """Write `text` to `path` as UTF-8, atomically (see atomic_open)."""
    with atomic_open(path, "w", newline=newline) as f:
        f.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path`, atomically (see atomic_open)."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def save_figure(fig, path: str | os.PathLike, dpi: int = 120, **savefig_options) -> Path:
    """Save a matplotlib figure as a PNG file, atomically (an interrupted save never leaves half an image)."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, **savefig_options)
    return Path(path)


__all__ = ["InputError", "atomic_open", "write_text_atomic", "write_bytes_atomic", "save_figure",
           "remove_stale_temporaries"]
