"""Shared fixtures. Tests run from the repository root so that example configs find data/."""

from __future__ import annotations

import os
from pathlib import Path


def _one_share_of_the_cpus() -> None:
    """Under pytest-xdist (`make test` runs 2 workers), each worker keeps to its own share of the CPUs, set before
    torch loads: forgeml's default thread count is the CPUs a process may use, so two workers do not both start
    one thread per CPU and wait on each other's threads (their subprocesses inherit the share)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= count:
        os.sched_setaffinity(0, cpus[int(worker[2:]) % count::count])


_one_share_of_the_cpus()

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else torch.get_num_threads())

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
    """--set overrides that make any example a few-second run into a temporary runs_dir (its report without
    explanations: tests/report/test_report_explain.py covers them)."""
    sets = [f"runs_dir={runs}", "train.progress=false", "train.tensorboard=false", "eval.explain=false", *extra]
    out = []
    for s in sets:
        out += ["--set", s]
    return out


from tests.pretrained_fixtures import one_thread, tiny_bert, tiny_bert_master  # noqa: E402, F401 (fixtures: a tiny random BERT folder)

os.environ.setdefault("COLUMNS", "120")  # rich tables wide enough to read in test logs
