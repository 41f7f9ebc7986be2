"""Chapter 6's benchmark: how long one full training step takes, in tokens/s and MFU, beside the memory estimate.

    python chapters/ch06_pretraining.py --preset gpt2-124m --bench-steps 30        # the usual way in (a GPU)
    python -m minigpt.bench_train --size tiny --batch-size 8 --context 128         # any size, straight from here
    python -m minigpt.bench_train --gpu-check --out DIR       # issue 19's bounded check for a GPU lent for minutes
    python -m minigpt.bench_train --gpu-check --dry-run --out DIR                  # the same at toy sizes, on a CPU

Read it in this order:
  1. TrainingStep, time_steps, benchmark   a step is forward, loss, backward, gradient clipping and AdamW, on random
     tokens: they cost the same FLOPs as text, so this measures the loop itself, not the data pipeline. The first
     `warmup` steps (compilation, autotuning, allocator growth) are not timed. Peak memory on a GPU is printed beside
     chapter 4's estimate_memory, called with the arguments that describe how train() trains (memory_estimate_args).
  2. profile_step                          one step under torch.profiler, its time split by kernel name into
     matmuls, attention, LayerNorm, optimizer and the rest (KERNEL_CATEGORIES).
  3. gpu_check                             issue 19's check, stage by stage (see the comment above it).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from tqdm import tqdm

from minigpt import bench_generate
from minigpt.backends import auto_impls
from minigpt.batches import WindowBatches
from minigpt.checkpoint import load_checkpoint, unwrap
from minigpt.cli import ArgumentParser, non_negative_int, positive_float, positive_int
from minigpt.data import GPTDataset, join_documents, load_stories
from minigpt.device import pick_device
from minigpt.files import save_figure
from minigpt.model import MODEL_SIZES, GPTConfig, GPTModel, estimate_memory, estimate_parameters, size_name
from minigpt.speed import (compile_model, device_peak_flops, first_call_or_eager, flops_per_token, format_mfu, mfu,
                           prepare_device)
from minigpt.tokenizer import gpt2_tiktoken_encoding
from minigpt.train import TrainConfig, autocast_context, forward_backward, make_optimizer, train

GIB = 2 ** 30


# --------------------------------------------------------------------------------------------- 1. a training step

def random_batches(vocab_size: int, batch_size: int, seq_len: int, device: torch.device, seed: int,
                   count: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` (inputs, targets) batches of random token ids below min(vocab_size, 50257), on `device`."""
    generator = torch.Generator().manual_seed(seed)
    rows = [torch.randint(0, min(vocab_size, 50257), (batch_size, seq_len + 1), generator=generator)
            for _ in range(count)]
    return [(b[:, :-1].contiguous().to(device), b[:, 1:].contiguous().to(device)) for b in rows]


class TrainingStep:
    """One full training step as train() takes it (forward, loss, backward, clipping, AdamW), on random tokens.

    step(i) trains on batch i (of four, in turn) and returns the loss as a tensor: nothing waits for the GPU, so
    Python queues the next step while the GPU works. With config.compile the first call compiles, and falls back to
    eager with a one-line warning if compiling fails (minigpt/speed.py); `compiled` says which one ran.
    """

    def __init__(self, model: nn.Module, batch_size: int, seq_len: int, config: TrainConfig):
        self.raw = unwrap(model)
        self.device = next(self.raw.parameters()).device
        self.batch_size, self.seq_len, self.config = batch_size, seq_len, config
        prepare_device(self.device)
        self.autocast = functools.partial(autocast_context, self.device, config.dtype)
        self.optimizer = make_optimizer(self.raw, config)
        self.model = compile_model(self.raw) if config.compile else self.raw
        vocab = self.raw.cfg.vocab_size if hasattr(self.raw, "cfg") else 50257
        self.batches = random_batches(vocab, batch_size, seq_len, self.device, config.seed)
        self.calls = 0

    @property
    def compiled(self) -> bool:
        return self.model is not self.raw

    def __call__(self, i: int) -> torch.Tensor:
        self.calls += 1
        if self.calls > 1:
            return self._run(self.model, i)
        loss, self.model = first_call_or_eager(lambda net: self._run(net, i), self.model, self.raw,
                                               lambda: self.optimizer.zero_grad(set_to_none=True))
        return loss

    def _run(self, net: nn.Module, i: int) -> torch.Tensor:
        batch = self.batches[i % len(self.batches)]
        loss = forward_backward(net, [batch], self.autocast, target_count=batch[1].numel(), device=self.device)
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.raw.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: TrainingStep, steps: int, warmup: int) -> dict:
    """Run `warmup` untimed steps, then time `steps` more; print and return the numbers (see _report)."""
    cuda = step.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(step.device)
    step.raw.train()
    start = time.perf_counter()
    for i in tqdm(range(warmup), desc="warm-up (not timed)", file=sys.stdout):
        step(i)
    _synchronize(step.device)
    warmup_s = time.perf_counter() - start
    t0 = time.perf_counter()
    for i in tqdm(range(steps), desc="timed steps", file=sys.stdout):
        step(warmup + i)
    _synchronize(step.device)
    seconds = (time.perf_counter() - t0) / steps
    result = _report(step, steps, seconds)
    result.update(warmup_s=warmup_s, compiled=step.compiled)
    return result


def benchmark(model: nn.Module, batch_size: int, seq_len: int, steps: int = 20, warmup: int = 5,
              config: TrainConfig | None = None) -> dict:
    """Time full training steps (forward, backward, clip, AdamW) on random tokens; print and return the numbers."""
    config = config or TrainConfig(max_steps=steps + warmup)
    return time_steps(TrainingStep(model, batch_size, seq_len, config), steps, warmup)


