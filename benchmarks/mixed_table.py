"""The mixed table: text + tabular columns in one forgeml model, against each kind alone and scikit-learn.

    PYTHONPATH=src python benchmarks/mixed_table.py [--data PATH] [--epochs 2] [--text-encoder rnn|transformer]
                                                     [--max-length 100] [--models mixed text table hgb tfidf]

The full Women's E-Commerce Clothing Reviews table (23,486 rows, read straight from the shipped .csv.zip;
see ../shared/data/clothing_reviews/SOURCE.md). Target `Recommended IND` (82% positive); inputs Title,
Review Text, Age, Positive Feedback Count, Division/Department/Class Name. Dropped: Rating (it nearly
determines the target), Clothing ID and the file's unnamed row index.

Every model sees the same rows: forgeml's seeded, stratified 70/10/20 split (data.split seed 0). The forgeml
models train through the config path, forgeml.train(dict) -> run folder, and their figures are read back
from the run's metrics.json and meta.json: what a user gets. The scikit-learn bars get their rows from
forgeml's own loader (forgeml.data.prepare.load_columns), so the split is the same by construction; they
fit on train + val (they have no early stopping to feed), and are scored on the same test rows.

- mixed: model.name composite: an encoder per text column (rnn or transformer) + the tabular encoder
  (category embeddings), joined by a concat combiner with an MLP.
- text:  the same text encoders and combiner, the tabular columns dropped.
- table: model.name mlp over the tabular columns alone.
- hgb:   HistGradientBoostingClassifier on the tabular columns (categories as native categoricals).
- tfidf: LogisticRegression on TF-IDF of Title and Review Text (word 1-2 grams) + one-hot categories +
         standardised numbers. LR rather than HGB here: HGB needs dense input, and a dense 16k x 50k
         TF-IDF matrix does not fit a small machine; LR on sparse TF-IDF is the usual strong text bar.

Test figures: accuracy, macro-F1, F1 of each class, AUROC; training seconds (wall, and this process's CPU
seconds, which a busy shared machine inflates less), trainable parameters (forgeml) or model size in
coefficients / tree nodes (scikit-learn).
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

from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "clothing_reviews" / "womens_clothing_ecommerce_reviews.csv.zip"
TARGET = "Recommended IND"
TEXT = ["Title", "Review Text"]
NUMBERS = ["Age", "Positive Feedback Count"]
CATEGORIES = ["Division Name", "Department Name", "Class Name"]
ALWAYS_DROPPED = ["Rating", "Clothing ID", "Unnamed: 0"]  # Rating leaks the target; the other two are ids


# ------------------------------------------------------------------------------------------------ configs
def base_config(args: argparse.Namespace, runs: Path, drop: list[str], inputs: list[str]) -> dict:
    kinds = {**dict.fromkeys(TEXT, "text"), **dict.fromkeys(NUMBERS, "numeric"), **dict.fromkeys(CATEGORIES, "category")}
    return {
        "name": "clothing-bench",
        "runs_dir": str(runs),
        "data": {
            "path": str(args.data),
            "target": TARGET,
            "drop": ALWAYS_DROPPED + drop,
            "features": {c: kinds[c] for c in inputs},
            "text": {"max_length": args.max_length, "vocab_size": args.vocab_size},
            "split": {"val": 0.1, "test": 0.2, "seed": args.split_seed},
        },
        "train": {"epochs": args.epochs, "batch_size": 64, "lr": args.lr, "monitor": "val.f1_macro", "seed": args.seed,
                  "progress": False, "tensorboard": False},
    }


def text_encoder(args: argparse.Namespace) -> dict:
    if args.text_encoder == "rnn":
        return {"name": "rnn", "embed_dim": args.embed_dim, "hidden": args.embed_dim, "pooling": "mean"}
    return {"name": "transformer", "d_model": args.embed_dim, "heads": 4, "layers": 2, "pooling": "mean"}


def forgeml_config(kind: str, args: argparse.Namespace, runs: Path) -> dict:
    tabular = NUMBERS + CATEGORIES
    if kind == "mixed":
        cfg = base_config(args, runs, [], TEXT + tabular)
        cfg["model"] = {"name": "composite", "encoders": {"text": text_encoder(args), "tabular": {"name": "tabular", "embed_dim": 8}},
                        "combiner": {"name": "concat", "hidden": [64], "dropout": 0.2}}
    elif kind == "text":
        cfg = base_config(args, runs, tabular, TEXT)
        cfg["model"] = {"name": "composite", "encoders": {"text": text_encoder(args)},
                        "combiner": {"name": "concat", "hidden": [64], "dropout": 0.2}}
    else:
        cfg = base_config(args, runs, TEXT, tabular)
        cfg["model"] = {"name": "mlp", "hidden": [64, 32], "dropout": 0.2}
        cfg["train"]["epochs"] = max(args.epochs, 20)  # a small net on 5 columns: more passes cost little
    return cfg


def run_forgeml(kind: str, args: argparse.Namespace, runs: Path) -> dict:
    import forgeml

    wall, cpu = time.perf_counter(), time.process_time()
    run = forgeml.train(forgeml_config(kind, args, runs), name=f"clothing-{kind}", overwrite=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    test = json.loads((run / "metrics.json").read_text())["test"]
    meta = json.loads((run / "meta.json").read_text())
    return {"acc": test["accuracy"], "f1_macro": test["f1_macro"], "f1_pos": test["per_class"]["1"]["f1"],
            "f1_neg": test["per_class"]["0"]["f1"], "auroc": test["auroc"], "wall": meta["wall_time"], "total": wall,
            "cpu": cpu, "size": f"{meta['parameters']:,} params", "n_test": test["n"]}


# ------------------------------------------------------------------------------------------------ scikit-learn bars
def same_rows(args: argparse.Namespace):
    """train+val and test as pandas frames, from forgeml's own loader and split (the same rows as the runs)."""
    import pandas as pd

    from forgeml.config import load_config
    from forgeml.data.prepare import load_columns

    cfg = load_config(base_config(args, Path(tempfile.gettempdir()), [], TEXT + NUMBERS + CATEGORIES))
    cols = load_columns(cfg.data)
    frames = {k: pd.DataFrame({c: cols[k].data[c] for c in TEXT + NUMBERS + CATEGORIES + [TARGET]}) for k in cols}
    fit = pd.concat([frames["train"], frames["val"]], ignore_index=True)
    return fit, frames["test"]


