"""A small generated table for the federated tests: two numeric columns, a category, a binary, a class label that
the numeric columns decide (a model can learn it in a few steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_table(path: Path, n: int = 240, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    flag = rng.choice(["yes", "no"], size=n)
    label = np.where(x1 + 0.5 * x2 > 0, "pos", "neg")
    lines = ["x1,x2,color,flag,label"] + [f"{a:.5f},{b:.5f},{c},{f},{y}" for a, b, c, f, y in zip(x1, x2, color, flag, label)]
    path.write_text("\n".join(lines) + "\n")
    return path


def table_config(data: Path, runs: Path, **federate) -> dict:
    return {"name": "tiny", "runs_dir": str(runs),
            "data": {"path": str(data), "target": "label", "split": {"val": 0.2, "test": 0.2, "seed": 0}},
            "model": {"name": "mlp", "hidden": [16]},
            "train": {"batch_size": 32, "lr": 0.01, "optimizer": "adam", "progress": False, "tensorboard": False,
                      "monitor": "val.accuracy"},
            "federate": {"clients": 2, "rounds": 2, "round_timeout": 60, **federate}}
