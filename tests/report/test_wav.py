"""The report's WAV writer (stdlib wave): what it writes reads back, through the stdlib and through libsndfile."""

import base64
import io
import wave

import numpy as np
import pytest

from forgeml.report.wav import wav_bytes, wav_data_uri


def tone(rate: int, seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * 440.0 * t)


def test_a_clip_reads_back_as_16_bit_mono_pcm_at_its_rate():
    x = tone(8000, 0.5, 0.5)
    with wave.open(io.BytesIO(wav_bytes(x, 8000, peak=False))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 4000)
        back = np.frombuffer(w.readframes(4000), dtype="<i2") / 32767.0
    assert np.abs(back - x).max() < 1 / 32767 + 1e-9  # rounding to the nearest 16-bit step, nothing more


def test_peak_raises_a_quiet_clip_but_not_near_silence_and_clips_and_nan_are_safe():
    def peak_of(samples, **kw):
        with wave.open(io.BytesIO(wav_bytes(samples, 16000, **kw))) as w:
            return np.abs(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")).max() / 32767.0

    assert peak_of(tone(16000, 0.1, 0.01)) == pytest.approx(0.9, abs=1e-3)  # a quiet clip made audible
    assert peak_of(tone(16000, 0.1, 1e-5)) == pytest.approx(1e-3, abs=1e-4)  # near silence: at most 100x
    assert peak_of(np.array([3.0, -3.0, np.nan, np.inf]), peak=False) == 1.0  # clipped, NaN/inf as silence
    assert peak_of(np.zeros(10)) == 0.0


def test_the_data_uri_is_a_wav_libsndfile_decodes():
    sf = pytest.importorskip("soundfile")
    uri = wav_data_uri(tone(22050, 0.25, 0.3), 22050)
    assert uri.startswith("data:audio/wav;base64,")
    data, rate = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert rate == 22050 and data.shape == (int(22050 * 0.25),) and abs(np.abs(data).max() - 0.9) < 1e-3
