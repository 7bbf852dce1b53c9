"""Each process's share of the batches, when several train one model (DDP/FSDP under torchrun).

Every rank draws the same global micro-batch (the same shuffle, windows and augmentation: each batcher is seeded by
(seed, epoch)) and keeps its own contiguous slice of rows: rank r of w takes rows [r*b/w, (r+1)*b/w) of a batch of b.
The gradients DDP averages over the ranks are then exactly those of one process taking the whole batch, and no row
is seen twice in an epoch. A slice is a view: for in-memory tensors the sharing costs nothing.

Training batches must split evenly, so the one short batch of an epoch (n mod batch size rows; the last one, or
wherever the length-bucketing batcher shuffled it) is left out when its rows do not divide by the world size; its rows
differ from epoch to epoch, as the shuffle does, and the trainer says how many. Evaluation batches are dealt whole,
batch k to rank k mod w, and the sums are reduced afterwards: no row is left out there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from forgeml.data.tensor_dict import n_rows, rows


class ShardedBatches:
    """Rank `rank` of `world`'s slice of every global micro-batch of `batches` (any batcher with epoch(epoch, start))."""

    def __init__(self, batches: Any, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world
        n = getattr(batches, "n_samples", None)
        if n is None and hasattr(batches, "y"):
            n = n_rows(batches.y)
        size = getattr(batches, "batch_size", None)
        # the short batch is left out when it cannot split evenly (a full one always can: batch sizes are checked)
        self.short_rows = (n % size) if n and size else 0
        self.drops_short = self.short_rows % world != 0 and len(batches) > 1

    def __len__(self) -> int:
        return len(self.batches) - (1 if self.drops_short else 0)

    @property
    def n_samples(self) -> int | None:
        return getattr(self.batches, "n_samples", None)

    def to(self, device) -> ShardedBatches:
        if hasattr(self.batches, "to"):
            self.batches.to(device)
        return self

    def state_dict(self) -> dict:
        return self.batches.state_dict() if hasattr(self.batches, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if hasattr(self.batches, "load_state_dict"):
            self.batches.load_state_dict(state)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Any, Any]]:
        """This rank's slices of the epoch's batches, from the `start`-th batch that is kept."""
        # without a batch to leave out, batch k here is batch k of the batcher: skip by its own `start` (no reading)
        kept = start if not self.drops_short else 0
        for x, y in self.batches.epoch(epoch, kept):
            b = n_rows(y)
            if b % self.world:
                continue  # the short batch: every rank sees the same one and leaves it out
            kept += 1
            if kept <= start:
                continue  # a resume mid-epoch, past the left-out batch: counted in kept batches
            lo, hi = self.rank * b // self.world, (self.rank + 1) * b // self.world
            yield rows(x, lo, hi), rows(y, lo, hi)

    def __iter__(self):
        return self.epoch(0)


class DealtBatches:
    """Evaluation: whole batches dealt round-robin, batch k to rank k mod world (a rank may get one fewer); `limit`:
    only the first `limit` batches of the whole (train.eval_batches), as one process would take."""

    def __init__(self, batches: Any, rank: int, world: int, limit: int | None = None):
        self.batches, self.rank, self.world = batches, rank, world
        self.total = min(len(batches), limit) if limit else len(batches)

    def __len__(self) -> int:
        return max(0, -(-(self.total - self.rank) // self.world))

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Any, Any]]:
        for k, batch in enumerate(self.batches.epoch(epoch)):
            if k >= self.total:
                return
            if k % self.world == self.rank:
                yield batch

    def __iter__(self):
        return self.epoch(0)
