"""Chapter 6: the training loop — schedule, optimizer groups, accumulation, exact resume, checkpoints, DDP.

All on CPU in float32 with tiny models, so a run is repeatable bit for bit; the DDP test starts two processes
with the gloo backend.
"""
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from minigpt.data import GPTDataset, create_dataloader
from minigpt.model import GPTConfig, GPTModel
from tests._impl import load_impl

train_mod = load_impl("minigpt.train")
batches = load_impl("minigpt.batches")
ckpt = load_impl("minigpt.checkpoint")
speed = load_impl("minigpt.speed")
bench_train = load_impl("minigpt.bench_train")
loading = load_impl("minigpt.loading")

VOCAB = 97


def tiny_config(**overrides) -> GPTConfig:
    base = dict(vocab_size=VOCAB, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    return GPTConfig(**{**base, **overrides})


def tiny_model(seed: int = 0, **overrides) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(tiny_config(**overrides))


def random_ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed))


def quiet_config(tmp_path, **overrides):
    base = dict(max_steps=8, warmup_steps=2, learning_rate=3e-3, min_lr=3e-4, eval_every=4, eval_batches=2,
                checkpoint_every=0, out_dir=str(tmp_path), progress=False, seed=7)
    return train_mod.TrainConfig(**{**base, **overrides})


# --------------------------------------------------------------------------------------------- schedule

