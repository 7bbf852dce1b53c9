"""What a recommendation bundle's features.json holds: the id vocabularies and the fitted side features.

    {"version": ..., "kind": "recommend", "task": "recommend", "users": [raw ids in index order], "items": [...],
     "explicit": bool, "rating_range": [lo, hi] | null, "rating_mean": float, "item_counts": [per item],
     "user_features": [fitted feature JSON, ...], "item_features": [...]}

The side features (two_tower's data.user_features / item_features) are ordinary fitted features (data/features/),
fitted on one row per user (item): the same kinds, the same JSON, the same transform as every other run's columns.
The training interactions per user (for "exclude seen") are not here but in seen.safetensors (CSR arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.errors import DataError

KIND = "recommend"
VERSION = 1


def fit_side(cols: Columns | None, cfg: DataConfig) -> list:
    """Fitted features of the side columns (one row per id), each of its kind (data.features, or inferred)."""
    from forgeml.data.features import KINDS
    from forgeml.data.featureset import infer_kind

    if cols is None:
        return []
    fitted = []
    for name, values in cols.data.items():
        kind = cfg.features.get(name) or infer_kind(values)
        if kind not in ("numeric", "category", "binary", "text"):
            raise DataError(f"{cols.origin}: column {name!r} is read as {kind}; user and item features take numeric, category, "
                            "binary or text columns (set data.features: {" + name + ": category})")
        cls = KINDS[kind]
        if kind == "category":
            feat = cls(name, min_count=cfg.category_min_count, max_vocab=cfg.category_max_vocab)
        elif kind == "text":
            feat = cls(name, max_length=cfg.text.max_length, settings=cfg.text.model_dump())
        else:
            feat = cls(name)
        with cols.citing_rows():
            fitted.append(feat.fit(values, cols.origin))
    return fitted


class RecFeatures:
    def __init__(self, users: list[str], items: list[str], explicit: bool, rating_range: list[float] | None = None,
                 rating_mean: float = 0.0, item_counts: list[int] | None = None, user_features: list | None = None,
                 item_features: list | None = None):
        self.users, self.items, self.explicit = users, items, explicit
        self.rating_range, self.rating_mean = rating_range, rating_mean
        self.item_counts = item_counts or [0] * len(items)
        self.user_features, self.item_features = user_features or [], item_features or []
        self.user_index = {u: i for i, u in enumerate(users)}
        self.item_index = {v: i for i, v in enumerate(items)}

    task = "recommend"

    @property
    def inputs(self) -> list:
        return self.user_features + self.item_features

    @property
    def outputs(self) -> list:
        return []

    def side_tensors(self, which: str, cols: Columns) -> dict[str, torch.Tensor]:
        """The `which` ("user" or "item") features of the rows of `cols`, as the tower takes them."""
        from forgeml.data.featureset import FeatureSet

        feats = self.user_features if which == "user" else self.item_features
        return FeatureSet(feats, []).transform_inputs(cols) if feats else {}

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "kind": KIND, "task": self.task, "users": self.users, "items": self.items,
                "explicit": self.explicit, "rating_range": self.rating_range, "rating_mean": self.rating_mean,
                "item_counts": [int(c) for c in self.item_counts],
                "user_features": [f.to_json() for f in self.user_features],
                "item_features": [f.to_json() for f in self.item_features]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RecFeatures:
        from forgeml.data.features import KINDS

        if d.get("kind") != KIND or d.get("version") != VERSION:
            raise DataError(f"features.json is not a recommendation run's (kind {d.get('kind')!r}, version {d.get('version')})")
        side = {k: [KINDS[f["kind"]].from_json(f) for f in d.get(k, [])] for k in ("user_features", "item_features")}
        return cls(d["users"], d["items"], d["explicit"], d.get("rating_range"), d.get("rating_mean", 0.0),
                   d.get("item_counts"), **side)

    @classmethod
    def from_data(cls, data, cfg: DataConfig) -> RecFeatures:
        train = data.splits["train"]
        return cls(data.users, data.items, data.explicit, list(cfg.rating_range) if cfg.rating_range else None,
                   float(np.mean(train.rating)) if train.rating is not None else 0.0, data.item_counts().tolist(),
                   fit_side(data.side.get("user"), cfg), fit_side(data.side.get("item"), cfg))
