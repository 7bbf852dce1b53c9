"""Figures for the report: matplotlib (Agg, no display) rendered to inline PNG data URIs.

One look everywhere: the same size, font, colours and grid, so that pages read alike."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False, "axes.prop_cycle": plt.cycler(color=COLORS)})
    return plt


def to_data_uri(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def curves(series: dict[str, tuple[list[float], list[float]]], title: str, ylabel: str, log: bool = False) -> str:
    """Lines over steps: {label: (steps, values)}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, (x, y) in series.items():
        ax.plot(x, y, label=label, marker="o" if len(x) < 30 else None, markersize=3)
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend()
    return to_data_uri(fig)


def confusion(matrix: np.ndarray, labels: list[str], title: str = "confusion matrix (rows: true, columns: predicted)") -> str:
    plt = _plt()
    k = len(labels)
    size = min(2.5 + 0.45 * k, 11)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    ax.set_xticks(range(k), labels, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_yticks(range(k), labels)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return to_data_uri(fig)


def roc_pr(y_true: np.ndarray, score: np.ndarray, positive: str) -> str:
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    fpr, tpr, _ = roc_curve(y_true, score)
    a.plot(fpr, tpr, label=f"AUC {auc(fpr, tpr):.3f}")
    a.plot([0, 1], [0, 1], "--", color="#9ca3af")
    a.set(title=f"ROC ({positive} positive)", xlabel="false positive rate", ylabel="true positive rate")
    a.legend(loc="lower right")
    prec, rec, _ = precision_recall_curve(y_true, score)
    b.plot(rec, prec, label=f"AUC {auc(rec, prec):.3f}")
    b.axhline(y_true.mean(), ls="--", color="#9ca3af", label=f"base rate {y_true.mean():.3f}")
    b.set(title="precision-recall", xlabel="recall", ylabel="precision")
    b.legend(loc="lower left")
    return to_data_uri(fig)


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    a.scatter(y_true, y_pred, s=6, alpha=0.4)
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    a.plot([lo, hi], [lo, hi], "--", color="#9ca3af")
    a.set(title="predicted against true", xlabel="true", ylabel="predicted")
    b.hist(y_pred - y_true, bins=40)
    b.set(title="residuals (predicted - true)", xlabel="residual", ylabel="rows")
    return to_data_uri(fig)


def label_bars(labels: list[str], values: list[float], support: list[int], title: str) -> str:
    """Horizontal bars, one per label in the order given (top first), each named with its support."""
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.22 * n))
    ax.barh(range(n), values, color=COLORS[0])
    ax.set_yticks(range(n), [f"{label} ({s:,})" for label, s in zip(labels, support)], fontsize=8 if n <= 40 else 6)
    ax.invert_yaxis()  # the first label on top, as in the table below
    ax.set_xlim(0, 1)
    ax.set(title=title, xlabel="F1 (label's support in brackets)")
    ax.grid(axis="y", visible=False)
    return to_data_uri(fig)


def _panels(n: int, max_cols: int, size: tuple[float, float]):
    """A figure of n small panels, max_cols wide (each size inches), every axis off until a panel draws on it."""
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, axes = _plt().subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes


def image_grid(images: list[np.ndarray], captions: list[str], title: str) -> str:
    fig, axes = _panels(len(images), 8, (1.4, 1.7))
    for ax, im, cap in zip(axes.ravel(), images, captions):
        im = np.asarray(im, dtype=float)
        ax.imshow(im[0] if im.shape[0] == 1 else np.clip(im.transpose(1, 2, 0) / max(im.max(), 1), 0, 1), cmap="gray_r")
        ax.set_title(cap, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return to_data_uri(fig)


def series_grid(series: list[np.ndarray], captions: list[str], title: str) -> str:
    """Small multiples of (T, C) series: one panel per row, a line per channel (the shape a reader checks)."""
    fig, axes = _panels(len(series), 4, (2.4, 1.9))
    for ax, x, cap in zip(axes.ravel(), series, captions):
        ax.axis("on")
        for c in range(x.shape[1]):
            ax.plot(x[:, c], lw=1)
        ax.set_title(cap, fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return to_data_uri(fig)


def overlay(runs: dict[str, dict[str, Any]], key: str, split: str, title: str) -> str | None:
    """One curve per run: `key` of history records of `split`."""
    series = {}
    for name, history in runs.items():
        pts = [(r["step"], r[key]) for r in history["rows"] if r.get("split") == split and isinstance(r.get(key), (int, float))]
        if pts:
            series[name] = ([p[0] for p in pts], [p[1] for p in pts])
    return curves(series, title, key) if series else None


def importance_bars(names: list[str], attribution: list[float], permutation: list[float], metric: str, method: str) -> str:
    """Two panels side by side, one bar per input column in the same order (largest mean |attribution| on top):
    the mean |attribution| and the metric's drop when the column is shuffled."""
    plt = _plt()
    n = len(names)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 0.9 + 0.24 * n), sharey=True)
    left.barh(range(n), attribution, color=COLORS[0])
    left.set_yticks(range(n), names, fontsize=8 if n <= 40 else 6)
    left.invert_yaxis()
    left.set(title=f"mean |attribution| ({method.replace('_', ' ')})", xlabel="score units")
    right.barh(range(n), permutation, color=[COLORS[1] if v >= 0 else COLORS[2] for v in permutation])
    right.axvline(0, color="black", linewidth=0.6)
    right.set(title="permutation importance", xlabel=f"drop in {metric} when shuffled")
    for ax in (left, right):
        ax.grid(axis="y", visible=False)
    return to_data_uri(fig)


def spectrogram_grid(specs: list[np.ndarray], captions: list[str], title: str) -> str:
    """Small multiples of (n_mels, frames) log-mel spectrograms: low bands at the bottom, time to the right."""
    fig, axes = _panels(len(specs), 4, (2.4, 1.9))
    for ax, s, cap in zip(axes.ravel(), specs, captions):
        ax.axis("on")
        ax.imshow(np.asarray(s, dtype=float), origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax.grid(False)
        ax.set_title(cap, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("frame", fontsize=6)
        ax.set_ylabel("mel band", fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return to_data_uri(fig)