def test_learning_rate_is_linear_warmup_then_cosine_decay_to_min_lr():
    max_lr, min_lr, warmup, total = 6e-4, 6e-5, 10, 110
    got = np.array([train_mod.learning_rate(s, max_lr, min_lr, warmup, total) for s in range(total + 5)])
    # Reference: the schedule's formula evaluated in float64 with numpy, step by step.
    steps = np.arange(total + 5, dtype=np.float64)
    progress = np.clip((steps - warmup) / (total - warmup), 0.0, 1.0)
    cosine = min_lr + 0.5 * (1 + np.cos(np.pi * progress)) * (max_lr - min_lr)
    expected = np.where(steps < warmup, max_lr * (steps + 1) / warmup, cosine)
    # Both are float64 evaluations of the same expression; 1e-15 relative allows for a different operation order.
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    # Landmarks a reader can check by hand.
    assert got[0] == pytest.approx(max_lr / warmup)
    assert got[warmup - 1] == pytest.approx(max_lr) and got[warmup] == pytest.approx(max_lr)
    assert got[warmup + (total - warmup) // 2] == pytest.approx((max_lr + min_lr) / 2)
    assert got[total] == pytest.approx(min_lr) and got[-1] == pytest.approx(min_lr)
    assert np.all(np.diff(got[warmup:]) <= 0), "after warmup the rate only decreases"


# --------------------------------------------------------------------------------------------- optimizer

@pytest.mark.parametrize("tie_weights", [False, True])
def test_weight_decay_applies_to_linear_weights_only(tie_weights):
    model = tiny_model(tie_weights=tie_weights, qkv_bias=True)
    model.trf_blocks[0].norm1.scale.requires_grad_(False)   # frozen parameters are not optimised at all
    decay_group, no_decay_group = train_mod.param_groups(model, weight_decay=0.1)
    assert decay_group["weight_decay"] == 0.1 and no_decay_group["weight_decay"] == 0.0
    decayed = {id(p) for p in decay_group["params"]}
    not_decayed = {id(p) for p in no_decay_group["params"]}
    # Reference: built from module types, not from tensor shapes.
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    expected_decay = linear_weights - embeddings   # tied: the head's weight *is* the token embedding
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert decayed == expected_decay
    assert not_decayed == trainable - expected_decay
    assert len(decay_group["params"]) + len(no_decay_group["params"]) == len(trainable), "each parameter once"
    assert id(model.tok_emb.weight) in not_decayed and id(model.pos_emb.weight) in not_decayed
    assert id(model.trf_blocks[0].att.W_query.bias) in not_decayed
    assert (id(model.out_head.weight) in decayed) == (not tie_weights)
    assert id(model.trf_blocks[0].norm1.scale) not in decayed | not_decayed


# --------------------------------------------------------------------------------------------- accumulation

def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("with_ignored_targets", [False, True])
def test_accumulating_micro_batches_gives_the_gradient_of_one_big_batch(with_ignored_targets):
    torch.manual_seed(1)
    inputs = torch.randint(0, VOCAB, (8, 16))
    targets = torch.randint(0, VOCAB, (8, 16))
    if with_ignored_targets:
        # Uneven masking, as in instruction data: micro-batches hold different numbers of real targets, so a
        # mean of per-micro-batch means would weight tokens unequally.
        targets[0, :12] = -100
        targets[1, 3:] = -100
        targets[5, :1] = -100
    big = tiny_model(seed=2)
    # Reference: one batch, torch's cross-entropy mean over the non-ignored targets.
    F.cross_entropy(big(inputs).flatten(0, 1), targets.flatten(), ignore_index=-100).backward()
    accumulated = tiny_model(seed=2)
    micro = [(inputs[i:i + 2], targets[i:i + 2]) for i in range(0, 8, 2)]
    loss = float(train_mod.forward_backward(accumulated, micro))   # a 0-dim tensor (or a float)
    with torch.no_grad():
        expected_loss = F.cross_entropy(big(inputs).flatten(0, 1), targets.flatten(), ignore_index=-100).item()
    # float32: the big batch sums 128 token losses at once, the micro-batches in four partial sums; the
    # different summation order changes the last bits (relative 1e-7), far below 1e-5.
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for g_big, g_acc in zip(_grads(big), _grads(accumulated)):
        torch.testing.assert_close(g_acc, g_big, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------- exact resume

class CrashAfter:
    """Wraps training data and raises after `limit` batches: a run killed mid-way."""

    def __init__(self, data, limit: int):
        self.data, self.limit, self.count = data, limit, 0

    def __getattr__(self, name):   # state_dict, sampler, generator: whatever the wrapped data has
        return getattr(self.data, name)

    def __iter__(self):
        for batch in self.data:
            if self.count == self.limit:
                raise KeyboardInterrupt("simulated crash")
            self.count += 1
            yield batch


def _make_data(kind: str, ids: torch.Tensor):
    dataset = GPTDataset(ids, 16, 8)
    if kind == "windows":   # chapter 2's seeded epoch order, position saved by state_dict
        return batches.WindowBatches(dataset, batch_size=3, seed=11)
    if kind == "create_dataloader":   # chapter 2's DataLoader, shuffled by its own seeded generator
        return create_dataloader(ids, batch_size=3, max_length=16, stride=8, seed=11)
    # A DataLoader whose sampler orders each epoch by (seed, epoch): resumed by skipping batches.
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=11)
    return DataLoader(dataset, batch_size=3, sampler=sampler, drop_last=True)


@pytest.mark.parametrize("kind", ["windows", "create_dataloader", "distributed_sampler"])
def test_resumed_run_reproduces_the_uninterrupted_run_exactly(tmp_path, kind):
    ids, val_ids = random_ids(300, seed=3), random_ids(60, seed=4)
    val = batches.fixed_batches(GPTDataset(val_ids, 16, 16), 2, 2)
    # Dropout on: the resumed run must also restore the random state that draws the dropout masks.
    # 37 windows = 12 batches per epoch; the checkpoint at step 7 (14 batches) lies in the second epoch, so
    # resuming must also restore how that epoch was shuffled.
    config = dict(max_steps=10, grad_accum_steps=2, checkpoint_every=7, eval_every=5)
    full = train_mod.train(tiny_model(drop_rate=0.1), _make_data(kind, ids), val,
                           quiet_config(tmp_path / "full", **config))

    crashed_dir = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(tiny_model(drop_rate=0.1), CrashAfter(_make_data(kind, ids), limit=15), val,
                        quiet_config(crashed_dir, **config))
    assert ckpt.load_checkpoint(crashed_dir / "ckpt.pt")["step"] == 7
    # A different initialisation, to show that everything comes from the checkpoint.
    resumed_model = tiny_model(seed=99, drop_rate=0.1)
    resumed = train_mod.train(resumed_model, _make_data(kind, ids), val, quiet_config(crashed_dir, **config),
                              resume=crashed_dir / "ckpt.pt")

    # Same operations on the same numbers in the same order on a CPU: equal to the last bit, no tolerance.
    assert resumed["train_loss"] == full["train_loss"]
    assert resumed["val_loss"] == full["val_loss"] and resumed["val_step"] == [5, 10]
    final_full = ckpt.load_checkpoint(tmp_path / "full" / "ckpt.pt")["model"]
    for name, tensor in resumed_model.state_dict().items():
        assert torch.equal(tensor, final_full[name]), name


# --------------------------------------------------------------------------------------------- checkpoints

def test_checkpoint_holds_everything_and_loads_for_generation(tmp_path):
    model = tiny_model()
    data = batches.WindowBatches(GPTDataset(random_ids(200), 16, 16), batch_size=2)
    train_mod.train(model, data, None, quiet_config(tmp_path, max_steps=3, eval_every=0))
    checkpoint = ckpt.load_checkpoint(tmp_path / "ckpt.pt")
    for key in ("model", "optimizer", "step", "data_state", "rng", "model_config", "train_config", "tokenizer",
                "history"):
        assert key in checkpoint, key
    assert checkpoint["step"] == 3 and checkpoint["tokenizer"] == "gpt2"
    assert set(checkpoint["rng"][0]) >= {"python", "numpy", "torch"}
    assert checkpoint["model_config"] == tiny_config().__dict__
    reloaded, _ = loading.load_model(tmp_path / "ckpt.pt")
    assert not reloaded.training
    x = torch.randint(0, VOCAB, (2, 16))
    model.eval()
    torch.testing.assert_close(reloaded(x), model(x), rtol=0, atol=0)   # the very same weights


def test_failed_checkpoint_write_leaves_the_previous_file_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    ckpt.save_checkpoint(path, {"model": {"w": torch.ones(3)}, "step": 1})
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        # Write part of a file, then die (disk full, killed process); torch.save takes a path or a file object.
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as handle:
                handle.write(b"half a checkpoint")
        else:
            f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "step": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"], "no temporary file left behind"
    assert ckpt.load_checkpoint(path)["step"] == 1


def test_load_checkpoint_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a minigpt checkpoint"):
        ckpt.load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


# --------------------------------------------------------------------------------------------- learning

def test_loss_falls_far_below_chance_when_overfitting_a_tiny_text(tmp_path):
    pattern = torch.arange(17) * 5 % VOCAB           # a fixed 17-token sequence, repeated
    ids = pattern.repeat(20)
    data = batches.WindowBatches(GPTDataset(ids, 16, 4), batch_size=8, seed=0)
    history = train_mod.train(tiny_model(), data, None,
                              quiet_config(tmp_path, max_steps=40, warmup_steps=5, learning_rate=1e-2,
                                           min_lr=1e-3, eval_every=0))
    losses = history["train_loss"]
    # A fresh model spreads probability almost evenly (initial weights have std 0.02): loss ≈ ln(vocab).
    assert losses[0] == pytest.approx(math.log(VOCAB), abs=0.2)
    # The sequence is deterministic after its first token, so a model that learned it scores near 0.
    assert losses[-1] < 0.1 * losses[0], losses[-5:]


def test_losses_read_in_groups_are_the_losses_read_every_step(tmp_path):
    # The loop leaves losses on the device and reads them every log_every steps (a read waits for the GPU). Reading
    # less often must change nothing but when the numbers are looked at: same losses, one per step.
    ids, val_ids = random_ids(300, seed=3), random_ids(60, seed=4)
    val = batches.fixed_batches(GPTDataset(val_ids, 16, 16), 2, 2)
    histories = []
    for log_every in (1, 3):
        data = batches.WindowBatches(GPTDataset(ids, 16, 8), batch_size=3, seed=11)
        histories.append(train_mod.train(tiny_model(), data, val,
                                         quiet_config(tmp_path / str(log_every), max_steps=8, log_every=log_every)))
    every_step, grouped = histories
    assert len(grouped["train_loss"]) == len(grouped["step"]) == 8
    # Same operations in the same order on a CPU: equal to the last bit.
    assert grouped["train_loss"] == every_step["train_loss"]
    assert grouped["val_loss"] == every_step["val_loss"]


class NanAfter(nn.Module):
    """A GPTModel whose logits turn to NaN from its `bad_call`-th forward pass on (counting from 1)."""

    def __init__(self, gpt: GPTModel, bad_call: int):
        super().__init__()
        self.gpt, self.bad_call, self.calls = gpt, bad_call, 0

    def forward(self, inputs):
        self.calls += 1
        logits = self.gpt(inputs)
        return logits * float("nan") if self.calls >= self.bad_call else logits


def test_a_non_finite_loss_stops_training_and_names_its_step_even_when_read_late(tmp_path):
    # Step 3's loss is NaN but is only read with steps 1-4 (log_every=4): the error must still name step 3.
    data = batches.WindowBatches(GPTDataset(random_ids(300, seed=3), 16, 8), batch_size=3, seed=11)
    with pytest.raises(FloatingPointError, match="at step 3;"):
        train_mod.train(NanAfter(tiny_model(), bad_call=3), data, None,
                        quiet_config(tmp_path, max_steps=8, log_every=4, eval_every=0))


def test_compile_failure_falls_back_to_eager_with_a_warning(tmp_path, monkeypatch, capsys):
    class Broken(nn.Module):
        def __init__(self, model):
            super().__init__()
            self._orig_mod = model

        def forward(self, *args, **kwargs):
            raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: Broken(model))
    ids = random_ids(200)
    runs = []
    for compile_ in (True, False):
        data = batches.WindowBatches(GPTDataset(ids, 16, 16), batch_size=2)
        runs.append(train_mod.train(tiny_model(drop_rate=0.1), data, None,
                                    quiet_config(tmp_path / str(compile_), max_steps=3, eval_every=0,
                                                 compile=compile_)))
    assert "torch.compile failed" in capsys.readouterr().out
    assert runs[0]["train_loss"] == runs[1]["train_loss"], "the redone first step is the eager step exactly"


