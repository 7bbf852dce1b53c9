"""FSDP2 (torch.distributed.fsdp.fully_shard): parameters, gradients and AdamW state sharded across the ranks.

Each block (training/blocks.py: the GPT's and the Transformer encoders' `blocks`) is its own FSDP unit, so only one
block's whole parameters exist at a time in the forward and the backward; the root takes what is left (embeddings,
final norm, heads). The ranks' data is sharded as under DDP (every rank takes its slice of each global micro-batch),
so the gradients, reduce-scattered and averaged, are those of one process taking the whole batch.

Precision: train.precision=bf16 stores fp32 parameters (the optimizer steps on fp32 shards), gathers them as bf16
for the forward and backward, and reduces the gradients in fp32. The Trainer's autocast stays on around it: on bf16
parameters its casts of weights are no-ops (nothing is converted twice), and it still keeps the ops it lists as fp32
(layer norm, softmax, the losses) in fp32. Other precisions keep fp32 parameters.

Checkpoints: the model and optimizer as DCP shards (torch.distributed.checkpoint) in a folder beside last.pt, named
once per save; last.pt, written last by rank 0, holds the loop state and that folder's name. A kill mid-save leaves
last.pt naming the previous complete folder. DCP reshards on load: a run saved by N processes resumes on M.
Without torchrun, fsdp is a group of one process (distributed.init_alone): the same code resumes a sharded run there.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgeml.training import distributed
from forgeml.training.blocks import find_blocks
from forgeml.training.strategy import DDP


def mixed_precision(precision: str):
    """The MixedPrecisionPolicy for train.precision: bf16 params and compute with an fp32 reduce, else plain fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision == "bf16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


class FSDP(DDP):
    """FSDP2 over the torchrun process group (or a group of this one process)."""

    name = "fsdp"

    def __init__(self, device: torch.device, precision: str = "fp32"):
        if not torch.distributed.is_initialized():
            distributed.init_alone(device)
        super().__init__(device)
        self.precision = precision
        self.units = 0  # FSDP units: the blocks, then the root
        self.root: nn.Module | None = None

    def prepare(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(self.device.type, (self.world,))
        policy = mixed_precision(self.precision)
        blocks = find_blocks(model)
        for block in blocks:  # inner units first: the root then owns only what no block holds
            fully_shard(block, mesh=mesh, mp_policy=policy)
        self.root = fully_shard(model, mesh=mesh, mp_policy=policy)
        self.units = len(blocks) + 1
        return self.root

    def wrap(self, model: nn.Module) -> nn.Module:
        return model  # fully_shard changed the model in place: its hooks gather and shard around each unit

    def eval_batches(self, batches: Any, limit: int | None) -> Any:
        from forgeml.data.shard import DealtBatches

        # whole batches dealt round-robin (no row left out) give ranks uneven numbers of forwards, and a sharded
        # forward is a collective: the parameters are gathered once for the whole evaluation instead
        return _Gathered(DealtBatches(batches, self.rank, self.world, limit), self.root)

    def accumulating(self, step_model: nn.Module, last: bool):
        # unsharded gradients accumulate locally; the reduce-scatter runs once, on the last micro-step
        self.root.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        # a collective: every rank sends its shards, rank 0 gets whole CPU tensors under the plain model's names
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def restore_weights(self, model: nn.Module, path: Path) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        from forgeml.bundle import load_safetensors

        # rank 0 reads the file (the only rank sure to have it, on several machines) and sends each rank its shards
        whole = load_safetensors(path) if self.is_main else {}
        set_model_state_dict(model, whole, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))

    def save_checkpoint(self, path: Path, state: dict[str, Any], model: nn.Module, optimizer) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        from forgeml.training.checkpoint import save_checkpoint

        # a new folder every save: the one last.pt names is never written into, so a kill leaves it whole
        name = distributed.broadcast(f"{path.stem}-step{state['step']}-{secrets.token_hex(4)}.dcp")
        model_state, optim_state = get_state_dict(model, optimizer)
        dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=path.parent / name)
        # dcp.save returns on rank 0 after every rank's shards and the metadata are written: now commit
        if self.is_main:
            save_checkpoint(path, {**state, "sharded": name})
            for old in path.parent.glob(f"{path.stem}-step*.dcp"):
                if old.name != name:  # earlier saves, and any a kill left half-written
                    shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, path: Path, model: nn.Module, optimizer) -> dict[str, Any]:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        from forgeml.errors import BundleError
        from forgeml.training.checkpoint import load_checkpoint

        state = load_checkpoint(path, map_location="cpu")
        if "sharded" not in state:
            raise BundleError(f"{path}: a checkpoint of a {'DDP or single-process' if 'model' in state else 'different'} run; "
                              "resume it with the strategy it was saved with (train.strategy=ddp or single)")
        folder = path.parent / state["sharded"]
        if not (folder / ".metadata").is_file():
            raise BundleError(f"{path}: its sharded model and optimizer state {folder.name}/ is missing or incomplete; "
                              "the checkpoint cannot be resumed")
        model_state, optim_state = get_state_dict(model, optimizer)  # this run's shards, to be filled in place
        try:
            dcp.load({"model": model_state, "optimizer": optim_state}, checkpoint_id=folder)
        except Exception as exc:  # DCP raises several types for a plan that does not match
            raise BundleError(f"{folder}: the checkpoint does not fit this model ({str(exc).splitlines()[0][:300]}); "
                              "was the model config changed?") from None
        set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state)
        return state

    def describe(self) -> str:
        blocks = f"{self.units - 1} block{'s' if self.units != 2 else ''} + the root" if self.units else "the root"
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        return (f"FSDP2 over {self.world} process{'es' if self.world > 1 else ''} ({backend}): {blocks} sharded, "
                f"{'bf16 compute, fp32 reduce' if self.precision == 'bf16' else 'fp32'}")


class _Gathered:
    """Evaluation batches with the model's parameters gathered whole around them (and sharded again after)."""

    def __init__(self, batches: Any, root: nn.Module):
        self.batches, self.root = batches, root

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int = 0, start: int = 0):
        units = [m for m in self.root.modules() if hasattr(m, "unshard") and hasattr(m, "reshard")]
        for unit in units:
            unit.unshard()  # a collective: every rank, once, before its own number of batches
            unit.set_reshard_after_forward(False, recurse=False)
        try:
            yield from self.batches.epoch(epoch, start)
        finally:
            for unit in units:  # training's setting back: blocks reshard after their forward, the root keeps its
                unit.set_reshard_after_forward(unit is not self.root, recurse=False)  # parameters for the backward
                unit.reshard()

    def __iter__(self):
        return self.epoch(0)
