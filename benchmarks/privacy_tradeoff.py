"""Accuracy against the privacy budget, and what DP-SGD costs in training time: adult (MLP) and MNIST (CNN).

What it measures, side by side in one run:
  1. Test accuracy of the example recipe trained without privacy and with train.privacy at each epsilon (delta 1e-5,
     max_grad_norm 1.0, the RDP accountant), the same epochs and seed for every run of a dataset:
       adult   examples/adult-mlp.yaml   (29,305 training rows; its batch norm becomes group norm when private)
       mnist   examples/mnist-cnn.yaml   (MNIST's 10,000-image test file, 8,000 train / 2,000 test, as the example)
       digits  examples/digits-cnn.yaml  (scikit-learn's 8x8 digits, 1,257 train / 359 test: the small MNIST-like set,
                                          for a CPU where per-row gradients of 28x28 convolutions take too long)
     The recipe is the example's own (lr, schedule, batch size), not tuned for DP-SGD: a larger lr and batch
     usually help a private run, so these accuracies are a floor.
  2. Training time per epoch (rows / training samples/s, evaluations excluded) of each private run against the
     plain run of the same dataset: DP-SGD computes and clips a gradient per row (Opacus's hooks) and draws its
     batches by Poisson sampling.

Run (from the repository root; run it alone for the time ratios: a second CPU job skews them):
    .venv/bin/python benchmarks/privacy_tradeoff.py                               # adult 5 epochs, mnist 3 epochs
    .venv/bin/python benchmarks/privacy_tradeoff.py --datasets mnist --mnist-limit 2000 --epochs-mnist 2   # MNIST, smaller
    .venv/bin/python benchmarks/privacy_tradeoff.py --datasets adult --epochs-adult 1 --epsilons 3   # a quick check
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from forgeml import pipeline
from forgeml.bundle import Bundle
from forgeml.training.runtime import describe_cpu

CONFIGS = {"adult": "src/forgeml/examples/adult-mlp.yaml", "mnist": "src/forgeml/examples/mnist-cnn.yaml",
           "digits": "src/forgeml/examples/digits-cnn.yaml"}


def one_run(dataset: str, epochs: int, epsilon: float | None, runs: Path, limit: int | None = None) -> dict:
    name = f"{dataset}-{'plain' if epsilon is None else f'eps{epsilon:g}'}"
    sets = {"runs_dir": str(runs), "train.epochs": epochs, "train.progress": False, "train.tensorboard": False}
    if limit:
        sets["data.limit"] = limit
    if epsilon is not None:
        sets["train.privacy"] = {"epsilon": epsilon, "delta": 1e-5, "max_grad_norm": 1.0}
    started = time.perf_counter()
    run = pipeline.train(CONFIGS[dataset], overrides=sets, name=name, overwrite=True, report=False)
    bundle = Bundle(run)
    meta, metrics = bundle.meta(), bundle.read_json("metrics.json")
    rows = meta["data"]["train"]
    return {"dataset": dataset, "epsilon": epsilon, "test_accuracy": metrics["test"]["accuracy"],
            "epoch_s": rows / meta["samples_per_s"], "wall_s": time.perf_counter() - started,
            "spent": (meta.get("privacy") or {}).get("epsilon"), "noise": (meta.get("privacy") or {}).get("noise_multiplier")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["adult", "mnist"], choices=list(CONFIGS))
    ap.add_argument("--epsilons", nargs="+", type=float, default=[8.0, 3.0, 1.0])
    ap.add_argument("--epochs-adult", type=int, default=5)
    ap.add_argument("--epochs-mnist", type=int, default=3)
    ap.add_argument("--epochs-digits", type=int, default=10)
    ap.add_argument("--mnist-limit", type=int, help="use this many MNIST images (data.limit, before the 80/20 split)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    print(describe_cpu(), flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            epochs = {"adult": args.epochs_adult, "mnist": args.epochs_mnist, "digits": args.epochs_digits}[dataset]
            limit = args.mnist_limit if dataset == "mnist" else None
            plain = one_run(dataset, epochs, None, Path(tmp), limit)
            results.append(plain)
            for eps in args.epsilons:
                r = one_run(dataset, epochs, eps, Path(tmp), limit)
                r["time_ratio"] = r["epoch_s"] / plain["epoch_s"]
                results.append(r)
            rows = f", {limit} images" if limit else ""
            print(f"\n{dataset}: {epochs} epoch(s){rows}, seed 0, delta 1e-5, max_grad_norm 1.0, rdp accountant")
            print(f"{'epsilon':>10} {'spent':>7} {'noise':>7} {'test acc':>9} {'s/epoch':>8} {'x plain':>8}")
            for r in results:
                if r["dataset"] != dataset:
                    continue
                eps = "none" if r["epsilon"] is None else f"{r['epsilon']:g}"
                spent = "-" if r["spent"] is None else f"{r['spent']:.3f}"
                noise = "-" if r["noise"] is None else f"{r['noise']:.3f}"
                print(f"{eps:>10} {spent:>7} {noise:>7} {r['test_accuracy']:>9.4f} {r['epoch_s']:>8.2f} "
                      f"{r.get('time_ratio', 1.0):>8.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
