"""Batched image augmentation on the device the batch lives on: one kernel per op, no Python loop
over samples. Randomness comes from torch's RNG on that device, so a seeded run repeats exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from forgeml.config import AugmentConfig
from forgeml.errors import ConfigError


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
    # rows cy - size//2 ... cy - size//2 + size - 1: exactly `size` of them, even sizes included
    in_y = ((ys - cy + size // 2) >= 0) & ((ys - cy + size // 2) < size)  # (N, H)
    in_x = ((xs - cx + size // 2) >= 0) & ((xs - cx + size // 2) < size)  # (N, W)
    hole = (in_y[:, :, None] & in_x[:, None, :])[:, None]  # (N, 1, H, W)
    return x.masked_fill(hole, 0.0)


def check_fits(cfg: AugmentConfig, shape: list[int] | tuple[int, ...], origin: str) -> None:
    """Refuse settings that would wipe an image instead of varying it: a shift of the image's own size
    (or more) leaves only zero fill, a cutout that large covers it, and reflect padding needs pad < size."""
    _, H, W = shape
    largest = min(H, W) - 1
    for name in ("translate", "crop_padding", "cutout"):
        value = getattr(cfg, name)
        if value > largest:
            raise ConfigError(f"data.augment.{name}: {value} does not fit the {H}x{W} images of {origin} (it would "
                              f"{'wipe them to zero' if name != 'crop_padding' else 'reflect past their edge'}); the largest "
                              f"value that works is {largest}{' (0 = off)' if largest == 0 else ''}")


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
