"""Multi-label evaluation: streamed metrics and per-label thresholds tuned on validation data.

Both stream: update batch by batch, compute once; no logit is kept. Metrics come from torchmetrics
(F1 macro and micro, precision/recall micro, subset accuracy, per-label F1/precision/recall/support),
measured on predictions made with one threshold per label. Tuning counts, for every threshold of a
grid and every label at once, the true positives, false positives and false negatives ((G, L) counts
per batch, one broadcast comparison), then picks each label's threshold with the best F1.

    tuner = ThresholdTuner(n_labels=28)
    for logits, y in val_batches: tuner.update(logits, y)
    thresholds = tuner.compute()                           # (L,) list, one per label
    metrics = MultiLabelMetrics(labels, thresholds)
    for logits, y in test_batches: metrics.update(logits, y)
    metrics.compute()                                      # {"f1_macro": ..., "f1_micro": ..., "per_label": {...}}
"""

from __future__ import annotations

from typing import Any

import torch

FIXED = 0.5  # the threshold of an untuned model, and of a label too rare in validation to tune


def default_grid() -> torch.Tensor:
    # every 0.01 (fine enough for F1, small enough to count in one pass), each exactly the float32 a user types
    return (torch.arange(1, 100, dtype=torch.float64) / 100).float()


def _probabilities(out: torch.Tensor) -> torch.Tensor:
    return out.detach().float().cpu().sigmoid()  # logits in, per the tensor contract


class ThresholdTuner:
    """Per-label thresholds that maximise each label's F1, from streamed (logits, targets) batches.

    Args:
        n_labels: L.
        grid: the thresholds tried (default 0.01, 0.02, ..., 0.99).
        min_positives: a label with fewer positive rows than this in the data keeps `fixed` (its F1 there
            is noise, or undefined with none), default 1.
        fixed: the threshold for such labels, default 0.5.
    """

    def __init__(self, n_labels: int, grid: torch.Tensor | None = None, min_positives: int = 1, fixed: float = FIXED):
        self.grid = (grid if grid is not None else default_grid()).float().cpu()
        self.min_positives, self.fixed = min_positives, fixed
        G = len(self.grid)
        self.tp = torch.zeros(G, n_labels, dtype=torch.int64)
        self.fp = torch.zeros(G, n_labels, dtype=torch.int64)
        self.positives = torch.zeros(n_labels, dtype=torch.int64)

    def update(self, logits: torch.Tensor, target: torch.Tensor, *, probabilities: bool = False) -> None:
        p = logits.detach().float().cpu() if probabilities else _probabilities(logits)  # (B, L)
        y = target.detach().cpu() > 0.5  # (B, L) bool
        chosen = p[None] >= self.grid[:, None, None]  # (G, B, L): every threshold at once
        self.tp += (chosen & y[None]).sum(1)
        self.fp += (chosen & ~y[None]).sum(1)
        self.positives += y.sum(0)

    def f1(self) -> torch.Tensor:
        """(G, L): each label's F1 at each grid threshold (0 where it has no true positive)."""
        fn = self.positives[None] - self.tp
        return (2 * self.tp / (2 * self.tp + self.fp + fn).clamp(min=1)).double()

    def compute(self) -> list[float]:
        f1 = self.f1()
        best = f1.max(0).values  # (L,)
        # among thresholds within a hair of the best F1, the one nearest the fixed threshold: a flat F1 curve
        # (a rare label) should not drag the threshold to the edge of the grid
        distance = (self.grid - self.fixed).abs().double()[:, None].expand_as(f1)
        ties = f1 >= best[None] - 1e-9
        pick = torch.where(ties, distance, torch.full_like(distance, float("inf"))).argmin(0)  # (L,)
        chosen = self.grid[pick]
        too_few = (self.positives < self.min_positives) | (best <= 0)
        return torch.where(too_few, torch.full_like(chosen, self.fixed), chosen).tolist()


def tune_thresholds(probs: torch.Tensor, targets: torch.Tensor, grid: torch.Tensor | None = None,
                    min_positives: int = 1, fixed: float = FIXED, batch: int = 4096) -> list[float]:
    """Per-label thresholds maximising each label's F1 on (N, L) probabilities and 0/1 targets.

    Example:
        >>> p = torch.tensor([[0.3, 0.9], [0.2, 0.6], [0.1, 0.4]])
        >>> y = torch.tensor([[1, 1], [1, 0], [0, 0]])
        >>> tune_thresholds(p, y)
        [0.2, 0.61]
    """
    probs, targets = torch.as_tensor(probs), torch.as_tensor(targets)
    tuner = ThresholdTuner(probs.shape[1], grid, min_positives, fixed)
    for i in range(0, len(probs), batch):  # bounded memory: (G, batch, L) booleans at a time
        tuner.update(probs[i : i + batch], targets[i : i + batch], probabilities=True)
    return [round(t, 6) for t in tuner.compute()]


def choose_thresholds(setting: float | str, n_labels: int, tuner: ThresholdTuner | None = None) -> list[float]:
    """The thresholds a setting asks for: a number (the same for every label, e.g. 0.5) or "tune"."""
    if setting == "tune":
        if tuner is None:
            raise ValueError("threshold 'tune' needs validation data (a ThresholdTuner fed with it)")
        return tuner.compute()
    return [float(setting)] * n_labels


class MultiLabelMetrics:
    """Streamed multi-label metrics at per-label thresholds.

    Args:
        labels: the L label names (for per_label).
        thresholds: one per label, or None for 0.5 everywhere.
        full: also per-label F1/precision/recall/support (default True).
    """

    def __init__(self, labels: list[str], thresholds: list[float] | None = None, full: bool = True):
        import torchmetrics.classification as C  # heavy: imported only when evaluating

        L = len(labels)
        self.labels, self.full = labels, full
        self.thresholds = torch.tensor(thresholds if thresholds is not None else [FIXED] * L, dtype=torch.float32)
        self.names = ["f1_macro", "f1_micro", "precision_micro", "recall_micro", "subset_accuracy"]
        self.metrics = {
            "f1_macro": C.MultilabelF1Score(L, average="macro"), "f1_micro": C.MultilabelF1Score(L, average="micro"),
            "precision_micro": C.MultilabelPrecision(L, average="micro"), "recall_micro": C.MultilabelRecall(L, average="micro"),
            "subset_accuracy": C.MultilabelExactMatch(L),
        }
        if full:
            self.metrics.update({"f1": C.MultilabelF1Score(L, average=None), "precision": C.MultilabelPrecision(L, average=None),
                                 "recall": C.MultilabelRecall(L, average=None)})
        self.support = torch.zeros(L, dtype=torch.int64)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        # thresholded here, per label: torchmetrics takes integer predictions as they are
        chosen = (_probabilities(logits) >= self.thresholds).long()  # (B, L)
        y = target.detach().cpu().long()
        for metric in self.metrics.values():
            metric.update(chosen, y)
        self.support += y.sum(0)

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: float(self.metrics[name].compute()) for name in self.names}
        if self.full:
            per = {m: self.metrics[m].compute().tolist() for m in ("f1", "precision", "recall")}
            out["per_label"] = {label: {"f1": per["f1"][i], "precision": per["precision"][i], "recall": per["recall"][i],
                                        "support": int(self.support[i]), "threshold": round(float(self.thresholds[i]), 6)}
                                for i, label in enumerate(self.labels)}
        return out
