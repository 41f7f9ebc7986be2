"""Tests for chapter 13: preference data (both formats, file:line errors), ranked lists -> pairs, the reward model's
Bradley–Terry loss, response log-probabilities, the DPO loss and its gradient, references (frozen, LoRA off, cached),
the bootstrap interval, the bundled data and the chapter script's option checks.

References are independent: the DPO loss and its gradient written out in float64 with math's functions, the
log-probabilities of an answer summed token by token from one unpadded forward pass per token, the Bradley–Terry
loss from hand-picked scores, pairs listed by hand, and the normal approximation of a binomial interval.
"""
import json
import math
from pathlib import Path

import pytest
import torch

from minigpt.instruct import collate_instructions
from minigpt.model import GPTConfig, GPTModel
from minigpt.tokenizer import gpt2_tiktoken_encoding
from minigpt.train import NextTokenLoss
from tests._impl import load_impl
from tests._scripts import load_script

pref = load_impl("minigpt.preference")
dpo = load_impl("minigpt.dpo")
lora = load_impl("minigpt.lora")

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parent.parent
EOT = 50256


@pytest.fixture(scope="module")
def encoding():
    return gpt2_tiktoken_encoding()


def small_model(seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=50257, context_length=64, emb_dim=32, n_heads=2, n_layers=1, drop_rate=0.0,
                    tie_weights=True)
    return GPTModel(cfg).eval()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ readers

def test_ranked_jsonl_reads_answers_best_first_with_the_chapter9_prompt(tmp_path):
    record = {"instruction": "Name a primary color.", "input": "", "output": ["Red.", "Blue is nice.", "No."],
              "kinds": ["good", "rambling", "refusal"]}
    [item] = pref.load_preferences(write(tmp_path / "r.jsonl", json.dumps(record) + "\n"))
    assert item.responses == ["Red.", "Blue is nice.", "No."] and item.kinds == record["kinds"]
    assert item.prompt.endswith("### Instruction:\nName a primary color.\n\n### Response:\n")
    assert item.request == {"instruction": "Name a primary color.", "input": ""}


def test_pairs_with_a_prompt_field_and_whole_dialogues(tmp_path):
    rows = [{"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."},
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello. \n\nHuman: 2+2?\n\nAssistant: 4.",
             "rejected": "\n\nHuman: Hi\n\nAssistant: Hello. \n\nHuman: 2+2?\n\nAssistant: Five, I think."}]
    first, second = pref.load_preferences(write(tmp_path / "p.json", json.dumps(rows, indent=1)), style="raw")
    assert (first.prompt, first.responses) == ("Say hi.", ["Hi!", "No."])
    assert second.prompt == "\n\nHuman: Hi\n\nAssistant: Hello. \n\nHuman: 2+2?\n\nAssistant:"
    assert second.responses == [" 4.", " Five, I think."]


def test_dialogue_split_cuts_at_the_last_shared_assistant_turn():
    # The two answers start alike ("Paris"), so the common prefix runs past the turn marker: the cut must go back.
    prompt, chosen, rejected = pref.split_dialogue("\n\nHuman: Capital of France?\n\nAssistant: Paris.",
                                                   "\n\nHuman: Capital of France?\n\nAssistant: Paris, Texas.")
    assert prompt == "\n\nHuman: Capital of France?\n\nAssistant:"
    assert (chosen, rejected) == (" Paris.", " Paris, Texas.")
    with pytest.raises(pref.InputError, match="do not share a prompt"):
        pref.split_dialogue("Human: a", "Human: b")


@pytest.mark.parametrize("line, message", [
    ('{"instruction": "x", "output": ["only one"]}', "at least two"),
    ('{"instruction": "x", "output": ["same", "same"]}', "same answer twice"),
    ('{"output": ["a", "b"]}', "'instruction'"),
    ('{"prompt": "x", "chosen": "a"}', "'rejected'"),
    ('{"prompt": "x", "chosen": "a", "rejected": "a"}', "same answer"),
    ('{"text": "x"}', "expected a ranked record"),
    ('{"instruction": "x", "output": ["a", "b"], "kinds": ["good"]}', "'kinds'"),
    ('{"instruction": "x", "output": ["a", "b"]', "not valid JSON"),
])
def test_bad_records_name_file_and_line(tmp_path, line, message):
    good = '{"instruction": "ok", "output": ["a", "b"]}'
    path = write(tmp_path / "bad.jsonl", f"{good}\n\n{line}\n")
    with pytest.raises(pref.InputError, match=message) as error:
        pref.load_preferences(path)
    assert f"{path}:3" in str(error.value)


