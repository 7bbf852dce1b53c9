"""`regression`: k values per row, standardised by features.json: Linear to k, MSE / L1 / Huber."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}


class RegressionHead(nn.Module):
    def __init__(self, in_dim: int, k: int = 1, loss: str = "mse"):
        super().__init__()
        self.proj = nn.Linear(in_dim, k)
        self.loss_name = loss

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)  # (B, k) standardised values

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LOSSES[self.loss_name](out.float(), target.float().reshape(out.shape))  # target (B, k) or (B,) for k = 1


def build(cfg, in_dim: int, output) -> RegressionHead:
    loss = getattr(cfg, "loss", "auto")
    return RegressionHead(in_dim, output.n_outputs, "mse" if loss in (None, "auto") else loss)
