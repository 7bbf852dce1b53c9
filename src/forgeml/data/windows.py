"""Random windows of a token stream: x = tokens[i : i+T], y = tokens[i+1 : i+T+1].

An "epoch" is a fixed number of batches whose offsets come from a generator seeded by (seed, epoch),
so batch k of epoch e is the same on every run and after a resume. The stream stays memory-mapped:
each batch reads only its B windows (one fancy-index gather). With `keys` (input, output), batches are the
Network's dicts: ({input: x}, {output: y}); without, plain (x, y) tensors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


class WindowBatcher:
    def __init__(self, tokens: np.ndarray, block_size: int, batch_size: int, batches_per_epoch: int, seed: int = 0,
                 device: str | torch.device = "cpu", sequential: bool = False, keys: tuple[str, str] | None = None):
        if len(tokens) <= block_size:
            raise ValueError(f"{len(tokens)} tokens cannot fill one window of {block_size}")
        self.tokens, self.T, self.B = tokens, block_size, batch_size
        self.seed, self.device, self.sequential, self.keys = seed, torch.device(device), sequential, keys
        self.n_windows = len(tokens) - block_size  # random windows may start anywhere a target still follows
        self.n_tiles = (len(tokens) - 1) // block_size  # sequential: non-overlapping windows covering the text
        self.batches = batches_per_epoch if not sequential else -(-self.n_tiles // batch_size)
        self._span = np.arange(block_size + 1)

    def __len__(self) -> int:
        return self.batches

    def to(self, device) -> WindowBatcher:
        self.device = torch.device(device)
        return self

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Any, Any]]:
        if self.sequential:  # evaluation: non-overlapping windows from the start, the same every time (last batch shorter)
            tiles = np.arange(self.n_tiles) * self.T
            offsets = [tiles[k * self.B : (k + 1) * self.B] for k in range(self.batches)]
        else:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            offsets = torch.randint(0, self.n_windows, (self.batches, self.B), generator=gen).numpy()
        pin = self.device.type == "cuda"
        for k in range(start, self.batches):
            buf = torch.from_numpy(self.tokens[offsets[k][:, None] + self._span].astype(np.int64))  # (B, T+1)
            if pin:
                buf = buf.pin_memory().to(self.device, non_blocking=True)  # copy overlaps the previous step
            x, y = buf[:, :-1], buf[:, 1:]  # (B, T) each: y is x shifted by one token
            yield ({self.keys[0]: x}, {self.keys[1]: y}) if self.keys else (x, y)

    def __iter__(self):
        return self.epoch(0)
