"""Chapter 11: extending a BPE vocabulary, growing the embeddings, continued pretraining on a mix.

References: tiktoken's Rust encoder for the extended ranks, a naive re-encode-everything BPE loop for the training,
transformers' GPT2LMHeadModel for the grown model's exported logits, and float64 arithmetic for bits per byte and the
new rows' initialisation. Small models on the CPU in float32.
"""
import argparse
import base64
import importlib.util
import math
import string
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.checkpoint import tokenizer_record
from minigpt.data import GPTDataset, load_stories, write_shard, read_shard
from minigpt.files import InputError
from minigpt.loading import load_model
from minigpt.metrics import bits_per_byte
from minigpt.model import GPTConfig, GPTModel
from minigpt.tokenizer import GPT2_ENDOFTEXT, BPETokenizer, bpe_by_rank, gpt2_tokenizer, load_tiktoken_ranks
from minigpt.train import TrainConfig, train
from tests._impl import load_impl

vocab = load_impl("minigpt.vocab")
grow = load_impl("minigpt.grow")

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
CHINESE = ROOT / "data" / "chinese"


def chinese_docs(name: str = "train.txt", count: int | None = None) -> list[str]:
    docs = (CHINESE / name).read_text(encoding="utf-8").split("\n\n")
    return docs[:count] if count else docs


@pytest.fixture(scope="module")
def small():
    """A chapter 1 tokenizer trained on the stories (<|endoftext|> last) and its extension on 150 Chinese stories."""
    old = BPETokenizer().train("\n\n".join(load_stories()), 600, [GPT2_ENDOFTEXT])
    return old, vocab.extend_tokenizer(old, chinese_docs(count=150), 300)


@pytest.fixture(scope="module")
def gpt2():
    old = gpt2_tokenizer()
    return old, vocab.extend_tokenizer(old, chinese_docs(count=100), 200)


# --------------------------------------------------------------------------------------------- the extension

@pytest.mark.parametrize("which", ["small", "gpt2"])
def test_every_old_id_keeps_its_bytes_and_new_ids_come_after_every_old_one(which, request):
    old, new = request.getfixturevalue(which)
    assert new.vocab[:len(old.vocab)] == old.vocab
    assert new.special_tokens == old.special_tokens
    added = vocab.new_tokens(old, new)
    assert [i for i, _ in added] == list(range(old.vocab_size, new.vocab_size))
    assert all(old.encode_ordinary(token.decode("utf-8", "replace")) != [] for _, token in added)
    if which == "gpt2":
        # <|endoftext|> keeps 50256, between GPT-2's ordinary tokens (0-50255) and the new ones (50257...).
        assert new.special_tokens[GPT2_ENDOFTEXT] == 50256 and new.vocab[50256] is None
        assert added[0][0] == 50257 and new.decode([50256]) == GPT2_ENDOFTEXT
    else:
        assert new.special_tokens[GPT2_ENDOFTEXT] == 599 and added[0][0] == 600


@pytest.mark.parametrize("which", ["small", "gpt2"])
def test_new_tokens_are_what_chinese_needs(which, request):
    old, new = request.getfixturevalue(which)
    text = "\n\n".join(chinese_docs("heldout.txt", 20))
    before, after = vocab.compression(old, text), vocab.compression(new, text)
    # Stated loosely on purpose: a few hundred new tokens must cut the tokens of held-out Chinese by a third or more
    # (200 on GPT-2 measured 44% fewer, 300 on the story tokenizer 79% fewer).
    assert after["tokens"] < before["tokens"] * 2 / 3
    assert after["bytes_per_token"] == pytest.approx(before["bytes"] / after["tokens"])


