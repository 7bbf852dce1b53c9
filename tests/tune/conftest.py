"""Tiny studies: scikit-learn's wine (178 rows, 3 classes), a one-layer MLP, a few epochs: about a second a trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("optuna", reason="forgeml tune needs optuna: pip install 'forgeml[tune]'")


def wine_config(runs: Path, tmp: Path, space: dict[str, Any] | None = None, epochs: int = 2, **tune: Any) -> Path:
    """A YAML file: wine, 2 epochs of 4 steps, a tune section with `space` (default: lr and width) and the given tune fields."""
    cfg = {
        "name": "wine",
        "runs_dir": str(runs),
        "data": {"source": "sklearn", "path": "wine", "split": {"val": 0.2, "test": 0.2, "seed": 0}},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": epochs, "batch_size": 32, "monitor": "val.accuracy", "progress": False, "tensorboard": False,
                  "checkpoint_every_minutes": None},
        "eval": {"splits": ["val"]},
        "tune": {"space": space or {"train.lr": {"log_uniform": [1e-3, 1e-1]}, "model.hidden": {"choice": [[8], [32, 16]]}},
                 "trials": 3, "startup_trials": 2, "heartbeat": 1, **tune},
    }
    path = tmp / "wine.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def trials_of(db: Path, study: str = "wine"):
    import optuna

    return optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials(deepcopy=False)
