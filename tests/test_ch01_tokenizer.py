"""Chapter 1 tests: the BPE tokenizer against tiktoken (GPT-2 ids, trained vocabularies) and against BPE's definition.

The reference for GPT-2 is tiktoken's Rust encoder, given the shipped rank file and tiktoken's own split pattern
(independent of the regex minigpt uses). For trained tokenizers it is tiktoken again, given the trained vocabulary,
and for training a direct replay of "merge the most frequent pair" written here.
"""
import ast
import base64
import hashlib
import random
import sysconfig
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._impl import load_impl

tok = load_impl("minigpt.tokenizer")

REPO = Path(__file__).resolve().parent.parent
RANK_FILE = REPO / "data" / "gpt2.tiktoken"
RANK_FILE_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"  # tiktoken's pin for r50k_base
EOT = "<|endoftext|>"

try:  # tiktoken's spelling of GPT-2's pattern, kept apart from the one minigpt uses
    from tiktoken_ext.openai_public import r50k_pat_str as TIKTOKEN_PATTERN
except ImportError:
    TIKTOKEN_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def read_ranks(path: Path) -> dict[bytes, int]:
    lines = path.read_bytes().splitlines()
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}


@pytest.fixture(scope="module")
def reference():
    """tiktoken's r50k_base, built here from the shipped file without minigpt's help."""
    ranks = read_ranks(RANK_FILE)
    return tiktoken.Encoding("r50k_base", pat_str=TIKTOKEN_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256}, explicit_n_vocab=50257)


@pytest.fixture(scope="module")
def gpt2():
    return tok.gpt2_tokenizer()


def stories() -> str:
    files = sorted((REPO / "data" / "stories").glob("*.txt"))
    assert files, "data/stories/*.txt are missing"
    return "\n\n".join(f.read_text(encoding="utf-8") for f in files)


# ---------------------------------------------------------------------------------------------------------------
# The 1 MB exactness corpus: the standard library's code and docstrings, then generated text in many scripts.

SCRIPTS = {  # code point ranges of letters (and marks) in various writing systems
    "latin": [(0x61, 0x7A), (0x41, 0x5A), (0xE0, 0xFF), (0x100, 0x17F)], "greek": [(0x3B1, 0x3C9), (0x391, 0x3A9)],
    "cyrillic": [(0x430, 0x44F), (0x410, 0x42F)], "armenian": [(0x561, 0x586)], "hebrew": [(0x5D0, 0x5EA)],
    "arabic": [(0x627, 0x64A), (0x64B, 0x652)], "devanagari": [(0x905, 0x939), (0x93E, 0x94D)],
    "bengali": [(0x985, 0x9B9)], "tamil": [(0xB85, 0xBB9), (0xBBE, 0xBCD)], "thai": [(0xE01, 0xE30), (0xE31, 0xE3A)],
    "georgian": [(0x10D0, 0x10FA)], "ethiopic": [(0x1200, 0x1248)], "hangul": [(0xAC00, 0xD7A3)],
    "hiragana": [(0x3041, 0x3096)], "katakana": [(0x30A1, 0x30FA)], "cjk": [(0x4E00, 0x9FFF)],
    "cjk_ext_b": [(0x20000, 0x2A6DF)], "math_alnum": [(0x1D400, 0x1D6A5)], "cherokee": [(0x13A0, 0x13F4)],
}
DIGITS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "²³¹¼½¾", "ⅠⅡⅢⅣⅫⅯ", "𝟎𝟏𝟐𝟑"]
EMOJI = ["👋", "👋🏽", "👍🏿", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🇯🇵", "1️⃣", "🧑🏾‍🚀", "😀", "🤷‍♀️",
         "✌🏻", "🫠", "🦀"]
SPACES = [" ", "  ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n", "\n ", "\n    ", "\t \n",
          "\xa0", "\u3000", "\u2009", "\u200b", "\u2028", "\u2029", "\x0b", "\x0c", "\x85", "      \n\n\t"]
CONTRACTIONS = ["don't", "DON'T", "Don'T", "it's", "IT'S", "we'll", "WE'LL", "We'Ll", "I'd", "I'D", "they've",
                "THEY'VE", "you're", "YOU'RE", "I'm", "I'M", "'s", "'S", "rock'n'roll", "it’s", "o'clock", "''", "'"]
CONTROL = [chr(c) for c in [*range(0, 32), 127, *range(0x80, 0xA0)]]


