"""Multi-task on adult: one two-headed model (income class + hours-per-week regression) against two single-task models.

    PYTHONPATH=src python benchmarks/multitask.py [--seeds 0 1 2] [--epochs 10]

All three train through forgeml's config path from examples/adult-multitask.yaml (forgeml.train(dict) ->
run folder; figures read back from metrics.json and meta.json) with its encoder and combiner settings
(model mlp [128, 64], batch norm, dropout 0.2, AdamW, cosine), its data and split, and one train.seed:

- two-headed: the example as shipped: data.outputs income (weight 1) + hours-per-week (weight 1).
- income alone: data.target income, hours-per-week dropped from the inputs.
- hours alone:  data.target hours-per-week (regression), income dropped from the inputs.

Dropping the other output keeps the inputs of all three the same: in the two-headed model neither output
can be an input. Each single model monitors its own figure on val (accuracy, or the loss for hours); the
two-headed one monitors val.income.accuracy, as the example does. Printed: test income accuracy /
macro-F1 / AUROC, hours MAE / RMSE / R², trainable parameters, and training seconds (the Trainer's wall
time from meta.json, and this process's CPU seconds for the whole forgeml.train call), mean ± std over
the seeds; the two single models are also summed, for the parameter and time saving.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "adult-multitask.yaml"
INCOME, HOURS = "income", "hours-per-week"


def config(kind: str, seed: int, epochs: int | None, runs: Path) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["runs_dir"] = str(runs)
    cfg["data"]["path"] = str(ROOT / cfg["data"]["path"])  # the example's paths are relative to the repository
    cfg["data"]["test_path"] = str(ROOT / cfg["data"]["test_path"])
    cfg["train"].update({"seed": seed, "progress": False, "tensorboard": False})
    if epochs:
        cfg["train"]["epochs"] = epochs
    if kind == "income":
        del cfg["data"]["outputs"]
        cfg["data"].update({"target": INCOME, "drop": [HOURS]})
        cfg["train"]["monitor"] = "val.accuracy"
    elif kind == "hours":
        del cfg["data"]["outputs"]
        cfg["data"].update({"target": HOURS, "task": "regression", "drop": [INCOME]})
        cfg["train"]["monitor"] = "val.loss"
    return cfg


def run(kind: str, seed: int, epochs: int | None, runs: Path) -> dict[str, float]:
    import forgeml

    cpu = time.process_time()
    folder = forgeml.train(config(kind, seed, epochs, runs), name=f"adult-{kind}-{seed}", overwrite=True)
    cpu = time.process_time() - cpu
    test = json.loads((folder / "metrics.json").read_text())["test"]
    meta = json.loads((folder / "meta.json").read_text())
    out = {"params": meta["parameters"], "wall": meta["wall_time"], "cpu": cpu}
    prefix = {"both": (f"{INCOME}.", f"{HOURS}."), "income": ("", None), "hours": (None, "")}[kind]
    if prefix[0] is not None:
        out.update({m: test[prefix[0] + m] for m in ("accuracy", "f1_macro", "auroc")})
    if prefix[1] is not None:
        out.update({m: test[prefix[1] + m] for m in ("mae", "rmse", "r2")})
    return out


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}" if len(values) > 1 else f"{values[0]:{fmt}}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="default: the example's")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {describe_cpu()}, Python {platform.python_version()}")
    print(f"{EXAMPLE.relative_to(ROOT)}, seeds {args.seeds}, epochs {args.epochs or 'as the example'}")
    results: dict[str, list[dict]] = {"both": [], "income": [], "hours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for kind in results:
                r = run(kind, seed, args.epochs, Path(tmp))
                results[kind].append(r)
                print(f"  seed {seed} {kind}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    summed = [{k: a[k] + b[k] for k in ("params", "wall", "cpu")} for a, b in zip(results["income"], results["hours"], strict=True)]
    rows = [("two-headed (income + hours)", results["both"]), ("income alone", results["income"]),
            ("hours-per-week alone", results["hours"]), ("the two single models, summed", summed)]

    def col(rs: list[dict], key: str) -> list[float]:
        return [r[key] for r in rs if key in r]

    print(f"\nmean ± std over seeds {' '.join(map(str, args.seeds))}; test split = adult.test (16,281 rows)")
    print("| model | income accuracy | income macro-F1 | income AUROC | hours MAE | hours RMSE | hours R² | parameters | train s (wall) | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in rows:
        acc = [v * 100 for v in col(rs, "accuracy")]
        print(f"| {name} | {cell(acc, '.2f') + ('%' if acc else '')} | {cell(col(rs, 'f1_macro'), '.4f')} | {cell(col(rs, 'auroc'), '.4f')} "
              f"| {cell(col(rs, 'mae'), '.3f')} | {cell(col(rs, 'rmse'), '.3f')} | {cell(col(rs, 'r2'), '.3f')} "
              f"| {int(np.mean(col(rs, 'params'))):,} | {cell(col(rs, 'wall'), '.1f')} | {cell(col(rs, 'cpu'), '.1f')} |")
    both, single = results["both"], summed
    print(f"two-headed vs the two single models: {np.mean(col(both, 'params')) / np.mean(col(single, 'params')):.0%} of the "
          f"parameters, {np.mean(col(both, 'wall')) / np.mean(col(single, 'wall')):.0%} of the wall time, "
          f"{np.mean(col(both, 'cpu')) / np.mean(col(single, 'cpu')):.0%} of the CPU time")
    print("wall = the Trainer's wall_time in meta.json; CPU s = this process's CPU seconds for the whole forgeml.train call")


if __name__ == "__main__":
    main()
