"""POST /v1/generate through a real uvicorn server and real HTTP: whole and streamed text, bounds, disconnects."""

import json
import threading

import httpx
import pytest

import forgeml
from tests.serve.tiny_server import app_for, serving, trained


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    app = app_for(trained("shakespeare-gpt", tmp_path_factory.getbasetemp()))
    with serving(app) as url:
        yield app, url


def events(response) -> list[dict]:
    """The JSON payloads of a server-sent event stream's `data:` lines."""
    return [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]


def test_seeded_text_is_the_predictors_own(gpt):
    app, url = gpt
    settings = {"max_new_tokens": 60, "temperature": 0.8, "top_k": 20, "seed": 3}
    expected = app.state.predictor.generate("ROMEO:", **settings)
    answer = httpx.post(url + "/v1/generate", json={"prompt": "ROMEO:", **settings}, timeout=60)
    assert answer.status_code == 200 and answer.json() == {"model": "shakespeare-gpt", "text": expected}
    greedy = httpx.post(url + "/v1/generate", json={"prompt": "ROMEO:", "temperature": 0, "max_new_tokens": 30}, timeout=60)
    assert greedy.json()["text"] == forgeml.load(app.state.predictor.path).generate("ROMEO:", 30, temperature=0)
    other = httpx.post(url + "/v1/generate", json={"prompt": "ROMEO:", **settings, "seed": 4}, timeout=60).json()["text"]
    assert other != expected  # the seed is a promise: another seed, another text


def test_streamed_pieces_arrive_one_event_each_and_add_up_to_the_text(gpt):
    app, url = gpt
    body = {"prompt": "JULIET:", "max_new_tokens": 200, "temperature": 0.8, "seed": 1, "stream": True}
    with httpx.stream("POST", url + "/v1/generate", json=body, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    tokens, last = [e["token"] for e in got[:-1]], got[-1]
    assert last == {"done": True, "text": "".join(tokens)}
    assert last["text"] == app.state.predictor.generate("JULIET:", 200, temperature=0.8, seed=1)
    assert len(tokens) > 100  # a character model: about one event per generated character, not one at the end


def test_the_first_event_arrives_while_generation_still_runs(gpt):
    """Pieces are forwarded as they are made: when the first event is read, the thread has not finished 1,024 tokens."""
    app, url = gpt
    body = {"prompt": "A", "max_new_tokens": 1024, "seed": 0, "stream": True}
    with httpx.stream("POST", url + "/v1/generate", json=body, timeout=120) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        [running] = app.state.generations  # the one generation in flight
        produced_at_first_event = running.produced
        assert "token" in json.loads(first[6:]) and not running.done.is_set()
        rest = [line for line in lines if line.startswith("data: ")]
    assert produced_at_first_event < running.produced and json.loads(rest[-1][6:])["done"]


def test_a_client_that_leaves_mid_stream_stops_generation(gpt):
    app, url = gpt
    body = {"prompt": "KING:", "max_new_tokens": 1024, "seed": 5, "stream": True}
    with httpx.stream("POST", url + "/v1/generate", json=body, timeout=60) as response:
        for i, _ in enumerate(line for line in response.iter_lines() if line.startswith("data: ")):
            if i == 0:
                [generation] = app.state.generations
            if i == 2:
                break  # leaving the block closes the connection after three pieces
    assert generation.done.wait(60)  # the thread ended ...
    assert generation.stop.is_set() and generation.produced < 1024  # ... because it was told to, not at max_new_tokens
    assert app.state.generations == set()
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    again = httpx.post(url + "/v1/generate", json={"prompt": "KING:", "max_new_tokens": 20, "seed": 5}, timeout=60)
    assert again.status_code == 200 and len(again.json()["text"]) > 0


def test_health_answers_while_a_long_generation_runs(gpt):
    app, url = gpt
    body = {"prompt": "A", "max_new_tokens": 1024, "seed": 0, "stream": True}
    with httpx.stream("POST", url + "/v1/generate", json=body, timeout=120) as response:
        lines = (line for line in response.iter_lines() if line.startswith("data: "))
        next(lines)
        [running] = app.state.generations
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        assert not running.done.is_set() or running.produced == 1024  # /health answered during the generation
        for _ in lines:
            pass


@pytest.mark.parametrize(("change", "field"), [
    ({"max_new_tokens": 1025}, "max_new_tokens"), ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"temperature": -0.1}, "temperature"), ({"temperature": 5.5}, "temperature"),
    ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"top_k": 0}, "top_k"),
    ({"prompt": "x" * 10_001}, "prompt"), ({"prompt": None}, "prompt"), ({"stop": ["a", 3]}, "stop[1]"),
    ({"tempreature": 1}, "tempreature"),
])
def test_out_of_bounds_settings_are_422_naming_the_field(gpt, change, field):
    _, url = gpt
    answer = httpx.post(url + "/v1/generate", json={"prompt": "A", **change}, timeout=30)
    assert answer.status_code == 422
    assert answer.json()["field"] == field and answer.json()["error"].startswith(field + ":")


