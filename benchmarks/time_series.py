"""Time-series classification: forgeml's conv1d (FCN) and GRU encoders, and an MLP on the raw series.

    PYTHONPATH=src python benchmarks/time_series.py [--epochs 100] [--seeds 0 1 2] [--sets libras gunpoint japanesevowels]

Each model is an encoder + a Linear head over the input dict (the Network's shape with one encoder and one
head), trained by forgeml's Trainer (Adam, lr 1e-3, batch 16, a fixed number of epochs, no early stopping:
the test split is never looked at before the end). Printed: test accuracy, mean (std) over the seeds, next
to the published figures of Fawaz et al. (2019), hfawaz/dl-4-tsc `results/results-mts-avg-std.csv` and
`results-uea-avg-std.csv` (commit eb2953e): mean (std) of 10 runs, 2000 epochs for the FCN, 1500 for ResNet.

- LIBRAS (data/libras): no official split, so a seeded, stratified 80/20 split that keeps each of the 30
  duplicate pairs on one side (forgeml.data.groups). Not the MTS archive's 180/180 split of the paper:
  the figures are close in kind, not directly comparable.
- GunPoint and JapaneseVowels (unequal lengths, 7-29 steps): the fixed train/test splits shipped in the
  `aeon` wheel, read from the installed package's data folder (aeon/datasets/data/<Name>/<Name>_TRAIN.ts);
  aeon itself is not imported. Without aeon those sets are skipped; `--aeon-data DIR` points elsewhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from forgeml.data.batcher import TensorBatcher
from forgeml.data.features.sequence import SequenceFeature
from forgeml.data.groups import duplicate_groups, stratified_group_split
from forgeml.models.encoders import conv1d, recurrent_series
from forgeml.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {  # test accuracy %, Fawaz et al. 2019: (FCN, ResNet, MLP)
    "libras": (96.4, 95.4, 78.0), "gunpoint": (100.0, 99.1, 92.7), "japanesevowels": (99.3, 99.2, 97.6)}


# ------------------------------------------------------------------------------------------------ data
def read_ts(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """A .ts file (sktime/aeon text format): per row, channels split by ':', values by ',', the label last."""
    rows, labels, in_data = [], [], False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        rows.append(np.array([[float(v) for v in c.split(",")] for c in channels]).T)  # (C, T) -> (T, C)
        labels.append(label)
    return rows, np.array(labels)


def aeon_set(name: str, data_dir: Path) -> tuple[list, np.ndarray, list, np.ndarray]:
    tr, ytr = read_ts(data_dir / name / f"{name}_TRAIN.ts")
    te, yte = read_ts(data_dir / name / f"{name}_TEST.ts")
    return tr, ytr, te, yte


def libras(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = np.loadtxt(ROOT / "data" / "libras" / "movement_libras.data", delimiter=",")
    x, y = a[:, :90].reshape(-1, 45, 2), a[:, 90].astype(np.int64)  # (360, 45, 2)
    train, test = stratified_group_split(y, duplicate_groups(x), test=0.2, seed=seed)
    return x[train], y[train], x[test], y[test]


# ------------------------------------------------------------------------------------------------ models
class SeriesClassifier(nn.Module):
    """Encoder + Linear head over the input dict."""

    def __init__(self, encoder: nn.Module, n_classes: int):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.out_dim, n_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encoder(inputs))  # (B, K)


class FlatMLP(nn.Module):
    """The MLP baseline: the zero-padded standardised series flattened, 2 hidden layers of 500 with dropout."""

    def __init__(self, feature: SequenceFeature, n_classes: int, hidden: int = 500):
        super().__init__()
        self.feature = feature.name
        self.net = nn.Sequential(nn.Dropout(0.1), nn.Linear(feature.width, hidden), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, n_classes))
        self.length = feature.length

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs[self.feature][:, : self.length]  # (B, T, C)
        x = nn.functional.pad(x, (0, 0, 0, self.length - x.shape[1]))  # (B, L, C): a fixed width for the Linear
        return self.net(x.flatten(1))  # (B, L * C) -> (B, K)


MODELS = {
    "conv1d (FCN)": lambda f, k: SeriesClassifier(conv1d.build(None, [f]), k),
    "gru": lambda f, k: SeriesClassifier(recurrent_series.build_gru({"hidden": 64, "layers": 2, "dropout": 0.1}, [f]), k),
    "mlp (raw)": lambda f, k: FlatMLP(f, k),
}


def run(model_name: str, tr, ytr, te, yte, pad: str, seed: int, epochs: int, threads: int) -> float:
    classes = np.unique(ytr)
    f = SequenceFeature("series", {"pad": pad}).fit(tr)
    xtr = {k: torch.as_tensor(v) for k, v in f.inputs(tr).items()}
    xte = {k: torch.as_tensor(v) for k, v in f.inputs(te).items()}
    ytr_t = torch.as_tensor(np.searchsorted(classes, ytr))
    yte_t = torch.as_tensor(np.searchsorted(classes, yte))
    torch.manual_seed(seed)
    model = MODELS[model_name](f, len(classes))
    Trainer(model, "cross_entropy", optimizer="adam", lr=1e-3, epochs=epochs, batch_size=16, seed=seed,
            progress=False, device="cpu", threads=threads).fit(TensorBatcher(xtr, ytr_t, 16, seed=seed))
    model.eval()
    with torch.no_grad():
        return (model(xte).argmax(1) == yte_t).float().mean().item() * 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sets", nargs="+", default=["libras", "gunpoint", "japanesevowels"])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--aeon-data", type=Path, default=None, help="folder holding <Name>/<Name>_TRAIN.ts (default: the installed aeon's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    data_dir = args.aeon_data
    if data_dir is None and importlib.util.find_spec("aeon") is not None:  # finds the package without importing it
        data_dir = Path(importlib.util.find_spec("aeon").submodule_search_locations[0]) / "datasets" / "data"
    print(f"epochs {args.epochs}, seeds {args.seeds}, Adam lr 1e-3, batch 16, {args.threads} thread(s); test accuracy %, mean (std)")
    print(f"{'set':16} {'split':28} {'model':14} {'ours':>12}  published FCN / ResNet / MLP (Fawaz 2019)  seconds")
    for name in args.sets:
        if name != "libras" and (data_dir is None or not (data_dir / {"gunpoint": "GunPoint", "japanesevowels": "JapaneseVowels"}[name]).is_dir()):
            print(f"{name:16} skipped: aeon is not installed (pip install aeon) and --aeon-data is not given")
            continue
        for model_name in args.models:
            accs, started = [], time.perf_counter()
            for seed in args.seeds:
                if name == "libras":
                    tr, ytr, te, yte = libras(seed)
                    split, pad = f"grouped 80/20 ({len(tr)}/{len(te)})", "none"
                else:
                    aeon_name = {"gunpoint": "GunPoint", "japanesevowels": "JapaneseVowels"}[name]
                    tr, ytr, te, yte = aeon_set(aeon_name, data_dir)
                    split, pad = f"official ({len(tr)}/{len(te)})", "zero"
                accs.append(run(model_name, tr, ytr, te, yte, pad, seed, args.epochs, args.threads))
            fcn, resnet, mlp = PUBLISHED[name]
            print(f"{name:16} {split:28} {model_name:14} {np.mean(accs):6.1f} ({np.std(accs):.1f})  "
                  f"{fcn:.1f} / {resnet:.1f} / {mlp:.1f}{'':22} {time.perf_counter() - started:6.0f}", flush=True)


if __name__ == "__main__":
    main()
