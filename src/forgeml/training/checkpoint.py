"""Full training state for an exact resume: model, optimizer, scheduler, scaler, RNG, data position.

Saved with torch.save as plain tensors and Python numbers, so it loads with weights_only=True
(no pickled code runs on load). Written to a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgeml.atomic import atomic_write
from forgeml.errors import BundleError


def _cuda_in_use() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


@contextlib.contextmanager
def kept_torch_rng() -> Iterator[None]:
    """Every torch generator that capture_rng saves (the CPU's, each CUDA GPU's once CUDA is in use, MPS's) is put
    back as found on exit: torch.manual_seed and restore_rng change all of them, not only the training device's."""
    with contextlib.ExitStack() as kept:
        kept.enter_context(torch.random.fork_rng(devices=range(torch.cuda.device_count()) if _cuda_in_use() else [],
                                                 device_type="cuda"))
        if _mps():
            kept.enter_context(torch.random.fork_rng(devices=["mps"], device_type="mps"))
        yield


def capture_rng() -> dict[str, Any]:
    """Every generator: torch's (CPU, CUDA, MPS), numpy's and Python's. Taken only when a checkpoint is saved."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if _cuda_in_use():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if _mps():
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and _mps():
        torch.mps.set_rng_state(state["mps"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"{path}: no checkpoint to resume from (the run never finished a step or an epoch)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors have many types
        raise BundleError(f"{path}: cannot read the checkpoint ({exc}); it is damaged") from None
