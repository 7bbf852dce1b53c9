"""Readers that turn raw data into series: one (T, C) float array per row.

A series reaches forgeml in one of three shapes, and each has a reader here (pure functions, no files
opened except by `read_npz_series`):

- a list column of a table or JSONL file: each cell a JSON array (`[0.1, 0.2]`, `[[0.1, 5], [0.2, 6]]`),
  a Python list, or a delimited string (`"0.1;0.2;0.3"`)  ->  `series_from_cells`
- a group of table columns named by a pattern: `x_0 .. x_44, y_0 .. y_44` with the pattern `{c}_{t}`
  ->  (N, 45, 2)  ->  `series_from_column_group`
- an array of shape (N, T) or (N, T, C), e.g. from an npz file  ->  `series_from_array`

`stack_series` then turns the per-row series into one (N, T, C) array plus each row's length, padding
with zeros past a row's end only when told to (`pad: zero`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import numpy as np

from forgeml.data.columns import Columns
from forgeml.errors import DataError


def _where(origin: str, name: str) -> str:
    return f"{origin + ': ' if origin else ''}column {name!r}"


def _as_steps(value: object, sep: str | None) -> np.ndarray:
    """One cell to a float array of shape (T,) or (T, C); ValueError when it is not a series."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            parts = text.split(sep) if sep else text.replace(",", " ").replace(";", " ").split()
            value = [float(p) for p in parts if p.strip()]
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim not in (1, 2) or len(arr) == 0:
        raise ValueError(f"a series must be a non-empty list of numbers or of equal-length lists; got shape {arr.shape}")
    return arr


def series_from_cells(cells: Sequence[object], name: str, sep: str | None = None, origin: str = "") -> list[np.ndarray]:
    """A list column to one (T_i, C) float64 array per row.

    Args:
        cells: one value per row: a JSON array string, a list, a numpy array, or a delimited string.
        name: the column's name, for error messages.
        sep: the separator of delimited strings; None splits on commas, semicolons and whitespace.

    Every row must have the same number of channels C (a flat list is one channel).

    >>> [s.shape for s in series_from_cells(["[1, 2, 3]", "4;5"], "s")]
    [(3, 1), (2, 1)]
    """
    rows: list[np.ndarray] = []
    for i, cell in enumerate(cells):
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            raise DataError(f"{_where(origin, name)} row {i}: the series is missing; drop the row or fill it")
        try:
            arr = _as_steps(cell, sep)
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise DataError(f"{_where(origin, name)} row {i}: {str(cell)[:40]!r} is not a series of numbers ({exc}); "
                            "write a JSON array or numbers split by data.sequence.sep") from None
        rows.append(arr[:, None] if arr.ndim == 1 else arr)  # (T, C)
        if rows[-1].shape[1] != rows[0].shape[1]:
            raise DataError(f"{_where(origin, name)} row {i}: {rows[-1].shape[1]} channels per step but row 0 has "
                            f"{rows[0].shape[1]}; every row needs the same channels")
    return rows


def series_from_column_group(columns: Mapping[str, np.ndarray], pattern: str, origin: str = "") -> tuple[np.ndarray, list[str]]:
    """A group of columns named by a pattern to one (N, T, C) float64 array, and the columns it used.

    Args:
        columns: the table's columns by name.
        pattern: a column name with `{t}` where the step number stands (`x_{t}`: one channel) and
            optionally `{c}` where the channel name stands (`{c}_{t}`: x_0..x_44 and y_0..y_44 are two
            channels). Steps are ordered by their number; channels by where they first appear in the table.

    >>> x, used = series_from_column_group({"x_0": np.r_[1.0], "y_0": np.r_[2.0], "x_1": np.r_[3.0], "y_1": np.r_[4.0]}, "{c}_{t}")
    >>> x.shape, x[0].tolist()
    ((1, 2, 2), [[1.0, 2.0], [3.0, 4.0]])
    """
    if "{t}" not in pattern:
        raise DataError(f"data.sequence.pattern {pattern!r}: put {{t}} where the step number stands, e.g. 'x_{{t}}' or '{{c}}_{{t}}'")
    regex = re.escape(pattern).replace(re.escape("{t}"), r"(?P<t>\d+)").replace(re.escape("{c}"), r"(?P<c>.+?)")
    found: dict[str, dict[int, str]] = {}  # channel -> step -> column name, in table order
    for col in columns:
        m = re.fullmatch(regex, col)
        if m:
            found.setdefault(m.groupdict().get("c") or "", {})[int(m["t"])] = col
    if not found:
        raise DataError(f"{origin + ': ' if origin else ''}no column matches data.sequence.pattern {pattern!r} "
                        f"(columns: {', '.join(list(columns)[:8])}{', ...' if len(columns) > 8 else ''})")
    steps = sorted(next(iter(found.values())))
    for channel, cols in found.items():
        if sorted(cols) != steps:
            missing = sorted(set(steps) ^ set(cols))[:5]
            raise DataError(f"{origin + ': ' if origin else ''}data.sequence.pattern {pattern!r}: channel {channel!r} "
                            f"has steps {missing} that another channel lacks (or the reverse); every channel needs the same steps")
    used = [cols[t] for t in steps for cols in found.values()]
    try:
        x = np.stack([np.stack([np.asarray(columns[found[c][t]], dtype=np.float64) for c in found], axis=-1)
                      for t in steps], axis=1)  # (N, T, C)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{origin + ': ' if origin else ''}columns of data.sequence.pattern {pattern!r} must all be numbers ({exc})") from None
    return x, used


