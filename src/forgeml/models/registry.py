"""Models by name: the config's `model.name` picks the builder; the task fixes the head size."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from forgeml.models.init import initialise

Builder = Callable[..., nn.Module]


def _mlp(cfg, in_shape, n_outputs, vocab_size=None):
    from forgeml.models.mlp import MLP

    return MLP(cfg, int(torch.tensor(in_shape).prod()), n_outputs)


def _cnn(cfg, in_shape, n_outputs, vocab_size=None):
    from forgeml.models.cnn import CNN

    if len(in_shape) != 3:
        raise ValueError(f"a cnn needs image inputs (C, H, W); this data has shape {in_shape}: use model.name: mlp")
    return CNN(cfg, in_shape, n_outputs)


def _gpt(cfg, in_shape, n_outputs, vocab_size=None):
    from forgeml.models.gpt import GPT

    return GPT(cfg, vocab_size or n_outputs)


def _rnn(cfg, in_shape, n_outputs, vocab_size=None):
    from forgeml.models.rnn import RNNClassifier

    if not vocab_size:
        raise ValueError("an rnn reads token ids: the data needs a text column (data.features: {col: text})")
    return RNNClassifier(cfg, vocab_size, n_outputs)


def _transformer(cfg, in_shape, n_outputs, vocab_size=None):
    from forgeml.models.transformer import TransformerClassifier

    if not vocab_size:
        raise ValueError("a transformer reads token ids: the data needs a text column (data.features: {col: text})")
    return TransformerClassifier(cfg, vocab_size, in_shape[0], n_outputs)


def _custom(cfg, in_shape, n_outputs, vocab_size=None):
    from forgeml.models.custom import build_custom

    return build_custom(cfg, in_shape, n_outputs)


REGISTRY: dict[str, Builder] = {"mlp": _mlp, "cnn": _cnn, "rnn": _rnn, "transformer": _transformer, "gpt": _gpt, "custom": _custom}


def build_model(cfg, in_shape: list[int], n_outputs: int, seed: int | None = None, vocab_size: int | None = None) -> nn.Module:
    """Build and initialise the model named by cfg.name. `seed` makes the initial weights repeatable;
    `vocab_size` is for models that read token ids."""
    from forgeml.errors import ConfigError

    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = REGISTRY[cfg.name](cfg, list(in_shape), n_outputs, vocab_size)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    if cfg.name == "gpt":
        return model  # GPT-2 initialisation is the model's own
    return initialise(model, cfg.init, getattr(cfg, "activation", "relu"))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
