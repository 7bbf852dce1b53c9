"""Federated feature fitting: each client summarises its own partition (counts, sums, sums of squares, category
counts, a median), the server merges the summaries into one features.json. No row leaves a client.

What a summary shares, per column kind (docs/federated.md says the same to users):
  numeric      rows present, rows missing, sum, sum of squares, the client's median (the global fill is the
               present-row-weighted mean of the clients' medians: an approximation of the pooled median)
  category     the count of every value on the client (min_count and max_vocab apply to the merged counts)
  binary       the same counts (a column two values on one client and more on another becomes a category)
  image        shape, dtype, and per channel: pixels, sum, sum of squares
  class target the count of each class;  regression target: rows, sum, sum of squares
Text, sequence and multilabel columns are refused: their vocabularies and tokenizers are not merged yet."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.errors import ConfigError, DataError

NOT_MERGED = ("text", "sequence", "multilabel")


def _input_kinds(cols: Columns, cfg: DataConfig, outputs: set[str]) -> dict[str, str]:
    from forgeml.data.featureset import infer_kind

    kinds = {}
    for name, values in cols.data.items():
        if name in outputs or name in cfg.drop:
            continue
        kind = cfg.features.get(name) or ("sequence" if values.ndim == 3 else infer_kind(values))
        if kind != "ignore":
            kinds[name] = kind
    return kinds


def summarise(cols: Columns, cfg: DataConfig) -> dict[str, Any]:
    """One client's summary of its partition's raw columns (JSON-able): what merge() needs, nothing row by row."""
    from forgeml.data.features.category import as_tokens
    from forgeml.data.features.numeric import as_float
    from forgeml.data.featureset import infer_task, output_configs
    from forgeml.data.prepare import target_name

    outs = output_configs(cfg, target_name(cfg, cols))
    out_names = {o.name for o in outs}
    inputs = []
    for name, kind in _input_kinds(cols, cfg, out_names).items():
        values = cols.data[name]
        entry: dict[str, Any] = {"name": name, "kind": kind}
        if kind in NOT_MERGED:
            raise ConfigError(f"data column {name!r} is a {kind} input: federated runs merge numeric, category, binary and "
                              f"image features only (a {kind} vocabulary is not merged yet); drop it with data.drop")
        if kind == "numeric":
            x = as_float(values, name, cols.origin)
            present = x[~np.isnan(x)]
            entry.update(n=int(present.size), missing=int(x.size - present.size), sum=float(present.sum()),
                         sumsq=float(np.square(present).sum()), median=float(np.median(present)) if present.size else None)
        elif kind in ("category", "binary"):
            entry["counts"] = dict(Counter(as_tokens(values)))
        elif kind == "image":
            x = values.astype(np.float64)
            entry.update(shape=list(values.shape[1:]), dtype=str(values.dtype), pixels=int(x.shape[0] * x.shape[2] * x.shape[3]),
                         sum=x.sum(axis=(0, 2, 3)).tolist(), sumsq=np.square(x).sum(axis=(0, 2, 3)).tolist())
        inputs.append(entry)
    outputs = []
    for o in outs:
        if o.name not in cols.data:
            raise DataError(f"{cols.origin}: no target column {o.name!r}")
        y = cols.data[o.name]
        if o.type == "multilabel":
            raise ConfigError(f"data.outputs.{o.name}: multilabel outputs are not federated yet; use a class or regression output")
        task = {"class": "classification", "regression": "regression"}.get(o.type) or (cfg.task if cfg.task != "auto" else infer_task(y))
        entry = {"name": o.name, "kind": task, "weight": o.weight}
        if task == "classification":
            entry["counts"] = dict(Counter(as_tokens(y)))
        else:
            v = as_float(y, o.name, cols.origin)
            if np.isnan(v).any():
                raise DataError(f"{cols.origin}: target {o.name!r} is missing on {int(np.isnan(v).sum())} rows")
            entry.update(n=int(v.size), sum=float(v.sum()), sumsq=float(np.square(v).sum()))
        outputs.append(entry)
    return {"rows": len(next(iter(cols.data.values()))), "inputs": inputs, "outputs": outputs}


def _same_kinds(summaries: list[dict[str, Any]], key: str) -> list[list[dict[str, Any]]]:
    """The entries of each column across clients, in column order; a column whose kind clients disagree on is an error
    (binary against category merges as a category)."""
    first = [e["name"] for e in summaries[0][key]]
    for i, s in enumerate(summaries[1:], 1):
        names = [e["name"] for e in s[key]]
        if names != first:
            raise DataError(f"client {i} has the {key} {', '.join(names)}; client 0 has {', '.join(first)}: every client's "
                            "data must have the same columns")
    columns = [[s[key][j] for s in summaries] for j in range(len(first))]
    for entries in columns:
        kinds = {e["kind"] for e in entries}
        if kinds == {"binary", "category"}:
            for e in entries:
                e["kind"] = "category"
        elif len(kinds) > 1:
            name = entries[0]["name"]
            shown = ", ".join(f"{e['kind']} on client {i}" for i, e in enumerate(entries))
            raise DataError(f"clients disagree on the kind of column {name!r} ({shown}); declare it in the config, e.g. "
                            f"data.features: {{{name}: {entries[0]['kind']}}}")
    return columns


def _pooled(n: float, total: float, total_sq: float) -> tuple[float, float]:
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0)
    return mean, float(np.sqrt(var)) or 1.0


def merge(summaries: list[dict[str, Any]], cfg: DataConfig) -> dict[str, Any]:
    """The clients' summaries into one features.json (the FeatureSet's own format), fitted as if on all their rows
    (exactly, except a numeric column's fill value: the mean of the clients' medians)."""
    from forgeml.data.features.binary import BinaryFeature
    from forgeml.data.features.category import MISSING, CategoryFeature
    from forgeml.data.features.image import ImageFeature
    from forgeml.data.features.numeric import NumericFeature
    from forgeml.data.features.target import ClassLabels, RegressionTarget
    from forgeml.data.featureset import FeatureSet

    inputs = []
    for entries in _same_kinds(summaries, "inputs"):
        name, kind = entries[0]["name"], entries[0]["kind"]
        if kind == "numeric":
            n = sum(e["n"] for e in entries)
            missing = sum(e["missing"] for e in entries)
            if n == 0:
                raise DataError(f"column {name!r} has no values on any client; drop it with data.drop")
            fill = sum(e["median"] * e["n"] for e in entries if e["n"]) / n
            mean, std = _pooled(n + missing, sum(e["sum"] for e in entries) + missing * fill,
                                sum(e["sumsq"] for e in entries) + missing * fill * fill)
            inputs.append(NumericFeature(name, mean, std, fill, missing > 0))
            continue
        if kind == "image":
            shapes = {tuple(e["shape"]) for e in entries}
            if len(shapes) > 1:
                raise DataError(f"image {name!r}: clients hold images of different shapes {sorted(shapes)}")
            pixels = sum(e["pixels"] for e in entries)
            stats = [_pooled(pixels, sum(e["sum"][c] for e in entries), sum(e["sumsq"][c] for e in entries))
                     for c in range(len(entries[0]["sum"]))]
            inputs.append(ImageFeature(name, list(entries[0]["shape"]), [m for m, _ in stats], [s for _, s in stats], entries[0]["dtype"]))
            continue
        counts: Counter = Counter()
        for e in entries:
            counts.update(e["counts"])
        seen = sorted(set(counts) - {MISSING})
        if kind == "binary" and len(seen) <= 2:
            inputs.append(BinaryFeature(name, seen if len(seen) == 2 else seen + ["<other>"], MISSING in counts))
            continue
        feature = CategoryFeature(name, min_count=cfg.category_min_count, max_vocab=cfg.category_max_vocab)
        kept = sorted(((v, c) for v, c in counts.items() if c >= feature.min_count), key=lambda vc: (-vc[1], vc[0]))
        inputs.append(CategoryFeature(name, sorted(v for v, _ in kept[: feature.max_vocab or None]), feature.min_count, feature.max_vocab))
    if not inputs:
        raise DataError("no input columns left besides the output(s)")
    outputs, weights = [], {}
    for entries in _same_kinds(summaries, "outputs"):
        name, kind = entries[0]["name"], entries[0]["kind"]
        weights[name] = entries[0]["weight"]
        if kind == "classification":
            counts = Counter()
            for e in entries:
                counts.update(e["counts"])
            if MISSING in counts:
                raise DataError(f"target {name!r} is missing on {counts[MISSING]} rows of the clients' data; fill or drop them")
            classes = sorted(counts)
            try:
                classes.sort(key=float)  # '2' before '10', as a single run sorts them
            except ValueError:
                pass
            if len(classes) < 2:
                raise DataError(f"target {name!r} has only {classes} over all clients; classification needs two classes or more")
            outputs.append(ClassLabels(name, classes, [counts[c] for c in classes]))
        else:
            n = sum(e["n"] for e in entries)
            mean, std = _pooled(n, sum(e["sum"] for e in entries), sum(e["sumsq"] for e in entries))
            outputs.append(RegressionTarget(name, mean, std))
    return FeatureSet(inputs, outputs, weights).to_json()
