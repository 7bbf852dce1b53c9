"""Losses by name. Regression losses accept (B, 1) outputs against (B,) targets."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NAMES = ("cross_entropy", "mse", "l1", "huber", "bce")


class _Regression(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.dim() == 2 and out.shape[1] == 1 and y.dim() == 1:
            out = out.squeeze(1)  # (B, 1) -> (B,)
        return self.fn(out.float(), y.float())


def build_loss(name: str, label_smoothing: float = 0.0, class_weights: list[float] | None = None) -> nn.Module:
    """cross_entropy (label smoothing, class weights), mse, l1, huber, bce (with logits)."""
    if name == "cross_entropy":
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    if name == "mse":
        return _Regression(F.mse_loss)
    if name == "l1":
        return _Regression(F.l1_loss)
    if name == "huber":
        return _Regression(F.huber_loss)
    if name == "bce":
        return _Regression(F.binary_cross_entropy_with_logits)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(NAMES)}")
