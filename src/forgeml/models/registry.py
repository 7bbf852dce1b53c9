"""The GPT language model by its config (it keeps its own road until it moves onto the Network; every
other model is built by models/compose.py as encoders -> combiner -> heads)."""

from __future__ import annotations

import torch
from torch import nn


def build_model(cfg, in_shape: list[int], n_outputs: int, seed: int | None = None, vocab_size: int | None = None) -> nn.Module:
    """Build the GPT named by cfg (model.name: gpt). `seed` makes the initial weights repeatable."""
    from forgeml.models.gpt import GPT

    if cfg.name != "gpt":
        raise ValueError(f"build_model builds the gpt only; {cfg.name!r} is built by forgeml.models.build_network")
    if seed is not None:
        torch.manual_seed(seed)
    return GPT(cfg, vocab_size or n_outputs)  # GPT-2 initialisation is the model's own


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
