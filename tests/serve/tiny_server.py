"""Helpers of the generate and page tests: tiny trained runs (once per session), the app, a real server on 127.0.0.1."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import forgeml

TINY = {  # example: overrides that train it in seconds
    "shakespeare-gpt": {"train.max_steps": 40, "train.warmup_steps": 5, "train.eval_every_steps": 20, "train.eval_batches": 2,
                        "model.n_layer": 2, "model.n_embd": 64},
    "clothing-mixed": {"train.epochs": 1},
    "digits-cnn": {"train.epochs": 1},
}
_trained: dict[str, Path] = {}


def trained(example: str, root: Path) -> Path:
    """The run folder of a tiny training of examples/EXAMPLE.yaml, trained once per test session under `root`."""
    if example not in _trained:
        _trained[example] = forgeml.train(f"examples/{example}.yaml", {
            "runs_dir": str(root / "serve-runs"), "train.progress": False, "train.tensorboard": False, **TINY[example]})
    return _trained[example]


def app_for(run: Path, api_key: str | None = None):
    """The app under test: forgeml serve's own create_app."""
    from forgeml.serve.app import create_app

    return create_app(run, api_key=api_key)


@contextmanager
def serving(app):
    """Run `app` under a real uvicorn server in a thread (conftest.running); yields its base URL once /health answers."""
    from tests.serve.conftest import running

    with running(app, ready=False) as (url, _):
        yield url
