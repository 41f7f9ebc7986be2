"""Chapter 6: pretraining — the training loop.

Pretraining is next-token prediction repeated: show the model a window of text, score its guess for every next token
with cross-entropy, nudge all weights downhill with AdamW, and repeat. Around that core sit the things that make a run
work in practice: a learning-rate warmup and cosine decay, gradient clipping, gradient accumulation (a big batch built
from small ones), bf16 autocast on GPUs, periodic evaluation on held-out text and checkpoints that resume bit for bit.

Read it in this order:
  1. TrainConfig, PRESETS            every setting of a run, one dataclass; chapter 6's presets (tiny, gpt2-124m)
  2. learning_rate                   warmup, then cosine decay
  3. param_groups, make_optimizer    AdamW, with weight decay on the matrices only
  4. NextTokenLoss, forward_backward the objective, and one optimizer step's gradient over its micro-batches
  5. evaluate                        mean loss and perplexity on held-out batches
  6. train                           the loop, with the small helpers it calls just above it
Around it, each in its own module: the batches a run reads (minigpt/batches.py), checkpoints and random state
(minigpt/checkpoint.py), several GPUs (minigpt/distributed.py), FLOPs, MFU and machine settings (minigpt/speed.py),
and the step-time benchmark (minigpt/bench_train.py).

API (chapters 9 and 13 reuse this loop)
---------------------------------------
    history = train(model, train_batches, val_batches=None, config=TrainConfig(...), *,
                    loss=None, tokenizer=None, resume=None, extra=None)

- `model`: a GPTModel, or any nn.Module whose forward(inputs) returns logits (batch, tokens, vocab), e.g. a
  model wrapping a GPTModel. Move it to its device before calling; train() trains on the device of its
  parameters. Only parameters with requires_grad=True are optimised (freeze some for finetuning).
- `train_batches`: any re-iterable of batches, for the default loss (inputs, targets) LongTensor pairs of shape
  (batch, tokens), e.g. a DataLoader. Targets equal to -100 (IGNORE_INDEX) are ignored by the loss (padding, prompt
  tokens). Each pass over it is an epoch; the loop starts a new pass when one ends. Batches hold
  `config.grad_accum_steps` times fewer rows than an optimizer step uses. For exact resume the data must come back
  in the same order each time (see minigpt/batches.py's BatchStream for what qualifies). A plain list works too.
- `val_batches`: a re-iterable of batches for evaluation (the first config.eval_batches are used).
- `config`: a TrainConfig.
- `loss`: the objective (default NextTokenLoss()): any object with `sizes(batch)` and `__call__(model, batch)` as
  NextTokenLoss has them; accumulation, clipping, schedule, checkpoints and resume work the same for every loss.
- `tokenizer`: anything with encode(str) -> list[int] and decode(list[int]) -> str (a tiktoken Encoding or
  chapter 1's BPETokenizer); with it, samples from config.sample_prompt are printed during training, and the
  checkpoint records it so that minigpt.loading.load_model returns it with the model.
- `resume`: a checkpoint path; model, optimizer, step, data position, RNG states and loss history continue.
- `extra`: a plain dict stored in every checkpoint (the chapter script keeps its arguments there).
- Returns the history dict: "step", "train_loss", "lr", "tokens" (one entry per optimizer step),
  "val_step", "val_loss" (one per evaluation), plus "checkpoint" (last checkpoint path, or None).

Decisions, stated once
----------------------
- Weight decay applies to the 2-D weight matrices that multiply activations (every nn.Linear weight, and the
  output head). Biases, LayerNorm scale/shift and the embedding tables are not decayed: decay pulls a
  weight toward zero at every step, and a rare token's embedding row, which gets a gradient only when the token
  appears, would shrink between its appearances. (nanoGPT decays every 2-D tensor, embeddings included; both
  train fine.) With tie_weights the shared matrix is the token embedding, so it is not decayed.
- The loss of one optimizer step is the mean over all its target tokens (all micro-batches, all ranks), not
  a mean of per-batch means, so k micro-batches give exactly the gradient of one k-times-larger batch even
  when they hold different numbers of -100 targets.
- Determinism: everything is seeded (python, numpy, torch, CUDA; the seed is offset by the rank). On a CPU a
  run is repeatable bit for bit with the same thread count. On CUDA some kernels are not: the backward of
  embeddings and of index/scatter ops (atomic adds), SDPA's flash/memory-efficient backward, and reductions
  whose order depends on the chosen algorithm (cuBLAS split-K, autotuned Triton and torch.compile kernels),
  so CUDA loss curves agree to a few decimals rather than exactly.
- bf16 autocast on CUDA when the GPU supports bf16 (weights, gradients and AdamW's state stay fp32);
  fp32 elsewhere. No fp16 + loss scaling path.
- Only rank 0 prints, plots and writes checkpoints.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from minigpt.batches import BatchStream
from minigpt.checkpoint import (CHECKPOINT_FORMAT, load_checkpoint, plain, rng_state, save_checkpoint,
                                seed_everything, set_rng_state, tokenizer_record, unwrap)
from minigpt.distributed import all_reduce_sum, dist_info, gather_objects, wrap_ddp
from minigpt.files import InputError, remove_stale_temporaries, save_figure
from minigpt.generate import generate
from minigpt.model import find_gpt
from minigpt.speed import (compile_model, device_peak_flops, first_call_or_eager, flops_per_token, format_mfu, mfu,
                           prepare_device)
from minigpt.tokenizer import end_of_text_id

IGNORE_INDEX = -100   # a target with this id adds nothing to the loss (F.cross_entropy's default ignore_index)


# --------------------------------------------------------------------------------------------- 1. settings

@dataclass
class TrainConfig:
    max_steps: int = 1000          # optimizer steps
    grad_accum_steps: int = 1      # batches per optimizer step
    learning_rate: float = 6e-4    # peak, reached at the end of warmup
    min_lr: float = 6e-5           # floor of the cosine decay
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0         # max global gradient norm; 0 turns clipping off
    eval_every: int = 100          # steps between evaluations (0: only at the end)
    eval_batches: int = 20         # validation batches per evaluation
    sample_every: int = 0          # steps between sample generations (0: only at the end)
    sample_prompt: str = "Once upon a time"
    sample_tokens: int = 40
    sample_temperature: float = 0.0   # 0: greedy
    sample_top_k: int | None = None
    checkpoint_every: int = 0      # steps between checkpoints (0: only at the end)
    out_dir: str = "out/ch06"      # checkpoints (ckpt.pt) and the loss plot (loss.png)
    dtype: str = "auto"            # "auto" (bf16 autocast on a bf16-capable GPU, else fp32), "bfloat16", "float32"
    compile: bool = False          # torch.compile the model (falls back to eager with a warning)
    seed: int = 1337
    log_every: int = 1             # steps between progress-bar updates
    tokenizer_name: str = "gpt2"   # the tokenizer a checkpoint records when train() is given none
    progress: bool = True          # show the tqdm bar

    def __post_init__(self):
        if self.max_steps < 1 or self.grad_accum_steps < 1:
            raise ValueError(f"max_steps and grad_accum_steps must be >= 1, got {self.max_steps}, "
                             f"{self.grad_accum_steps}")
        if not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(f"need 0 <= min_lr <= learning_rate, got {self.min_lr} and {self.learning_rate}")
        if self.dtype not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"dtype must be 'auto', 'bfloat16' or 'float32', got {self.dtype!r}")


# --------------------------------------------------------------------------------------------- 2. schedule

# Each preset: the model (a size from chapter 4's table plus overrides), the batch size, and TrainConfig's own fields.
# Chapter 6's command-line options override them; chapter 12 trains the tiny preset when chapter 6 has not been run.
PRESETS = {
    # 4 layers, width 128, GPT-2's vocabulary, output head tied to the token embedding (half the parameters,
    # and twice as fast on a CPU, where the 50,257-wide head and its optimizer state dominate).
    "tiny": dict(model=dict(size="tiny", context_length=128, tie_weights=True, drop_rate=0.1), batch_size=8,
                 train=dict(max_steps=350, grad_accum_steps=1, learning_rate=4e-3, min_lr=4e-4, warmup_steps=30,
                            weight_decay=0.1, eval_every=25, sample_every=175, checkpoint_every=175, compile=False)),
    # GPT-2 small (124M parameters tied) as nanoGPT trains it: vocabulary padded from 50,257 to 50,304
    # (a multiple of 64, so the head's matmul tiles evenly), no dropout, 16 x 1024 tokens per micro-batch,
    # 32 micro-batches per step = 524,288 tokens, 19,073 steps = 10B tokens.
    "gpt2-124m": dict(model=dict(size="gpt2", vocab_size=50304, tie_weights=True, drop_rate=0.0), batch_size=16,
                      train=dict(max_steps=19073, grad_accum_steps=32, learning_rate=6e-4, min_lr=6e-5,
                                 warmup_steps=700, weight_decay=0.1, eval_every=250, sample_every=1000,
                                 checkpoint_every=1000, compile=True)),
}
PRESET_FIELDS = ("max_steps", "grad_accum_steps", "learning_rate", "min_lr", "warmup_steps", "weight_decay",
                 "eval_every", "sample_every", "checkpoint_every", "compile")


def learning_rate(step: int, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine decay to min_lr.

    Warmup: max_lr·(step+1)/warmup_steps, so the first step already moves and step warmup_steps-1 reaches max_lr.
    Then: min_lr + ½(1 + cos(π·progress))·(max_lr - min_lr), progress going 0 → 1 from warmup_steps to
    max_steps. After max_steps: min_lr.
    """
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