def series_from_array(x: np.ndarray, name: str = "series", origin: str = "") -> np.ndarray:
    """An (N, T) or (N, T, C) numeric array to (N, T, C) float64: a 2-D array is one channel."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{_where(origin, name)}: a series array must hold numbers; got dtype {x.dtype}")
    if x.ndim == 2:
        return x[:, :, None].astype(np.float64)  # (N, T, 1)
    if x.ndim == 3:
        return x.astype(np.float64)
    raise DataError(f"{_where(origin, name)}: a series array must be (N, T) or (N, T, C); got shape {x.shape}")


def read_npz_series(path: str, key: str) -> np.ndarray:
    """Array `key` of an npz file as (N, T, C) float64."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if key not in npz:
                raise DataError(f"{path}: holds arrays {list(npz.keys())}, not {key!r}; set data.x_key to the series array")
            x = npz[key]
    except (OSError, ValueError) as exc:  # object arrays need pickle: refuse
        raise DataError(f"{path}: cannot read as npz without pickle ({exc})") from None
    return series_from_array(x, key, path)


def as_series(values: object, name: str, sep: str | None = None, origin: str = "") -> list[np.ndarray] | np.ndarray:
    """What a sequence column may hold -> an (N, T, C) array (equal lengths) or a list of (T_i, C) arrays."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub" and values.ndim in (2, 3):
        return series_from_array(values, name, origin)
    return series_from_cells(list(values), name, sep, origin)  # type: ignore[arg-type]


def stack_series(rows: list[np.ndarray] | np.ndarray, name: str, pad: str = "none", max_length: int | None = None,
                 origin: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Series to one (N, T, C) array and each row's length (N,) int64.

    Rows of different lengths need `pad="zero"`: T is then the longest row (at most `max_length`), and
    steps past a row's end are zero. Without a padding rule they are a DataError naming the setting.
    """
    if isinstance(rows, np.ndarray):  # already (N, T, C): every row has all T steps
        x = rows[:, :max_length] if max_length else rows
        return x, np.full(len(x), x.shape[1], dtype=np.int64)
    lengths = np.array([min(len(r), max_length) if max_length else len(r) for r in rows], dtype=np.int64)
    if len(rows) == 0:
        raise DataError(f"{_where(origin, name)}: no rows")
    if pad == "none" and (lengths != lengths[0]).any():
        i = int(np.argmax(lengths != lengths[0]))
        raise DataError(f"{_where(origin, name)}: series of unequal length (row 0 has {lengths[0]} steps, row {i} has "
                        f"{lengths[i]}); set data.sequence.pad: zero to pad them with zeros (the encoders mask the padding)")
    x = np.zeros((len(rows), int(lengths.max()), rows[0].shape[1]), dtype=np.float64)  # (N, T, C): zero past each end
    for i, (r, n) in enumerate(zip(rows, lengths)):
        x[i, :n] = r[:n]
    return x, lengths


def group_series_columns(cols: Columns, pattern: str, name: str) -> Columns:
    """A table's columns named by `pattern` replaced by one column `name` holding their (N, T, C) series.

    Done where tables are read, so training, evaluation and prediction from a file all see the same
    input; the other columns (the target among them) stay as they are."""
    x, used = series_from_column_group(cols.data, pattern, cols.origin)
    if name in cols.data and name not in used:
        raise DataError(f"{cols.origin}: column {name!r} exists already; set data.sequence.name to another name for the series")
    data = {k: v for k, v in cols.data.items() if k not in set(used)}
    data[name] = x  # (N, T, C)
    return Columns(data, cols.origin, cols.row_names, cols.rows, cols.row_word)
