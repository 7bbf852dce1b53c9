"""Heads by name: the combined vector (B, D) into one output's tensor, each owning its loss.

Each file: an nn.Module with `forward(h)` and `loss(out, target) -> scalar` (optionally `eval_loss`,
the reported loss), and `build(cfg_section, in_dim, output)` with `output` the fitted target."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from forgeml.models.heads import classification, multilabel, next_token, regression

HeadBuilder = Callable[..., nn.Module]  # build(cfg_section, in_dim: int, output: fitted target) -> Head

HEADS: dict[str, HeadBuilder] = {
    "class": classification.build,
    "regression": regression.build,
    "multilabel": multilabel.build,
    "next_token": next_token.build,
}
