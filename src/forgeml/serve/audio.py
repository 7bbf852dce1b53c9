"""An audio field of a request: base64 WAV/FLAC/OGG file bytes (or the raw bytes of a multipart file part).

    400   not base64, or bytes that soundfile cannot decode as WAV/FLAC/OGG (the field named)
    413   a clip whose decoded or resampled length, with the request's other clips, is over MAX_AUDIO_SAMPLES: a few
          kilobytes of FLAC or OGG can hold hours of silence, so the body limit alone does not bound a request's memory
    422   a clip that decodes but that the feature refuses: silence, a sample rate it cannot resample from, more
          channels than it mixes down, NaN samples in a float WAV

Each clip is decoded, and the window it keeps resampled (decode.window), once, here, before the request joins a batch;
the Predictor gets the wave at the feature's rate (a 1-D float array, which the feature levels and pads exactly as it does a file's samples).
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


def checked_length(data: bytes, where: str, error, budget: AudioBudget, target: int | None = None) -> None:
    """Read the header only: a 400 when it is not a sound file, a 413 when its samples (decoded, or resampled to
    `target` Hz, whichever is more) overrun the request's budget."""
    try:
        import soundfile as sf
    except ImportError:
        raise error(where, "the server cannot read sound: soundfile is not installed (pip install 'forgeml[audio]')", 501) from None
    try:
        info = sf.info(io.BytesIO(data))  # how long the clip is, before a sample is decoded
    except (RuntimeError, TypeError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise error(where, f"cannot decode as a {FORMATS} file ({_why(exc)})") from None
    # the decoded samples, and the samples the clip would have at the feature's rate: a 1 kHz FLAC resampled to
    # 16 kHz is 16 times longer (the feature resamples only the kept window, but the budget does not rely on it)
    resampled = -(-int(info.frames) * int(target) // max(int(info.samplerate), 1)) if target else 0
    samples = max(int(info.frames) * int(info.channels), resampled)
    if budget.used + samples > budget.limit:
        seconds = info.frames / max(info.samplerate, 1)
        raise error(where, f"a clip of {seconds:.0f} s ({info.channels} channel(s) at {info.samplerate} Hz) takes the "
                           f"request past {budget.limit:,} decoded samples; send shorter clips or fewer per request", 413)
    budget.used += samples


def decode_audio(feature, value: Any, where: str, error, budget: AudioBudget | None = None) -> np.ndarray:
    """An audio field to the 1-D float32 wave at the feature's sample rate that the Predictor takes.

    Args:
        feature: the bundle's audio feature (its settings: rate, mixdown, level, silence threshold, length).
        value: base64 text or raw bytes of a WAV/FLAC/OGG file.
        where: the field's JSON path, e.g. instances[2].path: every error names it.
        error: the exception class to raise, called as error(where, message[, status]).
        budget: decoded samples left to this request (default: a fresh one per call).
    """
    from forgeml.data.audio.decode import AudioDecodeError, prepare_wave, window
    from forgeml.data.features.audio import decode_bytes
    from forgeml.errors import DataError

    settings = feature.settings
    data = file_bytes(value, where, error)
    checked_length(data, where, error, budget or AudioBudget(), int(settings["sample_rate"]))
    try:
        wave, rate = decode_bytes(data, where, settings["mixdown"])  # the decoder the training files went through
    except AudioDecodeError as exc:  # unreadable samples: 400
        raise error(where, f"cannot decode as a {FORMATS} file ({_why(exc, where)})") from None
    except DataError as exc:  # read, but not a clip to take (9 channels, NaN floats): 422
        raise error(where, _why(exc, where), 422) from None
    try:
        wave = window(wave, rate, settings, where)  # resampled and cropped as the feature does it: the kept window only
        prepare_wave(wave, int(settings["sample_rate"]), settings, where)  # refused here (silence), not in the batch
    except DataError as exc:
        raise error(where, _why(exc, where), 422) from None
    return wave


def _why(exc: Exception, where: str = "") -> str:
    """The reason on one line, without the field's name again or libsndfile's name for a BytesIO."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if where and text.startswith(where + ": "):
        text = text[len(where) + 2:]
    if text.startswith("Error opening"):  # 'Error opening <_io.BytesIO object at 0x...>: Format not recognised.'
        text = text.split(">: ", 1)[-1]
    return text
