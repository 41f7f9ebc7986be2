"""Chapter 6: the batches a training run reads — endless, in a fixed order, and with a position that can be saved.

Chapter 2 makes windows of token ids (GPTDataset, ShardDataset, MixedDataset); a training run needs them as an
endless stream of (inputs, targets) batches that a checkpoint can stop and restart at exactly the same place.
Read it in this order:
  1. WindowBatches   chapter 2's windows as endless batches, visited in a seeded random order per epoch
  2. fixed_batches   the same evaluation batches every time
  3. BatchStream     what train() iterates: any re-iterable of batches (a DataLoader, a list, WindowBatches) made
                     endless, with state_dict()/load_state_dict() for exact resume
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from minigpt.data import EpochOrder, stack_pairs


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
                yield stack_pairs([self.source[self.order.next_index()] for _ in range(self.batch_size)])

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
    return [stack_pairs(pairs[i:i + batch_size]) for i in range(0, len(pairs), batch_size)]


class BatchStream:
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