def reference_merges(old: BPETokenizer, docs: list[str], num_new: int) -> list[bytes]:
    """The slow, obvious continued BPE: re-encode every chunk by rank (chapter 1's bpe_by_rank, from its bytes) with
    the current ranks, count all pairs, add the most frequent pair's bytes (ties: smallest pair of ids), repeat."""
    chunks = Counter(c for doc in docs for c in old.pre_tokenize(doc))
    ranks = {t: i for i, t in enumerate(old.vocab) if t is not None}
    next_id, added = old.vocab_size, []
    for _ in range(num_new):
        pairs = Counter()
        for chunk, count in chunks.items():
            ids = [ranks[p] for p in bpe_by_rank(chunk.encode("utf-8"), ranks)]
            for pair in zip(ids, ids[1:]):
                pairs[pair] += count
        if not pairs:
            break
        first, second = min(pairs, key=lambda pair: (-pairs[pair], pair))
        token = [t for t, i in ranks.items() if i == first][0] + [t for t, i in ranks.items() if i == second][0]
        ranks[token] = next_id
        next_id += 1
        added.append(token)
    return added


def test_continued_training_equals_re_encoding_everything_by_rank_after_each_merge(small):
    old, _ = small
    docs = chinese_docs(count=12)
    new = vocab.extend_tokenizer(old, docs, 60)
    assert [token for _, token in vocab.new_tokens(old, new)] == reference_merges(old, docs, 60)


@pytest.mark.parametrize("which", ["small", "gpt2"])
def test_text_no_new_merge_applies_to_encodes_to_exactly_the_old_ids(which, request):
    old, new = request.getfixturevalue(which)
    for story in load_stories():   # English: no new token's bytes occur in it
        assert new.encode_ordinary(story) == old.encode_ordinary(story)


# Characters whose UTF-8 bytes (c2-d0 lead bytes) never occur in the Chinese text, so no new merge can apply.
NON_CHINESE = st.text(st.sampled_from(string.printable + "éüßñçøΩж\u00a0"), max_size=200)


@settings(max_examples=150, deadline=None)
@given(text=NON_CHINESE)
def test_fuzzed_text_without_chinese_bytes_encodes_to_the_old_ids(small, gpt2, text):
    for old, new in (small, gpt2):
        assert new.encode_ordinary(text) == old.encode_ordinary(text)


def test_a_new_merge_applies_wherever_its_bytes_occur_even_outside_chinese(small):
    old, new = small
    # The curly quotes “” (e2 80 9c, e2 80 9d) of the Chinese text taught the pair e2 80, which the dash —
    # (e2 80 94) shares: its old ids change, though it is no Chinese. The rule is about bytes, not languages.
    assert new.encode_ordinary("“") != old.encode_ordinary("“")
    dash_old, dash_new = old.encode_ordinary("—"), new.encode_ordinary("—")
    assert len(dash_new) < len(dash_old) and new.decode(dash_new) == "—"


@pytest.mark.parametrize("which", ["small", "gpt2"])
def test_extended_ranks_in_tiktoken_give_minigpts_ids_on_the_domain_text(which, request):
    old, new = request.getfixturevalue(which)
    encoding = vocab.tiktoken_encoding(new)
    for doc in chinese_docs(count=150) + chinese_docs("heldout.txt"):
        assert encoding.encode_ordinary(doc) == new.encode_ordinary(doc)
    text = "一本旧书<|endoftext|>小明"
    assert encoding.encode(text, allowed_special="all") == new.encode(text, allowed_special="all")


WORDS = ["小明", "图书馆", "下着小雨", "，", "。", "“", "”", "一把雨伞", "的", "了", "编码", "他们在",
         "去"]
MIXED = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=4), st.sampled_from([" ", "\n", "ab", "42"])),
                 max_size=40).map("".join)


@pytest.fixture(scope="module")
def encodings(small, gpt2):
    return [(new, vocab.tiktoken_encoding(new)) for _, new in (small, gpt2)]


@settings(max_examples=200, deadline=None)
@given(text=MIXED)
def test_fuzzed_mixed_text_gives_tiktokens_ids_and_decodes_back(encodings, text):
    for new, encoding in encodings:
        ids = new.encode_ordinary(text)
        assert encoding.encode_ordinary(text) == ids
        assert new.decode(ids) == text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@pytest.mark.parametrize("which", ["small", "gpt2"])
