"""Re-run every figure the README quotes and print it beside the README's own.

Each figure in README.md sits between markers, invisible on the rendered page:

    <!--fig:sms-lstm.accuracy-->98.4%<!--/fig-->

This script trains the example behind each figure (seed 0, as the README says), formats the measured
value the way the README writes it, and prints a table: figure, README, measured, same or not.
`--update` writes the measured values into README.md (atomically). Training times depend on the
machine and on what else runs on it: run this alone, with nothing else on the CPU.

Run (from the repository root; about 7 minutes on 2 cores, the MNIST and GPT recipes take most of it):
    .venv/bin/python benchmarks/readme_figures.py
    .venv/bin/python benchmarks/readme_figures.py --only sms-spam-lstm,wine-regression
    .venv/bin/python benchmarks/readme_figures.py --update          # then review `git diff README.md`
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = re.compile(r"<!--fig:(?P<id>[\w.-]+)-->(?P<text>.*?)<!--/fig-->")


@dataclass
class Figure:
    id: str  # '<example>.<what>'; the example is the config's file name
    value: Callable[[dict, dict], float]  # (metrics.json, meta.json) -> the number
    fmt: Callable[[float], str]  # the number as the README writes it


def pct(digits: int) -> Callable[[float], str]:
    return lambda v: f"{100 * v:.{digits}f}%"


def dec(digits: int) -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f}"


def seconds(v: float) -> str:
    return f"{v:.0f} s"


def thousands(v: float) -> str:
    return f"{round(v, -2):,.0f}"


def test(key: str) -> Callable[[dict, dict], float]:
    return lambda metrics, meta: metrics["test"][key]


def wall(metrics: dict, meta: dict) -> float:
    return meta["wall_time"]


FIGURES = [
    Figure("digits-cnn.accuracy", test("accuracy"), pct(1)),
    Figure("digits-cnn.train_s", wall, seconds),
    Figure("mnist-cnn.accuracy", test("accuracy"), pct(2)),
    Figure("mnist-cnn.train_s", wall, seconds),
    Figure("adult-mlp.accuracy", test("accuracy"), pct(1)),
    Figure("adult-mlp.auroc", test("auroc"), dec(3)),
    Figure("adult-mlp.train_s", wall, seconds),
    Figure("shakespeare-gpt.val_loss", lambda metrics, meta: metrics["val"]["loss"], dec(3)),
    Figure("shakespeare-gpt.train_s", wall, seconds),
    Figure("shakespeare-gpt.tokens_per_s", lambda metrics, meta: meta["tokens_per_s"], thousands),
    Figure("sms-spam-transformer.accuracy", test("accuracy"), pct(1)),
    Figure("sms-spam-transformer.f1_macro", test("f1_macro"), dec(3)),
    Figure("sms-spam-transformer.train_s", wall, seconds),
    Figure("sms-spam-lstm.accuracy", test("accuracy"), pct(1)),
    Figure("sms-spam-lstm.f1_macro", test("f1_macro"), dec(3)),
    Figure("sms-spam-lstm.train_s", wall, seconds),
    Figure("wine-regression.r2", test("r2"), dec(2)),
    Figure("wine-regression.mae", test("mae"), dec(2)),
    Figure("wine-regression.train_s", wall, seconds),
]


def train_example(example: str, runs: Path) -> tuple[dict, dict]:
    import forgeml

    run = forgeml.train(ROOT / "examples" / f"{example}.yaml",
                        overrides={"runs_dir": str(runs), "train.progress": False, "train.tensorboard": False})
    return json.loads((run / "metrics.json").read_text()), json.loads((run / "meta.json").read_text())


def readme_values(text: str) -> dict[str, str]:
    return {m["id"]: m["text"] for m in MARK.finditer(text)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated examples to run (default: every example the README quotes)")
    parser.add_argument("--update", action="store_true", help="write the measured values into README.md")
    args = parser.parse_args()

    text = README.read_text()
    quoted = readme_values(text)
    known = {f.id for f in FIGURES}
    unknown = sorted(set(quoted) - known)
    if unknown:
        print(f"README.md marks figures this script does not know: {', '.join(unknown)}", file=sys.stderr)
        return 2
    examples = list(dict.fromkeys(f.id.split(".")[0] for f in FIGURES))
    if args.only:
        wanted = args.only.split(",")
        bad = [e for e in wanted if e not in examples]
        if bad:
            print(f"--only: {', '.join(bad)} not among {', '.join(examples)}", file=sys.stderr)
            return 2
        examples = wanted
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {describe_cpu()}, Python {platform.python_version()}")

    measured: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for example in examples:
            print(f"training {example} ...", flush=True)
            metrics, meta = train_example(example, Path(tmp) / "runs")
            for fig in FIGURES:
                if fig.id.startswith(example + "."):
                    measured[fig.id] = fig.fmt(fig.value(metrics, meta))

    width = max(len(i) for i in measured)
    print(f"\n{'figure':<{width}}  {'README':>10}  {'measured':>10}")
    for fig_id, value in measured.items():
        shown = quoted.get(fig_id, "(not marked)")
        same = "" if shown == value else "  <- differs" if fig_id in quoted else ""
        print(f"{fig_id:<{width}}  {shown:>10}  {value:>10}{same}")
    if args.update:
        new = MARK.sub(lambda m: f"<!--fig:{m['id']}-->{measured.get(m['id'], m['text'])}<!--/fig-->", text)
        from forgeml.atomic import write_text

        write_text(README, new)
        print(f"\nREADME.md updated ({sum(quoted.get(k) != v for k, v in measured.items() if k in quoted)} figures changed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
