import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, r2_score, roc_auc_score

from forgeml.evaluation.metrics import ClassificationMetrics, RegressionMetrics


def test_classification_metrics_stream_and_agree_with_sklearn():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 3, generator=g)
    y = torch.randint(0, 3, (300,), generator=g)
    logits[torch.arange(300), y] += 1.0
    m = ClassificationMetrics(["a", "b", "c"])
    for i in range(0, 300, 64):  # in batches, as evaluation streams
        m.update(logits[i : i + 64], y[i : i + 64])
    out = m.compute()
    pred = logits.argmax(1).numpy()
    assert out["accuracy"] == pytest.approx((pred == y.numpy()).mean(), abs=1e-6)
    assert out["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-5)
    assert out["auroc"] == pytest.approx(roc_auc_score(y, logits.softmax(1).numpy(), multi_class="ovr"), abs=1e-3)
    assert np.array(out["confusion_matrix"]).sum() == 300
    assert sum(c["support"] for c in out["per_class"].values()) == 300


def test_regression_metrics_on_the_original_scale():
    y_true = torch.tensor([3.0, 5.0, 7.0, 9.0])
    y_pred = torch.tensor([3.5, 4.5, 7.0, 10.0])
    mean, std = 6.0, 2.0
    m = RegressionMetrics(mean, std)
    m.update(((y_pred - mean) / std)[:, None], (y_true - mean) / std)
    out = m.compute()
    assert out["mae"] == pytest.approx(0.5) and out["r2"] == pytest.approx(r2_score(y_true, y_pred))
    assert out["rmse"] == pytest.approx((0.25 + 0.25 + 0 + 1) ** 0.5 / 2)  # in the target's unit, beside mse


def test_regression_tables_show_rmse_mae_r2():
    from rich.console import Console

    from forgeml.show import metrics_table

    console = Console(width=200, record=True)
    console.print(metrics_table({"test": {"n": 4, "loss": 0.1, "rmse": 0.61, "mse": 0.375, "mae": 0.5, "r2": 0.9}}))
    header = next(line for line in console.export_text().splitlines() if "split" in line)
    assert [c for c in ("rmse", "mse", "mae", "r2") if f" {c} " in header] == ["rmse", "mae", "r2"]
