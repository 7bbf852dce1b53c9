"""Groups of rows that must stay on one side of a split.

A row that appears twice, once in training and once in test, is a test question the model has seen
with its answer: test accuracy goes up for no good reason (LIBRAS has 30 such pairs). Giving identical
rows one group id and splitting by group keeps each group whole.
"""

from __future__ import annotations

import numpy as np


def duplicate_groups(x: np.ndarray) -> np.ndarray:
    """A group id per row; rows with identical values share one. Ids are 0..G-1, numbered in order of
    each group's first row.

    Args:
        x: (N, ...) numeric array: a table's numbers (N, F), or series (N, T, C).

    >>> duplicate_groups(np.array([[1, 2], [3, 4], [1, 2]])).tolist()
    [0, 1, 0]
    """
    flat = np.ascontiguousarray(np.asarray(x).reshape(len(x), -1))  # (N, F): one row of bytes per example
    _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # np.unique sorts groups by value; renumber them by first appearance
    return order[inverse.reshape(-1)].astype(np.int64)


def row_groups(columns: list[np.ndarray]) -> np.ndarray:
    """A group id per row; rows equal in every given column share one (numbered as `duplicate_groups`).

    Args:
        columns: (N, ...) arrays of any kind: numbers, series (N, T, C), images, or objects (text, lists).

    >>> row_groups([np.array([1.0, 2.0, 1.0]), np.array(["a", "b", "a"], dtype=object)]).tolist()
    [0, 1, 0]
    """
    codes = []
    for values in columns:
        arr = np.asarray(values)
        if arr.dtype.kind not in "fiub":  # text, list cells: compare what they print as
            arr = np.unique(np.array([repr(v) for v in arr], dtype=object), return_inverse=True)[1]
        codes.append(duplicate_groups(arr))  # (N,): one id per distinct value of this column
    return duplicate_groups(np.stack(codes, axis=1))  # (N, K) codes -> one id per distinct combination


def stratified_group_split(labels: np.ndarray, groups: np.ndarray, test: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices, with class proportions kept and every group on one side.

    Args:
        labels: (N,) class per row.
        groups: (N,) group id per row (from `duplicate_groups`).
        test: fraction of rows for test, 0 < test < 1; the split is as close to it as whole groups allow.
        seed: the same seed gives the same split.

    Uses scikit-learn's StratifiedGroupKFold with round(1 / test) folds and takes one fold as test.
    """
    from sklearn.model_selection import StratifiedGroupKFold  # scikit-learn is heavy: only when splitting

    if not 0 < test < 1:
        raise ValueError(f"test must lie in (0, 1); got {test}")
    folds = StratifiedGroupKFold(n_splits=max(2, round(1 / test)), shuffle=True, random_state=seed)
    train, held = next(folds.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train), np.sort(held)
