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

    GPU: yes; fusing the elementwise work around the matmuls pays back the compile time within a few hundred
    steps. CPU: only for a model that declares `compile_pays_on_cpu = True` on one of its modules, because
    that is where it was measured to gain (benchmarks/gpt_vs_nanogpt_speed.py); and only with a C++ compiler,
    which inductor needs on a CPU. Elsewhere (mps) no: inductor's support there is not measured to pay."""
    if device_type == "cuda":
        return True, "a GPU: fused kernels pay back the compile time"
    if device_type == "cpu":
        declared = any(getattr(m, "compile_pays_on_cpu", False) for m in model.modules())
        if not declared:
            return False, "on a CPU torch.compile is not measured to pay for this model"
        if not has_cxx:
            return False, "on a CPU torch.compile needs a C++ compiler (none on PATH)"
        return True, "on a CPU it was measured to pay for this model (BENCHMARKS.md)"
    return False, f"torch.compile on {device_type} is not measured to pay"


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
