"""Issue 19's training GPU check, `python -m minigpt.bench_train --gpu-check --out DIR`, and the pieces it adds.

Its --dry-run runs every stage at toy sizes on the CPU, so a broken stage, report or plot is caught here, long before a
GPU is lent for a few minutes. The resume stage is held to minigpt's documented CPU property: a run stopped at its
checkpoint and resumed computes the very same losses and weights as one that never stopped.
"""
import json

import pytest
import torch

from minigpt import bench_generate, bench_train
from minigpt.model import GPTConfig, GPTModel
from minigpt.train import TrainConfig

STAGES = ["machine", "tests", "step_triton", "step_torch", "step_eager", "resume", "generation", "targets", "plots"]
ON_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the dry run's tests stage runs the GPU tests "
                            "for real: run `python -m minigpt.bench_train --gpu-check` itself there")


def test_kernel_names_fall_into_their_profile_categories():
    # Names as the CUDA profiler reports them (cuBLAS, FlashAttention, Inductor, fused AdamW, chapter 5's Triton).
    expected = {
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel":
            "matmul",
        "nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NNT": "matmul",
        "void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x4_tn_align8>(Params)": "matmul",
        "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4>, true>(Flash_fwd_params)":
            "attention",
        "fmha_cutlassB_bf16_aligned_64x64_k64_sm80(PyTorchMemEffAttention::AttentionBackwardKernel)": "attention",
        "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x128_4x1x1_kernel0_0": "attention",
        "_attn_fwd": "attention", "_attn_bwd_dkdv": "attention", "_layer_norm_bwd": "layernorm",
        "triton_per_fused_add_native_layer_norm_native_layer_norm_backward_7": "layernorm",
        "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous namespace)::"
        "TensorListMetadata<4>, at::native::(anonymous namespace)::FusedAdamMathFunctor<float, 4>>": "optimizer",
        "triton_poi_fused_gelu_gelu_backward_3": "rest",
        "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>": "rest",
        "aten::mm": "matmul", "aten::addmm": "matmul", "aten::native_layer_norm": "layernorm",
        "aten::_scaled_dot_product_flash_attention_for_cpu": "attention", "aten::_foreach_norm": "optimizer",
        "aten::embedding_dense_backward": "rest", "aten::_log_softmax": "rest",
    }
    assert {name: bench_train.kernel_category(name) for name in expected} == expected


def test_profile_split_of_a_cpu_step_adds_up_to_torchs_own_self_time_total():
    torch.manual_seed(0)
    cfg = GPTConfig.preset("tiny", n_layers=1, context_length=16, vocab_size=300, drop_rate=0.0)
    step = bench_train.TrainingStep(GPTModel(cfg), batch_size=2, seq_len=16, config=TrainConfig(max_steps=5))
    step(0)   # the first call allocates AdamW's state
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(1)
    split = bench_train.split_time(prof.events(), cuda=False, wall_ms=1.0)
    # Reference: torch's own aggregation of the same events, and the categories' fragments applied to its keys.
    averages = prof.key_averages()
    reference_total = sum(a.self_cpu_time_total for a in averages) / 1000
    assert split["total_ms"] == pytest.approx(reference_total, rel=1e-6)
    matmul = sum(a.self_cpu_time_total for a in averages if a.key in ("aten::mm", "aten::addmm")) / 1000
    assert split["ms"]["matmul"] >= matmul > 0
    for category in ("attention", "layernorm", "optimizer", "rest"):
        assert split["ms"][category] > 0, category   # SDPA, F.layer_norm, AdamW and the rest all ran
    assert sum(split["share"].values()) == pytest.approx(1.0)


def test_memory_estimate_args_follow_the_autocast_the_loop_uses():
    cpu = torch.device("cpu")
    assert bench_train.memory_estimate_args(cpu, TrainConfig(dtype="float32"), compiled=False) == \
        dict(training=True, mixed_precision=False, fused_gelu=False)
    # bf16 asked for outright: CPU autocast is used, so activations are 16-bit; a compiled model fuses GELU.
    assert bench_train.memory_estimate_args(cpu, TrainConfig(dtype="bfloat16"), compiled=True) == \
        dict(training=True, mixed_precision=True, fused_gelu=True)


