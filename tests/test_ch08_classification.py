"""Chapter 8: reading and balancing the SMS data, padding, pooling, LoRA, training strategies, save/load.

Models here are tiny (a vocabulary of 64 ids, 2 layers of width 32) so the whole file runs in seconds on a CPU;
the classifier does not care how large the GPT under it is.
"""
import json
import random
import re
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from minigpt import speed
from minigpt.model import GPTConfig, GPTModel
from tests._impl import load_impl
from tests._scripts import load_script, stopped_with_one_line

clf = load_impl("minigpt.classify")
lora = load_impl("minigpt.lora")
loading = load_impl("minigpt.loading")

BUNDLED = Path(__file__).resolve().parent.parent / "data" / "sms"


# Models this small train several times faster on one thread than on two that the OS has to share.
pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def tiny_config(**overrides) -> GPTConfig:
    settings = dict(vocab_size=64, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    return GPTConfig(**{**settings, **overrides})


def tiny_classifier(pooling="last", seed=0, **overrides):
    torch.manual_seed(seed)
    return clf.GPTClassifier(GPTModel(tiny_config(**overrides)), num_classes=2, pooling=pooling).eval()


def write(tmp_path, text, name="sms.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- the UCI file


def test_reads_uci_lines_and_splits_on_the_first_tab_only(tmp_path):
    path = write(tmp_path, "ham\tSee you at 8\nspam\tWIN £100\tnow!\n\nham\tok\r\n")
    assert clf.read_sms_file(path) == [("ham", "See you at 8"), ("spam", "WIN £100\tnow!"), ("ham", "ok")]


def test_header_line_is_skipped_with_a_warning(tmp_path):
    path = write(tmp_path, "label\ttext\nham\thello there\nspam\tfree prize\n")
    with pytest.warns(UserWarning, match="header"):
        examples = clf.read_sms_file(path)
    assert examples == [("ham", "hello there"), ("spam", "free prize")]


@pytest.mark.parametrize("bad_line, problem", [
    ("ham See you at 8", "no TAB"),           # spaces instead of a TAB
    ("eggs\tSee you at 8", "unknown label"),
    ("spam\t   ", "empty message"),
])
def test_malformed_line_is_reported_with_file_line_and_expectation(tmp_path, bad_line, problem):
    path = write(tmp_path, f"ham\tfine\nspam\talso fine\n{bad_line}\nham\tnever reached\n")
    with pytest.raises(ValueError) as info:
        clf.read_sms_file(path)
    message = str(info.value)
    assert f"{path}:3" in message and problem in message and "expected" in message


def test_byte_order_mark_is_ignored_and_other_encodings_are_reported(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffham\tcafé\n".encode("utf-8"))
    assert clf.read_sms_file(path) == [("ham", "café")]
    path.write_bytes("ham\thi\nspam\tWIN £5\n".encode("latin-1"))
    with pytest.raises(ValueError, match=":2: not UTF-8"):
        clf.read_sms_file(path)


def test_header_anywhere_but_the_first_line_is_an_error(tmp_path):
    path = write(tmp_path, "ham\thi\nlabel\ttext\n")
    with pytest.raises(ValueError, match=":2"):
        clf.read_sms_file(path)


def test_bundled_data_parses_and_splits_do_not_overlap():
    if not (BUNDLED / "all.tsv").is_file():
        pytest.skip("the bundled SMS data (data/sms/*.tsv) is not there yet")
    splits = {name: clf.read_sms_file(BUNDLED / f"{name}.tsv") for name in ("train", "validation", "test")}
    everything = clf.read_sms_file(BUNDLED / "all.tsv")
    texts = [text for examples in splits.values() for _, text in examples]
    assert len(texts) == len(set(texts)) == len(everything)
    assert sorted(everything) == sorted(e for examples in splits.values() for e in examples)


def test_write_then_read_round_trip(tmp_path):
    examples = [("ham", "a b c"), ("spam", "x\ty"), ("ham", "£5 café 😂")]
    assert clf.read_sms_file(clf.write_sms_file(examples, tmp_path / "out.tsv")) == examples


# ------------------------------------------------------------------------------- splitting, balancing


def toy_examples(n_ham=87, n_spam=13):
    return [("ham", f"ham message {i}") for i in range(n_ham)] + [("spam", f"spam message {i}") for i in range(n_spam)]


def test_undersampling_keeps_as_many_of_each_class_as_the_rarest_has():
    examples = toy_examples(87, 13)
    random.Random(1).shuffle(examples)
    balanced = clf.undersample(examples, seed=5)
    assert sum(l == "ham" for l, _ in balanced) == sum(l == "spam" for l, _ in balanced) == 13
    # A subset in the original order, every spam message kept, and the same choice for the same seed.
    positions = [examples.index(e) for e in balanced]
    assert positions == sorted(positions)
    assert {e for e in examples if e[0] == "spam"} <= set(balanced)
    assert balanced == clf.undersample(examples, seed=5)
    assert balanced != clf.undersample(examples, seed=6)


def test_stratified_split_is_disjoint_complete_reproducible_and_keeps_the_ratio():
    examples = toy_examples(870, 130)
    train, val, test = clf.stratified_split(examples, (0.7, 0.1, 0.2), seed=3)
    assert sorted(train + val + test) == sorted(examples)
    assert (len(train), len(val), len(test)) == (700, 100, 200)
    for part, size in ((train, 700), (val, 100), (test, 200)):
        assert sum(l == "spam" for l, _ in part) == round(size * 0.13)
    assert (train, val, test) == clf.stratified_split(examples, (0.7, 0.1, 0.2), seed=3)
    with pytest.raises(ValueError, match="sum to 1"):
        clf.stratified_split(examples, (0.7, 0.1, 0.1))


def test_download_extracts_the_collection_from_the_cached_zip(tmp_path, monkeypatch):
    # No network here: put a zip where the download helper caches it, then check extraction and the sha256 pin.
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path))
    (tmp_path / "sms").mkdir()
    with zipfile.ZipFile(tmp_path / "sms" / "sms+spam+collection.zip", "w") as z:
        z.writestr("SMSSpamCollection", "ham\tGo home\nspam\tWIN now\n")
        z.writestr("readme", "not data")
    with pytest.raises(ValueError, match="sha256"):
        clf.download_sms_spam(verify=True, quiet=True)   # our zip is not the real one
    path = clf.download_sms_spam(verify=False, quiet=True)
    assert clf.read_sms_file(path) == [("ham", "Go home"), ("spam", "WIN now")]
    # A zip downloaded elsewhere works the same way.
    with zipfile.ZipFile(tmp_path / "elsewhere.zip", "w") as z:
        z.writestr("SMSSpamCollection", "spam\tFREE tickets\n")
    path = clf.download_sms_spam(verify=False, local=tmp_path / "elsewhere.zip")
    assert clf.read_sms_file(path) == [("spam", "FREE tickets")]


# --------------------------------------------------------------------------------- padding, batching


def test_pad_or_truncate():
    assert clf.pad_or_truncate([5, 6, 7], 5) == [5, 6, 7, 50256, 50256]
    assert clf.pad_or_truncate([5, 6, 7, 8, 9, 10], 4) == [5, 6, 7, 8]      # keeps the beginning
    assert clf.pad_or_truncate([5, 6], 2, pad_token_id=0) == [5, 6]


def encode_numbers(text):
    """A stand-in tokenizer for the toy tasks: "3 14 15" -> [3, 14, 15]."""
    return [int(t) for t in text.split()]


def test_dataset_pads_truncates_and_records_true_lengths():
    examples = [("ham", "1 2 3"), ("spam", "4 5 6 7 8 9"), ("ham", "10")]
    data = clf.SpamDataset(examples, encode_numbers, max_length=4, pad_token_id=0)
    assert data.input_ids.tolist() == [[1, 2, 3, 0], [4, 5, 6, 7], [10, 0, 0, 0]]
    assert data.lengths.tolist() == [3, 4, 1] and data.targets.tolist() == [0, 1, 0]
    assert data.truncated == 1
    assert clf.SpamDataset(examples, encode_numbers).max_length == 6   # default: the longest message
    with pytest.raises(ValueError, match="not among"):
        clf.SpamDataset([("eggs", "1")], encode_numbers)


def test_batches_drop_only_columns_that_are_padding_in_every_row():
    examples = [("ham", "1 2"), ("spam", "3 4 5"), ("ham", "6"), ("spam", "7 8 9 10 11 12")]
    data = clf.SpamDataset(examples, encode_numbers, max_length=8, pad_token_id=0)
    ids, lengths, targets = next(iter(clf.make_loader(data, batch_size=3)))
    assert ids.tolist() == [[1, 2, 0], [3, 4, 5], [6, 0, 0]]
    assert lengths.tolist() == [2, 3, 1] and targets.tolist() == [0, 1, 0]


# ---------------------------------------------------------------------------------------------- pooling


def padded_batch(messages, length, pad):
    ids = torch.tensor([m + [pad] * (length - len(m)) for m in messages])
    return ids, torch.tensor([len(m) for m in messages])


MESSAGES = [[3, 17, 9, 40, 2, 11], [5], [60, 61, 62], [8, 8, 8, 8, 8, 8, 8, 8, 8, 63]]


@pytest.mark.parametrize("pad", [0, 63])   # 63 also ends the last message: positions come from lengths, not ids
def test_last_token_pooling_is_the_last_real_tokens_output_of_the_unpadded_message(pad):
    model = tiny_classifier("last")
    ids, lengths = padded_batch(MESSAGES, 14, pad)
    with torch.no_grad():
        pooled = model(ids, lengths)
        # Reference: each message alone, without padding; the output at its final position.
        alone = torch.stack([model.gpt(torch.tensor([m]))[0, -1] for m in MESSAGES])
    # Same fp32 arithmetic on different sequence lengths; the tolerance covers summation-order differences.
    torch.testing.assert_close(pooled, alone, rtol=1e-5, atol=1e-5)


def test_first_and_mean_pooling_match_their_definitions():
    ids, lengths = padded_batch(MESSAGES, 12, 0)
    with torch.no_grad():
        first = tiny_classifier("first")(ids, lengths)
        mean = tiny_classifier("mean")(ids, lengths)
        per_token = [tiny_classifier("mean").gpt(torch.tensor([m]))[0] for m in MESSAGES]
    torch.testing.assert_close(first, torch.stack([p[0] for p in per_token]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mean, torch.stack([p.double().mean(0).float() for p in per_token]),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["last", "first", "mean"])
def test_prediction_does_not_depend_on_how_much_padding_follows(pooling):
    model = tiny_classifier(pooling)
    with torch.no_grad():
        outputs = [model(*padded_batch(MESSAGES, length, 0)) for length in (10, 17, 32)]
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0], rtol=1e-5, atol=1e-5)


