"""`next_token`: every position's vector (B, T, C) into logits over the vocabulary (B, T, V), trained with
next-token cross entropy. A GPT ties its weight to the token embedding (models/compose.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NextTokenHead(nn.Module):
    def __init__(self, in_dim: int, vocab_size: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, vocab_size, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)  # (B, T, V)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross entropy of logits (B, T, V) against the next tokens (B, T)."""
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def build(cfg, in_dim: int, output) -> NextTokenHead:
    return NextTokenHead(in_dim, output.n_outputs)