def test_json_array_errors_give_the_line_the_record_starts_on(tmp_path):
    records = [{"instruction": "ok", "output": ["a", "b"]}, {"instruction": "bad", "output": ["a"]}]
    path = write(tmp_path / "bad.json", json.dumps(records, indent=2))
    start = [i for i, line in enumerate(json.dumps(records, indent=2).splitlines(), 1) if line == "  {"][1]
    with pytest.raises(pref.InputError, match="at least two") as error:
        pref.load_preferences(path)
    assert f"{path}:{start}:" in str(error.value)


# -------------------------------------------------------------------------------------------------- pairs

def test_ranked_list_expands_to_every_ordered_pair():
    assert pref.ranked_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert pref.best_pairs(4) == [(0, 1), (0, 2), (0, 3)]
    for k in range(2, 8):
        pairs = pref.ranked_pairs(k)
        assert len(pairs) == len(set(pairs)) == k * (k - 1) // 2
        assert all(0 <= i < j < k for i, j in pairs)


def test_ranked_batch_scores_each_answer_once_and_indexes_all_pairs():
    batch = [([1, 2], [[3], [4, 5], [6]]), ([7], [[8, 9, 10], [11]])]
    ids, lengths, better, worse, prompt_of = pref.collate_ranked(batch)
    assert ids.tolist() == [[1, 2, 3, EOT, EOT], [1, 2, 4, 5, EOT], [1, 2, 6, EOT, EOT],
                            [7, 8, 9, 10, EOT], [7, 11, EOT, EOT, EOT]]
    assert lengths.tolist() == [4, 5, 4, 5, 3]
    assert list(zip(better.tolist(), worse.tolist())) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    assert prompt_of.tolist() == [0, 0, 0, 1]


class FixedScores(torch.nn.Module):
    """A 'reward model' whose score of row i is scores[i]: the loss can be checked against hand-picked numbers."""

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.nn.Parameter(torch.tensor(scores))

    def forward(self, ids, lengths):
        return self.scores[:, None]


def test_bradley_terry_loss_averages_each_prompts_pairs():
    batch = pref.collate_ranked([([1], [[2], [3], [4]]), ([5], [[6], [7]])])
    scores = [2.0, 0.5, -1.0, 0.3, 0.9]
    loss = pref.BradleyTerryLoss()
    assert loss.sizes(batch) == (2, batch[0].numel())   # units are prompts
    value = loss(FixedScores(scores), batch)
    nll = lambda a, b: math.log1p(math.exp(-(a - b)))  # noqa: E731  -log σ(a − b) in float64
    expected = (nll(2.0, 0.5) + nll(2.0, -1.0) + nll(0.5, -1.0)) / 3 + nll(0.3, 0.9)
    assert value.item() == pytest.approx(expected, rel=1e-6)   # float32 arithmetic on five numbers
    curve = pref.PairMetrics.curve(loss.metrics.train, 1)
    assert curve["accuracy"] == [pytest.approx(3 / 4)]


# --------------------------------------------------------------------------------------------- log-probs

def pair_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rand = lambda n: torch.randint(0, 50000, (n,), generator=g).tolist()  # noqa: E731
    items = [(rand(5), rand(3), rand(6), None), (rand(9), rand(2), rand(1), None)]
    return items, pref.collate_pairs(items)


def loop_logprob(model, prompt, answer) -> float:
    """log π(answer + end token | prompt), one unpadded forward pass per answer token, summed in float64."""
    ids = prompt + answer + [EOT]
    total = 0.0
    with torch.no_grad():
        for t in range(len(prompt), len(ids)):
            logits = model(torch.tensor([ids[:t]]))[0, -1].double()
            total += float(torch.log_softmax(logits, -1)[ids[t]])
    return total


