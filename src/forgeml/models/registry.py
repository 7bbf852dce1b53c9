"""Models by name: the config's `model.name` picks the builder; the task fixes the head size."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from forgeml.models.init import initialise

Builder = Callable[..., nn.Module]


def _mlp(cfg, in_shape, n_outputs):
    from forgeml.models.mlp import MLP

    return MLP(cfg, int(torch.tensor(in_shape).prod()), n_outputs)


def _cnn(cfg, in_shape, n_outputs):
    from forgeml.models.cnn import CNN

    if len(in_shape) != 3:
        raise ValueError(f"a cnn needs image inputs (C, H, W); this data has shape {in_shape}: use model.name: mlp")
    return CNN(cfg, in_shape, n_outputs)


def _custom(cfg, in_shape, n_outputs):
    from forgeml.models.custom import build_custom

    return build_custom(cfg, in_shape, n_outputs)


REGISTRY: dict[str, Builder] = {"mlp": _mlp, "cnn": _cnn, "custom": _custom}


def build_model(cfg, in_shape: list[int], n_outputs: int, seed: int | None = None) -> nn.Module:
    """Build and initialise the model named by cfg.name. `seed` makes the initial weights repeatable."""
    from forgeml.errors import ConfigError

    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = REGISTRY[cfg.name](cfg, list(in_shape), n_outputs)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    return initialise(model, cfg.init, getattr(cfg, "activation", "relu"))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
