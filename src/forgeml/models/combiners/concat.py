"""`concat`: the encoders' vectors side by side, then an optional MLP.

With no hidden layers it is the plain concatenation (what a single-encoder model needs); with
`hidden: [128, 64]` it is forgeml's MLP body: [Linear -> norm -> activation -> dropout] per layer.
"""

from __future__ import annotations

import torch
from torch import nn

from forgeml.models.layers import activation


class ConcatCombiner(nn.Module):
    def __init__(self, in_dims: list[int], hidden: list[int] = (), act: str = "relu", dropout: float = 0.0, norm: str = "none"):
        super().__init__()
        layers: list[nn.Module] = []
        width = sum(in_dims)
        for size in hidden:
            layers.append(nn.Linear(width, size, bias=norm != "batch"))  # batch norm has its own bias
            if norm == "batch":
                layers.append(nn.BatchNorm1d(size))
            elif norm == "layer":
                layers.append(nn.LayerNorm(size))
            layers.append(activation(act))
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        self.body = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        x = vectors[0] if len(vectors) == 1 else torch.cat(vectors, dim=1)  # (B, sum D_i)
        return self.body(x)  # (B, out_dim)


def build(cfg, in_dims: list[int]) -> ConcatCombiner:
    return ConcatCombiner(in_dims, list(cfg.hidden), cfg.activation, cfg.dropout, cfg.norm)
