"""The global view: how much each input column matters over many rows, two ways side by side.

    mean |attribution|       per column, the mean over rows of its |attribution| (a text's tokens, an image's pixels
                             and a series' steps summed per row): what the model's gradients say it reads
    permutation importance   per column, the drop in the metric (accuracy; for a regression the rise in mean absolute
                             error) when that column's values are shuffled across the rows: what the model's accuracy
                             says it needs. Model-agnostic, a sanity check on the first.

Both see only the first output (the report's headline metric); both are capped in rows by the caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from forgeml.data.columns import Columns
from forgeml.explain.per_kind import by_output, magnitude


def mean_abs_attribution(explanations: list[dict[str, Any]], output: str) -> dict[str, float]:
    """Per input column, the mean over rows of its |attribution| for `output`."""
    per_row = [magnitude(by_output(e)[output]["attributions"]) for e in explanations]
    return {name: float(np.mean([r[name] for r in per_row])) for name in per_row[0]}


def _score(predictor, cols: Columns, truth: torch.Tensor, output) -> float:
    """Higher is better: accuracy (class, multi-label: per label), or minus the mean absolute error (regression)."""
    out = predictor.outputs(predictor.features.transform_inputs(cols))[output.name]
    if output.kind == "classification":
        return float((out.argmax(1) == truth).float().mean())
    if output.kind == "multilabel":
        return float(((out > 0).float() == truth).float().mean())
    return -float((out.reshape(-1) - truth.reshape(-1)).abs().mean() * getattr(output, "std", 1.0))  # (N,) or (N, 1) alike


def permutation_importance(predictor, cols: Columns, seed: int = 0, repeats: int = 1) -> dict[str, float]:
    """Per input column, the metric's drop when that column is shuffled (mean over `repeats` shuffles); `cols` must
    carry the first output's true values."""
    output = predictor.features.outputs[0]
    truth = predictor.features.transform_targets(cols)[output.name]
    base = _score(predictor, cols, truth, output)
    rng = np.random.default_rng(seed)
    drops = {}
    for f in predictor.features.inputs:
        scores = []
        for _ in range(repeats):
            order = rng.permutation(len(cols))
            shuffled = Columns({k: (v[order] if k == f.name else v) for k, v in cols.data.items()}, cols.origin)
            scores.append(_score(predictor, shuffled, truth, output))
        drops[f.name] = base - float(np.mean(scores))
    return drops


def global_view(predictor, cols: Columns, method: str = "integrated_gradients", max_rows: int = 256,
                seed: int = 0) -> dict[str, Any]:
    """{"rows", "method", "output", "metric", "attribution": {col: mean |attr|}, "permutation": {col: drop}} over at
    most `max_rows` rows of `cols` (a seeded sample)."""
    if len(cols) > max_rows:
        cols = cols.take(np.sort(np.random.default_rng(seed).choice(len(cols), max_rows, replace=False)))
    output = predictor.features.outputs[0]
    explanations = predictor.explain(cols.without([o.name for o in predictor.features.outputs]), method=method,
                                     output=output.name)
    metric = {"classification": "accuracy", "multilabel": "label accuracy"}.get(output.kind, "mean absolute error")
    return {"rows": len(cols), "method": method, "output": output.name, "metric": metric,
            "attribution": mean_abs_attribution(explanations, output.name),
            "permutation": permutation_importance(predictor, cols, seed)}
