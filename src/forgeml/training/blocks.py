"""A model's repeated blocks: the unit FSDP shards and activation checkpointing recomputes.

Chosen by name, not by class, so any model assembled from the zoo is covered without a list to keep up to date:
every `nn.ModuleList` called `blocks` anywhere in the model (the GPT's decoder blocks, the Transformer encoder's and
combiner's blocks, the 1-D CNN's conv blocks). A user's own model opts in by naming its list `blocks`.
"""

from __future__ import annotations

from torch import nn


def find_blocks(model: nn.Module) -> list[nn.Module]:
    """Every member of every ModuleList named `blocks` in `model`, outermost lists first."""
    found: list[nn.Module] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] == "blocks":
            found.extend(module)
    return found
