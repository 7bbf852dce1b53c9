"""Shared fixtures. Tests run from the repository root so that example configs find data/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _repo_root_and_seed(monkeypatch):
    monkeypatch.chdir(ROOT)
    torch.manual_seed(0)


@pytest.fixture
def runs(tmp_path) -> Path:
    """A fresh runs_dir for one test."""
    path = tmp_path / "runs"
    path.mkdir()
    return path


def quick(runs: Path, *extra: str) -> list[str]:
    """--set overrides that make any example a few-second run into a temporary runs_dir."""
    sets = [f"runs_dir={runs}", "train.progress=false", "train.tensorboard=false", *extra]
    out = []
    for s in sets:
        out += ["--set", s]
    return out


from tests.pretrained_fixtures import one_thread, tiny_bert, tiny_bert_master  # noqa: E402, F401 (fixtures: a tiny random BERT folder)

os.environ.setdefault("COLUMNS", "120")  # rich tables wide enough to read in test logs
