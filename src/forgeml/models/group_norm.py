"""Batch norm swapped for group norm: the network a private run trains (train.privacy) and its bundle rebuilds.

Batch norm normalises each row with statistics of the whole batch, so one row's output (and gradient) depends on
the other rows: DP-SGD, which bounds each row's own gradient, cannot account for that. Group norm normalises each
row on its own. For images (BatchNorm2d/3d) the swap is the one Opacus's ModuleValidator.fix makes:
GroupNorm(min(32, C), C). For BatchNorm1d it is GroupNorm(1, C), one group: a BatchNorm1d usually normalises an MLP's
(B, C) features, where 32 groups of two or four features would each be squashed to about +-1 (an adult MLP fell to
the majority class with them); one group is a layer norm over the features (and the steps, for a (B, C, T) series).
Done here in plain torch so that a bundle is rebuilt the same way without Opacus: the training (training/privacy.py)
and the Predictor call this one function.
"""

from __future__ import annotations

import torch
from torch import nn


class GroupNormAnyArgs(nn.Module):
    """Group norm for a batch norm whose forward takes more than x (conv1d's MaskedBatchNorm1d takes a step mask): the
    extra arguments are ignored; each row is normalised over its own channels and steps. The GroupNorm is a child
    (`.norm`), so per-sample gradient hooks see a plain GroupNorm called with x alone."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, *_: object) -> torch.Tensor:  # noqa: D102
        return self.norm(x)


PLAIN_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def group_norm_for(norm: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    channels = norm.num_features
    groups = 1 if isinstance(norm, nn.BatchNorm1d) else min(32, channels)
    group_norm = nn.GroupNorm(groups, channels, eps=norm.eps, affine=norm.affine)
    return group_norm if type(norm) in PLAIN_BATCH_NORMS else GroupNormAnyArgs(group_norm)


def replace_batch_norm(model: nn.Module) -> list[str]:
    """Every batch norm in `model` becomes a group norm, in place (new parameters on the norm's device: weight 1,
    bias 0). Returns the qualified names replaced, in order."""
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                device = next(child.parameters(), torch.empty(0)).device
                setattr(module, child_name, group_norm_for(child).to(device))
                replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced
