"""Waves to log-mel spectrograms in batches, with torch (on whatever device the waves are on).

    log_mel(waves (B, S), sample_rate, n_fft, hop_length, n_mels) -> (B, n_mels, frames)

It computes what librosa computes clip by clip with its defaults,
    librosa.power_to_db(librosa.feature.melspectrogram(y=w, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels), top_db=top_db)
(centred frames, zero padding at the ends, a periodic Hann window, power 2, Slaney mel scale with area
normalisation, 10 log10 with amin 1e-10 and ref 1, each clip floored at its maximum minus top_db), to float32
rounding: tests/data/test_audio_mel.py checks it against librosa.
"""

from __future__ import annotations

import math

import torch

# Slaney's mel scale (librosa's htk=False): linear below 1 kHz, logarithmic above
_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    linear = f / _F_SP
    return torch.where(f >= _MIN_LOG_HZ, _MIN_LOG_MEL + torch.log(f.clamp(min=1e-10) / _MIN_LOG_HZ) / _LOGSTEP, linear)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return torch.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, each scaled to unit area (Slaney norm), in float64."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (sample_rate / n_fft)  # (F,): rfftfreq, odd n_fft too
    mels = torch.linspace(float(hz_to_mel(torch.tensor(f_min, dtype=torch.float64))),
                          float(hz_to_mel(torch.tensor(f_max, dtype=torch.float64))), n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(mels)  # (n_mels + 2,): each filter's left edge, centre and right edge
    widths = edges[1:] - edges[:-1]  # (n_mels + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]  # rising slope, (n_mels, F)
    upper = ramps[2:] / widths[1:, None]  # falling slope, (n_mels, F)
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]  # area normalisation


def log_mel(waves: torch.Tensor, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
            top_db: float | None = 80.0, filters: torch.Tensor | None = None) -> torch.Tensor:
    """(B, S) float waves -> (B, n_mels, 1 + S // hop_length) log-mel power in dB, float32.

    `filters`: a precomputed mel_filterbank (kept by the caller across batches); computed here otherwise."""
    if filters is None:
        filters = mel_filterbank(sample_rate, n_fft, n_mels)
    filters = filters.to(device=waves.device, dtype=torch.float32)
    window = torch.hann_window(n_fft, periodic=True, device=waves.device, dtype=torch.float32)
    spec = torch.stft(waves.float(), n_fft, hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # (B, F, T)
    power = spec.real.square() + spec.imag.square()  # (B, F, T): |X|^2
    mel = filters @ power  # (n_mels, F) @ (B, F, T) -> (B, n_mels, T)
    db = 10.0 * torch.log10(mel.clamp(min=1e-10))
    if top_db is not None:
        floor = db.amax(dim=(1, 2), keepdim=True) - top_db  # (B, 1, 1): each clip's own floor
        db = torch.maximum(db, floor)
    return db
