"""The HTTP app for one bundle: `create_app(run)` -> a FastAPI app that uvicorn serves (`forgeml serve RUN`).

    POST /v1/predict   {"instances": [ROW, ...]} or one ROW (JSON), or one row as multipart/form-data (a file per image
                       or sound)
                       -> {"model": NAME, "predictions": [one dict per row, as Predictor.predict gives]}
    POST /v1/explain   the same body, plus "method" (integrated_gradients, shap, occlusion), "output", "target" beside
                       the rows -> {"model": NAME, "explanations": [one per row, as Predictor.explain gives, arrays as
                       lists]}; at most 32 rows; 501 when the server lacks the explain extra
    POST /v1/recommend {"user": ID, "k": 10, "exclude_seen": true} on a recommendation bundle -> {"items": [{item, score,
                       rank}, ...]} (serve/recommend.py; there /v1/predict and /v1/explain answer 400 pointing to it)
    GET  /v1/model     name, task, inputs (kind, allowed values, shapes), outputs, metrics.json, version, backend
    GET  /health       alive (answers while a batch runs: the forward pass is off the event loop)
    GET  /ready        200 once the model is loaded and one warm-up pass has run; 503 before
    GET  /metrics      Prometheus (serve/metrics.py)
    GET  /docs         OpenAPI, with the request model built from the bundle's features (serve/schema.py)

Every error is JSON {"error": MESSAGE, "field": "instances[3].age" or null}: 400 (undecodable body, image or sound), 401
(API key), 413 (body or instance count over the limit; sounds past serve/audio.py's decoded-sample budget), 422 (wrong
type, missing field, unknown category, a silent clip), 503 (queue full or shutting down, with Retry-After). This module imports FastAPI: only `forgeml serve` and create_app's callers import it.
A request is checked and transformed on its own before it joins a batch, so one bad
row fails only its own request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from forgeml.errors import ForgeError, did_you_mean
from forgeml.serve.auth import require_api_key
from forgeml.serve.batcher import Batcher, QueueFull, ShuttingDown
from forgeml.serve.recommend import describe_recommender, is_recommender, not_for_predict, warm_recommender
from forgeml.serve.schema import ImageDecodeError, decode_rows, example_row, request_schema, row_model

log = logging.getLogger("forgeml")
RETRY_AFTER_S = "1"  # a full queue drains in well under a second at any useful batch size


class ApiError(Exception):
    """An answer other than 200, as JSON naming the field."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


# ------------------------------------------------------------------------------------------------ errors
def _where(loc: tuple, prefix: str | None) -> str:
    """A pydantic error location as a JSON path: ('instances', 3, 'age') -> instances[3].age."""
    out = prefix or ""
    for part in loc:
        if part == "body":  # FastAPI's own request bodies (other routes) start with it
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_error(errors: list[dict], prefix: str | None, inputs: list[str] | None = None) -> ApiError:
    # the first is enough to fix (the message says how many more there are); a misspelt key first: its fix names both
    err = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[0]
    field = _where(tuple(err.get("loc", ())), prefix) or None
    message = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden" and inputs is not None:
        name = str(err["loc"][-1])
        message = f"unknown input{did_you_mean(name, inputs)} (the model takes {', '.join(inputs)})"
    elif err.get("type") == "missing" and inputs is not None:
        message = f"missing; the model takes {', '.join(inputs)} (give null for a missing value)"
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    return ApiError(422, f"{field}: {message}{more}" if field else f"{message}{more}", field)