# --------------------------------------------------------------------------------------------- throughput

def test_peak_flops_table_matches_names_and_says_unknown_otherwise():
    peak = speed.peak_flops
    assert peak("NVIDIA H100 80GB HBM3") == 989e12      # SXM
    assert peak("NVIDIA H100 PCIe") == 756e12
    assert peak("NVIDIA H200") == 989e12
    assert peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak("NVIDIA L4") == 121e12
    assert peak("NVIDIA L40S") == 362e12                # not L4's number: the longer name is matched first
    assert peak("NVIDIA GeForce RTX 4090") == 165e12
    for unknown in ("NVIDIA A10G", "Some Future GPU 9000", "", None):
        assert peak(unknown) is None
    assert speed.format_mfu(None) == "unknown"
    assert speed.format_mfu(0.4567) == "45.7%"


@pytest.mark.parametrize("tie_weights", [False, True])
def test_flops_per_token_is_6n_plus_attention_with_n_counted_by_hand(tie_weights):
    cfg = GPTConfig(vocab_size=10, context_length=4, emb_dim=4, n_heads=2, n_layers=1, drop_rate=0.0,
                    tie_weights=tie_weights)
    torch.manual_seed(0)
    model = GPTModel(cfg)
    d, V = 4, 10
    # Parameters that multiply activations, counted from the architecture (qkv without bias):
    attention = 3 * d * d + d * d + d            # W_query, W_key, W_value, out_proj (+ its bias)
    feed_forward = d * 4 * d + 4 * d + 4 * d * d + d
    norms = 3 * 2 * d                            # norm1, norm2, final_norm: scale and shift
    head = V * d                                 # the output head (it is the token table when tied)
    n = attention + feed_forward + norms + head
    assert n == 280
    assert speed.flops_per_token(model, seq_len=4) == 6 * n + 12 * 1 * 4 * d