def test_response_logprobs_equal_a_token_by_token_loop():
    model = small_model()
    items, (inputs, targets) = pair_batch()
    with torch.no_grad():
        got = dpo.response_logprobs(model, inputs, targets)
    rows = [(p, c) for p, c, _, _ in items] + [(p, r) for p, _, r, _ in items]
    expected = [loop_logprob(model, p, a) for p, a in rows]
    # float32 logits of different batch shapes, summed over up to 7 tokens of ~-10.8 each: agree to ~1e-5 relative.
    assert got.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-4)


def test_prompt_and_padding_contribute_nothing():
    model = small_model()
    items, (inputs, targets) = pair_batch()
    with torch.no_grad():
        base = dpo.response_logprobs(model, inputs, targets)
        # Other tokens where the targets are -100 after the answer (padding) change nothing: causal attention.
        noisy = inputs.clone()
        padding = torch.zeros_like(targets, dtype=torch.bool)
        for row in range(len(inputs)):
            last = int((targets[row] != -100).nonzero().max())
            padding[row, last + 1:] = True
        noisy[padding] = 123
        assert torch.allclose(dpo.response_logprobs(model, noisy, targets), base, atol=1e-5)
        # A row alone (no padding at all) gives what it gives inside the batch.
        alone = pref.collate_pairs([items[1]])
        assert torch.allclose(dpo.response_logprobs(model, *alone)[0], base[1], atol=1e-5)
        # Unmasking the prompt's targets does change the sum: the masking is what keeps the prompt out.
        unmasked = targets.clone()
        unmasked[0, :4] = inputs[0, 1:5]
        assert dpo.response_logprobs(model, inputs, unmasked)[0] < base[0] - 1.0


# ------------------------------------------------------------------------------------------------- DPO loss

def float64_dpo(pc, pr, rc, rr, beta):
    """Loss and its derivatives with respect to log π(c) and log π(r), written out in float64."""
    z = beta * ((pc - rc) - (pr - rr))
    loss = math.log1p(math.exp(-z)) if z > -30 else -z
    sig = 1 / (1 + math.exp(z))                     # σ(−z) = −dloss/dz
    return loss, -beta * sig, beta * sig


@pytest.mark.parametrize("beta", [0.01, 0.1, 0.5, 2.0])
def test_dpo_loss_and_gradient_match_the_float64_formula(beta):
    g = torch.Generator().manual_seed(int(beta * 100))
    pc, pr, rc, rr = (-30 * torch.rand(64, generator=g, dtype=torch.float64) for _ in range(4))
    policy_c, policy_r = pc.float().requires_grad_(), pr.float().requires_grad_()
    loss, chosen_reward, rejected_reward = dpo.dpo_loss(policy_c, policy_r, rc.float(), rr.float(), beta)
    loss.sum().backward()
    expected = [float64_dpo(*map(float, v), beta) for v in zip(pc, pr, rc, rr)]
    # float32 inputs of size ~30: differences carry ~3e-6 absolute error, times β; losses and gradients agree to
    # 1e-5 relative plus that.
    assert loss.tolist() == pytest.approx([e[0] for e in expected], rel=1e-5, abs=1e-5 * max(beta, 1))
    assert policy_c.grad.tolist() == pytest.approx([e[1] for e in expected], rel=1e-5, abs=1e-7)
    assert policy_r.grad.tolist() == pytest.approx([e[2] for e in expected], rel=1e-5, abs=1e-7)
    assert torch.allclose(chosen_reward.double(), beta * (pc - rc), rtol=1e-5, atol=1e-5)
    assert torch.allclose(rejected_reward.double(), beta * (pr - rr), rtol=1e-5, atol=1e-5)


def float64_rpo(pc, pr, rc, rr, beta, alpha, tokens):
    """DPO's loss plus RPO's α · (−log π(c) / tokens), and its derivatives with respect to log π(c) and log π(r)."""
    loss, d_chosen, d_rejected = float64_dpo(pc, pr, rc, rr, beta)
    return loss - alpha * pc / tokens, d_chosen - alpha / tokens, d_rejected


