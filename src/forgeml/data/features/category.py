"""Category columns: a vocabulary fitted on training values, index 0 the unknown bucket, one-hot out."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

MISSING = "<missing>"


def as_tokens(values: np.ndarray) -> list[str]:
    """Values to strings; missing (None/NaN) becomes its own token; 3.0 and '3' agree."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out.append(MISSING)
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


class CategoryFeature:
    kind = "category"

    def __init__(self, name: str, vocab: list[str] | None = None, min_count: int = 1, max_vocab: int | None = None):
        self.name, self.vocab, self.min_count, self.max_vocab = name, vocab or [], min_count, max_vocab
        self._index = {v: i + 1 for i, v in enumerate(self.vocab)}

    @property
    def width(self) -> int:
        return len(self.vocab) + 1  # + the unknown bucket at 0

    def fit(self, values: np.ndarray, origin: str = "") -> CategoryFeature:
        counts = Counter(as_tokens(values))
        kept = [(v, c) for v, c in counts.items() if c >= self.min_count]
        kept.sort(key=lambda vc: (-vc[1], vc[0]))
        if self.max_vocab:
            kept = kept[: self.max_vocab]
        self.vocab = sorted(v for v, _ in kept)
        self._index = {v: i + 1 for i, v in enumerate(self.vocab)}
        return self

    def indices(self, values: np.ndarray) -> np.ndarray:
        return np.array([self._index.get(t, 0) for t in as_tokens(values)], dtype=np.int64)

    def transform(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        idx = self.indices(values)
        out = np.zeros((len(idx), self.width), dtype=np.float32)
        out[np.arange(len(idx)), idx] = 1.0
        return out

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "vocab": self.vocab, "min_count": self.min_count, "max_vocab": self.max_vocab}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CategoryFeature:
        return cls(d["name"], d["vocab"], d.get("min_count", 1), d.get("max_vocab"))
