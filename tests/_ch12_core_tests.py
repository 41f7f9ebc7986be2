# ---------------------------------------------------------------------- scoring: exactness against transformers

transformers = pytest.importorskip("transformers")

POSITIONS = 48      # a short context, so that some requests must be cut from the left


@pytest.fixture(scope="module")
def hf_and_ours(tmp_path_factory):
    """A GPT-2-shaped transformers model with random weights, and the same weights loaded into minigpt."""
    from minigpt.gpt2 import load_gpt2

    config = transformers.GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=50257, n_positions=POSITIONS)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():   # larger weights than transformers' init, so log-probabilities differ between tokens
        for p in hf.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    directory = tmp_path_factory.mktemp("hf_gpt2")
    hf.save_pretrained(directory, safe_serialization=True)
    return hf, load_gpt2(directory).eval()


def hf_logprob(hf, context: list[int], continuation: list[int]) -> float:
    """Σ log p(continuation | context) the direct way: one request, transformers' own forward pass, cut to fit."""
    tokens = (context + continuation)[-(POSITIONS + 1):]
    with torch.no_grad():
        logits = hf(torch.tensor([tokens[:-1]])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    n = len(continuation)
    positions = range(len(tokens) - 1 - n, len(tokens) - 1)
    return sum(float(logprobs[p, tokens[p + 1]]) for p in positions)


def random_requests(seed: int, count: int, longest_context: int = 70) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        context = torch.randint(0, 50257, (int(torch.randint(1, longest_context, (1,), generator=g)),), generator=g)
        continuation = torch.randint(0, 50257, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
        out.append((context.tolist(), continuation.tolist()))
    return out


# Summed float32 log-probabilities of up to a dozen tokens, each log-softmax of logits around ±10 with float32
# rounding (~1e-6 relative) in both implementations and different summation orders: 1e-4 absolute is a few
# times the rounding and far below any real difference (one wrong token or position shifts a sum by > 0.1).
LOGPROB_TOLERANCE = 1e-4


def test_continuation_logprobs_equal_transformers_one_request_at_a_time(hf_and_ours):
    hf, ours = hf_and_ours
    requests = random_requests(seed=2, count=24)
    assert any(len(c) + len(x) > POSITIONS + 1 for c, x in requests)     # some are cut from the left
    batched = evaluate.continuation_logprobs(ours, requests, batch_size=5)
    for (context, continuation), value in zip(requests, batched):
        assert value == pytest.approx(hf_logprob(hf, context, continuation), abs=LOGPROB_TOLERANCE)


def test_shared_context_scores_equal_transformers(hf_and_ours):
    hf, ours = hf_and_ours
    g = torch.Generator().manual_seed(3)
    items = []
    for k in range(9):
        context = torch.randint(0, 50257, (5 + 3 * k,), generator=g).tolist()
        choices = [torch.randint(0, 50257, (n,), generator=g).tolist() for n in (1, 4, 2, 7)[: 2 + k % 3]]
        items.append((context, choices))
    shared = evaluate.shared_context_logprobs(ours, items, batch_size=4)
    for (context, choices), values in zip(items, shared):
        for choice, value in zip(choices, values):
            assert value == pytest.approx(hf_logprob(hf, context, choice), abs=LOGPROB_TOLERANCE)


def test_a_request_without_context_is_scored_after_end_of_text(hf_and_ours):
    hf, ours = hf_and_ours
    value = evaluate.continuation_logprobs(ours, [([], [464, 3797, 3332])], eot_id=50256)[0]
    assert value == pytest.approx(hf_logprob(hf, [50256], [464, 3797, 3332]), abs=LOGPROB_TOLERANCE)
    with pytest.raises(InputError, match="endoftext"):
        evaluate.continuation_logprobs(ours, [([], [464])], eot_id=None)


# ------------------------------------------------------------------------------ scoring: perplexity windows

@given(st.integers(2, 300), st.integers(1, 40), st.data())
def test_sliding_windows_score_every_token_once_with_enough_context(num_tokens, context_length, data):
    stride = data.draw(st.integers(1, context_length))
    windows = evaluate.sliding_windows(num_tokens, context_length, stride)
    scored = [t for begin, end, first in windows for t in range(first, end + 1)]
    assert scored == list(range(1, num_tokens))
    for begin, end, first in windows:
        assert end - begin <= context_length
        if begin > 0:   # every window after the first gives each scored token at least L - stride context
            assert first - begin >= context_length - stride


def test_text_perplexity_with_stride_one_equals_a_token_by_token_loop(hf_and_ours):
    hf, ours = hf_and_ours
    tokenizer = gpt2_tiktoken_encoding()
    text = "The lighthouse keeper counted the boats that came home. " * 12
    ids = [50256] + tokenizer.encode_ordinary(text)
    assert len(ids) > 2 * POSITIONS
    # Every token t predicted from the POSITIONS tokens before it (or all of them): the definition.
    expected = -sum(hf_logprob(hf, ids[max(0, t - POSITIONS):t], [ids[t]]) for t in range(1, len(ids)))
    result = evaluate.text_perplexity(ours, tokenizer, text, stride=1, batch_size=32)
    assert result.tokens == len(ids) - 1 and result.num_bytes == len(text.encode("utf-8"))
    # ~120 terms of the LOGPROB_TOLERANCE kind, summed.
    assert result.nats == pytest.approx(expected, abs=120 * 1e-5)
    assert result.bits_per_byte == pytest.approx(expected / (len(text.encode("utf-8")) * math.log(2)), rel=1e-5)
    disjoint = evaluate.text_perplexity(ours, tokenizer, text, stride=POSITIONS)
    assert disjoint.tokens == result.tokens and disjoint.nats != pytest.approx(result.nats, abs=1e-3)


# -------------------------------------------------------------------------- multiple choice: prompts and rules

def letter_task(shots: int = 5) -> tasks.Task:
    dev = [tasks.ChoiceItem(f"What is {a} plus {a}?", (str(a), str(2 * a), str(3 * a), str(a + 1)), 1, "arithmetic")
           for a in range(1, shots + 1)]
    items = [tasks.ChoiceItem(f"What is {a} times 3?", (str(a), str(2 * a), str(3 * a), str(a + 3)), 2, "arithmetic")
             for a in range(1, 7)]
    return tasks.Task("sums", "letter", items, dev, description=MMLU_DESCRIPTION)


MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}.\n\n"


def test_k_shot_prompt_layout():
    task = letter_task()
    prompt = tasks.context_text(task.items[0], task, tasks.shots_for(task.items[0], task, 2))
    assert prompt == ("The following are multiple choice questions (with answers) about arithmetic.\n\n"
                      "What is 1 plus 1?\nA. 1\nB. 2\nC. 3\nD. 2\nAnswer: B\n\n"
                      "What is 2 plus 2?\nA. 2\nB. 4\nC. 6\nD. 3\nAnswer: B\n\n"
                      "What is 1 times 3?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:")
    assert tasks.continuations(task.items[0], task) == [" A", " B", " C", " D"]


def test_shots_are_dropped_oldest_first_until_the_prompt_fits():
    tokenizer = gpt2_tiktoken_encoding()
    task = letter_task()
    item = task.items[0]
    full, used, truncated = evaluate.fit_shots(tokenizer, item, task, 5, 10_000)
    assert used == 5 and not truncated
    one_shot = len(encode(tokenizer, tasks.context_text(item, task, task.shots[4:])))
    requests, used, truncated = evaluate.fit_shots(tokenizer, item, task, 5, one_shot)
    assert used == 1 and not truncated
    # The shot kept is the newest (the last of the five), right before the question.
    assert decode(tokenizer, requests[0][0]).endswith(tasks.context_text(item, task, task.shots[4:]))
    requests, used, truncated = evaluate.fit_shots(tokenizer, item, task, 5, 8)
    assert used == 0 and truncated


def encode(tokenizer, text):
    return tokenizer.encode_ordinary(text)


def decode(tokenizer, ids):
    return tokenizer.decode(ids)


@pytest.mark.parametrize("cue", ["Answer:", "Answer: "])
def test_letters_are_single_tokens_after_the_cue_with_or_without_a_trailing_space(cue):
    tokenizer = gpt2_tiktoken_encoding()
    for letter in "ABCD":
        context, continuation = evaluate.encode_pair(tokenizer, "Which one?\n" + cue, " " + letter if cue[-1] != " "
                                                     else letter)
        assert continuation == tokenizer.encode_ordinary(" " + letter) and len(continuation) == 1
        assert tokenizer.decode(context) == "Which one?\nAnswer:"


def test_letter_scores_on_a_tokenizer_where_the_space_and_letter_are_two_tokens():
    """A chapter 1 tokenizer trained on little text has no " A" token: the letter path must still be exact."""
    from minigpt.model import GPTConfig, GPTModel
    from minigpt.tokenizer import BPETokenizer

    tokenizer = BPETokenizer()
    tokenizer.train("the cat sat on the mat. " * 50, vocab_size=270)
    assert len(tokenizer.encode_ordinary(" A")) == 2
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=256, emb_dim=32, n_heads=2,
                               n_layers=2, drop_rate=0.0)).eval()
    task = letter_task()
    shared = evaluate.score_task(model, tokenizer, task, shots=1, share_context=True, progress=False)
    alone = evaluate.score_task(model, tokenizer, task, shots=1, share_context=False, progress=False)
    for a, b in zip(shared.items, alone.items):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4) and a.shots == 1