@pytest.mark.parametrize("beta, alpha", [(0.1, 0.5), (0.5, 1.0), (2.0, 0.05)])
def test_rpo_term_and_its_gradient_match_the_float64_formula(beta, alpha):
    g = torch.Generator().manual_seed(int(beta * 10 + alpha * 100))
    pc, pr, rc, rr = (-30 * torch.rand(32, generator=g, dtype=torch.float64) for _ in range(4))
    tokens = torch.randint(1, 40, (32,), generator=g)
    policy_c, policy_r = pc.float().requires_grad_(), pr.float().requires_grad_()
    loss, _, _ = dpo.dpo_loss(policy_c, policy_r, rc.float(), rr.float(), beta, alpha=alpha, chosen_tokens=tokens)
    loss.sum().backward()
    expected = [float64_rpo(*map(float, v), beta, alpha, int(n)) for *v, n in zip(pc, pr, rc, rr, tokens)]
    # As for plain DPO: float32 inputs of size ~30 (the NLL term adds up to α·30 more, same relative precision).
    assert loss.tolist() == pytest.approx([e[0] for e in expected], rel=1e-5, abs=1e-5 * max(beta, 1))
    assert policy_c.grad.tolist() == pytest.approx([e[1] for e in expected], rel=1e-5, abs=1e-7)
    assert policy_r.grad.tolist() == pytest.approx([e[2] for e in expected], rel=1e-5, abs=1e-7)
    with pytest.raises(ValueError, match="chosen_tokens"):
        dpo.dpo_loss(policy_c, policy_r, rc.float(), rr.float(), beta, alpha=alpha)


def test_rpo_alpha_zero_is_plain_dpo_and_beta_to_zero_leaves_only_the_nll_gradient():
    pc, pr = torch.tensor([-3.0, -50.0], requires_grad=True), torch.tensor([-9.0, -1.0], requires_grad=True)
    ref_c, ref_r, tokens = torch.tensor([-5.0, -20.0]), torch.tensor([-4.0, -2.0]), torch.tensor([3, 10])
    plain = dpo.dpo_loss(pc, pr, ref_c, ref_r, 0.3)[0]
    assert torch.equal(dpo.dpo_loss(pc, pr, ref_c, ref_r, 0.3, alpha=0.0, chosen_tokens=tokens)[0], plain)
    loss = dpo.dpo_loss(pc, pr, ref_c, ref_r, 1e-9, alpha=2.0, chosen_tokens=tokens)[0]
    loss.sum().backward()
    assert loss.tolist() == pytest.approx([math.log(2) + 2.0 * 3 / 3, math.log(2) + 2.0 * 50 / 10], abs=1e-6)
    # The NLL's alone (the DPO part adds β/2 = 5e-10), as float32 rounds −2/3: to 1e-7 relative.
    assert pc.grad.tolist() == pytest.approx([-2.0 / 3, -2.0 / 10], rel=1e-7, abs=1e-9)
    assert pr.grad.abs().max() <= 1e-9


def test_dpo_loss_object_adds_the_chosen_answers_mean_token_nll():
    model = small_model()
    items, batch = pair_batch()
    reference = small_model(seed=1)
    alpha, beta = 0.7, 0.2
    with torch.no_grad():
        got = dpo.DPOLoss(beta, reference, alpha=alpha)(model, batch).item()
    # Independent: every log-probability from the token-by-token loop in float64, the formula written out.
    expected = 0.0
    for prompt, chosen, rejected, _ in items:
        pc, pr = loop_logprob(model, prompt, chosen), loop_logprob(model, prompt, rejected)
        rc, rr = loop_logprob(reference, prompt, chosen), loop_logprob(reference, prompt, rejected)
        expected += float64_rpo(pc, pr, rc, rr, beta, alpha, len(chosen) + 1)[0]   # + 1: the end token
    assert got == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        dpo.DPOLoss(alpha=-0.1)


