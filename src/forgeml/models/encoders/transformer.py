"""`transformer`: text into a vector: token + position embeddings -> pre-norm blocks -> pooling.

Attention runs through F.scaled_dot_product_attention with the padding mask, so padded tokens are
never attended to. Pooling is a learned [CLS] token or the masked mean of the token vectors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from forgeml.config import TransformerConfig
from forgeml.errors import ConfigError
from forgeml.models.encoders.base import check_kinds

READS = ("text",)


def sinusoidal(length: int, dim: int) -> torch.Tensor:
    """The fixed position table of 'Attention is all you need': (length, dim)."""
    pos = torch.arange(length)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.heads, self.dropout = cfg.heads, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        mask = keep[:, None, None, :]  # (B, 1, 1, T): every query may look at the real tokens only
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class EncoderBlock(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.ff_mult * cfg.d_model), nn.GELU(),
                                 nn.Linear(cfg.ff_mult * cfg.d_model, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), keep))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: TransformerConfig, name: str, vocab_size: int, max_length: int):
        super().__init__()
        self.cfg, self.name = cfg, name
        self.embed = nn.Embedding(vocab_size, cfg.d_model, padding_idx=0)
        positions = max_length + 1  # + the [CLS] slot
        if cfg.positions == "learned":
            self.pos = nn.Parameter(torch.zeros(positions, cfg.d_model).normal_(0, 0.02))
        else:
            self.register_buffer("pos", sinusoidal(positions, cfg.d_model), persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model)) if cfg.pooling == "cls" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.out_dim = cfg.d_model

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = inputs[self.name]  # (B, T) token ids, 0 = padding
        B, T = ids.shape
        keep = ids != 0  # (B, T)
        x = self.embed(ids)  # (B, T, C)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1)  # (B, 1+T, C)
            keep = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=ids.device), keep], dim=1)
        x = self.drop(x + self.pos[: x.shape[1]])
        for block in self.blocks:
            x = block(x, keep)
        x = self.ln_f(x)
        if self.cls is not None:
            pooled = x[:, 0]  # (B, C)
        else:
            pooled = (x * keep[:, :, None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return pooled  # (B, out_dim)


def build(cfg: TransformerConfig, features: list) -> TransformerEncoder:
    check_kinds("transformer", features, READS, "model.encoders")
    if len(features) != 1:
        raise ConfigError(f"model.encoders: a transformer reads one text; give each of {', '.join(f.name for f in features)} its own encoder (model.name: composite)")
    return TransformerEncoder(cfg, features[0].name, features[0].vocab_size, features[0].max_length)
