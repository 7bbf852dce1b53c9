"""The server under load and under fuzzing, over real HTTP on loopback.

- A bounded load test: a fixed count of requests at concurrency 32 on the digits model, each with its own image, each
  answer checked against forgeml.load(run).predict for that image: no errors, nothing lost, nothing mixed up. 3,000
  requests here (about half a minute on 2 cores); benchmarks/serve.py runs the 10,000.
- Schemathesis fuzzes /v1/predict from the app's own /openapi.json (a bounded number of examples): never a 500.
"""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

import forgeml
from forgeml.serve.app import create_app
from tests.serve.conftest import running

pytestmark = pytest.mark.slow

REQUESTS, CONCURRENCY = 3_000, 32


async def _load(url: str, images: np.ndarray) -> list[dict]:
    """Every image posted once, 32 at a time; the answers in the images' order."""
    answers: list[dict | None] = [None] * len(images)
    next_index = iter(range(len(images)))

    async def worker(client: httpx.AsyncClient):
        for i in next_index:  # one shared iterator: each index is taken once
            r = await client.post("/v1/predict", json={"image": images[i].tolist()})
            answers[i] = {"status": r.status_code, **(r.json() if r.status_code == 200 else {"error": r.text})}

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*[worker(client) for _ in range(CONCURRENCY)])
    return answers


def test_load_nothing_lost_or_mixed_up(tiny_runs):
    run = tiny_runs["digits-cnn"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(REQUESTS, 1, 8, 8)).astype(np.float32)  # a different image per request
    want = forgeml.load(run).predict([{"image": im} for im in images])
    app = create_app(run)
    with running(app) as (url, _):
        answers = asyncio.run(_load(url, images))
        metrics = httpx.get(url + "/metrics").text
    errors = [a for a in answers if a is None or a["status"] != 200]
    assert not errors, errors[:3]
    for got, exp in zip(answers, want):
        assert len(got["predictions"]) == 1
        p = got["predictions"][0]
        assert p["label"] == exp["label"]
        assert p["confidence"] == pytest.approx(exp["confidence"], abs=1e-4)
    assert f'forgeml_requests_total{{route="/v1/predict",status="200"}} {float(REQUESTS)}' in metrics


def test_fuzz_predict_never_500(tiny_runs):
    """Bodies generated from /openapi.json (and mutated out of it: wrong types, missing and extra keys) get 2xx/4xx JSON."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    app = create_app(tiny_runs["adult-mlp"], max_body_bytes=100_000)
    with running(app) as (url, _):
        operation = schemathesis.openapi.from_url(url + "/openapi.json")["/v1/predict"]["POST"]
        seen = []

        @given(case=operation.as_strategy())
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            response = case.call()
            seen.append(response.status_code)
            assert response.status_code < 500, response.text
            body = response.json()
            assert ("predictions" in body) if response.status_code == 200 else set(body) == {"error", "field"}

        fuzz()
    assert len(seen) >= 10