def _finite(value: Any) -> Any:
    """NaN/inf (a diverged model) as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ model work
class Model:
    """The predictor plus what a request needs from it: the row model, transforms, and the batched forward pass."""

    def __init__(self, predictor, max_instances: int):
        self.predictor, self.max_instances = predictor, max_instances
        self.features = predictor.features
        self.inputs = list(self.features.schema())
        self.row = row_model(self.features)
        self.language_model = predictor.tokenizer is not None

    def transform(self, rows: list[dict[str, Any]], prefix: str | None) -> Any:
        """Rows to this request's tensors (a language model: one dict per row, as prompts differ in length)."""
        try:
            if self.language_model:
                return [self.features.transform_inputs(self.features.rows_to_columns([r])) for r in rows]
            return self.features.transform_inputs(self.features.rows_to_columns(rows))
        except ForgeError as exc:
            raise self._locate(rows, prefix, exc) from None

    def _locate(self, rows: list[dict[str, Any]], prefix: str | None, exc: ForgeError) -> ApiError:
        """Which row and field a transform error came from: each row alone, then the feature its message names."""
        index = 0
        for i, r in enumerate(rows):
            try:
                self.features.transform_inputs(self.features.rows_to_columns([r]))
            except ForgeError as one:
                index, exc = i, one
                break
        name = next((n for n in self.inputs if f"'{n}'" in str(exc) or f"{n}:" in str(exc)), None)
        base = f"{prefix}[{index}]" if prefix else ""
        field = f"{base}.{name}" if base and name else (name or base or None)
        message = str(exc).split(": ", 1)[-1] if str(exc).startswith(("request:", "request")) else str(exc)
        return ApiError(422, f"{field}: {message}" if field else message, field)

    def forward(self, stacked: Any) -> list[dict[str, Any]]:
        """One forward pass over the stacked requests (runs in the batcher's thread)."""
        p = self.predictor
        if self.language_model:
            return [row for x in stacked for row in p.decode(p.outputs(x))]
        return p.decode(p.outputs(stacked, batch_size=max(1, next(iter(stacked.values())).shape[0])))


def _validate(rows: list[Any], prefix: str | None, model: Model) -> list[dict[str, Any]]:
    """Rows checked against the row model (422 naming the field) and decoded (images to arrays; 400 if undecodable)."""
    validated = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            where = f"{prefix}[{i}]" if prefix else None
            raise ApiError(422, f"{where}: a row is an object with keys {', '.join(model.inputs)}", where)
        try:
            validated.append(model.row.model_validate(r))
        except ValidationError as exc:
            raise _validation_error(exc.errors(include_url=False), f"{prefix}[{i}]" if prefix else None, model.inputs) from None
    try:
        return decode_rows(model.features, validated, prefix)
    except ImageDecodeError as exc:
        raise ApiError(exc.status, str(exc), exc.field) from None


EXPLAIN_OPTIONS = ("method", "output", "target")
MAX_EXPLAIN_ROWS = 32


