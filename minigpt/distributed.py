"""Chapter 6: several GPUs — joining torchrun's process group and wrapping the model in DistributedDataParallel.

Each process trains a copy of the model on its own slice of the data; DistributedDataParallel averages the
gradients across processes during backward, so every copy takes the same optimizer step. `setup_distributed` joins
the group that torchrun describes in environment variables, `wrap_ddp` wraps a model, and the two small reductions
let the loop combine per-process sums (losses, token counts). Only rank 0 prints, plots and writes checkpoints.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn


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


def dist_info() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap_ddp(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """`model` in DistributedDataParallel when there are several processes, else `model` itself."""
    if world_size == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(values: list[float], device: torch.device, world_size: int) -> list[float]:
    """Each value summed over all processes (float64, so token counts stay exact)."""
    if world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_objects(mine, world_size: int) -> list:
    """Every process's `mine` (picklable), in rank order; on one process just [mine]."""
    if world_size == 1:
        return [mine]
    gathered = [None] * world_size
    dist.all_gather_object(gathered, mine)
    return gathered
