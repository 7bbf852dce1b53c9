"""Sequence encoders (conv1d FCN, GRU/LSTM): the contract's shapes, padding masked out, bad configs, and a
tiny LIBRAS run through the Trainer that learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from forgeml.data.batcher import TensorBatcher
from forgeml.data.features.sequence import SequenceFeature
from forgeml.errors import ConfigError
from forgeml.models.encoders import conv1d, recurrent_series
from forgeml.models.encoders.conv1d import MaskedBatchNorm1d

LIBRAS = Path(__file__).resolve().parents[2] / "data" / "libras" / "movement_libras.data"
SMALL_CNN = {"channels": [8, 16, 8], "kernel_sizes": [8, 5, 3]}  # the FCN's shape, narrower
ENCODERS = {
    "conv1d": lambda f: conv1d.build(SMALL_CNN, [f]),
    "gru-last": lambda f: recurrent_series.build_gru({"hidden": 8, "dropout": 0.0}, [f]),
    "lstm-mean": lambda f: recurrent_series.build_lstm({"hidden": 8, "pooling": "mean", "dropout": 0.0}, [f]),
    "gru-max-1way": lambda f: recurrent_series.build_gru({"hidden": 8, "pooling": "max", "bidirectional": False,
                                                           "input_dim": 4, "layers": 1, "dropout": 0.0}, [f]),
}


def feature(channels: int = 2, length: int = 12) -> SequenceFeature:
    return SequenceFeature("s", channels=channels, length=length)


@pytest.mark.parametrize("name", ENCODERS)
def test_shape_per_contract(name):
    torch.manual_seed(0)
    enc = ENCODERS[name](feature())
    out = enc({"s": torch.randn(5, 12, 2), "other": torch.zeros(5, 3)})  # picks its own feature from the dict
    assert out.shape == (5, enc.out_dim) and out.dtype == torch.float32
    assert enc({"s": torch.randn(3, 30, 2)}).shape == (3, enc.out_dim)  # any length: no dense layer after the steps


@pytest.mark.parametrize("train_mode", [False, True])
@pytest.mark.parametrize("name", ENCODERS)
def test_padded_steps_do_not_change_a_rows_output(name, train_mode):
    torch.manual_seed(0)
    enc = ENCODERS[name](feature()).train(train_mode)
    lengths = torch.tensor([12, 7, 3])
    x = torch.randn(3, 12, 2)
    x[torch.arange(12)[None, :] >= lengths[:, None]] = 0  # (B, T, C): zero past each end, as SequenceFeature gives
    wide = torch.cat([x, torch.zeros(3, 9, 2)], dim=1)  # the same rows padded further, to 21 steps
    a = enc({"s": x, "s.length": lengths})
    b = enc({"s": wide, "s.length": lengths})
    torch.testing.assert_close(a, b)  # in training too: batch norm's statistics skip the padding
    if not train_mode:  # each row alone, unpadded and with no length tensor, is the same row
        for i, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(enc({"s": x[i : i + 1, :n]})[0], a[i], rtol=1e-4, atol=1e-5)


def test_padding_does_change_the_output_when_lengths_are_not_given():  # the masking is what keeps it out
    torch.manual_seed(0)
    enc = ENCODERS["conv1d"](feature()).eval()
    x = torch.randn(1, 5, 2)
    assert not torch.allclose(enc({"s": x}), enc({"s": torch.cat([x, torch.zeros(1, 7, 2)], 1)}))


def test_masked_batch_norm_is_batch_norm_when_every_step_is_real():
    torch.manual_seed(0)
    ours, ref = MaskedBatchNorm1d(4), nn.BatchNorm1d(4)
    x = torch.randn(6, 4, 10) * 3 + 1
    torch.testing.assert_close(ours(x, torch.ones(6, 1, 10, dtype=torch.bool)), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert set(ours.state_dict()) == set(ref.state_dict())


def test_builders_refuse_what_they_cannot_read():
    class Numeric:
        name, kind = "age", "numeric"

    with pytest.raises(ConfigError, match=r"encoder 'conv1d' reads one sequence feature, not 'age' \(numeric\)"):
        conv1d.build(None, [Numeric()])
    with pytest.raises(ConfigError, match=r"encoder 'lstm' reads one sequence feature"):
        recurrent_series.build_lstm(None, [Numeric()])
    with pytest.raises(ConfigError, match="kernel_sizes has 2 entries but channels has 3"):
        conv1d.build({"channels": [8, 8, 8], "kernel_sizes": [3, 3]}, [feature()])
    with pytest.raises(ConfigError, match=r"model.encoders.s.hiden: unknown key; did you mean model.encoders.s.hidden\?"):
        recurrent_series.build_gru({"hiden": 8}, [feature()])


def test_cell_and_defaults():
    assert isinstance(recurrent_series.build_lstm(None, [feature()]).rnn, nn.LSTM)
    assert isinstance(recurrent_series.build_gru({"cell": "lstm"}, [feature()]).rnn, nn.GRU)  # the registry name decides
    fcn = conv1d.build(None, [feature()])
    assert [b.conv.out_channels for b in fcn.blocks] == [128, 256, 128] and [b.conv.kernel_size[0] for b in fcn.blocks] == [8, 5, 3]


# ------------------------------------------------------------------------------------------------ it learns
class SeriesClassifier(nn.Module):
    """Encoder + Linear head over the input dict: the Network's shape with one encoder and one head."""

    def __init__(self, encoder: nn.Module, n_classes: int):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.out_dim, n_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encoder(inputs))  # (B, K)


@pytest.mark.parametrize("name", ["conv1d", "gru"])
def test_a_few_libras_rows_are_learnt(name):
    from forgeml.training.trainer import Trainer

    a = np.loadtxt(LIBRAS, delimiter=",")
    rows = np.flatnonzero(a[:, 90] <= 4)[::3]  # 32 rows of 4 classes
    f = SequenceFeature("s", {"pad": "zero"}).fit(a[rows, :90].reshape(-1, 45, 2))
    inputs = {k: torch.as_tensor(v) for k, v in f.inputs(a[rows, :90].reshape(-1, 45, 2)).items()}
    y = torch.as_tensor(a[rows, 90].astype(np.int64) - 1)
    torch.manual_seed(0)
    encoder = ENCODERS[name](f) if name == "conv1d" else recurrent_series.build_gru({"hidden": 16, "layers": 1}, [f])
    model = SeriesClassifier(encoder, 4)
    loss = nn.CrossEntropyLoss()

    def full_loss() -> float:
        model.eval()
        with torch.no_grad():
            return loss(model(inputs), y).item()

    before = full_loss()
    # one thread: a small GRU on a shared CPU runs many times slower with two that fight over the cores
    Trainer(model, loss, optimizer="adam", lr=1e-2, epochs=15, batch_size=16, progress=False, device="cpu",
            threads=1).fit(TensorBatcher(inputs, y, 16))
    after = full_loss()
    assert after < 0.5 * before, (before, after)
