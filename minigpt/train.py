"""Chapter 6: pretraining — the training loop, checkpoints that resume exactly, and several GPUs.

Pretraining is next-token prediction repeated: show the model a window of text, score its guess for every
next token with cross-entropy, nudge all weights downhill with AdamW, and repeat. Around that core sit the
things that make a run work in practice: a learning-rate warmup and cosine decay, gradient clipping,
gradient accumulation (a big batch built from small ones), bf16 autocast on GPUs, periodic evaluation on
held-out text, checkpoints that resume bit for bit, and DistributedDataParallel for more than one GPU.

API (chapter 9 reuses this loop for instruction finetuning)
-----------------------------------------------------------
    history = train(model, train_batches, val_batches=None, config=TrainConfig(...), *,
                    tokenizer=None, resume=None, extra=None)

- `model`: a GPTModel, or any nn.Module whose forward(inputs) returns logits (batch, tokens, vocab), e.g. a
  model wrapping a GPTModel. Move it to its device before calling; train() trains on the device of its
  parameters. Only parameters with requires_grad=True are optimised (freeze some for finetuning).
- `train_batches`: any re-iterable of (inputs, targets) LongTensor pairs of shape (batch, tokens), e.g. a
  DataLoader. Targets equal to -100 are ignored by the loss (padding, prompt tokens). Each pass over it is an
  epoch; the loop starts a new pass when one ends. Batches hold `config.grad_accum_steps` times fewer rows
  than an optimizer step uses: one step = grad_accum_steps batches. For exact resume the data must come back
  in the same order each time: either the iterable has state_dict()/load_state_dict() (WindowBatches below,
  over chapter 2's GPTDataset, ShardDataset or MixedDataset), or it is a DataLoader whose order is set by
  its own torch.Generator (chapter 2's create_dataloader; the generator's state at the start of the epoch is
  saved) or by a sampler with set_epoch (DistributedSampler; train() calls it with the epoch number); the
  loop then skips the batches already seen. A plain list works too. A DataLoader shuffled by torch's
  global generator (shuffle=True without generator=) trains fine but does not resume exactly.
- `val_batches`: a re-iterable of (inputs, targets) for evaluation (the first config.eval_batches are used).
- `config`: a TrainConfig (plain dataclass below).
- `tokenizer`: anything with encode(str) -> list[int] and decode(list[int]) -> str (a tiktoken Encoding);
  with it, sample generations from config.sample_prompt are printed during training.
- `resume`: a checkpoint path; model, optimizer, step, data position, RNG states and loss history continue.
- `extra`: a plain dict stored in every checkpoint (the chapter script keeps its arguments there).
- Returns the history dict: "step", "train_loss", "lr", "tokens" (one entry per optimizer step),
  "val_step", "val_loss" (one per evaluation), plus "checkpoint" (last checkpoint path, or None).

Also here: `load_checkpoint(path)`, `model_from_checkpoint(path, device)`, `evaluate`, `learning_rate`,
`param_groups`, `make_optimizer`, `peak_flops`, `flops_per_token`, `setup_distributed`, `benchmark`.

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
- FLOPs per token for MFU: 6·N + 12·L·T·d (the PaLM paper's estimate, also nanoGPT's), where N counts the
  parameters that take part in matrix multiplications (everything except the token and position embedding
  tables; the output head counts, tied or not), L layers, T the sequence length, d the width. 6·N is the
  forward (2 FLOPs per multiply-add) plus the backward (twice the forward); 12·L·T·d is attention's
  QKᵀ and weights·V, which have no parameters. Recomputation is not counted.
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
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from minigpt.data import EpochOrder
from minigpt.files import atomic_open
from minigpt.generate import generate
from minigpt.model import GPTConfig, GPTModel, estimate_memory

IGNORE_INDEX = -100
CHECKPOINT_FORMAT = 1


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
    tokenizer_name: str = "gpt2"   # stored in checkpoints so a loader knows how to decode
    progress: bool = True          # show the tqdm bar

    def __post_init__(self):
        if self.max_steps < 1 or self.grad_accum_steps < 1:
            raise ValueError(f"max_steps and grad_accum_steps must be >= 1, got {self.max_steps}, "
                             f"{self.grad_accum_steps}")
        if not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(f"need 0 <= min_lr <= learning_rate, got {self.min_lr} and {self.learning_rate}")
        if self.dtype not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"dtype must be 'auto', 'bfloat16' or 'float32', got {self.dtype!r}")


# --------------------------------------------------------------------------------------------- schedule

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


# --------------------------------------------------------------------------------------------- optimizer

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


# --------------------------------------------------------------------------------------------- throughput

# Peak dense bf16 tensor-core throughput (no 2:4 sparsity), FLOP/s, from NVIDIA's datasheets. Matched against
# torch.cuda.get_device_name() in order: the first row whose words all appear in the name wins, so the more
# specific names come first. A GPU not listed gives None, printed as "unknown": a wrong peak gives a wrong MFU.
PEAK_BF16_FLOPS: list[tuple[tuple[str, ...], float | None]] = [
    (("H100", "PCIE"), 756e12),
    (("H100", "NVL"), 835e12),
    (("H100",), 989e12),            # SXM5 ("NVIDIA H100 80GB HBM3")
    (("H200", "NVL"), 835e12),
    (("H200",), 989e12),
    (("GH200",), 989e12),
    (("B200",), 2250e12),
    (("A100",), 312e12),            # SXM4 and PCIe alike
    (("A10G",), None),              # AWS's A10 variant has less tensor throughput than the A10: unknown
    (("A10",), 125e12),
    (("L40S",), 362e12),
    (("L4",), 121e12),
    (("RTX 4090",), 165e12),
    (("RTX 3090",), 71e12),
]


def peak_flops(device_name: str | None) -> float | None:
    """Peak bf16 FLOP/s of the GPU called `device_name` (torch.cuda.get_device_name()), None if unknown."""
    if not device_name:
        return None
    name = device_name.upper()
    for words, flops in PEAK_BF16_FLOPS:
        if all(word in name for word in words):
            return flops
    return None


def find_gpt(model: nn.Module) -> GPTModel | None:
    """The GPTModel inside `model` (itself, or wrapped by DDP, torch.compile or a finetuning wrapper)."""
    for module in model.modules():
        if isinstance(module, GPTModel):
            return module
    return None


def flops_per_token(model: nn.Module, seq_len: int) -> int | None:
    """Training FLOPs per token, 6·N + 12·L·T·d (see "Decisions"); None if no GPTModel is inside `model`."""
    gpt = find_gpt(model)
    if gpt is None:
        return None
    cfg = gpt.cfg
    n_total = sum(p.numel() for p in gpt.parameters())
    n_matmul = n_total - gpt.pos_emb.weight.numel()
    if gpt.out_head.weight is not gpt.tok_emb.weight:
        n_matmul -= gpt.tok_emb.weight.numel()   # untied: the lookup table does no matmul, the head does
    return 6 * n_matmul + 12 * cfg.n_layers * seq_len * cfg.emb_dim


def format_mfu(mfu: float | None) -> str:
    return "unknown" if mfu is None else f"{100 * mfu:.1f}%"


# --------------------------------------------------------------------------------------------- seeding

def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and every CUDA device) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)   # also seeds all CUDA devices


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --------------------------------------------------------------------------------------------- distributed

def setup_distributed() -> tuple[int, int, torch.device | None]:
    """Join the process group if launched by torchrun (env RANK and WORLD_SIZE); return (rank, world_size, device).

    NCCL and one GPU per process (cuda:LOCAL_RANK) when CUDA is available, gloo on CPU. Without torchrun:
    (0, 1, None) and nothing is initialised.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, None
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return rank, world_size, device


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_sum(values: list[float], device: torch.device, world_size: int) -> list[float]:
    if world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# --------------------------------------------------------------------------------------------- loss

