"""Numeric columns: missing values imputed with the training median and flagged; standardised."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forgeml.data.columns import RowError
from forgeml.errors import DataError


def as_float(values: np.ndarray, name: str, origin: str = "") -> np.ndarray:
    """Column to float64 with NaN for missing; a value that is present but not a number is an error."""
    if values.dtype.kind in "fiub":
        return values.astype(np.float64)
    parsed = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(parsed) & ~pd.isna(pd.Series(values, dtype=object)).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise RowError(f"{origin + ': ' if origin else ''}column {name!r} ", i, f": {values[i]!r} is not a number "
                       f"({int(bad.sum())} such values). Mark it missing with data.na_values or declare the column "
                       f"a category in data.features")
    return parsed


class NumericFeature:
    kind = "numeric"

    def __init__(self, name: str, mean: float = 0.0, std: float = 1.0, fill: float = 0.0, flag: bool = False):
        self.name, self.mean, self.std, self.fill, self.flag = name, mean, std, fill, flag

    @property
    def width(self) -> int:
        return 2 if self.flag else 1

    def fit(self, values: np.ndarray, origin: str = "") -> NumericFeature:
        x = as_float(values, self.name, origin)
        missing = np.isnan(x)
        if missing.all():
            raise DataError(f"{origin}: column {self.name!r} has no values in the training split; drop it with data.drop")
        self.fill = float(np.median(x[~missing]))
        filled = np.where(missing, self.fill, x)
        self.mean, self.std = float(filled.mean()), float(filled.std()) or 1.0
        self.flag = bool(missing.any())
        return self

    def transform(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        x = as_float(values, self.name, origin)
        missing = np.isnan(x)
        out = ((np.where(missing, self.fill, x) - self.mean) / self.std)[:, None]
        if self.flag:
            out = np.concatenate([out, missing[:, None].astype(np.float64)], axis=1)
        return out.astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "mean": self.mean, "std": self.std, "fill": self.fill, "flag": self.flag}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NumericFeature:
        return cls(d["name"], d["mean"], d["std"], d["fill"], d["flag"])