def test_accuracy_rules_are_the_harness_definitions():
    # Two endings: the first likelier in total, the second likelier per character and per byte.
    scores = [-10.0, -12.0]
    texts = ["short", "a longer ending"]
    assert evaluate.argmax(scores) == 0
    assert evaluate.argmax([s / len(t) for s, t in zip(scores, texts)]) == 1
    assert evaluate.argmax([-1.0, -1.0, -2.0]) == 0          # a tie goes to the first, as numpy.argmax


def test_score_task_predictions_follow_from_its_log_likelihoods(hf_and_ours):
    _, ours = hf_and_ours
    tokenizer = gpt2_tiktoken_encoding()
    items = [tasks.ChoiceItem(f"The {w} sat on the", ("mat", "very long ending about the sea", "dog", "é日本"), i % 4)
             for i, w in enumerate(["cat", "dog", "bird", "king", "queen", "child"])]
    task = tasks.Task("toy", "completion", items)
    result = evaluate.score_task(ours, tokenizer, task, progress=False)
    for item, scored in zip(items, result.items):
        lengths = [len(c) for c in item.choices]
        byte_lengths = [len(c.encode("utf-8")) for c in item.choices]
        assert scored.prediction == int(np.argmax(scored.logprobs))
        assert scored.prediction_norm == int(np.argmax(np.array(scored.logprobs) / lengths))
        assert scored.prediction_bytes == int(np.argmax(np.array(scored.logprobs) / byte_lengths))
        direct = [hf_logprob(_, *evaluate.encode_pair(tokenizer, item.query, " " + c)) for c in item.choices]
        assert scored.logprobs == pytest.approx(direct, abs=LOGPROB_TOLERANCE)
    assert result.chance == pytest.approx(0.25)


