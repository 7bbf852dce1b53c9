"""Weight initialisation schemes by name: kaiming, xavier, normal, orthogonal (or the layer default)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def initialise(model: nn.Module, scheme: str, nonlinearity: str = "relu") -> nn.Module:
    """Re-initialise every Linear/Conv weight with `scheme`; biases to zero. 'default' leaves PyTorch's."""
    if scheme == "default":
        return model
    gain_name = "relu" if nonlinearity in ("relu", "gelu", "silu") else ("leaky_relu" if nonlinearity == "leaky_relu" else "tanh")
    for module in model.modules():
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            continue
        w = module.weight
        if scheme == "kaiming":
            nn.init.kaiming_normal_(w, nonlinearity=gain_name)
        elif scheme == "xavier":
            nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain(gain_name))
        elif scheme == "normal":
            nn.init.normal_(w, mean=0.0, std=0.02)
        elif scheme == "orthogonal":
            nn.init.orthogonal_(w, gain=nn.init.calculate_gain(gain_name))
        else:
            raise ValueError(f"unknown init scheme {scheme!r}")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return model
