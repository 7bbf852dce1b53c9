"""How many processes train one model, and how: the Trainer's one seam for it, so the loop has no branches.

    single  one process (the default without torchrun)
    ddp     DistributedDataParallel: every rank holds the whole model, takes its slice of each batch, and the
            gradients are averaged (all-reduced) before each optimizer step
    fsdp    FSDP2 (torch.distributed.fsdp.fully_shard): parameters, gradients and optimizer state sharded across
            the ranks (training/fsdp.py)

A strategy wraps the model (and, for FSDP, decides when the optimizer may be built), shards the data (each rank's
slice of every global micro-batch: data/shard.py), skips the all-reduce on all but the last micro-step of a
gradient accumulation, reduces sums across ranks, says which rank writes (rank 0), and reads and writes checkpoints.

`train.strategy: auto` is ddp under torchrun with more than one process (fsdp when the model and its AdamW state would
not fit comfortably in one device's memory: `choose`), single otherwise.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgeml.training import distributed

# AdamW keeps two fp32 moments per parameter, the gradient is a third copy: model + optimizer ~ 4x the fp32 weights;
# FSDP pays off when that passes a fair share of one device's memory (activations need the rest)
FSDP_SHARE = 0.25


def state_bytes(model: nn.Module) -> int:
    """Weights, gradients and AdamW's two moments, in bytes (what DDP holds whole on every rank)."""
    return 4 * sum(p.numel() * p.element_size() for p in model.parameters())


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory on the training device (None where unknown)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def choose(name: str, model: nn.Module, device: torch.device) -> str:
    """The strategy `train.strategy` names; auto: ddp or fsdp under torchrun with 2+ processes, else single."""
    from forgeml.errors import ConfigError

    world = distributed.world_size()
    if name == "ddp" and world == 1 and not distributed.launched():  # fsdp there: a group of one (a sharded run resumes)
        raise ConfigError("train.strategy: ddp needs several processes; start them with  forgeml train CONFIG --nproc 2  "
                          "(or torchrun), or use train.strategy=auto")
    if name == "single" and world > 1:
        raise ConfigError(f"train.strategy: single under torchrun with {world} processes would train {world} separate copies; "
                          "use train.strategy=ddp, fsdp or auto (or start one process)")
    if name != "auto":
        return name
    return auto_strategy(world, state_bytes(model), device_memory(device))


def auto_strategy(world: int, needed_bytes: int, memory_bytes: int | None) -> str:
    """train.strategy=auto: single for one process; under torchrun ddp, or fsdp when the weights, gradients and AdamW
    state (`needed_bytes`) would take more than FSDP_SHARE of one device's memory."""
    if world == 1:
        return "single"
    return "fsdp" if memory_bytes and needed_bytes > FSDP_SHARE * memory_bytes else "ddp"


class Single:
    """One process: the model as it is, every batch whole, files written here."""

    name = "single"

    def __init__(self, device: torch.device):
        self.device = device
        self.rank, self.world = distributed.rank(), distributed.world_size()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model: nn.Module) -> nn.Module:
        """Before the optimizer is built (FSDP shards the parameters it will hold): the module to optimize."""
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls (DDP's wrapper; the model itself here)."""
        return model

    def train_batches(self, batches: Any) -> Any:
        return batches

    def eval_batches(self, batches: Any, limit: int | None) -> Any:
        from forgeml.data.shard import DealtBatches

        return batches if not limit else DealtBatches(batches, 0, 1, limit)  # the first `limit` batches

    def accumulating(self, step_model: nn.Module, last: bool):
        """Around one micro-batch's backward: gradient sync only on the last micro-step of an optimizer step."""
        return contextlib.nullcontext()

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return distributed.all_reduce_sum(tensor)  # itself the identity without a group of several

    def any_flag(self, *flags: bool) -> list[bool]:
        """Each flag, true on some rank (a stop or a Ctrl-C on one rank stops every rank at the same step)."""
        if self.world == 1:
            return list(flags)
        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        distributed.all_reduce_sum(t)
        return [v > 0 for v in t.tolist()]

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank (what only rank 0 can see: a file it wrote)."""
        return distributed.broadcast(flag) if self.world > 1 else flag

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The whole model's weights (on rank 0 at least), for the bundle's safetensors file. Every rank calls it (for
        FSDP it is a collective)."""
        return model.state_dict()

    def restore_weights(self, model: nn.Module, path: Path) -> None:
        """Load a whole-model safetensors file (the best weights) into the model, where the rest of the run needs them:
        rank 0, which evaluates and saves the bundle."""
        if self.is_main:
            from forgeml.bundle import load_safetensors

            model.load_state_dict(load_safetensors(path))

    def save_checkpoint(self, path: Path, state: dict[str, Any], model: nn.Module, optimizer) -> None:
        from forgeml.training.checkpoint import save_checkpoint

        if self.is_main:
            save_checkpoint(path, {**state, "model": model.state_dict(), "optimizer": optimizer.state_dict()})

    def load_checkpoint(self, path: Path, model: nn.Module, optimizer) -> dict[str, Any]:
        """The checkpoint's loop state; the model and optimizer are loaded in place."""
        from forgeml.training.checkpoint import load_checkpoint

        state = load_checkpoint(path, map_location="cpu")  # RNG states must stay on the CPU; load_state_dict moves the rest
        if "sharded" in state:  # train.strategy=auto chose FSDP for this run on more processes than this resume has
            from forgeml.errors import BundleError

            raise BundleError(f"{path}: the run was trained sharded (FSDP) and its checkpoint is in {state['sharded']}/; "
                              "resume it on several processes (--nproc 2 or more), where train.strategy=auto chooses FSDP again")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            from forgeml.errors import BundleError

            raise BundleError(f"{path}: the checkpoint does not fit this model ({str(exc).splitlines()[0]}); "
                              "was the model config changed?") from None
        optimizer.load_state_dict(state["optimizer"])
        return state

    def describe(self) -> str:
        return "1 process"


class DDP(Single):
    """DistributedDataParallel over the torchrun process group."""

    name = "ddp"

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index if self.device.index is not None else distributed.local_rank()] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def train_batches(self, batches: Any) -> Any:
        from forgeml.data.shard import ShardedBatches

        return ShardedBatches(batches, self.rank, self.world)

    def eval_batches(self, batches: Any, limit: int | None) -> Any:
        from forgeml.data.shard import DealtBatches

        return DealtBatches(batches, self.rank, self.world, limit)

    def accumulating(self, step_model: nn.Module, last: bool):
        return contextlib.nullcontext() if last else step_model.no_sync()

    def describe(self) -> str:
        return f"DDP over {self.world} processes ({'nccl' if self.device.type == 'cuda' else 'gloo'})"


def build(name: str, model: nn.Module, device: torch.device, precision: str = "fp32") -> Single:
    """The strategy object for `train.strategy` (after distributed.init); `precision`: FSDP's mixed-precision policy."""
    chosen = choose(name, model, device)
    if chosen == "fsdp":
        from forgeml.training.fsdp import FSDP

        return FSDP(device, precision)
    return {"single": Single, "ddp": DDP}[chosen](device)
