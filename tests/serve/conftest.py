"""Serving fixtures: tiny real runs trained once per session, and a real uvicorn server on 127.0.0.1 to talk to over HTTP."""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'forgeml[serve]'")
httpx = pytest.importorskip("httpx")

import uvicorn  # noqa: E402

from forgeml.cli import main  # noqa: E402
from tests.conftest import ROOT, quick  # noqa: E402

# one tiny run per kind of input the server core is tested on: (example, overrides)
RUNS = {
    "digits-cnn": ("digits-cnn", ["train.epochs=1"]),  # an image (float32 8x8 arrays)
    "adult-mlp": ("adult-mlp", ["data.limit=2000", "train.max_steps=3"]),  # numbers and categories
}


def train_tiny(runs: Path, example: str, extra: list[str]) -> Path:
    assert main(["train", f"examples/{example}.yaml", *quick(runs, *extra)]) == 0
    return runs / example


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Each tiny run trained once for all the serving tests."""
    os.chdir(ROOT)  # a session fixture runs before the per-test chdir; the examples' data paths are relative
    torch.manual_seed(0)
    runs = tmp_path_factory.mktemp("serve-runs")
    return {key: train_tiny(runs, example, extra) for key, (example, extra) in RUNS.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app, ready: bool = True):
    """A real uvicorn server for `app` in a thread on a free loopback port: yields (base URL, the uvicorn.Server).
    Waits for /health (and /ready, unless told not to); stops the server on exit, as SIGTERM would."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    path = "/ready" if ready else "/health"
    for _ in range(600):
        try:
            if httpx.get(url + path, timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if not thread.is_alive():
            raise RuntimeError("the server thread ended before it answered")
        time.sleep(0.02)
    else:
        raise RuntimeError(f"{url}{path} never answered 200")
    try:
        yield url, server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def slow_down(app, seconds: float) -> None:
    """Make every forward pass of the served (real) network take at least `seconds` longer."""
    app.state.predictor.model.register_forward_hook(lambda *_: time.sleep(seconds))
