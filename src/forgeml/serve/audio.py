"""An audio field of a request: base64 WAV/FLAC/OGG file bytes (or the raw bytes of a multipart file part).

    400   not base64, or bytes that soundfile cannot decode as WAV/FLAC/OGG (the field named)
    413   a clip whose decoded length, with the request's other clips, is over MAX_AUDIO_SAMPLES: a few kilobytes of
          FLAC or OGG can hold hours of silence, so the body limit alone does not bound the memory a request takes

The checked bytes go on to the Predictor as they came (it decodes, resamples and pads them as in training); a clip the
feature refuses after decoding (silence only, a rate it cannot take) is the transform's 422.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

# Decoded samples (frames x channels) one request may hold: about 5.8 minutes of 48 kHz mono, 64 MiB as float32.
MAX_AUDIO_SAMPLES = 1 << 24
FORMATS = "WAV, FLAC or OGG"


class AudioBudget:
    """The decoded samples a request has used so far (every audio field of every row counts)."""

    def __init__(self, limit: int = MAX_AUDIO_SAMPLES):
        self.limit, self.used = limit, 0


def file_bytes(value: Any, where: str, error) -> bytes:
    """base64 text (a data: URL's prefix dropped) or bytes -> the file's bytes; `error(where, message)` to raise."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise error(where, f"a base64-encoded {FORMATS} file expected", 422)
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value  # a data: URL from a page
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error(where, f"not valid base64; send the bytes of a {FORMATS} file, base64-encoded") from None
    if not data:
        raise error(where, f"empty; send the bytes of a {FORMATS} file, base64-encoded")
    return data


def decode_audio(feature, value: Any, where: str, error, budget: AudioBudget | None = None) -> bytes:
    """Check that an audio field decodes (and fits the request's budget); return its file bytes for the Predictor.

    Args:
        feature: the bundle's audio feature (its name is in the messages through `where`).
        value: base64 text or raw bytes.
        where: the field's JSON path, e.g. instances[2].path.
        error: the exception class to raise, called as error(where, message[, status]).
        budget: decoded samples left to this request (default: a fresh one per call).
    """
    data = file_bytes(value, where, error)
    try:
        import soundfile as sf
    except ImportError:
        raise error(where, "the server cannot read sound: soundfile is not installed (pip install 'forgeml[audio]')", 501) from None
    budget = budget or AudioBudget()
    try:
        info = sf.info(io.BytesIO(data))  # the header only: how long the clip is before a sample is decoded
        samples = int(info.frames) * int(info.channels)
    except (RuntimeError, TypeError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise error(where, f"cannot decode as a {FORMATS} file ({_why(exc)})") from None
    if samples <= 0:
        raise error(where, f"a {FORMATS} file with no samples")
    if budget.used + samples > budget.limit:
        seconds = info.frames / max(info.samplerate, 1)
        raise error(where, f"a clip of {seconds:.0f} s ({info.channels} channel(s) at {info.samplerate} Hz) takes the "
                           f"request past {budget.limit:,} decoded samples; send shorter clips or fewer per request", 413)
    budget.used += samples
    from forgeml.data.features.audio import decode_bytes
    from forgeml.errors import DataError

    try:
        wave, _ = decode_bytes(data, where)  # the same decoder the training data went through
    except DataError as exc:
        raise error(where, f"cannot decode as a {FORMATS} file ({_why(exc)})") from None
    if not np.isfinite(wave).all():
        raise error(where, "the clip holds samples that are not finite numbers", 422)
    return data


def _why(exc: Exception) -> str:
    """libsndfile's reason, on one line, without the path-like prefix of a BytesIO."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
