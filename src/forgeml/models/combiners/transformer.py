"""`transformer`: the FT-Transformer idea (Gorishniy et al. 2021) over encoder outputs.

Each encoder's vector is projected to one d_model token; a learned [CLS] token is put in front;
pre-norm Transformer blocks (attention through F.scaled_dot_product_attention) let the features
attend to each other; the [CLS] token's final vector is the row's vector.
"""

from __future__ import annotations

import torch
from torch import nn

from forgeml.models.encoders.transformer import EncoderBlock


class TransformerCombiner(nn.Module):
    def __init__(self, cfg, in_dims: list[int]):
        super().__init__()
        self.tokens = nn.ModuleList(nn.Linear(d, cfg.d_model) for d in in_dims)  # one projection per encoder
        self.kind = nn.Parameter(torch.zeros(len(in_dims), cfg.d_model).normal_(0, 0.02))  # which feature a token is
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model).normal_(0, 0.02))
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.out_dim = cfg.d_model

    def forward(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        x = torch.stack([proj(v) for proj, v in zip(self.tokens, vectors)], dim=1) + self.kind  # (B, F, C)
        B = x.shape[0]
        x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1)  # (B, 1+F, C)
        keep = torch.ones(B, x.shape[1], dtype=torch.bool, device=x.device)  # every token is real
        for block in self.blocks:
            x = block(x, keep)
        return self.ln_f(x[:, 0])  # (B, C): the [CLS] token


def build(cfg, in_dims: list[int]) -> TransformerCombiner:
    return TransformerCombiner(cfg, in_dims)