def autocast_context(device: torch.device, dtype: str = "auto"):
    """bf16 autocast on CUDA (when the GPU has bf16 and dtype allows), otherwise a no-op context."""
    use_bf16 = device.type == "cuda" and dtype != "float32" and torch.cuda.is_bf16_supported()
    if dtype == "bfloat16" and device.type != "cuda":
        use_bf16 = True   # asked for explicitly: CPU autocast works, though usually slower than fp32
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def loss_sum(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of the cross-entropy over every target token that is not -100 (divide by their count for the mean)."""
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                           reduction="sum")


def count_targets(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    return sum(int((targets != IGNORE_INDEX).sum()) for _, targets in batches)


def forward_backward(model: nn.Module, micro_batches: list[tuple[torch.Tensor, torch.Tensor]],
                     autocast=contextlib.nullcontext, world_size: int = 1, target_count: int | None = None,
                     device: torch.device | None = None) -> torch.Tensor:
    """Accumulate into .grad the gradient of the mean loss over all target tokens of all micro-batches.

    Each micro-batch contributes (its loss sum) / (target tokens in the whole step); summed over micro-batches
    that is the mean over the step, so the gradient equals one big batch's. Under DDP gradients are averaged
    over ranks, so each rank scales by world_size and divides by the global token count. Returns the step's
    mean loss (over all ranks) as a 0-dim tensor on `device`: reading it (float(loss)) waits for the GPU to
    finish the step, so the training loop reads losses only when it reports them. `autocast` is a function
    returning a context manager. Batches are moved to `device` (default: the model's) one at a time;
    `target_count` (this rank's non-ignored targets) can be passed to save counting them.
    """
    device = device or next(model.parameters()).device
    local_count = count_targets(micro_batches) if target_count is None else target_count
    total_count = _all_reduce_sum([float(local_count)], device, world_size)[0]
    if total_count == 0:
        raise ValueError("every target in this step is -100: nothing to learn from")
    total = torch.zeros((), device=device)
    is_ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    for i, (inputs, targets) in enumerate(micro_batches):
        inputs, targets = _to_device(inputs, device), _to_device(targets, device)
        # Only the last micro-batch all-reduces gradients; the others accumulate locally.
        sync = not is_ddp or i == len(micro_batches) - 1
        with (contextlib.nullcontext() if sync else model.no_sync()):
            with autocast():
                loss = loss_sum(model, inputs, targets)
            (loss * (world_size / total_count)).backward()
        total += loss.detach()   # no .item() here: the GPU keeps working while Python queues the next batch
    if world_size > 1:
        dist.all_reduce(total)
    return total / total_count


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and tensor.device.type == "cpu":
        # Page-locked memory lets the copy run asynchronously, overlapping the previous micro-batch's work.
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, max_batches: int | None = None,
             autocast=contextlib.nullcontext) -> tuple[float, float]:
    """(mean loss per target token, perplexity = exp(loss)) over the first max_batches batches.

    Under DDP each rank evaluates its own batches and the sums are combined. The model is left in the
    train/eval mode it was in.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i, (inputs, targets) in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast():
            total += loss_sum(model, inputs, targets).item()
        count += int((targets != IGNORE_INDEX).sum())
    model.train(was_training)
    _, world_size = _dist_info()
    total, count = _all_reduce_sum([total, float(count)], device, world_size)
    if count == 0:
        raise ValueError("the validation batches hold no targets; give at least one batch")
    loss = total / count
    return loss, math.exp(min(loss, 700.0))   # exp overflows float64 past ~709


# --------------------------------------------------------------------------------------------- checkpoints

def unwrap(model: nn.Module) -> nn.Module:
    """The module under DDP (.module) and torch.compile (._orig_mod) wrappers: the one whose state_dict to save."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> Path:
    """torch.save `checkpoint` to `path` atomically: a temporary file in the same folder, then os.replace.

    A crash mid-write leaves the previous checkpoint intact and no partial file behind.
    """
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save(checkpoint, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by train(): a dict with "model" (state_dict), "model_config" (dict),
    "train_config", "optimizer", "step", "data_state", "rng", "history", "tokenizer", "extra"."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    # weights_only=False: the checkpoint holds RNG states and numpy arrays besides tensors. Load only
    # checkpoints you wrote or trust (unpickling can run code).
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a minigpt checkpoint (expected a dict with a 'model' entry)")
    return checkpoint


def model_from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> GPTModel:
    """A GPTModel with the checkpoint's configuration and weights, in eval mode, ready to generate.

    The Triton kernels need CUDA: on another device the attention and LayerNorm fall back to torch's
    (same weights, same results up to rounding).
    """
    checkpoint = load_checkpoint(path)
    config = dict(checkpoint["model_config"])
    if torch.device(device).type != "cuda":
        for key in ("attention_impl", "layernorm_impl"):
            if config.get(key) == "triton":
                config[key] = "torch"
    model = GPTModel(GPTConfig(**config))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------- data

class _BatchStream:
    """Endless (inputs, targets) batches from a re-iterable, with a position that can be saved and restored.

    Stateful data (state_dict/load_state_dict) keeps its own position. Otherwise the position is
    (epoch, batches taken in this epoch): restoring sets the epoch on the sampler (set_epoch, as
    DistributedSampler has), puts back the state the DataLoader's own generator had when the epoch began
    (how chapter 2's create_dataloader shuffles), and skips the batches already taken.
    """

    def __init__(self, data: Iterable):
        self.data = data
        self.stateful = hasattr(data, "state_dict") and hasattr(data, "load_state_dict")
        self.epoch, self.taken = 0, 0
        self.generator = getattr(data, "generator", None)
        if not isinstance(self.generator, torch.Generator):
            self.generator = None
        self._epoch_generator_state: torch.Tensor | None = None
        self._iterator: Iterator | None = None

    def _set_epoch(self) -> None:
        for obj in (self.data, getattr(self.data, "sampler", None), getattr(self.data, "batch_sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(self.epoch)

    def _start_epoch(self, skip: int = 0) -> None:
        self._set_epoch()
        if self.generator is not None:
            if self._epoch_generator_state is not None and skip:   # resuming mid-epoch: replay its shuffle
                self.generator.set_state(self._epoch_generator_state)
            self._epoch_generator_state = self.generator.get_state()
        self._iterator = iter(self.data)
        for _ in range(skip):
            if next(self._iterator, None) is None:
                raise ValueError(f"cannot skip {skip} batches: epoch {self.epoch} has fewer; is the training "
                                 f"data the same as in the checkpointed run?")

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        # A DataLoader without its own generator draws a seed from torch's global one each time an epoch
        # starts; forking keeps data loading from shifting the dropout masks, so a resumed run draws the same.
        with torch.random.fork_rng(devices=[]):
            return self._next()

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iterator is None:
            self._start_epoch(self.taken)
        batch = next(self._iterator, None)
        if batch is None:   # end of an epoch: start the next one
            if self.taken == 0:
                raise ValueError("the training data produced no batches; is the dataset smaller than one batch?")
            self.epoch, self.taken = self.epoch + 1, 0
            self._start_epoch()
            batch = next(self._iterator, None)
            if batch is None:
                raise ValueError("the training data produced no batches in a new epoch")
        self.taken += 1
        return batch

    def state_dict(self) -> dict:
        state = {"epoch": self.epoch, "taken": self.taken}
        if self.stateful:
            state["data"] = self.data.state_dict()
        elif self.generator is not None:
            state["generator"] = (self._epoch_generator_state if self._epoch_generator_state is not None
                                  else self.generator.get_state())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.taken = state["epoch"], state["taken"]
        if self.stateful:
            self.data.load_state_dict(state["data"])
            self._set_epoch()
            self._iterator = iter(self.data)
        else:
            if self.generator is not None and "generator" in state:
                self.generator.set_state(state["generator"].cpu())
                self._epoch_generator_state = state["generator"].cpu()
            self._iterator = None   # skip to the position on the next batch


class WindowBatches:
    """Endless (inputs, targets) batches from chapter 2's windows, with a position to save and restore exactly.

    `source` is either a window dataset (len + indexing, like GPTDataset), visited in a seeded random order
    per epoch through chapter 2's EpochOrder, or anything with next_batch()/state_dict()/load_state_dict()
    (ShardDataset, MixedDataset). rank/world_size give each DDP rank its own disjoint slice of a window
    dataset (a ShardDataset or MixedDataset gets them when it is built). A batch may span two epochs.
    """

    def __init__(self, source, batch_size: int, seed: int = 123, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.source, self.batch_size = source, batch_size
        self.order = None if hasattr(source, "next_batch") else EpochOrder(len(source), seed, rank, world_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            if self.order is None:
                yield self.source.next_batch(self.batch_size)
            else:
                pairs = [self.source[self.order.next_index()] for _ in range(self.batch_size)]
                yield torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    def state_dict(self) -> dict:
        return (self.order or self.source).state_dict()

    def load_state_dict(self, state: dict) -> None:
        (self.order or self.source).load_state_dict(state)


def fixed_batches(dataset, batch_size: int, max_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same evaluation batches every time: up to max_batches·batch_size windows spread evenly over `dataset`.

    `dataset` is indexable (GPTDataset) or has window(i) and num_windows (ShardDataset).
    """
    count = getattr(dataset, "num_windows", None) or len(dataset)
    get = dataset.window if hasattr(dataset, "window") else dataset.__getitem__
    wanted = min(count, batch_size * max_batches)
    indices = np.unique(np.linspace(0, count - 1, wanted).round().astype(int)).tolist()
    pairs = [get(i) for i in indices]
    return [(torch.stack([x for x, _ in pairs[i:i + batch_size]]), torch.stack([y for _, y in pairs[i:i + batch_size]]))
            for i in range(0, len(pairs), batch_size)]


def _check_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"training data must yield (inputs, targets) pairs, got {type(batch).__name__}")
    inputs, targets = batch
    if (inputs.dtype != torch.long or targets.dtype != torch.long or inputs.shape != targets.shape
            or inputs.dim() != 2):
        raise TypeError(f"inputs and targets must be LongTensors of one shape (batch, tokens), got "
                        f"{inputs.dtype} {tuple(inputs.shape)} and {targets.dtype} {tuple(targets.shape)}")
    return inputs, targets


# --------------------------------------------------------------------------------------------- samples

def sample_text(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 0.0,
                top_k: int | None = None, seed: int = 0) -> str:
    """Continue `prompt` with the model (KV cache, greedy by default) and return prompt + continuation.

    Runs on forked RNG state so that sampling never changes the training run's random numbers.
    """
    gpt = find_gpt(model)
    net = gpt if gpt is not None else unwrap(model)
    device = next(net.parameters()).device
    ids = tokenizer.encode(prompt) if prompt else [_eos_id(tokenizer) or 0]
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    was_training = net.training
    net.eval()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        out = generate(net, idx, max_new_tokens, context_size=net.cfg.context_length, temperature=temperature,
                       top_k=top_k, eos_id=_eos_id(tokenizer), seed=seed)
    net.train(was_training)
    vocab = getattr(tokenizer, "n_vocab", None)
    # A padded vocabulary (50,304) has ids no tokenizer knows; an untrained model may pick them.
    tokens = [t for t in out[0].tolist() if vocab is None or t < vocab]
    return tokenizer.decode(tokens)


def _eos_id(tokenizer) -> int | None:
    return getattr(tokenizer, "eot_token", None)


# --------------------------------------------------------------------------------------------- plot

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
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- the loop

def keep_freed_memory_on_cpu() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing large blocks back to the OS.

    Each CPU training step allocates and frees the same few large tensors (logits of batch x tokens x 50,257
    floats: 200 MB for 8 x 128 tokens). glibc serves blocks that large with mmap and unmaps them on free, so
    every step faults all those pages in again (zero-filled by the kernel): on a 2-core machine that costs
    about a quarter of the step time. Raising the mmap and trim thresholds to 1 GiB makes freed blocks
    reusable. Returns False where this is not glibc (macOS, Windows, musl): nothing changes there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3   # from glibc's <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def _compile(model: nn.Module) -> nn.Module:
    try:
        return torch.compile(model)
    except Exception as e:   # noqa: BLE001 - any failure means "run eager"
        print(f"warning: torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:120]}); running eager")
        return model


def train(model: nn.Module, train_batches: Iterable, val_batches: Iterable | None = None,
          config: TrainConfig | None = None, *, tokenizer=None, resume: str | os.PathLike | None = None,
          extra: dict | None = None) -> dict:
    """Train `model` for config.max_steps optimizer steps; see the module docstring for every argument."""
    config = config or TrainConfig()
    rank, world_size = _dist_info()
    master = rank == 0
    raw = unwrap(model)
    device = next(raw.parameters()).device
    if device.type == "cuda":
        # TF32 for the fp32 matmuls that remain outside autocast: same speed class as bf16, ~10-bit mantissa.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        keep_freed_memory_on_cpu()
    autocast = lambda: autocast_context(device, config.dtype)  # noqa: E731
    out_dir = Path(config.out_dir)
    ckpt_path = out_dir / "ckpt.pt"

    optimizer = make_optimizer(raw, config)
    stream = _BatchStream(train_batches)
    history = {"step": [], "train_loss": [], "lr": [], "tokens": [], "val_step": [], "val_loss": [],
               "checkpoint": None}
    start_step, tokens_seen = 0, 0
    seed_everything(config.seed + rank)   # rank offset: different dropout masks on each GPU
    if resume is not None:
        checkpoint = load_checkpoint(resume, map_location=device)
        raw.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_step = checkpoint["step"]
        saved = checkpoint["history"]
        history.update({k: list(v) for k, v in saved.items() if k != "checkpoint"})
        tokens_seen = history["tokens"][-1] if history["tokens"] else 0
        if len(checkpoint["data_state"]) != world_size:
            raise ValueError(f"the checkpoint was written by {len(checkpoint['data_state'])} processes; resume it "
                             f"with the same number (got {world_size}) so each rank finds its data position")
        stream.load_state_dict(checkpoint["data_state"][rank])
        set_rng_state(checkpoint["rng"][rank])
        if master:
            print(f"Resumed from {resume} at step {start_step}.")

    step_model = _compile(raw) if config.compile else raw
    if world_size > 1:
        step_model = nn.parallel.DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None)
    compile_checked = not config.compile

    gpt = find_gpt(raw)
    seq_len = None
    flops_token = None
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None

    def checkpoint_now(step: int) -> None:
        # Every rank's data position and RNG state, gathered so that each rank resumes its own.
        states = [None] * world_size
        mine = (stream.state_dict(), rng_state())
        if world_size > 1:
            dist.all_gather_object(states, mine)
        else:
            states = [mine]
        if master:
            save_checkpoint(ckpt_path, {
                "format": CHECKPOINT_FORMAT,
                "model": raw.state_dict(),
                "model_config": asdict(gpt.cfg) if gpt is not None else None,   # the GPTModel inside
                "train_config": asdict(config),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "data_state": [s[0] for s in states],
                "rng": [s[1] for s in states],
                "history": {k: v for k, v in history.items() if k != "checkpoint"},
                "tokenizer": config.tokenizer_name,
                "extra": extra or {},
            })
            history["checkpoint"] = str(ckpt_path)

    def run_eval(step: int) -> None:
        if val_batches is None:
            return
        loss, ppl = evaluate(step_model, val_batches, config.eval_batches, autocast)
        history["val_step"].append(step)
        history["val_loss"].append(loss)
        if master:
            train_loss = history["train_loss"][-1] if history["train_loss"] else float("nan")
            tqdm.write(f"step {step}: train loss {train_loss:.3f}, val loss {loss:.3f} (perplexity {ppl:.1f})")

    def run_sample(step: int) -> None:
        if tokenizer is None or not master:
            return
        text = sample_text(raw, tokenizer, config.sample_prompt, config.sample_tokens,
                           config.sample_temperature, config.sample_top_k, seed=config.seed + step)
        tqdm.write(f"sample at step {step}: {text!r}")

    # Losses and gradient norms stay on the device until they are reported: reading one waits for the GPU to finish
    # the step, and doing that every step would leave the GPU idle while Python prepares the next one. So they are
    # read every `log_every` steps (and before an evaluation, a sample or a checkpoint), all at once.
    unread: list[tuple[torch.Tensor, torch.Tensor | None]] = []   # (loss, grad norm) of steps not yet read
    interval_start, interval_tokens = time.perf_counter(), 0

    def read_losses() -> tuple[float, float | None]:
        """Move the unread losses into history (one wait for the device); return the last loss and grad norm."""
        losses = torch.stack([loss for loss, _ in unread]).tolist()
        norms = [norm for _, norm in unread]
        first = len(history["train_loss"])
        for i, value in enumerate(losses):
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss became {value} at step {history['step'][first + i]}; "
                                         f"lower the learning rate")
        history["train_loss"].extend(losses)
        unread.clear()
        return losses[-1], None if norms[-1] is None else float(norms[-1])

    raw.train()
    bar = tqdm(total=config.max_steps, initial=start_step, desc="training", unit="step",
               disable=not (master and config.progress), dynamic_ncols=True, file=sys.stdout)
    for step in range(start_step, config.max_steps):
        lr = learning_rate(step, config.learning_rate, config.min_lr, config.warmup_steps, config.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro = [_check_batch(next(stream)) for _ in range(config.grad_accum_steps)]
        count = count_targets(micro)   # on the CPU copies: no GPU synchronisation
        if seq_len is None:
            seq_len = micro[0][0].shape[1]
            flops_token = flops_per_token(raw, seq_len)

        if not compile_checked:
            # torch.compile compiles on the first call; if that fails, go back to eager and redo the step.
            saved_rng = rng_state()
            try:
                loss = forward_backward(step_model, micro, autocast, world_size, count, device)
            except Exception as e:   # noqa: BLE001
                print(f"warning: torch.compile failed on the first step ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:120] if str(e) else ''}); running eager")
                optimizer.zero_grad(set_to_none=True)
                set_rng_state(saved_rng)
                step_model = raw if world_size == 1 else nn.parallel.DistributedDataParallel(
                    raw, device_ids=[device.index] if device.type == "cuda" else None)
                loss = forward_backward(step_model, micro, autocast, world_size, count, device)
            compile_checked = True
        else:
            loss = forward_backward(step_model, micro, autocast, world_size, count, device)

        grad_norm = None
        if config.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), config.grad_clip)   # a tensor: no wait
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        unread.append((loss, grad_norm))

        step_tokens = sum(x.numel() for x, _ in micro) * world_size
        tokens_seen += step_tokens
        interval_tokens += step_tokens
        history["step"].append(step + 1)
        history["lr"].append(lr)
        history["tokens"].append(tokens_seen)

        done = step + 1
        evaluate_now = bool(config.eval_every) and done % config.eval_every == 0 and done != config.max_steps
        sample_now = bool(config.sample_every) and done % config.sample_every == 0 and done != config.max_steps
        checkpoint = bool(config.checkpoint_every) and done % config.checkpoint_every == 0 and done != config.max_steps
        report = done % config.log_every == 0 or done == config.max_steps or evaluate_now or sample_now or checkpoint
        if report:
            last_loss, last_norm = read_losses()
            # The read waited for the device, so the time since the last report covers exactly these steps' work.
            tokens_per_s = interval_tokens / (time.perf_counter() - interval_start)
            if master:
                postfix = {"loss": f"{last_loss:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tokens_per_s:,.0f}"}
                if last_norm is not None:
                    postfix["|g|"] = f"{last_norm:.2f}"
                if device.type == "cuda":
                    mfu = None if peak is None or flops_token is None else \
                        flops_token * tokens_per_s / (peak * world_size)
                    postfix["mfu"] = format_mfu(mfu)
                bar.set_postfix(postfix, refresh=False)
        bar.update(1)
        if evaluate_now:
            run_eval(done)
        if sample_now:
            run_sample(done)
        if checkpoint:
            checkpoint_now(done)
        if report:   # the next interval starts now: evaluations and checkpoints are not training throughput
            interval_start, interval_tokens = time.perf_counter(), 0
    bar.close()

    if not history["val_step"] or history["val_step"][-1] != config.max_steps:
        run_eval(config.max_steps)
    checkpoint_now(config.max_steps)
    if master:
        plot_losses(history, out_dir / "loss.png")
    run_sample(config.max_steps)
    return history