def test_saves_and_loads_in_minigpts_format_and_as_a_tiktoken_rank_file(which, request, tmp_path):
    _, new = request.getfixturevalue(which)
    new.save(tmp_path / "tokenizer.txt")
    loaded = BPETokenizer.load(tmp_path / "tokenizer.txt")
    assert loaded.vocab == new.vocab and loaded.special_tokens == new.special_tokens
    vocab.save_tiktoken_ranks(new, tmp_path / "ranks.tiktoken")
    ranks = load_tiktoken_ranks(tmp_path / "ranks.tiktoken")
    assert ranks == {token: i for i, token in enumerate(new.vocab) if token is not None}
    first = (tmp_path / "ranks.tiktoken").read_text().splitlines()[0].split()
    assert base64.b64decode(first[0]) == new.vocab[0] and first[1] == "0"   # tiktoken's layout: base64 bytes, rank
    rebuilt = BPETokenizer.from_ranks(ranks, new.pattern, new.special_tokens)
    text = "\n\n".join(chinese_docs("heldout.txt", 5))
    assert rebuilt.encode_ordinary(text) == loaded.encode_ordinary(text) == new.encode_ordinary(text)


def test_extension_is_capped_where_uint16_shards_end(gpt2, tmp_path):
    old, _ = gpt2
    assert vocab.max_new_tokens(old) == 65536 - 50257 == 15279
    with pytest.raises(InputError, match="at most 15,279 new tokens"):
        vocab.extend_tokenizer(old, ["小明"], 15280)
    # The largest id the cap allows is the largest a shard holds.
    write_shard(tmp_path / "s.bin", [0, 65535])
    assert read_shard(tmp_path / "s.bin").tolist() == [0, 65535]
    with pytest.raises(ValueError, match="uint16"):
        write_shard(tmp_path / "t.bin", [65536])


def test_extension_stops_when_the_text_runs_out_of_pairs(small):
    old, _ = small
    new = vocab.extend_tokenizer(old, ["小明。"], 50)
    # "小明" is 6 bytes and "。" 3: at most 5 + 2 merges, fewer where the old tokenizer already merged some bytes.
    assert 0 < new.vocab_size - old.vocab_size <= 7
    assert new.encode_ordinary("小明") == [new.vocab_size - 1] or len(new.encode_ordinary("小明")) == 1


# --------------------------------------------------------------------------------------------- growing the model