def test_last_token_sees_the_whole_message_and_the_first_does_not():
    # Change the first token: the last position's output changes; change the last token: the first's does not.
    model = tiny_classifier("last")
    with torch.no_grad():
        base = model.gpt(torch.tensor([[3, 17, 9, 40]]))[0]
        new_first = model.gpt(torch.tensor([[4, 17, 9, 40]]))[0]
        new_last = model.gpt(torch.tensor([[3, 17, 9, 41]]))[0]
    assert (base[-1] - new_first[-1]).abs().max() > 1e-4
    assert torch.equal(base[0], new_last[0])


# ------------------------------------------------------------------------------------------------- LoRA


def test_lora_linear_computes_the_low_rank_update_formula():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    layer = lora.LoRALinear(base, rank=3, alpha=6.0)
    assert torch.equal(layer.B, torch.zeros(7, 3)) and layer.A.abs().sum() > 0
    nn.init.normal_(layer.B)
    x = torch.randn(5, 12)
    # float64 reference: W x + b + (alpha / rank) · B A x
    W, b, A, B = (t.detach().double() for t in (base.weight, base.bias, layer.A, layer.B))
    expected = x.double() @ W.T + b + 2.0 * (x.double() @ A.T @ B.T)
    torch.testing.assert_close(layer(x).double(), expected, rtol=1e-5, atol=1e-5)   # fp32 vs fp64 rounding


