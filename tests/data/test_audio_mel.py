"""The batched torch log-mel against librosa's, clip by clip, with the same settings."""

import numpy as np
import pytest
import torch

from forgeml.data.audio.mel import log_mel, mel_filterbank

librosa = pytest.importorskip("librosa")
sf = pytest.importorskip("soundfile")

CLIPS = ["0_jackson_0.wav", "3_theo_5.wav", "7_jackson_6.wav", "9_theo_0.wav"]
TOLERANCE_DB = 2e-3  # float32 STFT and matmul against librosa's float32/float64 mix; measured 3.4e-4 dB


def _waves(n: int = 8000) -> np.ndarray:
    out = []
    for name in CLIPS:
        w, rate = sf.read(f"data/spoken_digits/clips/{name}", dtype="float32")
        assert rate == 8000
        w = np.pad(w, (0, max(0, n - len(w))))[:n]
        out.append(w / np.abs(w).max())
    return np.stack(out)  # (4, n)


@pytest.mark.parametrize("sr,n_fft,n_mels", [(8000, 256, 40), (16000, 512, 64), (22050, 1024, 128), (8000, 255, 40), (16000, 401, 64)])
def test_mel_filterbank_is_librosas(sr, n_fft, n_mels):
    ours = mel_filterbank(sr, n_fft, n_mels).numpy()
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-6 * np.abs(ref).max()


@pytest.mark.parametrize("top_db", [80.0, None])
def test_log_mel_matches_librosa_clip_by_clip(top_db):
    waves = _waves()
    ours = log_mel(torch.from_numpy(waves), 8000, 256, 80, 40, top_db=top_db).numpy()  # one batch
    ref = np.stack([librosa.power_to_db(librosa.feature.melspectrogram(y=w, sr=8000, n_fft=256, hop_length=80, n_mels=40),
                                        top_db=top_db) for w in waves])
    assert ours.shape == ref.shape == (4, 40, 101)
    assert np.abs(ours - ref).max() < TOLERANCE_DB


def test_a_clip_gets_the_same_spectrogram_alone_or_in_a_batch():
    waves = torch.from_numpy(_waves())
    batch = log_mel(waves, 8000, 256, 80, 40)
    alone = torch.cat([log_mel(waves[i : i + 1], 8000, 256, 80, 40) for i in range(len(waves))])
    assert torch.allclose(batch, alone, atol=1e-4)


def test_top_db_floors_each_clip_at_its_own_maximum():
    waves = torch.from_numpy(_waves())
    floored = log_mel(waves, 8000, 256, 80, 40, top_db=30.0)
    free = log_mel(waves, 8000, 256, 80, 40, top_db=None)
    assert not torch.equal(floored, free)
    spread = floored.amax(dim=(1, 2)) - floored.amin(dim=(1, 2))
    assert torch.all(spread <= 30.0 + 1e-4)