def tiny_model(vocab_size: int, tie: bool, seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(GPTConfig(vocab_size=vocab_size, context_length=32, emb_dim=32, n_heads=4, n_layers=2,
                              drop_rate=0.0, qkv_bias=True, tie_weights=tie)).eval()


@pytest.mark.parametrize("tie", [True, False])
def test_grown_model_keeps_old_logits_and_new_rows_start_as_the_mean_of_their_pieces(small, tie):
    old, new = small
    model = tiny_model(old.vocab_size, tie)
    grown = grow.grow_model(model, old, new)
    assert grown.cfg.vocab_size == new.vocab_size
    assert (grown.out_head.weight is grown.tok_emb.weight) == tie
    ids = torch.tensor([old.encode_ordinary("Once upon a time, the cat sat.")])
    with torch.no_grad():
        before, after = model(ids), grown(ids)
    # Same weights, same inputs: the old columns come out of the same products; a different blocking of the wider
    # head matmul could reorder float32 sums, hence 1e-6 rather than 0.
    torch.testing.assert_close(after[..., :old.vocab_size], before, atol=1e-6, rtol=0)
    for i, token in vocab.new_tokens(old, new)[::37]:
        pieces = grow.token_pieces(token, vocab.mergeable_ranks(old))
        assert b"".join(old.vocab[p] for p in pieces) == token and len(pieces) >= 2
        expected = torch.stack([model.tok_emb.weight[p].double() for p in pieces]).mean(0).float()
        assert torch.equal(grown.tok_emb.weight[i], expected)
        if not tie:
            expected = torch.stack([model.out_head.weight[p].double() for p in pieces]).mean(0).float()
            assert torch.equal(grown.out_head.weight[i], expected)


def test_growing_refuses_a_tokenizer_that_is_not_an_extension(small, gpt2):
    old, new = small
    with pytest.raises(ValueError, match="not an extension"):
        grow.grow_model(tiny_model(old.vocab_size, True), old, gpt2[1])
    with pytest.raises(ValueError, match="padded"):
        grow.grow_model(tiny_model(old.vocab_size + 8, True), old, new)


@pytest.mark.parametrize("tie", [True, False])
def test_grown_model_exported_in_gpt2_layout_gives_transformers_the_same_logits(small, tie, tmp_path):
    transformers = pytest.importorskip("transformers")
    old, new = small
    grown = grow.grow_model(tiny_model(old.vocab_size, tie), old, new)
    with torch.no_grad():   # give the new rows their own values, so that a misplaced row would show
        grown.tok_emb.weight[old.vocab_size:].normal_(0, 0.02, generator=torch.Generator().manual_seed(1))
    load_impl("minigpt.gpt2").export_gpt2(grown, tmp_path / "hf", end_of_text_id=old.vocab_size - 1)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.vocab_size == new.vocab_size and hf.config.eos_token_id == old.vocab_size - 1
    ids = torch.tensor([new.encode_ordinary("小明在图书馆读书。Once upon a time")])
    assert ids.max() >= old.vocab_size   # the text uses new tokens
    with torch.no_grad():
        # Same function, two implementations in float32: they differ only by rounding (order of sums in attention
        # and the matrix products), well below 1e-5 at these sizes.
        torch.testing.assert_close(hf(ids).logits, grown(ids), atol=1e-5, rtol=0)


def test_training_only_the_new_rows_leaves_every_other_weight_unchanged(small, tmp_path):
    old, new = small
    grown = grow.grow_model(tiny_model(old.vocab_size, False), old, new).train()
    before = {name: p.detach().clone() for name, p in grown.named_parameters()}
    hooks = grow.train_only_new_rows(grown, old.vocab_size)
    ids = torch.tensor(new.encode_ordinary("\n\n".join(chinese_docs(count=20)) + " Once upon a time"))
    batches = [(ids[i:i + 16][None], ids[i + 1:i + 17][None]) for i in range(0, 160, 16)]
    assert any((y < old.vocab_size).any() for _, y in batches)   # old targets too: their rows get gradient, masked
    config = TrainConfig(max_steps=4, warmup_steps=1, learning_rate=1e-2, weight_decay=0.0, eval_every=0,
                         eval_batches=1, out_dir=str(tmp_path), progress=False, sample_tokens=2)
    history = train(grown, batches, batches[:1], config, tokenizer=new)
    after = dict(grown.named_parameters())
    for name, value in before.items():
        if name in ("tok_emb.weight", "out_head.weight"):
            assert torch.equal(after[name][:old.vocab_size], value[:old.vocab_size]), name
            assert not torch.equal(after[name][old.vocab_size:], value[old.vocab_size:]), name
        else:
            assert torch.equal(after[name], value), name
    # The checkpoint records the extended tokenizer, and load_model gives it back.
    reloaded, tokenizer = load_model(history["checkpoint"])
    assert tokenizer.vocab == new.vocab and tokenizer.special_tokens == new.special_tokens
    assert reloaded.cfg.vocab_size == new.vocab_size and tokenizer_record(new)["name"] == "minigpt-bpe"
    # train_all removes the mask: old rows get gradient again.
    grow.train_all(grown, hooks)
    grown.zero_grad()
    x, y = batches[0]
    torch.nn.functional.cross_entropy(grown(x).flatten(0, 1), y.flatten()).backward()
    assert all(p.requires_grad for p in grown.parameters())
    assert grown.tok_emb.weight.grad[:old.vocab_size].abs().sum() > 0


def test_gradient_mask_zeroes_exactly_the_old_rows_of_a_tied_matrix(small):
    old, new = small
    grown = grow.grow_model(tiny_model(old.vocab_size, True), old, new)
    grow.train_only_new_rows(grown, old.vocab_size)
    x = torch.tensor([new.encode_ordinary("小明在图书馆读书。the cat")])
    torch.nn.functional.cross_entropy(grown(x[:, :-1]).flatten(0, 1), x[0, 1:]).backward()
    grad = grown.tok_emb.weight.grad
    assert torch.count_nonzero(grad[:old.vocab_size]) == 0 and torch.count_nonzero(grad[old.vocab_size:]) > 0
    assert [n for n, p in grown.named_parameters() if p.requires_grad] == ["tok_emb.weight"]


# --------------------------------------------------------------------------------------------- mixing and scoring

def test_bits_per_byte_is_nats_per_byte_in_base_two():
    # 8 bytes of text predicted with total loss 8·ln 2 nats: exactly one bit per byte.
    assert bits_per_byte(8 * 0.6931471805599453, 8) == pytest.approx(1.0, rel=1e-15)
    # A uniform guess over 256 byte values costs 8 bits per byte, whatever the number of bytes.
    assert bits_per_byte(1000 * math.log(256), 1000) == pytest.approx(8.0, rel=1e-12)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)