def generated_text(size: int, seed: int = 0) -> str:
    rng = random.Random(seed)

    def word():
        ranges = rng.choice(list(SCRIPTS.values()))
        chars = [chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(1, 9))]
        if rng.random() < 0.2:  # combining marks, sometimes stacked
            chars.insert(rng.randint(1, len(chars)), "".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(1, 4))))
        return "".join(chars)

    pieces = [
        word, word, word,
        lambda: rng.choice(["The", "the", "A", "of", "and", "Hello", "world"]) + rng.choice([",", ".", "!", "?", ""]),
        lambda: str(rng.randint(0, 10 ** rng.randint(1, 12))),
        lambda: f"{rng.uniform(-1e6, 1e6):,.{rng.randint(0, 4)}f}",
        lambda: "".join(rng.choice(rng.choice(DIGITS)) for _ in range(rng.randint(1, 6))),
        lambda: "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3))),
        lambda: rng.choice(CONTRACTIONS),
        lambda: rng.choice(SPACES) * rng.randint(1, 3),
        lambda: rng.choice(CONTROL),
        lambda: rng.choice(["e\u0301", "a\u0300\u0301\u0302", "n\u0303", "Z\u0351\u0352\u0353", "\u0301"]),
        lambda: "".join(rng.choice("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~«»—–…„“”‘’") for _ in range(rng.randint(1, 5))),
        lambda: chr(rng.choice([rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])),  # anywhere in Unicode
    ]
    out, length = [], 0
    while length < size:
        piece = rng.choice(pieces)()
        out.append(piece + (rng.choice(SPACES) if rng.random() < 0.1 else " " if rng.random() < 0.7 else ""))
        length += len(out[-1].encode("utf-8"))
    return "".join(out)


def stdlib_text(size: int) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    out, length = [], 0
    for file in sorted(root.glob("*.py")):
        source = file.read_text(encoding="utf-8", errors="replace")
        out.append(source)
        try:
            out += [doc for node in ast.walk(ast.parse(source))
                    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and (doc := ast.get_docstring(node))]
        except SyntaxError:
            pass
        length = sum(len(text.encode("utf-8")) for text in out)
        if length >= size:
            break
    return "\n\n".join(out)


@pytest.fixture(scope="module")
def corpus() -> str:
    text = stdlib_text(700_000) + "\r\n" + generated_text(400_000) + "  \n\t "  # trailing whitespace at the very end
    assert len(text.encode("utf-8")) >= 1_000_000
    return text


# ---------------------------------------------------------------------------------------------------------------
# GPT-2, exactly.

def test_shipped_rank_file_has_the_pinned_sha256():
    assert hashlib.sha256(RANK_FILE.read_bytes()).hexdigest() == RANK_FILE_SHA256


def test_loading_a_rank_file_with_another_hash_fails(tmp_path):
    damaged = tmp_path / "gpt2.tiktoken"
    damaged.write_bytes(RANK_FILE.read_bytes().replace(b" 50255", b" 50254"))
    with pytest.raises(ValueError, match="sha256"):
        tok.gpt2_tokenizer(damaged)
    with pytest.raises(FileNotFoundError, match="gpt2.tiktoken"):
        tok.gpt2_tokenizer(tmp_path / "missing.tiktoken")


def test_gpt2_vocabulary_matches_the_rank_file(gpt2, reference):
    assert gpt2.vocab_size == reference.n_vocab == 50257
    assert gpt2.special_tokens == {EOT: 50256}
    assert all(gpt2.decode_bytes([i]) == reference.decode_single_token_bytes(i) for i in range(50257))
    # GPT-2 was released with 50,000 merges on top of its 256 byte tokens; each merge spells its token.
    assert len(gpt2.merges) == 50_000
    assert all(gpt2.vocab[a] + gpt2.vocab[b] == gpt2.vocab[new] for (a, b), new in gpt2.merges.items())


def test_gpt2_encode_matches_tiktoken_on_a_megabyte_of_varied_text(gpt2, reference, corpus):
    assert gpt2.encode_ordinary(corpus) == reference.encode_ordinary(corpus)
    assert gpt2.encode(corpus) == reference.encode(corpus)
    assert gpt2.decode(gpt2.encode(corpus)) == corpus


