"""Numbers as text, for the terminal and the report alike (a floor module: the CLI's tables and report/ both
read it, and report/ must not reach up into the CLI's show.py)."""

from __future__ import annotations

from typing import Any

import numpy as np


def cell(value: Any, digits: int = 4, whole: bool = True) -> str:
    """One table cell: integers as integers (with `whole`, also 39.0 read from a column with gaps), a dash for
    missing or NaN."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "-" if np.isnan(value) else str(value)
        return f"{int(value):,}" if whole and float(value).is_integer() and abs(value) < 1e15 else f"{value:.{digits}f}"
    return str(value)
