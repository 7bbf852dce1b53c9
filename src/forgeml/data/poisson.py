"""Poisson sampling over in-memory tensors: each step, every row joins the batch with probability q, on its own.

What DP-SGD's accountant assumes (privacy amplification by subsampling): a batch is not a slice of a shuffled
epoch but an independent draw, so its size varies (about q x N rows) and may even be empty. An "epoch" is
round(1 / q) such draws: about N rows in all, some twice, some not at all.

Each batch's draw is seeded by (seed, epoch, batch), so epoch e, batch i is the same on every run with the same
seed and after a resume, and starting at batch `start` costs nothing. The batcher interface is TensorBatcher's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from forgeml.data.tensor_dict import Tensors, index_select, n_rows, to_device

Batch = tuple[Tensors, Tensors]


class PoissonBatcher:
    """x and y: a tensor each, or a dict of named tensors each. `steps_per_epoch` draws per epoch, each row in each
    draw with probability `sample_rate`; `augment` as TensorBatcher's (a tensor x, or x[augment_key])."""

    def __init__(self, x: Tensors, y: Tensors, sample_rate: float, steps_per_epoch: int, seed: int = 0,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None, augment_key: str | None = None,
                 device: str | torch.device | None = None):
        if n_rows(x) != n_rows(y):
            raise ValueError(f"x has {n_rows(x)} rows but y has {n_rows(y)}")
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate {sample_rate}: must be in (0, 1]")
        self.x = to_device(x, device) if device is not None else x
        self.y = to_device(y, device) if device is not None else y
        self.sample_rate, self.steps_per_epoch, self.seed = sample_rate, steps_per_epoch, seed
        self.augment, self.augment_key = augment, augment_key

    @property
    def n_samples(self) -> int:
        return n_rows(self.y)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def to(self, device: str | torch.device) -> PoissonBatcher:
        self.x, self.y = to_device(self.x, device), to_device(self.y, device)
        return self

    def rows_of(self, epoch: int, batch: int) -> torch.Tensor:
        """The row indices of draw `batch` of epoch `epoch` (sorted; possibly none)."""
        gen = torch.Generator().manual_seed(hash((self.seed, epoch, batch)) & 0x7FFF_FFFF_FFFF_FFFF)
        return torch.nonzero(torch.rand(self.n_samples, generator=gen) < self.sample_rate).squeeze(1)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        first = self.y if isinstance(self.y, torch.Tensor) else next(iter(self.y.values()))
        for i in range(start, self.steps_per_epoch):
            idx = self.rows_of(epoch, i).to(first.device)
            xb, yb = index_select(self.x, idx), index_select(self.y, idx)
            if self.augment is not None and len(idx):
                xb = self.augment(xb) if isinstance(xb, torch.Tensor) else {**xb, self.augment_key: self.augment(xb[self.augment_key])}
            yield xb, yb

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)
