"""Download TinyStories (Eldan & Li, 2023) and tokenize it into token shards for chapter 6.

TinyStories is about two million short stories written by GPT-3.5/GPT-4 in the vocabulary of a small child: a
corpus on which a model of a few million parameters already learns grammar and simple plots. The files come
from the Hugging Face dataset roneneldan/TinyStories (licence CDLA-Sharing-1.0); stories are separated by
<|endoftext|> lines, which is the plain-text format `python -m minigpt.prepare` understands.

    python data/prepare_tinystories.py                      # the validation file: 19 MB, ~22k stories
    python data/prepare_tinystories.py --files all          # plus the 1.9 GB training file
    python data/prepare_tinystories.py --local ~/Downloads  # files downloaded elsewhere (no network needed)
    python chapters/ch06_pretraining.py --data out/tinystories

Downloads go through minigpt/download.py (cache ~/.cache/minigpt/tinystories, resume, progress bar) and are
checked against the sha256 below before anything is tokenized. A repeated run does nothing.
"""
import argparse
import sys
from pathlib import Path

from minigpt import cli
from minigpt.download import download
from minigpt.files import InputError
from minigpt.prepare import MAX_SHARD_TOKENS
from minigpt.prepare import main as prepare_main

BASE_URL = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
# sha256 and size of the files as published (the Git LFS object ids of the dataset repository).
FILES = {
    "valid": ("TinyStories-valid.txt", "94e431816c4cce81ff71e4408ff8d3bda9a42e8d2663986697c3954288cb38b4",
              19_447_282),
    "train": ("TinyStories-train.txt", "c5cf5e22ff13614e830afbe61a99fbcbe8bcb7dd72252b989fa1117a368d401f",
              1_924_281_556),
}
PROG = Path(__file__).name


def parse_args(argv=None) -> argparse.Namespace:
    """The options, checked before anything is downloaded (a bad one: one line, exit status 2)."""
    p = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", choices=("valid", "train", "all"), default="valid",
                   help="which file(s) to use: valid (19 MB, default), train (1.9 GB) or all")
    p.add_argument("--local", help="a downloaded copy: the .txt file itself (with one --files choice) or a "
                                   "folder holding the files; no network is used")
    p.add_argument("--out", type=cli.output_folder,
                   default=str(Path(__file__).resolve().parent.parent / "out" / "tinystories"),
                   help="folder for the token shards (default out/tinystories, which git ignores)")
    p.add_argument("--val-fraction", type=cli.fraction, default=0.05,
                   help="share of the tokens (whole stories) held out for validation, in [0, 1) (default 0.05)")
    p.add_argument("--shard-tokens", type=cli.int_range(1, MAX_SHARD_TOKENS), default=100_000_000,
                   help=f"tokens per shard file, 1 to {MAX_SHARD_TOKENS:,}")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check (a different version of the "
                                                            "files, at your own risk)")
    args = p.parse_args(argv)
    if args.local and not Path(args.local).expanduser().exists():
        p.error(f"argument --local: no file or folder {args.local}")
    if args.local and Path(args.local).is_file() and args.files == "all":
        p.error("--local names one file; with --files all give the folder that holds both")
    return args


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """Download (or find) the files, check them, and tokenize them with `python -m minigpt.prepare`."""
    args = parse_args(argv)
    keys = ["valid", "train"] if args.files == "all" else [args.files]
    paths = []
    for key in keys:
        name, sha256, size = FILES[key]
        print(f"{name}: {size / 1e6:,.0f} MB from {BASE_URL + name}"
              + (" (sha256 not checked: --no-verify)" if args.no_verify else ""))
        try:
            paths.append(download(BASE_URL + name, name, None if args.no_verify else sha256, local=args.local,
                                  subdir="tinystories"))
        except RuntimeError as e:   # no network, or the server said no
            sys.exit(f"{e}\nWithout network: download {BASE_URL + name} on another machine and run\n"
                     f"    python data/prepare_tinystories.py --files {key} --local /path/to/{name}")
        except ValueError as e:   # a checksum mismatch (a missing --local file is a FileNotFoundError)
            raise InputError(str(e)) from None
    command = ["--input", *map(str, paths), "--out", args.out, "--val-fraction", str(args.val_fraction),
               "--shard-tokens", str(args.shard_tokens)]
    print("Tokenizing: python -m minigpt.prepare " + " ".join(command))
    prepare_main(command)
    print(f"Train on it with:  python chapters/ch06_pretraining.py --data {args.out}")


if __name__ == "__main__":
    main()
