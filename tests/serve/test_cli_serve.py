"""`forgeml serve` as a user starts it: a real process, its options reaching the server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from forgeml.cli import main
from tests.conftest import ROOT
from tests.serve.conftest import free_port

pytestmark = pytest.mark.slow


def test_api_key_env_must_be_set(tiny_runs, capsys, monkeypatch):
    monkeypatch.delenv("FORGEML_TEST_KEY", raising=False)
    assert main(["serve", str(tiny_runs["adult-mlp"]), "--api-key-env", "FORGEML_TEST_KEY"]) == 2
    assert "FORGEML_TEST_KEY" in capsys.readouterr().err


def test_serve_process_with_workers_key_and_body_limit(tiny_runs):
    """--workers 2 goes through uvicorn's factory mode: the settings must reach each worker through the environment."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "FORGEML_TEST_KEY": "k3y"}
    cmd = [sys.executable, "-m", "forgeml", "serve", str(tiny_runs["digits-cnn"]), "--host", "0.0.0.0", "--port", str(port),
           "--workers", "2", "--api-key-env", "FORGEML_TEST_KEY", "--max-body-mb", "0.002", "--max-batch-size", "4"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        image = [[0.0] * 8 for _ in range(8)]
        assert httpx.post(url + "/v1/predict", json={"image": image}).status_code == 401
        ok = httpx.post(url + "/v1/predict", json={"image": image}, headers={"X-API-Key": "k3y"})
        assert ok.status_code == 200 and ok.json()["model"] == "digits-cnn"
        big = httpx.post(url + "/v1/predict", json={"image": "A" * 3000}, headers={"X-API-Key": "k3y"})
        assert big.status_code == 413 and "2000 bytes" in big.json()["error"]  # --max-body-mb 0.002
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "reachable from the network" in err  # bound to 0.0.0.0
