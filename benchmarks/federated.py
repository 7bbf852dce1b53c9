"""Federated against centralized training on adult: final test accuracy after R rounds with C clients.

What it measures, in one run, on the same data (examples/adult-mlp.yaml: its 90/10 train/val split of adult.data and
the 16,281-row adult.test), the same model, batch size, optimizer and lr:
  1. centralized: `forgeml train` for R epochs on the whole training split (the same number of passes over the data
     and the same total number of optimizer steps, within rounding, as R rounds of 1 local epoch on every client);
  2. FedAvg, IID partition over C clients;
  3. FedAvg, Dirichlet(alpha) partition by label (non-IID);
  4. FedProx (mu) on the same Dirichlet partition.
Each federated run is `forgeml federate` for real: a SuperLink and C SuperNodes as processes on 127.0.0.1; the test
accuracy is that of the bundle (the last round's global weights). Wall times are printed too, but federated ones are
dominated by process start-up (each client round is a new flwr-clientapp process that imports torch).

Run (from the repository root):
    .venv/bin/python benchmarks/federated.py                                # 5 clients, 20 rounds (long on a CPU)
    .venv/bin/python benchmarks/federated.py --clients 3 --rounds 2 --limit 3000   # a quick check
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from forgeml import pipeline
from forgeml.federate.launch import federate
from forgeml.training.runtime import describe_cpu

CONFIG = "src/forgeml/examples/adult-mlp.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--mu", type=float, default=0.01, help="FedProx's proximal weight")
    ap.add_argument("--limit", type=int, default=None, help="use this many rows of adult.data (default: all)")
    args = ap.parse_args()
    print(f"CPU: {describe_cpu()}")
    common = ["train.progress=false", "train.tensorboard=false", "train.early_stopping.patience=null"]
    if args.limit:
        common.append(f"data.limit={args.limit}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = f"runs_dir={tmp}"

        def test_accuracy(run: Path) -> float:
            return json.loads((run / "metrics.json").read_text())["test"]["accuracy"]

        t = time.perf_counter()
        central = pipeline.train(CONFIG, overrides=[*common, runs, f"train.epochs={args.rounds}", "train.restore_best=false"],
                                 name="central", report=False)
        meta = json.loads((central / "meta.json").read_text())
        rows.append(("centralized", f"{args.rounds} epochs, {meta['steps']} steps", test_accuracy(central), time.perf_counter() - t))
        dirichlet = f"dirichlet:{args.alpha:g}"
        for label, partition, strategy in (("FedAvg", "iid", "fedavg"), ("FedAvg", dirichlet, "fedavg"),
                                           ("FedProx", dirichlet, "fedprox")):
            t = time.perf_counter()
            run = federate(CONFIG, overrides=[*common, runs], clients=args.clients, rounds=args.rounds, partition=partition,
                           strategy=strategy, proximal_mu=args.mu, name=f"{strategy}-{partition.replace(':', '')}",
                           say=lambda line: print("   ", line, flush=True))
            meta = json.loads((run / "meta.json").read_text())
            sizes = meta["variant"]["client_rows"]
            what = f"{partition}, {args.clients} clients x {args.rounds} rounds" + (f", mu {args.mu:g}" if strategy == "fedprox" else "")
            rows.append((label, what + f" (client rows {min(sizes)}-{max(sizes)})", test_accuracy(run), time.perf_counter() - t))
            print(f"  {rows[-1][0]} {rows[-1][1]}: test accuracy {rows[-1][2]:.4f}", flush=True)
    print(f"\nadult, test accuracy after {args.rounds} rounds (federated) or {args.rounds} epochs (centralized)")
    print(f"{'run':<12} {'setting':<62} {'test acc':>9} {'wall s':>8}")
    for name, what, acc, wall in rows:
        print(f"{name:<12} {what:<62} {acc:>9.4f} {wall:>8.0f}")


if __name__ == "__main__":
    main()
