"""`rnn`: text into a vector: token embedding -> LSTM or GRU (stacked, optionally bidirectional) -> pooling.

Padding (id 0) never reaches the recurrence: sequences are packed by their true lengths, and mean/max
pooling masks padded steps out.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from forgeml.config import RNNConfig
from forgeml.errors import ConfigError
from forgeml.models.encoders.base import check_kinds

READS = ("text",)


class RNNEncoder(nn.Module):
    def __init__(self, cfg: RNNConfig, name: str, vocab_size: int):
        super().__init__()
        self.cfg, self.name = cfg, name
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=0)
        cell = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = cell(cfg.embed_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True, bidirectional=cfg.bidirectional,
                        dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.directions = 2 if cfg.bidirectional else 1
        self.out_dim = cfg.hidden * self.directions

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = inputs[self.name]  # (B, T) token ids, 0 = padding
        B, T = ids.shape
        mask = ids != 0  # (B, T)
        lengths = mask.sum(1).clamp(min=1).cpu()  # pack needs host lengths: one small copy per batch
        x = self.drop(self.embed(ids))  # (B, T, E)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.cfg.pooling == "last":
            h = state[0] if self.cfg.cell == "lstm" else state  # (layers * dirs, B, H)
            pooled = h[-self.directions :].transpose(0, 1).reshape(B, -1)  # (B, dirs * H): the top layer, both ways
        else:
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, dirs * H), zeros past each length
            keep = mask[:, :, None]
            if self.cfg.pooling == "mean":
                pooled = (out * keep).sum(1) / keep.sum(1).clamp(min=1)
            else:
                pooled = out.masked_fill(~keep, float("-inf")).max(1).values
        return self.drop(pooled)  # (B, out_dim)


def build(cfg: RNNConfig, features: list) -> RNNEncoder:
    check_kinds("rnn", features, READS, "model.encoders")
    if len(features) != 1:
        raise ConfigError(f"model.encoders: an rnn reads one text; give each of {', '.join(f.name for f in features)} its own encoder (model.name: composite)")
    return RNNEncoder(cfg, features[0].name, features[0].vocab_size)
