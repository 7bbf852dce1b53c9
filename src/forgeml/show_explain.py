"""What `forgeml explain` prints: per input row and output, the explained target and score, then the attributions
(table columns largest first with a bar, text tokens with their values, an image or a series summarised, its full
heat map written as a PNG with --png)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from forgeml.explain.per_kind import by_output

BAR = 20  # characters of the longest bar
TOKENS = 64  # a text's tokens shown at most (--json has them all)


def _bar(value: float, largest: float) -> str:
    n = int(round(abs(value) / largest * BAR)) if largest > 0 else 0
    return ("[red]" if value >= 0 else "[blue]") + "█" * n + ("[/red]" if value >= 0 else "[/blue]")


def explanation_table(name: str, explanation: dict[str, Any], top: int = 15) -> list[Table]:
    """A table per output of one row's explanation."""
    tables = []
    for out, e in by_output(explanation).items():
        gap = f", delta {e['delta']:+.4f}" if "delta" in e else ""
        table = Table(title=f"{name}: {out} = {e['target']} (score {e['score']:.4f}, baseline {e['baseline']:.4f}{gap}; "
                            f"{e['method']})", title_justify="left")
        table.add_column("input")
        table.add_column("attribution", justify="right")
        table.add_column("")
        ranked, tokens = [], []  # columns, steps and images largest first; a text's tokens in reading order
        for col, v in e["attributions"].items():
            if isinstance(v, list):
                tokens += [(f"{col}: {tok}", a) for tok, a in v]
            elif isinstance(v, np.ndarray) and v.ndim == 2:  # image: where the mass is
                y, x = np.unravel_index(np.abs(v).argmax(), v.shape)
                ranked.append((f"{col} (heat map {v.shape[0]}x{v.shape[1]}, peak at row {y} col {x}; --png draws it)",
                               float(v.sum())))
            elif isinstance(v, np.ndarray):  # a series: its strongest steps
                ranked += [(f"{col}: step {int(t)}", float(v[t])) for t in np.argsort(-np.abs(v))[:top]]
            else:
                ranked.append((col, float(v)))
        shown = sorted(ranked, key=lambda c: -abs(c[1]))[:top] + tokens[:TOKENS]
        largest = max((abs(a) for _, a in shown), default=0.0)
        for label, a in shown:
            table.add_row(label, f"{a:+.4f}", _bar(a, largest))
        tables.append(table)
    return tables