def test_answer_loss_equals_the_next_token_loss_on_a_masked_batch():
    model = small_model()
    model.train()
    g = torch.Generator().manual_seed(5)
    rows = [(torch.randint(0, 50000, (n,), generator=g).tolist(), p) for n, p in ((9, 4), (5, 2), (12, 7))]
    batch = collate_instructions(rows, mask_prompt=True)
    reference = NextTokenLoss()
    assert dpo.AnswerLoss().sizes(batch) == reference.sizes(batch)
    value = dpo.AnswerLoss()(model, batch)
    value.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    expected = reference(model, batch)   # the full (batch, tokens, vocab) logits, cross-entropy with ignore_index
    expected.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    for got, want in zip(grads, (p.grad for p in model.parameters())):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_large_margins_do_not_overflow():
    loss, _, _ = dpo.dpo_loss(torch.tensor([0.0, -1e4]), torch.tensor([-1e4, 0.0]), torch.zeros(2), torch.zeros(2),
                              1.0)
    assert loss[0].item() == 0.0 and loss[1].item() == pytest.approx(1e4)


def test_beta_to_zero_gives_log2_and_no_gradient():
    pc, pr = torch.tensor([-3.0, -50.0], requires_grad=True), torch.tensor([-9.0, -1.0], requires_grad=True)
    loss, _, _ = dpo.dpo_loss(pc, pr, torch.tensor([-5.0, -20.0]), torch.tensor([-4.0, -2.0]), 1e-9)
    loss.sum().backward()
    assert loss.tolist() == pytest.approx([math.log(2)] * 2, abs=1e-7)
    assert pc.grad.abs().max() <= 1e-9 and pr.grad.abs().max() <= 1e-9


def test_identical_policy_and_reference_start_at_log2_with_half_beta_gradient():
    model = small_model()
    model.train()
    _, batch = pair_batch()
    loss_fn = dpo.DPOLoss(beta=0.5, reference=dpo.frozen_reference(model))
    loss = loss_fn(model, batch)
    assert loss.item() == pytest.approx(2 * math.log(2), abs=1e-5)   # two pairs, each log 2
    curve = pref.PairMetrics.curve(loss_fn.metrics.train, 1)
    assert curve["margin"] == [pytest.approx(0.0, abs=1e-5)]
    # d loss / d log π(c) = −β σ(0) = −β/2: the gradient pushes chosen up and rejected down from the first step.
    pc = torch.zeros(3, requires_grad=True)
    dpo.dpo_loss(pc, torch.zeros(3), torch.zeros(3), torch.zeros(3), 0.5)[0].sum().backward()
    assert pc.grad.tolist() == pytest.approx([-0.25] * 3)


def test_dpo_needs_a_reference_and_refuses_bad_batches():
    model = small_model()
    pairs = pref.PairDataset([pref.RankedPrompt("Say hi.", ["Hi!", "No."])], gpt2_tiktoken_encoding(), 64)
    with pytest.raises(ValueError, match="reference"):
        dpo.train_dpo(model, pairs, None, dpo.TrainConfig(max_steps=1))
    with pytest.raises(TypeError, match="chosen rows"):
        dpo.DPOLoss().sizes((torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long)))
    with pytest.raises(ValueError, match="beta"):
        dpo.DPOLoss(beta=0.0)


# --------------------------------------------------------------------------------------- references, LoRA

def test_adapters_disabled_gives_back_the_base_model():
    base = small_model()
    adapted = small_model()
    lora.apply_lora(adapted, rank=2, alpha=4, targets=lora.ALL_LINEAR)
    with torch.no_grad():
        for module in adapted.modules():
            if isinstance(module, lora.LoRALinear):
                module.B.normal_()
    ids = torch.randint(0, 50000, (2, 7))
    with torch.no_grad():
        assert not torch.allclose(adapted(ids), base(ids), atol=1e-3)
        with lora.adapters_disabled(adapted):
            assert torch.allclose(adapted(ids), base(ids), atol=1e-6)
        assert not torch.allclose(adapted(ids), base(ids), atol=1e-3)   # switched back on
    with pytest.raises(ValueError, match="no LoRA"):
        with lora.adapters_disabled(base):
            pass


