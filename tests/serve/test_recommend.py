"""POST /v1/recommend on a real uvicorn server over HTTP, for a tiny matrix-factorisation run trained on ratings made
here (40 users, 25 items); /v1/predict refused on it; the try-it page's user box in headless Chromium."""

from __future__ import annotations

import csv

import httpx
import numpy as np
import pytest

import forgeml
from tests.serve.test_page import browser, needs_chromium  # noqa: F401 (browser: the headless Chromium fixture)
from tests.serve.tiny_server import app_for, serving, trained

USERS = [str(101 + u) for u in range(40)]  # digits: a client may send them as JSON numbers
ITEMS = [f"i{v}" for v in range(25)]


def write_ratings(path) -> None:
    """Ratings 1..5 from a rank-2 taste model: each user rates 10 of the 25 items (seeded)."""
    rng = np.random.default_rng(0)
    pu, qi = rng.normal(size=(len(USERS), 2)), rng.normal(size=(len(ITEMS), 2))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "rating"])
        for u, user in enumerate(USERS):
            for v in rng.choice(len(ITEMS), size=10, replace=False):
                w.writerow([user, ITEMS[v], int(np.clip(np.rint(3 + 1.2 * pu[u] @ qi[v]), 1, 5))])


@pytest.fixture(scope="module")
def rec_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec-serve")
    write_ratings(root / "ratings.csv")
    return forgeml.train({"name": "tiny-rec", "runs_dir": str(root / "runs"),
                          "data": {"path": str(root / "ratings.csv"), "users": "user", "items": "item", "rating": "rating",
                                   "rating_range": [1, 5], "split": {"val": 0.1, "test": 0.1}},
                          "model": {"name": "mf", "dim": 8}, "train": {"epochs": 3, "progress": False, "tensorboard": False},
                          "eval": {"explain": False}})


@pytest.fixture(scope="module")
def rec(rec_run):
    app = app_for(rec_run)
    with serving(app) as url:
        httpx_ready(url)
        yield app, url


def httpx_ready(url: str) -> None:
    """Wait for /ready: the warm-up ranking has run (a bound to fail by, not a timing the tests assert)."""
    for _ in range(300):
        if httpx.get(url + "/ready", timeout=10).status_code == 200:
            return
        import time

        time.sleep(0.02)
    raise AssertionError("/ready never answered 200 on the recommendation bundle")


def post(url: str, body, path: str = "/v1/recommend", **kw) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30, **kw)


