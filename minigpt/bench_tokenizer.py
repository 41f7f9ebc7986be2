"""Chapter 1's benchmark: minigpt's tokenizer against tiktoken and Hugging Face `tokenizers`, on this machine.

    python -m minigpt.bench_tokenizer                # writes minigpt/TOKENIZER_BENCHMARK.md
    python -m minigpt.bench_tokenizer --mb 1 --out /tmp/report.md
    python -m minigpt.bench_tokenizer --only repeated   # reruns one section, replacing it in the report

Encoding and training speed on a corpus taken from the standard library every Python ships (English from pydoc's
topics and docstrings, code from the sources), so it runs offline. Not a test: timings depend on the machine and
its load. The tokenizer itself is minigpt/tokenizer.py; this module only imports it.
"""
from __future__ import annotations

import os
from pathlib import Path

from minigpt.files import write_text_atomic
from minigpt.tokenizer import GPT2_SPLIT_PATTERN, INFINITY, BPETokenizer, gpt2_tiktoken_encoding, gpt2_tokenizer

# One character repeated is one chunk of GPT-2's pattern however long it is ("ab" is two, for contrast): the case
# where all the time goes into BPE on a single long piece.
REPEATED = ["a", "!", "=", " ", "é", "日", "😀", "ab"]
REPEATED_HEADING = "## Repeated characters"


def stdlib_corpus(n_bytes: int) -> tuple[list[str], list[str]]:
    """Documents: up to n_bytes/2 of English and of Python code, from the standard library that every Python ships.

    English: pydoc's help topics (the language reference) and the docstrings pydoc shows; code: the sources.
    """
    import ast
    import sysconfig
    from pydoc_data.topics import topics

    half = n_bytes // 2
    english = [topics[name] for name in sorted(topics)]
    code = []
    english_size = sum(len(text.encode("utf-8")) + 2 for text in english)
    code_size = 0
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [f for f in sorted(root.rglob("*.py")) if not {"site-packages", "dist-packages"} & set(f.parts)]
    for file in files:
        if english_size >= half and code_size >= half:
            break
        source = file.read_text(encoding="utf-8", errors="replace")
        if code_size < half:
            code.append(source)
            code_size += len(source.encode("utf-8")) + 1
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if english_size < half and isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                                         ast.AsyncFunctionDef)):
                if docstring := ast.get_docstring(node):
                    english.append(docstring)
                    english_size += len(docstring.encode("utf-8")) + 2
    return english, code