def memory_estimate_args(device: torch.device, config: TrainConfig, compiled: bool) -> dict:
    """The estimate_memory arguments that describe how train() trains on `device` (chapter 4's estimate).

    Under bf16 autocast (mixed_precision=True) activations and logits are 16-bit, and the weights are the fp32 master
    copy plus the 16-bit copies autocast makes for the matmuls and keeps for the backward: 4 + 2 bytes, as estimated.
    The estimate also counts 2 bytes per parameter for 16-bit gradients, which this loop does not keep (gradients
    land in fp32 .grad): about 0.25 GB too much for GPT-2 124M. Without autocast it is fp32 throughout
    (mixed_precision=False). fused_gelu is whether the model runs compiled: GELU written as a formula keeps three
    more 4·d-wide tensors per layer when it runs eagerly.
    """
    autocast = autocast_context(device, config.dtype)
    return dict(training=True, mixed_precision=isinstance(autocast, torch.autocast), fused_gelu=compiled)


def _report(step: TrainingStep, steps: int, seconds: float) -> dict:
    raw, device, cuda = step.raw, step.device, step.device.type == "cuda"
    batch_size, seq_len = step.batch_size, step.seq_len
    tokens_per_s = batch_size * seq_len / seconds
    fpt = flops_per_token(raw, seq_len)
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = device_peak_flops(device)
    utilisation = mfu(fpt, tokens_per_s, peak)
    result = {"device": device_name, "ms_per_step": 1000 * seconds, "tokens_per_s": tokens_per_s,
              "mfu": utilisation, "flops_per_token": fpt, "peak_flops": peak,
              "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None}
    if hasattr(raw, "cfg"):
        args = memory_estimate_args(device, step.config, step.compiled)
        result["estimate_memory_args"] = args
        result["estimated_memory_bytes"] = estimate_memory(raw.cfg, batch_size, seq_len, **args)["total"]
        if result["peak_memory_bytes"]:
            result["memory_ratio"] = result["peak_memory_bytes"] / result["estimated_memory_bytes"]
    print(f"benchmark on {device_name}: batch {batch_size} x {seq_len} tokens, {steps} timed steps")
    flops_note = f" (6N + 12·L·T·d = {fpt:,} FLOPs/token)" if fpt else ""
    print(f"  {result['ms_per_step']:.1f} ms/step, {tokens_per_s:,.0f} tokens/s, MFU {format_mfu(utilisation)}"
          f"{flops_note}")
    estimate = result.get("estimated_memory_bytes")
    measured = f"{result['peak_memory_bytes'] / GIB:.2f} GiB allocated at peak" if cuda else \
        "peak memory not measured on a CPU"
    print(f"  {measured}; chapter 4's estimate_memory says "
          + (f"{estimate / GIB:.2f} GiB" if estimate is not None else "nothing (not a GPTModel)"))
    return result


# --------------------------------------------------------------------------------------------- 2. where the time goes

# Lower-case fragments of kernel (or, on a CPU, op) names per category, tried in this order: the first category with
# a fragment in the name takes the kernel's time; a name that matches none (GELU and other elementwise kernels,
# embeddings, cross-entropy, copies, casts) is "rest". Attention comes first because FlashAttention's and the
# memory-efficient kernels' names also hold "cutlass", like matmuls'. "optimizer" is AdamW's fused kernel and the
# gradient clipping before it (both multi_tensor_apply kernels). Under torch.compile, Inductor names the Triton
# kernels it generates after the ops they fuse ("triton_per_fused_add_native_layer_norm_3"): a kernel fusing a
# LayerNorm with the residual add before it counts as LayerNorm. Chapter 5's kernels are _attn_fwd, _attn_bwd_dq,
# _attn_bwd_dkdv, _attn_bwd_delta and _layer_norm_fwd/_bwd.
KERNEL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "attention": ("attn", "attention", "flash", "fmha", "sdpa"),
    "layernorm": ("layer_norm", "layernorm"),
    "optimizer": ("adam", "multi_tensor_apply", "foreach", "optimizer"),
    "matmul": ("gemm", "xmma", "nvjet", "cublas", "cutlass", "wgmma", "aten::mm", "aten::addmm", "aten::bmm",
               "mmbackward"),
}
PROFILE_CATEGORIES = (*KERNEL_CATEGORIES, "rest")


def kernel_category(name: str) -> str:
    """The KERNEL_CATEGORIES entry a kernel or op name falls in, or "rest"."""
    lower = name.lower()
    for category, fragments in KERNEL_CATEGORIES.items():
        if any(fragment in lower for fragment in fragments):
            return category
    return "rest"


def event_category(event) -> str:
    """A profiler event's category: its own name's, else (CPU ops nest) that of the nearest enclosing op with one.

    So on a CPU the elementwise ops inside AdamW.step count as optimizer, and the copies inside chapter 5's attention
    op as attention. A CUDA kernel has no enclosing op in the profile: its own name decides.
    """
    while event is not None:
        category = kernel_category(event.name)
        if category != "rest":
            return category
        event = event.cpu_parent
    return "rest"


def split_time(events, cuda: bool, wall_ms: float) -> dict:
    """Sum profiler events' time per category: CUDA kernels' durations on a GPU, CPU ops' self time on a CPU.

    A CPU op's self time is its time minus that of the ops it called, so the sum over ops is the work done, counted
    once (over all threads). `busy` is the summed time over the step's wall time: on a GPU, the share of the step the
    GPU spent running kernels (one stream: kernels do not overlap); below 1 means the GPU waited for Python.
    """
    from torch.autograd import DeviceType
    wanted = DeviceType.CUDA if cuda else DeviceType.CPU
    totals = dict.fromkeys(PROFILE_CATEGORIES, 0.0)
    for event in events:
        if event.device_type == wanted:
            us = event.time_range.elapsed_us() if cuda else event.self_cpu_time_total
            totals[event_category(event)] += us / 1000
    total = sum(totals.values())
    return {"measure": "CUDA kernel time" if cuda else "CPU op self time", "wall_ms": wall_ms, "total_ms": total,
            "busy": total / wall_ms if wall_ms else None, "ms": totals,
            "share": {k: (v / total if total else None) for k, v in totals.items()}}