def test_offline_tiktoken_encoding_is_gpt2(reference, corpus):
    encoding = tok.gpt2_tiktoken_encoding()
    assert encoding.n_vocab == 50257 and encoding.eot_token == 50256
    sample = corpus[:200_000] + EOT
    assert encoding.encode(sample, allowed_special="all") == reference.encode(sample, allowed_special="all")


# Long chunks (512 bytes and more) take minigpt's long-piece BPE: whole levels of merges while they are safe, then a
# heap. A run of one character is one chunk of GPT-2's pattern however long (letters, digits, punctuation and
# whitespace each make one), so these are its hardest cases; tiktoken is the reference throughout.
RUN_CHARACTERS = ["a", "Z", "0", "!", "=", "-", "_", ".", "'", "*", " ", "\n", "\t", "\x00", "\x7f", "é", "ß", "ñ", "Ж",
                  "א", "ع", "日", "한", "\u3000", "😀", "👍", "𝟎", "\U0010ffff"]


def test_long_runs_of_one_character_match_tiktoken(gpt2, reference):
    for char in RUN_CHARACTERS:
        for count in (170, 257, 511, 512, 1001, 4096, 4099):  # both sides of 512 bytes, odd and even counts
            text = char * count
            assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text), (char, count)
    for char in ["a", "!", "é", "日", "😀"]:  # the benchmark's size
        text = char * 200_000
        assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text), char


def test_mixed_long_pieces_match_tiktoken(gpt2, reference):
    rng = random.Random(1)
    thai = [chr(c) for c in range(0xE01, 0xE2F)]  # Thai has no spaces between words: long chunks of many letters
    texts = ["=" * 5000, " " * 3000 + "x", "\n" * 2000, "ab" * 1500, "-_" * 999 + "!", "aab" * 2000, "ha" * 3000 + "!",
             "é" * 2000 + "e" * 2000, "x" + "a" * 5000 + "y", "=-" * 3000, "😀👍" * 500, "日本" * 1000, "👋🏽" * 800,
             "".join(rng.choice("+-*/=<>!?#") for _ in range(4000)), "".join(rng.choice("ab") for _ in range(5000)),
             "".join(rng.choice(thai) for _ in range(3000)), "a" * 10_000, "😀" * 700, "a" * 3000 + "b" * 3000]
    for text in texts:
        assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text), text[:20]


@st.composite
def long_pieces(draw, alphabets=("ab", "aeiou", "abcé", "日本語", "😀👍🏽", "!=-", "+-*/=<>!?#~", "0123", " \n\t")):
    """Text that is mostly one long chunk: a repeated unit from one character class, with a random start and end."""
    alphabet = draw(st.sampled_from(alphabets))
    unit = draw(st.text(st.sampled_from(alphabet), min_size=1, max_size=4))
    edge = st.text(st.sampled_from(alphabet), max_size=12)
    return draw(edge) + unit * (draw(st.integers(130, 1200)) // len(unit) + 1) + draw(edge)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=long_pieces(), max_levels=st.sampled_from([64, 0, 1, 2, 3]))
def test_long_pieces_match_tiktoken(gpt2, reference, text, max_levels):
    # Cutting the merge levels short hands a half-merged piece to the heap, which must finish it exactly.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tok, "_MAX_LEVELS", max_levels, raising=False)
        assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text)


def any_ranks_pair(words: list[str]):
    """minigpt and tiktoken given the 256 bytes and then `words` as tokens, ranked in that order."""
    ranks = {bytes([b]): b for b in range(256)} | {word.encode(): 256 + i for i, word in enumerate(words)}
    return (tok.BPETokenizer.from_ranks(ranks, tok.GPT2_SPLIT_PATTERN),
            tiktoken.Encoding("any_ranks", pat_str=TIKTOKEN_PATTERN, mergeable_ranks=ranks, special_tokens={}))


@pytest.mark.parametrize("words", [["aaa", "aa"], ["aaaa", "aaaaa", "aa"]])
def test_a_level_is_not_merged_whole_when_a_new_pair_ranks_lower(words):
    # ["aaa", "aa"]: "aaa" ranks below "aa", so BPE merges each new "aa" with the next "a" before making the next
    # "aa": [aaa, aaa, ...] where merging every "aa" at once would give [aa, aa, ...]. ["aaaa", "aaaaa", "aa"]: two
    # new "aa" side by side make "aaaa" at once, which takes the next "a" before the next "aa" is made.
    ours, theirs = any_ranks_pair(words)
    if words == ["aaa", "aa"]:
        assert theirs.encode_ordinary("a" * 600) == [256] * 200
    for count in (600, 601, 602, 605):
        assert ours.encode_ordinary("a" * count) == theirs.encode_ordinary("a" * count)


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.text("abc", min_size=2, max_size=4), min_size=1, max_size=30, unique=True),
       text=long_pieces(alphabets=("abc",)))