def test_bodies_that_are_not_a_request_and_settings_the_model_refuses(gpt):
    _, url = gpt
    broken = httpx.post(url + "/v1/generate", content=b"{not json", timeout=30)
    assert broken.status_code == 422 and "json" in broken.json()["error"].lower()
    assert httpx.post(url + "/v1/generate", json={"max_new_tokens": 5}, timeout=30).json()["field"] == "prompt"
    too_many = httpx.post(url + "/v1/generate", json={"prompt": "A", "top_k": 100_000}, timeout=30)
    assert too_many.status_code in (200, 400)  # top_k past the vocabulary: clipped or refused, never a 500
    long_prompt = httpx.post(url + "/v1/generate", json={"prompt": "x" * 10_000, "max_new_tokens": 3}, timeout=60)
    assert long_prompt.status_code == 200  # exactly at the bound is accepted; the window slides past the context


def test_a_model_without_a_next_token_output_is_told_to_use_predict(tmp_path_factory):
    with serving(app_for(trained("clothing-mixed", tmp_path_factory.getbasetemp()))) as url:
        answer = httpx.post(url + "/v1/generate", json={"prompt": "hello"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["field"] is None
    assert "not a language model" in answer.json()["error"] and "/v1/predict" in answer.json()["error"]


def test_the_api_key_guards_generation(tmp_path_factory):
    app = app_for(trained("shakespeare-gpt", tmp_path_factory.getbasetemp()), api_key="s3cret")
    with serving(app) as url:
        body = {"prompt": "A", "max_new_tokens": 3}
        assert httpx.post(url + "/v1/generate", json=body, timeout=30).status_code == 401
        assert httpx.post(url + "/v1/generate", json=body, headers={"X-API-Key": "nope"}, timeout=30).status_code == 401
        assert httpx.post(url + "/v1/generate", json=body, headers={"Authorization": "Bearer s3cret"}, timeout=30).status_code == 200


def test_generation_threads_do_not_pile_up(gpt):
    before = {t for t in threading.enumerate() if t.name == "forgeml-generate"}
    _, url = gpt
    for seed in range(3):
        with httpx.stream("POST", url + "/v1/generate", json={"prompt": "A", "max_new_tokens": 5, "seed": seed, "stream": True},
                          timeout=30) as response:
            assert events(response)[-1]["done"]
    after = {t for t in threading.enumerate() if t.name == "forgeml-generate" and t.is_alive()}
    assert len(after - before) <= 1  # each thread ends with its generation (the last may be finishing its put)


def test_a_language_model_server_becomes_ready_and_predicts_after_any_prompt(gpt):
    """A bug fixed: the warm-up row of a character GPT was the prompt '\\n', which the text schema refused
    (whitespace only), so /ready stayed 503 for every language model."""
    import time

    _, url = gpt
    for _ in range(300):
        if httpx.get(url + "/ready", timeout=10).status_code == 200:
            break
        time.sleep(0.1)
    assert httpx.get(url + "/ready", timeout=10).status_code == 200
    answer = httpx.post(url + "/v1/predict", json={"text": "\n"}, timeout=30)
    assert answer.status_code == 200 and "token" in answer.json()["predictions"][0]
