"""Binary columns: two values become 0 and 1; missing or unseen values sit at 0.5 and are flagged."""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.data.features.category import MISSING, as_tokens
from forgeml.errors import DataError


class BinaryFeature:
    kind = "binary"

    def __init__(self, name: str, values: list[str] | None = None, flag: bool = False):
        self.name, self.values, self.flag = name, values or [], flag

    @property
    def width(self) -> int:
        return 2 if self.flag else 1

    def fit(self, values: np.ndarray, origin: str = "") -> BinaryFeature:
        tokens = as_tokens(values)
        seen = sorted(set(tokens) - {MISSING})
        if len(seen) > 2:
            raise DataError(f"{origin}: column {self.name!r} is declared binary but has {len(seen)} values "
                            f"({', '.join(seen[:5])}...); declare it a category")
        self.values = seen if len(seen) == 2 else seen + ["<other>"]
        self.flag = MISSING in tokens
        return self

    def transform(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        tokens = as_tokens(values)
        x = np.array([1.0 if t == self.values[1] else 0.0 if t == self.values[0] else 0.5 for t in tokens], dtype=np.float32)
        out = x[:, None]
        if self.flag:
            out = np.concatenate([out, (x == 0.5)[:, None].astype(np.float32)], axis=1)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "values": self.values, "flag": self.flag}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BinaryFeature:
        return cls(d["name"], d["values"], d["flag"])
