"""Images: (N, C, H, W) arrays, normalised per channel with training mean and std."""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.errors import DataError


class ImageFeature:
    kind = "image"

    def __init__(self, name: str, shape: list[int] | None = None, mean: list[float] | None = None,
                 std: list[float] | None = None, dtype: str = "uint8"):
        self.name, self.shape, self.mean, self.std, self.dtype = name, shape or [], mean or [], std or [], dtype

    @property
    def width(self) -> int:
        return int(np.prod(self.shape))

    def fit(self, values: np.ndarray, origin: str = "") -> ImageFeature:
        x = values.astype(np.float64)
        self.shape = list(values.shape[1:])
        self.mean = x.mean(axis=(0, 2, 3)).tolist()
        self.std = [s or 1.0 for s in x.std(axis=(0, 2, 3)).tolist()]
        self.dtype = str(values.dtype)
        return self

    def transform(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        values = np.asarray(values)
        if values.ndim == 3 and len(self.shape) == 3 and self.shape[0] == 1:
            values = values[:, None]  # (N, H, W) grayscale
        if list(values.shape[1:]) != self.shape:
            raise DataError(f"{origin + ': ' if origin else ''}image {self.name!r}: expected shape {self.shape} (C, H, W) "
                            f"per image, got {list(values.shape[1:])}")
        mean = np.asarray(self.mean, dtype=np.float32)[None, :, None, None]
        std = np.asarray(self.std, dtype=np.float32)[None, :, None, None]
        return (values.astype(np.float32) - mean) / std

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "shape": self.shape, "mean": self.mean, "std": self.std, "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageFeature:
        return cls(d["name"], d["shape"], d["mean"], d["std"], d.get("dtype", "uint8"))
