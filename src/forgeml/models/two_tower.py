"""Two towers: a user tower and an item tower, each an id embedding beside the id's feature columns read by our
encoders (numeric/binary/category: the tabular encoder; text: the rnn encoder), then an MLP into a shared space of
width dim. score(u, i) = user_tower(u) . item_tower(i) (optionally cosine / temperature).

The features of every id (one row per user, one per item: data.user_features / data.item_features, fitted like any
run's columns) are held as buffers, indexed by id; they travel in model.safetensors ("side.user0", ...), so that a
bundle scores without its training table. With model.id_dim 0 a tower reads features only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TABULAR = ("numeric", "binary", "category")


def side_key(which: str, i: int) -> str:
    """The buffer name of the i-th feature column of a tower ("user0", "item2")."""
    return f"{which}{i}"


class Tower(nn.Module):
    def __init__(self, which: str, n_ids: int, features: list, side: dict[str, torch.Tensor], cfg):
        super().__init__()
        from forgeml.config import RNNConfig, TabularEncoderConfig
        from forgeml.models.encoders import ENCODERS

        self.which, self.names = which, [f.name for f in features]
        self.ids = nn.Embedding(n_ids, cfg.id_dim) if cfg.id_dim else None
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.05)
        self.side = nn.Module()  # the per-id feature tensors, as buffers: (n_ids, ...) each
        for i, f in enumerate(features):
            tensor = side.get(side_key(which, i))
            if tensor is None:
                raise ValueError(f"two_tower: no {which} feature tensor for {f.name!r}")
            self.side.register_buffer(side_key(which, i), tensor)
        tabular = [f for f in features if f.kind in TABULAR]
        self.encoders = nn.ModuleList()
        if tabular:
            self.encoders.append(ENCODERS["tabular"](TabularEncoderConfig(embed_dim=16), tabular))
        for f in features:
            if f.kind == "text":
                text_cfg = RNNConfig(cell="gru", embed_dim=32, hidden=32, bidirectional=False, dropout=0.0, pooling="mean")
                self.encoders.append(ENCODERS["rnn"](text_cfg, [f]))
        width = (cfg.id_dim or 0) + sum(e.out_dim for e in self.encoders)
        if width == 0:
            raise ValueError(f"two_tower: the {which} tower reads nothing: set model.id_dim > 0 or data.{which}_features")
        layers: list[nn.Module] = []
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = h
        layers.append(nn.Linear(width, cfg.dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.encoders and idx.dim() == 1 and len(idx) > 1:
            # each distinct id once: a batch of 1,024 interactions over a catalogue of 300 items runs the text encoder on
            # at most 300 titles, not 1,024
            uniq, inverse = idx.unique(return_inverse=True)
            if len(uniq) < len(idx):
                return self._encode(uniq)[inverse]  # (B, dim)
        return self._encode(idx)

    def _encode(self, idx: torch.Tensor) -> torch.Tensor:
        parts = [self.ids(idx)] if self.ids is not None else []  # (B, id_dim)
        if self.encoders:
            inputs = {name: getattr(self.side, side_key(self.which, i))[idx] for i, name in enumerate(self.names)}
            parts += [enc(inputs) for enc in self.encoders]  # (B, out_dim) each
        return self.mlp(torch.cat(parts, dim=1))  # (B, dim)

    def from_features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Vectors of ids the tower never saw, from their transformed feature columns alone (cold start; id_dim 0)."""
        if self.ids is not None or not self.encoders:
            raise ValueError(f"the {self.which} tower needs an id (model.id_dim > 0) or has no features")
        return self.mlp(torch.cat([enc(inputs) for enc in self.encoders], dim=1))  # (B, dim)


class TwoTower(nn.Module):
    def __init__(self, cfg, features, side: dict[str, torch.Tensor]):
        super().__init__()
        self.normalize, self.temperature = cfg.normalize, cfg.temperature
        self.user_tower = Tower("user", len(features.users), features.user_features, side, cfg)
        self.item_tower = Tower("item", len(features.items), features.item_features, side, cfg)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        u = self.user_tower(users)
        # cosine / temperature: the temperature goes on one side, so that the dot product is the score
        return F.normalize(u, dim=-1) / self.temperature if self.normalize else u

    def user_vectors_from_features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """A new user's vector from its feature columns (model.id_dim 0 and data.user_features): cold start."""
        u = self.user_tower.from_features(inputs)
        return F.normalize(u, dim=-1) / self.temperature if self.normalize else u

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        v = self.item_tower(items)
        return F.normalize(v, dim=-1) if self.normalize else v

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"user": self.user_vectors(x["user"]), "item": self.item_vectors(x["item"])}
