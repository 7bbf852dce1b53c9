"""Explain fixtures: small real runs trained once per module (a known-signal table, digits, SMS text, a series)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import forgeml

pytest.importorskip("captum", reason="the explain extra is not installed: pip install 'forgeml[explain]'")

QUIET = {"train.progress": False, "train.tensorboard": False}
EFFECT = {"a": -2.0, "b": -1.0, "c": 0.0, "d": 1.0, "e": 2.0}


def known_table(n: int, seed: int) -> pd.DataFrame:
    """x0..x5 ~ N(0,1), c0, c1 in a..e. y (class) depends on x0, x1, c0 only; z (a number) on x2 only."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.standard_normal(n) for i in range(6)})
    df["c0"] = rng.choice(list(EFFECT), n)
    df["c1"] = rng.choice(list(EFFECT), n)
    df["y"] = np.where(2 * df.x0 - 2 * df.x1 + df.c0.map(EFFECT) > 0, "yes", "no")
    df["z"] = 3 * df.x2 + 10 + 0.1 * rng.standard_normal(n)
    return df


@pytest.fixture(scope="session")
def known_run(tmp_path_factory):
    """An MLP with two outputs on the known-signal table (y: class, z: regression), and its test rows."""
    tmp = tmp_path_factory.mktemp("known")
    known_table(4000, 0).to_csv(tmp / "train.csv", index=False)
    test = known_table(200, 1)
    test.to_csv(tmp / "test.csv", index=False)
    cfg = {"name": "known", "runs_dir": str(tmp / "runs"),
           "data": {"path": str(tmp / "train.csv"), "test_path": str(tmp / "test.csv"),
                    "outputs": [{"name": "y", "type": "class"}, {"name": "z", "type": "regression"}], "split": {"val": 0.1, "seed": 0}},
           "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
           "train": {"epochs": 8, "batch_size": 128, "lr": 0.005, "weight_decay": 0.01, **{k.split(".")[1]: v for k, v in QUIET.items()}}}
    return forgeml.train(cfg), test


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    return forgeml.train("examples/digits-cnn.yaml", {"runs_dir": str(tmp_path_factory.mktemp("digits")), "train.epochs": 1, **QUIET})


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    return forgeml.train("examples/sms-spam-lstm.yaml", {"runs_dir": str(tmp_path_factory.mktemp("sms")), "data.limit": 400, "model.embed_dim": 16, "model.hidden": 16,
                                                         "train.epochs": 1, **QUIET})