# --------------------------------------------------------------------------------------------- 3. optimizer

def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed matrices and everything else (see "Decisions" above).

    Decayed: trainable parameters with 2 or more dimensions that are not an nn.Embedding's table.
    Each parameter appears once, even when it is shared (tied weights).
    """
    embedding_tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = [], [], set()
    for param in model.parameters():       # parameters() yields a shared Parameter once
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if param.dim() >= 2 and id(param) not in embedding_tables else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over param_groups; the fused CUDA kernel (one launch for all tensors) when on a GPU."""
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.learning_rate,
                             betas=(config.beta1, config.beta2), eps=1e-8, fused=on_cuda or None)


# --------------------------------------------------------------------------------------------- 4. the loss

def autocast_context(device: torch.device, dtype: str = "auto"):
    """bf16 autocast on CUDA (when the GPU has bf16 and dtype allows), otherwise a no-op context."""
    use_bf16 = device.type == "cuda" and dtype != "float32" and torch.cuda.is_bf16_supported()
    if dtype == "bfloat16" and device.type != "cuda":
        use_bf16 = True   # asked for explicitly: CPU autocast works, though usually slower than fp32
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class NextTokenLoss:
    """The pretraining objective: cross-entropy of each next token, summed over targets that are not -100.

    Any loss train() and evaluate() take has these two methods (chapter 13's DPO is another):
      sizes(batch) -> (units, tokens): how many terms the batch adds to the loss (here: the targets that are not
          -100) and how many tokens the model reads (for tokens/s). Called on the batch as the data gives it (on
          the CPU: no wait for the GPU); it also checks the batch's shape.
      __call__(model, batch) -> a 0-dim tensor: the SUM of the loss over the batch's units; train() divides by
          the whole step's units, so that every unit weighs the same however the micro-batches split them.
    """

    def sizes(self, batch: Any) -> tuple[int, int]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"training data must yield (inputs, targets) pairs, got {type(batch).__name__}")
        inputs, targets = batch
        if (inputs.dtype != torch.long or targets.dtype != torch.long or inputs.shape != targets.shape
                or inputs.dim() != 2):
            raise TypeError(f"inputs and targets must be LongTensors of one shape (batch, tokens), got "
                            f"{inputs.dtype} {tuple(inputs.shape)} and {targets.dtype} {tuple(targets.shape)}")
        return int((targets != IGNORE_INDEX).sum()), inputs.numel()

    def __call__(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        logits = model(inputs)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                               reduction="sum")