def test_lora_a_init_is_kaiming_uniform_like_nn_linear():
    torch.manual_seed(0)
    layer = lora.LoRALinear(nn.Linear(400, 300), rank=64, alpha=1.0)
    bound = 1 / 400 ** 0.5   # kaiming_uniform with a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert layer.A.abs().max() <= bound
    assert layer.A.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.05)   # std of U(-c, c) is c/sqrt(3)


def test_lora_starts_as_the_identity_change():
    model = tiny_classifier()
    ids, lengths = padded_batch(MESSAGES, 12, 0)
    with torch.no_grad():
        before = model(ids, lengths)
        replaced = lora.apply_lora(model.gpt, rank=4, alpha=8, targets=lora.ALL_LINEAR)
        after = model(ids, lengths)
    assert len(replaced) == 2 * 6
    assert torch.equal(before, after)   # B = 0 adds exactly zero


def trained_looking_lora(model, targets=lora.ATTENTION_QV):
    if targets:
        lora.apply_lora(model.gpt, rank=4, alpha=8, targets=targets)
    torch.manual_seed(1)
    for module in model.modules():
        if type(module).__name__ == "LoRALinear":
            nn.init.normal_(module.B, std=0.05)   # as if trained: B A is no longer zero
    return model


def test_merge_lora_keeps_the_outputs_and_removes_the_adapters():
    model = trained_looking_lora(tiny_classifier(), lora.ALL_LINEAR)
    ids, lengths = padded_batch(MESSAGES, 12, 0)
    with torch.no_grad():
        plain = tiny_classifier()(ids, lengths)
        adapted = model(ids, lengths)
        lora.merge_lora(model)
        merged = model(ids, lengths)
    assert (adapted - plain).abs().max() > 1e-3          # the adapters do change the outputs...
    assert not any(isinstance(m, lora.LoRALinear) for m in model.modules())
    assert all(type(m.att.W_query) is nn.Linear for m in model.gpt.trf_blocks)
    # ...and merging keeps them: W + sBA computed once instead of per input; fp32 rounding only.
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)


