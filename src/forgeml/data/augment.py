"""Batched image augmentation on the device the batch lives on: one kernel per op, no Python loop
over samples. Randomness comes from torch's RNG on that device, so a seeded run repeats exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from forgeml.config import AugmentConfig


def random_shift(x: torch.Tensor, pad: int, mode: str = "constant") -> torch.Tensor:
    """Pad each image by `pad`, then crop back to its size at a random offset per image."""
    if pad <= 0:
        return x
    N, C, H, W = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode)  # (N, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * pad + 1, (N, 1), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (N, 1), device=x.device)
    rows = (dy + torch.arange(H, device=x.device)).view(N, 1, H, 1).expand(N, C, H, W + 2 * pad)
    picked = padded.gather(2, rows)  # (N, C, H, W+2p)
    cols = (dx + torch.arange(W, device=x.device)).view(N, 1, 1, W).expand(N, C, H, W)
    return picked.gather(3, cols)  # (N, C, H, W)


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(-1), x)


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square at a random centre in each image (it may hang off the edge)."""
    N, _, H, W = x.shape
    cy = torch.randint(0, H, (N, 1), device=x.device)
    cx = torch.randint(0, W, (N, 1), device=x.device)
    ys, xs = torch.arange(H, device=x.device), torch.arange(W, device=x.device)
    in_y = ((ys - cy).abs() <= size // 2)  # (N, H)
    in_x = ((xs - cx).abs() <= size // 2)  # (N, W)
    hole = (in_y[:, :, None] & in_x[:, None, :])[:, None]  # (N, 1, H, W)
    return x.masked_fill(hole, 0.0)


class Augment:
    """The augmentations a config asks for, applied in a fixed order to a (N, C, H, W) batch."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    @property
    def active(self) -> bool:
        c = self.cfg
        return bool(c.translate or c.crop_padding or c.hflip or c.cutout)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if c.translate:
            x = random_shift(x, c.translate, "constant")
        if c.crop_padding:
            x = random_shift(x, c.crop_padding, "reflect")
        if c.hflip:
            x = random_hflip(x)
        if c.cutout:
            x = cutout(x, c.cutout)
        return x