def test_long_pieces_match_tiktoken_for_any_ranks(words, text):
    # tiktoken accepts any ranks, not only a trained BPE's: a token may rank below a token it contains, which makes
    # some merge levels unsafe (a new pair ranks below the level's) and sends the piece to the heap.
    ours, theirs = any_ranks_pair(words)
    assert ours.encode_ordinary(text) == theirs.encode_ordinary(text)


# Text made of the pieces where the split pattern has its corner cases, mixed with any characters.
tricky_text = st.lists(st.one_of(
    st.sampled_from(list(" \t\n\r'’sdmtlvreSDMTLVRE0123456789") + ["'s", "'LL", "\r\n", "  ", "👋🏽", "e\u0301"]),
    st.characters()), max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(), tricky_text))
def test_gpt2_matches_tiktoken_on_arbitrary_unicode(gpt2, reference, text):
    ids = gpt2.encode_ordinary(text)
    assert ids == reference.encode_ordinary(text)
    assert gpt2.decode(ids) == text


@pytest.fixture(scope="module")
def blocky():
    """A GPT-2 tokenizer of its own, whose block size the tests change (the chunk cache does not depend on it)."""
    return tok.gpt2_tokenizer()


ascii_text = st.lists(st.one_of(st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1f'!.,09azAZ") + ["'s", "'ll"]),
                                 st.characters(max_codepoint=127)), max_size=40).map("".join)
whitespace_heavy = st.text(st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200b"
                                                "\u2028\u3000\ufeffa1!é'")), max_size=30)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(ascii_text, whitespace_heavy, tricky_text), block_size=st.integers(1, 8))
def test_pre_tokenize_cuts_text_like_tiktokens_pattern(blocky, text, block_size):
    # The reference split: tiktoken's spelling of the pattern, run by the regex module (tiktoken does not expose
    # its chunks). Pure-ASCII blocks take a faster regex; tiny blocks put block borders everywhere they may go.
    blocky.BLOCK_SIZE = block_size
    assert blocky.pre_tokenize(text) == regex.findall(TIKTOKEN_PATTERN, text)


@settings(max_examples=300, deadline=None)
@given(text=ascii_text, block_size=st.integers(1, 8))
def test_gpt2_matches_tiktoken_on_ascii_text_cut_in_small_blocks(reference, blocky, text, block_size):
    gpt2 = blocky
    gpt2.BLOCK_SIZE = block_size
    assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text)


@settings(max_examples=300, deadline=None)
@given(text=tricky_text, block_size=st.integers(1, 8))
def test_gpt2_matches_tiktoken_on_mixed_text_cut_in_small_blocks(reference, blocky, text, block_size):
    gpt2 = blocky
    gpt2.BLOCK_SIZE = block_size
    assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text)


def test_small_blocks_on_the_megabyte_corpus(reference, blocky, corpus):
    gpt2 = blocky
    gpt2.BLOCK_SIZE = 37
    sample = corpus[:300_000] + corpus[-300_000:]
    assert gpt2.encode_ordinary(sample) == reference.encode_ordinary(sample)


def test_surrogates_are_treated_like_tiktoken(gpt2, reference):
    # Lone surrogates cannot be UTF-8: both replace them with U+FFFD; a pair becomes the character it encodes.
    for text in ["a\ud800b", "\udfff", "x \ud83d\ude00 y", "\ud83d\ude00\ud83d"]:
        assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text)
        assert gpt2.encode(text) == reference.encode(text)


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, 50256), max_size=40))
def test_decode_matches_tiktoken_including_broken_utf8(gpt2, reference, ids):
    assert gpt2.decode_bytes(ids) == reference.decode_bytes(ids)
    assert gpt2.decode(ids) == reference.decode(ids)  # invalid UTF-8 -> U+FFFD, like tiktoken


def test_decoding_half_a_character_gives_a_replacement_character(gpt2):
    ids = gpt2.encode("👋")
    assert len(ids) > 1 and gpt2.decode(ids[:1]) == "\ufffd" and gpt2.decode(ids) == "👋"


