"""Chapter 1: text to tokens with byte-level BPE, trained on the bundled stories, then GPT-2's tokenizer exactly.

Characters -> UTF-8 bytes -> GPT-2's pre-tokenization -> BPE training -> encode/decode -> GPT-2 vs tiktoken -> speed.
Runs in well under a minute on a CPU, offline:  python chapters/ch01_tokenizer.py
"""
import argparse
import random
import time
from pathlib import Path


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import regex

from minigpt import cli
from minigpt.bench_tokenizer import stdlib_corpus
from minigpt.data import STORIES_DIR, load_stories  # chapter 2's reader of the bundled stories
from minigpt.files import save_figure
from minigpt.tokenizer import (GPT2_ENDOFTEXT, GPT2_SPLIT_PATTERN, BPETokenizer, gpt2_tiktoken_encoding,
                               gpt2_tokenizer)

# What each alternative of GPT2_SPLIT_PATTERN is for, in the pattern's order.
ALTERNATIVES = ["contraction 's", "contraction 't", "contraction 're", "contraction 've", "contraction 'm",
                "contraction 'll", "contraction 'd", "letters", "digits", "punctuation/symbols",
                "whitespace, less the space a word after it takes", "a single whitespace character"]
PROG = Path(__file__).name
# Section 7 also trains with the naive loop, whose time grows with vocabulary size x text: 4096 takes ~20 s on the
# bundled stories (which run out of pairs near 2,800 tokens anyway).
MAX_VOCAB = 4096


