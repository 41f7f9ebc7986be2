"""Chapter 2 tests: sliding windows, dataloaders, token shards, rank slices, exact resume and source mixing.

References are computed independently of minigpt.data: windows with torch's `unfold`, token ids with tiktoken's
own special-token handling, shard headers with `struct` straight from the documented layout.
"""
import json
import math
import struct

import numpy as np
import pytest
import tiktoken
import torch

from minigpt.tokenizer import TIKTOKEN_R50K_PATTERN, BPETokenizer, gpt2_tiktoken_encoding, gpt2_tokenizer
from tests._impl import load_impl

data = load_impl("minigpt.data")
prep = load_impl("minigpt.prepare")

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def enc():
    return gpt2_tiktoken_encoding()


def reference_windows(ids: torch.Tensor, max_length: int, stride: int) -> torch.Tensor:
    """All windows of max_length + 1 tokens: the regular ones by unfold, plus one aligned to the end if needed."""
    windows = ids.unfold(0, max_length + 1, stride)
    covered_up_to = (len(windows) - 1) * stride + max_length + 1
    if covered_up_to < len(ids):
        windows = torch.cat([windows, ids[-(max_length + 1):][None]])
    return windows


# ---------------------------------------------------------------------------------------------------------------
# Sliding windows

@pytest.mark.parametrize("n, max_length, stride", [(103, 8, 8), (103, 8, 3), (103, 8, 1), (40, 4, 4), (9, 8, 5),
                                                   (64, 7, 7)])
def test_windows_and_targets_equal_independent_slicing(n, max_length, stride):
    ids = torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(n + stride))
    dataset = data.GPTDataset(ids.tolist(), max_length, stride)
    expected = reference_windows(ids, max_length, stride)
    assert len(dataset) == len(expected)
    for i, window in enumerate(expected):
        x, y = dataset[i]
        assert x.dtype == torch.long and x.shape == (max_length,)
        assert torch.equal(x, window[:-1]) and torch.equal(y, window[1:])


def test_stride_sets_window_count_and_overlap():
    n, max_length = 101, 10
    ids = torch.arange(n)
    for stride in (1, 2, 5, 10):
        dataset = data.GPTDataset(ids, max_length, stride)
        # The book's loop `range(0, n - max_length, stride)`, plus one end-aligned window when it leaves a tail.
        regular = len(range(0, n - max_length, stride))
        tail = (n - max_length - 1) % stride != 0
        assert len(dataset) == regular + tail
        for i in range(regular - 1):
            (x0, _), (x1, _) = dataset[i], dataset[i + 1]
            # Neighbouring inputs share max_length - stride tokens: stride == max_length means no overlap.
            assert torch.equal(x1[:max_length - stride], x0[stride:])
            assert not set(x0.tolist()) & set(x1[max_length - stride:].tolist())


@pytest.mark.parametrize("stride", [1, 3, 16])
def test_every_token_of_a_long_document_is_in_some_window(stride):
    # Distinct ids make each position identifiable: the union of all windows must be every position.
    n, max_length = 16 * 7 + 5, 16
    dataset = data.GPTDataset(torch.arange(n), max_length, stride)
    seen = set()
    for x, y in dataset:
        seen |= set(x.tolist()) | set(y.tolist())
    assert seen == set(range(n))


def test_long_story_is_cut_into_windows_not_truncated(enc):
    long_doc = " ".join(f"Sentence number {i} of a long story." for i in range(300))
    docs = ["A short story.", long_doc, "Another short one."]
    ids = data.join_documents(docs, enc)
    max_length = 32
    dataset = data.GPTDataset(ids, max_length, max_length)
    assert len(dataset) > len(enc.encode(long_doc)) // max_length  # many windows for the long story, not one
    # With stride == max_length the inputs tile the stream; putting them back together restores the whole text.
    rebuilt = torch.cat([dataset[i][0] for i in range(len(dataset) - 1)]).tolist()
    last_x, last_y = dataset[len(dataset) - 1]
    rebuilt = rebuilt[:len(ids) - max_length - 1] + last_x.tolist() + last_y.tolist()[-1:]
    assert rebuilt == ids
    assert enc.decode(rebuilt).split(EOT) == docs