def labels(frame) -> np.ndarray:
    return np.array([int(float(v)) for v in frame[TARGET]])  # the loader keeps the target as read (1.0 or "1")


def scores(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    pred = (p >= 0.5).astype(int)
    return {"acc": accuracy_score(y, pred), "f1_macro": f1_score(y, pred, average="macro"), "f1_pos": f1_score(y, pred, pos_label=1),
            "f1_neg": f1_score(y, pred, pos_label=0), "auroc": roc_auc_score(y, p), "n_test": len(y)}


def run_hgb(fit, test, seed: int) -> dict:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    def table(frame):
        out = frame[NUMBERS].astype(float)
        for c in CATEGORIES:  # the training set's levels; missing, or unseen in training -> "(missing)"
            levels = sorted(set(fit[c].fillna("(missing)")))
            values = frame[c].where(frame[c].isin(levels), "(missing)")
            out[c] = pd.Categorical(values, categories=levels)
        return out

    wall, cpu = time.perf_counter(), time.process_time()
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed).fit(table(fit), labels(fit))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    nodes = sum(len(t.nodes) for stage in model._predictors for t in stage)
    return {**scores(labels(test), model.predict_proba(table(test))[:, 1]), "wall": wall, "total": wall, "cpu": cpu,
            "size": f"{model.n_iter_} trees, {nodes:,} nodes"}


