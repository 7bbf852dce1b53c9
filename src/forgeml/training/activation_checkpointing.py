"""`train.activation_checkpointing`: keep only each block's input in the forward and recompute the block's
activations in the backward (torch.utils.checkpoint, non-reentrant): activation memory falls from every layer's
tensors to one block's, for about one more forward per step.

The block's own `forward` is replaced on the instance rather than the block wrapped in another module: parameter
names (state dicts, checkpoints, the bundle) stay exactly those of the plain model, and FSDP's hooks, which run in the
module's __call__ around the forward, still gather the block's parameters for the recompute (FSDP2 gathers them again
before the block's backward).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from forgeml.training.blocks import find_blocks


def apply(model: nn.Module) -> int:
    """Checkpoint every block of `model` (training/blocks.py); the number of blocks. ConfigError when there is none."""
    from forgeml.errors import ConfigError

    blocks = find_blocks(model)
    if not blocks:
        raise ConfigError(f"train.activation_checkpointing: true but this model ({type(model).__name__}) has no blocks to "
                          "checkpoint (the GPT's and the Transformer encoder's/combiner's); set "
                          "train.activation_checkpointing=false")
    norms = [b for b in blocks if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in b.modules())]
    if norms:
        # a recompute would run batch norm's training forward twice and update its running statistics twice
        raise ConfigError(f"train.activation_checkpointing: true but this model's blocks ({type(norms[0]).__name__}) hold "
                          "batch norm, whose running statistics a recompute would update twice; set "
                          "train.activation_checkpointing=false for this model")
    for block in blocks:
        if not getattr(block, "_forgeml_checkpointed", False):
            block.forward = functools.partial(_checkpointed, block, block.forward)
            block._forgeml_checkpointed = True
    return len(blocks)


def _checkpointed(block: nn.Module, forward, *args, **kwargs):
    if not (block.training and torch.is_grad_enabled()):
        return forward(*args, **kwargs)  # evaluation and generation keep nothing for a backward: nothing to save
    # use_reentrant=False: works with keyword arguments, inputs that need no grad, DDP and FSDP2; the RNG state is
    # kept, so dropout draws the same masks in the recompute
    return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)
