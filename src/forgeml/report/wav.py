"""A clip as a 16-bit PCM WAV file (the stdlib `wave` module: no extra needed), and as a data: URI an `<audio>`
element plays with nothing fetched from elsewhere.

    >>> import numpy as np
    >>> wav_bytes(np.zeros(800, dtype=np.float32), 8000)[:4]
    b'RIFF'
"""

from __future__ import annotations

import base64
import io
import wave

import numpy as np


def wav_bytes(samples: np.ndarray, rate: int, peak: bool = True) -> bytes:
    """A mono WAV file (16-bit PCM) of `samples` (1-D floats, full scale ±1) at `rate` Hz.

    Args:
        samples: the clip, one float per sample; NaN/inf count as silence.
        rate: samples per second (the rate the model reads, after resampling).
        peak: scale the loudest sample to 0.9 of full scale (quiet clips stay audible; the model's input may be
            normalised anyway), never up by more than 100x (near-silence stays quiet). Default True.
    """
    x = np.nan_to_num(np.asarray(samples, dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    if peak and x.size:
        top = float(np.abs(x).max())
        if top > 0:
            x = x * min(0.9 / top, 100.0)
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")  # little-endian int16, as WAV stores it
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def wav_data_uri(samples: np.ndarray, rate: int) -> str:
    """`data:audio/wav;base64,...` of the clip: the src of an <audio controls> element."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(samples, rate)).decode()
