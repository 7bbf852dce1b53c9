"""Streaming metrics from torchmetrics: update batch by batch, compute once (no logits kept).

Classification: accuracy, precision/recall/F1 (macro and per class), confusion matrix, AUROC.
Regression: RMSE (in the target's own unit), MSE, MAE, R² on the original target scale.
"""

from __future__ import annotations

from typing import Any

import torch


class ClassificationMetrics:
    def __init__(self, classes: list[str], full: bool = True):
        import torchmetrics.classification as C

        k = len(classes)
        self.classes, self.full = classes, full
        self.names = ["accuracy", "f1_macro"] + (["precision_macro", "recall_macro", "auroc"] if full else [])
        self.metrics = {"accuracy": C.MulticlassAccuracy(k, average="micro"), "f1_macro": C.MulticlassF1Score(k, average="macro")}
        if full:
            self.metrics.update({
                "precision_macro": C.MulticlassPrecision(k, average="macro"), "recall_macro": C.MulticlassRecall(k, average="macro"),
                "precision": C.MulticlassPrecision(k, average=None), "recall": C.MulticlassRecall(k, average=None),
                "f1": C.MulticlassF1Score(k, average=None), "confusion": C.MulticlassConfusionMatrix(k),
                "auroc": C.MulticlassAUROC(k, average="macro"),
            })

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        y = y.to("cpu")
        logits = logits.detach().float().to("cpu")
        probs = logits.softmax(-1)
        for name, metric in self.metrics.items():
            metric.update(probs if name == "auroc" else logits, y)

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "auroc"):
            if name in self.metrics:
                out[name] = float(self.metrics[name].compute())
        if self.full:
            confusion = self.metrics["confusion"].compute()
            support = confusion.sum(1)
            per = {m: self.metrics[m].compute().tolist() for m in ("precision", "recall", "f1")}
            out["per_class"] = {c: {"precision": per["precision"][i], "recall": per["recall"][i], "f1": per["f1"][i],
                                    "support": int(support[i])} for i, c in enumerate(self.classes)}
            out["confusion_matrix"] = confusion.tolist()
        return out


class RegressionMetrics:
    def __init__(self, mean: float = 0.0, std: float = 1.0):
        from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score

        self.mean, self.std = mean, std
        self.names = ["rmse", "mse", "mae", "r2"]
        self.metrics = {"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()}

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        pred = out.detach().float().reshape(len(y)).cpu() * self.std + self.mean  # back to the target's own scale
        true = y.float().cpu() * self.std + self.mean
        for metric in self.metrics.values():
            metric.update(pred, true)

    def compute(self) -> dict[str, Any]:
        out = {name: float(m.compute()) for name, m in self.metrics.items()}
        return {"rmse": out["mse"] ** 0.5, **out}  # the error in the target's unit, the figure a reader can judge


def metrics_for(features, full: bool = True):
    """The metric set for a FeatureSet's task."""
    if features.task == "classification":
        return ClassificationMetrics(features.target.classes, full=full)
    return RegressionMetrics(features.target.mean, features.target.std)