def test_apply_lora_rejects_targets_that_match_nothing():
    with pytest.raises(ValueError, match="no nn.Linear"):
        lora.apply_lora(tiny_classifier().gpt, targets=("W_querry",))


# ------------------------------------------------------------------------------------------ strategies


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def block_parameters(d, qkv_bias=False):
    attention = 4 * d * d + (3 * d if qkv_bias else 0) + d   # W_query, W_key, W_value, out_proj (+ its bias)
    feed_forward = d * 4 * d + 4 * d + 4 * d * d + d
    return attention + feed_forward + 2 * 2 * d              # two LayerNorms with scale and shift


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_each_strategy_trains_exactly_the_chosen_parameters(qkv_bias):
    cfg = tiny_config(qkv_bias=qkv_bias, n_layers=3)
    d, classes, vocab, context = cfg.emb_dim, 2, cfg.vocab_size, cfg.context_length
    head = d * classes + classes
    total = vocab * d + context * d + cfg.n_layers * block_parameters(d, qkv_bias) + 2 * d + head

    def build():
        torch.manual_seed(0)
        return clf.GPTClassifier(GPTModel(cfg), classes)

    model = build()
    assert clf.set_trainable(model, "head") == (head, total)
    assert trainable_names(model) == {"gpt.out_head.weight", "gpt.out_head.bias"}

    model = build()
    assert clf.set_trainable(model, "last", last_blocks=2) == (2 * block_parameters(d, qkv_bias) + 2 * d + head,
                                                               total)
    assert {n.split(".")[2] for n in trainable_names(model) if n.startswith("gpt.trf_blocks")} == {"1", "2"}

    model = build()
    assert clf.set_trainable(model, "all") == (total, total)

    rank = 4
    per_layer = rank * (d + d) * 4 + rank * (d + 4 * d) + rank * (4 * d + d)   # A: rank x in, B: out x rank
    model = build()
    lora_count = cfg.n_layers * per_layer
    assert clf.set_trainable(model, "lora", lora_rank=rank, lora_targets=lora.ALL_LINEAR) == \
        (lora_count + head, total + lora_count)
    assert all(n.endswith((".A", ".B")) or n.startswith("gpt.out_head") for n in trainable_names(model))

    model = build()
    qv = cfg.n_layers * 2 * rank * (d + d)
    assert clf.set_trainable(model, "lora", lora_rank=rank, lora_targets=lora.ATTENTION_QV) == (qv + head, total + qv)


# ------------------------------------------------------------------------------------------- training


