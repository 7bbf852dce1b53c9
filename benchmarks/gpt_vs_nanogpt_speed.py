"""GPT training speed on this CPU: forgeml against nanoGPT's own train.py, same model and batch, alternating.

The shakespeare-gpt recipe's model (4 layers, 4 heads, n_embd 128, block 64, batch 12, dropout 0, no biases as in
nanoGPT's default, AdamW lr 1e-3, beta2 0.99, 100 warmup steps then cosine to 1e-4) trained for --iters steps by each
implementation, each in its own process, in rounds whose order alternates (the machine's other load falls on both
alike). Modes:
  fp32      nanoGPT --compile=False --dtype=float32       forgeml train.precision=fp32 train.compile=false
  bf16      nanoGPT --compile=False --dtype=bfloat16      forgeml train.precision=bf16 train.compile=false
  compiled  nanoGPT --compile=True  --dtype=float32       forgeml train.precision=fp32 train.compile=true
nanoGPT's train.py runs fp32 on a CPU whatever --dtype says (its autocast context is a nullcontext there), so its
bf16 row is its fp32 speed again: the row shows what bf16 autocast buys forgeml, against nanoGPT as it ships.

tokens/s, both from each trainer's own log, startup and the first --skip steps (compilation) left out, evaluation
time left out: nanoGPT's per-iteration `time ...ms` lines (an iteration that evaluated is dropped); forgeml's
history.jsonl windows (each log_every_steps steps; its Trainer already takes evaluation time out).
Equal loss: after the last round, each mode's models are measured on the whole held-out text in non-overlapping
64-token windows (benchmarks/shakespeare_vs_nanogpt.py's measure).

No nanoGPT code is copied here: bring a checkout (the search tool's `fetch karpathy/nanoGPT`, then
`git clone /work/.mirror/karpathy+nanoGPT/repo /tmp/nanogpt`) and point --nanogpt at it.

Run (from the repository root; fp32 alone, 3 rounds of 150 steps: about 3 minutes on 2 quiet cores; compiled adds
about a minute of compiling per run; bf16 is emulated, several times slower, on a CPU without AVX512-BF16 or AMX):
    .venv/bin/python benchmarks/gpt_vs_nanogpt_speed.py --nanogpt /tmp/nanogpt --modes fp32 --rounds 3 --iters 150
    .venv/bin/python benchmarks/gpt_vs_nanogpt_speed.py --nanogpt /tmp/nanogpt      # every mode, 3 rounds of 300 steps
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from forgeml.training.runtime import describe_cpu, physical_cores

sys.path.insert(0, str(Path(__file__).parent))
from shakespeare_vs_nanogpt import nanogpt_full_loss, prepare_nanogpt_data  # noqa: E402

B, T = 12, 64
MODES = {"fp32": ("float32", False, "fp32"), "bf16": ("bfloat16", False, "bf16"), "compiled": ("float32", True, "fp32")}
ENV = {**os.environ, "PYTHONPATH": str(Path("src").resolve())}


def run_nanogpt(root: Path, mode: str, iters: int, skip: int, out_dir: str) -> float:
    dtype, compile_, _ = MODES[mode]
    args = ["--device=cpu", f"--compile={compile_}", f"--dtype={dtype}", "--block_size=64", "--batch_size=12", "--n_layer=4",
            "--n_head=4", "--n_embd=128", "--dropout=0.0", f"--max_iters={iters}", f"--lr_decay_iters={iters}",
            f"--eval_interval={iters}", "--eval_iters=20", "--log_interval=1", "--always_save_checkpoint=True",
            f"--out_dir={out_dir}"]
    log = subprocess.run([sys.executable, "train.py", "config/train_shakespeare_char.py", *args], cwd=root, check=True,
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(physical_cores())}).stdout
    times = {int(i): float(ms) / 1000 for i, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", log)}
    # iteration 0 and every eval_interval-th include an evaluation; nanoGPT runs max_iters + 1 steps
    kept = [dt for i, dt in times.items() if i >= skip and i % iters != 0]
    return len(kept) * B * T / sum(kept)


def run_forgeml(mode: str, iters: int, skip: int, runs: Path) -> tuple[float, float]:
    _, compile_, precision = MODES[mode]
    sets = ["model.bias=false", f"train.max_steps={iters}", f"train.eval_every_steps={iters}", "train.eval_batches=20", "train.log_every_steps=25",
            f"train.precision={precision}", f"train.compile={str(compile_).lower()}", "train.progress=false",
            "train.tensorboard=false", f"runs_dir={runs}", "eval.splits=[val]"]
    subprocess.run([sys.executable, "-m", "forgeml", "train", "examples/shakespeare-gpt.yaml", "--name", mode, "--overwrite",
                    *[a for s in sets for a in ("--set", s)]], check=True, capture_output=True, text=True, env=ENV)
    history = [json.loads(line) for line in (runs / mode / "history.jsonl").read_text().splitlines()]
    windows = [r for r in history if r["split"] == "train" and r["step"] > skip and "tokens_per_s" in r]
    # windows of equal token counts: total tokens / total time is the harmonic mean of their rates
    speed = len(windows) / sum(1 / r["tokens_per_s"] for r in windows)
    return speed, json.loads((runs / mode / "metrics.json").read_text())["val"]["loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", required=True, type=Path, help="a nanoGPT checkout (its train.py, model.py, config/)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=300, help="optimizer steps per run")
    ap.add_argument("--skip", type=int, default=25, help="first steps left out of tokens/s (warm-up, compilation)")
    args = ap.parse_args()
    root = args.nanogpt.resolve()
    prepare_nanogpt_data(root)
    speeds = {(impl, m): [] for m in args.modes for impl in ("nanoGPT", "forgeml")}
    losses: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in args.modes:
                order = ("nanoGPT", "forgeml") if r % 2 == 0 else ("forgeml", "nanoGPT")
                for impl in order:
                    if impl == "nanoGPT":
                        speeds[impl, mode].append(run_nanogpt(root, mode, args.iters, args.skip, f"out-speed-{mode}"))
                        losses[impl, mode] = nanogpt_full_loss(root, f"out-speed-{mode}")
                    else:
                        speed, losses[impl, mode] = run_forgeml(mode, args.iters, args.skip, Path(tmp))
                        speeds[impl, mode].append(speed)
                print(f"round {r + 1} {mode}: nanoGPT {speeds['nanoGPT', mode][-1]:,.0f} tok/s, "
                      f"forgeml {speeds['forgeml', mode][-1]:,.0f} tok/s", flush=True)
    base = statistics.median(speeds["nanoGPT", "fp32"]) if "fp32" in args.modes else None
    print(f"\n{describe_cpu()}; torch {torch.__version__}, {physical_cores()} threads; GPT 4x4x128, block {T}, batch {B}; "
          f"{args.rounds} rounds of {args.iters} steps, the first {args.skip} left out")
    print("\n| mode | nanoGPT tokens/s | forgeml tokens/s | forgeml / nanoGPT (median of rounds) | forgeml / nanoGPT fp32 "
          "| val loss nanoGPT | val loss forgeml |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in args.modes:
        ng, ours = speeds["nanoGPT", mode], speeds["forgeml", mode]
        ratio = statistics.median(o / n for o, n in zip(ours, ng))
        vs_fp32 = f"{statistics.median(ours) / base:.2f}" if base else "-"
        print(f"| {mode} | {statistics.median(ng):,.0f} | {statistics.median(ours):,.0f} | {ratio:.2f} | {vs_fp32} "
              f"| {losses['nanoGPT', mode]:.4f} | {losses['forgeml', mode]:.4f} |")


if __name__ == "__main__":
    main()
