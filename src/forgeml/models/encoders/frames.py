"""`frames`: an audio clip's log-mel spectrogram read as a series of frames by a GRU or LSTM.

    spectrogram (B, 1, n_mels, T) -> frames (B, T, n_mels) -> Linear to `input_dim` per frame (optional)
                                  -> GRU/LSTM (stacked, optionally both ways) -> mean/max over frames, or last state
                                  -> (B, out_dim)

Every clip has the same number of frames (data.audio.duration), so there is no packing. The recurrence is the
series encoder's (models/encoders/recurrent_series.py); only the reshape is new. The CNN over the same tensor
is the other audio encoder (models/encoders/cnn.py).
"""

from __future__ import annotations

import torch
from torch import nn

from forgeml.config import FramesConfig, RecurrentSeriesConfig
from forgeml.errors import ConfigError
from forgeml.models.encoders.recurrent_series import RecurrentSeriesEncoder


class FramesEncoder(nn.Module):
    def __init__(self, cfg: FramesConfig, feature: str, n_mels: int):
        super().__init__()
        self.feature = feature
        series = RecurrentSeriesConfig(name=cfg.cell, input_dim=cfg.input_dim, hidden=cfg.hidden, layers=cfg.layers,
                                       bidirectional=cfg.bidirectional, dropout=cfg.dropout, pooling=cfg.pooling, init=cfg.init)
        self.rnn = RecurrentSeriesEncoder(series, feature, n_mels)
        self.out_dim: int = self.rnn.out_dim

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs[self.feature]  # (B, 1, M, T)
        frames = x[:, 0].transpose(1, 2)  # (B, T, M): one step per frame, its mel bands as channels
        return self.rnn({self.feature: frames})  # (B, out_dim)


def build(cfg: FramesConfig, features: list) -> FramesEncoder:
    if len(features) != 1 or getattr(features[0], "kind", None) != "audio":
        seen = ", ".join(f"{getattr(f, 'name', '?')!r} ({getattr(f, 'kind', '?')})" for f in features)
        raise ConfigError(f"model.encoders: the 'frames' encoder reads one audio feature, not {seen or 'nothing'}; "
                          "choose cnn or frames for audio, conv1d/gru/lstm for series")
    return FramesEncoder(cfg, features[0].name, features[0].shape[1])
