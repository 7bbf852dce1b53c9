"""Knowledge distillation: the teacher, the student trained alone, and the same student distilled from the teacher,
with the same epochs, batches and learning rate: test accuracy per seed, and the mean.
    adult:  examples/adult-mlp.yaml (hidden [128, 64]) -> examples/adult-mlp-student.yaml (hidden [16])
    mnist:  examples/mnist-cnn.yaml (32/64 channels, 128 hidden) -> examples/mnist-cnn-student.yaml (8/16, 64)

    PYTHONPATH=src python benchmarks/distill.py [--task adult|mnist] [--seeds 0 1 2] [--temperature 4] [--alpha 0.5]
        [--set train.epochs=4] [--teacher RUN]    # --teacher: a trained teacher to reuse (one seed)

Each seed S runs, in order (sequential: on a shared machine run it alone; the figures do not depend on load):
    pipeline.train(examples/adult-mlp.yaml, train.seed=S)                       -> teacher
    pipeline.train(examples/adult-mlp-student.yaml, train.seed=S)               -> student alone
    pipeline.distill(teacher, examples/adult-mlp-student.yaml + train.seed=S)   -> student distilled
The data split is the examples' own (data.split.seed 0) for every run; the test split is adult.test (16,281 rows).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from forgeml import pipeline
from forgeml.bundle import Bundle
from forgeml.config import load_config
from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"adult": ("adult-mlp", "adult-mlp-student"), "mnist": ("mnist-cnn", "mnist-cnn-student")}


def accuracy(run: Path) -> float:
    return 100 * Bundle(run).read_json("metrics.json")["test"]["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--task", choices=list(TASKS), default="adult")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for all three runs")
    ap.add_argument("--teacher", help="a trained teacher run to reuse instead of training one (with one seed)")
    args = ap.parse_args()
    TEACHER, STUDENT = (ROOT / "examples" / f"{name}.yaml" for name in TASKS[args.task])
    quiet = ["train.progress=false", "train.tensorboard=false", *args.set]
    rows, params = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            sets = [f"runs_dir={tmp}", f"train.seed={seed}", *quiet]
            started = time.perf_counter()
            teacher = Path(args.teacher) if args.teacher else pipeline.train(load_config(TEACHER, sets), name=f"teacher-s{seed}")
            alone = pipeline.train(load_config(STUDENT, sets), name=f"alone-s{seed}")
            distilled = pipeline.distill(teacher, load_config(STUDENT, sets), temperature=args.temperature, alpha=args.alpha,
                                         name=f"distilled-s{seed}", overwrite=True)
            variant = Bundle(distilled).meta()["variant"]
            params = {"teacher": variant["params_teacher"], "student": variant["params_student"]}
            rows.append((seed, accuracy(teacher), accuracy(alone), accuracy(distilled), time.perf_counter() - started))
            print(f"seed {seed}: teacher {rows[-1][1]:.2f}  alone {rows[-1][2]:.2f}  distilled {rows[-1][3]:.2f}  "
                  f"({rows[-1][4]:.0f} s)", file=sys.stderr, flush=True)
    print(f"# {args.task} ({' '.join(args.set) or 'the examples as shipped'}): teacher {params['teacher']:,} parameters, student {params['student']:,} "
          f"({params['student'] / params['teacher']:.1%}); T={args.temperature:g}, alpha={args.alpha:g}; {describe_cpu()}")
    print("| seed | teacher | student alone | student distilled | distilled - alone | teacher - distilled |")
    print("|---|---|---|---|---|---|")
    for seed, t, a, d, _ in rows:
        print(f"| {seed} | {t:.2f} | {a:.2f} | {d:.2f} | {d - a:+.2f} | {t - d:+.2f} |")
    t, a, d = (np.mean([r[i] for r in rows]) for i in (1, 2, 3))
    print(f"| mean | {t:.2f} | {a:.2f} | {d:.2f} | {d - a:+.2f} | {t - d:+.2f} |")


if __name__ == "__main__":
    main()
