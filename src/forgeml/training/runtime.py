"""Device and precision, decided once before the loop starts (the loop never branches on them).

fp32: plain; bf16: autocast to bfloat16; fp16: autocast to float16 plus a gradient scaler.
"""

from __future__ import annotations

import contextlib
import platform
import warnings

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            from forgeml.errors import ConfigError

            raise ConfigError(f"train.device: {name!r} but no CUDA GPU is visible; use train.device=cpu or auto")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU computes bf16 itself; without them autocast emulates it, slowly."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return platform.machine() in ("arm64", "aarch64")  # Apple silicon and recent Arm cores have bf16
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Runtime:
    def __init__(self, device: str = "auto", precision: str = "fp32"):
        self.device = resolve_device(device)
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            warnings.warn("train.precision=bf16 on a CPU without AVX512-BF16 or AMX: autocast emulates bf16 and runs "
                          "several times slower than fp32 (8x on the MNIST CNN here, see BENCHMARKS.md); use fp32",
                          stacklevel=2)
        self.precision = precision
        self.dtype = DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> str:
        if self.device.type == "cuda":
            return f"{torch.cuda.get_device_name(self.device)} ({self.precision})"
        return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads ({self.precision})"
