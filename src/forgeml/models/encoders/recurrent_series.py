"""GRU or LSTM over a numeric series, one step at a time.

    series (B, T, C) -> Linear to `input_dim` per step (optional) -> GRU/LSTM (stacked, optionally both ways)
                     -> last state, or the mean/max over real steps -> (B, out_dim)

Rows of different lengths arrive zero-padded with `<name>.length` beside them (docs/contract.md). The
recurrence never reads the padding: the batch is packed by the true lengths, so a row's last state is
taken at its own last step, and mean/max pooling leave padded steps out. Padding therefore cannot change
a row's output.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ValidationError
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from forgeml.config import RecurrentSeriesConfig, format_validation_error
from forgeml.errors import ConfigError
from forgeml.models.encoders.base import sequence_feature


class RecurrentSeriesEncoder(nn.Module):
    def __init__(self, cfg: RecurrentSeriesConfig, feature: str, in_channels: int):
        super().__init__()
        self.cfg, self.feature = cfg, feature
        self.proj = nn.Linear(in_channels, cfg.input_dim) if cfg.input_dim else nn.Identity()
        cell = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = cell(cfg.input_dim or in_channels, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                        bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.directions = 2 if cfg.bidirectional else 1
        self.out_dim: int = cfg.hidden * self.directions

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.proj(inputs[self.feature])  # (B, T, I)
        B, T, _ = x.shape
        lengths = inputs.get(f"{self.feature}.length")
        if lengths is None:  # every row is whole: no packing, the plain (faster) cuDNN path
            out, state = self.rnn(x)  # out: (B, T, dirs * H)
        else:
            # pack needs host lengths: one small copy per batch, the price of never reading padding
            packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, dirs * H), zeros past each end
        if self.cfg.pooling == "last":
            h = state[0] if self.cfg.cell == "lstm" else state  # (layers * dirs, B, H)
            pooled = h[-self.directions :].transpose(0, 1).reshape(B, -1)  # (B, dirs * H): the top layer, both ways
        else:
            keep = (torch.arange(T, device=x.device)[None, :] < lengths[:, None])[:, :, None] if lengths is not None \
                else torch.ones(B, T, 1, dtype=torch.bool, device=x.device)  # (B, T, 1): real steps
            if self.cfg.pooling == "mean":
                pooled = (out * keep).sum(1) / keep.sum(1).clamp(min=1)  # (B, dirs * H)
            else:
                pooled = out.masked_fill(~keep, float("-inf")).max(1).values  # (B, dirs * H)
        return self.drop(pooled)


def build(cfg_section: dict[str, Any] | RecurrentSeriesConfig | None, features: list[Any], cell: str | None = None) -> RecurrentSeriesEncoder:
    """A GRU/LSTM encoder for one sequence feature (`features`: [a fitted SequenceFeature]); `cell`
    overrides the section's cell (the registry's `gru` and `lstm` names use it).

    >>> from forgeml.data.features.sequence import SequenceFeature
    >>> enc = build({"hidden": 16}, [SequenceFeature("s", channels=2, length=10)])
    >>> enc({"s": torch.zeros(4, 10, 2)}).shape
    torch.Size([4, 32])
    """
    section = dict(cfg_section.model_dump() if isinstance(cfg_section, RecurrentSeriesConfig) else (cfg_section or {}))
    if cell is not None:
        section.update(name=cell, cell=cell)
    feature = sequence_feature(section.get("name", "gru"), features)
    try:
        cfg = RecurrentSeriesConfig(**section)
    except ValidationError as exc:
        where = f"model.encoders.{feature.name}"
        raise ConfigError("; ".join(line.strip() for line in format_validation_error(exc, RecurrentSeriesConfig, where).splitlines())) from None
    return RecurrentSeriesEncoder(cfg, feature.name, feature.channels)


def build_gru(cfg_section: dict[str, Any] | RecurrentSeriesConfig | None, features: list[Any]) -> RecurrentSeriesEncoder:
    return build(cfg_section, features, cell="gru")


def build_lstm(cfg_section: dict[str, Any] | RecurrentSeriesConfig | None, features: list[Any]) -> RecurrentSeriesEncoder:
    return build(cfg_section, features, cell="lstm")
