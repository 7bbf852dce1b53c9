"""Length-bucketed batches for token ids (0 = padding): little compute goes to padding.

Each epoch: shuffle (seeded by seed + epoch), cut into chunks of `bucket` batches, sort each chunk
by length, split it into batches, shuffle the batch order, and trim every batch to its longest
row. Lengths are computed once on the host, so trimming needs no device sync. With several text
inputs (a title and a review), rows are sorted by their total length and each text is trimmed to
its own longest in the batch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from forgeml.data.tensor_dict import Tensors, index_select, n_rows, to_device


class BucketBatcher:
    """x: token ids (N, T), or a dict of inputs whose entries `text_keys` (or the one `text_key`) hold
    them (the others are batched alongside, untrimmed); y: a tensor or a dict of targets."""

    def __init__(self, x: Tensors, y: Tensors, batch_size: int, seed: int = 0, device=None, bucket: int = 50,
                 text_key: str | None = None, text_keys: list[str] | None = None):
        self.text_keys = list(text_keys or ([text_key] if text_key is not None else []))
        if isinstance(x, torch.Tensor):
            self.key_lengths = {None: (x != 0).sum(1).numpy()}  # (N,) on the host
        else:
            self.key_lengths = {k: (x[k] != 0).sum(1).numpy() for k in self.text_keys}
        self.lengths = sum(self.key_lengths.values())  # (N,): the sort key
        self.x = to_device(x, device) if device is not None else x
        self.y = to_device(y, device) if device is not None else y
        self.batch_size, self.seed, self.bucket = batch_size, seed, bucket

    def __len__(self) -> int:
        return -(-n_rows(self.y) // self.batch_size)

    def to(self, device) -> BucketBatcher:
        self.x, self.y = to_device(self.x, device), to_device(self.y, device)
        return self

    def _batches(self, epoch: int) -> list[np.ndarray]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(n_rows(self.y), generator=gen).numpy()
        size = self.batch_size * self.bucket
        batches = []
        for c in range(0, len(perm), size):
            chunk = perm[c : c + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        order = torch.randperm(len(batches), generator=gen).tolist()
        return [batches[i] for i in order]

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Tensors, Tensors]]:
        device = self.x.device if isinstance(self.x, torch.Tensor) else self.x[self.text_keys[0]].device
        for idx in self._batches(epoch)[start:]:
            rows = torch.from_numpy(idx).to(device)
            # each text's longest in the batch (at least 1: a batch of empty titles still has a time axis)
            longest = {k: max(1, int(lengths[idx].max())) for k, lengths in self.key_lengths.items()}
            if isinstance(self.x, torch.Tensor):
                yield self.x.index_select(0, rows)[:, : longest[None]], index_select(self.y, rows)
            else:
                xb = index_select(self.x, rows)
                for k in self.text_keys:
                    xb[k] = xb[k][:, : longest[k]]  # (B, longest)
                yield xb, index_select(self.y, rows)

    def __iter__(self):
        return self.epoch(0)
