"""Device and precision, decided once before the loop starts (the loop never branches on them).

fp32: plain; bf16: autocast to bfloat16; fp16: autocast to float16 plus a gradient scaler; auto: bf16 where the
hardware computes in bf16, else fp32 (auto_precision), said in a note.
"""

from __future__ import annotations

import contextlib
import os
import platform
import warnings

import torch

from forgeml.notes import note

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


DEVICES = "auto, cpu, cuda, cuda:N, mps"


def _visible() -> str:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    found = ([f"cuda:0-{n - 1}" if n > 1 else "cuda"] if n else []) + (["mps"] if mps else [])
    return f"visible here: cpu, {', '.join(found)}" if found else "no GPU is visible here, only cpu"


def resolve_device(name: str) -> torch.device:
    from forgeml.errors import ConfigError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch lists a score of backends; say the ones forgeml trains on
        raise ConfigError(f"train.device: {name!r} is not a device; use one of {DEVICES} ({_visible()})") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"train.device: {name!r} is not a device forgeml trains on; use one of {DEVICES} ({_visible()})")
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"train.device: {name!r} but that CUDA GPU is not visible ({_visible()}); "
                          "use train.device=cpu or auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"train.device: 'mps' but no Apple GPU is visible ({_visible()}); use train.device=cpu or auto")
    return device


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (None where there is no such file: macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as fh:
            return set(next((line for line in fh if line.startswith("flags")), "").split(":")[-1].split())
    except OSError:
        return None


def describe_cpu() -> str:
    """The vector flags that decide CPU speed (avx/avx2/fma, avx512*, amx*, vnni): what every benchmark prints."""
    flags = cpu_flags()
    if flags is None:
        return platform.machine()
    wanted = sorted(f for f in flags if f.startswith(("avx512", "amx")) or "vnni" in f or f in ("avx", "avx2", "fma"))
    return f"{platform.machine()}, flags: {' '.join(wanted) or 'none of avx/avx2/avx512/amx'}"


def cpu_has_native_bf16(flags: set[str] | None = None, machine: str | None = None) -> bool:
    """AVX512-BF16 or AMX: the CPU computes bf16 itself; without them autocast emulates it, slowly.
    Reads this machine's flags unless given some (a test checks the rule with another CPU's flags)."""
    if flags is None and machine is None:
        flags, machine = cpu_flags(), platform.machine()
    if flags is None:
        return machine in ("arm64", "aarch64")  # Apple silicon and recent Arm cores have bf16
    return "avx512_bf16" in flags or "amx_bf16" in flags


def auto_precision(device_type: str, cuda_bf16: bool = False, cpu_bf16: bool = False) -> tuple[str, str]:
    """What train.precision=auto becomes, and why: bf16 only where the hardware computes in bf16 (where it is
    emulated it is slower than fp32: 8x on the MNIST CNN on an AVX2-only CPU, BENCHMARKS.md), fp32 elsewhere."""
    if device_type == "cuda":
        return ("bf16", "this GPU computes in bf16") if cuda_bf16 else ("fp32", "this GPU has no bf16 (older than Ampere)")
    if device_type == "cpu":
        return ("bf16", "this CPU has AVX512-BF16 or AMX") if cpu_bf16 else (
            "fp32", "this CPU has no AVX512-BF16 or AMX, so bf16 would be emulated, slower than fp32")
    return "fp32", f"bf16 autocast on {device_type} is not measured to pay"


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str | None]:
    """(the precision to train in, why it was picked): auto decided for this device; others as asked (why None)."""
    if precision != "auto":
        return precision, None
    return auto_precision(device.type, cuda_bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
                          cpu_bf16=device.type == "cpu" and cpu_has_native_bf16())


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once): torch's intra-op threads gain
    nothing from a core's second hyper-thread, and more threads than allowed cores (a container's affinity)
    only contend."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/physical_package_id") as a, open(f"{topology}/core_id") as b:
                cores.add((a.read().strip(), b.read().strip()))
        except OSError:  # no sysfs (macOS, Windows, some containers): count logical CPUs
            cores.add(("cpu", str(cpu)))
    return max(len(cores), 1)


class Runtime:
    def __init__(self, device: str = "auto", precision: str = "fp32", threads: int | None = None):
        self.device = resolve_device(device)
        # applied by Trainer.fit, for the fit only; processes started together on one machine share its cores
        self.threads = threads or max(1, physical_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            warnings.warn("train.precision=bf16 on a CPU without AVX512-BF16 or AMX: autocast emulates bf16 and runs "
                          "several times slower than fp32 (8x on the MNIST CNN here, see BENCHMARKS.md); use fp32",
                          stacklevel=2)
        precision, why = resolve_precision(precision, self.device)
        if why:
            note(f"train.precision=auto: {precision} ({why})")
        self.precision = precision
        self.dtype = DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> str:
        if self.device.type == "cuda":
            return f"{torch.cuda.get_device_name(self.device)}, {self.threads} CPU threads ({self.precision})"
        return f"{platform.processor() or platform.machine()} CPU, {self.threads} threads ({self.precision})"
