"""The request model of `POST /v1/predict`, built from a bundle's features.json: one pydantic field per input feature.

    numeric      a number (null: missing, imputed as in training)
    binary       one of its two values, or null
    category     one of the values seen in training (an enum in the OpenAPI schema), or null
    text         a non-empty string
    image        base64 PNG/JPEG (8-bit models) or nested number lists of the trained shape (C, H, W) or (H, W)
    sequence     a list of numbers (one channel) or of per-step lists (several channels)
    audio        base64 WAV/FLAC/OGG file bytes (serve/audio.py: 400 when they do not decode, 413 past the sample budget)

pydantic checks types, missing fields, unknown keys and categories (422, naming the field); `decode_rows` then turns
validated rows into what `Predictor` takes, where an image or a sound that does not decode is a 400 naming the field.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from forgeml.errors import RequestError

# Beyond float32's range a value would standardise to inf and the outputs to NaN.
FLOAT_LIMIT = 1e38


class ImageDecodeError(RequestError):
    """An image field holds bytes that are not a PNG/JPEG image (or an image the model cannot take), or an audio field
    bytes that are not a WAV/FLAC/OGG file: a 400 (422 or 413 where `status` says so)."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status  # 422: decoded, but not an image the model takes


def _field(feature) -> tuple[Any, dict[str, Any]]:
    """(annotation, Field arguments) for one input feature."""
    kind = feature.kind
    if kind == "numeric":
        return float | None, dict(ge=-FLOAT_LIMIT, le=FLOAT_LIMIT, allow_inf_nan=False,
                                      description="a number; null for a missing value")
    if kind == "binary":
        values = [v for v in feature.values if v != "<other>"]
        return str | float | bool | None, dict(description=f"one of {values}; null for a missing value")
    if kind == "category":
        # Literal: unknown values are a 422 that lists the allowed ones, and /docs shows them as an enum
        if not feature.vocab:
            return str | None, dict(description="no value was frequent enough in training: any value predicts as unknown")
        return Literal[tuple(feature.vocab)] | None, dict(description="one of the values seen in training; null for missing")
    if kind == "text":
        return str, dict(min_length=1, pattern=r"\S", description="text")
    if kind == "corpus":  # a language model's prompt: a new line or a space is a prompt like any other
        return str, dict(min_length=1, description="a prompt: the next token after it is predicted")
    if kind == "image":
        return str | list[Any], dict(description=f"an image: base64 PNG/JPEG, or nested number lists of shape "
                                                             f"{feature.shape} (C, H, W)")
    if kind == "audio":
        return str, dict(min_length=1, description="a sound: the bytes of a WAV, FLAC or OGG file, base64-encoded")
    if kind == "sequence":
        return list[float] | list[list[float]], dict(min_length=1, description=f"a series: one number per step, or "
                                                                                           f"{feature.channels} per step")
    raise RequestError(f"input {feature.name!r} of kind {kind!r} cannot be served yet")


def row_model(features) -> type[BaseModel]:
    """A pydantic model of one row: every input feature a required field, no other keys."""
    # feature names are column names ('hours-per-week', 'copy'): python names f0, f1, ... with the column as the alias
    fields = {}
    for i, f in enumerate(features.inputs):
        annotation, kwargs = _field(f)
        fields[f"f{i}"] = (annotation, Field(..., alias=f.name, **kwargs))
    return create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)


def request_schema(row: type[BaseModel], max_instances: int) -> dict[str, Any]:
    """The OpenAPI schema of the JSON body: {"instances": [ROW, ...]} or one ROW."""
    one = row.model_json_schema(by_alias=True)
    one.pop("title", None)
    many = {"type": "object", "required": ["instances"], "additionalProperties": False,
            "properties": {"instances": {"type": "array", "items": one, "minItems": 1, "maxItems": max_instances}}}
    return {"anyOf": [many, one]}