# ---------------------------------------------------------------------------------------------------------------
# Special tokens: tiktoken's rules in each mode.

SPECIAL_TEXTS = ["hello <|endoftext|> world", "<|endoftext|><|endoftext|>", "no special here",
                 "<|endoftext", "a<|endoftext|>b<|endoftext|>", "<|endoftext|>"]


@pytest.mark.parametrize("text", SPECIAL_TEXTS)
@pytest.mark.parametrize("mode", [
    {}, {"allowed_special": "all"}, {"allowed_special": {EOT}}, {"disallowed_special": ()},
    {"allowed_special": set(), "disallowed_special": ()}, {"disallowed_special": {EOT}},
    {"allowed_special": "all", "disallowed_special": ()}, {"disallowed_special": "all"}])
def test_gpt2_special_tokens_follow_tiktoken(gpt2, reference, text, mode):
    try:
        expected = reference.encode(text, **mode)
    except ValueError:
        with pytest.raises(ValueError, match="special token"):
            gpt2.encode(text, **mode)
    else:
        assert gpt2.encode(text, **mode) == expected
        assert gpt2.decode(expected) == text


FIM, UNKNOWN = "<|fim|>", "<|not_a_special_token|>"
RULE_TEXTS = ["a<|endoftext|>b", "x<|fim|>y<|endoftext|><|fim|>", "hello world", f"{UNKNOWN} hi", "", "<|fim",
              "<|endoftext|><|fim|>hello"]
ALLOWED = ["all", set(), {EOT}, {FIM}, {EOT, FIM}, {UNKNOWN}, {EOT, UNKNOWN}, {""}, {"hello"}, frozenset({FIM})]
DISALLOWED = ["all", (), set(), {EOT}, {FIM}, {UNKNOWN}, {"hello"}, {""}, [EOT], frozenset({EOT, FIM})]


def special_rule_mismatches(ours, theirs, allowed_sets=ALLOWED) -> list[str]:
    """Every (text, allowed, disallowed) of the grid where minigpt and tiktoken differ: in raising, or in the ids."""
    mismatches = []
    for text in RULE_TEXTS:
        for allowed in allowed_sets:
            for disallowed in DISALLOWED:
                mode = {"allowed_special": allowed, "disallowed_special": disallowed}
                try:
                    expected = theirs.encode(text, **mode)
                except ValueError:
                    expected = "ValueError"
                try:
                    got = ours.encode(text, **mode)
                except ValueError:
                    got = "ValueError"
                if got != expected:
                    mismatches.append(f"{text!r} {mode}: tiktoken {expected}, minigpt {got}")
    return mismatches


def test_special_token_rules_follow_tiktoken_with_several_special_tokens():
    # Unknown names in allowed_special are ignored; any text in disallowed_special raises when present (even one
    # that is no special token, even ""); "all" means this encoding's special tokens. No special token here is a
    # prefix of another: where one is, tiktoken's pick depends on its hash order (see encode's docstring).
    specials = {EOT: 50256, FIM: 50257, "<|im_start|>": 50258}
    theirs = tiktoken.Encoding("r50k_plus", pat_str=TIKTOKEN_PATTERN, mergeable_ranks=read_ranks(RANK_FILE),
                               special_tokens=specials)
    ours = tok.BPETokenizer.from_ranks(tok.load_tiktoken_ranks(RANK_FILE), tok.GPT2_SPLIT_PATTERN, specials)
    assert special_rule_mismatches(ours, theirs) == []


def test_special_token_rules_follow_tiktoken_without_special_tokens():
    # A tokenizer trained with no special tokens: allowing <|endoftext|> is allowed and changes nothing.
    ours = tok.BPETokenizer().train(stories()[:3000], 300)
    assert ours.special_tokens == {}
    # allowed_special={""} is left out: tiktoken 0.14 panics on it for an encoding without special tokens (its empty
    # special-token pattern matches the empty string, which it then looks up); minigpt ignores it like any unknown name.
    assert special_rule_mismatches(ours, tiktoken_twin(ours), [a for a in ALLOWED if a != {""}]) == []
    assert ours.encode("a<|endoftext|>b", allowed_special={""}) == ours.encode_ordinary("a<|endoftext|>b")
    text = "one<|endoftext|>two"
    assert ours.encode(text, allowed_special={EOT}) == ours.encode_ordinary(text) == ours.encode(text)