def test_generation_agreement_counts_equal_new_tokens_and_the_first_difference():
    prompt = torch.tensor([[5, 6], [7, 8]])
    reference = torch.cat([prompt, torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])], dim=1)
    assert bench_generate.agreement(reference.clone(), reference, 2) == \
        {"same_tokens": True, "share_equal": 1.0, "first_difference": None}
    other = reference.clone()
    other[1, 2 + 2:] = torch.tensor([9, 9])   # row 1 goes its own way from new token 2 on
    other[0, 2 + 3] = 0                       # row 0 differs at new token 3 only
    assert bench_generate.agreement(other, reference, 2) == \
        {"same_tokens": False, "share_equal": 5 / 8, "first_difference": 2}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_check_without_a_gpu_and_bad_budgets_are_one_line_errors(capsys):
    for argv, message in ((["--gpu-check"], "needs a CUDA GPU"),
                          (["--gpu-check", "--dry-run", "--stage-budget", "nope=3"], "STAGE=SECONDS"),
                          (["--gpu-check", "--dry-run", "--stage-budget", "resume=0"], "above 0"),
                          (["--dry-run"], "--gpu-check")):
        with pytest.raises(SystemExit) as stopped:
            bench_train.main(argv)
        assert stopped.value.code == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)


def _files(folder):
    """The names in the check's folder, which must be flat (files only), hold at most 8, and no unfinished .tmp file."""
    is_file = {entry.name: entry.is_file() for entry in folder.iterdir()}
    assert all(is_file.values()) and len(is_file) <= 8 and not any(n.endswith(".tmp") for n in is_file), is_file
    return set(is_file)


@pytest.mark.slow
@ON_GPU
def test_gpu_check_dry_run_writes_every_stage_in_order_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_AUTOTUNE_CANDIDATES", "3")   # what the check sets; restored after the test
    # Budgets scaled up: a busy 2-core CI machine must not time a stage out; the alarm itself is tested below.
    bench_train.main(["--gpu-check", "--dry-run", "--out", str(tmp_path), "--budget-scale", "4"])
    assert _files(tmp_path) == {"train_check.json", "train_check.md", "train_check_pytest.log",
                                "train_check_steps.png", "train_check_loss.png"}
    report = json.loads((tmp_path / "train_check.json").read_text())
    assert report["dry_run"] is True and report["finished"] is True
    assert [s["name"] for s in report["stages"]] == STAGES
    assert [s["status"] for s in report["stages"]] == ["ok"] * len(STAGES), [s.get("error") for s in report["stages"]]
    stages = {s["name"]: s["result"] for s in report["stages"]}

    for field in ("gpu", "driver", "cuda", "torch", "triton", "transformers", "numpy", "python"):
        assert isinstance(stages["machine"][field], str) and stages["machine"][field], field
    assert stages["machine"]["torch"] == torch.__version__ and stages["machine"]["matmul_tflops"] > 0
    tests = stages["tests"]   # on the CPU every GPU test outside chapter 5 is collected and skipped
    assert "--ignore=tests/test_ch05_kernels.py" in tests["command"]
    assert tests["counts"].get("skipped", 0) > 0 and not tests["counts"].get("failed") and tests["returncode"] == 0
    assert "test_ch05" not in (tmp_path / "train_check_pytest.log").read_text()

    for name, impl in (("step_triton", "triton"), ("step_torch", "torch"), ("step_eager", "triton")):
        step = stages[name]
        assert step["attention_impl"] == impl and step["compile"] is False and step["compiled"] is False, name
        assert step["ms_per_step"] > 0 and step["tokens_per_s"] > 0 and step["mfu"] is None, name   # no GPU peak
        assert step["estimated_memory_bytes"] > 0 and step["peak_memory_bytes"] is None, name
        assert step["estimate_memory_args"] == dict(training=True, mixed_precision=False, fused_gelu=False), name
        profile = step["profile"]
        assert set(profile["ms"]) == {"matmul", "attention", "layernorm", "optimizer", "rest"}, name
        assert sum(profile["ms"].values()) == pytest.approx(profile["total_ms"]) and profile["ms"]["matmul"] > 0

    resume = stages["resume"]
    stop, batch = resume["checkpoint_step"], resume["batch"]
    assert (stop, resume["steps"]) == (25, 50) and resume["saved_step"] == stop
    assert resume["resumed_steps"] == list(range(stop + 1, 51))
    # The position is (epoch, position) in chapter 2's epoch order: 25 batches of `batch` windows from the start.
    windows = resume["saved_position"]["num_items"]
    assert (resume["saved_position"]["epoch"], resume["saved_position"]["position"]) == \
        divmod(stop * batch, windows)
    assert resume["saved_position"] == resume["expected_position"]
    assert resume["same_batches_after_resume"] is True
    assert resume["batches_read"] == {"full": 50, "resumed": 25}
    # Bit-exact on a CPU, dropout on: no tolerance.
    assert resume["drop_rate"] > 0
    assert resume["losses_equal"] is True and resume["max_abs_loss_diff"] == 0.0
    assert resume["resumed_losses"] == resume["full_losses"] and resume["max_abs_weight_diff"] == 0.0
    assert resume["loss_falls"] is True and resume["last_loss"] < resume["first_loss"] - 1.0

    generation = stages["generation"]
    assert [(r["batch"], r["variant"].split()[0]) for r in generation["rows"]] == \
        [(1, "minigpt,"), (1, "transformers"), (16, "minigpt,"), (16, "transformers")]
    # fp32 on a CPU: transformers' GPT-2, an independent implementation, picks the very same greedy tokens.
    assert all(r["same_tokens"] and r["tokens_per_s"] > 0 for r in generation["rows"])

    targets = stages["targets"]["targets"]
    assert len(targets) == 2 + 3 + 2
    for target in targets:
        assert target["status"] in ("met", "missed", "n/a") and (target["status"] == "n/a") == (target["ratio"] is None)
    assert stages["plots"]["files"] == ["train_check_steps.png", "train_check_loss.png"]

    markdown = (tmp_path / "train_check.md").read_text()
    headings = ["DRY RUN", "## (a) Machine: ok", "## (b) GPU tests outside chapter 5: ok",
                "## (c) Training step: chapter 5", "## (c) Training step: torch's", "## (d) 50 steps",
                "## (e) Generation", "## Targets: ok", "## Plots: ok"]
    positions = [markdown.index(h) for h in headings]
    assert positions == sorted(positions)


