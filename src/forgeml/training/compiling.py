"""train.compile: whether torch.compile pays on this device for this model, and what compiling cost.

torch.compile traces the model and generates fused kernels at its first forward and backward, so the first
step takes seconds to a minute and the later steps are faster (or not: see where auto says no). auto decides
once, before the loop, and says what it decided; CompileTimer reports the first step's time once.
"""

from __future__ import annotations

import shutil
import time

import torch
from torch import nn

from forgeml.notes import note
from forgeml.training.callbacks import Callback


def auto_compile(device_type: str, model: nn.Module, has_cxx: bool) -> tuple[bool, str]:
    """What train.compile=auto becomes on `device_type` for `model`, and why.

    Only where compiling was measured to pay: a module of the model names the device types in its
    `compile_pays_on` (the GPT: cuda, from nanoGPT's published 250 -> 135 ms per step on an A100; see its file
    for the CPU). Everything else, a small MLP in a test on a GPU machine included, runs eagerly: a compile costs
    seconds to a minute and changes results at float tolerance, which a few hundred steps of a small model never
    pay back. On a CPU inductor also needs a C++ compiler."""
    pays = {d for m in model.modules() for d in getattr(m, "compile_pays_on", ())}
    if device_type not in pays:
        return False, f"torch.compile is not measured to pay for this model on {device_type}"
    if device_type == "cpu" and not has_cxx:
        return False, "on a CPU torch.compile needs a C++ compiler (none on PATH)"
    return True, f"measured to pay for this model on {device_type} (BENCHMARKS.md)"


def compile_pays(setting: bool | str, device: torch.device, model: nn.Module) -> bool:
    """train.compile resolved: true/false as given; auto decided by auto_compile, with a note saying which and why."""
    if setting != "auto":
        return bool(setting)
    compiled, why = auto_compile(device.type, model, has_cxx=shutil.which("c++") is not None or shutil.which("g++") is not None)
    note(f"train.compile=auto: {'compiling' if compiled else 'not compiling'} ({why})")
    return compiled


class CompileTimer(Callback):
    """Times the first optimizer step of a compiled model (where torch.compile compiles) and says it once:
    a note, and trainer.compile_seconds for the run's meta.json."""

    def on_fit_start(self, trainer) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, trainer) -> None:
        if trainer.compile_seconds is None:
            trainer.compile_seconds = time.perf_counter() - self.started
            note(f"torch.compile: the first step took {trainer.compile_seconds:.1f} s (compiling); later steps run the compiled code")