def explain_body_doc(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/explain's body in /docs: predict's, plus method, output and target beside the rows."""
    options = {"method": {"type": "string", "enum": ["integrated_gradients", "shap", "occlusion"]},
               "output": {"type": "string", "description": "explain only this output (default: every output)"},
               "target": {"type": "string", "description": "the class to explain (default: the predicted one)"}}
    return {"required": True, "content": {"application/json": {
        "schema": {"allOf": [schema], "properties": options},
        "example": {"instances": [example], "method": "integrated_gradients"}}}}


def _lm_stack(parts: list[list]) -> list:
    return [x for part in parts for x in part]


async def _read_rows(request, model: Model, options: tuple[str, ...] = ()) -> tuple[list[Any], str | None]:
    """The body's rows and the JSON path prefix their errors get ('instances', or None for one bare row).

    `options` (explain's method, output, target) may sit beside the rows, or beside one row's inputs; they are moved
    into request.state.options (a key that is also an input's name stays the input's)."""
    request.state.options = {}
    options = tuple(o for o in options if o not in model.inputs)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        row = await _form_row(request, model)
        request.state.options = {k: row.pop(k) for k in options if k in row}
        return [row], None
    body = await request.body()
    if not body:
        raise ApiError(400, "empty body; send JSON {\"instances\": [ROW, ...]} or one ROW object", None)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON ({exc})", None) from None
    if isinstance(data, dict):
        request.state.options = {k: data.pop(k) for k in options if k in data}
    if isinstance(data, dict) and "instances" in data and "instances" not in model.inputs:
        extra = [k for k in data if k != "instances"]
        if extra:
            raise ApiError(422, f"{extra[0]}: unknown key beside instances", extra[0])
        if not isinstance(data["instances"], list):
            raise ApiError(422, "instances: a list of rows expected", "instances")
        if not data["instances"]:
            raise ApiError(422, "instances: no rows to predict", "instances")
        return data["instances"], "instances"
    if isinstance(data, dict):
        return [data], None
    raise ApiError(422, f"the body is a JSON {type(data).__name__}; send an object: {{\"instances\": [ROW, ...]}} or one ROW", None)


async def _form_row(request, model: Model) -> dict[str, Any]:
    """One row from form fields (numbers and categories as text, a series as JSON text) and file parts (images)."""
    form = await request.form()
    kinds = model.features.schema()
    row: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key not in kinds:
            row[key] = value if isinstance(value, str) else "<file>"  # the row model names the unknown key
            continue
        if hasattr(value, "read"):  # an uploaded file: its bytes as base64, as a JSON client would send them
            row[key] = base64.b64encode(await value.read()).decode()
        elif kinds[key] in ("numeric", "category", "binary") and value.strip() == "":
            row[key] = None
        elif kinds[key] in ("sequence",) or (kinds[key] == "image" and value.lstrip().startswith("[")):
            try:
                row[key] = json.loads(value)
            except json.JSONDecodeError:
                raise ApiError(422, f"{key}: not a JSON list of numbers", key) from None
        else:
            row[key] = value
    return row


# ------------------------------------------------------------------------------------------------ the app
def create_app(run: str | Path, *, backend: str | None = None, max_batch_size: int = 64, max_wait_ms: float = 5.0,
               max_queue: int = 1024, max_body_bytes: int = 10_000_000, max_instances: int = 256, api_key: str | None = None,
               trust_code: bool = False):
    """A FastAPI app serving one bundle (see the module docstring for its routes).

    Args:
        run: the run folder.
        backend: "torch" or "onnx" (RUN/model.onnx through ONNX Runtime). Default: as forgeml.load decides.
        max_batch_size: most rows in one forward pass (1: a pass per request). Default 64.
        max_wait_ms: how long the first request of a batch waits for others. Default 5.
        max_queue: most rows waiting; beyond it requests get 503 with Retry-After. Default 1024.
        max_body_bytes: larger request bodies get 413 before they are read whole. Default 10 MB.
        max_instances: most rows in one request (413 beyond). Default 256.
        api_key: when set, the /v1/ routes want it (Authorization: Bearer KEY or X-API-Key). Default: none.
        trust_code: allow a custom model's code to be imported. Default False.

    Example:
        >>> import uvicorn; uvicorn.run(create_app("runs/digits-cnn"), port=8000)  # doctest: +SKIP
    """
    from forgeml import __version__
    from forgeml.predictor import load
    from forgeml.serve.limits import BodyLimitMiddleware
    from forgeml.serve.metrics import Metrics, MetricsMiddleware

    predictor = load(run, backend=backend, trust_code=trust_code)
    recommender = is_recommender(predictor)  # a recommendation bundle: /v1/recommend (serve/recommend.py), no row batches
    model = None if recommender else Model(predictor, max_instances)
    metrics = Metrics()
    name = Path(run).resolve().name

    async def warm_up(app) -> None:
        """One pass on a row built from the features, through the same path as a request: then /ready says 200."""
        try:
            if recommender:  # one ranking for the first known user, off the event loop
                await asyncio.to_thread(warm_recommender, predictor)
                app.state.ready = True
                return
            row = example_row(model.features)
            rows = decode_rows(model.features, [model.row.model_validate(row)])
            x = model.transform(rows, None)
            await app.state.batcher.submit(x, 1)
            app.state.ready = True
        except Exception as exc:  # noqa: BLE001 - not ready is the honest answer; the log says why
            log.warning("%s: the warm-up pass failed, /ready stays 503: %s", name, exc)

    @asynccontextmanager
    async def lifespan(app):
        batcher = None if recommender else Batcher(model.forward, max_batch_size, max_wait_ms, max_queue, metrics,
                                                   stack=_lm_stack if model.language_model else None)
        app.state.batcher = batcher
        if batcher is not None:
            batcher.start()
        warm = asyncio.get_running_loop().create_task(warm_up(app))
        yield
        # uvicorn has stopped taking connections and waited for the open ones; answer whatever is still queued
        if batcher is not None:
            await batcher.drain()
        warm.cancel()

    app = FastAPI(title=f"forgeml: {name}", version=__version__, lifespan=lifespan,
                  description=f"Predictions from the {predictor.task} model in {name} (forgeml {__version__}).")
    app.state.predictor, app.state.api_key, app.state.name = predictor, api_key, name
    app.state.ready, app.state.model = False, model
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # added last: outermost, so 413s are counted too

    def error(status: int, message: str, field: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request, exc: RequestValidationError):
        e = _validation_error(list(exc.errors()), None)
        return error(e.status, e.message, e.field)

    @app.exception_handler(HTTPException)
    async def _http(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request, exc: Exception):  # a bug: still JSON, and the traceback goes to the log
        log.exception("%s %s failed", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); the server log has the traceback", None)

    schema = request_schema(model.row, max_instances) if model else {"type": "object"}
    example = example_row(model.features) if model else {}
    body_doc = {"required": True, "content": {
        "application/json": {"schema": schema, "example": {"instances": [example]}},
        "multipart/form-data": {"schema": {"type": "object", "description": "one row: a form field per input, a file part per "
                                                                       "image or sound"}}}}

    @app.post("/v1/predict", dependencies=[Depends(require_api_key)], openapi_extra={"requestBody": body_doc},
              summary="Predict every output for one row or a list of rows")
    async def predict(request: Request):
        if model is None:
            return not_for_predict(name, "/v1/predict")
        rows, prefix = await _read_rows(request, model)
        if len(rows) > max_instances:
            raise ApiError(413, f"instances: {len(rows)} rows in one request; the server takes at most {max_instances} "
                                f"(split the request, or start it with a larger max_instances)", "instances")
        decoded = _validate(rows, prefix, model)
        x = model.transform(decoded, prefix)
        try:
            predictions = await request.app.state.batcher.submit(x, len(decoded))
        except QueueFull as exc:
            raise ApiError(503, f"server busy: {exc}; retry after {RETRY_AFTER_S} s", None, {"Retry-After": RETRY_AFTER_S}) from None
        except ShuttingDown as exc:
            raise ApiError(503, str(exc), None, {"Retry-After": RETRY_AFTER_S}) from None
        return JSONResponse({"model": name, "predictions": _finite(predictions)})

    explain_lock = asyncio.Lock()  # one explanation at a time: each is tens of forward and backward passes

    @app.post("/v1/explain", dependencies=[Depends(require_api_key)], summary="Attribute each row's prediction to its inputs",
              openapi_extra={"requestBody": explain_body_doc(schema, example)})
    async def explain(request: Request):
        from forgeml.explain.per_kind import jsonable

        if model is None:
            return not_for_predict(name, "/v1/explain")
        rows, prefix = await _read_rows(request, model, EXPLAIN_OPTIONS)
        options = request.state.options
        if len(rows) > MAX_EXPLAIN_ROWS:
            raise ApiError(413, f"instances: {len(rows)} rows in one explain request; it takes at most {MAX_EXPLAIN_ROWS} "
                                "(each costs tens of passes through the model): split the request", "instances")
        for key in EXPLAIN_OPTIONS:
            if key in options and not isinstance(options[key], str):
                raise ApiError(422, f"{key}: a string expected", key)
        decoded = _validate(rows, prefix, model)
        async with explain_lock:
            try:
                found = await asyncio.to_thread(predictor.explain, decoded, options.get("method", "integrated_gradients"),
                                                options.get("output"), options.get("target"))
            except ForgeError as exc:
                missing = "pip install" in str(exc)  # the explain extra is not installed on the server
                field = next((k for k in EXPLAIN_OPTIONS if str(exc).startswith(("explain method" if k == "method" else k))), None)
                raise ApiError(501 if missing else 422, str(exc), field) from None
        return JSONResponse({"model": name, "explanations": _finite([jsonable(e) for e in found])})

    @app.get("/v1/model", dependencies=[Depends(require_api_key)], summary="What the model takes and gives")
    async def describe():
        return JSONResponse(_finite(describe_model(predictor, name, __version__)))

    @app.get("/health", summary="Alive")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", summary="Loaded and warmed up")
    async def ready(request: Request):
        if not request.app.state.ready:
            raise ApiError(503, "warming up: the model's first pass has not run yet", None, {"Retry-After": RETRY_AFTER_S})
        return {"status": "ready"}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # streaming generation and the try-it page
    from forgeml.serve.generate import router as generate_router
    from forgeml.serve.page import router as page_router
    from forgeml.serve.recommend import router as recommend_router

    app.include_router(generate_router)
    app.include_router(recommend_router)
    app.include_router(page_router)
    return app


def describe_model(predictor, name: str, version: str) -> dict[str, Any]:
    """GET /v1/model: what a client (or the page) needs to build a request and read the answer."""
    inputs = []
    for f in predictor.features.inputs:
        entry: dict[str, Any] = {"name": f.name, "kind": f.kind}
        if f.kind == "category":
            entry["allowed"] = list(f.vocab)
        elif f.kind == "binary":
            entry["allowed"] = [v for v in f.values if v != "<other>"]
        elif f.kind == "image":
            entry["shape"] = list(f.shape)
            entry["dtype"] = f.dtype
        elif f.kind == "sequence":
            entry["shape"] = [f.length, f.channels]  # (T, C); shorter or longer series are fine when ragged
        elif f.kind == "audio":  # the page records at this rate; a client may send any rate (the server resamples)
            entry.update(shape=list(f.shape), sample_rate=f.settings["sample_rate"], duration=f.settings["duration"])
        inputs.append(entry)
    outputs = []
    for o in predictor.features.outputs:
        entry = {"name": o.name, "kind": o.kind}
        if getattr(o, "classes", None) is not None:
            entry["classes"] = list(o.classes)
        elif getattr(o, "labels", None) is not None and o.kind == "multilabel":
            entry["classes"] = list(o.labels)
        outputs.append(entry)
    bundle = predictor.bundle
    metrics = bundle.read_json("metrics.json") if bundle.file("metrics.json").is_file() else {}
    described = {"name": name, "task": predictor.task, "inputs": inputs, "outputs": outputs, "metrics": metrics,
                 "version": version, "backend": predictor.backend}
    if is_recommender(predictor):
        described["recommend"] = describe_recommender(predictor)
    return described


# `forgeml serve --workers N`: uvicorn starts N processes, each calling this factory; the settings travel in the
# environment (the API key stays in its own variable: only that variable's name is passed on).
ENV_PREFIX = "FORGEML_SERVE_"
ENV_SETTINGS = {"RUN": str, "BACKEND": str, "MAX_BATCH_SIZE": int, "MAX_WAIT_MS": float, "MAX_QUEUE": int,
                "MAX_BODY_BYTES": int, "MAX_INSTANCES": int, "API_KEY_ENV": str, "TRUST_CODE": str}


def settings_to_env(run: str, **settings: Any) -> dict[str, str]:
    """create_app's arguments as FORGEML_SERVE_* variables (None left out)."""
    env = {f"{ENV_PREFIX}RUN": str(run)}
    for key, value in settings.items():
        if value is not None:
            env[f"{ENV_PREFIX}{key.upper()}"] = "1" if value is True else "0" if value is False else str(value)
    return env


def app_from_env():
    """The uvicorn factory for worker processes: create_app from FORGEML_SERVE_* variables."""
    import os

    values = {k.lower(): ENV_SETTINGS[k](os.environ[ENV_PREFIX + k]) for k in ENV_SETTINGS if ENV_PREFIX + k in os.environ}
    run = values.pop("run")
    key_env = values.pop("api_key_env", None)
    values["trust_code"] = values.get("trust_code") == "1"
    return create_app(run, api_key=os.environ.get(key_env) if key_env else None, **values)