def test_join_documents_equals_tiktoken_on_the_joined_text(enc):
    docs = ["First story.\n\nIt ends here.", "  Second, with spaces ", "Third: 123 ünïcødé"]
    expected = enc.encode(EOT.join(docs), allowed_special={EOT})
    assert data.join_documents(docs, enc) == expected
    assert data.join_documents(docs, gpt2_tokenizer()) == expected  # chapter 1's tokenizer agrees


def test_a_literal_endoftext_inside_a_document_stays_text(enc):
    doc = f"a story that mentions {EOT} in passing"
    ids = data.join_documents([doc, "b"], enc)
    assert ids.count(enc.eot_token) == 1
    assert ids == enc.encode_ordinary(doc) + [enc.eot_token] + enc.encode_ordinary("b")


def test_from_text_matches_tiktoken_ids(enc):
    text = f"One small story.{EOT}Another small story, told twice. Another small story, told twice."
    dataset = data.GPTDataset.from_text(text, enc, max_length=4, stride=2)
    expected = enc.encode(text, allowed_special={EOT})
    assert dataset.token_ids.tolist() == expected
    assert data.GPTDataset.from_text(text, gpt2_tokenizer(), 4, 2).token_ids.tolist() == expected
    # A string without a tokenizer is read with GPT-2's.
    x, y = next(iter(data.create_dataloader(text, batch_size=1, max_length=4, stride=2, shuffle=False)))
    assert x[0].tolist() == expected[:4] and y[0].tolist() == expected[1:5]


def test_split_ids_cuts_at_the_end():
    ids = list(range(1000))
    train, val = data.split_ids(ids, 0.1)
    assert train + val == ids and len(val) == 100
    assert data.split_ids(ids, 0.0) == (ids, [])
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            data.split_ids(ids, bad)
    with pytest.raises(ValueError, match="too few"):
        data.split_ids([1, 2, 3], 0.01)