def test_encode_ordinary_reads_special_tokens_as_text(gpt2, reference):
    text = "a<|endoftext|>b"
    assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text)
    assert 50256 not in gpt2.encode_ordinary(text)
    assert gpt2.decode([50256]) == EOT


def test_bad_arguments_get_clear_errors(gpt2):
    with pytest.raises(TypeError, match="collection"):
        gpt2.encode("x", allowed_special=EOT)  # a bare string would be read as a set of characters
    with pytest.raises(TypeError, match="collection"):
        gpt2.encode("<x", disallowed_special="<|")  # tiktoken would raise for the "<" in the text
    with pytest.raises(TypeError, match="collection"):
        gpt2.encode("x", allowed_special=None)
    with pytest.raises(TypeError, match="str"):
        gpt2.encode_ordinary(b"bytes")
    with pytest.raises(TypeError, match="str"):
        gpt2.encode(b"bytes")
    with pytest.raises(ValueError, match="not a token id"):
        gpt2.decode([1, 50257])
    with pytest.raises(ValueError, match="not a token id"):
        gpt2.decode([-1])
    with pytest.raises(ValueError, match="integers"):
        gpt2.decode(["15496"])
    assert gpt2.decode(np.array([15496, 995])) == "Hello world"  # any integer type will do
    with pytest.raises(ValueError, match="vocab_size"):
        tok.BPETokenizer().train("some text", 255)


# ---------------------------------------------------------------------------------------------------------------
# Training.

def replay_is_greedy(text: str, tokenizer, pattern) -> None:
    """Check from BPE's definition that every merge took the most frequent pair (smallest ids on a tie)."""
    chunks = regex.findall(pattern, text) if pattern else [text]
    words = [list(chunk.encode("utf-8")) for chunk in chunks]
    for (first, second), new_id in tokenizer.merges.items():
        counts = Counter(pair for word in words for pair in zip(word, word[1:]))
        top = max(counts.values())
        assert counts[(first, second)] == top and (first, second) == min(p for p, c in counts.items() if c == top)
        for k, word in enumerate(words):  # merge left to right, without overlaps
            out, i = [], 0
            while i < len(word):
                if word[i:i + 2] == [first, second]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[k] = out


@pytest.mark.parametrize("pattern", ["gpt2", None])
def test_each_merge_is_the_most_frequent_pair_smallest_ids_on_ties(pattern):
    pattern = tok.GPT2_SPLIT_PATTERN if pattern else None
    text = stories()[:4000]
    tokenizer = tok.BPETokenizer(pattern).train(text, 256 + 60)
    assert len(tokenizer.merges) == 60 and tokenizer.vocab_size == 316
    replay_is_greedy(text, tokenizer, pattern)


def test_fast_training_gives_the_naive_merges_on_the_stories():
    text = stories()
    fast = tok.BPETokenizer().train(text, 700)
    naive = tok.BPETokenizer().train(text, 700, naive=True)
    assert list(fast.merges.items()) == list(naive.merges.items()) and fast.vocab == naive.vocab
    assert len(fast.vocab) == 700


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.sampled_from("aab  b\n'sXé"), max_size=120), extra=st.integers(0, 40),
       pattern=st.sampled_from([None, "gpt2"]))
def test_fast_and_naive_training_agree_on_tie_heavy_texts(text, extra, pattern):
    pattern = tok.GPT2_SPLIT_PATTERN if pattern else None
    fast = tok.BPETokenizer(pattern).train(text, 256 + extra)
    naive = tok.BPETokenizer(pattern).train(text, 256 + extra, naive=True)
    assert list(fast.merges.items()) == list(naive.merges.items())
    assert fast.decode(fast.encode_ordinary(text)) == text


def test_training_is_reproducible():
    text = stories()
    first = tok.BPETokenizer().train(text, 600, special_tokens=["<|sep|>"])
    second = tok.BPETokenizer().train(text, 600, special_tokens=["<|sep|>"])
    assert list(first.merges.items()) == list(second.merges.items()) and first.vocab == second.vocab


@pytest.fixture(scope="module")
def trained():
    return tok.BPETokenizer().train(stories(), 1000, special_tokens=["<|sep|>", "<|pad|>"])