def test_lora_reference_cached_and_live_agree(encoding):
    items = [pref.RankedPrompt("Say hi.", ["Hi there!", "No.", "Go away, I am busy."]),
             pref.RankedPrompt("Count to three.", ["1, 2, 3", "Three."])]
    policy = small_model()
    lora.apply_lora(policy, rank=2, alpha=4, targets=lora.ALL_LINEAR)
    with torch.no_grad():
        for module in policy.modules():
            if isinstance(module, lora.LoRALinear):
                module.B.normal_(std=0.1)
    pairs = pref.PairDataset(items, encoding, 64)
    assert len(pairs) == 3 and pairs.groups == [0, 0, 1]
    live = dpo.DPOLoss(beta=0.1)(policy, pref.collate_pairs([pairs[i] for i in range(3)]))
    dpo.cache_reference(pairs, policy)
    batch = pref.collate_pairs([pairs[i] for i in range(3)])
    assert len(batch) == 3
    cached = dpo.DPOLoss(beta=0.1)(policy, batch)
    # Same numbers computed in batches of other shapes: float32 rounding only.
    assert cached.item() == pytest.approx(live.item(), abs=1e-5)
    base = small_model()
    expected = dpo.pair_logprobs(base, pairs)
    assert torch.allclose(pairs.reference, expected, atol=1e-4)   # adapters off = the model before LoRA


def test_a_few_dpo_steps_raise_the_margin_on_their_pairs(tmp_path, encoding):
    items = [pref.RankedPrompt(f"Question {i}?", [f"Answer {i}.", "I cannot help."]) for i in range(8)]
    pairs = pref.PairDataset(items, encoding, 64)
    policy = small_model()
    before = dpo.pair_logprobs(policy, pairs)
    config = dpo.TrainConfig(max_steps=8, learning_rate=3e-3, min_lr=3e-3, warmup_steps=1, eval_every=0,
                             out_dir=str(tmp_path), progress=False, weight_decay=0.0)
    history, loss = dpo.train_dpo(policy, pairs, None, config, reference=dpo.frozen_reference(policy), batch_size=4)
    after = dpo.pair_logprobs(policy, pairs)
    margin = lambda lp: (lp[:, 0] - lp[:, 1]).mean().item()  # noqa: E731
    assert margin(after) > margin(before) + 1.0
    assert history["train_loss"][0] == pytest.approx(math.log(2), abs=1e-4)
    assert history["train_loss"][-1] < history["train_loss"][0]
    curve = pref.PairMetrics.curve(loss.metrics.train, 1)
    assert len(curve["margin"]) == 8 and curve["margin"][-1] > 0


# ---------------------------------------------------------------------------------------------- reward model

def test_reward_reads_the_end_token_and_ignores_padding(encoding):
    model = pref.reward_model_from(small_model())
    short, long = [5, 6, 7], list(range(100, 120))
    together = pref.reward_scores(model, [short, long])
    alone = pref.reward_scores(model, [short])
    assert together[0].item() == pytest.approx(alone[0].item(), abs=1e-5)
    assert model.gpt.out_head.out_features == 1


# ----------------------------------------------------------------------------------------- data and script

def test_bundled_preferences_are_reproduced_by_their_script(capsys):
    generator = load_script(REPO / "data" / "preferences" / "make_preferences.py")
    assert generator.main(["--check"]) == 0, capsys.readouterr().out


def test_bundled_preferences_rank_the_reference_answer_first():
    splits = pref.load_preference_splits()
    instructions = {name: json.loads((REPO / "data" / "instructions" / f"{name}.json").read_text())
                    for name in pref.SPLIT_NAMES}
    for name, items in splits.items():
        references = {(r["instruction"], r["input"]): r["output"] for r in instructions[name]}
        for item in items:
            assert item.kinds[0] == "good" and len(item.responses) == 4
            assert item.responses[0] == references[item.request["instruction"], item.request["input"]]
            assert [k for k in item.kinds[1:]] == sorted(item.kinds[1:], key=[
                "rambling", "wrong_fact", "ignores_input", "refusal", "off_topic"].index)


@pytest.mark.parametrize("argv, message", [
    (["--beta", "0"], "--beta"),
    (["--rpo-alpha", "-1"], "--rpo-alpha"),
    (["--dpo-steps", "-3"], "--dpo-steps"),
    (["--checkpoint", "/nonexistent/ckpt.pt"], "no such file"),
    (["--checkpoint", "a", "--weights", "gpt2"], "not both"),
    (["--reference", "sometimes"], "--reference"),
])
def test_script_refuses_bad_options_in_one_line(argv, message, capsys):
    script = load_script(REPO / "chapters" / "ch13_preferences.py")
    with pytest.raises(SystemExit) as stop:
        script.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