# --------------------------------------------------------------------------------------------- benchmark

def benchmark(model: nn.Module, batch_size: int, seq_len: int, steps: int = 20, warmup: int = 5,
              config: TrainConfig | None = None) -> dict:
    """Time full training steps (forward, backward, clip, AdamW) on random tokens; print and return the numbers.

    Random tokens cost the same FLOPs as text, so this measures the loop itself, not the data pipeline.
    The first `warmup` steps (compilation, autotuning, allocator growth) are not timed.
    """
    config = config or TrainConfig(max_steps=steps + warmup)
    raw = unwrap(model)
    device = next(raw.parameters()).device
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)
    else:
        keep_freed_memory_on_cpu()
    autocast = lambda: autocast_context(device, config.dtype)  # noqa: E731
    optimizer = make_optimizer(raw, config)
    step_model = _compile(raw) if config.compile else raw
    vocab = raw.cfg.vocab_size if hasattr(raw, "cfg") else 50257
    generator = torch.Generator().manual_seed(config.seed)
    batches = [(torch.randint(0, min(vocab, 50257), (batch_size, seq_len + 1), generator=generator))
               for _ in range(4)]
    batches = [(b[:, :-1].contiguous().to(device), b[:, 1:].contiguous().to(device)) for b in batches]
    batch_targets = batch_size * seq_len

    def one_step(i: int) -> torch.Tensor:
        # As in a training step, nothing here waits for the GPU (the loss stays a tensor), so Python queues the next
        # step while the GPU works; the timer below waits for the GPU once, at the end.
        loss = forward_backward(step_model, [batches[i % len(batches)]], autocast, target_count=batch_targets,
                                device=device)
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    raw.train()
    for i in tqdm(range(warmup), desc="warm-up (not timed)", file=sys.stdout):
        try:
            one_step(i)
        except Exception as e:   # noqa: BLE001
            if step_model is raw:
                raise
            print(f"warning: torch.compile failed ({type(e).__name__}); benchmarking eager")
            optimizer.zero_grad(set_to_none=True)
            step_model = raw
            one_step(i)
    if cuda:
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i in tqdm(range(steps), desc="timed steps", file=sys.stdout):
        one_step(i)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) / steps
    tokens_per_s = batch_size * seq_len / seconds
    fpt = flops_per_token(raw, seq_len)
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = peak_flops(device_name) if cuda else None
    mfu = None if peak is None or fpt is None else fpt * tokens_per_s / peak
    result = {"device": device_name, "ms_per_step": 1000 * seconds, "tokens_per_s": tokens_per_s, "mfu": mfu,
              "flops_per_token": fpt, "peak_flops": peak,
              "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None}
    if hasattr(raw, "cfg"):
        mixed = cuda and config.dtype != "float32"
        result["estimated_memory_bytes"] = estimate_memory(raw.cfg, batch_size, seq_len, training=True,
                                                           mixed_precision=mixed)["total"]
    gib = 2 ** 30
    print(f"benchmark on {device_name}: batch {batch_size} x {seq_len} tokens, {steps} timed steps")
    flops_note = f" (6N + 12·L·T·d = {fpt:,} FLOPs/token)" if fpt else ""
    print(f"  {result['ms_per_step']:.1f} ms/step, {tokens_per_s:,.0f} tokens/s, MFU {format_mfu(mfu)}{flops_note}")
    estimate = result.get("estimated_memory_bytes")
    measured = f"{result['peak_memory_bytes'] / gib:.2f} GiB allocated at peak" if cuda else \
        "peak memory not measured on a CPU"
    print(f"  {measured}; chapter 4's estimate_memory says "
          + (f"{estimate / gib:.2f} GiB" if estimate is not None else "nothing (not a GPTModel)"))
    return result