def test_load_stories_reads_sorted_files(tmp_path):
    for name, text in [("b.txt", "second\n"), ("a.txt", "first\n"), ("c.md", "not a story")]:
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert data.load_stories(tmp_path) == ["first", "second"]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        data.load_stories(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .txt"):
        data.load_stories(tmp_path / "empty")


def test_bundled_stories_load_and_window(enc):
    stories = data.load_stories()
    assert len(stories) >= 2 and all(stories)
    ids = data.join_documents(stories, enc)
    assert ids.count(enc.eot_token) == len(stories) - 1


# ---------------------------------------------------------------------------------------------------------------
# A tokenizer the learner trained in chapter 1, with and without an <|endoftext|> special token

DOCS = ["Once upon a time a fox counted the stars.", "  The owl, who could not sleep, counted them too.",
        "They never agreed: 1,204 or 1,205?\n\nThe end."]


@pytest.fixture(scope="module")
def trained_tokenizers():
    """(without, with) <|endoftext|>: BPETokenizers trained on the bundled stories to 300 ids, as in chapter 1."""
    text = "\n\n".join(data.load_stories())
    return BPETokenizer().train(text, 300), BPETokenizer().train(text, 300, special_tokens=[EOT])


def stream_by_hand(docs, tokenizer) -> list[int]:
    """The documented stream, from the tokenizer's own calls: the <|endoftext|> id between documents when it has
    one (tiktoken's rule for the joined text), else the ids of a blank line ("\n\n") between their ordinary ids."""
    if EOT in tokenizer.special_tokens:
        return tokenizer.encode(EOT.join(docs), allowed_special={EOT})
    ids = tokenizer.encode_ordinary(docs[0])
    for doc in docs[1:]:
        ids += tokenizer.encode_ordinary("\n\n") + tokenizer.encode_ordinary(doc)
    return ids


def loader_windows(loader) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = zip(*loader)
    return torch.cat(inputs), torch.cat(targets)


@pytest.mark.parametrize("which", ["without <|endoftext|>", "with <|endoftext|>"])
def test_chapter_2_works_with_a_freshly_trained_tokenizer(trained_tokenizers, which):
    tokenizer = trained_tokenizers[which.startswith("with ")]
    expected = stream_by_hand(DOCS, tokenizer)
    # The separator decodes to what it stands for, so the stream is the joined text, token for token.
    joiner = EOT if which.startswith("with ") else "\n\n"
    assert tokenizer.decode(expected) == joiner.join(DOCS)
    assert data.join_documents(DOCS, tokenizer) == expected
    # A string with <|endoftext|> written between the documents gives the same stream as the list of documents.
    dataset = data.GPTDataset.from_text(EOT.join(DOCS), tokenizer, max_length=6, stride=4)
    assert dataset.token_ids.tolist() == expected
    windows = reference_windows(torch.tensor(expected), 6, 4)
    for source in (EOT.join(DOCS), DOCS):
        loader = data.create_dataloader(source, batch_size=3, max_length=6, stride=4, shuffle=False,
                                        drop_last=False, tokenizer=tokenizer)
        x, y = loader_windows(loader)
        assert torch.equal(x, windows[:, :-1]) and torch.equal(y, windows[:, 1:])


def test_a_trained_tokenizer_with_endoftext_gives_tiktokens_ids(trained_tokenizers):
    # tiktoken, given the trained vocabulary, is the reference that does not go through minigpt's encode.
    tokenizer = trained_tokenizers[1]
    twin = tiktoken.Encoding("trained", pat_str=TIKTOKEN_R50K_PATTERN, special_tokens=tokenizer.special_tokens,
                             mergeable_ranks={token: i for i, token in enumerate(tokenizer.vocab)})
    text = EOT.join(DOCS)
    expected = twin.encode(text, allowed_special={EOT})
    assert expected.count(tokenizer.special_tokens[EOT]) == len(DOCS) - 1
    assert data.GPTDataset.from_text(text, tokenizer, 6, 4).token_ids.tolist() == expected
    assert data.join_documents(DOCS, tokenizer) == expected
    # With tiktoken's Encoding itself as chapter 2's tokenizer, the ids are the same.
    assert data.join_documents(DOCS, twin) == expected


def test_the_issue_example_a_plain_text_and_a_tokenizer_trained_on_it():
    # create_dataloader(text, tokenizer=BPETokenizer().train(text, 300)): no <|endoftext|> anywhere.
    text = " ".join(data.load_stories())[:20_000]
    tokenizer = BPETokenizer().train(text, 300)
    loader = data.create_dataloader(text, batch_size=4, max_length=32, stride=32, shuffle=False, tokenizer=tokenizer)
    windows = reference_windows(torch.tensor(tokenizer.encode_ordinary(text)), 32, 32)
    x, y = loader_windows(loader)
    assert len(x) == len(windows) // 4 * 4  # drop_last drops the last incomplete batch
    assert torch.equal(x, windows[:len(x), :-1]) and torch.equal(y, windows[:len(x), 1:])


def test_document_text_stays_text_with_a_trained_tokenizer(trained_tokenizers):
    # Other special-token text inside a document is ordinary text, as join_documents encodes documents.
    plain = trained_tokenizers[0]
    with_sep = BPETokenizer().train("\n\n".join(DOCS), 280, special_tokens=["<|sep|>"])
    for tokenizer in (plain, with_sep):
        docs = ["a <|sep|> b", "c"]
        expected = tokenizer.encode_ordinary(docs[0]) + tokenizer.encode_ordinary("\n\n") + tokenizer.encode("c")
        assert data.join_documents(docs, tokenizer) == expected
        assert data.GPTDataset.from_text(EOT.join(docs), tokenizer, 2, 1).token_ids.tolist() == expected


# ---------------------------------------------------------------------------------------------------------------
# DataLoader

def batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_dataloader_order_is_reproducible_from_the_seed():
    ids = list(range(500))
    first = batches(data.create_dataloader(ids, batch_size=4, max_length=8, stride=8, seed=7))
    again = batches(data.create_dataloader(ids, batch_size=4, max_length=8, stride=8, seed=7))
    other = batches(data.create_dataloader(ids, batch_size=4, max_length=8, stride=8, seed=8))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))
    x, y = first[0]
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    # drop_last: 62 windows make 15 whole batches of 4.
    assert len(first) == len(data.GPTDataset(ids, 8, 8)) // 4 == 15