def toy_task(n, seed):
    """Ham messages use ids 1-30 only, spam messages ids 33-62 only, 2 to 12 of them: separable by any token."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = "spam" if i % 2 else "ham"
        low, high = (33, 62) if label == "spam" else (1, 30)
        examples.append((label, " ".join(str(rng.randint(low, high)) for _ in range(rng.randint(2, 12)))))
    return examples


# Chance is 50%; the thresholds sit well under what these seeded runs reach (100%, 97%, 93%), well over chance.
@pytest.mark.parametrize("strategy, lr, epochs, target", [("all", 3e-3, 3, 0.95), ("lora", 1e-2, 6, 0.85),
                                                          ("last", 3e-3, 6, 0.85)])
def test_training_learns_a_separable_toy_task(strategy, lr, epochs, target):
    model = tiny_classifier(seed=0)
    clf.set_trainable(model, strategy, lora_rank=4, lora_alpha=8, lora_targets=lora.ALL_LINEAR)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    train, test = (clf.SpamDataset(toy_task(n, seed), encode_numbers, 16, pad_token_id=0)
                   for n, seed in ((128, 1), (128, 2)))
    train_loader, test_loader = clf.make_loader(train, 16, shuffle=True, seed=0), clf.make_loader(test, 64)
    _, before = clf.evaluate_classifier(model, test_loader, "cpu")
    history = clf.train_classifier(model, train_loader, test_loader, epochs=epochs, lr=lr, weight_decay=0.0,
                                   progress=False)
    assert set(history) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert all(len(v) == epochs for v in history.values())
    assert before < 0.7 and history["val_acc"][-1] >= target, (before, history["val_acc"])
    assert history["train_loss"][-1] < history["train_loss"][0]
    # Frozen parameters did not move.
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    true = torch.tensor([0, 0, 1, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0, 2])
    expected = torch.zeros(3, 3, dtype=torch.long)
    for t, p in zip(true.tolist(), predicted.tolist()):
        expected[t, p] += 1
    assert torch.equal(clf.confusion_matrix(predicted, true, 3), expected)


def test_classify_returns_the_label_and_its_softmax_probability():
    model = tiny_classifier()
    label, prob = clf.classify(model, "3 17 9", encode_numbers)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([[3, 17, 9]])), dim=-1)[0]
    assert label == ("ham", "spam")[int(probs.argmax())]
    assert prob == pytest.approx(probs.max().item(), abs=1e-6)


# ------------------------------------------------------------------------------------------ save / load


@pytest.mark.parametrize("with_lora", [False, True])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, with_lora):
    model = tiny_classifier("mean", tie_weights=True)
    if with_lora:
        clf.set_trainable(model, "lora", lora_rank=4, lora_alpha=8)
        trained_looking_lora(model, targets=())
    path = clf.save_classifier(model, tmp_path / "run" / "clf.pt", max_length=12)
    assert [p.name for p in path.parent.iterdir()] == ["clf.pt"]    # no temporary file left behind
    loaded = clf.load_classifier(path)
    assert (loaded.pooling, loaded.labels, loaded.num_classes) == ("mean", ("ham", "spam"), 2)
    assert any(type(m).__name__ == "LoRALinear" for m in loaded.modules()) == with_lora
    ids, lengths = padded_batch(MESSAGES, 12, 0)
    with torch.no_grad():
        assert torch.equal(loaded(ids, lengths), model(ids, lengths))


# ------------------------------------------------------------------------------------- where weights come from


def test_base_model_from_random_init_from_gpt2_weights_and_from_a_checkpoint(tmp_path):
    from dataclasses import asdict

    from minigpt.gpt2 import export_gpt2
    from minigpt.checkpoint import save_checkpoint

    cfg = tiny_config(qkv_bias=True, tie_weights=True)   # GPT-2's layout, at toy size
    random_init = loading.load_base_model(config=cfg)
    assert isinstance(random_init, GPTModel) and random_init.cfg == cfg
    ids = torch.tensor([[3, 17, 9, 40]])
    with torch.no_grad():
        expected = random_init.eval()(ids)
        # GPT-2 weights: a local Hugging Face-style export stands in for the download.
        from_weights = loading.load_base_model(weights=str(export_gpt2(random_init, tmp_path / "hf")))
        torch.testing.assert_close(from_weights(ids), expected, rtol=1e-5, atol=1e-5)  # same weights, fp32
        checkpoint = save_checkpoint(tmp_path / "ckpt.pt", {"model": random_init.state_dict(),
                                                            "model_config": asdict(cfg)})
        from_checkpoint = loading.load_base_model(checkpoint=str(checkpoint))
        assert torch.equal(from_checkpoint(ids), expected)
    with pytest.raises(ValueError, match="not both"):
        loading.load_base_model(weights="gpt2", checkpoint=str(checkpoint))


# ------------------------------------------------------------------- data that cannot measure anything, baselines


def test_a_split_of_one_class_or_none_is_refused_naming_the_file():
    with pytest.raises(clf.InputError, match=r"test\.tsv: every message in the test split is 'ham' \(3\)"):
        clf.check_split([("ham", "a"), ("ham", "b"), ("ham", "c")], "the test split", "test.tsv")
    with pytest.raises(clf.InputError, match=r"val\.tsv: the validation split has no messages"):
        clf.check_split([], "the validation split", "val.tsv")
    clf.check_split([("ham", "a"), ("spam", "b")], "the test split", "test.tsv")   # both classes: fine


def test_majority_baseline_is_the_best_constant_answer():
    examples = [("ham", "a")] * 86 + [("spam", "b")] * 38
    assert clf.majority_baseline(examples) == ("ham", pytest.approx(86 / 124))
    assert clf.majority_baseline([("spam", "b")] * 3 + [("ham", "a")]) == ("spam", 0.75)
    assert clf.majority_baseline([("spam", "b"), ("ham", "a")]) == ("ham", 0.5)   # a tie: the first label
    assert clf.format_accuracy(0.934, ("ham", 0.5)) == "93.4% (always answering 'ham' would score 50.0%)"


def test_small_models_train_on_one_thread_unless_told_otherwise():
    with torch.device("meta"):
        small, wide = GPTModel(tiny_config()), GPTModel(tiny_config(emb_dim=speed.SMALL_MODEL_WIDTH, n_heads=8))
    assert speed.cpu_threads(small) == 1 and speed.cpu_threads(clf.GPTClassifier(small)) == 1
    assert speed.cpu_threads(small, requested=3) == 3
    assert speed.cpu_threads(wide) == torch.get_num_threads()


# --------------------------------------------------------------------------- the SMS reader, fuzzed (hypothesis)

# Weighted towards good lines, so that files with no bad line (read in full) come up often too.
LABEL = st.sampled_from(["ham", "spam"] * 4 + ["Ham", "eggs", "", "label", "ham "])
SEPARATOR = st.sampled_from(["\t"] * 6 + [" ", "", "\t\t"])
MESSAGE = st.text(st.characters(blacklist_characters="\n"), max_size=12)
FUZZ = settings(max_examples=150, deadline=None)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sms_fuzz")


@FUZZ
@given(content=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_give_messages_or_an_input_error_naming_the_line(fuzz_dir, content):
    path = fuzz_dir / "bytes.tsv"
    path.write_bytes(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # a header-like first line is skipped with a warning
            examples = clf.read_sms_file(path)
    except clf.InputError as e:
        assert re.match(re.escape(str(path)) + r"(:\d+: | holds no messages)", str(e)), str(e)
    else:
        assert examples and all(label in clf.LABELS and text.strip() for label, text in examples)


def sms_line_ok(line: str) -> bool:
    """The format written out again: a known label, a TAB, a message that is not blank (CR LF endings allowed)."""
    label, tab, text = line.removesuffix("\r").partition("\t")
    return bool(tab) and label in clf.LABELS and bool(text.strip())


@FUZZ
@given(lines=st.lists(st.tuples(LABEL, SEPARATOR, MESSAGE), min_size=1, max_size=6))
def test_fuzz_lines_are_read_exactly_when_valid_and_errors_name_the_first_bad_line(fuzz_dir, lines):
    texts = [label + sep + message for label, sep, message in lines]
    path = fuzz_dir / "lines.tsv"
    path.write_bytes("\n".join(texts).encode("utf-8", "surrogatepass"))
    bad = [i for i, t in enumerate(texts) if t.strip() and not sms_line_ok(t)]
    header = bool(bad) and bad[0] == 0 and texts[0].partition("\t")[1] and \
        texts[0].partition("\t")[0].strip().lower() in ("label", "class", "category", "v1", "type")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            examples = clf.read_sms_file(path)
    except clf.InputError as e:
        if "not UTF-8" in str(e):   # a surrogate in the text: not encodable text at all
            return
        remaining = bad[1:] if header else bad
        if remaining:
            assert str(e).startswith(f"{path}:{remaining[0] + 1}: "), (str(e), texts)
        else:
            assert "holds no messages" in str(e)
    else:
        assert not (bad[1:] if header else bad)
        wanted = [t.removesuffix("\r").partition("\t") for i, t in enumerate(texts) if t.strip() and sms_line_ok(t)]
        assert examples == [(label, text) for label, _, text in wanted]


# ------------------------------------------------------------------ the chapter script: checked before any work

CHAPTER = Path(__file__).resolve().parent.parent / "chapters" / "ch08_classification.py"


@pytest.fixture(scope="module")
def chapter():
    """The chapter script's globals (main() and what it reads), loaded without running it."""
    return vars(load_script(CHAPTER, "ch08_under_test"))