def pieces(tokenizer, ids) -> str:
    return " | ".join(repr(tokenizer.decode([i]))[1:-1] for i in ids)


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def parse_args(argv=None) -> argparse.Namespace:
    """The options, each checked against what the chapter can do with it (a bad one: one line, exit status 2)."""
    parser = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories", default=str(STORIES_DIR), help="folder of .txt files to train on (default: bundled)")
    parser.add_argument("--vocab-size", type=cli.int_range(257, MAX_VOCAB), default=512,
                        help=f"vocabulary of the tokenizer trained here: 257 (the 256 bytes and <|endoftext|>) "
                             f"to {MAX_VOCAB}")
    parser.add_argument("--device", type=cli.device, default="auto",
                        help="auto (cuda if available, else cpu), cpu or cuda; tokenizers run on the CPU either way")
    parser.add_argument("--seed", type=cli.seed, default=123, help="picks the example sentence")
    parser.add_argument("--out", type=cli.output_folder, default="out/ch01",
                        help="folder for the trained tokenizer and the figure")
    return parser.parse_args(argv)


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """The chapter's seven sections, in order."""
    args = parse_args(argv)
    stories = load_stories(args.stories)   # first, so that a bad folder or story stops the chapter at once
    random.seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"Outputs go to {out}/ (tokenizers run on the CPU; --device {args.device} changes nothing here).")

    print("\n1. Text is characters; a tokenizer sees their UTF-8 bytes (1 to 4 per character).")
    example = "Hi café 👋🏽 東京"
    for char in example:
        if char != " ":
            print(f"   {char!r:6} U+{ord(char):04X}  bytes {' '.join(f'{b:02x}' for b in char.encode('utf-8'))}")
    print(f"   {len(example)} characters -> {len(example.encode('utf-8'))} bytes. With 256 byte tokens any text "
          f"can be encoded; BPE then merges frequent byte pairs into longer tokens.")

    print("\n2. GPT-2 first cuts text into chunks with a regex; merges never cross a chunk border.")
    named = regex.compile("|".join(f"(?P<a{k}>{alt})" for k, alt in enumerate(GPT2_SPLIT_PATTERN.split("|"))))
    sample = "I'm sure they'll pay $1,234.50 for   3 café-au-laits!\n\nDON'T stop 🙂"
    print(f"   text: {sample!r}")
    for match in named.finditer(sample):
        print(f"   {match.group()!r:16} {ALTERNATIVES[int(match.lastgroup[1:])]}")
    print("   Note \"DON'T\": the contractions are lower case only, so it splits as DON + 'T.")
    same = gpt2_tokenizer().pre_tokenize(sample) == [m.group() for m in named.finditer(sample)]
    print(f"   BPETokenizer.pre_tokenize gives the same chunks: {same}")

    text = "\n\n".join(stories)
    print(f"\n3. Training a {args.vocab_size}-token BPE on the {len(stories)} stories ({len(text):,} characters).")
    tokenizer = BPETokenizer()
    fast_time = seconds(lambda: tokenizer.train(text, args.vocab_size, special_tokens=[GPT2_ENDOFTEXT]))
    print(f"   {len(tokenizer.merges)} merges in {fast_time:.2f} s. The first ones, most frequent pair first:")
    for k, ((a, b), new) in enumerate(list(tokenizer.merges.items())[:15]):
        v = tokenizer.vocab
        print(f"   {k + 1:3}. {v[a].decode(errors='replace')!r:>8} + {v[b].decode(errors='replace')!r:<8} -> "
              f"{v[new].decode(errors='replace')!r} (id {new})")
    plain = BPETokenizer(pattern=None).train(text, 256 + 30)
    crossing = [t.decode(errors="replace") for t in plain.vocab[256:] if b" " in t[1:]]
    print(f"   Without the regex (pattern=None) merges glue the end of a word to the space of the next: "
          f"{crossing[:4]}; GPT-2's split keeps a space only at the front of a token.")
    path = out / "stories_bpe.txt"
    tokenizer.save(path)
    print(f"   Saved to {path} (readable: one merge per line); loading it back gives the same vocabulary: "
          f"{BPETokenizer.load(path).vocab == tokenizer.vocab}")

    print("\n4. Encoding and decoding.")
    sentences = [s.strip() for s in regex.split(r"(?<=[.!?])\s+", stories[0]) if 20 < len(s.strip()) < 120]
    sentence = random.choice(sentences) if sentences else stories[0][:120]   # a story of one long sentence, say
    gpt2 = gpt2_tokenizer()
    for name, t in [(f"stories ({args.vocab_size})", tokenizer), ("GPT-2 (50257)", gpt2)]:
        ids = t.encode(sentence)
        print(f"   {name:<17} {len(ids):3} tokens: {pieces(t, ids)}")
    print(f"   decode(encode(text)) == text: {gpt2.decode(gpt2.encode(sentence)) == sentence}")
    marked = f"The end.{GPT2_ENDOFTEXT}Once upon a time"
    try:
        gpt2.encode(marked)
    except ValueError as error:
        print(f"   encode({marked!r}) raises ValueError: {str(error).splitlines()[0]}")
    print(f"   allowed_special='all': {gpt2.encode(marked, allowed_special='all')}  (50256 = {GPT2_ENDOFTEXT})")
    print(f"   disallowed_special=(): {gpt2.encode(marked, disallowed_special=())}  (read as plain text)")
    wave = gpt2.encode("👋")
    print(f"   '👋' is {len(wave)} GPT-2 tokens {wave}; decoding only the first gives {gpt2.decode(wave[:1])!r} "
          f"(broken UTF-8 becomes U+FFFD)")

    print("\n5. minigpt's GPT-2 tokenizer against tiktoken (r50k_base, built offline from data/gpt2.tiktoken).")
    encoding = gpt2_tiktoken_encoding()
    for s in ["Hello world!", "    def forward(self, x):\r\n        return x  # 2x faster", "naïve café, Straße, 東京 🙂"]:
        ours, theirs = gpt2.encode(s), encoding.encode(s)
        print(f"   {s!r}\n      minigpt  {ours}\n      tiktoken {theirs}  same: {ours == theirs}")
    story_ids = gpt2.encode(text)
    print(f"   All stories: {len(story_ids):,} tokens, identical to tiktoken's: "
          f"{story_ids == encoding.encode_ordinary(text)}; "
          f"{len(text.encode()) / len(story_ids):.2f} bytes per token with GPT-2, "
          f"{len(text.encode()) / len(tokenizer.encode(text)):.2f} with the {args.vocab_size}-token vocabulary.")

    print("\n6. Compression against vocabulary size, measured on a story left out of training.")
    held_out, rest = stories[-1], "\n\n".join(stories[:-1])
    big = BPETokenizer().train(rest, 2048)
    sizes = [256, 300, 384, 512, 768, 1024, 1536, 2048]
    ratios = []
    for size in sizes:
        smaller = BPETokenizer.from_ranks({t: i for i, t in enumerate(big.vocab[:size])}, big.pattern)
        ratios.append(len(held_out.encode()) / len(smaller.encode(held_out)))
    gpt2_ratio = len(held_out.encode()) / len(gpt2.encode(held_out))
    for size, ratio in zip(sizes, ratios):
        print(f"   {size:5} tokens: {ratio:.2f} bytes per token")
    print(f"   GPT-2 (50257 tokens, trained on far more text): {gpt2_ratio:.2f} bytes per token")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, ratios, marker="o", label="trained here on the other stories")
    ax.axhline(gpt2_ratio, color="gray", linestyle="--", label="GPT-2 (50,257 tokens)")
    ax.set_xlabel("vocabulary size")
    ax.set_ylabel("bytes per token on the held-out story")
    ax.set_title("BPE compresses more as the vocabulary grows")
    ax.legend()
    fig.tight_layout()
    figure = out / "compression.png"
    save_figure(fig, figure)
    plt.close(fig)
    print(f"   Figure saved to {figure}")

    print("\n7. Speed (one run each on this machine; `python -m minigpt.bench_tokenizer` for the full benchmark).")
    english, code = stdlib_corpus(2_000_000)
    rows = []
    for name, sample_text in [("English (stdlib docs)", "\n\n".join(english)), ("Python code", "\n\n".join(code))]:
        size = len(sample_text.encode()) / 1e6
        fresh = gpt2_tokenizer()
        ours = seconds(lambda: fresh.encode_ordinary(sample_text))
        theirs = seconds(lambda: encoding.encode_ordinary(sample_text))
        rows.append((f"encode {size:.1f} MB {name}", f"{size / ours:.1f} MB/s", f"{size / theirs:.1f} MB/s (tiktoken)"))
    naive_time = seconds(lambda: BPETokenizer().train(text, args.vocab_size, naive=True))
    rows.append((f"train {args.vocab_size} tokens on the stories", f"{fast_time:.2f} s",
                 f"{naive_time:.2f} s (naive recount)"))
    print(f"   {'task':<42} {'minigpt':<12} reference")
    for task, ours_text, reference_text in rows:
        print(f"   {task:<42} {ours_text:<12} {reference_text}")
    print(f"\nDone. Outputs in {out}/")


if __name__ == "__main__":
    main()