@pytest.mark.slow
@ON_GPU
def test_gpu_check_records_a_failing_and_a_timed_out_stage_and_runs_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_AUTOTUNE_CANDIDATES", "3")

    def broken(check, result):
        result["progress"] = "started"
        raise RuntimeError("the Triton step broke on purpose")

    def quick_tests(check, result):   # the real pytest subprocess is checked above; here it would only cost time
        result["progress"] = "nothing run"
    monkeypatch.setattr(bench_train, "stage_step_triton", broken)
    monkeypatch.setattr(bench_train, "stage_tests", quick_tests)
    with pytest.raises(SystemExit) as stopped:
        bench_train.main(["--gpu-check", "--dry-run", "--out", str(tmp_path), "--budget-scale", "4",
                          "--stage-budget", "resume=1"])
    assert stopped.value.code == 1   # a stage that is not ok makes the exit code 1; the report is written anyway
    assert _files(tmp_path) == {"train_check.json", "train_check.md", "train_check_steps.png"}
    report = json.loads((tmp_path / "train_check.json").read_text())
    assert [s["name"] for s in report["stages"]] == STAGES
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["step_triton"]["status"] == "failed"
    assert stages["step_triton"]["error"] == "RuntimeError: the Triton step broke on purpose"
    assert stages["resume"]["status"] == "timed out" and stages["resume"]["seconds"] < 10
    for name in ("machine", "tests", "step_torch", "step_eager", "generation", "targets", "plots"):
        assert stages[name]["status"] == "ok", (name, stages[name].get("error"))
    targets = stages["targets"]["result"]["targets"]
    assert targets[0]["target"].startswith("minigpt's best step (step_eager)")   # the failed way is left out
    assert stages["plots"]["result"]["notes"] == ["no resume results: train_check_loss.png skipped"]
    markdown = (tmp_path / "train_check.md").read_text()
    assert "chapter 5's Triton kernels, torch.compile: failed" in markdown and "broke on purpose" in markdown
    assert "## (d) 50 steps, stopped at the checkpoint and resumed: timed out" in markdown
