"""The compression table for BENCHMARKS.md: int8 (and pruning where it applies) on the MNIST CNN, the adult MLP and
the SMS-spam Transformer, each against PyTorch fp32 eager and ONNX Runtime fp32, with the issue's goals checked.

    PYTHONPATH=src python benchmarks/compress.py [--models mnist-cnn adult-mlp sms-spam-transformer]
        [--set mnist-cnn:train.epochs=4 ...] [--repeats 30] [--runs-dir /tmp/compress-bench] [--reuse]

Each model is trained from its shipped example (overrides with --set MODEL:KEY=VALUE), then `forgeml compress`'s
own code (forgeml.compression.compress) makes the variants and measures every row the same way: the metric per
output on the test split, parameters, file size, latency at batch 1, 32 and 64 (median of --repeats runs after
warm-up, the threads torch uses). Printed as markdown with the CPU's flags. Run it alone: a second CPU job on a
2-core machine slows PyTorch's threads several times over and the milliseconds mean nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from forgeml import compression, pipeline
from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
PLANS = {  # what applies to each: pruning reaches conv channels and hidden layers; int8 everything exported
    "mnist-cnn": {"quantize": "int8", "prune": 0.5},
    "adult-mlp": {"quantize": "int8", "prune": 0.5},
    "sms-spam-transformer": {"quantize": "int8"},
}
BATCHES = (1, 32, 64)


def markdown(table: dict) -> str:
    rows = table["rows"]
    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    batches = list(dict.fromkeys(b for r in rows for b in r["latency_ms"]))
    head = ["variant", "runtime", *metrics, "params", "size MB", *[f"ms @{b}" for b in batches], *[f"x @{b}" for b in batches]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], r["runtime"], *[f"{r['metrics'].get(m, float('nan')):.4f}" for m in metrics], f"{r['parameters']:,}",
                 f"{r['size_bytes'] / 1e6:.3f}", *[f"{r['latency_ms'][b]:.3f}" for b in batches],
                 *[f"{r['speedup'][b]:.2f}" for b in batches]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(name: str, table: dict) -> list[str]:
    """The issue's figures, read off the table."""
    rows = {(r["variant"], r["runtime"]): r for r in table["rows"]}
    torch32, ort32, int8 = rows[("fp32", "PyTorch eager")], rows.get(("fp32", "ONNX Runtime")), rows.get(("int8", "ONNX Runtime"))
    key = next(k for k in torch32["metrics"] if k != "loss")
    out = []
    if ort32:
        out.append(f"ONNX Runtime fp32 / PyTorch eager latency at batch 1: {ort32['latency_ms']['1'] / torch32['latency_ms']['1']:.3f} (goal <= 0.5)")
    if int8 and ort32:
        out.append(f"int8: {key} {100 * (torch32['metrics'][key] - int8['metrics'][key]):+.2f} points lost (goal <= 0.5), "
                   f"file {ort32['size_bytes'] / int8['size_bytes']:.2f}x smaller (goal >= 3.5), "
                   f"{ort32['latency_ms']['32'] / int8['latency_ms']['32']:.2f}x ONNX Runtime fp32's speed at batch 32, "
                   f"val/test loss {100 * (int8['metrics']['loss'] / ort32['metrics']['loss'] - 1):+.1f}%")
    pruned = rows.get(("pruned50", "PyTorch eager"))
    if pruned:
        out.append(f"pruned50: {key} {100 * (torch32['metrics'][key] - pruned['metrics'][key]):+.2f} points lost (goal <= 1), "
                   f"{torch32['latency_ms']['64'] / pruned['latency_ms']['64']:.2f}x faster at batch 64 in PyTorch (goal >= 1.5), "
                   f"{pruned['parameters'] / torch32['parameters']:.2f} of the parameters")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PLANS), choices=list(PLANS))
    parser.add_argument("--set", action="append", default=[], metavar="MODEL:KEY=VALUE", help="a training override for one model")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--runs-dir", default="/tmp/compress-bench")
    parser.add_argument("--reuse", action="store_true", help="keep a trained run already in --runs-dir")
    args = parser.parse_args()
    print(f"# {describe_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads; repeats {args.repeats}")
    for name in args.models:
        run = Path(args.runs_dir) / name
        sets = [s.split(":", 1)[1] for s in args.set if s.startswith(name + ":")]
        start = time.perf_counter()
        if not (args.reuse and (run / "metrics.json").is_file()):
            pipeline.train(ROOT / "examples" / f"{name}.yaml", overrides=[f"runs_dir={args.runs_dir}", "train.progress=false", *sets],
                           overwrite=True)
        trained = time.perf_counter() - start
        start = time.perf_counter()
        table = compression.compress(run, **PLANS[name], overwrite=True, repeats=args.repeats, batches=BATCHES)
        print(f"\n## {name} (overrides: {' '.join(sets) or 'none'}; trained in {trained:.0f} s, compressed and measured in "
              f"{time.perf_counter() - start:.0f} s; {table['split']} split)\n")
        print(markdown(table))
        for line in goals(name, table):
            print(f"- {line}")


if __name__ == "__main__":
    main()
