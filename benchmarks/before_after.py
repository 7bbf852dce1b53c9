"""Before/after issue 10: the shipped examples' test figures over the same seeds, in this tree and before the Network.

    PYTHONPATH=src python benchmarks/before_after.py [--examples digits-cnn adult-mlp ...] [--seeds 0 1 2]
                                                     [--before d31a4bf^] [--before-tree /tmp/forgeml-before]

"Before" is a detached git worktree of commit d31a4bf^ (the last commit before issue 10's Network landed),
made under /tmp with `git worktree add --detach` when it is not there yet; the same Python and virtualenv
run both trees' CLIs, each with PYTHONPATH pointing at its own src/ and the working directory at its own
root (the examples name their data relative to it). Each run is

    python -m forgeml train examples/NAME.yaml --set train.seed=S --set runs_dir=TMP/TREE --name NAME-sS --overwrite

and its quality figure is read from the run folder's metrics.json (test split). The runs are sequential:
on a shared machine run it alone (the figures do not depend on load, the seconds printed do).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
METRIC = {  # example -> the test figure it is judged by (higher is better for all of them)
    "digits-cnn": "accuracy", "adult-mlp": "accuracy", "wine-regression": "r2",
    "sms-spam-lstm": "f1_macro", "sms-spam-transformer": "f1_macro",
}


def before_tree(commit: str, where: Path) -> Path:
    """A detached worktree of `commit` at `where` (made once; reused when it already holds that commit)."""
    want = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    if where.exists():
        have = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True).stdout.strip()
        if have != want:
            raise SystemExit(f"--before-tree {where} holds {have[:10] or 'no git checkout'}, not {commit} ({want[:10]}); "
                             f"remove it (git worktree remove {where}) or pass another --before-tree")
        return where
    subprocess.run(["git", "worktree", "add", "--detach", str(where), want], cwd=ROOT, check=True, capture_output=True)
    return where


def train(tree: Path, example: str, seed: int, runs: Path) -> tuple[float, float]:
    """(test figure, seconds) of one example run through `tree`'s own CLI."""
    name = f"{example}-s{seed}"
    cmd = [sys.executable, "-m", "forgeml", "train", f"examples/{example}.yaml", "--set", f"train.seed={seed}",
           "--set", f"runs_dir={runs}", "--set", "train.progress=false", "--set", "train.tensorboard=false",
           "--name", name, "--overwrite"]
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{tree}: {' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    test = json.loads((runs / name / "metrics.json").read_text())["test"]
    return test[METRIC[example]], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", nargs="+", default=list(METRIC), choices=list(METRIC))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--before", default="d31a4bf^", help="the commit to compare against (default: before the Network)")
    ap.add_argument("--before-tree", type=Path, default=Path(tempfile.gettempdir()) / "forgeml-before",
                    help="where its detached worktree lives (made when missing)")
    args = ap.parse_args()
    trees = {"before": before_tree(args.before, args.before_tree), "after": ROOT}
    print(f"{sys.executable}, {describe_cpu()}, Python {platform.python_version()}")
    print(f"before = {args.before} at {trees['before']}; after = {ROOT}; seeds {args.seeds}")
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for example in args.examples:
            got: dict[str, list[float]] = {}
            for label, tree in trees.items():
                got[label] = []
                for seed in args.seeds:
                    value, seconds = train(tree, example, seed, Path(tmp) / label)
                    got[label].append(value)
                    print(f"  {example} seed {seed} {label}: test {METRIC[example]} {value:.4f} ({seconds:.0f} s)", flush=True)
            table.append((example, got))
    print(f"\n| example | test metric | {' | '.join(f'before s{s}' for s in args.seeds)} | {' | '.join(f'after s{s}' for s in args.seeds)} "
          "| before mean | after mean | change |")
    print("|---|---|" + "---|" * (2 * len(args.seeds) + 3))
    for example, got in table:
        b, a = np.mean(got["before"]), np.mean(got["after"])
        print(f"| {example} | {METRIC[example]} | {' | '.join(f'{v:.4f}' for v in got['before'])} | "
              f"{' | '.join(f'{v:.4f}' for v in got['after'])} | {b:.4f} | {a:.4f} | {a - b:+.4f} |")


if __name__ == "__main__":
    main()