def _timings(functions: list, repeats: int = 3) -> list[float]:
    """Best time of each function over `repeats` rounds, interleaved so that they share the machine's load alike."""
    import time

    best = [INFINITY] * len(functions)
    for _ in range(repeats):
        for k, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def _hf_train(documents: list[str], vocab_size: int):
    """Hugging Face tokenizers' BpeTrainer with GPT-2's split pattern and byte-level alphabet, as ours."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT2_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(documents, trainer)
    return tokenizer


def _hf_token_bytes(tokenizer) -> set[bytes]:
    # Byte-level BPE stores each byte as a printable character (GPT-2's bytes_to_unicode); map them back.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    char_to_byte = {chr(b): b for b in printable} | {chr(256 + k): b for k, b in enumerate(others)}
    return {bytes(char_to_byte[c] for c in token) for token in tokenizer.get_vocab()}


def _machine(load: float) -> str:
    """Where and with what the figures were measured, for the report."""
    import platform
    import time
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    return (f"on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPU cores ({cpu}, {platform.system()}), shared with "
            f"other work (load average {load:.1f} at the start), so repeat it before trusting a small difference. "
            f"Python {platform.python_version()}, tiktoken {version('tiktoken')}, tokenizers {version('tokenizers')}, "
            f"regex {version('regex')}.")


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def repeated_characters(count: int = 200_000, repeats: int = 3) -> str:
    """The "repeated characters" section: `count` times one character, one chunk, minigpt against tiktoken."""
    load = _load()
    encoding = gpt2_tiktoken_encoding()
    tokenizer = gpt2_tokenizer()  # chunks this long are never cached, so every run encodes from scratch
    rows = []
    for unit in REPEATED:
        text = unit * (count // len(unit))
        tiktoken_time, ours = _timings([lambda: encoding.encode_ordinary(text),
                                        lambda: tokenizer.encode_ordinary(text)], repeats)
        same = tokenizer.encode_ordinary(text) == encoding.encode_ordinary(text)
        rows.append(f"| {unit!r} × {count // len(unit):,} | {len(text.encode()):,} | {tiktoken_time * 1e3:.1f} | "
                    f"{ours * 1e3:.1f} | {ours / tiktoken_time:.1f}x | {'yes' if same else 'NO'} |")
        print(rows[-1])
    return "\n".join([
        REPEATED_HEADING,
        "",
        f"Written by `python -m minigpt.bench_tokenizer --only repeated` {_machine(load)} GPT-2's tokenizer, "
        f"`encode_ordinary` of one text that is a single chunk, best of {repeats} interleaved runs each.",
        "",
        "| text | bytes | tiktoken ms | minigpt ms | minigpt / tiktoken | ids identical |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ])


def replace_section(report: str, section: str) -> str:
    """`report` with its section of the same heading replaced by `section` (appended if it has none)."""
    heading = section.split("\n", 1)[0]
    start = report.find(heading + "\n")
    if start < 0:
        return report.rstrip("\n") + "\n\n" + section if report.strip() else section
    end = report.find("\n## ", start + len(heading))
    return report[:start] + section + (report[end + 1:] if end >= 0 else "")


def benchmark(megabytes: float = 5.0, vocab_size: int = 16_384, naive_kilobytes: int = 100,
              naive_vocab_size: int = 1_024) -> str:
    """Run the benchmark; returns a Markdown report."""
    import time

    load = _load()
    english_documents, code_documents = stdlib_corpus(int(megabytes * 1e6))
    english, code = "\n\n".join(english_documents), "\n\n".join(code_documents)
    mixed = english + "\n\n" + code
    rows = []
    encoding = gpt2_tiktoken_encoding()
    print(f"Corpus: {len(english.encode()) / 1e6:.2f} MB of English, {len(code.encode()) / 1e6:.2f} MB of code.")
    for name, text in [("English (pydoc topics, docstrings)", english), ("Python code", code), ("mixed", mixed)]:
        size = len(text.encode("utf-8"))
        expected = encoding.encode_ordinary(text)
        fresh = iter([gpt2_tokenizer() for _ in range(3)])  # new tokenizers: empty chunk caches
        tiktoken_time, cold = _timings([lambda: encoding.encode_ordinary(text),
                                        lambda: next(fresh).encode_ordinary(text)])
        tokenizer = gpt2_tokenizer()
        same = tokenizer.encode_ordinary(text) == expected
        warm, = _timings([lambda: tokenizer.encode_ordinary(text)])
        rows.append(f"| {name} | {size / 1e6:.2f} | {size / tiktoken_time / 1e6:.1f} | {size / cold / 1e6:.1f} | "
                    f"{tiktoken_time / cold:.2f}x | {size / warm / 1e6:.1f} | {'yes' if same else 'NO'} |")
        print(rows[-1])

    print(f"Training to {vocab_size} tokens on {len(mixed.encode()) / 1e6:.2f} MB (ours, then Hugging Face)...")
    start = time.perf_counter()
    ours = BPETokenizer().train(mixed, vocab_size, progress=True)
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    theirs = _hf_train(english_documents + code_documents, vocab_size)
    hf_time = time.perf_counter() - start
    shared = len(set(ours.vocab) & _hf_token_bytes(theirs))
    distinct = len(set(ours.pre_tokenize(mixed)))

    small = mixed[: naive_kilobytes * 1000]
    print(f"Naive and fast training on {len(small.encode()) / 1e3:.0f} KB to {naive_vocab_size} tokens...")
    start = time.perf_counter()
    naive = BPETokenizer().train(small, naive_vocab_size, naive=True)
    naive_time = time.perf_counter() - start
    start = time.perf_counter()
    fast = BPETokenizer().train(small, naive_vocab_size)
    fast_time = time.perf_counter() - start

    report = [
        "# Tokenizer benchmark (chapter 1)",
        "",
        f"Written by `python -m minigpt.bench_tokenizer` {_machine(load)}",
        "",
        "Corpus: English from the Python standard library's pydoc help topics and docstrings, and its sources "
        "as code; another Python version ships other files, so the figures move a little with it.",
        "",
        "## Encoding GPT-2 (r50k_base), one call over the whole text",
        "",
        "cold = a new tokenizer with an empty chunk cache (the honest figure); warm = the same text again. "
        "Best of 3 runs each.",
        "",
        "| text | MB | tiktoken MB/s | minigpt cold MB/s | cold vs tiktoken | minigpt warm MB/s | ids identical |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"## Training to {vocab_size:,} tokens on {len(mixed.encode()) / 1e6:.2f} MB (mixed)",
        "",
        "| trainer | seconds |",
        "|---|---|",
        f"| minigpt `train_merges` (pure Python, incremental counts + heap) | {ours_time:.1f} |",
        f"| Hugging Face tokenizers BpeTrainer (Rust, same split pattern, byte-level) | {hf_time:.1f} |",
        "",
        f"minigpt takes {ours_time / hf_time:.1f}x the time of Hugging Face's trainer. {shared:,} of minigpt's "
        f"{len(ours.vocab):,} tokens are also in Hugging Face's vocabulary (the rest come from how the documents "
        f"are joined, and from tie-breaks). Both count the {distinct:,} distinct chunks once and update pair counts "
        f"incrementally, so neither rescans the {len(mixed.encode()) / 1e6:.1f} MB per merge.",
        "",
        f"## The naive loop, for contrast ({len(small.encode()) / 1e3:.0f} KB to {naive_vocab_size:,} tokens)",
        "",
        "| trainer | seconds |",
        "|---|---|",
        f"| `train_merges_naive` (recount all pairs after each merge) | {naive_time:.1f} |",
        f"| `train_merges` | {fast_time:.2f} |",
        "",
        f"Same merges: {'yes' if naive.merges == fast.merges else 'NO'}.",
        "",
        repeated_characters(),
    ]
    return "\n".join(report)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=5.2, help="corpus size in MB (default 5.2)")
    parser.add_argument("--vocab-size", type=int, default=16_384, help="vocabulary size for training (default 16384)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("TOKENIZER_BENCHMARK.md")),
                        help="where to write the Markdown report (default minigpt/TOKENIZER_BENCHMARK.md)")
    parser.add_argument("--only", choices=["repeated"], default=None,
                        help="run only this section and replace it in the existing report (repeated characters)")
    args = parser.parse_args(argv)
    if args.only == "repeated":
        out = Path(args.out)
        report = replace_section(out.read_text(encoding="utf-8") if out.exists() else "", repeated_characters())
    else:
        report = benchmark(args.mb, args.vocab_size)
    write_text_atomic(args.out, report, newline="\n")
    print(report)
    print(f"Report written to {args.out}")


if __name__ == "__main__":
    main()
