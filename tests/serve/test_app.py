"""The server core against a real uvicorn on 127.0.0.1, over real HTTP: every route, every bad input, the limits, the
batcher, shutdown, the ONNX backend and the client. The load test and the fuzzing are in test_load.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import numpy as np
import pytest

import forgeml
from forgeml.serve.app import create_app
from tests.serve.conftest import running, slow_down

pytestmark = pytest.mark.slow


def digit(i: int) -> list:
    """A different 8x8 'image' (values 0..16, as sklearn's digits) for each i."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 17, size=(8, 8)).astype(float).tolist()


def adult_row(**changes) -> dict:
    row = {"age": 39, "workclass": "Private", "fnlwgt": 77516, "education": "Bachelors", "education-num": 13,
           "marital-status": "Never-married", "occupation": "Adm-clerical", "relationship": "Not-in-family", "race": "White",
           "sex": "Male", "capital-gain": 2174, "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States"}
    return {**row, **changes}


@pytest.fixture(scope="module")
def digits_server(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"], max_instances=8, max_body_bytes=200_000)
    with running(app) as (url, _):
        yield url, app


@pytest.fixture(scope="module")
def adult_server(tiny_runs):
    app = create_app(tiny_runs["adult-mlp"])
    with running(app) as (url, _):
        yield url, app


def test_predict_answers_what_the_predictor_predicts(tiny_runs, digits_server):
    url, _ = digits_server
    want = forgeml.load(tiny_runs["digits-cnn"]).predict([{"image": np.array(digit(i), dtype=np.float32)} for i in range(3)])
    r = httpx.post(url + "/v1/predict", json={"instances": [{"image": digit(i)} for i in range(3)]})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "digits-cnn" and len(body["predictions"]) == 3
    for got, exp in zip(body["predictions"], want):
        assert got["label"] == exp["label"]
        assert got["confidence"] == pytest.approx(exp["confidence"], abs=1e-5)
    one = httpx.post(url + "/v1/predict", json={"image": digit(1)}).json()  # a single row, no "instances"
    assert one["predictions"][0]["label"] == want[1]["label"]


def test_model_health_ready_docs(digits_server):
    url, _ = digits_server
    info = httpx.get(url + "/v1/model").json()
    assert info["name"] == "digits-cnn" and info["task"] == "classification" and info["backend"] == "torch"
    assert info["inputs"] == [{"name": "image", "kind": "image", "shape": [1, 8, 8], "dtype": "float32"}]
    assert info["outputs"][0]["classes"] == [str(i) for i in range(10)]
    assert "test" in info["metrics"] and info["version"] == forgeml.__version__
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert httpx.get(url + "/ready").json() == {"status": "ready"}
    assert httpx.get(url + "/docs").status_code == 200
    spec = httpx.get(url + "/openapi.json").json()
    schema = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["anyOf"][0]["properties"]["instances"]["maxItems"] == 8  # max_instances reaches the schema


def test_adult_categories_are_an_enum_and_unknown_ones_a_422(tiny_runs, adult_server):
    url, _ = adult_server
    want = forgeml.load(tiny_runs["adult-mlp"]).predict([adult_row(), adult_row(age=None, workclass=None)])
    r = httpx.post(url + "/v1/predict", json={"instances": [adult_row(), adult_row(age=None, workclass=None)]})
    assert r.status_code == 200, r.text
    assert [p["label"] for p in r.json()["predictions"]] == [p["label"] for p in want]
    bad = httpx.post(url + "/v1/predict", json={"instances": [adult_row(), adult_row(workclass="Pirate")]})
    assert bad.status_code == 422
    assert bad.json()["field"] == "instances[1].workclass"
    assert "'Private'" in bad.json()["error"] and "Self-emp-not-inc" in bad.json()["error"]  # the allowed values
    spec = httpx.get(url + "/openapi.json").json()
    row = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["anyOf"][1]
    workclass = row["properties"]["workclass"]
    assert "Private" in json.dumps(workclass) and "enum" in json.dumps(workclass)
    info = httpx.get(url + "/v1/model").json()
    assert "Private" in next(i for i in info["inputs"] if i["name"] == "workclass")["allowed"]


def _without(row: dict, key: str, **extra) -> dict:
    return {**{k: v for k, v in row.items() if k != key}, **extra}


@pytest.mark.parametrize("body, field, words", [
    ({"instances": [adult_row(age="old")]}, "instances[0].age", "number"),
    (adult_row(age="old"), "age", "number"),  # one bare row: the field alone
    ({"instances": [adult_row(), _without(adult_row(), "age", agee=39)]}, "instances[1].agee", "did you mean age"),
    ({"instances": ["x"]}, "instances[0]", "object"),
    ({"instances": "x"}, "instances", "list"),
    ({"instances": []}, "instances", "no rows"),
    ([1, 2], None, "object"),
    ({"instances": [adult_row(age=1e300)]}, "instances[0].age", "less than"),
    ({"instances": [adult_row()], "extra": 1}, "extra", "unknown key"),
])
def test_bad_rows_are_422_naming_the_field(adult_server, body, field, words):
    url, _ = adult_server
    r = httpx.post(url + "/v1/predict", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert words in r.json()["error"]


def test_missing_field_and_bad_json(adult_server):
    url, _ = adult_server
    row = adult_row()
    del row["hours-per-week"]
    r = httpx.post(url + "/v1/predict", json={"instances": [adult_row(), row]})
    assert r.status_code == 422 and r.json()["field"] == "instances[1].hours-per-week"
    r = httpx.post(url + "/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    assert httpx.post(url + "/v1/predict", content=b"").status_code == 400


def test_images_that_do_not_decode_are_400_and_wrong_shapes_422(digits_server):
    url, _ = digits_server
    r = httpx.post(url + "/v1/predict", json={"instances": [{"image": digit(0)}, {"image": "%%%not base64"}]})
    assert r.status_code == 400 and r.json()["field"] == "instances[1].image"
    r = httpx.post(url + "/v1/predict", json={"image": "aGVsbG8="})  # base64 of 'hello': not an image (and not 8-bit data)
    assert r.status_code == 400 and r.json()["field"] == "image"
    r = httpx.post(url + "/v1/predict", json={"image": [[1, 2], [3, 4]]})
    assert r.status_code == 422 and "[1, 8, 8]" in r.json()["error"]
    r = httpx.post(url + "/v1/predict", files={"image": ("x.png", b"\x89PNG broken", "image/png")})  # multipart upload
    assert r.status_code == 400 and r.json()["field"] == "image"


def test_multipart_form_is_one_row(adult_server):
    url, _ = adult_server
    row = adult_row()
    form = httpx.post(url + "/v1/predict", data={k: str(v) for k, v in row.items()})
    plain = httpx.post(url + "/v1/predict", json=row)
    assert form.status_code == 200, form.text
    assert form.json()["predictions"] == plain.json()["predictions"]
    bad = httpx.post(url + "/v1/predict", data={**{k: str(v) for k, v in row.items()}, "race": "Martian"})
    assert bad.status_code == 422 and bad.json()["field"] == "race"


def test_too_many_instances_and_too_big_bodies_are_413(digits_server):
    url, _ = digits_server
    r = httpx.post(url + "/v1/predict", json={"instances": [{"image": digit(i)} for i in range(9)]})  # max_instances=8
    assert r.status_code == 413 and r.json()["field"] == "instances" and "at most 8" in r.json()["error"]
    big = json.dumps({"image": "A" * 300_000}).encode()  # max_body_bytes=200_000: refused from its Content-Length
    r = httpx.post(url + "/v1/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "200000 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"A" * 10_000

    r = httpx.post(url + "/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert httpx.get(url + "/health").status_code == 200  # and the server is fine


def test_api_key(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"], api_key="s3cret")
    with running(app) as (url, _):
        assert httpx.post(url + "/v1/predict", json={"image": digit(0)}).status_code == 401
        wrong = httpx.post(url + "/v1/predict", json={"image": digit(0)}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
        assert httpx.get(url + "/v1/model").status_code == 401
        ok = httpx.post(url + "/v1/predict", json={"image": digit(0)}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(url + "/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.get(url + "/health").status_code == 200 and httpx.get(url + "/metrics").status_code == 200


async def _many(url: str, n: int, **kw) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as client:
        return await asyncio.gather(*[client.post(url + "/v1/predict", json={"image": digit(i)}, **kw) for i in range(n)])


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_concurrent_requests_share_forward_passes_and_metrics_count_them(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"], max_batch_size=64, max_wait_ms=20)
    slow_down(app, 0.2)  # while one pass runs, the others queue up and form the next batch
    with running(app) as (url, _):
        passes = _metric(url, "forgeml_batch_size_count")  # the warm-up pass
        answers = asyncio.run(_many(url, 24))
        assert all(r.status_code == 200 for r in answers)
        rows = _metric(url, "forgeml_batch_size_sum") - passes
        assert rows == 24 + passes - passes
        assert _metric(url, "forgeml_batch_size_count") - passes < 24  # fewer passes than requests: batches > 1
        text = httpx.get(url + "/metrics").text
        assert 'forgeml_requests_total{route="/v1/predict",status="200"} 24.0' in text
        assert "forgeml_request_seconds_bucket" in text and "forgeml_queue_depth 0.0" in text
        httpx.get(url + "/nowhere")
        assert 'route="unmatched",status="404"' in httpx.get(url + "/metrics").text


def test_max_batch_size_one_is_a_pass_per_request(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"], max_batch_size=1, max_wait_ms=20)
    slow_down(app, 0.05)
    with running(app) as (url, _):
        passes = _metric(url, "forgeml_batch_size_count")
        assert all(r.status_code == 200 for r in asyncio.run(_many(url, 8)))
        assert _metric(url, "forgeml_batch_size_count") - passes == 8


def test_full_queue_is_503_with_retry_after(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"], max_batch_size=1, max_queue=2)
    slow_down(app, 0.3)
    with running(app) as (url, _):
        answers = asyncio.run(_many(url, 10))
        codes = sorted(r.status_code for r in answers)
        assert codes.count(200) >= 2 and 503 in codes  # two waiting (and one in the pass when it started first); the rest refused
        refused = next(r for r in answers if r.status_code == 503)
        assert refused.headers["retry-after"] == "1" and "busy" in refused.json()["error"]
        assert set(codes) <= {200, 503}


def test_health_answers_while_a_batch_runs(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"])
    slow_down(app, 1.5)
    with running(app) as (url, _):
        done = threading.Event()

        def predict():
            httpx.post(url + "/v1/predict", json={"image": digit(0)}, timeout=60)
            done.set()

        threading.Thread(target=predict, daemon=True).start()
        while not app.state.batcher.busy:  # the pass has started
            time.sleep(0.01)
        assert httpx.get(url + "/health", timeout=60).status_code == 200
        assert not done.is_set()  # /health came back while the forward pass was still running
        done.wait(60)


def test_ready_is_503_until_the_warm_up_pass(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"])

    async def before_startup():  # no lifespan has run: no warm-up yet
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/ready"), await client.get("/health")

    ready, health = asyncio.run(before_startup())
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1" and health.status_code == 200
    with running(app) as (url, _):
        assert httpx.get(url + "/ready").status_code == 200


def test_shutdown_finishes_the_request_in_flight(tiny_runs):
    app = create_app(tiny_runs["digits-cnn"])
    slow_down(app, 1.0)
    with running(app) as (url, server):
        answer = {}

        def predict():
            answer["r"] = httpx.post(url + "/v1/predict", json={"image": digit(0)}, timeout=60)

        thread = threading.Thread(target=predict)
        thread.start()
        while not app.state.batcher.busy:
            time.sleep(0.01)
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        thread.join(60)
        assert answer["r"].status_code == 200 and answer["r"].json()["predictions"][0]["label"]


def test_onnx_backend(tiny_runs, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    from forgeml.export.onnx import export_onnx

    run = tmp_path / "digits-cnn"
    shutil.copytree(tiny_runs["digits-cnn"], run)  # the shared run stays as it is
    export_onnx(run)
    want = forgeml.load(run).predict([{"image": np.array(digit(i), dtype=np.float32)} for i in range(4)])
    app = create_app(run, backend="onnx")
    with running(app) as (url, _):
        assert httpx.get(url + "/v1/model").json()["backend"] == "onnx"
        got = httpx.post(url + "/v1/predict", json={"instances": [{"image": digit(i)} for i in range(4)]}).json()["predictions"]
        assert [g["label"] for g in got] == [w["label"] for w in want]


def test_client(tiny_runs, adult_server):
    from forgeml.serve import Client, ServeError

    url, _ = adult_server
    want = forgeml.load(tiny_runs["adult-mlp"]).predict([adult_row(), adult_row(age=70)])
    plain = Client(url)
    plain._http = None  # the standard library's urllib path, as without httpx
    for client in (Client(url), plain):
        assert client.health()
        assert [p["label"] for p in client.predict([adult_row(), adult_row(age=70)])] == [p["label"] for p in want]
        assert client.predict(adult_row())[0]["label"] == want[0]["label"]
        assert client.model()["name"] == "adult-mlp"
        with pytest.raises(ServeError) as err:
            client.predict([adult_row(workclass="Pirate")])
        assert err.value.status == 422 and err.value.field == "instances[0].workclass"
    assert not Client("http://127.0.0.1:9").health()  # nothing listens there