# --------------------------------------------------------------------------------------------- DDP

def _ddp_worker(rank: int, world_size: int, folder: str, global_batches) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        half = len(global_batches[0][0]) // world_size
        mine = [(x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]) for x, y in global_batches]
        model = tiny_model(seed=rank)   # different on purpose: DDP starts every rank from rank 0's weights
        train_mod.train(model, mine, mine[:1], _ddp_config(folder, rank))
        torch.save(model.state_dict(), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _ddp_config(folder, name):
    return train_mod.TrainConfig(max_steps=4, grad_accum_steps=2, warmup_steps=1, learning_rate=3e-3,
                                 min_lr=3e-4, eval_every=0, eval_batches=1, out_dir=f"{folder}/out{name}",
                                 progress=False, seed=5)


@pytest.mark.slow
def test_two_ddp_processes_end_with_the_weights_of_one_process_on_the_same_global_batches(tmp_path):
    torch.manual_seed(0)
    # 8 global batches of 4 windows: 4 steps x 2 micro-batches; each rank takes 2 windows of every batch.
    global_batches = [(torch.randint(0, VOCAB, (4, 16)), torch.randint(0, VOCAB, (4, 16))) for _ in range(8)]
    global_batches[3][1][0, :10] = -100   # uneven ignored targets between the ranks' halves
    mp.spawn(_ddp_worker, args=(2, str(tmp_path), global_batches), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    single = tiny_model(seed=0)
    train_mod.train(single, global_batches, global_batches[:1], _ddp_config(tmp_path, "single"))
    for name, tensor in single.state_dict().items():
        # The ranks apply the same all-reduced gradient to the same weights: identical bits.
        assert torch.equal(rank0[name], rank1[name]), name
        # One process sums all tokens' gradients at once, DDP sums two halves and then averages: float32
        # rounding differs in the last bits (1e-7 relative); four AdamW steps of size ~3e-3 keep the weights
        # within 1e-5 of each other.
        torch.testing.assert_close(rank0[name], tensor, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_cuda_training_in_bf16_with_fused_adamw_learns_and_reports_memory(tmp_path):
    model = tiny_model().cuda()
    optimizer = train_mod.make_optimizer(model, train_mod.TrainConfig())
    assert all(group.get("fused") for group in optimizer.param_groups), "fused AdamW on CUDA"
    pattern = torch.arange(17) * 5 % VOCAB
    data = batches.WindowBatches(GPTDataset(pattern.repeat(20), 16, 4), batch_size=8, seed=0)
    history = train_mod.train(model, data, None, quiet_config(tmp_path, max_steps=40, warmup_steps=5,
                                                              learning_rate=1e-2, min_lr=1e-3, eval_every=0))
    # Same bar as the CPU overfit test: bf16 autocast changes the rounding, not what can be learned.
    assert history["train_loss"][-1] < 0.1 * history["train_loss"][0]
    result = bench_train.benchmark(model, batch_size=4, seq_len=16, steps=2, warmup=1)
    assert result["peak_memory_bytes"] > 0 and result["tokens_per_s"] > 0


# --------------------------------------------------------------------------------------------- hardening

class _WritesAFile:
    """Unpickling this calls Path.write_text: the shape of a real attack (any callable could stand there)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib
        return pathlib.Path.write_text, (pathlib.Path(self.marker), "the payload ran")


def _payload_checkpoint(tmp_path, name="evil.pt"):
    path, marker = tmp_path / name, tmp_path / "marker.txt"
    torch.save({"model": {}, "step": 1, "kind": "lm", "extra": {"x": _WritesAFile(marker)}}, path)
    return path, marker


def test_a_checkpoint_that_would_run_code_is_refused_unexecuted_by_every_loader(tmp_path):
    from minigpt.files import InputError
    clf = load_impl("minigpt.classify")
    path, marker = _payload_checkpoint(tmp_path)
    data = batches.WindowBatches(GPTDataset(random_ids(200), 16, 16), batch_size=2)
    openers = {
        "load_checkpoint": lambda: ckpt.load_checkpoint(path),
        "load_model": lambda: loading.load_model(path),
        "load_base_model": lambda: loading.load_base_model(checkpoint=str(path)),
        "load_classifier": lambda: clf.load_classifier(path),
        "train(resume=)": lambda: train_mod.train(tiny_model(), data, None, quiet_config(tmp_path / "run"),
                                                  resume=path),
    }
    for name, open_it in openers.items():
        with pytest.raises(InputError, match="could run code"):
            open_it()
        assert not marker.exists(), f"{name} ran the payload"
    # The payload is real: an unrestricted unpickler runs it (which is why minigpt never uses one on its own).
    torch.load(path, weights_only=False)
    assert marker.read_text() == "the payload ran"


def test_a_checkpoint_from_before_format_2_is_refused_with_its_conversion_and_converts_to_the_same_run(tmp_path):
    import numpy as np

    from minigpt.files import InputError

    def data():
        return batches.WindowBatches(GPTDataset(random_ids(300, seed=3), 16, 8), batch_size=3, seed=11)

    train_mod.train(tiny_model(), data(), None, quiet_config(tmp_path / "a", max_steps=4, eval_every=0))
    good = ckpt.load_checkpoint(tmp_path / "a" / "ckpt.pt")
    import copy
    old = dict(copy.deepcopy(good), format=1)
    for state in old["rng"]:   # format 1 kept numpy's state as numpy.random.get_state()'s tuple
        n = state["numpy"]
        state["numpy"] = (n["name"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"],
                          n["cached_gaussian"])
    old_path = tmp_path / "old.pt"
    torch.save(old, old_path)
    with pytest.raises(InputError, match=f"python -m minigpt.checkpoint convert {old_path}"):
        ckpt.load_checkpoint(old_path)
    ckpt.main(["convert", str(old_path)])
    converted = ckpt.load_checkpoint(old_path)
    assert converted["format"] == ckpt.CHECKPOINT_FORMAT
    assert torch.equal(converted["rng"][0]["numpy"]["keys"], good["rng"][0]["numpy"]["keys"])
    # Resuming from the converted file continues exactly as resuming from the one written in format 2.
    a = train_mod.train(tiny_model(), data(), None, quiet_config(tmp_path / "b", max_steps=8, eval_every=0),
                        resume=old_path)
    b = train_mod.train(tiny_model(), data(), None, quiet_config(tmp_path / "c", max_steps=8, eval_every=0),
                        resume=tmp_path / "a" / "ckpt.pt")
    assert a["train_loss"] == b["train_loss"]


def test_resuming_at_or_below_the_checkpoints_step_is_refused_and_leaves_it_untouched(tmp_path):
    from minigpt.files import InputError
    data = batches.WindowBatches(GPTDataset(random_ids(200), 16, 16), batch_size=2)
    train_mod.train(tiny_model(), data, None, quiet_config(tmp_path, max_steps=6, eval_every=0))
    path = tmp_path / "ckpt.pt"
    before = path.read_bytes()
    for steps in (3, 6):
        with pytest.raises(InputError, match=f"at step 6; resuming needs max_steps .* above that, got {steps}"):
            train_mod.train(tiny_model(), data, None, quiet_config(tmp_path, max_steps=steps, eval_every=0),
                            resume=path)
    assert path.read_bytes() == before


class _InterruptAt:
    """Batches from `data` until batch number `at`, where Ctrl-C arrives (KeyboardInterrupt)."""

    def __init__(self, data, at):
        self.data, self.at = data, at

    def __iter__(self):
        for i, batch in enumerate(self.data):
            if i == self.at:
                raise KeyboardInterrupt
            yield batch


def test_ctrl_c_stops_training_with_the_step_reached_and_the_last_checkpoint(tmp_path):
    data = [(x[None], y[None]) for x, y in GPTDataset(random_ids(400), 16, 16)]
    with pytest.raises(train_mod.TrainingInterrupted) as stopped:
        train_mod.train(tiny_model(), _InterruptAt(data, 5), None,
                        quiet_config(tmp_path, max_steps=20, eval_every=0, checkpoint_every=2))
    assert stopped.value.step == 5 and stopped.value.checkpoint == str(tmp_path / "ckpt.pt")
    assert ckpt.load_checkpoint(tmp_path / "ckpt.pt")["step"] == 4   # the last one written before Ctrl-C
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no half-written file left


def test_ctrl_c_during_a_save_lets_the_save_finish_then_stops(tmp_path, monkeypatch):
    import os
    import signal
    real_save = torch.save

    def save_interrupted_halfway(obj, f):
        os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C arrives while the file is being written
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_interrupted_halfway)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path / "ckpt.pt", {"model": {"w": torch.arange(3.0)}, "step": 9})
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.load_checkpoint(tmp_path / "ckpt.pt")["step"] == 9   # complete, and loadable
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_training_removes_temporary_files_a_killed_run_left(tmp_path):
    stale = tmp_path / "ckpt.pt.999999999-0123abcd.tmp"   # atomic_open's name, from a process id that cannot exist
    stale.write_bytes(b"half a checkpoint")
    data = batches.WindowBatches(GPTDataset(random_ids(200), 16, 16), batch_size=2)
    train_mod.train(tiny_model(), data, None, quiet_config(tmp_path, max_steps=2, eval_every=0))
    assert not stale.exists() and (tmp_path / "ckpt.pt").exists()
