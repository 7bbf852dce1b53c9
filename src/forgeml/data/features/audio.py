"""Audio: a column of audio files (paths, raw file bytes, or 1-D waves already at the feature's rate) into
standardised log-mel spectrograms, (N, 1, n_mels, frames) float32: an image with one channel to the CNN,
a series of frames to the frames encoder.

Per clip: decode (soundfile), mix down to mono, resample to data.audio.sample_rate (scipy's polyphase
resample_poly), refuse silence, normalise the level, pad or crop to data.audio.duration. Then, a chunk of
clips at a time, the log-mel spectrogram with torch (data/audio/mel.py; on the CPU), and
finally the training split's mean and standard deviation standardise every value. features.json keeps every
setting and both statistics, so a raw file in production becomes the tensor training saw (to float rounding).

Fast path: the training split is decoded once. `fit` keeps the spectrograms it computed and `transform`
of the very same column hands them back instead of decoding again; every split then lives as one tensor.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from forgeml.data.audio.decode import AUDIO_EXT, decode_bytes, decode_file, is_audio_name, prepare_wave
from forgeml.errors import DataError

__all__ = ["AudioFeature", "decode_bytes", "AUDIO_EXT", "looks_like_audio"]

CHUNK_BYTES = 256 << 20  # memory one batched spectrogram may take: the waves, the complex STFT, its power and the mels
MAX_CHUNK = 256  # clips per batch at most, however short


def _blank(v: Any) -> bool:
    """A missing cell: None, NaN, or a string of spaces."""
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip())


def looks_like_audio(values: np.ndarray) -> bool:
    """A text column whose every non-blank cell names a .wav/.flac/.ogg (or readable .mp3) file: read it as audio (blank cells are
    missing values, an error naming the row later)."""
    if values.dtype != object or not len(values):
        return False
    cells = [v for v in values[:1000] if not _blank(v)]
    return bool(cells) and all(isinstance(v, str) and is_audio_name(v.strip()) for v in cells)


class AudioFeature:
    kind = "audio"

    def __init__(self, name: str, settings: dict[str, Any] | Any | None = None, mean: float = 0.0, std: float = 1.0):
        from forgeml.config import AudioConfig

        if settings is None:
            settings = AudioConfig()
        self.name = name
        self.settings = settings.model_dump() if hasattr(settings, "model_dump") else dict(settings)
        self.mean, self.std = float(mean), float(std)
        self._kept: tuple[np.ndarray, np.ndarray] | None = None  # (the column fit read, its spectrograms)

    # ------------------------------------------------------------------ shape
    @functools.cached_property
    def config(self):
        """The settings as an AudioConfig (built once): one place (config.py) says how long a clip is in samples and frames."""
        from forgeml.config import AudioConfig

        return AudioConfig(**self.settings)

    @property
    def samples(self) -> int:
        return self.config.samples()

    @property
    def frames(self) -> int:
        return self.config.frames()

    @property
    def chunk(self) -> int:
        """Clips per batched spectrogram: as many as fit CHUNK_BYTES (float32 wave, complex64 STFT, float32 power
        and mels per clip), at least 1 and at most MAX_CHUNK."""
        bins = int(self.settings["n_fft"]) // 2 + 1
        per_clip = 4 * self.samples + (8 + 4) * bins * self.frames + 4 * int(self.settings["n_mels"]) * self.frames
        return max(1, min(MAX_CHUNK, CHUNK_BYTES // per_clip))

    @property
    def shape(self) -> list[int]:
        """(1, n_mels, frames): what the network reads per clip."""
        return [1, int(self.settings["n_mels"]), self.frames]

    @property
    def width(self) -> int:
        return int(np.prod(self.shape))

    # ------------------------------------------------------------------ raw values to waves
    def wave(self, value: Any, origin: str) -> np.ndarray:
        """One cell to the wave the spectrogram reads: a path (str/Path), a file's bytes, or a 1-D float
        array already at the feature's sample rate."""
        s = self.settings
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            if value.ndim != 1:
                raise DataError(f"{origin}: an audio array must be 1-D (mono samples at {s['sample_rate']} Hz); got shape "
                                f"{list(value.shape)}")
            if not np.isfinite(value).all():
                raise DataError(f"{origin}: the audio array holds NaN or infinite samples")
            return prepare_wave(value.astype(np.float32), int(s["sample_rate"]), s, origin)
        if isinstance(value, (bytes, bytearray, memoryview)):
            wave, rate = decode_bytes(bytes(value), origin, s["mixdown"])
            return prepare_wave(wave, rate, s, origin)
        if isinstance(value, (str, Path)) and str(value).strip():
            path = str(value).strip()
            wave, rate = decode_file(path, path, s["mixdown"])
            return prepare_wave(wave, rate, s, path)
        raise DataError(f"{origin}: {self.name!r} holds {type(value).__name__} {str(value)[:40]!r}, not an audio file; give a "
                        "path to a WAV/FLAC/OGG file (or its bytes, or a 1-D float array of samples)")

    def spectrograms(self, values: np.ndarray, origin: str = "", device: str = "cpu") -> np.ndarray:
        """Raw cells to (N, 1, n_mels, frames) log-mel dB, not yet standardised; `chunk` clips at a time, on `device`
        (the CPU unless the caller asks: the run's device is the caller's choice, and GPU FFTs round differently)."""
        import torch

        from forgeml.data.audio.mel import log_mel, mel_filterbank

        s = self.settings
        filters = mel_filterbank(int(s["sample_rate"]), int(s["n_fft"]), int(s["n_mels"]))
        out = np.empty((len(values), *self.shape), dtype=np.float32)
        where = origin or "input"
        chunk = self.chunk
        for start in range(0, len(values), chunk):
            cells = values[start : start + chunk]
            waves = np.stack([self.wave(v, f"{where}: row {start + i}") for i, v in enumerate(cells)])  # (B, S)
            mel = log_mel(torch.from_numpy(waves).to(device), int(s["sample_rate"]), int(s["n_fft"]), int(s["hop_length"]),
                          int(s["n_mels"]), s["top_db"], filters)  # (B, n_mels, frames)
            out[start : start + len(cells), 0] = mel.cpu().numpy()
        return out

    # ------------------------------------------------------------------ fit / transform
    def fit(self, values: np.ndarray, origin: str = "") -> AudioFeature:
        spec = self.spectrograms(values, origin)
        self.mean = float(spec.mean(dtype=np.float64))
        self.std = float(spec.std(dtype=np.float64)) or 1.0
        self._kept = (values, spec)  # the same column's transform (the training split's) reuses it
        return self

    def transform(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        kept, self._kept = self._kept, None  # handed back once, then released
        spec = kept[1] if kept is not None and kept[0] is values else self.spectrograms(values, origin)
        spec -= self.mean  # in place: the chunked array is ours
        spec /= self.std
        return spec

    # ------------------------------------------------------------------ saving
    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "settings": self.settings, "mean": self.mean, "std": self.std,
                "shape": self.shape}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AudioFeature:
        return cls(d["name"], d["settings"], d["mean"], d["std"])
