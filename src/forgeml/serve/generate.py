"""POST /v1/generate: text from a bundle with a next-token output (a GPT), whole or streamed as server-sent events.

    curl -N localhost:8000/v1/generate -d '{"prompt": "ROMEO:", "max_new_tokens": 100, "seed": 1, "stream": true}'
    data: {"token": "\\n"}
    data: {"token": "W"}
    ...
    data: {"done": true, "text": "\\nWhat ..."}

Generation runs in a thread, never on the event loop, so /health and other requests answer meanwhile. A streamed
piece travels to the response through an asyncio.Queue as soon as Predictor.stream yields it; when the client goes
away the response's generator is closed, which sets the generation's stop flag, and the thread ends at the next token.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forgeml.errors import ForgeError
from forgeml.serve.auth import require_api_key

MAX_PROMPT_CHARS = 10_000


class GenerateRequest(BaseModel):
    """The body of POST /v1/generate; a value out of its bounds is a 422 that names the field."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=MAX_PROMPT_CHARS, description="the text to continue (not repeated in the answer)")
    max_new_tokens: int = Field(200, ge=1, le=1024, description="how many tokens to generate at most")
    temperature: float = Field(1.0, ge=0.0, le=5.0, description="0 is greedy; higher is more random")
    top_k: int | None = Field(None, ge=1, description="sample only among the k most likely tokens (null: all)")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="sample only within this probability mass (null: all)")
    seed: int | None = Field(None, description="the same seed and settings give the same text (null: a fresh seed)")
    stop: list[str] | None = Field(None, max_length=16, description="end the text where one of these strings appears")
    stream: bool = Field(False, description="true: text/event-stream, one `data:` event per piece as it is produced")

    def sampling(self) -> dict[str, Any]:
        """The keyword arguments of Predictor.stream."""
        return self.model_dump(exclude={"prompt", "stream"})


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    """The JSON error every serve route answers with (THE CONTRACT: {"error", "field"})."""
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    """The field a pydantic error names ('top_p', 'stop[2]') and a one-line message about it."""
    problem = exc.errors()[0]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"]).lstrip(".") or None
    return field, f"{field or 'body'}: {problem['msg']}"


class Generation:
    """One generation running in its thread: the stop flag the response sets when the client leaves, and how far it got."""

    def __init__(self, pieces):
        self.pieces = pieces  # Predictor.stream's iterator, settings already checked
        self.stop = threading.Event()  # set by the response when the client disconnects: the thread ends at the next piece
        self.done = threading.Event()
        self.produced = 0  # pieces taken from the model so far

    def run(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        """The thread's body: each piece onto the loop's queue as it comes, then ("end", None) or ("error", message)."""
        last: tuple[str, Any] = ("end", None)
        try:
            for piece in self.pieces:
                if self.stop.is_set():
                    break
                self.produced += 1
                loop.call_soon_threadsafe(queue.put_nowait, ("token", piece))
        except ForgeError as exc:
            last = ("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - a streamed response has sent its 200 already: say it in an event
            last = ("error", f"generation failed: {type(exc).__name__}: {exc}")
        finally:
            self.done.set()
            try:
                loop.call_soon_threadsafe(queue.put_nowait, last)
            except RuntimeError:  # the loop closed (the server stopped) before the last piece: nobody is listening
                pass


def _live(request: Request) -> set[Generation]:
    """The generations now running in this app (a test and a shutdown can see them)."""
    if not hasattr(request.app.state, "generations"):
        request.app.state.generations = set()
    return request.app.state.generations


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"  # json escapes newlines: one event is one line


async def _events(generation: Generation, live: set[Generation]):
    """The SSE body: a `data: {"token"}` event per piece, then `{"done", "text"}` (or `{"error"}`)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    live.add(generation)
    thread = threading.Thread(target=generation.run, args=(loop, queue), name="forgeml-generate", daemon=True)
    thread.start()
    text: list[str] = []
    try:
        while True:
            kind, value = await queue.get()
            if kind == "token":
                text.append(value)
                yield _event({"token": value})
            elif kind == "error":
                yield _event({"error": value, "field": None})
                return
            else:
                yield _event({"done": True, "text": "".join(text)})
                return
    finally:  # also when the client disconnected and the server closed this generator
        generation.stop.set()
        live.discard(generation)


async def _whole(generation: Generation) -> str:
    return "".join(await asyncio.to_thread(list, generation.pieces))


router = APIRouter()


@router.post("/v1/generate", dependencies=[Depends(require_api_key)], tags=["generate"],
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"application/json": {"schema": GenerateRequest.model_json_schema()}}}},
             responses={200: {"description": "`{model, text}`, or text/event-stream when stream is true"},
                        400: {"description": "not a language model, or settings the model refuses"},
                        422: {"description": "a value out of its bounds: `{error, field}`"}})
async def generate(request: Request):
    """Generate text from the prompt; with `"stream": true` the pieces arrive as server-sent events as they are made."""
    predictor = request.app.state.predictor
    if predictor.tokenizer is None:
        return error(400, f"{request.app.state.name} is a {predictor.task} model, not a language model: it has no next-token "
                          "output to generate text with; " + ("ask POST /v1/recommend for a user's items" if predictor.task == "recommend"
                                                               else "send its inputs to POST /v1/predict"))
    try:
        body = GenerateRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        field, message = _first_problem(exc)
        return error(422, message, field)
    try:
        pieces = predictor.stream(body.prompt, **body.sampling())  # bad settings (top_k past the vocabulary) raise here
    except ForgeError as exc:
        return error(400, str(exc))
    generation = Generation(pieces)
    if not body.stream:
        return {"model": request.app.state.name, "text": await _whole(generation)}
    return StreamingResponse(_events(generation, _live(request)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # no proxy buffering