def test_dataloader_without_shuffle_keeps_stream_order_and_accepts_documents(enc):
    docs = ["one two three four five six seven eight nine ten", "eleven twelve thirteen fourteen fifteen"]
    loader = data.create_dataloader(docs, batch_size=2, max_length=4, stride=4, shuffle=False, drop_last=False,
                                    tokenizer=enc)
    inputs = torch.cat([x.flatten() for x, _ in loader]).tolist()
    ids = enc.encode(EOT.join(docs), allowed_special={EOT})
    assert inputs[:len(ids) // 4 * 4 - 4] == ids[:len(ids) // 4 * 4 - 4]


def test_bad_window_settings_give_clear_errors():
    with pytest.raises(ValueError, match="needs at least 11 tokens"):
        data.GPTDataset(list(range(10)), max_length=10, stride=5)
    with pytest.raises(ValueError, match="stride"):
        data.GPTDataset(list(range(100)), max_length=10, stride=11)
    with pytest.raises(ValueError, match="stride"):
        data.GPTDataset(list(range(100)), max_length=10, stride=0)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        data.create_dataloader(list(range(30)), batch_size=8, max_length=10, stride=10)


# ---------------------------------------------------------------------------------------------------------------
# Token shards

def test_shard_header_roundtrip_follows_the_documented_layout(tmp_path):
    ids = np.random.default_rng(0).integers(0, 50257, size=1234)
    path = data.write_shard(tmp_path / "train_000000.bin", ids)
    raw = path.read_bytes()
    magic, version, count = struct.unpack("<4sIQ", raw[:16])
    assert (magic, version, count) == (b"MGTK", 1, 1234)
    assert np.array_equal(np.frombuffer(raw[16:], dtype="<u2"), ids)
    shard = data.read_shard(path)
    assert isinstance(shard, np.memmap) and shard.dtype == np.uint16
    assert np.array_equal(shard, ids)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed into place


def test_damaged_shards_give_clear_errors(tmp_path):
    good = data.write_shard(tmp_path / "good.bin", np.arange(100)).read_bytes()
    cases = {"magic": b"GPT2" + good[4:], "version": good[:4] + struct.pack("<I", 9) + good[8:],
             "cut short": good[:-10], "header": good[:7]}
    messages = {"magic": "not a minigpt token shard", "version": "version 9", "cut short": "cut short",
                "header": "shorter than"}
    for name, raw in cases.items():
        (tmp_path / "bad.bin").write_bytes(raw)
        with pytest.raises(ValueError, match=messages[name]):
            data.read_shard(tmp_path / "bad.bin")
    with pytest.raises(ValueError, match="uint16"):
        data.write_shard(tmp_path / "big.bin", [1, 70000])


@pytest.fixture
def corpus(tmp_path):
    """A small corpus: a .txt of several <|endoftext|>-separated documents, a one-document .txt and a .jsonl."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    docs_a = [f"Story {i}: the cat counted {i * 7} stars and went to sleep." for i in range(12)]
    (folder / "a.txt").write_text(f"\n{EOT}\n".join(docs_a) + "\n", encoding="utf-8")
    doc_b = "A single longer document. " * 40
    (folder / "b.txt").write_text(doc_b, encoding="utf-8")
    docs_c = [f"Line {i} of the json file, with ünïcode and \"quotes\"." for i in range(8)]
    (folder / "c.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(docs_c)),
                                    encoding="utf-8")
    return folder, docs_a + [doc_b.strip()] + docs_c


def read_split(out, split):
    meta = json.loads((out / "meta.json").read_text())
    return np.concatenate([data.read_shard(out / s["file"]) for s in meta["splits"][split]["shards"]]).tolist()


def test_prepare_cli_writes_tiktoken_ids_and_splits_by_document(corpus, tmp_path, enc, capsys):
    folder, docs = corpus
    out = tmp_path / "shards"
    prep.main(["--input", str(folder / "a.txt"), str(folder / "b.txt"), str(folder / "c.jsonl"),
               "--out", str(out), "--val-fraction", "0.2", "--shard-tokens", "50"])
    train, val = read_split(out, "train"), read_split(out, "val")
    # Each split is its documents joined by <|endoftext|>, token for token what tiktoken gives for that text.
    train_docs, val_docs = enc.decode(train).split(EOT), enc.decode(val).split(EOT)
    assert train == enc.encode(EOT.join(train_docs), allowed_special={EOT})
    assert val == enc.encode(EOT.join(val_docs), allowed_special={EOT})
    # Every document lands whole in exactly one split, in corpus order.
    assert sorted(train_docs + val_docs, key=docs.index) == docs and not set(train_docs) & set(val_docs)
    assert [d for d in docs if d in val_docs] == val_docs and [d for d in docs if d in train_docs] == train_docs
    # The validation share of tokens stays within one document of the requested 20%.
    largest = max(len(enc.encode_ordinary(d)) + 1 for d in docs)
    assert abs(len(val) / (len(train) + len(val)) - 0.2) <= largest / (len(train) + len(val))
    meta = json.loads((out / "meta.json").read_text())
    assert all(s["tokens"] == 50 for s in meta["splits"]["train"]["shards"][:-1])
    assert meta["splits"]["train"]["documents"] == len(train_docs)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_prepare_is_idempotent_and_notices_changed_inputs(corpus, tmp_path, capsys):
    folder, _ = corpus
    out = tmp_path / "shards"
    prep.main(["--input", str(folder), "--out", str(out), "--val-fraction", "0.1",
               "--shard-tokens", "64"])
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    prep.main(["--input", str(folder), "--out", str(out), "--val-fraction", "0.1",
               "--shard-tokens", "64"])
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    # A changed input (here: shorter) is prepared again, and shards of the earlier, longer run are removed.
    (folder / "b.txt").write_text("Now a short document.", encoding="utf-8")
    prep.main(["--input", str(folder), "--out", str(out), "--val-fraction", "0.1",
               "--shard-tokens", "64"])
    assert "nothing to do" not in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    listed = {s["file"] for split in meta["splits"].values() for s in split["shards"]}
    assert {p.name for p in out.glob("*.bin")} == listed


def test_prepare_rejects_bad_input(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2.*\"text\" field"):
        prep.prepare_shards([tmp_path / "bad.jsonl"], tmp_path / "out", progress=False)
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="expected a .txt file"):
        prep.prepare_shards([tmp_path / "notes.csv"], tmp_path / "out", progress=False)
    with pytest.raises(SystemExit):
        prep.main(["--input", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "out")])


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failing_prepare_leaves_the_previous_preparation_untouched(corpus, tmp_path):
    folder, _ = corpus
    out = tmp_path / "shards"
    prep.main(["--input", str(folder), "--out", str(out), "--val-fraction", "0.1", "--shard-tokens", "64"])
    (out / "NOTES.md").write_text("my notes about these shards")   # a file of the user's, not the preparation's
    before = snapshot(out)
    # A file with one byte that is not UTF-8, after some good text: its position is known independently.
    good = "Good text first. " * 50
    bad = folder / "zz_bad.txt"
    bad.write_bytes(good.encode("utf-8") + b"\xff then more")
    with pytest.raises(ValueError, match=rf"zz_bad.txt: not UTF-8 text at byte {len(good.encode())}\b"):
        prep.prepare_shards([folder], out, val_fraction=0.1, shard_tokens=64, progress=False)
    assert snapshot(out) == before                                     # old shards, meta.json and notes intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "shards"]   # no temporary folder left


def test_an_interrupted_prepare_leaves_the_previous_preparation_untouched(corpus, tmp_path, enc, monkeypatch):
    folder, _ = corpus
    out = tmp_path / "shards"
    prep.main(["--input", str(folder), "--out", str(out), "--val-fraction", "0.1", "--shard-tokens", "64"])
    before = snapshot(out)
    (folder / "b.txt").write_text("A changed document, so the preparation must run again.", encoding="utf-8")

    class CtrlC:
        name, n_vocab, eot_token = enc.name, enc.n_vocab, enc.eot_token

        def encode_ordinary_batch(self, docs):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        prep.prepare_shards([folder], out, val_fraction=0.1, shard_tokens=64, encoding=CtrlC(), progress=False)
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "shards"]
    # The next run completes, keeps the user's files and replaces the preparation as a whole.
    (out / "NOTES.md").write_text("kept")
    prep.prepare_shards([folder], out, val_fraction=0.1, shard_tokens=64, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    listed = {s["file"] for split in meta["splits"].values() for s in split["shards"]}
    assert {p.name for p in out.iterdir()} == listed | {"meta.json", "NOTES.md"}


def test_a_jsonl_line_that_is_not_utf8_is_named_with_its_line_and_byte(tmp_path):
    lines = [b'{"text": "fine"}\n', b'{"text": "caf\xe9"}\n']   # Latin-1 e-acute: not UTF-8
    (tmp_path / "latin1.jsonl").write_bytes(b"".join(lines))
    offset = len(lines[0]) + lines[1].index(b"\xe9")
    with pytest.raises(ValueError, match=rf"latin1.jsonl:2: not UTF-8 text at byte {offset}\b"):
        prep.prepare_shards([tmp_path / "latin1.jsonl"], tmp_path / "out", progress=False)


def test_shards_are_checked_against_the_vocabulary_and_their_manifest_when_opened(corpus, tmp_path, enc):
    folder, _ = corpus
    out = tmp_path / "shards"
    prep.prepare_shards([folder], out, val_fraction=0.1, shard_tokens=64, encoding=enc, progress=False)
    data.ShardDataset(out, "train", 8, vocab_size=50304)            # a padded vocabulary is fine
    with pytest.raises(ValueError, match=r"50257-token vocabulary, larger than the model's 1000"):
        data.ShardDataset(out, "train", 8, vocab_size=1000)
    # A shard whose ids exceed meta.json's vocabulary (written over by another tokenizer's ids).
    meta = json.loads((out / "meta.json").read_text())
    first = meta["splits"]["train"]["shards"][0]
    ids = data.read_shard(out / first["file"]).copy()
    ids[3] = 60000
    data.write_shard(out / first["file"], ids)
    with pytest.raises(ValueError, match=rf"{first['file']} holds token id 60000, outside the 50257-token"):
        data.ShardDataset(out, "train", 8)
    # A shard whose header disagrees with meta.json (one token short).
    data.write_shard(out / first["file"], ids[:-1].clip(max=50256))
    with pytest.raises(ValueError, match=rf"holds {len(ids) - 1} tokens but .*meta.json lists {len(ids)}"):
        data.ShardDataset(out, "train", 8)
    # Without meta.json, the model's vocabulary is still checked.
    loose = tmp_path / "loose"
    loose.mkdir()
    data.write_shard(loose / "train_000000.bin", np.array([1, 2, 999, 3] * 10))
    data.ShardDataset(loose, "train", 8, vocab_size=1000)
    with pytest.raises(ValueError, match=r"holds token id 999, outside the model's vocabulary \(ids 0..998\)"):
        data.ShardDataset(loose, "train", 8, vocab_size=999)


# ---------------------------------------------------------------------------------------------------------------
# ShardDataset: rank slices, windows, exact resume

@pytest.fixture
def numbered_shards(tmp_path):
    """Three shards whose ids are their global positions (0..), so a window tells where it came from."""
    sizes = [100, 37, 64]
    start = 0
    for i, size in enumerate(sizes):
        data.write_shard(tmp_path / f"train_{i:06d}.bin", np.arange(start, start + size))
        start += size
    return tmp_path, sizes


def expected_window_starts(sizes, max_length):
    starts, offset = [], 0
    for size in sizes:
        starts += [offset + k * max_length for k in range((size - 1) // max_length)]
        offset += size
    return starts


def test_shard_windows_tile_each_shard(numbered_shards):
    folder, sizes = numbered_shards
    dataset = data.ShardDataset(folder, "train", max_length=9)
    starts = expected_window_starts(sizes, 9)
    assert dataset.num_windows == len(starts)
    for index, start in enumerate(starts):
        x, y = dataset.window(index)
        assert x.dtype == torch.int64
        assert x.tolist() == list(range(start, start + 9)) and y.tolist() == list(range(start + 1, start + 10))
    # A glob pattern picks shards too; a DataLoader batches the windows of one epoch.
    two = data.ShardDataset(folder / "train_00000[01].bin", max_length=9)
    assert two.num_windows == len(expected_window_starts(sizes[:2], 9))
    batches = list(torch.utils.data.DataLoader(two, batch_size=4))
    assert sum(len(x) for x, _ in batches) == two.num_windows and batches[0][0].shape == (4, 9)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_get_disjoint_slices_that_cover_the_epoch(numbered_shards, world_size):
    folder, sizes = numbered_shards
    all_starts = set(expected_window_starts(sizes, 9))  # 21 windows
    seen = []
    for rank in range(world_size):
        dataset = data.ShardDataset(folder, "train", max_length=9, seed=5, rank=rank, world_size=world_size)
        starts = [int(x[0]) for x, _ in dataset]
        assert len(starts) == len(dataset) == len(all_starts) // world_size
        seen.append(set(starts))
    union = set().union(*seen)
    assert sum(map(len, seen)) == len(union)  # disjoint
    assert union <= all_starts and len(all_starts - union) == len(all_starts) % world_size  # covering


def test_epochs_visit_all_windows_in_a_new_order(numbered_shards):
    folder, _ = numbered_shards
    dataset = data.ShardDataset(folder, "train", max_length=9, seed=1)
    first = [int(x[0]) for x, _ in dataset]
    second = [int(x[0]) for x, _ in dataset]
    assert sorted(first) == sorted(second) and first != second
    assert data.ShardDataset(folder, "train", max_length=9, seed=1).state_dict()["epoch"] == 0


def test_resume_from_saved_state_reproduces_the_sequence(numbered_shards):
    folder, _ = numbered_shards
    reference = data.ShardDataset(folder, "train", max_length=9, seed=3, rank=1, world_size=2)
    uninterrupted = [reference.next_batch(4)[0] for _ in range(8)]  # 32 windows: crosses three epochs of 10
    run = data.ShardDataset(folder, "train", max_length=9, seed=3, rank=1, world_size=2)
    for _ in range(3):
        run.next_batch(4)
    state = json.loads(json.dumps(run.state_dict()))  # as a checkpoint would store it
    resumed = data.ShardDataset(folder, "train", max_length=9, seed=3, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.next_batch(4)[0], expected) for expected in uninterrupted[3:])
    other = data.ShardDataset(folder, "train", max_length=9, seed=4, rank=1, world_size=2)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)


def test_shard_dataset_errors(numbered_shards, tmp_path):
    folder, _ = numbered_shards
    with pytest.raises(ValueError, match="needs shards of at least 101 tokens"):
        data.ShardDataset(folder, "train", max_length=100)
    with pytest.raises(FileNotFoundError, match="no 'val' shards"):
        data.ShardDataset(folder, "val", max_length=9)
    with pytest.raises(ValueError, match="rank"):
        data.ShardDataset(folder, "train", max_length=9, rank=2, world_size=2)


def test_shard_dataset_reads_a_prepared_folder(corpus, tmp_path, enc):
    folder, _ = corpus
    out = tmp_path / "shards"
    prep.prepare_shards([folder], out, val_fraction=0.1, shard_tokens=64, encoding=enc, progress=False)
    train = read_split(out, "train")
    dataset = data.ShardDataset(out, "train", max_length=16)
    x, y = dataset.window(0)
    assert x.tolist() == train[:16] and y.tolist() == train[1:17]


# ---------------------------------------------------------------------------------------------------------------
# Mixing sources

def test_empirical_mix_matches_the_weights():
    sources = {name: data.GPTDataset(torch.full((200,), value), 4, 4)
               for value, name in enumerate(["domain", "general", "code", "unused"])}
    weights = {"domain": 0.2, "general": 0.7, "code": 0.1, "unused": 0.0}
    mixed = data.MixedDataset(sources, weights, seed=11)
    draws = 20_000
    counts = dict.fromkeys(weights, 0)
    names = list(sources)
    for _ in range(draws):
        x, _ = mixed.next_window()
        counts[names[int(x[0])]] += 1  # each source's windows hold its own id value
    assert counts == mixed.counts
    assert counts["unused"] == 0
    for name, p in weights.items():
        # Each count is Binomial(draws, p): standard deviation sqrt(draws p (1 - p)), at most 65 here. Five of
        # them bound the count for any seed except with probability below 1e-6.
        assert abs(counts[name] - draws * p) <= 5 * math.sqrt(draws * p * (1 - p)), (name, counts)


def test_mixture_resume_reproduces_the_draws(numbered_shards):
    folder, _ = numbered_shards

    def make():
        return data.MixedDataset({"shards": data.ShardDataset(folder, "train", max_length=9, seed=2),
                                  "story": data.GPTDataset(torch.arange(1000, 1100), 9, 9)},
                                 {"shards": 0.8, "story": 0.2}, seed=5)
    reference = make()
    uninterrupted = [reference.next_batch(3)[0] for _ in range(20)]
    run = make()
    for _ in range(7):
        run.next_batch(3)
    state = json.loads(json.dumps(run.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.next_batch(3)[0], expected) for expected in uninterrupted[7:])
    assert resumed.counts == reference.counts


def test_mixture_rejects_bad_weights():
    sources = {"a": data.GPTDataset(torch.arange(20), 4, 4), "b": data.GPTDataset(torch.arange(20), 4, 4)}
    with pytest.raises(ValueError, match="exactly the sources"):
        data.MixedDataset(sources, {"a": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        data.MixedDataset(sources, {"a": 1.0, "b": -0.5})
    with pytest.raises(ValueError, match="not all zero"):
        data.MixedDataset(sources, {"a": 0.0, "b": 0.0})