def forward_backward(model: nn.Module, micro_batches: list, autocast=contextlib.nullcontext, world_size: int = 1,
                     target_count: int | None = None, device: torch.device | None = None,
                     loss: NextTokenLoss | None = None) -> torch.Tensor:
    """Accumulate into .grad the gradient of the mean loss over all units of all micro-batches.

    Each micro-batch contributes (its loss sum) / (units in the whole step); summed over micro-batches that is the
    mean over the step, so the gradient equals one big batch's. Under DDP gradients are averaged over ranks, so each
    rank scales by world_size and divides by the global count. Returns the step's mean loss (over all ranks) as a
    0-dim tensor on `device`: reading it (float(loss)) waits for the GPU to finish the step, so the training loop
    reads losses only when it reports them. `autocast` is a function returning a context manager. Batches are moved
    to `device` (default: the model's) one at a time; `target_count` (this rank's units) can be passed to save
    counting them.
    """
    loss = loss or NextTokenLoss()
    device = device or next(model.parameters()).device
    local_count = sum(loss.sizes(b)[0] for b in micro_batches) if target_count is None else target_count
    total_count = all_reduce_sum([float(local_count)], device, world_size)[0]
    if total_count == 0:
        raise ValueError("every target in this step is -100: nothing to learn from")
    total = torch.zeros((), device=device)
    is_ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    for i, batch in enumerate(micro_batches):
        batch = tuple(_to_device(t, device) for t in batch)
        # Only the last micro-batch all-reduces gradients; the others accumulate locally.
        sync = not is_ddp or i == len(micro_batches) - 1
        with (contextlib.nullcontext() if sync else model.no_sync()):
            with autocast():
                batch_loss = loss(model, batch)
            (batch_loss * (world_size / total_count)).backward()
        total += batch_loss.detach()   # no .item() here: the GPU keeps working while Python queues the next batch
    if world_size > 1:
        dist.all_reduce(total)
    return total / total_count


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and tensor.device.type == "cpu":
        # Page-locked memory lets the copy run asynchronously, overlapping the previous micro-batch's work.
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


