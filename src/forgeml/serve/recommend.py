"""POST /v1/recommend: the top k items for one user of a recommendation bundle (task "recommend").

    curl localhost:8000/v1/recommend -d '{"user": "196", "k": 5}'
    {"model": "ml100k-mf", "user": "196", "k": 5, "exclude_seen": true,
     "items": [{"item": "1449", "score": 4.61, "rank": 1}, ...]}

The ranking is full: every item of the bundle is scored and the user's training items are left out unless
exclude_seen is false (Predictor.recommend does the work, off the event loop). A user id may come as a string or a
number: ids are matched as the strings the training data held. A user the model never saw is a 404 whose message
names the user (and, for a two-tower model with user features, says to send them for a cold start); a k out of
bounds or an unknown key is a 422 naming the field. On a recommendation bundle /v1/predict and /v1/explain answer
400 with a pointer here (they take rows of inputs; a recommender takes a user).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forgeml.errors import ForgeError
from forgeml.serve.auth import require_api_key
from forgeml.serve.generate import _first_problem, error

MAX_K = 1000  # a page of results, not a dump of the catalogue: larger lists belong to Predictor.recommend_many
TASK = "recommend"


class RecommendRequest(BaseModel):
    """The body of POST /v1/recommend; a value out of its bounds is a 422 that names the field."""

    model_config = ConfigDict(extra="forbid")

    user: str | int = Field(description="the user's id as the training data held it (a number is read as its digits)")
    k: int = Field(10, ge=1, le=MAX_K, description=f"how many items to return (1..{MAX_K}; fewer when fewer are left)")
    exclude_seen: bool = Field(True, description="leave out the items the user interacted with in the run's data (train, val and test)")

    def user_id(self) -> str:
        return str(self.user)


def is_recommender(predictor) -> bool:
    """A recommendation bundle: the server answers /v1/recommend, and /v1/predict points there."""
    return getattr(predictor, "task", None) == TASK


def not_a_recommender(name: str, task: str) -> JSONResponse:
    return error(400, f"{name} is a {task} model, not a recommender: it ranks no items for a user; send its inputs to "
                      "POST /v1/predict")


def not_for_predict(name: str, route: str) -> JSONResponse:
    """/v1/predict and /v1/explain on a recommendation bundle: a clear 400 that says what to send instead."""
    return error(400, f"{name} is a recommendation model: {route} takes rows of inputs, a recommender takes a user; "
                      'send POST /v1/recommend {"user": ID, "k": 10} (exclude_seen: true by default)')


def _unknown_user(exc: ForgeError) -> bool:
    """The Predictor's answer for a user it has no vector for."""
    from forgeml.rec_predictor import UnknownUser

    return isinstance(exc, UnknownUser)


def recommend_items(predictor, user: str, k: int, exclude_seen: bool) -> list[dict[str, Any]]:
    """Predictor.recommend, with each entry as plain JSON (the item id as a string, the score as a float)."""
    found = predictor.recommend(user, k=k, exclude_seen=exclude_seen)
    return [{"item": str(r["item"]), "score": float(r["score"]), "rank": int(r["rank"])} for r in found]


def warm_recommender(predictor) -> None:
    """The warm-up pass of a recommendation bundle: one ranking for its first user (then /ready says 200)."""
    users = predictor.features.users
    if users:
        recommend_items(predictor, users[0], 1, True)


def describe_recommender(predictor) -> dict[str, Any]:
    """GET /v1/model's "recommend" part: what the page and a client need to ask for a ranking."""
    f = predictor.features
    return {"users": len(f.users), "items": len(f.items), "explicit": bool(f.explicit), "max_k": MAX_K,
            "example_user": f.users[0] if f.users else None}


router = APIRouter()


@router.post("/v1/recommend", dependencies=[Depends(require_api_key)], tags=["recommend"],
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": RecommendRequest.model_json_schema(), "example": {"user": "196", "k": 10, "exclude_seen": True}}}}},
             responses={200: {"description": "`{model, user, k, exclude_seen, items: [{item, score, rank}]}`, best first"},
                        400: {"description": "not a recommendation model"},
                        404: {"description": "a user the model never saw: `{error, field: \"user\"}`"},
                        422: {"description": "a value out of its bounds or an unknown key: `{error, field}`"}})
async def recommend(request: Request):
    """The user's top k items, best first, with their scores."""
    predictor, name = request.app.state.predictor, request.app.state.name
    if not is_recommender(predictor):
        return not_a_recommender(name, predictor.task)
    body = await request.body()
    if not body:
        return error(400, 'empty body; send JSON {"user": ID, "k": 10}')
    try:
        ask = RecommendRequest.model_validate_json(body)
    except ValidationError as exc:
        field, message = _first_problem(exc)
        return error(400 if field is None and "json" in message.lower() else 422, message, field)
    try:
        items = await asyncio.to_thread(recommend_items, predictor, ask.user_id(), ask.k, ask.exclude_seen)
    except ForgeError as exc:
        if _unknown_user(exc):
            return error(404, str(exc), "user")
        return error(422, str(exc), None)
    return {"model": name, "user": ask.user_id(), "k": ask.k, "exclude_seen": ask.exclude_seen, "items": items}
