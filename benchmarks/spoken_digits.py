"""Spoken digits (FSDD): test accuracy of forgeml's audio CNN and frames encoder against logistic regression.

    PYTHONPATH=src python benchmarks/spoken_digits.py [--epochs 20] [--speakers george jackson lucas nicolas theo yweweler]
                                                      [--models cnn frames] [--splits usual speaker]

Data: the 3,000 clips of ../shared/data/spoken_digits (data/spoken_digits/fsdd_*.csv, make_tables.py). Two splits:
- usual: recordings 0-4 of every speaker and digit are the test set (300 clips), 5-49 training (the upstream
  README's split); the same speakers are in both.
- speaker: one speaker's 500 clips are the test set and the other five train (leave one speaker out), for each
  speaker of --speakers; the mean over them is printed too. All six speakers are male, and each says each digit
  50 times, so this is the harder, speaker-independent figure.

Models: the two example configs (examples/spoken-digits-cnn.yaml, examples/spoken-digits-frames.yaml) trained
through forgeml's pipeline.train (no report) with --epochs (10% of the training clips for validation, the best val loss kept), and two
plain baselines in the same run on the same clips: scikit-learn's LogisticRegression on the mean and standard
deviation over time of each log-mel band (forgeml's feature, 80 numbers per clip), and on the mean and standard
deviation of 20 MFCCs (librosa, when installed). Published: GLaSS-CNN reports 99.3% on FSDD (Engineering Research
Express 7(4) 045394, 2025; https://ouci.dntb.gov.ua/works/levprZK9), on its own split.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import forgeml
from forgeml import pipeline
from forgeml.config import load_config
from forgeml.data.features.audio import AudioFeature
from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "data" / "spoken_digits"
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
PUBLISHED = 99.3  # GLaSS-CNN, FSDD, noise-free (see the docstring)


def read_rows() -> list[dict]:
    rows = []
    for name in ("fsdd_train.csv", "fsdd_test.csv"):
        with open(TABLES / name) as f:
            for r in csv.DictReader(f):
                rows.append({**r, "path": str((TABLES / r["path"]).resolve())})
    return rows


def write(path: Path, rows: list[dict]) -> str:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["path", "label", "speaker", "index"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return str(path)


def splits(rows: list[dict], which: list[str], speakers: list[str], folder: Path) -> list[tuple[str, str, str]]:
    """(name, train table, test table) per split asked for."""
    out = []
    if "usual" in which:
        out.append(("usual (recordings 0-4)", write(folder / "usual_train.csv", [r for r in rows if int(r["index"]) >= 5]),
                    write(folder / "usual_test.csv", [r for r in rows if int(r["index"]) < 5])))
    if "speaker" in which:
        for s in speakers:
            out.append((f"speaker {s} held out", write(folder / f"no_{s}_train.csv", [r for r in rows if r["speaker"] != s]),
                        write(folder / f"no_{s}_test.csv", [r for r in rows if r["speaker"] == s])))
    return out


def baseline_features(rows: list[dict]) -> dict[str, np.ndarray]:
    """Per clip: mean and std over time of forgeml's log-mel bands; of 20 librosa MFCCs when librosa is there."""
    cfg = load_config(ROOT / "examples" / "spoken-digits-cnn.yaml").data.audio
    feature = AudioFeature("path", cfg)
    spec = feature.spectrograms(np.array([r["path"] for r in rows], dtype=object))[:, 0]  # (N, M, T)
    out = {"logreg on mean/std log-mel": np.concatenate([spec.mean(-1), spec.std(-1)], axis=1)}
    try:
        import librosa
    except ImportError:
        return out
    mfcc = []
    for r in rows:
        w = feature.wave(r["path"], r["path"])
        m = librosa.feature.mfcc(y=w, sr=cfg.sample_rate, n_mfcc=20, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels)
        mfcc.append(np.concatenate([m.mean(-1), m.std(-1)]))
    out["logreg on mean/std MFCC (librosa)"] = np.stack(mfcc)
    return out


def logreg(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
    model.fit(x[train], y[train])
    return float((model.predict(x[test]) == y[test]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--speakers", nargs="+", default=SPEAKERS, choices=SPEAKERS)
    ap.add_argument("--models", nargs="+", default=["cnn", "frames"], choices=["cnn", "frames"])
    ap.add_argument("--splits", nargs="+", default=["usual", "speaker"], choices=["usual", "speaker"])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    print(f"{describe_cpu()}, Python {platform.python_version()}, forgeml {forgeml.__version__}")
    rows = read_rows()
    labels = np.array([r["label"] for r in rows])
    where = {r["path"]: i for i, r in enumerate(rows)}
    t = time.time()
    base = baseline_features(rows)
    print(f"baseline features of {len(rows)} clips: {time.time() - t:.1f} s")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, train_csv, test_csv in splits(rows, args.splits, args.speakers, Path(tmp)):
            with open(train_csv) as f:
                train = np.array([where[r["path"]] for r in csv.DictReader(f)])
            with open(test_csv) as f:
                test = np.array([where[r["path"]] for r in csv.DictReader(f)])
            res = results.setdefault(name, {})
            for label, x in base.items():
                res[label] = logreg(x, labels, train, test)
            for model in args.models:
                sets = {"data.path": train_csv, "data.test_path": test_csv, "train.epochs": args.epochs, "train.progress": False,
                        "train.tensorboard": False, "eval.explain": False, "runs_dir": str(Path(tmp) / "runs")}
                if args.threads:
                    sets["train.threads"] = args.threads
                t = time.time()
                run = pipeline.train(ROOT / "examples" / f"spoken-digits-{model}.yaml", overrides=sets,
                                    name=f"{model}-{len(res)}", report=False)
                metrics = json.loads((Path(run) / "metrics.json").read_text())
                res[f"forgeml {model}"] = metrics["test"]["accuracy"]
                print(f"  {name}: {model} {100 * res[f'forgeml {model}']:.1f}% in {time.time() - t:.0f} s", flush=True)
    methods = list(next(iter(results.values())))
    print(f"\ntest accuracy, %   (epochs {args.epochs}; published best: {PUBLISHED}% GLaSS-CNN, its own split)")
    print(f"{'split':34s}" + "".join(f"{m[:26]:>28s}" for m in methods))
    for name, res in results.items():
        print(f"{name:34s}" + "".join(f"{100 * res[m]:28.1f}" for m in methods))
    held = [res for name, res in results.items() if name.startswith("speaker")]
    if len(held) > 1:
        print(f"{'held-out speaker, mean of ' + str(len(held)):34s}" + "".join(f"{100 * np.mean([r[m] for r in held]):28.1f}" for m in methods))


if __name__ == "__main__":
    main()
