"""The multi-label head: (B, D) -> (B, L) logits, one independent yes/no per label, trained with BCE.

Its output is logits, never probabilities (the tensor contract: sigmoid and the per-label thresholds
live in features.json's decode). Two settings help on imbalanced label sets such as GoEmotions, where
"neutral" is on a third of rows and "grief" on 0.2 %:
- prior_bias starts each label's bias at the log-odds of its training frequency, so the first steps
  are not spent learning that most labels are mostly absent;
- pos_weight weighs each label's positives by (negatives / positives), or its square root, capped,
  so rare labels are not drowned out (it trades precision for recall; tuned thresholds undo much of
  the shift at decode time).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from forgeml.config import Section


class MultiLabelHeadConfig(Section):
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the combined vector before the linear layer")
    pos_weight: Literal["none", "balanced", "sqrt"] = Field(
        "none", description="weight of each label's positives in BCE: none, negatives/positives (balanced), or its square root")
    pos_weight_max: float = Field(30.0, gt=0, description="cap on any label's pos_weight (rare labels would get hundreds)")
    prior_bias: bool = Field(True, description="start each label's bias at the log-odds of its training frequency")


class MultiLabelHead(nn.Module):
    def __init__(self, in_dim: int, n_labels: int, dropout: float = 0.0, pos_weight: torch.Tensor | None = None,
                 frequencies: torch.Tensor | None = None):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(in_dim, n_labels)
        if frequencies is not None:
            p = frequencies.double().clamp(1e-4, 1 - 1e-4)
            with torch.no_grad():
                self.proj.bias.copy_(torch.log(p / (1 - p)))  # sigmoid(bias) = the label's training frequency
        # not persistent: it follows from features.json's counts, so the weights file stays the weights only
        self.register_buffer("pos_weight", pos_weight.float() if pos_weight is not None else None, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(self.drop(h))  # (B, D) -> (B, L) logits

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean BCE over every (row, label) pair; target is float (B, L) of 0/1."""
        return F.binary_cross_entropy_with_logits(out.float(), target.float(), pos_weight=self.pos_weight)


def pos_weights(frequencies: torch.Tensor, rule: str, cap: float) -> torch.Tensor | None:
    """negatives / positives per label (or its square root), capped; a label never seen gets the cap."""
    if rule == "none":
        return None
    ratio = (1 - frequencies) / frequencies.clamp(min=1e-12)  # (L,)
    if rule == "sqrt":
        ratio = ratio.sqrt()
    return ratio.clamp(max=cap)


def build(cfg_section: Any, in_dim: int, output: Any) -> MultiLabelHead:
    """The head for one multilabel output.

    Args:
        cfg_section: a MultiLabelHeadConfig, a dict of its fields, or None (defaults).
        in_dim: D, the width of the combined vector.
        output: the fitted MultiLabelTarget (its labels and training frequencies).

    Example:
        >>> import numpy as np
        >>> from forgeml.data.features.multilabel import MultiLabelTarget
        >>> target = MultiLabelTarget("y").fit(np.array(["a,b", "a"], dtype=object))
        >>> build({"pos_weight": "balanced"}, 16, target)(torch.zeros(4, 16)).shape
        torch.Size([4, 2])
    """
    if cfg_section is None:
        cfg = MultiLabelHeadConfig()
    elif isinstance(cfg_section, MultiLabelHeadConfig):
        cfg = cfg_section
    elif isinstance(cfg_section, dict):  # a user's dict: a misspelt key is an error, never a silent default
        cfg = MultiLabelHeadConfig(**cfg_section)
    else:  # the caller's own validated section (it may carry its fields too, e.g. the output's weight)
        fields = cfg_section.model_dump() if hasattr(cfg_section, "model_dump") else vars(cfg_section)  # compose's HeadSettings
        cfg = MultiLabelHeadConfig(**{k: v for k, v in fields.items() if k in MultiLabelHeadConfig.model_fields})
    freq = torch.as_tensor(output.frequencies(), dtype=torch.float64)  # (L,)
    return MultiLabelHead(in_dim, output.n_outputs, cfg.dropout, pos_weights(freq, cfg.pos_weight, cfg.pos_weight_max),
                          freq if cfg.prior_bias else None)
