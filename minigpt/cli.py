"""What every chapter script shares at its edge: options checked before any work, and user errors as one line.

A chapter script's `main(argv)` builds its parser with `ArgumentParser` (argparse's, but an error is one line:
"PROG: error: MESSAGE", exit status 2), checks value ranges with the small `type=` functions below, and runs inside
`user_errors()` (a with-block, or a decorator on main: ``@cli.user_errors(PROG)``), which turns the errors a user
can cause (InputError: a bad file or setting; FileNotFoundError) into that same one line. Any other exception is a
bug and keeps its traceback. KeyboardInterrupt is left to the script.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from minigpt.files import InputError

if TYPE_CHECKING:
    import torch


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line naming the problem (no usage block), exit status 2."""

    def error(self, message: str):   # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _parse(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _parse(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _parse(text, float, "a number")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _parse(text, float, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number, 0 or more, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    value = _parse(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = _parse(text, float, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def non_empty(text: str) -> str:
    """argparse type: a string with something in it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def int_range(low: int, high: int):
    """argparse type for an integer from `low` to `high` (both included): type=cli.int_range(1, 12)."""
    def parse(text: str) -> int:
        value = _parse(text, int, "an integer")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value
    return parse


# argparse type: a random seed, what torch, numpy and random all take.
seed = int_range(0, 2 ** 32 - 1)


def device(text: str) -> str:
    """argparse type: a --device name (auto, cpu, cuda, cuda:N) that this machine has; the name is kept as given."""
    from minigpt.device import pick_device   # torch is imported only by scripts that have a --device
    try:
        pick_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--device ")) from None
    return text


def output_folder(text: str) -> str:
    """argparse type: a folder to write into (it need not exist yet, but must not be a file)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file; expected a folder")
    return text


def _parse(text: str, kind: type, name: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None


@contextlib.contextmanager
def user_errors(prog: str | None = None) -> Iterator[None]:
    """Print an InputError or FileNotFoundError as "PROG: error: MESSAGE" and exit with status 2."""
    try:
        yield
    except (InputError, FileNotFoundError) as error:
        name = prog or (sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "minigpt")
        message = str(error) if not isinstance(error, FileNotFoundError) or error.filename is None else \
            f"{error.filename}: {error.strerror or error}"
        print(f"{name}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def script_command(script_file: str) -> str:
    """How to run this script again from the current folder: "python chapters/ch06_pretraining.py" or the full path."""
    path = Path(script_file).resolve()
    return f"python {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"


def report_interrupt(stop, command: str) -> NoReturn:
    """Ctrl-C stopped training (minigpt.train.TrainingInterrupted): say in one sentence the step reached, the last
    checkpoint and the command that continues from it; exit with status 130, as a shell does for Ctrl-C."""
    if stop.checkpoint:
        where = f"the last checkpoint is {stop.checkpoint}; continue with: {command} --resume {stop.checkpoint}"
    else:
        where = "no checkpoint had been written yet, so a new run starts from the beginning."
    print(f"Stopped by Ctrl-C after step {stop.step}; {where}", file=sys.stderr)
    raise SystemExit(130)


def check_common_options(parser, args) -> torch.device:
    """The options chapters 8 and 9 share, checked before any work: --device (returned as a torch.device), --out
    (a folder, or not there yet) and --checkpoint (a file). A bad one ends the script through parser.error: one
    line naming it, exit status 2."""
    from minigpt.device import pick_device
    try:
        device = pick_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: is a file, not a folder")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    return device
