"""Tests for minigpt/instruct.py: record loading and errors, both prompt styles with history cut to fit, the
collate function's -100 targets, length-grouped batching, the scores, generation order, perplexity, the
optional Ollama judge (against a fake local server) and a short finetuning run whose loss falls.

References are independent: prompt layouts written out by hand, the textbook's value-based collate
construction, a brute-force longest common subsequence, multiset intersections done by sorting, per-record
cross-entropy computed without the batching code, and each record generated alone.
"""
import itertools
import json
import math
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings, strategies as st

from minigpt.model import GPTConfig, GPTModel
from minigpt.tokenizer import gpt2_tiktoken_encoding
from tests._impl import load_impl
from tests._scripts import load_script, stopped_with_one_line

ins = load_impl("minigpt.instruct")
judge = load_impl("minigpt.judge")
loading = load_impl("minigpt.loading")

# Models this small train several times faster on one thread than on two that the OS has to share.
pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

EOT = 50256
PRE = ("Below is an instruction that describes a task. "
       "Write a response that appropriately completes the request.")
PRE_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
             "Write a response that appropriately completes the request.")


@pytest.fixture(scope="module")
def encoding():
    return gpt2_tiktoken_encoding()


def small_model(seed: int = 0, context: int = 128) -> GPTModel:
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=50257, context_length=context, emb_dim=32, n_heads=2, n_layers=1, drop_rate=0.0,
                    tie_weights=True)
    return GPTModel(cfg).eval()


# ------------------------------------------------------------------------------------------------ prompts

def test_alpaca_prompt_with_and_without_input():
    with_input = {"instruction": "Translate the word to French.", "input": "cat", "output": "chat"}
    without = {"instruction": "Name a primary color.", "input": "", "output": "Red."}
    assert ins.format_prompt(with_input, "alpaca") == (
        f"{PRE_INPUT}\n\n### Instruction:\nTranslate the word to French.\n\n### Input:\ncat\n\n### Response:\n")
    assert ins.format_prompt(without, "alpaca") == f"{PRE}\n\n### Instruction:\nName a primary color.\n\n### Response:\n"
    assert ins.format_example(without, "alpaca") == ins.format_prompt(without, "alpaca") + "Red."


def test_phi3_prompt_with_and_without_input():
    with_input = {"instruction": "Translate the word to French.", "input": "cat", "output": "chat"}
    without = {"instruction": "Name a primary color.", "input": "", "output": "Red."}
    assert ins.format_prompt(with_input, "phi3") == \
        "<|user|>\nTranslate the word to French.\ncat<|end|>\n<|assistant|>\n"
    assert ins.format_prompt(without, "phi3") == "<|user|>\nName a primary color.<|end|>\n<|assistant|>\n"


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="style"):
        ins.format_prompt({"instruction": "x", "input": "", "output": "y"}, "chatml")


def history_record():
    turns = [{"instruction": f"What is {i} + {i}?", "input": "", "output": f"{2 * i}."} for i in (1, 2, 3)]
    return {"instruction": "And 4 + 4?", "input": "", "output": "8.", "history": turns}


def expected_with_last(style: str, k: int) -> str:
    """The prompt keeping the newest k earlier turns, written out by hand."""
    kept = [1, 2, 3][3 - k:]
    if style == "alpaca":
        past = "".join(f"### Instruction:\nWhat is {i} + {i}?\n\n### Response:\n{2 * i}.\n\n" for i in kept)
        return f"{PRE}\n\n{past}### Instruction:\nAnd 4 + 4?\n\n### Response:\n"
    past = "".join(f"<|user|>\nWhat is {i} + {i}?<|end|>\n<|assistant|>\n{2 * i}.<|end|>\n" for i in kept)
    return f"{past}<|user|>\nAnd 4 + 4?<|end|>\n<|assistant|>\n"


