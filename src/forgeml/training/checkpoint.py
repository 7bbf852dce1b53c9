"""Full training state for an exact resume: model, optimizer, scheduler, scaler, RNG, data position.

Saved with torch.save as plain tensors and Python numbers, so it loads with weights_only=True
(no pickled code runs on load). Written to a temporary name and renamed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgeml.atomic import atomic_write
from forgeml.errors import BundleError


def capture_rng() -> dict[str, Any]:
    """Every generator: torch's (CPU and CUDA), numpy's and Python's. Taken only when a checkpoint is saved."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"{path}: no checkpoint to resume from (the run never finished a step or an epoch)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors have many types
        raise BundleError(f"{path}: cannot read the checkpoint ({exc}); it is damaged") from None
