"""Raw attributions (one per attributed float) to what a user reads, per input kind:

    numeric, binary, category   one number per column (a category's one-hot values, a number and its missing flag summed)
    text                        one number per token, the tokens as the tokenizer split them (embedding dims summed);
                                padding dropped
    image                       an (H, W) heat map (channels summed)
    audio                       an (n_mels, frames) heat map over its log-mel spectrogram (attributed as an image)
    sequence                    one number per time step (channels summed), the series' own length

Sums keep the sign and keep integrated gradients' completeness: over a row, all numbers add up to the same total.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def per_row(parts, values: tuple[torch.Tensor, ...], x: dict[str, torch.Tensor], features) -> list[dict[str, Any]]:
    """One dict per row: input name -> a float (table kinds), [(token, value), ...] (text) or an array (image, sequence)."""
    by_name = {f.name: f for f in features.inputs}
    B = len(values[0])
    rows: list[dict[str, Any]] = [{} for _ in range(B)]
    for p, v in zip(parts, values):
        v = v.float().cpu()
        if p.kind in ("numeric", "binary", "category"):
            col = v.flatten(1).sum(1).numpy()  # (B,)
            for i in range(B):
                rows[i][p.name] = float(col[i])
        elif p.kind == "text":
            per_token = v.sum(-1).numpy()  # (B, T)
            ids = x[p.name].cpu().numpy()
            tok = by_name[p.name].tokenizer
            for i in range(B):
                keep = np.nonzero(ids[i])[0]
                rows[i][p.name] = [(tok.decode([int(ids[i, t])]), float(per_token[i, t])) for t in keep]
        elif p.kind == "image":
            heat = v.sum(1).numpy()  # (B, H, W)
            for i in range(B):
                rows[i][p.name] = heat[i]
        else:  # sequence
            steps = v.sum(-1).numpy()  # (B, T)
            lengths = x.get(f"{p.name}.length")
            for i in range(B):
                n = int(lengths[i]) if lengths is not None else steps.shape[1]
                rows[i][p.name] = steps[i, :n]
    return rows


def total(attributions: dict[str, Any]) -> float:
    """The sum over every input of one row's attributions (integrated gradients: about score - baseline)."""
    s = 0.0
    for v in attributions.values():
        if isinstance(v, list):
            s += sum(a for _, a in v)
        else:
            s += float(np.sum(v))
    return s


def magnitude(attributions: dict[str, Any]) -> dict[str, float]:
    """Per input, the sum of |attribution| (a column's own number; a text's tokens; an image's pixels)."""
    out = {}
    for name, v in attributions.items():
        out[name] = float(sum(abs(a) for _, a in v)) if isinstance(v, list) else float(np.abs(v).sum())
    return out


def jsonable(explanation: dict[str, Any]) -> dict[str, Any]:
    """An explanation (or a dict of them per output) with arrays as nested lists and tokens as [token, value] pairs."""
    if "attributions" not in explanation:  # several outputs: one explanation per output name
        return {name: jsonable(one) for name, one in explanation.items()}
    attributions = {}
    for name, v in explanation["attributions"].items():
        if isinstance(v, np.ndarray):
            attributions[name] = np.round(v.astype(np.float64), 6).tolist()
        elif isinstance(v, list):
            attributions[name] = [[t, round(a, 6)] for t, a in v]
        else:
            attributions[name] = round(v, 6)
    return {**explanation, "attributions": attributions}


def by_output(explanation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One row's explanation as {output name: explanation}, whether the run has one output or several."""
    return {explanation["output"]: explanation} if "attributions" in explanation else explanation
