"""Audio files (or their bytes) to mono float32 waves at one rate, one level and one length.

    wave, rate = decode_file("7_jackson_32.wav", "7_jackson_32.wav")   # mono float32 at the file's rate
    wave = prepare_wave(wave, rate, settings, origin)                   # resampled, normalised, padded/cropped

soundfile (the `audio` extra, libsndfile) reads WAV, FLAC and OGG/Vorbis. It is imported inside the
functions that need it, so `import forgeml` stays instant.
"""

from __future__ import annotations

import io
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from forgeml.errors import DataError, ForgeError

INSTALL = "pip install 'forgeml[audio]'"
AUDIO_EXT = {".wav", ".flac", ".ogg"}
MP3 = ".mp3"  # read when this libsndfile reads it (1.1 and later): audio_ext() asks soundfile
MAX_CHANNELS = 8  # more is a multichannel array (ambisonics, a mixing desk), not a recording to mix down blindly
MAX_RATIO_TERM = 1000  # resample_poly's up/down after reduction; beyond it the filter grows long and slow


class AudioDecodeError(DataError):
    """Bytes that libsndfile cannot read as a sound (the server's 400), as against a sound it refuses (a 422)."""


def _soundfile():
    try:
        import soundfile
    except ImportError as exc:
        raise ForgeError(f"audio input needs soundfile ({exc.name} is not installed): {INSTALL}") from None
    return soundfile


@lru_cache(maxsize=1)
def audio_ext() -> frozenset[str]:
    """The extensions read as audio: .wav, .flac, .ogg, and .mp3 when soundfile.available_formats() lists MP3."""
    try:
        import soundfile
    except ImportError:
        return frozenset(AUDIO_EXT)
    return frozenset(AUDIO_EXT | ({MP3} if "MP3" in soundfile.available_formats() else set()))


def is_audio_name(name: str | Path) -> bool:
    """Whether a file name ends in an audio extension forgeml reads (soundfile is asked only about .mp3)."""
    suffix = Path(name).suffix.lower()
    return suffix in AUDIO_EXT or (suffix == MP3 and MP3 in audio_ext())


def decode_file(source: str | Path | bytes, origin: str, mixdown: str = "mean") -> tuple[np.ndarray, int]:
    """A file path or a file's bytes to (mono float32 wave in [-1, 1], its sample rate).

    Args:
        source: a path, or the bytes of a WAV/FLAC/OGG file.
        origin: what to call it in an error (the file name, 'request row 3').
        mixdown: "mean" of the channels, or the "first" channel.
    """
    sf = _soundfile()
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise DataError(f"{origin}: empty (0 bytes); give the content of a WAV, FLAC or OGG file")
        handle: Any = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{origin}: no such audio file (relative paths in a table are read from the table's folder); "
                            "fix the path or remove the row")
        if path.stat().st_size == 0:
            raise DataError(f"{origin}: empty file (0 bytes); replace it with the recording or remove its row")
        handle = str(path)
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)  # (frames, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioDecodeError(f"{origin}: cannot decode as audio ({exc}). forgeml reads WAV, FLAC and OGG/Vorbis through "
                        "libsndfile; convert the file (e.g. ffmpeg -i IN -ar 16000 OUT.wav) or remove its row") from None
    if data.shape[0] == 0:
        raise DataError(f"{origin}: the file holds no samples (a header only); replace it with the recording or remove its row")
    channels = data.shape[1]
    if channels > MAX_CHANNELS:
        raise DataError(f"{origin}: {channels} channels; forgeml mixes down at most {MAX_CHANNELS} (data.audio.mixdown). "
                        "Mix it to mono or stereo first (e.g. ffmpeg -i IN -ac 1 OUT.wav)")
    wave = data.mean(axis=1) if mixdown == "mean" else data[:, 0]  # (frames,)
    if not np.isfinite(wave).all():
        raise DataError(f"{origin}: holds NaN or infinite samples (a broken float WAV); replace it or remove its row")
    return np.ascontiguousarray(wave, dtype=np.float32), int(rate)


def decode_bytes(data: bytes, origin: str, mixdown: str = "mean") -> tuple[np.ndarray, int]:
    """The bytes of a WAV/FLAC/OGG file to (mono float32 wave at its own rate, that rate): what the server's
    upload and the report use.

    >>> wave, rate = decode_bytes(open("data/spoken_digits/clips/0_jackson_0.wav", "rb").read(), "upload")  # doctest: +SKIP
    """
    return decode_file(bytes(data), origin, mixdown)


