"""Encoders by name: one input feature (or a group, for `tabular`) into one vector per row, (B, out_dim).

Each file holds one encoder: an nn.Module with `out_dim` and `forward(inputs: dict[str, Tensor])`
that picks its own feature(s) from the dict, and `build(cfg_section, features) -> Encoder`.
Adding one is that file plus a line here (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from forgeml.models.encoders import (
    cnn,
    conv1d,
    frames,
    gpt,
    pretrained,
    recurrent_series,
    rnn,
    tabular,
    transformer,
)

EncoderBuilder = Callable[..., nn.Module]  # build(cfg_section, features: list[fitted feature]) -> Encoder

ENCODERS: dict[str, EncoderBuilder] = {
    "tabular": tabular.build,
    "cnn": cnn.build,
    "rnn": rnn.build,
    "transformer": transformer.build,
    "conv1d": conv1d.build,
    "gru": recurrent_series.build_gru,
    "lstm": recurrent_series.build_lstm,
    "gpt": gpt.build,
    "pretrained": pretrained.build,
    "frames": frames.build,
}
