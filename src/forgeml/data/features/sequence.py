"""Sequence columns: a numeric series per row, (T, C) values, standardised per channel.

The tensor (contract: docs/contract.md) is float32 (N, T, C), zero past a row's end, plus
`<name>.length` int64 (N,) when the feature allows rows of different lengths (`pad: zero`). The
per-channel mean and std are fitted on the training split over real steps only, so padding never
shifts them; padding is added after standardising, so it is exactly zero in the tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.config import SequenceConfig
from forgeml.data.columns import RowError
from forgeml.data.sequence_columns import as_series, stack_series
from forgeml.errors import DataError


class SequenceFeature:
    kind = "sequence"

    def __init__(self, name: str, settings: dict[str, Any] | SequenceConfig | None = None, channels: int = 0,
                 length: int = 0, mean: list[float] | None = None, std: list[float] | None = None):
        self.name = name
        self.cfg = settings if isinstance(settings, SequenceConfig) else SequenceConfig(**(settings or {}))
        self.channels, self.length = channels, length  # C, and the longest training series (after max_length)
        self.mean = np.asarray(mean if mean is not None else [], dtype=np.float64)  # (C,)
        self.std = np.asarray(std if std is not None else [], dtype=np.float64)  # (C,)

    @property
    def width(self) -> int:
        """Numbers per row when flattened (an MLP on the raw series)."""
        return self.length * self.channels

    @property
    def ragged(self) -> bool:
        """Whether rows may differ in length, so the `<name>.length` tensor goes with the series."""
        return self.cfg.pad != "none"

    def _read(self, values: Any, origin: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw column -> (N, T, C) float64 and lengths (N,), not yet standardised."""
        cfg = self.cfg
        x, lengths = stack_series(as_series(values, self.name, cfg.sep, origin), self.name, cfg.pad, cfg.max_length, origin)
        steps = np.arange(x.shape[1])[None, :] < lengths[:, None]  # (N, T): real steps
        bad = ~np.isfinite(x).all(axis=2) & steps
        if bad.any():
            i = int(np.argmax(bad.any(axis=1)))
            raise RowError(f"{origin + ': ' if origin else ''}column {self.name!r} ", i,
                           f": a missing or infinite value at step {int(np.argmax(bad[i]))} ({int(bad.sum())} such steps); "
                           "fill the gaps (e.g. interpolate) before training")
        return x, lengths

    def fit(self, values: Any, origin: str = "") -> SequenceFeature:
        x, lengths = self._read(values, origin)
        steps = np.arange(x.shape[1])[None, :] < lengths[:, None]  # (N, T)
        real = x[steps]  # (sum of lengths, C): padding never enters the statistics
        self.channels, self.length = int(x.shape[2]), int(lengths.max())
        self.mean = real.mean(axis=0)
        std = real.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)  # a constant channel stays constant (0) instead of dividing by zero
        return self

    def encode(self, values: Any, origin: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Raw column -> standardised float32 (N, T, C), zero past each row's end, and lengths int64 (N,)."""
        x, lengths = self._read(values, origin)
        if x.shape[2] != self.channels:
            raise DataError(f"{origin + ': ' if origin else ''}column {self.name!r}: {x.shape[2]} channels per step, "
                            f"but the model was trained on {self.channels}")
        if not self.ragged and x.shape[1] != self.length:
            raise DataError(f"{origin + ': ' if origin else ''}column {self.name!r}: series of {x.shape[1]} steps, but the "
                            f"model was trained on {self.length} and data.sequence.pad is none; give {self.length} steps "
                            "(or train with pad: zero)")
        steps = np.arange(x.shape[1])[None, :, None] < lengths[:, None, None]  # (N, T, 1)
        out = np.where(steps, (x - self.mean) / self.std, 0.0)  # (N, T, C): padding added after standardising stays 0
        return out.astype(np.float32), lengths

    def transform(self, values: Any, origin: str = "") -> np.ndarray:
        return self.encode(values, origin)[0]

    def inputs(self, values: Any, origin: str = "") -> dict[str, np.ndarray]:
        """The contract's tensors for this feature: the series, plus `<name>.length` when rows may differ in length."""
        x, lengths = self.encode(values, origin)
        return {self.name: x, f"{self.name}.length": lengths} if self.ragged else {self.name: x}

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "settings": self.cfg.model_dump(), "channels": self.channels,
                "length": self.length, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SequenceFeature:
        return cls(d["name"], d["settings"], d["channels"], d["length"], d["mean"], d["std"])
