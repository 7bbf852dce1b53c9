"""`cnn`: an image into a vector: conv blocks, then a flatten or global average, then fully connected layers.

The MNIST example of PyTorch is this with blocks [32 k3, 64 k3 pool2 dropout .25], hidden [128], dropout .5,
and a class head on top.
"""

from __future__ import annotations

import torch
from torch import nn

from forgeml.config import CNNConfig, ConvBlockConfig
from forgeml.errors import ConfigError
from forgeml.models.encoders.base import check_kinds
from forgeml.models.layers import activation

READS = ("image", "audio")  # audio: its log-mel spectrogram, (1, n_mels, frames)


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


class CNNEncoder(nn.Module):
    def __init__(self, cfg: CNNConfig, name: str, in_shape: list[int]):
        super().__init__()
        self.name = name
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
        self.out_dim = flat

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.features(inputs[self.name])  # (B, C, h, w)
        x = self.pool(x).flatten(1)  # (B, C*h*w) or (B, C)
        return self.classifier(x)  # (B, out_dim)


def build(cfg: CNNConfig, features: list) -> CNNEncoder:
    check_kinds("cnn", features, READS, "model.encoders")
    if len(features) != 1:
        raise ConfigError(f"model.encoders: a cnn reads one image; give each of {', '.join(f.name for f in features)} its own encoder (model.name: composite)")
    try:
        return CNNEncoder(cfg, features[0].name, list(features[0].shape))
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
