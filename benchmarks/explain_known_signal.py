"""Explanations where the answer is known: do the attributions put their mass on the inputs that carry the signal?

Table: 8 numeric + 2 category columns; the label depends on x0, x1 and c0 only. A small MLP is trained through forgeml,
the test rows are explained by each method, and the share of attribution mass on the informative columns is printed
(sum |attr| over x0, x1, c0 / sum |attr| over all columns, pooled over the rows; goal >= 90%), beside the plain
baselines: an even spread (3 of 10 columns = 30%) and permutation importance's share.
Image: 12x12 noise; class 1 adds a bright 4x4 patch in the top-left corner. The share of the |heat map| inside that
patch (an even spread: 16/144 = 11%).
Then the time per explained example at batch 1 and batch 32, per method.

    PYTHONPATH=src python benchmarks/explain_known_signal.py            # about a minute on 2 cores
    PYTHONPATH=src python benchmarks/explain_known_signal.py --rows 20000 --explain 512
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import forgeml
from forgeml.data.columns import Columns
from forgeml.explain import METHODS
from forgeml.explain.global_view import mean_abs_attribution, permutation_importance
from forgeml.training.runtime import describe_cpu

INFORMATIVE = ("x0", "x1", "c0")
EFFECT = {"a": -2.0, "b": -1.0, "c": 0.0, "d": 1.0, "e": 2.0}  # c0's push on the logit


def known_table(n: int, seed: int) -> pd.DataFrame:
    """x0..x7 ~ N(0,1), c0, c1 in a..e; y = 1 when 2*x0 - 2*x1 + EFFECT[c0] > 0 (5% of labels flipped)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.standard_normal(n) for i in range(8)})
    df["c0"] = rng.choice(list(EFFECT), n)
    df["c1"] = rng.choice(list(EFFECT), n)
    logit = 2 * df.x0 - 2 * df.x1 + df.c0.map(EFFECT)
    y = (logit > 0).to_numpy() ^ (rng.random(n) < 0.05)
    df["y"] = np.where(y, "yes", "no")
    return df


def known_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 12, 12) float32 noise; class 1 adds +1.5 to the 4x4 patch at the top left."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 2, n)
    x[y == 1, :, :4, :4] += 1.5
    return x, y


def mass_share(explanations: list[dict], informative) -> float:
    """sum |attr| on the informative columns / sum |attr| on all, pooled over the rows."""
    inside = sum(abs(e["attributions"][c]) for e in explanations for c in informative)
    total = sum(abs(v) for e in explanations for v in e["attributions"].values())
    return inside / total


