"""1-D CNN over a numeric series: the Fully Convolutional Network (FCN) of Wang, Yan & Oates (2017).

    series (B, T, C) -> [Conv1d -> BatchNorm -> ReLU] x 3 -> global average pool over steps -> (B, out_dim)

With the defaults (128/256/128 filters, kernels 8/5/3) this is the FCN that Fawaz et al. (2019) found
best on LIBRAS (96.4%). It has no pooling between blocks and no dense layers, so it reads series of any
length; the head after it sees one vector per row.

Rows of different lengths arrive zero-padded with `<name>.length` beside them (docs/contract.md).
Padding must not change a row's output, so every block zeroes the steps past each row's end before the
next convolution reads them (a row then looks exactly as if it ended there, since the convolution pads
with zeros anyway), batch norm takes its statistics over real steps only, and the pool averages real
steps only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from forgeml.config import Conv1dEncoderConfig, format_validation_error
from forgeml.errors import ConfigError
from forgeml.models.encoders.base import sequence_feature


def step_mask(lengths: torch.Tensor | None, T: int) -> torch.Tensor | None:
    """(B,) lengths -> (B, 1, T) bool, True on real steps; None when every row is whole."""
    if lengths is None:
        return None
    return (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, T)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics skip padded steps (same parameters and buffers as BatchNorm1d).

    Without a mask, or in eval mode, it is BatchNorm1d exactly."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None or not self.training:
            return super().forward(x)
        keep = mask.to(x.dtype)  # (B, 1, T)
        n = keep.sum().clamp(min=2)
        mean = (x * keep).sum((0, 2)) / n  # (C,)
        var = (((x - mean[None, :, None]) * keep) ** 2).sum((0, 2)) / n  # biased, as BatchNorm normalises with
        with torch.no_grad():  # running statistics use the unbiased variance, as BatchNorm1d does
            m = self.momentum if self.momentum is not None else 0.1
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * n / (n - 1), m)
            self.num_batches_tracked += 1
        x = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return x * self.weight[None, :, None] + self.bias[None, :, None] if self.affine else x


class ConvBlock(nn.Module):
    """Conv1d ("same" length) -> batch norm -> ReLU; steps past a row's end come out zero."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        # k // 2 zeros each side, then keep the first T outputs: "same" length for odd and even kernels alike,
        # without the extra padded copy (and warning) that padding="same" makes for an even kernel such as 8
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.bn = MaskedBatchNorm1d(c_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        T = x.shape[2]
        x = F.relu(self.bn(self.conv(x)[:, :, :T], mask))  # (B, C_out, T)
        return x * mask if mask is not None else x  # the next conv must see zeros past the end, as at a real end


class Conv1dEncoder(nn.Module):
    def __init__(self, cfg: Conv1dEncoderConfig, feature: str, in_channels: int):
        super().__init__()
        self.cfg, self.feature = cfg, feature
        widths = [in_channels, *cfg.channels]
        self.blocks = nn.ModuleList(ConvBlock(a, b, k) for a, b, k in zip(widths[:-1], widths[1:], cfg.kernel_sizes))
        self.drop = nn.Dropout(cfg.dropout)
        self.out_dim: int = cfg.channels[-1]

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs[self.feature].transpose(1, 2)  # (B, T, C) -> (B, C, T): Conv1d wants channels first
        mask = step_mask(inputs.get(f"{self.feature}.length"), x.shape[2])  # (B, 1, T) or None
        for block in self.blocks:
            x = block(x, mask)  # (B, C_i, T)
        if mask is None:
            pooled = x.mean(2)  # (B, C_last): global average pooling
        else:
            pooled = x.sum(2) / mask.sum(2).clamp(min=1)  # (B, C_last): the mean over real steps (padding is zero)
        return self.drop(pooled)


def build(cfg_section: dict[str, Any] | Conv1dEncoderConfig | None, features: list[Any]) -> Conv1dEncoder:
    """The conv1d encoder for one sequence feature (`features`: [a fitted SequenceFeature]).

    >>> from forgeml.data.features.sequence import SequenceFeature
    >>> enc = build({"channels": [8, 8], "kernel_sizes": [3, 3]}, [SequenceFeature("s", channels=2, length=10)])
    >>> enc({"s": torch.zeros(4, 10, 2)}).shape
    torch.Size([4, 8])
    """
    feature = sequence_feature("conv1d", features)
    if isinstance(cfg_section, Conv1dEncoderConfig):
        cfg = cfg_section
    else:
        try:
            cfg = Conv1dEncoderConfig(**(cfg_section or {}))
        except ValidationError as exc:
            where = f"model.encoders.{feature.name}"
            raise ConfigError("; ".join(line.strip() for line in format_validation_error(exc, Conv1dEncoderConfig, where).splitlines())) from None
    return Conv1dEncoder(cfg, feature.name, feature.channels)