# --------------------------------------------------------------------------------------------- 5. evaluation

@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, max_batches: int | None = None,
             autocast=contextlib.nullcontext, loss: NextTokenLoss | None = None) -> tuple[float, float]:
    """(mean loss per unit — per target token for the default loss, perplexity = exp(loss)) over the first
    max_batches batches.

    Under DDP each rank evaluates its own batches and the sums are combined. The model is left in the
    train/eval mode it was in.
    """
    loss = loss or NextTokenLoss()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        units, _ = loss.sizes(batch)
        with autocast():
            total += loss(model, tuple(t.to(device) for t in batch)).item()
        count += units
    model.train(was_training)
    _, world_size = dist_info()
    total, count = all_reduce_sum([total, float(count)], device, world_size)
    if count == 0:
        raise ValueError("the validation batches hold no targets; give at least one batch")
    mean = total / count
    return mean, math.exp(min(mean, 700.0))   # exp overflows float64 past ~709


# --------------------------------------------------------------------------------------------- samples and plot

def sample_text(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 0.0,
                top_k: int | None = None, seed: int = 0) -> str:
    """Continue `prompt` with the model (KV cache, greedy by default) and return prompt + continuation.

    Runs on forked RNG state so that sampling never changes the training run's random numbers.
    """
    gpt = find_gpt(model)
    net = gpt if gpt is not None else unwrap(model)
    device = next(net.parameters()).device
    ids = tokenizer.encode(prompt) if prompt else [end_of_text_id(tokenizer) or 0]
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    was_training = net.training
    net.eval()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        out = generate(net, idx, max_new_tokens, context_size=net.cfg.context_length, temperature=temperature,
                       top_k=top_k, eos_id=end_of_text_id(tokenizer), seed=seed)
    net.train(was_training)
    vocab = getattr(tokenizer, "n_vocab", None)
    # A padded vocabulary (50,304) has ids no tokenizer knows; an untrained model may pick them.
    tokens = [t for t in out[0].tolist() if vocab is None or t < vocab]
    return tokenizer.decode(tokens)


