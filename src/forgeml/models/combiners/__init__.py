"""Combiners by name: the encoders' vectors, a list of (B, D_i), into one (B, out_dim).

Each file: an nn.Module with `out_dim` and `forward(vectors)`, and `build(cfg_section, in_dims)`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from forgeml.models.combiners import concat, transformer

CombinerBuilder = Callable[..., nn.Module]  # build(cfg_section, in_dims: list[int]) -> Combiner

COMBINERS: dict[str, CombinerBuilder] = {
    "concat": concat.build,
    "transformer": transformer.build,
}
