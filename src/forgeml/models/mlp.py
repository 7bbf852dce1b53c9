"""Multi-layer perceptron for tabular inputs: [Linear -> norm -> activation -> dropout] x n -> Linear."""

from __future__ import annotations

import torch
from torch import nn

from forgeml.config import MLPConfig
from forgeml.models.layers import activation


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig, in_features: int, n_outputs: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for hidden in cfg.hidden:
            layers.append(nn.Linear(width, hidden, bias=cfg.norm != "batch"))  # batch norm has its own bias
            if cfg.norm == "batch":
                layers.append(nn.BatchNorm1d(hidden))
            elif cfg.norm == "layer":
                layers.append(nn.LayerNorm(hidden))
            layers.append(activation(cfg.activation))
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, D)
        return self.head(self.body(x))  # (B, n_outputs)
