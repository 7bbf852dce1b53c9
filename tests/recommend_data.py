"""Ratings generated for the recommendation tests: a planted low-rank matrix, so that a model can be checked against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def planted_ratings(path: Path, users: int = 120, items: int = 60, per_user: int = 30, rank: int = 3, noise: float = 0.2,
                    seed: int = 0) -> float:
    """Write user,item,rating,time rows of a rank-`rank` matrix (plus noise), clipped to [1, 5]; returns the ratings' std
    (the RMSE of always predicting the mean, what a model must beat)."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(users, rank)), rng.normal(size=(items, rank))
    true = np.clip(3 + 0.7 * p @ q.T, 1, 5)
    lines, values = ["user,item,rating,time"], []
    for u in range(users):
        for t, i in enumerate(rng.choice(items, per_user, replace=False)):
            r = float(np.clip(true[u, i] + rng.normal(0, noise), 1, 5))
            values.append(r)
            lines.append(f"u{u},i{i},{r:.3f},{t}")
    path.write_text("\n".join(lines) + "\n")
    return float(np.std(values))