def profile_step(step: TrainingStep, index: int = 0) -> dict:
    """Run step(index) once under torch.profiler and split its time by KERNEL_CATEGORIES (see split_time)."""
    from torch.profiler import ProfilerActivity, profile
    cuda = step.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _synchronize(step.device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        step(index)
        _synchronize(step.device)
        wall_ms = (time.perf_counter() - start) * 1000
    return split_time(prof.events(), cuda, wall_ms)


# --------------------------------------------------------------------------------------------- 3. the GPU check
#
# Issue 19: one bounded command for a GPU lent for a few minutes, `python -m minigpt.bench_train --gpu-check --out DIR`
# (about 6.5 minutes on one H200). It is built on chapter 5's check (kernels/bench.py, issue 18) and uses its
# machinery: each stage runs under its own time budget, enforced with an alarm; the report (JSON and Markdown) is
# rewritten atomically after every stage, so whatever stops the run leaves the stages before it; a stage that raises
# is recorded with its error and the next one runs; all files go flat into DIR. The stages:
#   machine       (a) GPU, driver, CUDA and library versions, a bf16 matmul's TFLOP/s as the ceiling
#   tests         (b) the GPU tests outside chapter 5, in a subprocess with a time limit (log: train_check_pytest.log)
#   step_triton   (c) GPT-2 124M training steps with chapter 5's Triton kernels, torch.compile'd
#   step_torch        ... with torch's SDPA and F.layer_norm, torch.compile'd
#   step_eager        ... with the Triton kernels, eager: ms/step, tokens/s, MFU, peak memory / estimate, profile
#   resume        (d) 50 steps of train() on the bundled stories, checkpoint at 25, a stopped run resumed from it
#   generation    (e) minigpt's and transformers' generate with the KV cache, batch 1 and 16, bf16, tokens compared
#   targets           the issue's targets, met or missed, with the ratio
#   plots             train_check_steps.png and train_check_loss.png
# --dry-run runs every stage on the CPU at toy sizes (a tiny model, few steps, fp32, no compile); the numbers mean
# nothing, it checks the command. The exit code is 1 when a stage failed or timed out (a missed target is not a
# failure).

TRAIN_CHECK_JSON, TRAIN_CHECK_MD, TRAIN_CHECK_LOG = "train_check.json", "train_check.md", "train_check_pytest.log"
TRAIN_CHECK_PLOTS = {"steps": "train_check_steps.png", "resume": "train_check_loss.png"}
TRAIN_CHECK_STAGES = ("machine", "tests", "step_triton", "step_torch", "step_eager", "resume", "generation", "targets",
                      "plots")
# Seconds per stage on an H200: 395 in all, so that Python's start and the imports fit in 7 minutes. The compiled
# steps are mostly compile time (Inductor, then the Triton kernels' autotuning at 3 candidates per kernel); resume is
# mostly four checkpoints of GPT-2 124M with its AdamW state (1.5 GB each) written and read.
TRAIN_CHECK_BUDGETS = {"machine": 25, "tests": 60, "step_triton": 100, "step_torch": 70, "step_eager": 25,
                       "resume": 60, "generation": 40, "targets": 5, "plots": 10}
TRAIN_CHECK_TESTS = ["-m", "pytest", "-m", "gpu", "tests", "--ignore=tests/test_ch05_kernels.py", "-q", "-x"]
# The three ways of (c): (attention and LayerNorm implementation, torch.compile).
TRAIN_CHECK_WAYS = {"step_triton": ("triton", True), "step_torch": ("torch", True), "step_eager": ("triton", False)}
MINIGPT_WAYS = ("step_triton", "step_eager")   # the ways that use minigpt's own (chapter 5's) kernels
MFU_TARGET, MEMORY_TOLERANCE = 0.45, 0.10

# GPT-2 124M as nanoGPT trains it: vocabulary padded to 50,304 (a multiple of 64), tied head, no dropout.
_GPT2_124M = dict(size="gpt2", vocab_size=50304, tie_weights=True, drop_rate=0.0)
_TINY = dict(size="tiny", vocab_size=50304, tie_weights=True, drop_rate=0.0, n_layers=1, context_length=16)
TRAIN_CHECK_SIZES = dict(
    matmul=8192, copy_elements=2 ** 29,
    step=dict(model=_GPT2_124M, batch=16, context=1024, steps=10, warmup=3, dtype="auto", compile=True),
    resume=dict(model=_GPT2_124M, batch=4, context=1024, stride=512, steps=50, checkpoint=25, learning_rate=6e-4,
                warmup_steps=5, dtype="auto"),
    generation=dict(model={}, dtype="bf16", batches=[1, 16], prompt=64, new_tokens=128, repeats=3))
TRAIN_CHECK_DRY_SIZES = dict(
    matmul=128, copy_elements=2 ** 16,
    # Chapter 5's kernels run in Triton's interpreter here (numpy, one program at a time): one layer, 16 tokens.
    step=dict(model=_TINY, batch=1, context=16, steps=1, warmup=1, dtype="float32", compile=False),
    # Dropout on, so that the CPU's bit-exact resume also covers the random state that draws the masks.
    resume=dict(model=dict(_TINY, drop_rate=0.1, emb_dim=64), batch=2, context=16, stride=8, steps=50, checkpoint=25,
                learning_rate=3e-3, warmup_steps=5, dtype="float32"),
    generation=dict(model=dict(n_layers=2, emb_dim=64, n_heads=2, context_length=64), dtype="fp32", batches=[1, 16],
                    prompt=8, new_tokens=4, repeats=1))


def gpu_check(out_dir: Path, dry_run: bool = False, budget_scale: float = 1.0,
              stage_budgets: dict[str, float] | None = None) -> dict:
    """Run the stages of TRAIN_CHECK_STAGES in order (see the comment above), writing the report after each."""
    if dry_run and not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before chapter 5's kernels are imported (by the stages)
    from kernels import bench   # here, not at the top: chapter 6 imports this module and needs no kernels/
    os.environ.setdefault("MINIGPT_AUTOTUNE_CANDIDATES", bench.GPU_CHECK_AUTOTUNE_CANDIDATES)
    budgets = {name: seconds * budget_scale for name, seconds in TRAIN_CHECK_BUDGETS.items()}
    budgets.update(stage_budgets or {})
    check = bench.GpuCheck(out_dir, dry_run, budgets, title="minigpt.bench_train --gpu-check (issue 19)",
                           sizes=TRAIN_CHECK_DRY_SIZES if dry_run else TRAIN_CHECK_SIZES,
                           files=(TRAIN_CHECK_JSON, TRAIN_CHECK_MD), markdown=train_check_markdown)
    print(f"Training GPU check{' (DRY RUN: toy sizes, numbers meaningless)' if dry_run else ''} on {check.device}, "
          f"writing to {out_dir}/; budgets {budgets}")
    start, threads = time.monotonic(), torch.get_num_threads()
    stages = {"machine": stage_machine, "tests": stage_tests, "step_triton": stage_step_triton,
              "step_torch": stage_step_torch, "step_eager": stage_step_eager, "resume": stage_resume,
              "generation": stage_generation, "targets": stage_targets, "plots": stage_plots}  # now: tests replace some
    if check.device == "cpu":
        torch.set_num_threads(1)   # on a shared, busy CPU one thread is several times faster than two that wait
    try:
        for name in TRAIN_CHECK_STAGES:
            check.run(name, stages[name])
    finally:
        torch.set_num_threads(threads)
    check.report.update(seconds=round(time.monotonic() - start, 1), finished=True)
    check.save()
    print(f"\nTraining GPU check done in {check.report['seconds']:.0f} s: "
          + ", ".join(f"{s['name']} {s['status']}" for s in check.report["stages"])
          + f"\nSaved {out_dir / TRAIN_CHECK_JSON} and {out_dir / TRAIN_CHECK_MD}")
    return check.report


def stage_machine(check, result: dict) -> None:
    """(a) Chapter 5's machine stage (GPU, driver, versions, matmul and copy ceilings), plus transformers' version."""
    from kernels import bench
    try:
        import transformers
        result["transformers"] = transformers.__version__
    except ImportError:
        result["transformers"] = "not installed"
    bench.stage_machine(check, result)


def stage_tests(check, result: dict) -> None:
    """(b) The GPU tests of every chapter but 5 (whose own check runs those), in a subprocess with a time limit."""
    from kernels import bench
    bench.run_pytest(check, result, TRAIN_CHECK_TESTS, TRAIN_CHECK_LOG)


# ---- (c) training steps, three ways

def _model_config(spec: dict, **overrides) -> GPTConfig:
    spec = dict(spec, **overrides)
    return GPTConfig.preset(spec.pop("size"), **spec)


def stage_step(check, result: dict, impl: str, compiled: bool) -> None:
    """(c) Time training steps of one way (kernels, compile or not), then profile one more step."""
    sizes, device = check.sizes["step"], torch.device(check.device)
    cfg = _model_config(sizes["model"], attention_impl=impl, layernorm_impl=impl)
    compiled = compiled and sizes["compile"]
    result.update(model=f"{sizes['model']['size']}, {estimate_parameters(cfg) / 1e6:.1f}M parameters",
                  attention_impl=impl, layernorm_impl=impl, compile=compiled, batch=sizes["batch"],
                  context=sizes["context"], steps=sizes["steps"], warmup=sizes["warmup"], dtype=sizes["dtype"])
    torch.manual_seed(0)
    model = GPTModel(cfg).to(device)
    result["progress"] = "model built"
    result["allocated_before_bytes"] = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    config = TrainConfig(max_steps=sizes["steps"] + sizes["warmup"] + 1, compile=compiled, dtype=sizes["dtype"])
    try:
        step = TrainingStep(model, sizes["batch"], sizes["context"], config)
        result.update(time_steps(step, sizes["steps"], sizes["warmup"]))
        result["progress"] = f"{sizes['steps']} steps timed"
        result["profile"] = profile_step(step, index=sizes["warmup"] + sizes["steps"])
        result["progress"] += ", one step profiled"
    finally:
        del model
        if compiled:
            torch._dynamo.reset()   # drop the compiled graphs (and the weights they hold) before the next way


def stage_step_triton(check, result: dict) -> None:
    """(c) Chapter 5's Triton attention and LayerNorm, torch.compile'd."""
    stage_step(check, result, *TRAIN_CHECK_WAYS["step_triton"])


def stage_step_torch(check, result: dict) -> None:
    """(c) torch's SDPA and F.layer_norm, torch.compile'd: the bar minigpt's kernels are held to."""
    stage_step(check, result, *TRAIN_CHECK_WAYS["step_torch"])


def stage_step_eager(check, result: dict) -> None:
    """(c) Chapter 5's kernels without torch.compile."""
    stage_step(check, result, *TRAIN_CHECK_WAYS["step_eager"])


# ---- (d) a real run, stopped and resumed

class SimulatedCrash(Exception):
    """Raised by RecordedBatches to stop a training run after a given number of batches, as a killed run stops."""


def _fingerprint(inputs: torch.Tensor) -> str:
    return hashlib.sha1(inputs.cpu().numpy().tobytes()).hexdigest()[:16]


class RecordedBatches:
    """Training data that notes a fingerprint of every batch it hands out, and can stop the run after `crash_after`
    batches. Its position (state_dict/load_state_dict) is the wrapped WindowBatches': train() saves and resumes it."""

    def __init__(self, data: WindowBatches, crash_after: int | None = None):
        self.data, self.crash_after, self.seen = data, crash_after, []

    def __iter__(self):
        for inputs, targets in self.data:
            if len(self.seen) == self.crash_after:
                raise SimulatedCrash(f"stopped after {self.crash_after} batches")
            self.seen.append(_fingerprint(inputs))
            yield inputs, targets

    def state_dict(self) -> dict:
        return self.data.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.data.load_state_dict(state)


def _stories_dataset(context: int, stride: int) -> tuple[GPTDataset, int]:
    """The bundled stories as GPT-2 token ids, in windows of `context` tokens every `stride`; and the token count."""
    ids = join_documents(load_stories(), gpt2_tiktoken_encoding())
    return GPTDataset(ids, context, stride), len(ids)


def _resume_run(check, sizes: dict, dataset: GPTDataset, folder: Path, model_seed: int, crash_after: int | None = None,
                resume: Path | None = None) -> tuple[dict | None, GPTModel, RecordedBatches]:
    """One call of train(): (history or None if it was stopped, the model, the data with what it handed out)."""
    impl = auto_impls(torch.device(check.device))[0]
    torch.manual_seed(model_seed)
    model = GPTModel(_model_config(sizes["model"], attention_impl=impl, layernorm_impl=impl)).to(check.device)
    data = RecordedBatches(WindowBatches(dataset, sizes["batch"], seed=7), crash_after)
    config = TrainConfig(max_steps=sizes["steps"], warmup_steps=sizes["warmup_steps"],
                         learning_rate=sizes["learning_rate"], min_lr=sizes["learning_rate"] / 10, eval_every=0,
                         checkpoint_every=sizes["checkpoint"], out_dir=str(folder), dtype=sizes["dtype"],
                         progress=False, seed=1337)
    try:
        history = train(model, data, None, config, resume=resume)
    except SimulatedCrash:
        history = None
    return history, model, data


def _expected_position(dataset: GPTDataset, batch: int, batches_taken: int) -> dict:
    """Where a fresh stream of the same windows is after `batches_taken` batches: the reference for the checkpoint."""
    stream = WindowBatches(dataset, batch, seed=7)
    iterator = iter(stream)
    for _ in range(batches_taken):
        next(iterator)
    return stream.state_dict()


def stage_resume(check, result: dict) -> None:
    """(d) Train 50 steps with a checkpoint at 25; stop a second run right after that checkpoint and resume it."""
    sizes = check.sizes["resume"]
    dataset, n_tokens = _stories_dataset(sizes["context"], sizes["stride"])
    stop = sizes["checkpoint"]
    result.update(data=f"the bundled stories, {n_tokens:,} GPT-2 tokens in {len(dataset)} windows of "
                       f"{sizes['context']} every {sizes['stride']}", batch=sizes["batch"], steps=sizes["steps"],
                  checkpoint_step=stop, drop_rate=sizes["model"]["drop_rate"],
                  attention_impl=auto_impls(torch.device(check.device))[0], compile=False)
    with tempfile.TemporaryDirectory() as tmp:
        full, full_model, full_data = _resume_run(check, sizes, dataset, Path(tmp) / "full", model_seed=0)
        result.update(full_losses=full["train_loss"], progress="uninterrupted run")
        stopped, _, _ = _resume_run(check, sizes, dataset, Path(tmp) / "stopped", model_seed=0, crash_after=stop)
        if stopped is not None:
            raise RuntimeError(f"the run meant to stop after {stop} batches finished")
        checkpoint = load_checkpoint(Path(tmp) / "stopped" / "ckpt.pt")
        result.update(saved_step=checkpoint["step"], saved_position=checkpoint["data_state"][0]["data"],
                      expected_position=_expected_position(dataset, sizes["batch"], stop),
                      progress="uninterrupted run, stopped run")
        del checkpoint
        # A different initialisation: everything the resumed run computes must come from the checkpoint.
        resumed, resumed_model, resumed_data = _resume_run(check, sizes, dataset, Path(tmp) / "stopped", model_seed=1,
                                                           resume=Path(tmp) / "stopped" / "ckpt.pt")
        result.update(_compare_runs(full, full_model, full_data, resumed, resumed_model, resumed_data, stop))
        result["progress"] = "uninterrupted run, stopped run, resumed run"


def _compare_runs(full: dict, full_model: GPTModel, full_data: RecordedBatches, resumed: dict,
                  resumed_model: GPTModel, resumed_data: RecordedBatches, stop: int) -> dict:
    """What the resumed run did beside the uninterrupted one: steps, batches, losses after `stop`, final weights."""
    after = list(zip(full["train_loss"][stop:], resumed["train_loss"][stop:]))
    weights = max(float((a.float() - b.float()).abs().max()) for a, b in
                  zip(full_model.state_dict().values(), resumed_model.state_dict().values()))
    losses = full["train_loss"]
    return dict(resumed_losses=resumed["train_loss"], resumed_steps=resumed["step"][stop:],
                same_batches_after_resume=resumed_data.seen == full_data.seen[stop:],
                batches_read=dict(full=len(full_data.seen), resumed=len(resumed_data.seen)),
                losses_equal=all(a == b for a, b in after),
                max_abs_loss_diff=max(abs(a - b) for a, b in after),
                max_abs_weight_diff=weights, first_loss=losses[0], loss_at_checkpoint=losses[stop - 1],
                last_loss=losses[-1], loss_falls=losses[-1] < losses[stop - 1] < losses[0])


# ---- (e) generation

def stage_generation(check, result: dict) -> None:
    """(e) minigpt's generate with the KV cache beside transformers', same random weights of GPT-2's shapes, greedy."""
    sizes, device = check.sizes["generation"], torch.device(check.device)
    dtype = bench_generate.DTYPES[sizes["dtype"]]
    model, what = bench_generate.build_model(None, dtype, device, seed=0, **sizes["model"])
    hf = bench_generate.transformers_twin(model, dtype, device)
    if hf is None:
        raise RuntimeError("transformers is not installed: nothing to compare minigpt's generate with")
    import transformers
    result.update(model=what, dtype=sizes["dtype"], prompt=sizes["prompt"], new_tokens=sizes["new_tokens"],
                  repeats=sizes["repeats"], transformers=transformers.__version__,
                  transformers_attention=getattr(hf.config, "_attn_implementation", None), rows=[])
    for batch in sizes["batches"]:
        result["rows"] += bench_generate.compare(model, hf, batch, sizes["prompt"], sizes["new_tokens"],
                                                 sizes["repeats"], seed=0, cache_only=True)
        bench_generate.print_rows([row for row in result["rows"] if row["batch"] == batch])
        result["progress"] = "batch " + ", ".join(str(b) for b in sizes["batches"][:sizes["batches"].index(batch) + 1])


# ---- targets and plots

def _target(name: str, ratio: float | None, wanted: str, ok: Callable[[float], bool]) -> dict:
    status = "n/a" if ratio is None else "met" if ok(ratio) else "missed"
    return dict(target=name, ratio=ratio, wanted=wanted, status=status)


def training_targets(ways: dict[str, dict]) -> list[dict]:
    """Step time, MFU and memory targets from the (c) stages' results that exist (name -> result)."""
    def ms(name):
        return ways.get(name, {}).get("ms_per_step")
    mine = [name for name in MINIGPT_WAYS if ms(name)]
    best = min(mine, key=ms) if mine else None
    speed = ms("step_torch") / ms(best) if best and ms("step_torch") else None
    utilisation = ways[best].get("mfu") if best else None
    targets = [_target(f"minigpt's best step ({best or 'none'}) at least as fast as torch.compile with torch's "
                       f"kernels", speed, "torch ms / minigpt ms >= 1", lambda r: r >= 1.0),
               _target(f"MFU of minigpt's best step >= {MFU_TARGET:.0%}",
                       None if utilisation is None else utilisation / MFU_TARGET, "MFU / 45% >= 1",
                       lambda r: r >= 1.0)]
    for name, result in ways.items():
        targets.append(_target(f"{name}: peak memory within {MEMORY_TOLERANCE:.0%} of estimate_memory",
                               result.get("memory_ratio"), "measured / estimated in [0.90, 1.10]",
                               lambda r: abs(r - 1) <= MEMORY_TOLERANCE))
    return targets


def generation_targets(rows: list[dict]) -> list[dict]:
    """Batch 1: minigpt not slower than transformers; larger batches: faster (KV cache, tokens/s)."""
    targets = []
    for batch in sorted({row["batch"] for row in rows}):
        speeds = {row["variant"].split(",")[0].split()[0]: row["tokens_per_s"] for row in rows if row["batch"] == batch}
        ratio = speeds["minigpt"] / speeds["transformers"] if "transformers" in speeds else None
        if batch == 1:
            targets.append(_target("generation, batch 1: minigpt not slower than transformers", ratio,
                                   "minigpt / transformers tokens/s >= 1", lambda r: r >= 1.0))
        else:
            targets.append(_target(f"generation, batch {batch}: minigpt faster than transformers", ratio,
                                   "minigpt / transformers tokens/s > 1", lambda r: r > 1.0))
    return targets


def _results(check, names) -> dict[str, dict]:
    """name -> result of the stages among `names` that ran (whatever their status: a timed-out one keeps its rows)."""
    return {name: stage["result"] for name in names if (stage := check.stage(name)) is not None}


def stage_targets(check, result: dict) -> None:
    """The issue's targets, each met, missed or n/a (not measured), with the ratio; recorded, not tuned for."""
    generation = _results(check, ["generation"]).get("generation", {})
    result["targets"] = training_targets(_results(check, TRAIN_CHECK_WAYS)) + \
        generation_targets(generation.get("rows", []))


def _plot_steps(ways: dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [name for name, result in ways.items() if result.get("ms_per_step")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    left.bar(names, [ways[n]["ms_per_step"] for n in names], color="tab:blue")
    for i, name in enumerate(names):
        left.annotate(f"MFU {format_mfu(ways[name].get('mfu'))}", (i, ways[name]["ms_per_step"]), ha="center",
                      va="bottom", fontsize=9)
    left.set_ylabel("ms per training step")
    left.set_title(f"training step, {ways[names[0]]['model']} (lower is better)")
    profiled = [n for n in names if "profile" in ways[n]]
    bottoms = [0.0] * len(profiled)
    for category in PROFILE_CATEGORIES:
        values = [ways[n]["profile"]["ms"][category] for n in profiled]
        right.bar(profiled, values, bottom=bottoms, label=category)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    right.set_ylabel(f"ms of {ways[profiled[0]]['profile']['measure'] if profiled else 'kernel time'}")
    right.set_title("one profiled step, by kernel name")
    right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _plot_resume(resume: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    stop = resume["checkpoint_step"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    full = resume["full_losses"]
    ax.plot(range(1, len(full) + 1), full, color="tab:blue", lw=2, label="uninterrupted run")
    resumed = resume["resumed_losses"][stop:]
    ax.plot(range(stop + 1, stop + 1 + len(resumed)), resumed, "o", color="tab:orange", ms=3,
            label=f"resumed from the step-{stop} checkpoint (max |diff| {resume['max_abs_loss_diff']:.2g})")
    ax.axvline(stop, color="gray", ls=":", label="checkpoint")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats per token)")
    ax.set_title("train(): a run stopped at its checkpoint and resumed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def stage_plots(check, result: dict) -> None:
    """At most two PNGs, from whatever the step and resume stages finished."""
    from kernels.bench import start_plots
    if not start_plots(result):
        return
    ways = _results(check, TRAIN_CHECK_WAYS)
    resume = _results(check, ["resume"]).get("resume", {})
    plots = (("steps", any(r.get("ms_per_step") for r in ways.values()), lambda p: _plot_steps(ways, p)),
             ("resume", "resumed_losses" in resume, lambda p: _plot_resume(resume, p)))
    for key, ready, plot in plots:
        if not ready:
            result["notes"].append(f"no {key} results: {TRAIN_CHECK_PLOTS[key]} skipped")
            continue
        plot(check.out_dir / TRAIN_CHECK_PLOTS[key])
        result["files"].append(TRAIN_CHECK_PLOTS[key])
        result["progress"] = ", ".join(result["files"])


# ---- the Markdown report

def _table(header: list[str], rows: list[list[str]]) -> str:
    from kernels.bench import _markdown_table   # chapter 5's report helpers (imported when a report is written)
    return _markdown_table(header, rows)


def _num(x) -> str:
    from kernels.bench import _num
    return _num(x)


def _gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / GIB:.2f} GiB"


def _md_machine(result: dict) -> list[str]:
    keys = ("gpu", "driver", "cuda", "torch", "triton", "transformers", "numpy", "python", "compute_capability",
            "sm_count", "memory_gib")
    rows = [[key, _num(result[key])] for key in keys if key in result]
    if "matmul_tflops" in result:
        rows.append([f"matmul {result['matmul']} (ceiling)", f"{_num(result['matmul_tflops'])} TFLOP/s"])
    return [_table(["", "value"], rows), ""]


def _md_tests(result: dict) -> list[str]:
    counts = ", ".join(f"{v} {k}" for k, v in result.get("counts", {}).items()) or "no counts"
    return [f"`{result['command']}` (time limit {result['time_limit_s']:g} s): {counts}; exit code "
            f"{result.get('returncode')}; full output in `{result.get('log')}`.", "", "```text",
            result.get("tail", "").rstrip()[-2000:], "```", ""]


def _md_profile(profile: dict) -> list[str]:
    shares = ["n/a" if profile["share"][c] is None else f"{profile['share'][c]:.0%}" for c in PROFILE_CATEGORIES]
    return [f"One profiled step, {profile['measure']} by kernel name ({profile['total_ms']:.1f} ms in a "
            f"{profile['wall_ms']:.1f} ms step):", "",
            _table(["", *PROFILE_CATEGORIES], [["ms", *(_num(profile["ms"][c]) for c in PROFILE_CATEGORIES)],
                                               ["share", *shares]]), ""]


def _md_step(result: dict) -> list[str]:
    estimate_args = ", ".join(f"{k}={v}" for k, v in result.get("estimate_memory_args", {}).items())
    lines = [f"{result['model']}; attention {result['attention_impl']}, LayerNorm {result['layernorm_impl']}, "
             f"torch.compile {'on' if result['compile'] else 'off'} (ran compiled: {result['compiled']}), "
             f"batch {result['batch']} x {result['context']}, dtype {result['dtype']}; {result['steps']} timed steps "
             f"after {result['warmup']} untimed ({result['warmup_s']:.1f} s, compilation included).", "",
             _table(["ms/step", "tokens/s", "MFU", "peak memory", "estimate_memory", "measured / estimate"],
                    [[_num(result["ms_per_step"]), _num(result["tokens_per_s"]), format_mfu(result["mfu"]),
                      _gib(result["peak_memory_bytes"]), _gib(result.get("estimated_memory_bytes")),
                      _num(result.get("memory_ratio"))]]), "",
             f"Estimate: estimate_memory(cfg, batch, context, {estimate_args}) (see "
             f"minigpt.bench_train.memory_estimate_args); allocated when the model was built (its weights and anything "
             f"an earlier stage left): {_gib(result.get('allocated_before_bytes'))}.", ""]
    return lines + (_md_profile(result["profile"]) if "profile" in result else [])


def _md_resume(result: dict) -> list[str]:
    lines = [f"train() on {result['data']}, batch {result['batch']}, {result['steps']} steps, checkpoint every "
             f"{result['checkpoint_step']}, attention {result['attention_impl']}, dropout {result['drop_rate']}, "
             "eager.", ""]
    if "resumed_losses" not in result:
        return lines
    rows = [["loss: first, at the checkpoint, last", f"{result['first_loss']:.4f}, "
             f"{result['loss_at_checkpoint']:.4f}, {result['last_loss']:.4f} (falls: {result['loss_falls']})"],
            ["checkpoint step of the stopped run", str(result["saved_step"])],
            ["data position saved / of a fresh stream after as many batches",
             f"{result['saved_position']} / {result['expected_position']}"],
            ["resumed run's steps", f"{result['resumed_steps'][0]} to {result['resumed_steps'][-1]}"],
            ["resumed run read the uninterrupted run's batches after the checkpoint",
             str(result["same_batches_after_resume"])],
            ["losses after the checkpoint equal", str(result["losses_equal"])],
            ["max abs loss difference", _num(result["max_abs_loss_diff"])],
            ["max abs final weight difference", _num(result["max_abs_weight_diff"])]]
    return lines + [_table(["", "value"], rows), ""]


def _md_generation(result: dict) -> list[str]:
    rows = [[str(r["batch"]), r["variant"], _num(r["tokens_per_s"]), f"{r['seconds']:.3f}",
             "yes" if r["same_tokens"] else "no", _num(r["share_equal"]), _num(r["first_difference"])]
            for r in result["rows"]]
    return [f"{result['model']}, {result['dtype']}, prompt {result['prompt']} random tokens, {result['new_tokens']} "
            f"new tokens, greedy, KV cache, best of {result['repeats']}; transformers' attention: "
            f"{result['transformers_attention']}. Tokens compared with minigpt's.", "",
            _table(["batch", "variant", "tokens/s", "seconds", "same tokens", "share equal",
                    "first difference (step)"], rows), ""]


def _md_targets(result: dict) -> list[str]:
    rows = [[t["target"], "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}", t["wanted"], t["status"]]
            for t in result["targets"]]
    return [_table(["target", "ratio", "wanted", "status"], rows), ""]


def _md_plots(result: dict) -> list[str]:
    return [f"- `{f}`" for f in result["files"]] + [f"- {n}" for n in result["notes"]] + [""]


# stage -> (title, the result key its section needs: a stage stopped before it has only its error, renderer)
_MD_STAGES = {"machine": ("(a) Machine", "python", _md_machine),
              "tests": ("(b) GPU tests outside chapter 5", "command", _md_tests),
              "step_triton": ("(c) Training step: chapter 5's Triton kernels, torch.compile", "ms_per_step", _md_step),
              "step_torch": ("(c) Training step: torch's SDPA and F.layer_norm, torch.compile", "ms_per_step",
                             _md_step),
              "step_eager": ("(c) Training step: chapter 5's Triton kernels, eager", "ms_per_step", _md_step),
              "resume": ("(d) 50 steps, stopped at the checkpoint and resumed", "full_losses", _md_resume),
              "generation": ("(e) Generation, minigpt vs transformers", "rows", _md_generation),
              "targets": ("Targets", "targets", _md_targets),
              "plots": ("Plots", "files", _md_plots)}


def _md_stage(stage: dict) -> list[str]:
    from kernels.bench import stage_heading
    title, needs, render = _MD_STAGES.get(stage["name"], (stage["name"], None, None))
    lines = stage_heading(stage, title)
    return lines + (render(stage["result"]) if render and needs in stage["result"] else [])


def train_check_markdown(report: dict) -> str:
    """The report as Markdown: what ran where, a table of stages, then a section per stage."""
    lines = ["# Training GPU check (issue 19)", ""]
    if report["dry_run"]:
        lines += ["**DRY RUN**: toy sizes on the CPU (a tiny model, few steps, fp32, one thread, no torch.compile even "
                  "where a title says so, chapter 5's kernels in Triton's interpreter); the numbers mean nothing, the "
                  "run only checks the command.", ""]
    lines += [f"`python -m minigpt.bench_train --gpu-check` on {report['device']}, started {report['started']}"
              + (f", {report['seconds']:.0f} s in all." if report.get("seconds") is not None else
                 " (not finished: the stages below are those done so far)."), "",
              _table(["stage", "status", "seconds", "budget"],
                     [[s["name"], s["status"], _num(s["seconds"]), f"{s['budget_s']:g}"] for s in report["stages"]]),
              ""]
    for stage in report["stages"]:
        lines += _md_stage(stage)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- command line

def model_size(text: str) -> str:
    """argparse type: a size from chapter 4's table, or an alias."""
    if size_name(text) is None:
        raise argparse.ArgumentTypeError(f"unknown size {text!r}: one of {', '.join(MODEL_SIZES)} or an alias such "
                                         f"as 124M")
    return text


def stage_budget(text: str) -> tuple[str, float]:
    """argparse type: STAGE=SECONDS, a stage of the GPU check and its time budget."""
    name, sep, seconds = text.partition("=")
    if name not in TRAIN_CHECK_STAGES or not sep:
        raise argparse.ArgumentTypeError(f"expected STAGE=SECONDS with STAGE one of {', '.join(TRAIN_CHECK_STAGES)}, "
                                         f"got {text!r}")
    return name, positive_float(seconds)


def main(argv: list[str] | None = None) -> dict:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=model_size, default="tiny", help=f"a model size: {', '.join(MODEL_SIZES)} "
                        f"(default tiny)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--context", type=positive_int, help="tokens per window (default: the size's context length)")
    parser.add_argument("--steps", type=positive_int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu or cuda")
    check = parser.add_argument_group("the GPU check (issue 19; the options above do not apply to it)")
    check.add_argument("--gpu-check", action="store_true",
                       help="the bounded check for a GPU machine (about 6.5 minutes on an H200): machine, GPU tests, "
                            "GPT-2 124M steps three ways, a resumed run, generation, targets, plots; the report "
                            f"({TRAIN_CHECK_JSON}, {TRAIN_CHECK_MD}) rewritten in --out after every stage")
    check.add_argument("--dry-run", action="store_true", help="--gpu-check at toy sizes on the CPU (1-2 minutes)")
    check.add_argument("--out", type=Path, default=Path("out/train_check"), help="--gpu-check's folder")
    check.add_argument("--budget-scale", type=positive_float, default=1.0,
                       help="--gpu-check: multiply every stage's time budget by this")
    check.add_argument("--stage-budget", type=stage_budget, action="append", default=[], metavar="STAGE=SECONDS",
                       help=f"--gpu-check: one stage's budget ({', '.join(TRAIN_CHECK_STAGES)}); repeatable")
    args = parser.parse_args(argv)
    if args.dry_run and not args.gpu_check:
        parser.error("--dry-run belongs to --gpu-check")
    if args.gpu_check:
        if not args.dry_run and not torch.cuda.is_available():
            parser.error("--gpu-check needs a CUDA GPU and none is visible here (--gpu-check --dry-run runs it on "
                         "the CPU at toy sizes)")
        report = gpu_check(args.out, args.dry_run, args.budget_scale, dict(args.stage_budget))
        if any(stage["status"] != "ok" for stage in report["stages"]):
            raise SystemExit(1)   # the report is written all the same
        return report
    try:
        device = pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    overrides = {"context_length": args.context} if args.context else {}
    cfg = GPTConfig.preset(args.size, drop_rate=0.0, **overrides)
    model = GPTModel(cfg).to(device)
    config = TrainConfig(max_steps=args.steps + args.warmup, compile=args.compile)
    return benchmark(model, args.batch_size, cfg.context_length, args.steps, args.warmup, config)


if __name__ == "__main__":
    main()