@pytest.mark.parametrize("argv, names", [
    (["--batch-size", "0"], "--batch-size"), (["--epochs", "0"], "--epochs"), (["--lr", "-1"], "--lr"),
    (["--lr", "inf"], "--lr"), (["--weight-decay", "-0.1"], "--weight-decay"), (["--max-length", "0"], "--max-length"),
    (["--max-length", "257"], "--max-length 257"), (["--lora-rank", "0"], "--lora-rank"),
    (["--lora-alpha", "0"], "--lora-alpha"), (["--strategy", "lora", "--lora-targets", "W_querry"], "--lora-targets"),
    (["--emb-dim", "100", "--n-heads", "3"], "--emb-dim 100"), (["--n-layers", "0"], "--n-layers"),
    (["--strategy", "last", "--last-blocks", "5"], "--last-blocks 5"), (["--threads", "0"], "--threads"),
    (["--data", "/no/such/file.tsv"], "--data"), (["--checkpoint", "/no/such.pt"], "--checkpoint"),
    (["--weights", "gpt2", "--checkpoint", "x.pt"], "--checkpoint"), (["--device", "tpu"], "--device"),
])
def test_bad_options_stop_before_any_work_with_one_line(chapter, capsys, tmp_path, argv, names):
    out = tmp_path / "out"
    line = stopped_with_one_line(chapter["main"], argv + ["--out", str(out)], capsys)
    assert line.startswith("ch08_classification.py: error: ") and names in line
    assert not out.exists()