def ratio(rate: int, target: int, origin: str) -> tuple[int, int]:
    """(up, down): `rate` Hz to `target` Hz as resample_poly's reduced ratio; a DataError for a rate forgeml refuses."""
    if rate < 1000:
        raise DataError(f"{origin}: sample rate {rate} Hz is below the 1000 Hz forgeml reads (a broken header?); "
                        "convert the file to a usual rate (8000, 16000, 44100 Hz)")
    g = gcd(rate, target)
    up, down = target // g, rate // g
    if max(up, down) > MAX_RATIO_TERM:
        raise DataError(f"{origin}: sample rate {rate} Hz has no short ratio to data.audio.sample_rate {target} Hz "
                        f"({up}/{down}); convert the file to a usual rate (8000, 16000, 22050, 44100, 48000 Hz) "
                        f"or set data.audio.sample_rate to {rate}")
    return up, down


def resample(wave: np.ndarray, rate: int, target: int, origin: str) -> np.ndarray:
    """`wave` at `rate` Hz to `target` Hz with a polyphase filter (scipy.signal.resample_poly, Kaiser window)."""
    if rate == target:
        return wave
    up, down = ratio(rate, target, origin)
    from scipy.signal import resample_poly  # scipy comes with scikit-learn

    return resample_poly(wave, up, down).astype(np.float32)


def normalise(wave: np.ndarray, how: str, min_rms: float, origin: str) -> np.ndarray:
    """Silence check, then the level: peak (loudest sample to 1), rms (RMS to 0.1) or none."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms < min_rms or rms == 0.0 and min_rms > 0:
        raise DataError(f"{origin}: silence (RMS {rms:.2g}, below data.audio.min_rms {min_rms:g}); remove the clip, or "
                        "set data.audio.min_rms: 0 to keep silent clips (they become flat spectrograms)")
    if how == "peak":
        peak = float(np.abs(wave).max())
        return wave / peak if peak > 0 else wave
    if how == "rms":
        return wave * (0.1 / rms) if rms > 0 else wave
    return wave


def fit_length(wave: np.ndarray, samples: int, align: str) -> np.ndarray:
    """Pad with zeros or crop to `samples`: centred, or from the start (align: center | start)."""
    n = len(wave)
    if n >= samples:
        start = (n - samples) // 2 if align == "center" else 0
        return wave[start : start + samples]
    before = (samples - n) // 2 if align == "center" else 0
    out = np.zeros(samples, dtype=np.float32)
    out[before : before + n] = wave
    return out


def window(wave: np.ndarray, rate: int, settings: dict[str, Any], origin: str) -> np.ndarray:
    """`wave` at `rate` to settings['sample_rate'], cropped to the settings['duration'] window the clip keeps
    (shorter clips come back whole, to be padded later).

    Only the window's part of the clip, plus the resampling filter's half-length on each side, is resampled:
    the result equals resampling the whole clip and then cropping (tests/data/test_audio_feature.py checks it),
    while a long clip at a low rate (hours at 1 kHz, upsampled x16) never grows to its full resampled length."""
    target = int(settings["sample_rate"])
    samples = int(round(settings["duration"] * target))
    wave = np.asarray(wave, dtype=np.float32)
    if rate == target:
        return fit_length(wave, samples, settings["align"]) if len(wave) > samples else wave
    up, down = ratio(rate, target, origin)
    n_out = -(-len(wave) * up // down)  # resample_poly's output length: ceil(n * up / down)
    if n_out <= samples:
        return resample(wave, rate, target, origin)
    first = (n_out - samples) // 2 if settings["align"] == "center" else 0  # the window in the whole resampled clip
    margin = -(-10 * max(up, down) // up) + 1  # resample_poly's filter half-length (10 x max(up, down) taps at rate*up)
    lo = max(0, (first * down // up - margin) // down * down)  # a multiple of `down`: the output grid stays the same
    hi = min(len(wave), -(-(first + samples) * down // up) + margin)
    part = resample(wave[lo:hi], rate, target, origin)
    skip = first - lo * up // down
    return part[skip : skip + samples]


def prepare_wave(wave: np.ndarray, rate: int, settings: dict[str, Any], origin: str) -> np.ndarray:
    """A decoded mono wave at `rate` to what the spectrogram reads: resampled to settings['sample_rate'] and
    cropped to settings['duration'] seconds (window), silence-checked and normalised over what it keeps, then
    padded to settings['duration'] seconds."""
    wave = window(wave, rate, settings, origin)
    wave = normalise(wave, settings["normalise"], float(settings["min_rms"]), origin)
    return fit_length(wave, int(round(settings["duration"] * int(settings["sample_rate"]))), settings["align"])
