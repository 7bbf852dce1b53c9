"""`class`: one label per row: Linear to K logits, cross entropy (label smoothing, class weights)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def balanced_class_weights(counts: list[int]) -> list[float]:
    """n / (k * count_c): rare classes weigh more, the average weight is 1."""
    total, k = sum(counts), len(counts)
    return [total / (k * c) if c else 0.0 for c in counts]


class ClassHead(nn.Module):
    def __init__(self, in_dim: int, n_classes: int, label_smoothing: float = 0.0, class_weights: list[float] | None = None):
        super().__init__()
        self.proj = nn.Linear(in_dim, n_classes)
        self.label_smoothing = label_smoothing
        # a buffer moves with the model to its device; not saved: it is the config's, not learned
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32) if class_weights else None,
                             persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)  # (B, K) logits

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), target, weight=self.class_weights, label_smoothing=self.label_smoothing)

    def eval_loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), target)  # the reported loss: no smoothing, no weights


def build(cfg, in_dim: int, output) -> ClassHead:
    """cfg: the output's settings (label_smoothing, class_weights resolved); output: fitted ClassLabels."""
    return ClassHead(in_dim, output.n_outputs, getattr(cfg, "label_smoothing", 0.0) or 0.0, getattr(cfg, "class_weights", None))
