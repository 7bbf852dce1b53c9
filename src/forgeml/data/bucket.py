"""Length-bucketed batches for token ids (0 = padding): little compute goes to padding.

Each epoch: shuffle (seeded by seed + epoch), cut into chunks of `bucket` batches, sort each chunk
by length, split it into batches, shuffle the batch order, and trim every batch to its longest
row. Lengths are computed once on the host, so trimming needs no device sync."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class BucketBatcher:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0, device=None, bucket: int = 50):
        self.lengths = (x != 0).sum(1).numpy()  # (N,) on the host
        self.x = x.to(device) if device is not None else x
        self.y = y.to(device) if device is not None else y
        self.batch_size, self.seed, self.bucket = batch_size, seed, bucket

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def to(self, device) -> BucketBatcher:
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def _batches(self, epoch: int) -> list[np.ndarray]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.y), generator=gen).numpy()
        size = self.batch_size * self.bucket
        batches = []
        for c in range(0, len(perm), size):
            chunk = perm[c : c + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        order = torch.randperm(len(batches), generator=gen).tolist()
        return [batches[i] for i in order]

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self._batches(epoch)[start:]:
            longest = int(self.lengths[idx].max())
            rows = torch.from_numpy(idx).to(self.x.device)
            yield self.x.index_select(0, rows)[:, :longest], self.y.index_select(0, rows)

    def __iter__(self):
        return self.epoch(0)