def plot_losses(history: dict, path: str | os.PathLike, title: str = "", note: str = "") -> Path:
    """Training loss per step and validation loss per evaluation, saved as a PNG; `note` is written on it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6 if note else 4.2))
    ax.plot(history["step"], history["train_loss"], color="tab:blue", alpha=0.35, lw=1, label="train (per step)")
    if len(history["train_loss"]) >= 10:
        width = max(2, len(history["train_loss"]) // 20)
        smooth = np.convolve(history["train_loss"], np.ones(width) / width, mode="valid")
        ax.plot(history["step"][width - 1:], smooth, color="tab:blue", lw=2, label=f"train (mean of last {width})")
    if history["val_step"]:
        ax.plot(history["val_step"], history["val_loss"], "o-", color="tab:orange", lw=2, label="validation")
        best = int(np.argmin(history["val_loss"]))
        if best != len(history["val_loss"]) - 1:
            # Validation loss went back up after this point: the model started to memorise its training text.
            ax.axvline(history["val_step"][best], color="tab:red", ls=":", lw=1.5,
                       label=f"lowest validation loss (step {history['val_step'][best]}): overfitting after it")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_title(title or "Loss curves")
    if note:   # under the plot, where it covers no curve
        import textwrap
        fig.text(0.5, 0.015, "\n".join(textwrap.wrap(note, 100)), ha="center", va="bottom", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout(rect=(0, 0.1 if note else 0, 1, 1))
    path = Path(path)
    save_figure(fig, path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- 6. the loop

@dataclass
class _Run:
    """What a training run carries from step to step: what a checkpoint saves, and what computes a step."""
    model: nn.Module                 # the unwrapped model: its state_dict is what is saved
    step_model: nn.Module            # what runs the steps: the model, compiled and/or wrapped in DDP
    optimizer: torch.optim.Optimizer
    stream: BatchStream
    config: TrainConfig
    loss: Any
    autocast: Callable
    tokenizer: Any
    tokenizer_record: str | dict
    extra: dict
    rank: int
    world_size: int
    history: dict = field(default_factory=lambda: {"step": [], "train_loss": [], "lr": [], "tokens": [],
                                                   "val_step": [], "val_loss": [], "checkpoint": None})

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def _restore(run: _Run, path: str | os.PathLike) -> int:
    """Load model, optimizer, data position, RNG state and history from `path`; return the step to continue at."""
    checkpoint = load_checkpoint(path, map_location=run.device)
    if checkpoint["step"] >= run.config.max_steps:
        # Going on would write a checkpoint labelled max_steps holding the later weights, and a history that
        # repeats steps when resumed again: refuse, and leave the checkpoint as it is.
        raise InputError(f"{path} is at step {checkpoint['step']}; resuming needs max_steps (--steps) above that, "
                         f"got {run.config.max_steps}: nothing to train")
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.history.update({k: list(v) for k, v in checkpoint["history"].items() if k != "checkpoint"})
    if len(checkpoint["data_state"]) != run.world_size:
        raise ValueError(f"the checkpoint was written by {len(checkpoint['data_state'])} processes; resume it "
                         f"with the same number (got {run.world_size}) so each rank finds its data position")
    run.stream.load_state_dict(checkpoint["data_state"][run.rank])
    set_rng_state(checkpoint["rng"][run.rank])
    if run.master:
        print(f"Resumed from {path} at step {checkpoint['step']}.")
    return checkpoint["step"]


def _save(run: _Run, step: int) -> None:
    """Write the checkpoint (rank 0), with every rank's data position and RNG state so that each resumes its own."""
    states = gather_objects((run.stream.state_dict(), rng_state()), run.world_size)
    if not run.master:
        return
    gpt = find_gpt(run.model)
    path = Path(run.config.out_dir) / "ckpt.pt"
    save_checkpoint(path, {
        "format": CHECKPOINT_FORMAT,
        "kind": "lm",
        "model": run.model.state_dict(),
        "model_config": asdict(gpt.cfg) if gpt is not None else None,   # the GPTModel inside
        "train_config": asdict(run.config),
        "optimizer": run.optimizer.state_dict(),
        "step": step,
        "data_state": [s[0] for s in states],
        "rng": [s[1] for s in states],
        "history": {k: v for k, v in run.history.items() if k != "checkpoint"},
        "tokenizer": run.tokenizer_record,
        "extra": run.extra,
    })
    run.history["checkpoint"] = str(path)


def _evaluate_into(run: _Run, val_batches: Iterable | None, step: int) -> None:
    """Evaluate on the validation batches, add the result to the history and print it."""
    if val_batches is None:
        return
    loss, ppl = evaluate(run.step_model, val_batches, run.config.eval_batches, run.autocast, run.loss)
    run.history["val_step"].append(step)
    run.history["val_loss"].append(loss)
    if run.master:
        train_loss = run.history["train_loss"][-1] if run.history["train_loss"] else float("nan")
        tqdm.write(f"step {step}: train loss {train_loss:.3f}, val loss {loss:.3f} (perplexity {ppl:.1f})")


