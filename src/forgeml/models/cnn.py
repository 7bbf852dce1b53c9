"""Convolutional network: conv blocks, then a flatten or global-average head, then fully connected layers.

The MNIST example of PyTorch is this with blocks [32 k3, 64 k3 pool2 dropout .25], hidden [128], dropout .5.
"""

from __future__ import annotations

import torch
from torch import nn

from forgeml.config import CNNConfig, ConvBlockConfig
from forgeml.models.layers import activation


def conv_block(cfg: ConvBlockConfig, in_channels: int, act: str) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, cfg.channels, cfg.kernel, cfg.stride, cfg.padding, bias=not cfg.batch_norm)]
    if cfg.batch_norm:
        layers.append(nn.BatchNorm2d(cfg.channels))
    layers.append(activation(act))
    if cfg.pool > 1:
        layers.append(nn.MaxPool2d(cfg.pool) if cfg.pool_type == "max" else nn.AvgPool2d(cfg.pool))
    if cfg.dropout:
        layers.append(nn.Dropout(cfg.dropout))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    def __init__(self, cfg: CNNConfig, in_shape: list[int], n_outputs: int):
        super().__init__()
        channels, height, width = in_shape
        blocks = []
        for block in cfg.blocks:
            blocks.append(conv_block(block, channels, cfg.activation))
            channels = block.channels
        self.features = nn.Sequential(*blocks)
        try:
            with torch.no_grad():  # size of the flattened maps, found by running a dummy image once
                maps = self.features(torch.zeros(1, in_shape[0], height, width))  # (1, C, h, w)
        except RuntimeError:
            maps = torch.zeros(1, channels, 0, 0)
        if maps.shape[-1] < 1 or maps.shape[-2] < 1:
            raise ValueError(f"the conv blocks shrink a {height}x{width} image to nothing; use padding or fewer pools")
        self.pool = nn.AdaptiveAvgPool2d(1) if cfg.head == "global_avg" else nn.Identity()
        flat = channels if cfg.head == "global_avg" else maps[0].numel()
        fc: list[nn.Module] = []
        for hidden in cfg.hidden:
            fc += ([nn.Dropout(cfg.dropout)] if cfg.dropout and fc else []) + [nn.Linear(flat, hidden), activation(cfg.activation)]
            flat = hidden
        if cfg.dropout:
            fc.append(nn.Dropout(cfg.dropout))
        self.classifier = nn.Sequential(*fc)
        self.head = nn.Linear(flat, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, h, w)
        x = self.pool(x).flatten(1)  # (B, C*h*w) or (B, C)
        return self.head(self.classifier(x))  # (B, n_outputs)
