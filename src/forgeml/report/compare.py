"""Several runs side by side: final metrics, parameter counts, wall times, and curves overlaid.

    forgeml compare runs/sms-spam-lstm runs/sms-spam-transformer     # a table, and compare.html
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from forgeml.atomic import write_text
from forgeml.bundle import Bundle
from forgeml.errors import ForgeError
from forgeml.report import plots
from forgeml.report.build import render


def collect(runs: list[str | Path]) -> dict[str, dict[str, Any]]:
    if len(runs) < 2:
        raise ForgeError("compare needs two runs or more, e.g. forgeml compare runs/a runs/b")
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        bundle = Bundle.open(run, require_weights=False)
        meta = bundle.meta()
        metrics = bundle.read_json("metrics.json") if bundle.file("metrics.json").is_file() else {}
        split = "test" if "test" in metrics else "val" if "val" in metrics else None
        final = {k: v for k, v in (metrics.get(split) or {}).items() if isinstance(v, (int, float)) and k != "step"}
        name = bundle.path.name if bundle.path.name not in out else str(bundle.path)
        out[name] = {"path": str(bundle.path), "task": meta.get("task"), "status": meta.get("status"), "split": split,
                     "final": final, "parameters": meta.get("parameters"), "wall_time": meta.get("wall_time"),
                     "rows": bundle.read_history()}
    return out


def write_compare(runs: list[str | Path], out: str | Path = "compare.html") -> tuple[Path, dict[str, dict[str, Any]]]:
    data = collect(runs)
    keys = sorted({k for r in data.values() for k in r["final"]})
    figures = [f for f in (plots.overlay(data, "loss", "train", "training loss"), plots.overlay(data, "loss", "val", "validation loss"))
               if f]
    for key in ("accuracy", "f1_macro", "r2", "perplexity"):
        fig = plots.overlay(data, key, "val", f"validation {key}")
        if fig:
            figures.append(fig)
    html = render("compare.html.j2", title=f"compare {len(data)} runs", generated=time.strftime("%Y-%m-%d %H:%M"),
                  runs=data, keys=keys, figures=figures)
    return write_text(out, html), data
