"""Helpers the serve tests share: tiny trained runs (once per session) and a real uvicorn server on 127.0.0.1.

Engineer B's half keeps them here, beside engineer A's conftest.py, to stay out of its way; `app_for` is the one place
that builds the app, so switching to `forgeml.serve.app.create_app` is a one-line change."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app):
    """Run `app` under a real uvicorn server in a thread; yields its base URL once /health answers."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):  # up to 30 s for the server to start on a busy machine
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        raise RuntimeError(f"the test server on {url} did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
