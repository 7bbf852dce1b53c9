"""GoEmotions (28 emotion labels, a set per comment): forgeml's multi-label head against TF-IDF + logistic regression.

What it measures, on the FULL official splits (43,410 train / 5,426 dev / 5,427 test):
  1. TF-IDF (word 1-2 grams) + one-vs-rest logistic regression (scikit-learn), per-label thresholds tuned on dev;
  2. a forgeml text model: TextFeature word ids -> a small encoder (a mean of word embeddings and a ReLU
     layer, fastText's shape; or a BiGRU with --encoder bigru) -> the multilabel head (BCE), trained by forgeml's Trainer (best epoch by dev loss),
     per-label thresholds tuned on dev.
Both report test macro-F1 and micro-F1 at 0.5 and at the tuned thresholds, beside the published figure:
BERT-base fine-tuned, macro-F1 0.46 on test (Demszky et al., ACL 2020). Every threshold is chosen on dev
only; test is read once, at the end.

Run (from the repository root):
    PYTHONPATH=src .venv/bin/python benchmarks/goemotions.py                      # both, a few minutes on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/goemotions.py --skip-tfidf --encoder bigru --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from forgeml.data.bucket import BucketBatcher
from forgeml.data.features.multilabel import MultiLabelTarget
from forgeml.data.features.text import TextFeature
from forgeml.evaluation.multilabel import MultiLabelMetrics, tune_thresholds
from forgeml.models.heads.multilabel import build as build_head
from forgeml.training.trainer import Trainer

BERT_MACRO_F1 = 0.46  # Demszky et al. 2020, abstract: BERT-base, macro-F1 over the 28 labels on test.tsv


def read_split(folder: Path, split: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{split}.tsv", sep="\t", header=None, names=["text", "labels", "id"],
                       keep_default_na=False, dtype=str)


def scores(labels: list[str], probs: torch.Tensor, y: torch.Tensor, thresholds: list[float] | None) -> dict:
    m = MultiLabelMetrics(labels, thresholds, full=False)
    m.update(torch.logit(probs.clamp(1e-7, 1 - 1e-7)), y)  # the metrics take logits, as a network gives them
    return m.compute()


# ------------------------------------------------------------------------------------- TF-IDF + LR
def tfidf_baseline(train, dev, test, target: MultiLabelTarget, y_dev, y_test, y_train) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    started = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000)
    x_train = vec.fit_transform(train["text"])
    clf = OneVsRestClassifier(LogisticRegression(C=4.0, solver="liblinear", max_iter=1000)).fit(x_train, y_train.numpy())
    p_dev = torch.from_numpy(clf.predict_proba(vec.transform(dev["text"]))).float()
    p_test = torch.from_numpy(clf.predict_proba(vec.transform(test["text"]))).float()
    thresholds = tune_thresholds(p_dev, y_dev)
    return {"name": "TF-IDF 1-2 grams + one-vs-rest logistic regression (sklearn)", "seconds": time.perf_counter() - started,
            "fixed": scores(target.labels, p_test, y_test, None), "tuned": scores(target.labels, p_test, y_test, thresholds),
            "params": f"{x_train.shape[1]:,} features x 28"}


# ----------------------------------------------------------------------------------- forgeml model
class BiGRUEncoder(nn.Module):
    """Token ids (B, T) -> (B, 2H): embeddings, a bidirectional GRU over the true lengths, max-pooled over time."""

    def __init__(self, vocab: int, embed: int, hidden: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out_dim = 2 * hidden

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        mask = ids != 0  # (B, T)
        lengths = mask.sum(1).clamp(min=1).cpu()  # pack needs host lengths: one small copy per batch
        x = self.drop(self.embed(ids))  # (B, T, E)
        out, _ = self.gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, 2H)
        pooled = out.masked_fill(~mask[:, :, None], float("-inf")).max(1).values  # (B, 2H)
        return self.drop(pooled)


class BagEncoder(nn.Module):
    """Token ids (B, T) -> (B, E): the mean of the non-padding embeddings (fastText's encoder), then a ReLU layer."""

    def __init__(self, vocab: int, embed: int, hidden: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.proj = nn.Sequential(nn.Linear(embed, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.out_dim = hidden

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).unsqueeze(-1).float()  # (B, T, 1)
        mean = (self.embed(ids) * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, E)
        return self.proj(mean)


class TextMultiLabel(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids))  # (B, L) logits


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    lengths = (x != 0).sum(1)
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch, : int(lengths[i : i + batch].max())]  # trim to the batch's longest text
        out.append(torch.sigmoid(model(xb.to(device))).cpu())
    return torch.cat(out)


def forgeml_model(args, train, dev, test, target: MultiLabelTarget, y_train, y_dev, y_test) -> dict:
    started = time.perf_counter()
    text = TextFeature("text", max_length=args.max_length,
                       settings={"tokenizer": "word", "vocab_size": args.vocab, "min_count": 2}).fit(train["text"].to_numpy())
    x_train, x_dev, x_test = (torch.from_numpy(text.transform(d["text"].to_numpy())) for d in (train, dev, test))
    torch.manual_seed(args.seed)
    Encoder = BiGRUEncoder if args.encoder == "bigru" else BagEncoder
    encoder = Encoder(text.vocab_size, args.embed, args.hidden, args.dropout)
    model = TextMultiLabel(encoder, build_head({"pos_weight": args.pos_weight}, encoder.out_dim, target))
    n_params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as run_dir:  # the Trainer keeps the best epoch's weights there
        trainer = Trainer(model, model.head.loss, optimizer="adamw", lr=args.lr, weight_decay=0.01, epochs=args.epochs,
                          batch_size=args.batch_size, progress=False, tensorboard=False, seed=args.seed, device=args.device,
                          threads=args.threads, run_dir=run_dir, monitor="val.loss", checkpoint_every_minutes=None,
                          metrics=lambda: MultiLabelMetrics(target.labels, full=False))
        batches = BucketBatcher(x_train, y_train, args.batch_size, seed=args.seed)  # similar lengths together: little padding
        result = trainer.fit(batches, (x_dev, y_dev))
    p_dev, p_test = predict(model, x_dev), predict(model, x_test)
    thresholds = tune_thresholds(p_dev, y_dev)
    target.set_thresholds(thresholds)  # what a bundle's features.json would keep
    return {"name": f"forgeml {args.encoder} encoder + multilabel head (pos_weight {args.pos_weight})",
            "seconds": time.perf_counter() - started, "fixed": scores(target.labels, p_test, y_test, None),
            "tuned": scores(target.labels, p_test, y_test, thresholds), "params": f"{n_params:,} parameters",
            "weights": result.weights, "train_s": result.wall_time}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="/work/shared/data/multilabel",
                        help="folder with train.tsv, dev.tsv, test.tsv and emotions.txt (the official GoEmotions splits)")
    parser.add_argument("--encoder", choices=["bag", "bigru"], default="bag",
                        help="bag (default) trains in minutes on 2 CPU cores; bigru is slower there (use a GPU: --device cuda)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--embed", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--pos-weight", choices=["none", "balanced", "sqrt"], default="none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only this many training rows (a quick check)")
    parser.add_argument("--skip-tfidf", action="store_true")
    args = parser.parse_args()

    folder = Path(args.data)
    train, dev, test = (read_split(folder, s) for s in ("train", "dev", "test"))
    if args.limit:
        train = train.sample(n=args.limit, random_state=args.seed).reset_index(drop=True)
    target = MultiLabelTarget("labels", separator=",", names_path=str(folder / "emotions.txt")).fit(train["labels"].to_numpy())
    y_train, y_dev, y_test = (torch.from_numpy(target.encode(d["labels"].to_numpy(), f"{s}.tsv"))
                              for d, s in ((train, "train"), (dev, "dev"), (test, "test")))
    print(f"GoEmotions: {len(train):,} train / {len(dev):,} dev / {len(test):,} test rows, {target.n_outputs} labels; "
          f"torch {torch.__version__}, {args.threads} threads", flush=True)

    rows = [] if args.skip_tfidf else [tfidf_baseline(train, dev, test, target, y_dev, y_test, y_train)]
    if rows:
        print(f"done: {rows[-1]['name']} in {rows[-1]['seconds']:.0f} s", flush=True)
    rows.append(forgeml_model(args, train, dev, test, target, y_train, y_dev, y_test))
    print(f"done: {rows[-1]['name']} in {rows[-1]['seconds']:.0f} s (training {rows[-1]['train_s']:.0f} s; "
          f"weights from step {rows[-1]['weights']['step']}: {rows[-1]['weights']['why']})", flush=True)

    print("\n| model | size | test macro-F1 @0.5 | test macro-F1 tuned | test micro-F1 @0.5 | test micro-F1 tuned | "
          "subset acc. tuned | time (s) |\n|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        f, t = r["fixed"], r["tuned"]
        print(f"| {r['name']} | {r['params']} | {f['f1_macro']:.3f} | {t['f1_macro']:.3f} | {f['f1_micro']:.3f} | "
              f"{t['f1_micro']:.3f} | {t['subset_accuracy']:.3f} | {r['seconds']:.0f} |")
    print(f"| BERT-base fine-tuned (Demszky et al. 2020, published) | 110M parameters | | {BERT_MACRO_F1:.2f} | | | | |")


if __name__ == "__main__":
    main()
