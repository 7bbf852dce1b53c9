"""A NaN/inf train loss noticed without making a step wait for the device.

Every EVERY steps the mean train loss starts on its way to host memory (non_blocking, into pinned memory on
CUDA) and the copy started EVERY steps earlier, long since arrived, is the one read: a divergence is noticed
within 2 x EVERY steps and the launch queue never drains for it. On the CPU a copy is done when it returns,
so the current one is read (within EVERY steps); on MPS the copy waits, as .item() would.
"""

from __future__ import annotations

import torch

EVERY = 10


class LossWatch:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.host = torch.zeros((), pin_memory=self.cuda)
        self.view = self.host.numpy()  # reads the host buffer itself: never a device sync
        self.copied = torch.cuda.Event() if self.cuda else None
        self.pending: int | None = None  # the step whose copy is on its way

    def check(self, mean: torch.Tensor, step: int) -> tuple[int, float] | None:
        """Start copying `mean` (a scalar on the device) to the host; return (step, value) of a copy that has
        arrived: the previous one on CUDA (None before there is one), this one elsewhere."""
        seen = None
        if self.cuda and self.pending is not None:
            self.copied.synchronize()  # recorded EVERY steps ago: long done unless the GPU is that far behind
            seen = (self.pending, float(self.view))
        self.host.copy_(mean.detach(), non_blocking=self.cuda)
        if self.cuda:
            self.copied.record()
            self.pending = step
            return seen
        return step, float(self.view)