def test_recommend_answers_the_predictors_ranking_without_the_users_training_items(rec):
    app, url = rec
    predictor = app.state.predictor
    answer = post(url, {"user": "101", "k": 5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "tiny-rec" and body["user"] == "101" and body["k"] == 5 and body["exclude_seen"] is True
    assert body["items"] == predictor.recommend("101", k=5)  # the same items, scores and ranks as Python gives
    assert [r["rank"] for r in body["items"]] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert not {r["item"] for r in body["items"]} & set(predictor.seen("101"))


def test_exclude_seen_false_ranks_every_item_and_true_leaves_the_seen_ones_out(rec):
    app, url = rec
    seen = set(app.state.predictor.seen("102"))
    assert seen  # every user rated some items in training
    everything = post(url, {"user": "102", "k": len(ITEMS), "exclude_seen": False}).json()["items"]
    unseen = post(url, {"user": "102", "k": len(ITEMS)}).json()["items"]
    assert {r["item"] for r in everything} == set(ITEMS) and seen <= {r["item"] for r in everything}
    assert {r["item"] for r in unseen} == set(ITEMS) - seen  # full ranking: every other item, and only those


def test_a_numeric_user_id_is_the_same_user_as_its_digits(rec):
    _, url = rec
    assert post(url, {"user": 103, "k": 3}).json()["items"] == post(url, {"user": "103", "k": 3}).json()["items"]


def test_an_unknown_user_is_a_404_that_names_the_user(rec):
    _, url = rec
    answer = post(url, {"user": "nobody", "k": 3})
    assert answer.status_code == 404
    body = answer.json()
    assert body["field"] == "user" and "'nobody'" in body["error"] and "40 users" in body["error"]


@pytest.mark.parametrize("body, field", [({"user": "101", "k": 0}, "k"), ({"user": "101", "k": 1001}, "k"),
                                         ({"user": "101", "k": "ten"}, "k"), ({"k": 3}, "user"),
                                         ({"user": "101", "kk": 3}, "kk"), ({"user": "101", "exclude_seen": "maybe"}, "exclude_seen")])
def test_bad_values_are_422s_naming_the_field(rec, body, field):
    _, url = rec
    answer = post(url, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and answer.json()["error"].startswith(field)


def test_an_empty_or_broken_body_is_a_400(rec):
    _, url = rec
    assert httpx.post(url + "/v1/recommend", content=b"", timeout=30).status_code == 400
    broken = httpx.post(url + "/v1/recommend", content=b'{"user": ', timeout=30)
    assert broken.status_code == 400 and "JSON" in broken.json()["error"]


def test_predict_and_explain_on_a_recommender_point_to_recommend(rec):
    _, url = rec
    for path in ("/v1/predict", "/v1/explain"):
        answer = post(url, {"instances": [{"user": "101", "item": "i0"}]}, path)
        assert answer.status_code == 400
        assert "recommendation model" in answer.json()["error"] and "POST /v1/recommend" in answer.json()["error"]


def test_generate_on_a_recommender_points_to_recommend(rec):
    _, url = rec
    answer = post(url, {"prompt": "x"}, "/v1/generate")
    assert answer.status_code == 400 and "POST /v1/recommend" in answer.json()["error"]


def test_model_describes_the_users_and_items(rec):
    _, url = rec
    body = httpx.get(url + "/v1/model", timeout=30).json()
    assert body["task"] == "recommend"
    assert body["recommend"] == {"users": 40, "items": len(ITEMS), "explicit": True, "max_k": 1000, "example_user": USERS[0]}
    assert "test" in body["metrics"] and "rmse" in body["metrics"]["test"]


def test_recommend_on_a_model_that_is_not_a_recommender_is_a_400(tmp_path_factory):
    app = app_for(trained("digits-cnn", tmp_path_factory.getbasetemp()))
    with serving(app) as url:
        answer = post(url, {"user": "101"})
    assert answer.status_code == 400 and "not a recommender" in answer.json()["error"]


def test_recommend_wants_the_api_key_when_one_is_set(rec_run):
    app = app_for(rec_run, api_key="s3cret")
    with serving(app) as url:
        assert post(url, {"user": "101"}).status_code == 401
        assert post(url, {"user": "101"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_the_page_of_a_recommender_has_the_user_box_and_no_row_form(rec):
    _, url = rec
    html = httpx.get(url + "/", timeout=30).text
    assert 'id="user"' in html and 'id="recommend"' in html and "/v1/recommend" in html
    assert 'id="form"' not in html and 'id="prompt"' not in html


@needs_chromium
def test_in_chromium_the_page_lists_the_users_ranking_and_shows_an_unknown_user(rec, browser):  # noqa: F811
    app, url = rec
    browser.open(url + "/")
    browser.wait_for("document.querySelector('#user').placeholder === 'e.g. 101'")  # /v1/model has been read
    browser.type_into("#user", "104")
    browser.js("document.querySelector('#k').value = '4'")
    browser.js("document.querySelector('#recommend').click()")
    browser.wait_for("document.querySelector('#ranking').dataset.state === 'done'")
    shown = browser.js("[...document.querySelectorAll('#ranking li')].map(li => [li.dataset.item, Number(li.dataset.score)])")
    expected = app.state.predictor.recommend("104", k=4)
    assert [item for item, _ in shown] == [r["item"] for r in expected]
    assert np.allclose([s for _, s in shown], [r["score"] for r in expected])
    assert "4 items for user 104" in browser.js("document.querySelector('#ranking-status').textContent")

    browser.js("document.querySelector('#user').value = ''")
    browser.type_into("#user", "nobody")
    browser.js("document.querySelector('#recommend').click()")
    browser.wait_for("document.querySelector('#ranking').dataset.state === 'error'")
    assert "'nobody'" in browser.js("document.querySelector('#error').textContent")
    assert browser.js("document.querySelector('.field[data-input=\"user\"]').classList.contains('bad')")
