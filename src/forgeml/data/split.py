"""Train/val/test split: seeded, stratified for classification, or in file order."""

from __future__ import annotations

import numpy as np

from forgeml.config import SplitConfig
from forgeml.notes import warn


def split_indices(n: int, cfg: SplitConfig, labels: np.ndarray | None, want_val: bool, want_test: bool,
                  groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices per split. `labels` (class tokens) turns on stratification; `groups` (a group id per row,
    data.split.group) keeps each group's rows in one split."""
    val = cfg.val if want_val else 0.0
    test = cfg.test if want_test else 0.0
    n_test, n_val = round(n * test), round(n * val)
    if n - n_test - n_val < 1:
        raise ValueError(f"split.val + split.test leave no training rows out of {n}")
    if groups is not None:
        if cfg.ordered:
            raise ValueError("split.group keeps groups whole by shuffling them; with split.ordered the file order decides, "
                             "so remove one of the two")
        return _group_split(n, cfg, labels if cfg.stratify else None, groups, n_val, n_test)
    if cfg.ordered:
        idx = np.arange(n)
        return {"train": idx[: n - n_val - n_test], "val": idx[n - n_val - n_test : n - n_test], "test": idx[n - n_test :]}
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    strat = labels if (labels is not None and cfg.stratify) else None
    if strat is not None and min(np.unique(strat, return_counts=True)[1]) < 2:
        rare = np.unique(strat, return_counts=True)
        warn(f"data.split.stratify: class {rare[0][np.argmin(rare[1])]!r} has fewer than 2 rows, so the split is not "
             "stratified (val/test may miss some classes)")
        strat = None
    out = {"val": idx[:0], "test": idx[:0]}
    rest = idx
    if n_test:
        rest, out["test"] = train_test_split(idx, test_size=n_test, random_state=cfg.seed, stratify=strat)
    if n_val:
        strat_rest = strat[rest] if strat is not None else None
        rest, out["val"] = train_test_split(rest, test_size=n_val, random_state=cfg.seed + 1, stratify=strat_rest)
    out["train"] = np.sort(rest)
    out["val"], out["test"] = np.sort(out["val"]), np.sort(out["test"])
    return out


def _group_split(n: int, cfg: SplitConfig, labels: np.ndarray | None, groups: np.ndarray, n_val: int,
                 n_test: int) -> dict[str, np.ndarray]:
    """Test, then val, carved from the rows as whole groups, class proportions kept as far as groups allow.

    Each cut is one fold of round(1 / fraction) stratified group folds, so its size is near, not exactly, the
    fraction asked for (0.2 -> one fold of 5; 0.3 -> one of 3, a third)."""
    from forgeml.data.groups import stratified_group_split

    strat = np.zeros(n, dtype=np.int64) if labels is None else np.unique(labels.astype(str), return_inverse=True)[1]
    out = {"val": np.arange(0), "test": np.arange(0)}
    rest = np.arange(n)
    for name, count, seed in (("test", n_test, cfg.seed), ("val", n_val, cfg.seed + 1)):
        if not count:
            continue
        keep, held = stratified_group_split(strat[rest], groups[rest], count / len(rest), seed)
        if len(keep) == 0 or len(held) == 0:
            raise ValueError(f"split.group: the {len(np.unique(groups[rest]))} groups left cannot give both a training "
                             f"and a {name} split; use more data or a smaller split.{name}")
        rest, out[name] = rest[keep], rest[held]
    out["train"] = rest
    return out
