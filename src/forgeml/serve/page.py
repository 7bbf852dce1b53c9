"""GET /: a page to try the served model in a browser, with nothing fetched from elsewhere (no CDN: it works offline).

The server fills in what it knows without a request (name, task, inputs, outputs); the page's script reads GET /v1/model
and builds a form per input kind (a file upload for an image, read as base64 in the browser; for a sound, a file upload
and a Record button: the microphone through MediaRecorder, converted in the browser (decodeAudioData) to a mono 16-bit
WAV at the model's rate, so the server reads only WAV/FLAC/OGG; a select with the allowed values for a category; number
fields; text areas; a JSON list for a series), posts it to /v1/predict and draws every output with a bar per probability.
For a language model: a prompt box and the text streaming in from /v1/generate.
For a recommendation bundle: a user id box, k and 'leave out seen items', and the ranked list from /v1/recommend.
When the server answers 401 the page shows a field for the API key and sends it on every request after.
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

import forgeml
from forgeml.serve.recommend import is_recommender

router = APIRouter()


@cache
def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("forgeml.serve", "templates"), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("page.html.j2")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page(request: Request) -> HTMLResponse:
    """The try-it page of the served bundle (open: it holds no predictions; the /v1/ calls it makes ask for the key)."""
    predictor = request.app.state.predictor
    features = predictor.features
    html = _template().render(
        name=request.app.state.name, task=predictor.task, version=forgeml.__version__,
        language_model=predictor.tokenizer is not None, recommend=is_recommender(predictor),
        inputs=[(f.name, f.kind) for f in features.inputs], outputs=[(o.name, o.kind) for o in features.outputs])
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})  # a new bundle behind the same URL shows at once