def example_row(features) -> dict[str, Any]:
    """A valid row built from the features alone: the warm-up pass and the example in /docs."""
    row: dict[str, Any] = {}
    for f in features.inputs:
        if f.kind == "numeric":
            row[f.name] = round(float(f.mean), 3)
        elif f.kind == "binary":
            row[f.name] = f.values[0] if f.values else None
        elif f.kind == "category":
            row[f.name] = f.vocab[0] if f.vocab else None
        elif f.kind == "text":
            row[f.name] = "hello"
        elif f.kind == "corpus":
            row[f.name] = f.tokenizer.decode([min(2, f.tokenizer.vocab_size - 1)]) or "a"
        elif f.kind == "image":
            row[f.name] = np.zeros(f.shape).tolist()
        elif f.kind == "sequence":
            row[f.name] = [[0.0] * f.channels for _ in range(max(1, f.length))]
        elif f.kind == "audio":
            row[f.name] = example_clip(f)
    return row


def example_clip(feature) -> str:
    """A quiet 440 Hz tone as base64 WAV at the feature's rate and length (silence might be refused as silence)."""
    from forgeml.report.wav import wav_bytes

    rate, seconds = int(feature.settings["sample_rate"]), float(feature.settings["duration"])
    t = np.arange(max(1, int(rate * seconds))) / rate
    return base64.b64encode(wav_bytes(0.1 * np.sin(2 * np.pi * 440.0 * t), rate, peak=False)).decode()


def decode_rows(features, rows: list[BaseModel], prefix: str | None = "instances") -> list[dict[str, Any]]:
    """Validated rows to the dicts Predictor.predict takes: images decoded to arrays, sounds to waves at the feature's
    rate (ImageDecodeError: a 400; 413 for sounds past the request's sample budget, 422 for a sound the feature refuses)."""
    images = [f for f in features.inputs if f.kind == "image"]
    sounds = [f for f in features.inputs if f.kind == "audio"]
    budget = None
    if sounds:
        from forgeml.serve.audio import AudioBudget, decode_audio

        budget = AudioBudget()  # one per request: every clip of every row counts
    out = []
    for i, row in enumerate(rows):
        values = row.model_dump(by_alias=True)
        for f in images:
            values[f.name] = decode_image(f, values[f.name], f"{prefix}[{i}].{f.name}" if prefix else f.name)
        for f in sounds:
            values[f.name] = decode_audio(f, values[f.name], f"{prefix}[{i}].{f.name}" if prefix else f.name,
                                          ImageDecodeError, budget)
        out.append(values)
    return out


def decode_image(feature, value: Any, where: str) -> np.ndarray:
    """A base64 PNG/JPEG string, raw image bytes (a multipart upload) or nested lists as a (C, H, W) array."""
    c, h, w = feature.shape
    if isinstance(value, list):
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError):
            raise ImageDecodeError(where, "nested lists of numbers of one shape expected", 422) from None
        if arr.shape == (h, w) and c == 1:
            arr = arr[None]  # (H, W) grayscale -> (1, H, W)
        if list(arr.shape) != [c, h, w]:
            raise ImageDecodeError(where, f"an image of shape {list(arr.shape)}; the model takes {[c, h, w]} (C, H, W)"
                                          + (f" or {[h, w]}" if c == 1 else ""), 422)
        if not np.isfinite(arr).all():
            raise ImageDecodeError(where, "pixels must be finite numbers", 422)
        return arr.astype(feature.dtype) if feature.dtype == "uint8" else arr
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value  # a data: URL from a page
        try:
            value = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ImageDecodeError(where, "not valid base64; send a base64-encoded PNG/JPEG file or nested number lists") from None
    if feature.dtype != "uint8":
        raise ImageDecodeError(where, f"this model was trained on {feature.dtype} arrays, not 8-bit image files (their pixel "
                                      f"scale would differ); send nested number lists of shape {[c, h, w]}")
    from PIL import Image, UnidentifiedImageError

    from forgeml.data.sources.images import PIL_FORMATS

    try:
        with Image.open(io.BytesIO(value), formats=PIL_FORMATS) as img:
            img = img.convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(where, f"cannot decode as a PNG/JPEG image ({type(exc).__name__})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
