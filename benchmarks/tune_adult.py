"""Tuning the adult MLP with Optuna: 30 trials with median pruning against the same 30 trials without it.

    PYTHONPATH=src python benchmarks/tune_adult.py [--trials 30] [--epochs 10] [--jobs 1] [--runs-dir /tmp/tune-bench]
    PYTHONPATH=src python benchmarks/tune_adult.py --trials 4 --epochs 2          # a quick check that it works

Both studies search the same space (lr, weight decay, widths, dropout, batch size) over
src/forgeml/examples/adult-mlp.yaml with TPE and the same sampler seed, on the same data split; they differ only in
tune.pruner (median vs none). Printed: each study's total wall time, complete/pruned counts and best validation
accuracy; the shipped example config's own validation accuracy (trained once, same split, same epochs); and the
ratios (time saved by pruning, accuracy gained by tuning). With pruning the sampler sees pruned trials, so the two
studies' values part ways after the first pruned one: the comparison is of budgets, not of identical trials.
Run it alone on a shared machine: wall times move with load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from forgeml import pipeline
from forgeml.config import load_config
from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src" / "forgeml" / "examples" / "adult-mlp.yaml"
SPACE = {
    "train.lr": {"log_uniform": [1e-4, 1e-2]},
    "train.weight_decay": {"log_uniform": [1e-5, 1e-2]},
    "train.batch_size": {"int": [64, 512], "step": 64},
    "model.hidden": {"choice": [[64], [128, 64], [256, 128], [256, 256]]},
    "model.dropout": {"uniform": [0.0, 0.5]},
}


def study(name: str, pruner: str, args: argparse.Namespace) -> tuple[float, object]:
    sets = {"runs_dir": str(args.runs_dir), "name": name, "train.epochs": args.epochs, "train.progress": False,
            "train.tensorboard": False, "eval.splits": ["val"],
            "tune": {"space": SPACE, "objective": "val.accuracy", "pruner": pruner, "sampler": "tpe", "seed": args.seed,
                     "trials": args.trials, "jobs": args.jobs, "startup_trials": min(5, max(1, args.trials // 4))}}
    cfg = load_config(EXAMPLE, sets)
    start = time.perf_counter()
    result = pipeline.tune(cfg)
    return time.perf_counter() - start, result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=30, help="trials per study (default 30)")
    p.add_argument("--epochs", type=int, default=10, help="train.epochs of every trial and of the example run (default 10, the example's)")
    p.add_argument("--jobs", type=int, default=1, help="trials at once (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed of both studies (default 0)")
    p.add_argument("--runs-dir", type=Path, default=Path("/tmp/tune-bench"), help="where the studies go (emptied first)")
    args = p.parse_args()
    shutil.rmtree(args.runs_dir, ignore_errors=True)

    start = time.perf_counter()
    run = pipeline.train(load_config(EXAMPLE, {"runs_dir": str(args.runs_dir), "name": "example", "train.epochs": args.epochs,
                                              "train.progress": False, "train.tensorboard": False}))
    example_s = time.perf_counter() - start
    example_acc = json.loads((run / "metrics.json").read_text())["val"]["accuracy"]

    pruned_s, pruned = study("adult-median", "median", args)
    full_s, full = study("adult-none", "none", args)
    # the best of N trials on val is an optimistic figure (it was chosen on val): the held-out test split says more
    example_test = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    tests = {label: pipeline.evaluate(r.folder / "trials" / f"trial-{r.best_trial:04d}", splits=["test"])["test"]["accuracy"]
             for label, r in (("median", pruned), ("none", full))}

    print(f"\n# tune adult-mlp: {args.trials} trials x up to {args.epochs} epochs, TPE seed {args.seed}, jobs {args.jobs}")
    print(f"CPU: {describe_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n| | wall time (s) | complete | pruned | failed | best val accuracy | its test accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| example config (one run) | {example_s:.1f} | 1 | - | - | {example_acc:.4f} | {example_test:.4f} |")
    for label, key, secs, r in (("median pruning", "median", pruned_s, pruned), ("no pruning", "none", full_s, full)):
        c = r.counts
        print(f"| {label} | {secs:.1f} | {c['complete']} | {c['pruned']} | {c['fail']} | {r.best_value:.4f} | {tests[key]:.4f} |")
    print(f"\npruning: {full_s / pruned_s:.2f}x faster than no pruning ({pruned_s:.0f} s vs {full_s:.0f} s); "
          f"best val accuracy {pruned.best_value - full.best_value:+.4f} against no pruning")
    print(f"tuning: best val accuracy {pruned.best_value - example_acc:+.4f} (pruned study) and "
          f"{full.best_value - example_acc:+.4f} (no pruning) over the example config's {example_acc:.4f}")
    print(f"best values (pruned study): {json.dumps(pruned.best_params)}")
    print(f"best config: {pruned.best_config}")


if __name__ == "__main__":
    main()
