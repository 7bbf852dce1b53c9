"""Recommendation models by name (model.name: mf, two_tower): one file each, a line here.

Every one takes {"user": (B,) int64, "item": (B,) int64} and returns {"user": (B, D), "item": (B, D)}, vectors whose
row-wise dot product is the score, and has user_vectors(users) and item_vectors(items): ranking all items for a batch
of users is user_vectors(users) @ item_vectors(all).T (evaluation/ranking.py, the Predictor's recommend).
"""

from __future__ import annotations

import torch
from torch import nn


def _mf(cfg, features, side) -> nn.Module:
    from forgeml.models.mf import MatrixFactorization

    model = MatrixFactorization(len(features.users), len(features.items), cfg.dim, cfg.biases, cfg.init_std, cfg.reg)
    if features.explicit:
        model.set_global_bias(features.rating_mean)
    return model


def _two_tower(cfg, features, side) -> nn.Module:
    from forgeml.models.two_tower import TwoTower

    return TwoTower(cfg, features, side or {})


RECOMMENDERS = {"mf": _mf, "two_tower": _two_tower}


def build_recommender(cfg, features, side: dict[str, torch.Tensor] | None = None, seed: int | None = None) -> nn.Module:
    """cfg: the model section (MFConfig, TwoTowerConfig); features: the run's RecFeatures (vocabularies, side features);
    side: two_tower's per-id feature tensors ('user.<col>', 'item.<col>'; the Predictor reads them from the weights)."""
    if seed is not None:
        torch.manual_seed(seed)
    return RECOMMENDERS[cfg.name](cfg, features, side)
