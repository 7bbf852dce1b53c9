"""Streaming metrics from torchmetrics: update batch by batch, compute once (no logits kept).

Classification: accuracy, precision/recall/F1 (macro and per class), confusion matrix, AUROC.
Regression: RMSE (in the target's own unit), MSE, MAE, R² on the original target scale.
Multi-label: F1 macro/micro, precision/recall micro, subset accuracy, per label (evaluation/multilabel.py).
Next token: perplexity (evaluation/perplexity.py).
Several outputs: each output's metrics under '<output>.<metric>' (e.g. income.accuracy, hours-per-week.mae);
one output keeps the flat names (accuracy, f1_macro, ...). See docs/contract.md.
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
        true = y.float().reshape(len(y)).cpu() * self.std + self.mean
        for metric in self.metrics.values():
            metric.update(pred, true)

    def compute(self) -> dict[str, Any]:
        out = {name: float(m.compute()) for name, m in self.metrics.items()}
        return {"rmse": out["mse"] ** 0.5, **out}  # the error in the target's unit, the figure a reader can judge


def metrics_of(output, full: bool = True):
    """The metric set for one fitted output."""
    if output.kind == "classification":
        return ClassificationMetrics(output.classes, full=full)
    if output.kind == "regression":
        return RegressionMetrics(output.mean, output.std)
    if output.kind == "multilabel":  # at the thresholds in features.json (tuned on validation once training ends)
        from forgeml.evaluation.multilabel import MultiLabelMetrics

        return MultiLabelMetrics(output.labels, output.thresholds, full=full)
    if output.kind == "next_token":
        from forgeml.evaluation.perplexity import Perplexity

        return Perplexity()
    raise ValueError(f"no metrics for an output of kind {output.kind!r}")


class OutputMetrics:
    """Metrics of every output of a Network, updated with its output and target dicts."""

    def __init__(self, outputs: list, full: bool = True):
        self.per_output = {o.name: metrics_of(o, full) for o in outputs}
        self.single = len(outputs) == 1
        self.names = [self._key(name, m) for name, metrics in self.per_output.items() for m in metrics.names]

    def _key(self, output: str, metric: str) -> str:
        return metric if self.single else f"{output}.{metric}"

    def update(self, out: dict[str, torch.Tensor] | torch.Tensor, y: dict[str, torch.Tensor] | torch.Tensor) -> None:
        if isinstance(out, torch.Tensor):  # a plain model with one output
            next(iter(self.per_output.values())).update(out, y)
            return
        for name, metrics in self.per_output.items():
            metrics.update(out[name], y[name])

    def sync(self, reduce_sum) -> None:
        """Several processes: metrics that keep their own sums add every rank's up (torchmetrics' own gather their
        states in compute(), under a process group)."""
        for metrics in self.per_output.values():
            if hasattr(metrics, "sync"):
                metrics.sync(reduce_sum)

    def compute(self) -> dict[str, Any]:
        return {self._key(name, k): v for name, metrics in self.per_output.items() for k, v in metrics.compute().items()}


def metrics_for(features, full: bool = True) -> OutputMetrics:
    """The metric set for every output of a FeatureSet."""
    return OutputMetrics(features.outputs, full=full)
