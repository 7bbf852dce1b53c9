"""Precision on this machine: the MNIST CNN example trained in fp32 and in bf16 autocast, side by side.

What it measures: for each precision, the whole `examples/mnist-cnn.yaml` recipe (8,000 train /
2,000 held-out test images, the PyTorch MNIST example's network) through forgeml's pipeline, with
the same seed, data and batches; it reports training samples/s (taken by the Trainer between log
points, evaluation excluded), wall time and the held-out test accuracy. bf16 runs through
torch.autocast; on CPUs with AVX512-BF16 or AMX the convolutions and matmuls use bf16 kernels.

Run (from the repository root):
    .venv/bin/python benchmarks/precision.py                 # full recipe, about 5 minutes on 2 cores
    .venv/bin/python benchmarks/precision.py --epochs 2      # quicker, accuracy lower
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from forgeml import pipeline
from forgeml.config import load_config


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "no AVX512"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs (default: the example's)")
    parser.add_argument("--config", default="examples/mnist-cnn.yaml")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for precision in ("fp32", "bf16"):
            overrides = [f"runs_dir={runs}", f"train.precision={precision}", "train.progress=false", "train.tensorboard=false"]
            if args.epochs:
                overrides.append(f"train.epochs={args.epochs}")
            run = pipeline.train(load_config(args.config, overrides), name=precision)
            meta = json.loads((run / "meta.json").read_text())
            test = json.loads((run / "metrics.json").read_text())["test"]
            rows.append((precision, meta["samples_per_s"], meta["wall_time"], test["accuracy"]))
            print(f"{precision}: {meta['samples_per_s']:,.0f} samples/s, {meta['wall_time']:.1f} s, test accuracy {test['accuracy']:.4f}", flush=True)
    base = rows[0][1]
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()} ({cpu_flags()})")
    print(f"config {args.config}" + (f", epochs {args.epochs}" if args.epochs else ""))
    print("\n| precision | train samples/s | ratio vs fp32 | wall time (s) | test accuracy |\n|---|---:|---:|---:|---:|")
    for precision, sps, wall, acc in rows:
        print(f"| {precision} | {sps:,.0f} | {sps / base:.2f} | {wall:.1f} | {acc:.4f} |")


if __name__ == "__main__":
    main()
