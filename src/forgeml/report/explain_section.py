"""The report's explanations: a global view (mean |attribution| per input column over at most GLOBAL_ROWS rows of the
split, beside permutation importance) and the attributions of each output's worst mistakes.

Only where it applies: the global view needs two input columns or more; explanations need Captum (the explain extra):
without it the section is one line saying so. Integrated gradients, the predicted class (what went wrong is what the
model believed). Rows are capped so that the report stays quick to build.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from forgeml.errors import ForgeError
from forgeml.report import plots

GLOBAL_ROWS = 256  # rows of the split the global view explains and shuffles
TOP = 8  # table columns shown per mistake


def captum_missing() -> str | None:
    """The one-line note when Captum is not installed, else None."""
    try:
        import captum  # noqa: F401
    except ImportError:
        from forgeml.explain import INSTALL

        return f"explanations skipped: Captum is not installed ({INSTALL})"
    return None


def global_section(predictor, split) -> dict[str, Any] | None:
    """The global view's figure and what it was made from; None for a run with one input."""
    from forgeml.explain.global_view import global_view

    if len(predictor.features.inputs) < 2:
        return None
    view = global_view(predictor, split.raw, max_rows=GLOBAL_ROWS)
    names = sorted(view["attribution"], key=view["attribution"].get, reverse=True)
    figure = plots.importance_bars(names, [view["attribution"][n] for n in names], [view["permutation"][n] for n in names],
                                   view["metric"], view["method"])
    return {**view, "figure": figure, "of": len(split.raw), "cap": GLOBAL_ROWS}


def _rgba(value: float, largest: float) -> str:
    a = min(abs(value) / largest, 1.0) * 0.75 if largest > 0 else 0.0
    return f"rgba(220,40,40,{a:.2f})" if value >= 0 else f"rgba(40,90,230,{a:.2f})"


def shown(explanation: dict[str, Any], raw_row: dict[str, Any], sounds: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One mistake's attributions as the template draws them: bars per column, coloured tokens, a heat-map image
    (`sounds`: the audio inputs, whose value in `raw_row` is the (n_mels, frames) spectrogram the map lies on)."""
    from forgeml.explain.overlay import overlay_png

    out: dict[str, Any] = {"target": explanation["target"], "score": explanation["score"], "bars": [], "tokens": [],
                           "images": [], "steps": []}
    columns = {k: v for k, v in explanation["attributions"].items() if isinstance(v, float)}
    largest = max((abs(v) for v in columns.values()), default=0.0)
    for name in sorted(columns, key=lambda k: -abs(columns[k]))[:TOP]:
        v = columns[name]
        out["bars"].append((name, raw_row.get(name), v, int(round(100 * abs(v) / largest)) if largest else 0))
    for name, v in explanation["attributions"].items():
        if isinstance(v, list):  # text
            big = max((abs(a) for _, a in v), default=0.0)
            out["tokens"].append((name, [(t, a, _rgba(a, big)) for t, a in v]))
        elif isinstance(v, np.ndarray) and v.ndim == 2 and name in sounds:  # a spectrogram's (n_mels, frames) map
            png = overlay_png(raw_row[name][::-1], v[::-1], min_side=96)  # low bands at the bottom, as the spectrograms show
            out["images"].append((name, "data:image/png;base64," + base64.b64encode(png).decode()))
        elif isinstance(v, np.ndarray) and v.ndim == 2:  # image
            png = overlay_png(raw_row[name], v, min_side=96)
            out["images"].append((name, "data:image/png;base64," + base64.b64encode(png).decode()))
        elif isinstance(v, np.ndarray):  # series: its strongest steps
            top = np.argsort(-np.abs(v))[:5]
            out["steps"].append((name, ", ".join(f"step {int(t)} ({v[t]:+.3f})" for t in top)))
    return out


def mistake_explanations(predictor, split, output: str, index: np.ndarray, captions: list[str]) -> list[dict[str, Any]]:
    """The worst mistakes of `output` (rows `index` of the split), each with its caption and attributions."""
    if len(index) == 0:
        return []
    names = [f.name for f in predictor.features.inputs]
    rows = split.raw.take(np.asarray(index))
    explained = predictor.explain(rows.without([o.name for o in predictor.features.outputs]), output=output)
    explained = [e.get(output, e) if "attributions" not in e else e for e in explained]
    sounds = frozenset(f.name for f in predictor.features.inputs if f.kind == "audio")

    def row(i: int) -> dict[str, Any]:  # a sound's map lies on its spectrogram (the network's input), not on its file
        return {n: split.x[n][int(index[i])].reshape(split.x[n].shape[-2:]).float().cpu().numpy() if n in sounds
                else rows.data[n][i] for n in names}

    return [{"caption": c, **shown(e, row(i), sounds)} for i, (e, c) in enumerate(zip(explained, captions))]


def explain_sections(predictor, split, worst: dict[str, tuple[np.ndarray, list[str]]], notes: list[str]) -> dict[str, Any]:
    """{"explain_global": ..., "explained_mistakes": {output: [...]}} for the template; a note instead when it cannot."""
    missing = captum_missing()
    if missing:
        notes.append(missing)
        return {}
    try:
        return {"explain_global": global_section(predictor, split),
                "explained_mistakes": {name: mistake_explanations(predictor, split, name, idx, caps)
                                       for name, (idx, caps) in worst.items()}}
    except ForgeError as exc:  # a model explanations do not support (e.g. a custom text model): said, not fatal
        notes.append(f"explanations skipped: {str(exc).splitlines()[0]}")
        return {}