def tiktoken_twin(tokenizer) -> tiktoken.Encoding:
    return tiktoken.Encoding("trained", pat_str=TIKTOKEN_PATTERN,
                             mergeable_ranks={token: i for i, token in enumerate(tokenizer.vocab)},
                             special_tokens=tokenizer.special_tokens)


def test_trained_tokenizer_layout(trained):
    assert trained.vocab_size == 1000 and len(trained.vocab) == 998
    assert trained.special_tokens == {"<|sep|>": 998, "<|pad|>": 999}
    assert trained.vocab[:256] == [bytes([b]) for b in range(256)]
    assert all(trained.vocab[a] + trained.vocab[b] == trained.vocab[new] for (a, b), new in trained.merges.items())


def test_trained_tokenizer_encodes_like_tiktoken_with_its_vocabulary(trained, corpus):
    twin = tiktoken_twin(trained)
    text = stories() + corpus[:150_000] + corpus[-150_000:]
    assert trained.encode_ordinary(text) == twin.encode_ordinary(text)
    for mode in [{"allowed_special": "all"}, {"allowed_special": {"<|pad|>"}, "disallowed_special": ()},
                 {"disallowed_special": ()}]:
        sample = "x<|sep|>y<|pad|><|sep|> z"
        assert trained.encode(sample, **mode) == twin.encode(sample, **mode)
    with pytest.raises(ValueError, match="<\\|sep\\|>"):
        trained.encode("x<|sep|>y", allowed_special={"<|pad|>"})


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_trained_tokenizer_round_trips_any_text(trained, text):
    assert trained.decode(trained.encode_ordinary(text)) == text


def test_special_tokens_are_cut_out_of_the_training_text():
    text = "<|sep|>".join(["the cat sat"] * 50)
    tokenizer = tok.BPETokenizer().train(text, 300, special_tokens=["<|sep|>"])
    assert not any(b"<" in token or b"|" in token for token in tokenizer.vocab[256:])
    assert tokenizer.encode(text, allowed_special="all").count(tokenizer.special_tokens["<|sep|>"]) == 49


def test_training_stops_when_no_pair_is_left():
    tokenizer = tok.BPETokenizer().train("abab", 1000, special_tokens=["<|x|>"])
    assert [tokenizer.vocab[new] for new in tokenizer.merges.values()] == [b"ab", b"abab"]
    assert tokenizer.special_tokens == {"<|x|>": 258} and tokenizer.vocab_size == 259


def test_without_a_pattern_merges_cross_word_borders():
    text = "the tree, the tea, the tent " * 20
    plain = tok.BPETokenizer(pattern=None).train(text, 300)
    split = tok.BPETokenizer().train(text, 300)
    assert any(b" " in token.strip(b" ") for token in plain.vocab[256:])  # a space inside a token: "e t"
    assert not any(b" " in token[1:] for token in split.vocab[256:])  # GPT-2's pattern: a space only in front
    assert plain.decode(plain.encode(text)) == text


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading.

def test_save_and_load_round_trip(trained, tmp_path):
    path = tmp_path / "story.bpe"
    trained.save(path)
    loaded = tok.BPETokenizer.load(path)
    assert loaded.vocab == trained.vocab and loaded.special_tokens == trained.special_tokens
    assert list(loaded.merges.items()) == list(trained.merges.items()) and loaded.pattern == trained.pattern
    text = "The fox counted <|sep|> stars, 1234 of them!"
    assert loaded.encode(text, allowed_special="all") == trained.encode(text, allowed_special="all")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("merge\t") and line.endswith("' the'") for line in lines)  # readable by a person
    assert [p.name for p in tmp_path.iterdir()] == ["story.bpe"]  # no temporary file left behind


def test_gpt2_save_and_load_round_trip(gpt2, reference, tmp_path, corpus):
    path = tmp_path / "gpt2.bpe"
    gpt2.save(path)
    loaded = tok.BPETokenizer.load(path)
    assert loaded.vocab == gpt2.vocab and loaded.special_tokens == gpt2.special_tokens
    sample = corpus[-100_000:]
    assert loaded.encode_ordinary(sample) == reference.encode_ordinary(sample)


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "bad.bpe"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a minigpt tokenizer file"):
        tok.BPETokenizer.load(path)
    path.write_text("minigpt-bpe 1\npattern\tnull\nbyte\t0\t0\nmerge\t1\t0\t7\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 4"):  # merge of an id that was never defined
        tok.BPETokenizer.load(path)
