"""The in-memory fast path: tensors held whole, batched by index. No per-sample Python, no collate.

Each epoch shuffles once with one gather (a permutation seeded by seed + epoch, so epoch e is the
same batches on every run and after a resume), then hands out contiguous slices, which are views
and cost nothing. On a GPU the tensors move to the device once, and augmentation runs there.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch

from forgeml.data.tensor_dict import Tensors, index_select, is_tensors, n_rows, rows, to_device

Batch = tuple[Tensors, Tensors]


class TensorBatcher:
    """x and y: a tensor each, or a dict of named tensors each (inputs and outputs of a Network).

    `augment` applies to a tensor x, or to the entry `augment_key` of a dict x (the image)."""

    def __init__(self, x: Tensors, y: Tensors, batch_size: int, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 device: str | torch.device | None = None, augment_key: str | None = None):
        if n_rows(x) != n_rows(y):
            raise ValueError(f"x has {n_rows(x)} rows but y has {n_rows(y)}")
        if n_rows(x) == 0:
            raise ValueError("no rows to batch")
        self.x = to_device(x, device) if device is not None else x
        self.y = to_device(y, device) if device is not None else y
        self.augment_key = augment_key
        self.batch_size, self.shuffle, self.drop_last, self.seed, self.augment = batch_size, shuffle, drop_last, seed, augment
        if drop_last and n_rows(x) < batch_size:
            self.drop_last = False  # a tiny set still gives one batch

    @property
    def n_samples(self) -> int:
        return n_rows(self.y)

    def __len__(self) -> int:
        n = self.n_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def to(self, device: str | torch.device) -> TensorBatcher:
        self.x, self.y = to_device(self.x, device), to_device(self.y, device)
        return self

    def _augmented(self, xb: Tensors) -> Tensors:
        if self.augment is None:
            return xb
        if isinstance(xb, torch.Tensor):
            return self.augment(xb)
        return {**xb, self.augment_key: self.augment(xb[self.augment_key])}

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """Batches of one epoch, beginning at batch `start` (for an exact resume)."""
        x, y = self.x, self.y
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            first = y if isinstance(y, torch.Tensor) else next(iter(y.values()))
            perm = torch.randperm(n_rows(y), generator=gen).to(first.device)
            x, y = index_select(x, perm), index_select(y, perm)  # one gather per epoch
        bs = self.batch_size
        for i in range(start, len(self)):
            xb, yb = rows(x, i * bs, (i + 1) * bs), rows(y, i * bs, (i + 1) * bs)
            yield self._augmented(xb), yb

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)


class IterableBatches:
    """Any iterable of (x, y) batches (a DataLoader, a list) behind the batcher interface.

    A DataLoader with shuffle=True draws its order (and its workers' seeds) from torch's global RNG
    (or its own generator) when an epoch's iterator starts. So the RNG states at that moment are kept
    (state_dict, saved in the checkpoint); a resume mid-epoch rewinds to them, draws the same order,
    loads and drops the first `start` batches without running any model, then puts the global RNGs back.
    The loader's own generator is left where those draws took it, as in the run that was stopped, and
    state_dict carries its current state too, so an epoch that begins after a resume draws the same order.
    A sampler with set_epoch gets the epoch.
    """

    def __init__(self, batches, device=None):
        self.batches, self.device = batches, device
        self.epoch_start: dict | None = None  # the RNG states that chose this epoch's order

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def n_samples(self) -> int | None:
        ds = getattr(self.batches, "dataset", None)
        return len(ds) if ds is not None else None

    @property
    def _generator(self) -> torch.Generator | None:
        return getattr(self.batches, "generator", None)

    def state_dict(self) -> dict:
        state = dict(self.epoch_start) if self.epoch_start is not None else {}
        if self._generator is not None:  # where the next epoch's order comes from (an epoch-end checkpoint has no other)
            state["generator_now"] = self._generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state or {})
        now = state.pop("generator_now", None)
        if now is not None and self._generator is not None:
            self._generator.set_state(now)
        self.epoch_start = state or None

    def _rng_states(self, epoch: int) -> dict:
        generator = self._generator
        return {"epoch": epoch, "torch": torch.get_rng_state(),
                "generator": generator.get_state() if generator is not None else torch.empty(0, dtype=torch.uint8)}

    def _set_rng_states(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        generator = self._generator
        if generator is not None and state["generator"].numel():
            generator.set_state(state["generator"])

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        sampler = getattr(self.batches, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if start and self.epoch_start is not None and self.epoch_start["epoch"] == epoch:
            # the checkpoint's global RNGs, already restored: what the skipped batches must not change
            torch_state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
            self._set_rng_states(self.epoch_start)
            it = iter(self.batches)
            for _ in range(start):
                next(it)
            torch.set_rng_state(torch_state)  # the loader's generator stays advanced, where the stopped run had it
            random.setstate(py_state)
            np.random.set_state(np_state)
        else:
            self.epoch_start = self._rng_states(epoch)
            it = iter(self.batches)
            for _ in range(start):  # no saved order (an older checkpoint): skip in whatever order this draws
                next(it)
        for batch in it:
            x, y = batch[0], batch[1]
            if self.device is not None:
                x, y = to_device(x, self.device, non_blocking=True), to_device(y, self.device, non_blocking=True)
            yield x, y

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)


def as_batches(data, batch_size: int, shuffle: bool, seed: int = 0, device=None) -> TensorBatcher | IterableBatches:
    """Turn what a user hands the Trainer into a batcher: a batcher, an (x, y) pair of tensors, or an iterable."""
    if hasattr(data, "epoch") and hasattr(data, "__len__"):  # a TensorBatcher, WindowBatcher, ...
        return data.to(device) if device is not None and hasattr(data, "to") else data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(hasattr(t, "__array__") and not isinstance(t, torch.Tensor) for t in data):
        data = (torch.as_tensor(data[0]), torch.as_tensor(data[1]))  # numpy arrays
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(is_tensors(t) for t in data):
        return TensorBatcher(data[0], data[1], batch_size, shuffle=shuffle, seed=seed, device=device)
    if hasattr(data, "__iter__") and hasattr(data, "__len__"):
        return IterableBatches(data, device)
    raise TypeError("training data must be a TensorBatcher, an (x, y) pair of tensors (or of dicts of tensors), or an iterable of (x, y) batches")
