"""Audio encoders: the CNN over the spectrogram, the frames encoder (GRU/LSTM over frames), their short forms."""

import pytest
import torch

from forgeml.config import CNNConfig, FramesConfig, load_config
from forgeml.data.features import AudioFeature, NumericFeature
from forgeml.data.features.target import ClassLabels
from forgeml.errors import ConfigError
from forgeml.models import build_network
from forgeml.models.encoders import ENCODERS

AUDIO = AudioFeature("path", {"sample_rate": 8000, "duration": 0.5, "align": "center", "mixdown": "mean", "normalise": "peak",
                              "min_rms": 1e-4, "n_fft": 256, "hop_length": 80, "n_mels": 40, "top_db": 80.0})


def labels() -> ClassLabels:
    import numpy as np

    return ClassLabels("label").fit(np.array(["a", "b", "c"], dtype=object))


def test_frames_encoder_reads_the_spectrogram_frame_by_frame():
    enc = ENCODERS["frames"](FramesConfig(hidden=16, layers=1), [AUDIO])
    x = torch.randn(4, 1, 40, 51)
    assert enc({"path": x}).shape == (4, 32)
    y = x.clone()
    y[:, :, :, 30] += 5.0  # one frame changes: the output of a recurrence over frames changes
    assert not torch.allclose(enc.eval()({"path": x}), enc({"path": y}))


@pytest.mark.parametrize("change", [{"cell": "lstm"}, {"pooling": "last"}, {"bidirectional": False}, {"input_dim": 8}])
def test_frames_settings_change_the_encoder(change):
    torch.manual_seed(0)
    base = ENCODERS["frames"](FramesConfig(hidden=16, layers=1), [AUDIO]).eval()
    torch.manual_seed(0)
    other = ENCODERS["frames"](FramesConfig(hidden=16, layers=1, **change), [AUDIO]).eval()
    x = torch.randn(2, 1, 40, 51)
    a, b = base({"path": x}), other({"path": x})
    assert a.shape != b.shape or not torch.allclose(a, b)


def test_short_forms_cnn_and_frames_on_audio():
    for model in ({"name": "cnn", "hidden": [16]}, {"name": "frames", "hidden": 16}):
        cfg = load_config({"model": model})
        net = build_network(cfg.model, [AUDIO], [labels()], seed=0)
        out = net({"path": torch.randn(3, *AUDIO.shape)})
        assert out["label"].shape == (3, 3)


def test_composite_defaults_audio_to_the_cnn_and_frames_refuses_other_kinds():
    cfg = load_config({"model": {"name": "composite"}})
    net = build_network(cfg.model, [AUDIO], [labels()], seed=0)
    assert type(net.encoders["path"]).__name__ == "CNNEncoder"
    num = NumericFeature("x")
    with pytest.raises(ConfigError, match="frames reads one audio input"):
        build_network(load_config({"model": {"name": "frames"}}).model, [num], [labels()])
    with pytest.raises(ConfigError, match="'frames' encoder reads one audio feature"):
        ENCODERS["frames"](FramesConfig(), [num])
    assert ENCODERS["cnn"](CNNConfig(hidden=[8]), [AUDIO]).out_dim == 8
