"""Latency of a model, measured the same way for every variant: the median of repeated forward passes over a batch
of real held-out rows, after warm-up, with a stated number of threads. PyTorch eager and ONNX Runtime alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

BATCHES = (1, 64)
REPEATS = 30
WARMUP = 3


@dataclass
class Latency:
    batch: int
    median_ms: float
    repeats: int


def tiled(inputs: dict[str, torch.Tensor], rows: int) -> dict[str, torch.Tensor]:
    """The first `rows` rows of the inputs, repeated when there are fewer (a latency batch of 64 from 30 held-out rows)."""
    n = len(next(iter(inputs.values())))
    index = torch.arange(rows) % n
    return {k: v[index] for k, v in inputs.items()}


def median_ms(run: Callable[[], object], repeats: int = REPEATS, warmup: int = WARMUP) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def torch_latency(network: torch.nn.Module, inputs: dict[str, torch.Tensor], batches=BATCHES, repeats: int = REPEATS) -> list[Latency]:
    network.eval()
    out = []
    for b in batches:
        x = tiled(inputs, b)
        with torch.inference_mode():
            out.append(Latency(b, median_ms(lambda x=x: network(x), repeats), repeats))
    return out


def onnx_latency(session, inputs: dict[str, torch.Tensor], batches=BATCHES, repeats: int = REPEATS) -> list[Latency]:
    names = [i.name for i in session.get_inputs()]
    out = []
    for b in batches:
        feed = {k: np.ascontiguousarray(v.numpy()) for k, v in tiled(inputs, b).items() if k in names}
        out.append(Latency(b, median_ms(lambda feed=feed: session.run(None, feed), repeats), repeats))
    return out