def time_per_row(model, rows, method: str, batch: int, repeats: int) -> float:
    rows = rows[: max(batch, 1) * repeats]
    t = time.perf_counter()
    model.explain(rows, method=method, batch_size=batch)
    return (time.perf_counter() - t) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000, help="generated training rows (default 20000)")
    parser.add_argument("--explain", type=int, default=256, help="test rows explained per method (default 256)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip-image", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        known_table(args.rows, 0).to_csv(tmp / "train.csv", index=False)
        test = known_table(max(args.explain, 512), 1)
        test.to_csv(tmp / "test.csv", index=False)
        cfg = {"name": "known-signal", "runs_dir": str(tmp / "runs"),
               "data": {"path": str(tmp / "train.csv"), "test_path": str(tmp / "test.csv"), "target": "y",
                        "split": {"val": 0.1, "seed": 0}},
               "model": {"name": "mlp", "hidden": [64, 32], "dropout": 0.1},
               "train": {"epochs": args.epochs, "batch_size": 128, "lr": 0.003, "weight_decay": 0.01, "progress": False,
                         "tensorboard": False}}
        run = forgeml.train(cfg)
        model = forgeml.load(run)
        acc = forgeml.evaluate(run)["test"]["accuracy"]
        rows = test.drop(columns="y").iloc[: args.explain].to_dict(orient="records")
        print(f"table: {args.rows} training rows, 8 numeric + 2 category columns, informative {', '.join(INFORMATIVE)}; "
              f"MLP test accuracy {acc:.3f}; {len(rows)} test rows explained")
        print("\n| explanation | mass on x0, x1, c0 |\n|---|---:|")
        print(f"| even spread (3 of 10 columns) | {3 / 10:.1%} |")
        cols = Columns({k: v.to_numpy() for k, v in test.iloc[: args.explain].items()}, "test")
        perm = permutation_importance(model, cols, seed=0)
        print(f"| permutation importance (accuracy drop, clipped at 0) | "
              f"{sum(max(perm[c], 0) for c in INFORMATIVE) / sum(max(v, 0) for v in perm.values()):.1%} |")
        per_column = {}
        for method in METHODS:
            explained = model.explain(rows, method=method)
            per_column[method] = mean_abs_attribution(explained, "y")
            print(f"| {method} | {mass_share(explained, INFORMATIVE):.1%} |")
        names = list(per_column[METHODS[0]])
        print(f"\nmean |attribution| per column:\n\n| method | {' | '.join(names)} |\n|---|{'---:|' * len(names)}")
        for method, col in per_column.items():
            print(f"| {method} | {' | '.join(f'{col[n]:.3f}' for n in names)} |")
        timing = {} if args.skip_timing else {m: (time_per_row(model, rows, m, 1, 16), time_per_row(model, rows, m, 32, 4))
                                              for m in METHODS}

        image_lines = []
        if not args.skip_image:
            x, y = known_images(args.rows // 2, 0)
            xt, yt = known_images(256, 1)
            np.savez(tmp / "img.npz", x=x, y=y)
            np.savez(tmp / "img_test.npz", x=xt, y=yt)
            icfg = {"name": "known-patch", "runs_dir": str(tmp / "runs"),
                    "data": {"path": str(tmp / "img.npz"), "test_path": str(tmp / "img_test.npz"), "x_kind": "image",
                             "split": {"val": 0.1, "seed": 0}},
                    "model": {"name": "cnn", "blocks": [{"channels": 16, "kernel": 3, "padding": 1, "pool": 2},
                                                        {"channels": 32, "kernel": 3, "padding": 1, "pool": 2}],
                              "head": "flatten", "hidden": [32]},
                    "train": {"epochs": 5, "batch_size": 64, "lr": 0.003, "progress": False, "tensorboard": False}}
            irun = forgeml.train(icfg)
            imodel = forgeml.load(irun)
            iacc = forgeml.evaluate(irun)["test"]["accuracy"]
            name = imodel.features.inputs[0].name
            ones = [{name: im} for im in xt[yt == 1][:64]]  # the class with the patch: is its evidence found there?
            image_lines.append(f"\nimage: 12x12 noise, a +1.5 4x4 patch at the top left for class 1; CNN test accuracy "
                               f"{iacc:.3f}; {len(ones)} class-1 test images explained (the class-1 score)")
            image_lines.append("\n| explanation | heat-map mass inside the patch |\n|---|---:|")
            image_lines.append(f"| even spread (16 of 144 pixels) | {16 / 144:.1%} |")
            for method in METHODS:
                heat = np.stack([np.abs(e["attributions"][name]) for e in imodel.explain(ones, method=method, target="1")])
                image_lines.append(f"| {method} | {heat[:, :4, :4].sum() / heat.sum():.1%} |")
        print("\n".join(image_lines))
        print(f"\ntime per explained table row (ms; {torch.get_num_threads()} threads):\n\n| method | batch 1 | batch 32 |\n|---|---:|---:|")
        for m, (one, many) in timing.items():
            print(f"| {m} | {one * 1e3:.2f} | {many * 1e3:.2f} |")
    print(f"\ntorch {torch.__version__}, captum {__import__('captum').__version__}, CPU {describe_cpu()}")


if __name__ == "__main__":
    main()
