"""Learning-rate schedules as a multiplier of the peak lr per optimizer step (a LambdaLR).

warmup: linear from 0 to 1 over warmup_steps, then one of
  constant  1
  step      gamma ** (epoch // step_every_epochs)
  cosine    cosine from 1 down to min_lr/lr at the last step
  onecycle  cosine up over onecycle_pct of the steps, cosine down to min_lr/lr
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from forgeml.config import TrainConfig


def lr_multiplier(cfg: TrainConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    floor = cfg.min_lr / cfg.lr
    warm = cfg.warmup_steps

    def multiplier(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        if cfg.schedule == "step":
            return cfg.gamma ** ((step // max(steps_per_epoch, 1)) // cfg.step_every_epochs)
        if cfg.schedule == "cosine":
            progress = min((step - warm) / max(total_steps - warm, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        # onecycle
        rise = max(int(total_steps * cfg.onecycle_pct), 1)
        if step < rise:
            return floor + (1 - floor) * 0.5 * (1 - math.cos(math.pi * step / rise))
        progress = min((step - rise) / max(total_steps - rise, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


def build_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, total_steps, steps_per_epoch))
