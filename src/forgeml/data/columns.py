"""Raw data as named columns, the common shape every source produces.

Table columns are 1-D numpy arrays (float for numbers, object for text, NaN/None for missing);
an image column is one (N, C, H, W) array. Features turn columns into tensors.

A table keeps each row's place in its file (`rows`: the 1-based line of a CSV/TSV/JSONL file, the row of
a Parquet file) through every take and split, so an error about row i cites the file, not a shuffled position.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from forgeml.errors import DataError


class RowError(DataError):
    """A data error about the row at position `row` of a column; `Columns.citing_rows` rewrites it with the file's line."""

    def __init__(self, before: str, row: int, after: str):
        self.before, self.row, self.after = before, row, after
        super().__init__(f"{before}row {row}{after}")


@dataclass
class Columns:
    data: dict[str, np.ndarray]
    origin: str = ""  # file or set it came from, for error messages
    row_names: list[str] | None = field(default=None, repr=False)  # e.g. image file paths, for reports
    rows: np.ndarray | None = field(default=None, repr=False)  # each row's 1-based place in the origin file
    row_word: str = "line"  # what `rows` counts: "line" (text files) or "row" (Parquet)

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.data.items()}
        if self.rows is not None:
            lengths["(file rows)"] = len(self.rows)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns of unequal length: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    @property
    def names(self) -> list[str]:
        return list(self.data)

    def where(self, i: int) -> str:
        """Row i as a user finds it: 'line 17' of the file, or 'row 3' (a position) when the file's place is unknown."""
        return f"{self.row_word} {int(self.rows[i])}" if self.rows is not None else f"row {i}"

    @contextmanager
    def citing_rows(self) -> Iterator[None]:
        """Turn a RowError about a position in these columns into one that cites the file's line."""
        try:
            yield
        except RowError as exc:
            if self.rows is None:
                raise
            raise DataError(f"{exc.before}{self.where(exc.row)}{exc.after}") from None

    def take(self, index: np.ndarray) -> Columns:
        names = [self.row_names[i] for i in index] if self.row_names is not None else None
        rows = self.rows[index] if self.rows is not None else None
        return Columns({k: v[index] for k, v in self.data.items()}, self.origin, names, rows, self.row_word)

    def without(self, names: list[str]) -> Columns:
        return Columns({k: v for k, v in self.data.items() if k not in names}, self.origin, self.row_names, self.rows,
                       self.row_word)
