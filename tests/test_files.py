"""Atomic writes (minigpt/files.py): the target changes only when a write completes, and nothing is left behind."""
import os
import stat

import pytest
import torch

from tests._impl import load_impl

files = load_impl("minigpt.files")


def test_target_is_replaced_only_when_the_block_ends(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old", encoding="utf-8")
    with files.atomic_open(path) as f:
        f.write("new")
        # Mid-write, the target still holds the old text and the temporary file sits beside it.
        assert path.read_text(encoding="utf-8") == "old"
        temporary = sorted(p.name for p in tmp_path.iterdir() if p != path)
        assert len(temporary) == 1 and temporary[0].startswith("notes.txt.") and temporary[0].endswith(".tmp")
    assert path.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, error):
    path = tmp_path / "model.pt"
    path.write_bytes(b"good checkpoint")
    with pytest.raises(type(error)):
        with files.atomic_open(path, "wb") as f:
            f.write(b"half a checkp")
            raise error   # Ctrl-C is a BaseException, not an Exception: it must clean up too
    assert path.read_bytes() == b"good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_an_error_before_any_old_file_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with files.atomic_open(tmp_path / "new.json") as f:
            f.write("{")
            raise ValueError("not serialisable")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_permissions_are_those_of_a_plain_open(tmp_path, umask, expected):
    previous = os.umask(umask)
    try:
        with files.atomic_open(tmp_path / "atomic.bin", "wb") as f:
            f.write(b"x")
        with open(tmp_path / "plain.bin", "wb") as f:   # the reference: what open() gives a new file
            f.write(b"x")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "atomic.bin").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode) == expected


def test_parent_folders_are_created(tmp_path):
    path = files.write_text_atomic(tmp_path / "a" / "b" / "c.txt", "deep")
    assert path.read_text(encoding="utf-8") == "deep"


def test_text_is_utf8_whatever_the_locale_and_newline_is_honoured(tmp_path):
    text = "naïve café ✓\nsecond line\n"
    files.write_text_atomic(tmp_path / "plain.txt", text)
    assert (tmp_path / "plain.txt").read_bytes() == text.replace("\n", os.linesep).encode("utf-8")
    files.write_text_atomic(tmp_path / "unix.txt", text, newline="\n")
    assert (tmp_path / "unix.txt").read_bytes() == text.encode("utf-8")


def test_write_bytes_atomic_round_trips(tmp_path):
    data = bytes(range(256)) * 3
    assert files.write_bytes_atomic(tmp_path / "raw.bin", data).read_bytes() == data


def test_torch_save_through_the_file_object_round_trips(tmp_path):
    torch.manual_seed(0)
    state = {"weight": torch.randn(4, 3), "step": 7, "ids": torch.arange(5, dtype=torch.int64)}
    path = tmp_path / "checkpoint.pt"
    with files.atomic_open(path, "wb") as f:
        torch.save(state, f)
    loaded = torch.load(path, weights_only=True)
    assert loaded["step"] == 7
    assert torch.equal(loaded["weight"], state["weight"]) and torch.equal(loaded["ids"], state["ids"])


def test_modes_that_do_not_write_a_whole_new_file_are_refused(tmp_path):
    for mode in ("a", "r", "r+", "x", "ab"):
        with pytest.raises(ValueError, match="mode must be"):
            with files.atomic_open(tmp_path / "f.txt", mode):
                pass
    with pytest.raises(ValueError, match="text mode"):
        with files.atomic_open(tmp_path / "f.bin", "wb", encoding="utf-8"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_is_removed_and_a_live_writers_is_kept(tmp_path):
    """A writer killed mid-write (SIGKILL: no cleanup runs) leaves its temporary file; the next start removes it."""
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "ckpt.pt"
    script = ("import sys, time; from minigpt.files import atomic_open\n"
              "with atomic_open(sys.argv[1], 'wb') as f:\n"
              "    f.write(b'half'); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert writer.stdout.readline().strip() == b"writing"
    live = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(live) == 1 and f".{writer.pid}-" in live[0].name   # the writer's process id is in the name
    assert files.remove_stale_temporaries(tmp_path) == []          # its writer is alive: keep it
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    time.sleep(0.05)
    assert [p.name for p in tmp_path.iterdir()] == [live[0].name]  # SIGKILL left it behind, no target was made
    own = tmp_path / "notes.txt.tmp"                               # not atomic_open's pattern: never touched
    own.write_text("mine")
    assert files.remove_stale_temporaries(tmp_path) == [live[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt.tmp"]
