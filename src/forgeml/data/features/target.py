"""Targets: class labels (names kept for reports and predictions) or a standardised regression value."""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.data.columns import RowError
from forgeml.data.features.category import MISSING, as_tokens
from forgeml.errors import DataError


class ClassLabels:
    kind = "classification"

    def __init__(self, name: str, classes: list[str] | None = None, counts: list[int] | None = None):
        self.name, self.classes, self.counts = name, classes or [], counts or []
        self._index = {c: i for i, c in enumerate(self.classes)}

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def fit(self, values: np.ndarray, origin: str = "") -> ClassLabels:
        tokens = as_tokens(values)
        if MISSING in tokens:
            i = tokens.index(MISSING)
            raise RowError(f"{origin}: ", i, f": target {self.name!r} is missing ({tokens.count(MISSING)} rows); "
                           "fill or drop those rows")
        uniq = sorted(set(tokens))
        try:
            uniq.sort(key=float)  # '2' before '10'
        except ValueError:
            pass
        if len(uniq) < 2:
            raise DataError(f"{origin}: target {self.name!r} has only {uniq} in the training split; classification needs two classes or more")
        self.classes = uniq
        self._index = {c: i for i, c in enumerate(uniq)}
        self.counts = [tokens.count(c) for c in uniq]
        return self

    def encode(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        tokens = as_tokens(values)
        out = np.array([self._index.get(t, -1) for t in tokens], dtype=np.int64)
        if (out < 0).any():
            i = int(np.argmax(out < 0))
            what = "is missing" if tokens[i] == MISSING else f"= {tokens[i]!r} was never seen in training"
            raise RowError(f"{origin}: ", i, f": target {self.name!r} {what} (classes: {', '.join(self.classes[:20])}). "
                           "Fix the row, or map it with data.label_aliases")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "classes": self.classes, "counts": self.counts}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClassLabels:
        return cls(d["name"], d["classes"], d.get("counts"))


class RegressionTarget:
    kind = "regression"

    def __init__(self, name: str, mean: float = 0.0, std: float = 1.0):
        self.name, self.mean, self.std = name, mean, std

    n_outputs = 1

    def fit(self, values: np.ndarray, origin: str = "") -> RegressionTarget:
        y = self._floats(values, origin)
        self.mean, self.std = float(y.mean()), float(y.std()) or 1.0
        return self

    def _floats(self, values: np.ndarray, origin: str) -> np.ndarray:
        from forgeml.data.features.numeric import as_float

        y = as_float(values, self.name, origin)
        if np.isnan(y).any():
            raise RowError(f"{origin}: ", int(np.argmax(np.isnan(y))), f": target {self.name!r} is missing ({int(np.isnan(y).sum())} rows)")
        return y

    def encode(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        return ((self._floats(values, origin) - self.mean) / self.std).astype(np.float32)

    def decode(self, y: np.ndarray) -> np.ndarray:
        return y * self.std + self.mean

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RegressionTarget:
        return cls(d["name"], d["mean"], d["std"])