@pytest.mark.parametrize("content, expected", [
    ("ham\thi\nham\tyo\nham\tok\n", "every message in the file is 'ham' (3)"),
    ("ham\thi\nspam\tWIN\n", "the validation split (2 messages split 70/10/20 per class) has no messages"),
    ("ham\thi\nspam WIN\n", ":2: no TAB"),
    ("", "holds no messages"),
])
def test_data_that_cannot_measure_anything_is_refused_in_one_line(chapter, capsys, tmp_path, content, expected):
    data = write(tmp_path, content)
    line = stopped_with_one_line(chapter["main"], ["--data", str(data), "--out", str(tmp_path / "out")], capsys)
    assert str(data) in line and expected in line


def test_every_accuracy_is_printed_beside_the_majority_baseline(chapter, capsys, tmp_path):
    # A small model and data set, so the whole script runs in seconds; --balance none keeps the classes uneven.
    messages = [("spam" if i % 3 == 0 else "ham", f"message number {i} " + ("WIN cash" if i % 3 == 0 else "hi"))
                for i in range(60)]
    data = clf.write_sms_file(messages, tmp_path / "sms.tsv")
    chapter["main"](["--data", str(data), "--out", str(tmp_path / "out"), "--emb-dim", "16", "--n-layers", "1",
                     "--n-heads", "2", "--epochs", "1", "--balance", "none"])
    printed = capsys.readouterr().out
    test_baseline = "always answering 'ham' would score 66.7%"   # 8 of the 12 test messages are ham
    assert re.search(rf"Test accuracy before training: [\d.]+% \({test_baseline}\)", printed)
    assert re.search(rf"test accuracy [\d.]+% \({test_baseline}\)", printed)           # the reloaded model
    assert re.search(rf"Test accuracy: [\d.]+% \({test_baseline}\); validation [\d.]+% \(majority 66.7%\), "
                     rf"train [\d.]+% \(majority 66.\d%\)", printed)
    assert re.search(r"epoch 1: train loss [\d.]+ acc [\d.]+% \(majority 66.\d%\)", printed)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["majority_baselines"]["test"] == {"label": "ham", "accuracy": pytest.approx(8 / 12)}