@pytest.mark.parametrize("which", ["old", "new"])
def test_held_out_bits_per_byte_equals_a_direct_float64_computation(small, which):
    old, new = small
    tokenizer = old if which == "old" else new
    model = tiny_model(tokenizer.vocab_size, True, seed=3)
    ids = tokenizer.encode("\n\n".join(chinese_docs("heldout.txt", 2)) + "<|endoftext|>A cat.", allowed_special="all")
    windows = [(torch.tensor([ids[i:i + 32]]), torch.tensor([ids[i + 1:i + 33]])) for i in range(0, 96, 32)]
    score = grow.held_out_score(model, windows, grow.token_bytes(tokenizer))
    nats, num_bytes = 0.0, 0
    with torch.no_grad():
        for x, y in windows:
            log_probs = model(x).double().log_softmax(-1)[0]
            nats -= sum(log_probs[k, t].item() for k, t in enumerate(y[0].tolist()))
            num_bytes += len(tokenizer.decode_bytes(y[0].tolist()))   # the predicted tokens' text, special included
    # evaluate() sums a float32 cross-entropy; 1e-5 relative covers its rounding over ~100 terms.
    assert score["bits_per_byte"] == pytest.approx(nats / (num_bytes * math.log(2)), rel=1e-5)
    assert score["bytes"] == num_bytes and score["targets"] == 96


def test_mixture_draws_the_domain_with_the_given_share():
    domain = GPTDataset(list(range(200)), 4, 4)
    general = GPTDataset(list(range(1000, 1200)), 4, 4)
    for share in (0.0, 0.15, 1.0):
        mixed = grow.mixture(domain, general, share, seed=5)
        draws = [int(mixed.next_window()[0][0] >= 1000) for _ in range(4000)]
        # Binomial(4000, share): within 4 standard deviations (a false failure about once in 16,000 runs).
        assert abs((1 - sum(draws) / 4000) - share) <= 4 * math.sqrt(share * (1 - share) / 4000)
    with pytest.raises(ValueError):
        grow.mixture(domain, general, 1.5)


# --------------------------------------------------------------------------------------------- data and script

def test_bundled_chinese_corpus_is_what_its_generator_makes():
    spec = importlib.util.spec_from_file_location("make_chinese", CHINESE / "make_chinese.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
    train_text, heldout = (CHINESE / "train.txt").read_text(encoding="utf-8"), \
        (CHINESE / "heldout.txt").read_text(encoding="utf-8")
    assert 500_000 < len(train_text.encode("utf-8")) < 1_000_000 and len(heldout) > 20_000
    assert not set(train_text.split("\n\n")) & set(heldout.split("\n\n"))   # no held-out story is in training


def load_script():
    spec = importlib.util.spec_from_file_location("ch11_vocabulary", ROOT / "chapters" / "ch11_vocabulary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, message", [
    (["--shares", "0,1.5"], "each share must be between 0 and 1"),
    (["--new-tokens", "70000"], "at most 64,512 new tokens"),
    (["--weights", "x", "--new-tokens", "16000"], "--weights x: no such file"),
    (["--base", "a", "--weights", "b"], "give one"),
    (["--steps", "0"], "must be at least 1"),
])
def test_script_checks_its_options_before_any_work(argv, message, capsys):
    script = load_script()
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_script_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script().main(["--help"])
    assert exit_info.value.code == 0 and "--shares" in capsys.readouterr().out


def test_share_list_reads_comma_separated_fractions():
    script = load_script()
    assert script.share_list("0,0.15,1") == [0.0, 0.15, 1.0]
    with pytest.raises(argparse.ArgumentTypeError):
        script.share_list("a,b")
