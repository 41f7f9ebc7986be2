"""Chapter 12's scoring-speed benchmark, `python -m minigpt.bench_evaluate`: its --quick path runs and agrees.

No timing is asserted (a shared CPU makes them noise here; the benchmark's note is where speed is measured). What
is held: the note is written, another size's section in it is kept, and every method gives the plain loop's
log-likelihoods and predictions, so the benchmark compares equal work.
"""
import pytest

from minigpt import bench_evaluate
from minigpt.tokenizer import gpt2_tiktoken_encoding

pytest.importorskip("transformers")


def test_quick_run_writes_the_note_and_every_method_agrees(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIGPT_LM_EVAL_PYTHON", raising=False)   # lm-eval runs only when asked for
    out = tmp_path / "EVALUATION_BENCHMARKS.md"
    out.write_text("# Evaluation benchmarks (chapter 12)\n\n## GPT-2 small shape (124M parameters)\n\nearlier run\n",
                   encoding="utf-8")
    result = bench_evaluate.main(["--quick", "--out", str(out)])
    note = out.read_text(encoding="utf-8")
    assert "## tiny shape" in note and "earlier run" in note and "| completion | minigpt, score_task |" in note
    assert set(result["results"]) == {"completion", "letter"}
    for kind, measured in result["results"].items():
        methods = {row["method"] for row in measured["rows"]}
        assert {"minigpt, score_task", "minigpt, share_context=False", bench_evaluate.REFERENCE} <= methods
        for row in measured["rows"]:
            assert row["same_acc"] == row["same_acc_norm"] == row["items"], (kind, row)
            assert row["max_abs_diff"] < 1e-3, (kind, row)


def test_the_tokenizer_written_for_lm_eval_gives_tiktokens_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    encoding = gpt2_tiktoken_encoding()
    bench_evaluate.hf_tokenizer_files(encoding, tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    texts = ["Hello world, it's 2024!", "  two spaces\n\n\tand a tab", "naïve café 日本語 😀", "Answer: B",
             "x = f(y) ** 2  # comment", " ".join(bench_evaluate.english_words()[:400])]
    for text in texts:
        assert tokenizer.encode(text) == encoding.encode_ordinary(text), text
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 50256