def run_tfidf(fit, test, seed: int) -> dict:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def text_of(frame):
        frame = frame.copy()
        for c in TEXT:
            frame[c] = frame[c].fillna("").astype(str)
        for c in CATEGORIES:
            frame[c] = frame[c].fillna("(missing)").astype(str)
        return frame

    columns = ColumnTransformer([
        ("title", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), "Title"),
        ("review", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), "Review Text"),
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMBERS),
        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
    ])
    model = make_pipeline(columns, LogisticRegression(C=4.0, max_iter=2000, random_state=seed))
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(text_of(fit), labels(fit))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {**scores(labels(test), model.predict_proba(text_of(test))[:, 1]), "wall": wall, "total": wall, "cpu": cpu,
            "size": f"{model[-1].coef_.size:,} coefficients"}


# ------------------------------------------------------------------------------------------------ main
NAMES = {
    "mixed": "forgeml composite: text ({enc}) + tabular, concat",
    "text": "forgeml text only ({enc})",
    "table": "forgeml tabular only (mlp)",
    "hgb": "sklearn HistGradientBoosting, tabular",
    "tfidf": "sklearn LogisticRegression, TF-IDF text + tabular",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the clothing reviews table (the shipped .csv.zip)")
    ap.add_argument("--models", nargs="+", default=list(NAMES), choices=list(NAMES))
    ap.add_argument("--epochs", type=int, default=2, help="forgeml text models (the table-only mlp gets at least 20)")
    ap.add_argument("--text-encoder", choices=["rnn", "transformer"], default="rnn")
    ap.add_argument("--embed-dim", type=int, default=64, help="token embedding and rnn hidden / transformer d_model")
    ap.add_argument("--max-length", type=int, default=100, help="tokens kept per text (data.text.max_length)")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--seed", type=int, default=0, help="train.seed of the forgeml runs, random_state of sklearn's")
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args()
    if not args.data.exists():
        raise SystemExit(f"--data {args.data}: no such file (the full table lives in ../shared/data/clothing_reviews)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {describe_cpu()}, Python {platform.python_version()}")
    print(f"data {args.data.name}; forgeml: {args.epochs} epochs, text encoder {args.text_encoder}, embed {args.embed_dim}, "
          f"max_length {args.max_length}, vocab {args.vocab_size}, lr {args.lr}, seed {args.seed}, split seed {args.split_seed}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fit = test = None
        for kind in args.models:
            print(f"training {kind} ...", flush=True)
            if kind in ("mixed", "text", "table"):
                r = run_forgeml(kind, args, Path(tmp))
            else:
                if fit is None:
                    fit, test = same_rows(args)
                r = run_hgb(fit, test, args.seed) if kind == "hgb" else run_tfidf(fit, test, args.seed)
            rows.append((NAMES[kind].format(enc=args.text_encoder), r))
            print(f"  {kind}: test accuracy {r['acc']:.4f}, macro-F1 {r['f1_macro']:.4f}, AUROC {r['auroc']:.4f}", flush=True)
    print(f"\ntest rows: {rows[0][1]['n_test']} (majority class 'recommended' = 82%); F1(1) = recommended, F1(0) = not")
    print("| model | accuracy | macro-F1 | F1(1) | F1(0) | AUROC | train s (wall) | CPU s | size |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['acc'] * 100:.1f}% | {r['f1_macro']:.3f} | {r['f1_pos']:.3f} | {r['f1_neg']:.3f} | {r['auroc']:.3f} "
              f"| {r['wall']:.0f} | {r['cpu']:.0f} | {r['size']} |")
    print("forgeml wall = the Trainer's wall_time in meta.json; CPU s = this process's CPU seconds for the whole "
          "forgeml.train call (reading, tokenizing, training, evaluating, report) or the sklearn fit.")


if __name__ == "__main__":
    main()
