"""The process group, as torchrun describes it: rank, world size, and the few collectives forgeml needs.

forgeml never launches or connects processes itself: `torchrun` (or `forgeml train --nproc N`, which runs torchrun)
sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and `init()` joins the group they name — gloo on a
CPU, nccl on CUDA GPUs. Without those variables everything here is the one-process case: rank 0 of 1, and every
collective returns its input.

A collective that waits on a rank that died would hang forever; torchrun's agent notices the dead worker and stops
the others, and `TIMEOUT` bounds the wait where no agent watches (a hand-made group).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch

TIMEOUT = datetime.timedelta(minutes=10)  # how long a collective waits for a missing rank before it raises
RUN_FILE_ENV = "FORGEML_RUN_FILE"  # `forgeml train --nproc` (launch.py): where rank 0 says which run folder it took


def world_size() -> int:
    """Processes in the job: torchrun's WORLD_SIZE (1 without torchrun)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's place in the job, 0 .. world_size - 1 (0 without torchrun)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's place on its machine (which GPU it takes)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the one process that logs, shows progress and writes files."""
    return rank() == 0


def launched() -> bool:
    """True under torchrun (or any launcher that sets WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init(device: torch.device) -> bool:
    """Join the process group torchrun described (once per process); False when there is none to join."""
    if not launched() or not torch.distributed.is_available():
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank())
        torch.distributed.init_process_group(backend, timeout=TIMEOUT)
    return True


def init_alone(device: torch.device) -> None:
    """A process group of this one process (FSDP without torchrun: a sharded run resumed on one process goes through
    the same sharding and checkpoint code as on N). No network: the group's store lives in this process."""
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, store=torch.distributed.HashStore(), rank=0, world_size=1,
                                             timeout=TIMEOUT)


def active() -> bool:
    """A process group of more than one process is up: collectives do something."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1


def broadcast(value: Any, src: int = 0) -> Any:
    """`value` as rank `src` has it, on every rank (any picklable Python object made by forgeml itself)."""
    if not active():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over every rank (in place, and returned)."""
    if active():
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def shutdown() -> None:
    """Leave the process group (the end of a job: torchrun expects each worker to)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def tell_launcher(run_dir) -> None:
    """Rank 0, once its run folder is claimed: where `--nproc`'s resume hint should point (launch.py)."""
    path = os.environ.get(RUN_FILE_ENV)
    if path and is_main():
        with open(path, "w") as fh:
            fh.write(str(run_dir))
