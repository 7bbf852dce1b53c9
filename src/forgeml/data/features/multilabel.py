"""Multi-label targets: a SET of labels per row (GoEmotions' "3,12", "joy|love", or a JSON list ["joy", "love"]).

Fitted on the training split: the label vocabulary (from the data, or from a names file / mapping such
as GoEmotions' emotions.txt, which maps id 3 to "annoyance"), how often each label occurs (for the head's
pos_weight and prior bias), and one decision threshold per label (0.5 until tuned on validation data).

    target = MultiLabelTarget("labels", separator=",", names_path="data/goemotions/emotions.txt").fit(train["labels"])
    y = target.encode(val["labels"])             # float32 (N, L) of 0/1
    target.decode(probabilities)                  # [["annoyance", "anger"], ["neutral"], ...]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forgeml.config import OutputConfig
from forgeml.data.columns import RowError
from forgeml.errors import DataError

# separators people use for label lists; one of them inside a "label" means the setting is probably wrong
SEPARATORS = (",", ";", "|", "\t")


def read_names(path: str | Path) -> list[str]:
    """Label names, one per line (line i names id i), as GoEmotions' emotions.txt."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: the label names file cannot be read ({exc.strerror}); fix the setting names_path") from None
    names = [line.strip() for line in lines if line.strip()]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: label name {dup!r} appears twice; each line must name one label once")
    return names


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _token(v: Any) -> str:
    """One label as a string; 3, 3.0 and '3' agree."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


class MultiLabelTarget:
    kind = "multilabel"

    def __init__(self, name: str, labels: list[str] | None = None, separator: str = ",",
                 names: list[str] | dict[str, str] | None = None, names_path: str | None = None,
                 allow_empty: bool = False, thresholds: list[float] | None = None,
                 counts: list[int] | None = None, n_rows: int = 0):
        if not separator:
            raise DataError(f"{name!r}: separator is empty; set it to the character between labels, e.g. ','")
        self.name, self.separator, self.allow_empty, self.names_path = name, separator, allow_empty, names_path
        self.names = names  # raw label -> name: a list (position = id) or a dict; None: labels are used as written
        self.labels = labels or []
        self.counts, self.n_rows = counts or [], n_rows
        self.thresholds = thresholds or [0.5] * len(self.labels)
        self._index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_settings(cls, output: OutputConfig) -> MultiLabelTarget:
        """The target a `data.outputs` entry of type multilabel describes (its settings live in config.py's OutputConfig)."""
        return cls(output.name, separator=output.separator, names=output.names, names_path=output.names_path,
                   allow_empty=output.allow_empty)

    @property
    def n_outputs(self) -> int:
        return len(self.labels)

    # -------------------------------------------------------------------------------------- parsing
    def _mapping(self) -> dict[str, str] | None:
        """raw token -> label name, with every name also mapping to itself (so "3" and "annoyance" both work)."""
        names = self.names
        if names is None and self.names_path:
            names = self.names = read_names(self.names_path)
        if names is None:
            return None
        pairs = dict(enumerate(names)) if isinstance(names, list) else dict(names)
        mapping = {str(k): str(v) for k, v in pairs.items()}
        mapping.update({v: v for v in mapping.values()})
        return mapping

    def _split(self, value: Any, row: int, origin: str, known: dict[str, str] | None) -> list[str]:
        """One cell to its list of label tokens (unmapped)."""
        if _is_missing(value):
            return []
        if isinstance(value, (list, tuple, set, np.ndarray)):
            return [_token(v) for v in value]
        if isinstance(value, (int, float, np.integer, np.floating)):  # a column of single ids read as numbers
            return [_token(value)]
        text = str(value).strip()
        if text.startswith("["):  # a JSON list, as JSONL files and pandas' to_json write them
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                raise RowError(f"{origin}: ", row, f": target {self.name!r} starts with '[' but is not a JSON list; "
                               "write it as [\"a\", \"b\"] or as labels joined by the separator") from None
            return [_token(v) for v in items]
        pieces = [p.strip() for p in text.split(self.separator)]
        for piece in pieces:
            if known is not None and piece in known:
                continue  # a listed label name may hold any character
            other = next((s for s in SEPARATORS if s != self.separator and s in piece), None)
            if other is not None:
                raise RowError(f"{origin}: ", row, f": target {self.name!r} holds {piece!r}, which looks separated by "
                               f"{other!r}, but the setting separator is {self.separator!r}; set separator: {other!r}")
        return [p for p in pieces if p]

    def _sets(self, values: np.ndarray, origin: str) -> list[list[str]]:
        """Every row's labels, mapped to names, duplicates dropped, order kept; empty sets checked."""
        known = self._mapping()
        out = []
        for row, value in enumerate(values):
            tokens = self._split(value, row, origin, known)
            if known is not None:
                bad = next((t for t in tokens if t not in known), None)
                if bad is not None:
                    n = len(self.names) if self.names is not None else 0
                    raise RowError(f"{origin}: ", row, f": target {self.name!r} has label {bad!r}, which is not among "
                                   f"the {n} label names ({self.names_path or 'names'}); fix the row or the setting names")
                tokens = [known[t] for t in tokens]
            if not tokens and not self.allow_empty:
                raise RowError(f"{origin}: ", row, f": target {self.name!r} has no labels; fill the row, or set "
                               "allow_empty: true if a row may have none")
            out.append(list(dict.fromkeys(tokens)))
        return out

    # ------------------------------------------------------------------------------------ fit/encode
    def fit(self, values: np.ndarray, origin: str = "") -> MultiLabelTarget:
        sets = self._sets(values, origin)
        known = self._mapping()
        if known is not None:  # the names file's order (GoEmotions: id order), even for a label with no training row
            names = self.names if isinstance(self.names, list) else list(dict.fromkeys(self.names.values()))
            labels = [str(n) for n in names]
        else:
            labels = sorted({t for s in sets for t in s})
            try:
                labels.sort(key=float)  # '2' before '10'
            except ValueError:
                pass
        if not labels:
            raise DataError(f"{origin}: target {self.name!r} has no labels in the training split; check the column and separator")
        self.labels = labels
        self._index = {label: i for i, label in enumerate(labels)}
        counts = np.zeros(len(labels), dtype=np.int64)
        for s in sets:
            counts[[self._index[t] for t in s]] += 1
        self.counts, self.n_rows = counts.tolist(), len(sets)
        self.thresholds = [0.5] * len(labels)
        return self

    def encode(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        """Label sets to multi-hot rows: float32 (N, L) of 0/1."""
        sets = self._sets(values, origin)
        out = np.zeros((len(sets), len(self.labels)), dtype=np.float32)  # (N, L)
        for row, s in enumerate(sets):
            idx = [self._index.get(t, -1) for t in s]
            if -1 in idx:
                bad = s[idx.index(-1)]
                raise RowError(f"{origin}: ", row, f": target {self.name!r} has label {bad!r}, never seen in training "
                               f"(labels: {', '.join(self.labels[:20])}); fix the row, or list every label in the setting names")
            out[row, idx] = 1.0
        return out

    def decode(self, probabilities, thresholds: list[float] | None = None) -> list[list[str]]:
        """(N, L) probabilities to each row's labels (those at or above their threshold), in label order."""
        p = np.asarray(probabilities.detach().float().cpu() if hasattr(probabilities, "detach") else probabilities)
        t = np.asarray(thresholds if thresholds is not None else self.thresholds, dtype=p.dtype)
        if p.ndim != 2 or p.shape[1] != len(self.labels) or t.shape != (len(self.labels),):
            raise ValueError(f"expected probabilities (N, {len(self.labels)}) and {len(self.labels)} thresholds, "
                             f"got {p.shape} and {t.shape}")
        chosen = p >= t  # (N, L)
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in chosen]

    def decode_rows(self, logits) -> list[dict[str, Any]]:
        """(N, L) logits (the head's output) to one dict per row: the label set at the thresholds, and every
        label's probability (so a caller can apply its own threshold)."""
        p = np.asarray(logits.detach().float().cpu().sigmoid() if hasattr(logits, "detach") else 1 / (1 + np.exp(-np.asarray(logits))))
        return [{"labels": chosen, "probabilities": {label: float(v) for label, v in zip(self.labels, row)}}
                for chosen, row in zip(self.decode(p), p)]

    def set_thresholds(self, thresholds) -> None:
        """Keep per-label thresholds (tuned on validation data) for decode and for the bundle."""
        t = [float(x) for x in thresholds]
        if len(t) != len(self.labels) or not all(0.0 <= x <= 1.0 for x in t):
            raise ValueError(f"need {len(self.labels)} thresholds in [0, 1], got {len(t)}")
        self.thresholds = t

    def frequencies(self) -> np.ndarray:
        """Each label's share of training rows, (L,) float64: the head's pos_weight and prior bias."""
        return np.asarray(self.counts, dtype=np.float64) / max(self.n_rows, 1)

    # -------------------------------------------------------------------------------------- save/load
    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "labels": self.labels, "separator": self.separator,
                "names": self.names, "names_path": self.names_path, "allow_empty": self.allow_empty,
                "thresholds": self.thresholds, "counts": self.counts, "n_rows": self.n_rows}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MultiLabelTarget:
        # names travel inside the bundle: a bundle never reads the names file again (it may not exist elsewhere);
        # names_path is kept as a record only (names is filled whenever it was set), so a refit compares equal
        names_path = d.get("names_path") if d.get("names") is not None else None
        return cls(d["name"], d["labels"], d["separator"], d.get("names"), names_path, d.get("allow_empty", False),
                   d.get("thresholds"), d.get("counts"), d.get("n_rows", 0))
