"""Batched augmentation of images and of audio spectrograms on the device the batch lives on: one kernel per
op, no Python loop over samples. Randomness comes from torch's RNG on that device, so a seeded run repeats
exactly. Audio: SpecAugment's frequency and time masks (Park et al. 2019) and a time shift, on the
standardised log-mel spectrogram (N, 1, mels, frames), where 0 is the training mean."""

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


def band_mask(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Zero one band per example along `dim` (2: mel bins, 3: frames): a width drawn from [0, width], at a place
    drawn so that the band lies inside."""
    N, size = x.shape[0], x.shape[dim]
    w = torch.randint(0, width + 1, (N, 1), device=x.device).clamp(max=size)  # (N, 1)
    start = (torch.rand(N, 1, device=x.device) * (size - w + 1)).floor().long()  # (N, 1): in [0, size - w]
    pos = torch.arange(size, device=x.device)[None, :]  # (1, size)
    band = (pos >= start) & (pos < start + w)  # (N, size)
    shape = [N, 1, 1, 1]
    shape[dim] = size
    return x.masked_fill(band.view(shape), 0.0)


def time_shift(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Shift each example along its last axis by a whole number of frames drawn from [-frames, frames]; the
    frames shifted in are 0 (the training mean), the ones shifted out are lost."""
    N, C, M, T = x.shape
    s = torch.randint(-frames, frames + 1, (N, 1), device=x.device)  # (N, 1)
    src = torch.arange(T, device=x.device)[None, :] - s  # (N, T): the frame each output frame reads
    inside = ((src >= 0) & (src < T)).view(N, 1, 1, T)
    idx = src.clamp(0, T - 1).view(N, 1, 1, T).expand(N, C, M, T)
    return x.gather(3, idx).masked_fill(~inside, 0.0)


IMAGE_OPS = ("translate", "crop_padding", "hflip", "cutout")
AUDIO_OPS = ("freq_mask", "time_mask", "time_shift")


def asked(cfg: AugmentConfig, ops: tuple[str, ...]) -> list[str]:
    """The ops of `ops` a config turns on."""
    return [k for k in ops if getattr(cfg, k)]


def check_audio_fits(cfg: AugmentConfig, shape: list[int] | tuple[int, ...], origin: str) -> None:
    """Refuse masks or shifts as wide as the spectrogram (N, 1, mels, frames): they would blank it, not vary it."""
    _, M, T = shape
    for name, size, what in (("freq_mask", M, "mel bins"), ("time_mask", T, "frames"), ("time_shift", T, "frames")):
        value = getattr(cfg, name)
        if value >= size:
            raise ConfigError(f"data.augment.{name}: {value} does not fit the spectrograms of {origin} ({M} mel bins x {T} "
                              f"frames): it could blank a whole clip; use at most {size - 1} {what} (0 = off)")


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
        return bool(asked(self.cfg, IMAGE_OPS) or asked(self.cfg, AUDIO_OPS))

    @property
    def audio(self) -> bool:
        """Whether it augments spectrograms (the audio ops) rather than images."""
        return bool(asked(self.cfg, AUDIO_OPS))

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
        if c.time_shift:  # shift first, so that masks never fall on frames shifted out
            x = time_shift(x, c.time_shift)
        for _ in range(c.masks if c.freq_mask else 0):
            x = band_mask(x, c.freq_mask, 2)
        for _ in range(c.masks if c.time_mask else 0):
            x = band_mask(x, c.time_mask, 3)
        return x
