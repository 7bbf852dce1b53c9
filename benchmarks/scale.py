"""Samples/s for 1 and 2 training processes on this machine (DDP over gloo), the same global batch, alternating rounds.

Three ways to spend this machine's cores on one recipe:
    1 process x all cores   forgeml train CONFIG                       (torch's intra-op threads share each op)
    1 process x 1 thread    forgeml train CONFIG --set train.threads=1  (what one core does alone)
    2 processes x 1 thread  forgeml train CONFIG --nproc 2              (DDP: each takes half of every batch)
"2 processes / 1 thread" is DDP's parallel efficiency (2.0 would be perfect); "2 processes / 1 process" is whether
DDP beats intra-op threading on one machine's CPU cores (on GPUs each process has its own device, and it does).

Figures come from each run's meta.json (samples/s over the training steps, evaluation and checkpoints left out).
Run it alone: two CPU jobs at once slow each other several times over.

    PYTHONPATH=src .venv/bin/python benchmarks/scale.py [--rounds 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {
    "mnist-cnn": ("examples/mnist-cnn.yaml", ["train.batch_size=64"]),
    "shakespeare-gpt": ("examples/shakespeare-gpt.yaml", ["train.batch_size=12", "train.eval_every_steps=100000"]),
}
WAYS = {"1 process x all cores": ([], None), "1 process x 1 thread": (["train.threads=1"], None), "2 processes x 1 thread": ([], 2)}


def run(config: str, sets: list[str], nproc: int | None, runs: Path, name: str) -> float:
    cmd = [sys.executable, "-m", "forgeml", "train", config, "--name", name, "--overwrite"]
    for s in [f"runs_dir={runs}", "train.progress=false", "train.tensorboard=false", "eval.splits=[]", *sets]:
        cmd += ["--set", s]
    cmd += ["--nproc", str(nproc)] if nproc else []
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads((runs / name / "meta.json").read_text())["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per way (default 3)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    parser.add_argument("--recipe", choices=list(RECIPES), action="append", help="which recipes (default: all)")
    args = parser.parse_args()

    from forgeml.training.runtime import describe_cpu, physical_cores

    print(f"cpu: {describe_cpu()}, {os.cpu_count()} logical CPUs, {physical_cores()} physical cores; "
          f"load: {open('/proc/loadavg').read().split()[:3]}")
    runs = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    for recipe in args.recipe or list(RECIPES):
        config, sets = RECIPES[recipe]
        sets = [*sets, f"train.max_steps={args.steps}", "train.checkpoint_every_minutes=null"]
        speeds: dict[str, list[float]] = {w: [] for w in WAYS}
        for r in range(args.rounds):
            for way, (extra, nproc) in WAYS.items():
                s = run(config, [*sets, *extra], nproc, runs, f"{recipe}-{len(speeds[way])}")
                speeds[way].append(s)
                print(f"{recipe} round {r + 1}: {way:24s} {s:10,.0f} samples/s", flush=True)
        med = {w: statistics.median(v) for w, v in speeds.items()}
        print(f"\n{recipe}, {args.steps} steps, global batch as in the recipe, median of {args.rounds} rounds:")
        print("| way | samples/s |\n|---|---:|")
        for w, v in med.items():
            print(f"| {w} | {v:,.0f} |")
        print(f"2 processes / 1 process x all cores: {med['2 processes x 1 thread'] / med['1 process x all cores']:.2f}x; "
              f"2 processes / 1 process x 1 thread (DDP's efficiency, 2.0 = perfect): "
              f"{med['2 processes x 1 thread'] / med['1 process x 1 thread']:.2f}x\n")


if __name__ == "__main__":
    main()
