"""PyTorch eager against ONNX Runtime fp32: latency of the same exported network at batch 1 and 64.

    .venv/bin/python benchmarks/export_latency.py [--steps 30] [--repeats 200] [--threads 2]

Trains the MNIST CNN and the adult MLP briefly (latency does not depend on how well a model is trained),
exports each with `forgeml export`, then times both runtimes on the same held-out batch in one process,
alternating them, and prints the median per call and the ratio. Threads are set the same for both.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import forgeml
from forgeml.compress.measure import median_ms  # the same timing forgeml compress's table uses
from forgeml.export.onnx import export_onnx, held_out_inputs, open_session
from forgeml.training.runtime import describe_cpu

MODELS = {"mnist-cnn": ["data.limit=2000"], "adult-mlp": []}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30, help="training steps per model (default 30)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per runtime and batch (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both runtimes (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {args.threads}, CPU flags: {describe_cpu()}")
    print(f"{'model':<10} {'batch':>5} {'torch eager ms':>15} {'ORT fp32 ms':>12} {'ORT / torch':>12}")
    with tempfile.TemporaryDirectory() as runs:
        for name, extra in MODELS.items():
            sets = {"runs_dir": runs, "train.max_steps": args.steps, "train.progress": False, "train.tensorboard": False}
            sets.update(dict(s.split("=", 1) for s in extra))
            run = forgeml.train(f"examples/{name}.yaml", sets)
            export_onnx(run)
            model = forgeml.load(run)
            session = open_session(Path(run) / "model.onnx", threads=args.threads)
            x, _ = held_out_inputs(model.config, model.features, 64)
            for batch in (1, 64):
                xb = {k: v[:batch] for k, v in x.items()}
                feed = {k: v.numpy() for k, v in xb.items()}

                def eager(xb=xb, net=model.model):
                    with torch.inference_mode():
                        net(xb)

                def ort(feed=feed, session=session):
                    session.run(None, feed)

                t_torch, t_ort = median_ms(eager, args.repeats, warmup=10), median_ms(ort, args.repeats, warmup=10)
                print(f"{name:<10} {batch:>5} {t_torch:>15.3f} {t_ort:>12.3f} {t_ort / t_torch:>12.2f}")


if __name__ == "__main__":
    main()
