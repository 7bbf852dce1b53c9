"""Raw data as named columns, the common shape every source produces.

Table columns are 1-D numpy arrays (float for numbers, object for text, NaN/None for missing);
an image column is one (N, C, H, W) array. Features turn columns into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Columns:
    data: dict[str, np.ndarray]
    origin: str = ""  # file or set it came from, for error messages
    row_names: list[str] | None = field(default=None, repr=False)  # e.g. image file paths, for reports

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns of unequal length: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    @property
    def names(self) -> list[str]:
        return list(self.data)

    def take(self, index: np.ndarray) -> Columns:
        names = [self.row_names[i] for i in index] if self.row_names is not None else None
        return Columns({k: v[index] for k, v in self.data.items()}, self.origin, names)

    def without(self, names: list[str]) -> Columns:
        return Columns({k: v for k, v in self.data.items() if k not in names}, self.origin, self.row_names)
