"""The three methods over the network's Captum forward (explain/space.py): attributions in the attributed space.

    integrated_gradients   Captum IntegratedGradients from the reference baseline (explain/baselines.py), Gauss-Legendre
                           steps; its convergence delta says how far sum(attributions) is from f(x) - f(baseline)
    shap                   Captum GradientShap: expected gradients over baselines drawn from a distribution, at random
                           points on the path (chosen over KernelShap: it takes a batch in one call and costs tens of
                           passes per row instead of hundreds of model calls per row)
    occlusion              Captum FeatureAblation: each group (a column, a token, an image patch, a window of steps) set
                           to its baseline in turn; the drop in the score is its attribution
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from forgeml.explain import require_captum
from forgeml.explain.baselines import drawn, reference


@dataclass
class Settings:
    """How hard each method works. Defaults give stable shares on small models in a few passes per row."""

    n_steps: int = 32  # integrated gradients: points on the path (Gauss-Legendre)
    n_samples: int = 32  # shap: random (baseline, point on the path) draws per row
    n_baselines: int = 16  # shap: baselines drawn from the distribution
    patch: int = 0  # occlusion: image patch side in pixels (0: a side of about an eighth of the image)
    window: int = 0  # occlusion: steps per window of a series (0: about a sixteenth of its length)
    internal_batch_size: int = 512  # most rows in one forward pass inside a method
    seed: int = 0  # shap's draws: the same rows explain the same way


@dataclass
class Attribution:
    values: tuple[torch.Tensor, ...]  # one per Space part, each the shape of that part's float tensor
    score: torch.Tensor  # (B,) the explained score at the input
    baseline: torch.Tensor  # (B,) the score at the baseline (shap: averaged over its baselines)
    delta: torch.Tensor | None  # (B,) integrated gradients' completeness gap


def masks(parts, floats: tuple[torch.Tensor, ...], settings: Settings) -> tuple[torch.Tensor, ...]:
    """Occlusion's groups: an id per column, per token, per image patch, per window of steps; unique over all inputs."""
    out, start = [], 0
    for p, v in zip(parts, floats):
        shape = v.shape[1:]
        if p.kind == "text":  # (T, E): a group per token
            T = shape[0]
            ids = torch.arange(T)[:, None].expand(T, shape[1])
        elif p.kind == "image":  # (C, H, W): square patches over every channel
            C, H, W = shape
            k = settings.patch or max(1, min(H, W) // 8)
            rows, cols = torch.arange(H) // k, torch.arange(W) // k
            ids = (rows[:, None] * int(cols.max() + 1) + cols[None, :])[None].expand(C, H, W)
        elif p.kind == "sequence":  # (T, C): windows of steps over every channel
            T, C = shape
            k = settings.window or max(1, T // 16)
            ids = (torch.arange(T) // k)[:, None].expand(T, C)
        else:  # a column: its widths (value, flag; a category's values) go together
            ids = torch.zeros(shape, dtype=torch.long)
        out.append((ids + start).unsqueeze(0).to(v.device))
        start += int(ids.max()) + 1
    return tuple(out)


def spread(values: tuple[torch.Tensor, ...], groups: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """FeatureAblation gives every element of a group the group's whole drop; share it out, so that a group's elements
    sum to its drop (a column's one-hot values, a token's embedding dims) and a heat map's pixels are a density."""
    sizes = torch.bincount(torch.cat([g.expand_as(v[:1]).flatten() for g, v in zip(groups, values)]))
    return tuple(v / sizes[g.expand_as(v[:1])].to(v.dtype) for g, v in zip(groups, values))


def attribute(space, x: dict[str, torch.Tensor], output: str, targets: torch.Tensor, method: str,
              settings: Settings | None = None) -> Attribution:
    """Attributions of `output`'s score for class/label `targets` (B,) (regression: 0) to every input, by `method`."""
    attr = require_captum()
    settings = settings or Settings()
    floats, fixed = space.split(x)
    forward = space.scores(output)
    extra = fixed if fixed else None
    with torch.no_grad():
        score = forward(*floats, *fixed).gather(1, targets[:, None])[:, 0]
    delta = None
    if method == "integrated_gradients":
        base = reference(space.parts, floats)
        values, delta = attr.IntegratedGradients(forward).attribute(
            floats, baselines=base, target=targets, additional_forward_args=extra, n_steps=settings.n_steps,
            method="gausslegendre", internal_batch_size=max(settings.internal_batch_size, len(targets)),
            return_convergence_delta=True)
        with torch.no_grad():
            baseline = forward(*base, *fixed).gather(1, targets[:, None])[:, 0]
    elif method == "shap":
        base = drawn(space.parts, floats, settings.n_baselines, settings.seed)
        state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):  # GradientShap draws from torch's and numpy's global generators:
            torch.manual_seed(settings.seed)      # seeded here for repeatable numbers, and given back as they were
            np.random.seed(settings.seed)
            try:
                values = attr.GradientShap(forward).attribute(
                    floats, baselines=base, target=targets, additional_forward_args=extra, n_samples=settings.n_samples,
                    stdevs=0.0)
            finally:
                np.random.set_state(state)
        with torch.no_grad():  # the expected score over the baselines, for every row
            rows = [forward(*[b[i:i + 1].expand(len(targets), *b.shape[1:]) for b in base], *fixed) for i in range(len(base[0]))]
            baseline = torch.stack(rows).mean(0).gather(1, targets[:, None])[:, 0]
    else:  # occlusion
        base = reference(space.parts, floats)
        groups = masks(space.parts, floats, settings)
        values = attr.FeatureAblation(forward).attribute(
            floats, baselines=base, target=targets, additional_forward_args=extra, feature_mask=groups,
            perturbations_per_eval=8)
        values = spread(values if isinstance(values, tuple) else (values,), groups)
        with torch.no_grad():
            baseline = forward(*base, *fixed).gather(1, targets[:, None])[:, 0]
    values = values if isinstance(values, tuple) else (values,)
    return Attribution(tuple(v.detach() for v in values), score.detach(), baseline.detach(),
                       None if delta is None else delta.detach())
