"""A language model's figures: mean next-token cross entropy (loss) and perplexity = exp(loss), streamed
over batches, and measured over a whole token stream in non-overlapping windows."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from forgeml.errors import RequestError


class Perplexity:
    """exp(mean next-token cross entropy), streamed over batches of logits (B, T, V) and targets (B, T)."""

    names = ["perplexity"]

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum"))
        self.count += targets.numel()

    def sync(self, reduce_sum) -> None:
        """Several processes: every rank's sums added up (`reduce_sum`: a tensor -> its sum over the ranks)."""
        both = reduce_sum(torch.tensor([self.total, float(self.count)], dtype=torch.float64))
        self.total, self.count = float(both[0]), int(both[1])

    def compute(self) -> dict[str, float]:
        return {"perplexity": math.exp(self.total / max(self.count, 1))}


@torch.no_grad()
def evaluate_tokens(network, features, tokens: np.ndarray | None, batch_size: int, device: torch.device) -> dict[str, float]:
    """Loss and perplexity of a language-model network over a whole token stream, in non-overlapping windows.
    `network`: the Network, or any callable from an input dict to its output dict (the ONNX Runtime graph's)."""
    from forgeml.data.windows import WindowBatcher

    corpus, target = features.inputs[0], features.outputs[0]
    T = corpus.block_size
    if tokens is None or len(tokens) <= T:
        raise RequestError(f"need more than {T} tokens to evaluate a model with context {T}")
    metric = Perplexity()
    windows = WindowBatcher(tokens, T, batch_size, 0, device=device, sequential=True, keys=(corpus.name, target.name))
    for x, y in windows.epoch(0):
        metric.update(network(x)[target.name], y[target.name])
    loss = metric.total / metric.count
    return {"loss": loss, "perplexity": math.exp(loss), "n_tokens": metric.count}
