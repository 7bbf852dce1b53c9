"""Rich tables for the terminal: metrics per split, predictions, images as text."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from forgeml.format import cell

# mse stays in metrics.json (train.monitor may name it); tables show rmse, in the target's own unit
HEADLINE = ("n", "n_tokens", "loss", "perplexity", "accuracy", "f1_macro", "f1_micro", "precision_macro", "recall_macro", "auroc", "rmse", "mae", "r2")


def output_names(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """The outputs of a run with several ('income.accuracy' keys), in order; [] for one output."""
    seen: list[str] = []
    for m in metrics.values():
        for k in m:
            out, dot, metric = k.rpartition(".")
            if dot and metric in HEADLINE and out not in seen:
                seen.append(out)
    return seen


def metrics_table(metrics: dict[str, dict[str, Any]], title: str = "metrics") -> Table:
    outputs = output_names(metrics)
    if outputs:  # several outputs: a row per split and output
        keys = [k for k in HEADLINE if any(f"{o}.{k}" in m or k in m for m in metrics.values() for o in outputs)]
        table = Table(title=title)
        table.add_column("split")
        table.add_column("output")
        for k in keys:
            table.add_column(k, justify="right")
        for split, m in metrics.items():
            for o in outputs:
                values = [m.get(f"{o}.{k}", m.get(k) if k in ("n", "loss") else None) for k in keys]
                table.add_row(split, o, *[cell(v) if k == "n" else (f"{v:.4f}" if v is not None else "-") for k, v in zip(keys, values)])
        return table
    keys = [k for k in HEADLINE if any(k in m for m in metrics.values())]
    keys += list(dict.fromkeys(k for m in metrics.values() for k in m if "@" in k))  # a recommendation run's recall@10, ...
    table = Table(title=title)
    table.add_column("split")
    for k in keys:
        table.add_column(k, justify="right")
    for split, m in metrics.items():
        table.add_row(split, *[(f"{m[k]:,}" if k in ("n", "n_tokens") else f"{m[k]:.4f}") if k in m and m[k] is not None else "-" for k in keys])
    return table


def per_class_table(metrics: dict[str, Any], limit: int = 30) -> Table | None:
    per = metrics.get("per_class")
    if not per:
        return None
    table = Table(title="per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, m in list(per.items())[:limit]:
        table.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    return table


def _outputs_table(names: list[str], predictions: list[dict[str, Any]], pictures: list[str] | None) -> Table:
    table = Table(title="predictions")
    table.add_column("input")
    if pictures:
        table.add_column("image")
    outputs = list(predictions[0])
    for o in outputs:
        table.add_column(o, justify="right" if "prediction" in predictions[0][o] else "left")
    for i, pred in enumerate(predictions):
        cells = [f"{p['prediction']:.4f}" if "prediction" in p else ", ".join(p["labels"]) or "(none)" if "labels" in p
                 else f"{p['label']} ({p['confidence']:.3f})" for p in (pred[o] for o in outputs)]
        table.add_row(names[i], *([pictures[i]] if pictures else []), *cells)
    return table


def image_as_text(image: np.ndarray, width: int = 16) -> str:
    """A grayscale image (C, H, W) drawn with shade characters, two rows per text line."""
    img = np.asarray(image, dtype=np.float64)
    img = img.mean(0) if img.ndim == 3 else img
    step = max(1, img.shape[1] // width)
    img = img[::step, ::step]
    lo, hi = img.min(), img.max()
    norm = (img - lo) / (hi - lo) if hi > lo else img * 0
    shades = " ░▒▓█"
    rows = []
    for y in range(0, norm.shape[0], 2):
        pair = norm[y : y + 2].mean(0)
        rows.append("".join(shades[min(int(v * len(shades)), len(shades) - 1)] * 2 for v in pair))
    return "\n".join(rows)


def _label_sets_table(names: list[str], predictions: list[dict[str, Any]], truth: list[str] | None, top: int) -> Table:
    """One row per input: its predicted label set and the most probable labels (above the threshold or not)."""
    table = Table(title="predictions")
    table.add_column("input")
    if truth:
        table.add_column("true")
    table.add_column("labels")
    table.add_column(f"top {top}")
    for i, pred in enumerate(predictions):
        ranked = sorted(pred["probabilities"].items(), key=lambda kv: -kv[1])[:top]
        table.add_row(names[i], *([truth[i]] if truth else []), ", ".join(pred["labels"]) or "(none)",
                      "  ".join(f"{c} {p:.3f}" for c, p in ranked))
    return table


def _next_tokens_table(names: list[str], predictions: list[dict[str, Any]], top: int) -> Table:
    """One row per prompt: the most likely next token, its probability, and the runners-up (whitespace shown escaped)."""
    table = Table(title="next token")
    for column in ("prompt", "token", "probability", f"top {top}"):
        table.add_column(column, justify="right" if column == "probability" else "left")
    for name, pred in zip(names, predictions):
        ranked = sorted(pred["top"].items(), key=lambda kv: -kv[1])[:top]
        table.add_row(name, repr(pred["token"]), f"{pred['probability']:.3f}", "  ".join(f"{t!r} {p:.3f}" for t, p in ranked))
    return table


def predictions_table(names: list[str], predictions: list[dict[str, Any]], truth: list[str] | None = None,
                      pictures: list[str] | None = None, top: int = 3) -> Table:
    first = predictions[0] if predictions else {}
    if first and all(isinstance(v, dict) for v in first.values()):  # several outputs: a column each
        return _outputs_table(names, predictions, pictures)
    if first and "labels" in first:  # multilabel: a set per row
        return _label_sets_table(names, predictions, truth, top)
    if first and "token" in first:  # a language model: the next token after each prompt
        return _next_tokens_table(names, predictions, top)
    table = Table(title="predictions")
    table.add_column("input")
    if pictures:
        table.add_column("image")
    if truth:
        table.add_column("true")
    regression = "prediction" in predictions[0]
    table.add_column("prediction" if regression else "label")
    if not regression:
        top = min(top, len(predictions[0]["probabilities"]))
        table.add_column("confidence", justify="right")
        table.add_column(f"top {top}")
    for i, pred in enumerate(predictions):
        row = [names[i]] + ([pictures[i]] if pictures else []) + ([truth[i]] if truth else [])
        if regression:
            row.append(f"{pred['prediction']:.4f}")
        else:
            ranked = sorted(pred["probabilities"].items(), key=lambda kv: -kv[1])[:top]
            row += [pred["label"], f"{pred['confidence']:.3f}", "  ".join(f"{c} {p:.3f}" for c, p in ranked)]
        table.add_row(*row)
    return table


def compression_table(table: dict[str, Any]) -> Table:
    """compression.json as a terminal table: a row per variant and runtime."""
    rows = table["rows"]
    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    batches = list(dict.fromkeys(b for r in rows for b in r["latency_ms"]))
    t = Table(title=f"compression of {table['source']} ({table['split']} split; {table['threads']} threads; {table['cpu']})")
    for name in ["variant", "runtime", *metrics, "parameters", "size"]:
        t.add_column(name, justify="left" if name in ("variant", "runtime") else "right")
    for b in batches:
        t.add_column(f"ms @ {b}", justify="right")
        t.add_column(f"x @ {b}", justify="right")
    chosen = (table.get("chosen") or {}).get("row")
    for i, r in enumerate(rows):
        cells = [("* " if i == chosen else "") + r["variant"], r["runtime"]]
        cells += [f"{r['metrics'][m]:.4f}" if m in r["metrics"] else "-" for m in metrics]
        cells += [f"{r['parameters']:,}", f"{r['size_bytes'] / 1e6:.2f} MB"]
        for b in batches:
            cells += [f"{r['latency_ms'][b]:.3f}", f"{r['speedup'].get(b, 0):.2f}"]
        t.add_row(*cells)
    return t