def test_a_split_without_answers_is_refused_by_score_task(hf_and_ours):
    _, ours = hf_and_ours
    task = tasks.Task("hidden", "letter", [tasks.ChoiceItem("Q?", ("a", "b"), None, source="test.csv:3")])
    with pytest.raises(InputError, match="test.csv:3.*no answers"):
        evaluate.score_task(ours, gpt2_tiktoken_encoding(), task, progress=False)


# --------------------------------------------------------------------------------------------- intervals

@pytest.mark.parametrize("right,total", [(0, 10), (3, 10), (10, 10), (57, 200), (180, 200), (1, 1)])
def test_wilson_interval_is_the_set_of_shares_a_score_test_accepts(right, total):
    """Wilson's interval is {p : |p̂ − p| ≤ z·sqrt(p(1−p)/n)}: find its ends by bisection, independently."""
    z = statistics.NormalDist().inv_cdf(0.975)
    share = right / total

    def accepted(p):
        return abs(share - p) <= z * math.sqrt(p * (1 - p) / total) + 1e-15

    def edge(inside, outside):
        for _ in range(200):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        return inside

    low = 0.0 if accepted(0.0) else edge(share, 0.0)
    high = 1.0 if accepted(1.0) else edge(share, 1.0)
    assert metrics.wilson_interval(right, total) == pytest.approx((low, high), abs=1e-9)


# ------------------------------------------------------------------------------------- the pairwise judge

class FakeJudge(BaseHTTPRequestHandler):
    """A local stand-in for Ollama: `mode` "first" always prefers the first answer (a pure position bias);
    "lima" prefers whichever answer says Lima."""
    mode = "first"

    def do_GET(self):
        self._reply({"models": [{"name": "judge:latest"}]})

    def do_POST(self):
        content = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"][0]["content"]
        first = content.split("Answer 1:\n")[1].split("\n\nAnswer 2:")[0]
        second = content.split("Answer 2:\n")[1].split("\n\nReply")[0]
        if FakeJudge.mode == "first":
            verdict = "1"
        else:
            verdict = {(True, False): "1", (False, True): "2"}.get(("Lima" in first, "Lima" in second), "0")
        self._reply({"message": {"role": "assistant", "content": f"Verdict: {verdict}"}})

    def _reply(self, data):
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode,expected", [("first", [0.5, 0.5, 0.5]), ("lima", [1.0, 0.0, 0.5])])
def test_pairwise_judge_averages_both_orders(mode, expected):
    from minigpt import judge

    FakeJudge.mode = mode
    server = HTTPServer(("127.0.0.1", 0), FakeJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/chat"
        records = [{"instruction": "Capital of Peru?", "input": "", "output": "Lima."}] * 3
        shares = judge.compare_with_ollama(records, ["Lima.", "Quito.", "Paris."], ["Quito.", "Lima, Peru.", "Rome."],
                                           model="judge", url=url, progress=False)
        assert shares == expected
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError, match="local"):
        judge.compare_with_ollama(records, ["a"] * 3, ["b"] * 3, url="http://example.com/api/chat")