def _print_sample(run: _Run, step: int) -> None:
    if run.tokenizer is None or not run.master:
        return
    c = run.config
    text = sample_text(run.model, run.tokenizer, c.sample_prompt, c.sample_tokens, c.sample_temperature,
                       c.sample_top_k, seed=c.seed + step)
    tqdm.write(f"sample at step {step}: {text!r}")


def _first_step(run: _Run, micro: list, count: int) -> torch.Tensor:
    """The first step of a compiled model, which is when torch.compile compiles: on failure, go eager and redo it."""
    saved_rng = rng_state()

    def reset() -> None:
        run.optimizer.zero_grad(set_to_none=True)
        set_rng_state(saved_rng)

    eager = wrap_ddp(run.model, run.device, run.world_size)
    step_loss, run.step_model = first_call_or_eager(
        lambda m: forward_backward(m, micro, run.autocast, run.world_size, count, run.device, run.loss),
        run.step_model, eager, reset)
    return step_loss


def _optimizer_step(run: _Run) -> torch.Tensor | None:
    """Clip the gradient (returns its norm, a tensor: no wait for the GPU), take the AdamW step, clear the gradients."""
    grad_norm = None
    if run.config.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return grad_norm


class _LossLog:
    """Losses and gradient norms of the steps not yet reported, and the tokens/s since the last report.

    They stay on the device until read: reading one waits for the GPU to finish the step, and doing that every step
    would leave the GPU idle while Python prepares the next one. So they are read every `log_every` steps (and
    before an evaluation, a sample or a checkpoint), all at once.
    """

    def __init__(self, history: dict):
        self.history = history
        self.unread: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.restart()

    def restart(self) -> None:
        """A new interval starts now: evaluations and checkpoints are not training throughput."""
        self.start, self.tokens = time.perf_counter(), 0

    def add(self, step: int, lr: float, loss: torch.Tensor, grad_norm: torch.Tensor | None, tokens: int) -> None:
        self.unread.append((loss, grad_norm))
        self.tokens += tokens
        self.history["step"].append(step)
        self.history["lr"].append(lr)
        self.history["tokens"].append((self.history["tokens"][-1] if self.history["tokens"] else 0) + tokens)

    def read(self) -> tuple[float, float | None, float]:
        """Move the unread losses into the history (one wait for the device); return the last loss, the last
        gradient norm and the interval's tokens/s (the read waited for the device, so the time is exactly these
        steps' work)."""
        losses = torch.stack([loss for loss, _ in self.unread]).tolist()
        norms = [norm for _, norm in self.unread]
        first = len(self.history["train_loss"])
        for i, value in enumerate(losses):
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss became {value} at step {self.history['step'][first + i]}; "
                                         f"lower the learning rate")
        self.history["train_loss"].extend(losses)
        self.unread.clear()
        tokens_per_s = self.tokens / (time.perf_counter() - self.start)
        return losses[-1], None if norms[-1] is None else float(norms[-1]), tokens_per_s


def _due(config: TrainConfig, done: int) -> tuple[bool, bool, bool, bool]:
    """After step `done`: (evaluate, sample, checkpoint, report) now? The last step's are done after the loop."""
    def every(n: int) -> bool:
        return bool(n) and done % n == 0 and done != config.max_steps
    evaluate_now, sample_now, checkpoint = every(config.eval_every), every(config.sample_every), \
        every(config.checkpoint_every)
    report = done % config.log_every == 0 or done == config.max_steps or evaluate_now or sample_now or checkpoint
    return evaluate_now, sample_now, checkpoint, report


