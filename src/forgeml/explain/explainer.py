"""Rows in, one explanation per row and output out: what `Predictor.explain` and `forgeml explain` call.

    [{"output": "income", "target": ">50K", "method": "integrated_gradients", "score": 0.83, "baseline": 0.24,
      "delta": 0.001, "attributions": {"age": 0.21, "workclass": -0.02, ...}}]

`score` is the explained number (the target class's probability, a label's probability, or the regression value);
`baseline` the same number at the method's baseline; integrated gradients' attributions add up to score - baseline,
off by `delta`. A run with several outputs gives, per row, a dict with a key per output (as predict does).
"""

from __future__ import annotations

from typing import Any

import torch

from forgeml.data.columns import Columns
from forgeml.data.tensor_dict import n_rows, to_device
from forgeml.data.tensor_dict import rows as take_rows
from forgeml.errors import RequestError, did_you_mean
from forgeml.explain import METHODS
from forgeml.explain.attribute import Settings, attribute
from forgeml.explain.per_kind import per_row
from forgeml.explain.space import Space

SUPPORTED = ("explanations support class, multi-label and regression outputs over numeric, binary, category, text, "
             "image, sequence and audio inputs")


def check(predictor, method: str, output: str | None = None) -> list:
    """The outputs to explain; a RequestError when the method, the output or the run cannot be explained."""
    if method not in METHODS:
        raise RequestError(f"explain method {method!r}: choose one of {', '.join(METHODS)}{did_you_mean(method, METHODS)}")
    features = predictor.features
    if any(o.kind == "next_token" for o in features.outputs) or any(f.kind == "corpus" for f in features.inputs):
        raise RequestError(f"{predictor.path} is a language model (next-token output): it is not explained; {SUPPORTED}")
    if predictor.session is not None:
        raise RequestError(f"{predictor.path}: explanations need the PyTorch weights (gradients); load it with backend='torch' "
                           "(CLI: leave --backend out)")
    names = [o.name for o in features.outputs]
    if output is not None and output not in names:
        raise RequestError(f"output {output!r}: not an output of {predictor.path} (outputs: {', '.join(names)})"
                           f"{did_you_mean(output, names)}")
    return [o for o in features.outputs if output is None or o.name == output]


def target_index(out, target: str | None) -> int | None:
    """The class or label `target` names, as its index in `out`'s scores (None: the predicted one)."""
    if target is None:
        return None
    if out.kind == "regression":
        raise RequestError(f"target {target!r}: the output {out.name!r} is a regression with one value; leave target out")
    names = list(out.classes if out.kind == "classification" else out.labels)
    if str(target) not in names:
        raise RequestError(f"target {target!r}: not a class of {out.name!r} (classes: {', '.join(names[:20])})"
                           f"{did_you_mean(str(target), names)}")
    return names.index(str(target))


def explain(predictor, inputs: Any, method: str = "integrated_gradients", output: str | None = None,
            target: str | None = None, batch_size: int = 32, settings: Settings | None = None) -> list[dict[str, Any]]:
    """One explanation per row (a dict per output when the run has several; see the module docstring)."""
    outs = check(predictor, method, output)
    if target is not None and len(outs) > 1:
        raise RequestError(f"target {target!r}: this run has outputs {', '.join(o.name for o in outs)}; name the one the "
                           "target belongs to (output=..., CLI: --output NAME)")
    wanted = {o.name: target_index(o, target) for o in outs}
    cols = predictor.to_columns(inputs)
    if not isinstance(inputs, Columns):  # a user's raw rows; a split's Columns (the report's) were counted when read
        predictor.features.warn_unseen(cols)
    x = predictor.features.transform_inputs(cols)
    space = Space(predictor.model, predictor.features)
    results: list[dict[str, Any]] = []
    with space.hooked():
        for start in range(0, n_rows(x), batch_size):
            xb = to_device(take_rows(x, start, start + batch_size), predictor.device)
            rows: list[dict[str, Any]] = [{} for _ in range(n_rows(xb))]
            for out in outs:
                for i, one in enumerate(explain_output(space, xb, out, method, wanted[out.name], settings)):
                    rows[i][out.name] = one
            results += [r[outs[0].name] if len(outs) == 1 else r for r in rows]
    return results


def explain_output(space, x: dict[str, torch.Tensor], out, method: str, target: int | None,
                   settings: Settings | None = None) -> list[dict[str, Any]]:
    """Explanations of one output for one batch of transformed rows."""
    B = n_rows(x)
    with torch.no_grad():
        scores = space.scores(out.name)(*space.split(x)[0], *space.split(x)[1])  # (B, K)
    if target is not None:
        targets = torch.full((B,), target, dtype=torch.long, device=scores.device)
    elif out.kind == "regression":
        targets = torch.zeros(B, dtype=torch.long, device=scores.device)
    else:
        targets = scores.argmax(1)  # the predicted class, or the most likely label
    found = attribute(space, x, out.name, targets, method, settings)
    names = list(out.classes) if out.kind == "classification" else list(out.labels) if out.kind == "multilabel" else None
    explained = per_row(space.parts, found.values, x, space.features)
    result = []
    for i in range(B):
        row = {"output": out.name, "target": names[int(targets[i])] if names else out.name, "method": method,
               "score": float(found.score[i]), "baseline": float(found.baseline[i])}
        if found.delta is not None:
            row["delta"] = float(found.delta[i])
        row["attributions"] = explained[i]
        result.append(row)
    return result
