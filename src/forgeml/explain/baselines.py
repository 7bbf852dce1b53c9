"""The reference input each method compares against, per kind, in the attributed space (explain/space.py).

The inputs are standardised by features.json, so 0 is the training mean of a number, a pixel and a series step:

    numeric      0 (the training mean), missing flag 0
    binary       0.5 (between its two values: what a missing value reads as), flag 0
    category     equal weights on its known values, 1/V each (the average value, as 0 is the average number; an
                 all-zero "no value" would credit a column the model ignores with its weights' mean)
    text         zero embeddings (what the padding token embeds to in the rnn and transformer encoders)
    image        0 per pixel (the mean image of the training split, channel by channel)
    sequence     0 per step (the per-channel training mean)

SHAP draws its baselines from a distribution instead: numbers, pixels and steps from N(0, 1) (the standardised
training spread), binaries at 0 or 1, categories one of their known values, text zero embeddings.
"""

from __future__ import annotations

import torch


def reference(parts, floats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The one baseline per input (same shapes as `floats`) for integrated gradients and occlusion."""
    out = []
    for p, v in zip(parts, floats):
        b = torch.zeros_like(v)
        if p.kind == "binary":
            b[:, 0] = 0.5
        elif p.kind == "category" and p.width > 1:
            b[:, 1:] = 1.0 / (p.width - 1)  # index 0 is the unknown bucket
        out.append(b)
    return tuple(out)


def drawn(parts, floats: tuple[torch.Tensor, ...], n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """`n` random baselines per input ((n, ...) each) for SHAP, from a fixed seed: the same rows explain the same way."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for p, v in zip(parts, floats):
        shape = (n, *v.shape[1:])
        if p.kind == "numeric":
            b = torch.zeros(shape)
            b[:, 0] = torch.randn(n, generator=g)
        elif p.kind == "binary":
            b = torch.zeros(shape)
            b[:, 0] = torch.randint(0, 2, (n,), generator=g).float()
        elif p.kind == "category":
            b = torch.zeros(shape)
            known = max(p.width - 1, 1)
            b[torch.arange(n), 1 + torch.randint(0, known, (n,), generator=g) if p.width > 1 else 0] = 1.0
        elif p.kind in ("image", "sequence"):
            b = torch.randn(shape, generator=g)
        else:  # text
            b = torch.zeros(shape)
        out.append(b.to(v.device, v.dtype))
    return tuple(out)
