"""`tabular`: numbers, flags and categories of a row into one vector.

Numbers and flags pass through as they are (already standardised by features.json); each category
index becomes a one-hot vector (the default: exactly the input forgeml's MLP has always read) or,
with `embed_dim`, a learned embedding. An image given to it is flattened (an MLP on pixels).
A category may also come as float (B, V+1) weights over its values (a one-hot row is the same as its index):
explanations interpolate between values that way, as tokens and categories themselves cannot be interpolated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from forgeml.models.encoders.base import check_kinds

READS = ("numeric", "binary", "category", "image")


class TabularEncoder(nn.Module):
    def __init__(self, features: list, embed_dim: int = 0):
        super().__init__()
        self.names = [f.name for f in features]
        self.categories = {f.name: f.width for f in features if f.kind == "category"}  # name -> vocabulary + unknown
        self.embed_dim = embed_dim
        self.embeddings = nn.ModuleDict()
        if embed_dim:
            for i, width in enumerate(self.categories.values()):
                self.embeddings[str(i)] = nn.Embedding(width, embed_dim)
        self._embedding_of = {name: str(i) for i, name in enumerate(self.categories)}
        width_of = {f.name: (embed_dim or f.width) if f.kind == "category" else f.width for f in features}
        self.out_dim = sum(width_of.values())

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name in self.names:
            x = inputs[name]
            if name in self.categories and x.is_floating_point():  # (B, V+1) weights over the values (explain/ interpolates them)
                x = x @ self.embeddings[self._embedding_of[name]].weight if self.embed_dim else x  # (B, E) or (B, V+1)
            elif name in self.categories:  # int64 (B,) indices, 0 = unknown
                if self.embed_dim:
                    x = self.embeddings[self._embedding_of[name]](x)  # (B, E)
                else:
                    x = F.one_hot(x, self.categories[name]).float()  # (B, V+1)
            parts.append(x.flatten(1).float())  # (B, w): a numeric (B, 1|2) or an image (B, C*H*W)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (B, out_dim)


def build(cfg, features: list) -> TabularEncoder:
    check_kinds("tabular", features, READS, "model.encoders")
    return TabularEncoder(features, getattr(cfg, "embed_dim", 0))