def _postfix(run: _Run, lr: float, loss: float, grad_norm: float | None, tokens_per_s: float,
             flops_token: int | None) -> dict:
    postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tokens_per_s:,.0f}"}
    if grad_norm is not None:
        postfix["|g|"] = f"{grad_norm:.2f}"
    if run.device.type == "cuda":
        postfix["mfu"] = format_mfu(mfu(flops_token, tokens_per_s, device_peak_flops(run.device), run.world_size))
    return postfix


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped train(): `step` is the last step completed, `checkpoint` the last checkpoint written (or None)."""

    def __init__(self, step: int, checkpoint: str | None):
        super().__init__(step, checkpoint)
        self.step, self.checkpoint = step, checkpoint


def train(model: nn.Module, train_batches: Iterable, val_batches: Iterable | None = None,
          config: TrainConfig | None = None, *, loss=None, tokenizer=None, resume: str | os.PathLike | None = None,
          extra: dict | None = None) -> dict:
    """Train `model` for config.max_steps optimizer steps; see the module docstring for every argument."""
    config = config or TrainConfig()
    rank, world_size = dist_info()
    raw = unwrap(model)
    device = next(raw.parameters()).device
    prepare_device(device)
    record = tokenizer_record(tokenizer) if tokenizer is not None else config.tokenizer_name
    run = _Run(model=raw, step_model=raw, optimizer=make_optimizer(raw, config), stream=BatchStream(train_batches),
               config=config, loss=loss or NextTokenLoss(), autocast=functools.partial(autocast_context, device,
                                                                                        config.dtype),
               tokenizer=tokenizer, tokenizer_record=record, extra=plain(extra or {}, "extra"), rank=rank, world_size=world_size)
    if run.master:
        remove_stale_temporaries(config.out_dir)   # half-written files of a run that was killed
    seed_everything(config.seed + rank)   # rank offset: different dropout masks on each GPU
    start_step = _restore(run, resume) if resume is not None else 0
    try:
        return _loop(run, val_batches, start_step)
    except KeyboardInterrupt:
        # A save in progress finished first (checkpoint.hold_interrupts); say where the run can continue from.
        done = run.history["step"][-1] if run.history["step"] else start_step
        raise TrainingInterrupted(done, run.history["checkpoint"]) from None


def _loop(run: _Run, val_batches: Iterable | None, start_step: int) -> dict:
    """train()'s loop, from `start_step` to config.max_steps, then the final evaluation, checkpoint and plot."""
    config, raw, device, world_size = run.config, run.model, run.device, run.world_size
    run.step_model = wrap_ddp(compile_model(raw) if config.compile else raw, device, world_size)
    compiling, flops_token = config.compile, None
    log = _LossLog(run.history)

    raw.train()
    bar = tqdm(total=config.max_steps, initial=start_step, desc="training", unit="step",
               disable=not (run.master and config.progress), dynamic_ncols=True, file=sys.stdout)
    try:
        for step in range(start_step, config.max_steps):
            lr = learning_rate(step, config.learning_rate, config.min_lr, config.warmup_steps, config.max_steps)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            micro = [next(run.stream) for _ in range(config.grad_accum_steps)]
            sizes = [run.loss.sizes(batch) for batch in micro]   # on the CPU copies: no GPU synchronisation
            count, tokens = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
            if flops_token is None:
                flops_token = flops_per_token(raw, micro[0][0].shape[-1])
            if compiling:
                step_loss, compiling = _first_step(run, micro, count), False
            else:
                step_loss = forward_backward(run.step_model, micro, run.autocast, world_size, count, device, run.loss)
            log.add(step + 1, lr, step_loss, _optimizer_step(run), tokens * world_size)

            evaluate_now, sample_now, checkpoint_now, report = _due(config, step + 1)
            if report:
                last_loss, last_norm, tokens_per_s = log.read()
                if run.master:
                    bar.set_postfix(_postfix(run, lr, last_loss, last_norm, tokens_per_s, flops_token), refresh=False)
            bar.update(1)
            if evaluate_now:
                _evaluate_into(run, val_batches, step + 1)
            if sample_now:
                _print_sample(run, step + 1)
            if checkpoint_now:
                _save(run, step + 1)
            if report:
                log.restart()
    finally:
        bar.close()

    if not run.history["val_step"] or run.history["val_step"][-1] != config.max_steps:
        _evaluate_into(run, val_batches, config.max_steps)
    _save(run, config.max_steps)
    if run.master:
        plot_losses(run.history, Path(config.out_dir) / "loss.png")
    _print_sample(run, config.max_steps)
    return run.history