@pytest.mark.parametrize("style", ["alpaca", "phi3"])
def test_history_is_cut_oldest_first_to_fit(style, encoding):
    record = history_record()
    assert ins.format_prompt(record, style) == expected_with_last(style, 3)
    sizes = [len(encoding.encode_ordinary(expected_with_last(style, k))) for k in range(4)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    for k in range(4):
        # Exactly the budget of k turns keeps k turns; one token less keeps k - 1 (the newest ones).
        assert ins.format_prompt(record, style, tokenizer=encoding, max_tokens=sizes[k]) == expected_with_last(style, k)
        if k:
            assert ins.format_prompt(record, style, tokenizer=encoding, max_tokens=sizes[k] - 1) == \
                expected_with_last(style, k - 1)
    # A budget smaller than the request alone keeps no history but never cuts the request.
    assert ins.format_prompt(record, style, tokenizer=encoding, max_tokens=3) == expected_with_last(style, 0)


def test_dataset_cuts_history_so_that_prompt_response_and_end_token_fit(encoding):
    record = history_record()
    full = ins.InstructionDataset([record], encoding, "alpaca")
    full_length = len(full[0][0])
    cut = ins.InstructionDataset([record], encoding, "alpaca", max_length=full_length)   # no room for the end token
    ids, prompt_length = cut[0]
    assert len(ids) + 1 <= full_length
    prompt = encoding.decode(ids[:prompt_length])
    assert prompt == expected_with_last("alpaca", 2)
    assert encoding.decode(ids[prompt_length:]) == "8."


def test_dataset_ids_are_the_ids_of_the_joined_text(encoding):
    records = [{"instruction": "Correct the spelling.", "input": "recieve", "output": "receive"},
               {"instruction": "Say hi", "input": "", "output": " hi  there\n"}]
    for style in ins.STYLES:
        data = ins.InstructionDataset(records, encoding, style)
        for record, (ids, prompt_length) in zip(records, data):
            assert ids == encoding.encode_ordinary(ins.format_example(record, style))
            assert ids[:prompt_length] == encoding.encode_ordinary(ins.format_prompt(record, style))


def test_extract_response_stops_at_a_new_turn():
    assert ins.extract_response(" Lima.\n\n### Instruction:\nWhat", "alpaca") == "Lima."
    assert ins.extract_response("Lima.<|end|>\n<|user|>\nhi", "phi3") == "Lima."
    assert ins.extract_response("  Lima.  ", "alpaca") == "Lima."


# ------------------------------------------------------------------------------------------------ records

def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_json_and_jsonl_give_the_same_records(tmp_path):
    records = [{"instruction": "a", "input": "", "output": "b"},
               {"instruction": "c", "output": "d", "history": [{"instruction": "e", "input": "f", "output": "g"}]}]
    as_json = ins.load_records(write(tmp_path / "r.json", json.dumps(records, indent=2)))
    as_jsonl = ins.load_records(write(tmp_path / "r.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n"))
    assert as_json == as_jsonl
    assert as_json[1]["input"] == ""                  # a missing input means ""
    assert as_json[1]["history"][0]["input"] == "f"
    # The format comes from the content: a JSON array in a file named .jsonl is still read.
    assert ins.load_records(write(tmp_path / "array.jsonl", json.dumps(records))) == as_json


@pytest.mark.parametrize("record, field", [
    ({"instruction": "a", "input": ""}, "'output'"),
    ({"input": "", "output": "b"}, "'instruction'"),
    ({"instruction": "a", "input": 3, "output": "b"}, "'input'"),
    ({"instruction": "  ", "input": "", "output": "b"}, "'instruction'"),
    ({"instruction": "a", "input": "", "output": "b", "history": "earlier"}, "'history'"),
    ({"instruction": "a", "input": "", "output": "b", "history": [{"instruction": "x", "input": ""}]},
     "'history[0]'"),
])
def test_malformed_records_name_the_record_and_field(tmp_path, record, field):
    good = {"instruction": "fine", "input": "", "output": "ok"}
    with pytest.raises(ValueError, match="record 1") as e:
        ins.load_records(write(tmp_path / "bad.json", json.dumps([good, record])))
    assert field in str(e.value) and "bad.json" in str(e.value)
    with pytest.raises(ValueError) as e:
        ins.load_records(write(tmp_path / "bad.jsonl", json.dumps(good) + "\n\n" + json.dumps(record) + "\n"))
    assert "bad.jsonl:3" in str(e.value) and field in str(e.value)


def test_broken_json_lines_and_non_objects_are_reported(tmp_path):
    with pytest.raises(ValueError, match=r"b\.jsonl:2: not valid JSON"):
        ins.load_records(write(tmp_path / "b.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": \n'))
    with pytest.raises(ValueError, match=r"record 0: expected a JSON object"):
        ins.load_records(write(tmp_path / "c.json", '["just a string"]'))
    with pytest.raises(FileNotFoundError):
        ins.load_records(tmp_path / "missing.json")


def test_split_records_is_a_seeded_partition():
    records = [{"instruction": str(i), "input": "", "output": str(i)} for i in range(100)]
    splits = ins.split_records(records, seed=7)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [85, 5, 10]
    assert sorted(int(r["output"]) for part in splits.values() for r in part) == list(range(100))
    assert splits == ins.split_records(records, seed=7)


# ------------------------------------------------------------------------------------------------ collate

def textbook_collate(batch, pad=EOT, ignore=-100, allowed_max_length=None):
    """The value-based construction: pad with the end token, shift, then ignore every pad target but the first."""
    width = max(len(ids) + 1 for ids, _ in batch)
    inputs, targets = [], []
    for ids, _ in batch:
        item = list(ids) + [pad]
        padded = item + [pad] * (width - len(item))
        x, y = torch.tensor(padded[:-1]), torch.tensor(padded[1:])
        pads = torch.nonzero(y == pad).squeeze(1)
        if pads.numel() > 1:
            y[pads[1:]] = ignore
        if allowed_max_length is not None:
            x, y = x[:allowed_max_length], y[:allowed_max_length]
        inputs.append(x)
        targets.append(y)
    return torch.stack(inputs), torch.stack(targets)


def random_batch(rng, size):
    batch = []
    for _ in range(size):
        n = rng.randint(2, 30)
        batch.append(([rng.randrange(EOT) for _ in range(n)], rng.randint(1, n - 1)))
    return batch


def test_collate_matches_the_textbook_construction():
    rng = random.Random(0)
    for trial in range(50):
        batch = random_batch(rng, rng.randint(1, 6))
        cap = rng.choice([None, 5, 12, 100])
        inputs, targets = ins.collate_instructions(batch, allowed_max_length=cap)
        ref_inputs, ref_targets = textbook_collate(batch, allowed_max_length=cap)
        assert torch.equal(inputs, ref_inputs) and torch.equal(targets, ref_targets)
        assert inputs.dtype == targets.dtype == torch.long
        assert inputs.shape[1] == min(max(len(ids) for ids, _ in batch), cap or 10 ** 9)


def test_collate_keeps_an_end_token_inside_the_text_as_a_target():
    # Position-based masking: a literal 50256 in the middle of an example is a real target, not padding.
    batch = [([5, EOT, 7], 1), ([1, 2, 3, 4, 5, 6], 1)]
    _, targets = ins.collate_instructions(batch)
    assert targets[0].tolist() == [EOT, 7, EOT, -100, -100, -100]
    assert targets[1].tolist() == [2, 3, 4, 5, 6, EOT]


def test_prompt_masking_leaves_exactly_the_response_and_one_end_token():
    rng = random.Random(1)
    for _ in range(30):
        batch = random_batch(rng, 4)
        inputs, targets = ins.collate_instructions(batch, mask_prompt=True)
        unmasked, _ = ins.collate_instructions(batch)
        assert torch.equal(inputs, unmasked)
        for row, (ids, prompt_length) in enumerate(batch):
            kept = [t for t in targets[row].tolist() if t != -100]
            assert kept == ids[prompt_length:] + [EOT]
            positions = (targets[row] != -100).nonzero().squeeze(1).tolist()
            # The first kept target sits at the last prompt token: it predicts the first response token.
            assert positions == list(range(prompt_length - 1, len(ids)))


def test_length_cap_cuts_every_row_to_a_prefix():
    batch = [(list(range(1, 41)), 10), (list(range(1, 11)), 3)]
    full_x, full_y = ins.collate_instructions(batch, mask_prompt=True)
    x, y = ins.collate_instructions(batch, mask_prompt=True, allowed_max_length=16)
    assert x.shape == y.shape == (2, 16)
    assert torch.equal(x, full_x[:, :16]) and torch.equal(y, full_y[:, :16])


# ----------------------------------------------------------------------------------------------- batching

@pytest.mark.parametrize("n, batch_size, drop_last", [(103, 8, False), (64, 8, False), (7, 3, False),
                                                      (103, 8, True), (1, 4, False)])
def test_length_grouped_batches_cover_every_record_once(n, batch_size, drop_last):
    rng = random.Random(n)
    lengths = [rng.randint(5, 200) for _ in range(n)]
    for shuffle in (True, False):
        sampler = ins.LengthGroupedBatchSampler(lengths, batch_size, shuffle=shuffle, seed=3, drop_last=drop_last,
                                                group_batches=4)
        for epoch in range(3):
            batches = list(sampler)
            assert len(batches) == len(sampler)
            flat = [i for b in batches for i in b]
            assert len(flat) == len(set(flat))
            if drop_last:
                assert all(len(b) == batch_size for b in batches) and len(flat) == n - n % batch_size
            else:
                assert sorted(flat) == list(range(n))
                assert sum(len(b) < batch_size for b in batches) == (1 if n % batch_size else 0)


def test_length_grouping_is_seeded_and_pads_less_than_random_batches():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(400)]
    a = ins.LengthGroupedBatchSampler(lengths, 8, seed=11)
    b = ins.LengthGroupedBatchSampler(lengths, 8, seed=11)
    assert a.batches(0) == b.batches(0) and a.batches(1) != a.batches(0)
    a.set_epoch(5)
    assert list(a) == b.batches(5)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in a.batches(0))
    order = list(range(400))
    random.Random(1).shuffle(order)
    random_padded = sum(8 * max(lengths[i] for i in order[s:s + 8]) for s in range(0, 400, 8))
    assert padded < 0.8 * random_padded
    assert ins.LengthGroupedBatchSampler(lengths, 8, shuffle=False).batches(0) == \
        ins.LengthGroupedBatchSampler(lengths, 8, shuffle=False).batches(3)


def test_instruction_loader_yields_collated_batches(encoding):
    records = [{"instruction": f"Repeat {'word ' * i}", "input": "", "output": "ok " * i} for i in range(1, 12)]
    data = ins.InstructionDataset(records, encoding, "phi3")
    loader = ins.instruction_loader(data, batch_size=4, shuffle=False, mask_prompt=True)
    seen = 0
    for inputs, targets in loader:
        assert inputs.shape == targets.shape and inputs.shape[0] <= 4
        seen += inputs.shape[0]
    assert seen == len(records)


# ------------------------------------------------------------------------------------------------ metrics

def test_normalization_and_exact_match():
    assert ins.normalize_answer("The capital of Peru is Lima.") == "capital of peru is lima"
    assert ins.exact_match("the capital of peru is LIMA", "The capital of Peru is Lima.") == 1.0
    assert ins.exact_match("The capital of Peru is Cusco.", "The capital of Peru is Lima.") == 0.0
    # Numbers keep their sign and decimals; thousands separators do not matter; hyphens are not minus signs.
    assert ins.answer_tokens("2 - 80 = -78, about 1,750.5 km; well-known") == \
        ["2", "80", "-78", "about", "1750.5", "km", "well", "known"]
    assert ins.exact_match("-78", "78") == 0.0
    assert ins.exact_match("10,000", "10000") == 1.0


def reference_f1(prediction: str, reference: str) -> float:
    """Token F1 with the overlap counted by walking two sorted lists (no Counter)."""
    p, r = sorted(ins.normalize_answer(prediction).split()), sorted(ins.normalize_answer(reference).split())
    if not p or not r:
        return float(p == r)
    i = j = shared = 0
    while i < len(p) and j < len(r):
        if p[i] == r[j]:
            shared, i, j = shared + 1, i + 1, j + 1
        elif p[i] < r[j]:
            i += 1
        else:
            j += 1
    if not shared:
        return 0.0
    return 2 * shared / (len(p) + len(r))   # 2PR/(P+R) simplifies to 2·shared/(|p| + |r|)


def test_token_f1_against_a_hand_computed_example_and_an_independent_count():
    # prediction "cat sat on mat mat" (articles dropped), reference "cat sat on mat": shared 4, P = 4/5, R = 1.
    assert ins.token_f1("The cat sat on the mat mat", "the cat sat on the mat") == pytest.approx(2 * 0.8 / 1.8)
    words = ["red", "blue", "the", "a", "7", "lima", "is", "of"]
    rng = random.Random(2)
    for _ in range(300):
        p = " ".join(rng.choices(words, k=rng.randint(0, 8)))
        r = " ".join(rng.choices(words, k=rng.randint(0, 8)))
        assert ins.token_f1(p, r) == pytest.approx(reference_f1(p, r), abs=1e-12)


def brute_force_lcs(a, b) -> int:
    """Try every subsequence of the shorter list, longest first; return the first that is in the other list."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)

    def is_subsequence(sub, seq):
        it = iter(seq)
        return all(x in it for x in sub)

    for size in range(len(short), 0, -1):
        for picked in itertools.combinations(short, size):
            if is_subsequence(picked, long_):
                return size
    return 0


def test_lcs_against_brute_force():
    rng = random.Random(3)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        assert ins.lcs_length(a, b) == brute_force_lcs(a, b) == ins.lcs_length(b, a)


def test_rouge_l_hand_computed():
    # reference: police killed the gunman (4 words); candidate: the gunman police killed (4 words).
    # LCS: "police killed" (2); P = R = 2/4, F1 = 0.5.
    assert ins.rouge_l("the gunman police killed", "police killed the gunman") == pytest.approx(0.5)
    # reference: the cat sat on the mat (6); candidate: the cat was on a mat today (7).
    # LCS: the cat on mat (4); P = 4/7, R = 4/6, F1 = 2PR/(P+R) = 8/13.
    assert ins.rouge_l("The cat was on a mat today.", "the cat sat on the mat") == pytest.approx(8 / 13)
    assert ins.rouge_l("", "") == 1.0 and ins.rouge_l("x", "") == 0.0 and ins.rouge_l("x", "y") == 0.0


def test_score_responses_averages_and_counts_closed_tasks():
    records = [{"instruction": "q", "input": "", "output": "The answer is 7."},
               {"instruction": "q", "input": "", "output": " ".join(["word"] * 30)}]
    scores = ins.score_responses(records, ["the answer is 7", "word"])
    assert scores["closed_tasks"] == 1 and scores["exact_match"] == 1.0
    assert scores["token_f1"] == pytest.approx((1.0 + 2 * (1 / 1) * (1 / 30) / (1 + 1 / 30)) / 2)
    assert scores["rouge_l"] == pytest.approx((ins.rouge_l("the answer is 7", records[0]["output"]) +
                                              ins.rouge_l("word", records[1]["output"])) / 2)


# ---------------------------------------------------------------------------------- model-based evaluation

def test_response_perplexity_equals_per_record_cross_entropy(encoding):
    model = small_model(1)
    records = [{"instruction": "Name a fruit.", "input": "", "output": "An apple."},
               {"instruction": "Add the numbers.", "input": "2 and 3", "output": "2 + 3 = 5."},
               {"instruction": "Say yes.", "input": "", "output": "Yes"}]
    data = ins.InstructionDataset(records, encoding, "alpaca")
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, prompt_length in data:
            full = torch.tensor([ids + [EOT]])
            logits = model(full[:, :-1]).double()[0]
            # Positions prompt_length-1 .. end predict the response tokens and the end token.
            wanted = full[0, prompt_length:]
            total += F.cross_entropy(logits[prompt_length - 1:], wanted, reduction="sum").item()
            count += len(wanted)
    # float32 model outputs vs the float64 sum: agreement to ~1e-5 relative is what float32 logits allow.
    assert ins.response_perplexity(model, data, batch_size=2) == pytest.approx(math.exp(total / count), rel=1e-4)


def test_batched_generation_keeps_the_records_order(encoding):
    model = small_model(2)
    with torch.no_grad():   # peaked logits: greedy choices are far apart, so batching cannot flip one
        for p in model.parameters():
            p.mul_(6.0)
    records = [{"instruction": "Hi" + " there" * i, "input": "", "output": "x"} for i in (0, 5, 1, 3)]
    together = ins.generate_responses(model, encoding, records, "phi3", max_new_tokens=6, batch_size=3,
                                      progress=False)
    alone = [ins.generate_responses(model, encoding, [r], "phi3", max_new_tokens=6, batch_size=1, progress=False)[0]
             for r in records]
    assert together == alone


def test_write_responses_puts_answers_next_to_references(tmp_path):
    records = [{"instruction": "a", "input": "", "output": "b"}]
    path = ins.write_responses(records, ["c"], tmp_path / "sub" / "answers.json")
    assert json.loads(path.read_text()) == [{"instruction": "a", "input": "", "output": "b", "model_response": "c"}]


# -------------------------------------------------------------------------------------------------- judge

class FakeOllama(BaseHTTPRequestHandler):
    requests: list = []

    def do_GET(self):
        self._reply({"models": [{"name": "judge:latest"}]} if self.path == "/api/tags" else {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOllama.requests.append((self.path, body))
        answer = body["messages"][0]["content"]
        grade = "Score: 85" if "Lima" in answer.split("Answer to grade:")[1] else "no idea"
        self._reply({"message": {"role": "assistant", "content": grade}, "done": True})

    def _reply(self, data):
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_judge_talks_to_a_local_ollama_server():
    server = HTTPServer(("127.0.0.1", 0), FakeOllama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/chat"
        records = [{"instruction": "Capital of Peru?", "input": "", "output": "Lima."}] * 2
        assert judge.ollama_status(url, "judge") is None
        assert "no model 'other'" in judge.ollama_status(url, "other")
        grades = judge.judge_with_ollama(records, ["It is Lima.", "Paris"], model="judge", url=url, progress=False)
        assert grades == [85, None]
        path, body = FakeOllama.requests[0]
        assert path == "/api/chat" and body["model"] == "judge" and body["stream"] is False
        assert "Lima." in body["messages"][0]["content"]
    finally:
        server.shutdown()
        server.server_close()


def test_judge_refuses_remote_urls_and_explains_a_missing_server():
    with pytest.raises(ValueError, match="local"):
        judge.judge_with_ollama([], [], url="http://example.com:11434/api/chat")
    free = HTTPServer(("127.0.0.1", 0), FakeOllama)
    port = free.server_port
    free.server_close()    # nothing listens on this port now
    message = judge.ollama_status(f"http://localhost:{port}/api/chat")
    assert "no Ollama server answered" in message and "optional" in message
    with pytest.raises(RuntimeError, match="no Ollama server"):
        judge.judge_with_ollama([], [], url=f"http://localhost:{port}/api/chat")
    assert judge.parse_judge_score("I would say 7 out of 10") == 7 and judge.parse_judge_score("1000") is None


# --------------------------------------------------------------------------------------------------- training

def tiny_records():
    animals = ["cat", "dog", "cow", "owl", "bee", "fox", "elk", "yak"]
    return [{"instruction": "Write the word twice.", "input": a, "output": f"{a} {a}"} for a in animals] + \
        [{"instruction": "What is the plural?", "input": a, "output": f"{a}s"} for a in animals]


def test_a_short_finetuning_run_lowers_the_loss(encoding, tmp_path):
    from minigpt.train import TrainConfig

    model = small_model(3, context=64)
    data = ins.InstructionDataset(tiny_records(), encoding, "phi3", model.cfg.context_length)
    config = TrainConfig(max_steps=20, learning_rate=1e-2, min_lr=1e-3, warmup_steps=3, eval_every=0,
                         out_dir=str(tmp_path), progress=False, seed=0)
    history = ins.finetune(model, data, data, config, batch_size=4, mask_prompt=True, seed=0)
    losses = history["train_loss"]
    # From ~ln(50257) = 10.8 at random initialisation; memorising 16 short answers takes it far lower.
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3
    assert history["val_loss"][-1] < losses[0]
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "ckpt.pt").is_file()


def test_a_lora_checkpoint_reloads_merged(encoding, tmp_path):
    from minigpt.lora import ALL_LINEAR, apply_lora, lora_settings, merge_lora
    from minigpt.train import TrainConfig

    model = small_model(4, context=64)
    apply_lora(model, rank=4, alpha=8.0, targets=ALL_LINEAR)
    data = ins.InstructionDataset(tiny_records()[:8], encoding, "phi3", 64)
    config = TrainConfig(max_steps=3, learning_rate=1e-2, warmup_steps=1, eval_every=0, out_dir=str(tmp_path),
                         progress=False)
    history = ins.finetune(model, data, None, config, batch_size=4, extra={"lora": lora_settings(model)})
    reloaded, _ = loading.load_model(history["checkpoint"])
    merge_lora(model)
    ids = torch.tensor([data[0][0]])
    with torch.no_grad():
        # Merging adds B·A into W once: the same function up to float32 rounding of the sum.
        torch.testing.assert_close(reloaded(ids), model.eval()(ids), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- readers: every failure located

def test_json_array_errors_name_the_line_the_record_starts_on(tmp_path):
    good = {"instruction": "fine", "input": "", "output": "ok"}
    text = "[\n" + json.dumps(good, indent=2) + ",\n" + json.dumps({"instruction": "a"}, indent=2) + "\n]\n"
    line = text.count("\n", 0, text.index("{", text.index("},"))) + 1   # where the second record's "{" stands
    with pytest.raises(ins.RecordError, match=rf"r\.json:{line}: record 1: missing field 'output'"):
        ins.load_records(write(tmp_path / "r.json", text))
    with pytest.raises(ins.RecordError, match=r"r\.json:3: not valid JSON"):
        ins.load_records(write(tmp_path / "r.json", '[\n{"instruction": "a", "output": "b"},\n]\n'))
    with pytest.raises(ins.RecordError, match=r"r\.json:2: not valid JSON \(more text"):
        ins.load_records(write(tmp_path / "r.json", '[{"instruction": "a", "output": "b"}]\n]'))


def test_line_separators_inside_a_jsonl_string_do_not_split_the_line(tmp_path):
    # JSON allows U+2028 and U+0085 unescaped inside strings; str.splitlines() would cut the line there.
    records = [{"instruction": "a\u2028b", "input": "", "output": "c\x85d"}, {"instruction": "e", "input": "", "output": "f"}]
    path = tmp_path / "sep.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    assert ins.load_records(path) == records


@pytest.mark.parametrize("content, message", [
    (b'{"instruction": "a", "output": "b"}\n\xff\xfe\n', r"x:2: not UTF-8"),
    (b"[" * 100_000, r"x:1: not valid JSON here \(nested too deeply"),
    (b'{"instruction": "a", "output": "b", "id": ' + b"9" * 5000 + b"}\n", r"x:1: not valid JSON here"),
    (b'{"instruction": "\\ud800", "output": "b"}\n', r"x:1: field 'instruction' holds a lone surrogate"),
    (b'{"instruction": "a", "output": "b", "note": "\\udfff"}\n', r"x:1: one of the fields \['note'\]"),
    (b'{"instruction": "a", "output": "b"} {"instruction": "c"}\n', r"x:1: not valid JSON \(more text"),
    (b'{"instruction": [[[[1]]]], "output": "b"}\n', r"x:1: field 'instruction' must be a string, got list$"),
    (b" \n\t\n", r"holds no records"),
])
def test_hostile_files_give_a_record_error_that_names_the_line(tmp_path, content, message):
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(ins.RecordError, match=message):
        ins.load_records(path)


def test_a_split_with_no_test_records_is_refused():
    records = [{"instruction": str(i), "input": "", "output": str(i)} for i in range(5)]
    with pytest.raises(ins.InputError, match="little.json: the test split is empty"):
        ins.check_splits(ins.split_records(records), "little.json")
    ins.check_splits(ins.split_records(records + records[:1]), "six.json")   # 6 records leave one for the test


def test_exact_match_is_not_measured_without_closed_tasks():
    records = [{"instruction": "q", "input": "", "output": " ".join(["word"] * 30)}]
    scores = ins.score_responses(records, ["word"])
    assert scores["exact_match"] is None and scores["closed_tasks"] == 0
    assert json.loads(json.dumps(scores))["exact_match"] is None     # valid JSON, not NaN


# ------------------------------------------------------------------------------ readers: fuzzed (hypothesis)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOCATED = r"(:\d+: | holds no records)"   # every RecordError names file:line, or says the file holds nothing


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def expect_records_or_located_error(path):
    try:
        records = ins.load_records(path)
    except ins.RecordError as e:
        assert re.match(re.escape(str(path)) + LOCATED, str(e)), str(e)
        return None
    assert records and all(isinstance(r, dict) and isinstance(r["output"], str) for r in records)
    return records


@FUZZ
@given(content=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_give_records_or_a_located_record_error(fuzz_dir, content):
    path = fuzz_dir / "bytes.jsonl"
    path.write_bytes(content)
    expect_records_or_located_error(path)


@FUZZ
@given(content=st.binary(max_size=200), prefix=st.sampled_from([b"[", b'[{"instruction": "a", "output": "b"}, ', b"{"]))
def test_fuzz_broken_json_gives_records_or_a_located_record_error(fuzz_dir, content, prefix):
    path = fuzz_dir / "broken.json"
    path.write_bytes(prefix + content)
    expect_records_or_located_error(path)


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | \
    st.text(max_size=6) | st.sampled_from(["\ud800", " ", "x\udfffy"])
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3) |
                          st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
FIELD = JSON_LEAF | JSON_VALUE
TURN = st.fixed_dictionaries({}, optional={"instruction": FIELD, "input": FIELD, "output": FIELD})
ANY_RECORD = st.fixed_dictionaries({}, optional={"instruction": FIELD, "input": FIELD, "output": FIELD,
                                                 "history": st.lists(TURN, max_size=2) | FIELD, "id": JSON_VALUE})
# Mostly records of the right shape (some with blank text, a lone surrogate or a null), so that both outcomes,
# valid and refused, come up often.
GOOD_TEXT = st.sampled_from(["ok", "Name a colour.", "Red.", "a\u2028b", "x\x85y"])
TEXT = st.one_of(GOOD_TEXT, GOOD_TEXT, GOOD_TEXT, st.text(max_size=6), st.sampled_from(["", " \n", "\ud800"]))
PLAUSIBLE_TURN = st.fixed_dictionaries({"instruction": TEXT, "output": TEXT}, optional={"input": TEXT | st.none()})
PLAUSIBLE_RECORD = st.fixed_dictionaries({"instruction": TEXT, "output": TEXT}, optional={
    "input": TEXT | st.none(), "history": st.lists(PLAUSIBLE_TURN, max_size=2) | st.none(), "id": JSON_LEAF})
RECORDS = st.lists(st.one_of(PLAUSIBLE_RECORD, PLAUSIBLE_RECORD, PLAUSIBLE_RECORD, ANY_RECORD, JSON_LEAF), min_size=1,
                   max_size=4)


def text_ok(value, blank_ok=False):
    """A field the chapter can use: a str that is whole characters (no lone surrogate), not blank unless allowed."""
    if not isinstance(value, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return False
    return blank_ok or bool(value.strip())


def turn_ok(turn):
    """The record rules, written out again independently of check_record."""
    if not isinstance(turn, dict):
        return False
    return (text_ok(turn.get("instruction")) and text_ok(turn.get("output"))
            and (turn.get("input") is None or text_ok(turn["input"], blank_ok=True)))


def record_ok(record):
    if not turn_ok(record):
        return False
    history = record.get("history")
    if not (history is None or isinstance(history, list) and all(turn_ok(t) and "history" not in t
                                                                  for t in history)):
        return False
    return "id" not in record or text_ok(json.dumps(record["id"], ensure_ascii=False), blank_ok=True)


def dumps(record, raw: bool) -> str:
    """One line of JSON; with `raw`, non-ASCII characters unescaped, unless the text holds a lone surrogate,
    which UTF-8 cannot hold and so must stay escaped."""
    text = json.dumps(record, ensure_ascii=not raw)
    return text if text_ok(text, blank_ok=True) else json.dumps(record)


@FUZZ
@given(records=RECORDS, as_array=st.booleans(), raw=st.booleans())
def test_fuzz_records_are_accepted_exactly_when_valid_and_errors_name_the_records_line(fuzz_dir, records, as_array,
                                                                                      raw):
    # One record per line, in a JSON array or as JSONL: record i stands on line i + 2 or i + 1. With `raw`,
    # characters such as U+2028 stand unescaped in the strings (where the text allows it: not lone surrogates).
    body = (",\n" if as_array else "\n").join(dumps(r, raw) for r in records)
    path = fuzz_dir / ("records.json" if as_array else "records.jsonl")
    path.write_text("[\n" + body + "\n]\n" if as_array else body + "\n", encoding="utf-8")
    bad = [i for i, r in enumerate(records) if not record_ok(r)]
    if not bad:
        loaded = ins.load_records(path)
        assert [r["instruction"] for r in loaded] == [r["instruction"] for r in records]
        assert all(r["input"] == (records[i].get("input") or "") for i, r in enumerate(loaded))
        return
    with pytest.raises(ins.RecordError) as e:
        ins.load_records(path)
    line = bad[0] + (2 if as_array else 1)
    assert str(e.value).startswith(f"{path}:{line}: "), (str(e.value), bad)


# ------------------------------------------------------------------ the chapter script: checked before any work

CHAPTER = Path(__file__).resolve().parent.parent / "chapters" / "ch09_instruction.py"


@pytest.fixture(scope="module")
def chapter():
    """The chapter script's globals (main() and the constants it reads), loaded without running it."""
    return vars(load_script(CHAPTER, "ch09_under_test"))


@pytest.mark.parametrize("argv, names", [
    (["--batch-size", "0"], "--batch-size"), (["--epochs", "0"], "--epochs"), (["--steps", "-2"], "--steps"),
    (["--steps", "5", "--epochs", "2"], "--epochs"), (["--lr", "nan"], "--lr"), (["--lr", "0"], "--lr"),
    (["--max-new-tokens", "256"], "--max-new-tokens 256"), (["--lora-rank", "-1"], "--lora-rank"),
    (["--lora-alpha", "8"], "--lora-alpha"), (["--max-test", "0"], "--max-test"), (["--threads", "0"], "--threads"),
    (["--judge-url", "http://example.com:11434/api/chat"], "--judge-url"),
    (["--judge", "--judge-url", "https://localhost/api/chat"], "--judge-url"),
    (["--data", "/no/such/records.json"], "--data"), (["--checkpoint", "/no/such.pt"], "--checkpoint"),
    (["--device", "tpu"], "--device"), (["--seed", "-1"], "--seed"), (["--style", "chatml"], "--style"),
])
def test_bad_options_stop_before_any_work_with_one_line(chapter, capsys, tmp_path, argv, names):
    out = tmp_path / "out"
    line = stopped_with_one_line(chapter["main"], argv + ["--out", str(out)], capsys)
    assert line.startswith("ch09_instruction.py: error: ") and names in line
    assert not out.exists()   # nothing was written: the check came first


@pytest.mark.parametrize("content, expected", [
    ('[{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}]', "the test split is empty"),
    ('{"instruction": "a", "output": "b"}\n{"instruction": 3, "output": "d"}\n', ":2: field 'instruction'"),
    ("", "holds no records"),
])
def test_data_that_cannot_train_or_be_scored_is_refused_in_one_line(chapter, capsys, tmp_path, content, expected):
    data = write(tmp_path / "records.json", content)
    line = stopped_with_one_line(chapter["main"], ["--data", str(data), "--out", str(tmp_path / "out")], capsys)
    assert str(data) in line and expected in line


def open_task_records(n):
    """Records whose answers are all long (more than CLOSED_MAX_WORDS words): none is a closed task."""
    return [{"instruction": f"Describe thing {i}.", "input": "",
             "output": " ".join(f"word{j % 7}" for j in range(i % 5 + 22))} for i in range(n)]


def test_a_short_run_estimates_its_time_and_says_when_exact_match_cannot_be_measured(chapter, capsys, tmp_path,
                                                                                    monkeypatch):
    # A much smaller model than the chapter's, so the whole script runs in seconds.
    monkeypatch.setitem(chapter, "SCRATCH_CONFIG", GPTConfig(vocab_size=50257, context_length=64, emb_dim=16,
                                                             n_heads=2, n_layers=1, drop_rate=0.0, tie_weights=True))
    data = write(tmp_path / "open.json", json.dumps(open_task_records(24)))
    out = tmp_path / "out"
    chapter["main"](["--data", str(data), "--steps", "2", "--out", str(out), "--batch-size", "4"])
    printed = capsys.readouterr().out
    assert re.search(r"Timed [2-5] training batch\(es\): [\d,]+ tokens/s .* should take about \d+ s", printed)
    assert re.search(r"Finetuning took \d+ s \([\d.]+ s/step; estimated \d+ s\)", printed)
    assert "exact match: not measured" in printed and "nan" not in printed
    scores = json.loads((out / "scores.json").read_text())
    assert scores["exact_match"] is None and scores["training"]["steps"] == 2 and scores["training"]["threads"] == 1


@pytest.mark.parametrize("records, pretrained, device, epochs", [
    (800, False, "cpu", 7.0),          # 7 epochs fit in the token budget
    (8000, False, "cpu", None),        # they do not: lowered to the budget
    (8000, False, "cuda", 7.0),        # no budget off the CPU
    (800, True, "cpu", 2.0),
])
def test_default_training_is_epochs_capped_by_a_cpu_token_budget(chapter, encoding, records, pretrained, device,
                                                                 epochs):
    data = ins.InstructionDataset([{"instruction": "Say it.", "input": "", "output": "word " * 40}] * records,
                                  encoding, "alpaca", 256)
    args = chapter["build_parser"]().parse_args([])
    steps, plan = chapter["training_plan"](args, data, 256, pretrained, torch.device(device))
    per_epoch = math.ceil(records / args.batch_size)
    tokens = sum(data.lengths())
    if epochs is None:
        assert steps * args.batch_size * tokens / records == pytest.approx(chapter["CPU_TOKEN_BUDGET"], rel=0.01)
        assert "lowered" in plan
    else:
        assert steps == round(epochs * per_epoch) and f"{epochs:.1f} epochs" in plan
    args = chapter["build_parser"]().parse_args(["--epochs", "0.5"])
    assert chapter["training_plan"](args, data, 256, pretrained, torch.device(device))[0] == round(0.5 * per_epoch)
