"""All the features of a run plus its target: fitted together, saved together as features.json."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.data.features import KINDS, TARGETS, ClassLabels, RegressionTarget
from forgeml.data.features.category import MISSING, as_tokens
from forgeml.data.features.numeric import as_float
from forgeml.errors import ConfigError, DataError, RequestError, did_you_mean
from forgeml.notes import warn

FEATURES_VERSION = 1


def infer_task(values: np.ndarray) -> str:
    """classification for text/bool or integer targets with at most 50 values; regression otherwise."""
    if values.dtype.kind in "iub":
        return "classification" if len(np.unique(values)) <= 50 else "regression"
    if values.dtype.kind == "f":
        finite = values[~np.isnan(values)]
        integral = np.all(np.mod(finite, 1) == 0)
        return "classification" if integral and len(np.unique(finite)) <= 50 else "regression"
    return "classification"


def task_mismatch(values: np.ndarray, task: str, name: str, origin: str) -> str | None:
    """A data.task that no longer fits the target (a config reused on another file) is said, not obeyed silently:
    the warning to give, or None."""
    if values.dtype.kind not in "iuf":
        return None
    finite = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    distinct = np.unique(finite)
    integral = bool(np.all(np.mod(distinct, 1) == 0))
    # class ids count from 0 or 1; a score such as wine quality 3..8 is a fair regression target
    if task == "regression" and integral and len(distinct) <= 50 and len(distinct) and distinct[0] in (0, 1):
        shown = ", ".join(str(int(v)) for v in distinct[:6]) + (", ..." if len(distinct) > 6 else "")
        return (f"{origin}: data.task is regression but the target {name!r} holds only {len(distinct)} distinct integers "
                f"({shown}), which look like class ids; a regressor will predict values between them. If they are classes, "
                "set data.task: classification")
    if task == "classification" and not integral:
        example = next(v for v in distinct if v % 1)
        return (f"{origin}: data.task is classification but the target {name!r} holds {len(distinct)} distinct values, "
                f"not whole numbers (e.g. {example:g}); each distinct value becomes a class. If it is a quantity, set "
                "data.task: regression")
    return None


def infer_kind(values: np.ndarray) -> str:
    if values.ndim == 4:
        return "image"
    tokens = set(as_tokens(values[: 100_000])) - {MISSING}
    try:
        as_float(values, "")
        numeric = True
    except DataError:
        numeric = False
    if numeric:
        return "binary" if tokens <= {"0", "1"} and len(tokens) == 2 else "numeric"
    if len(tokens) <= 2:
        return "binary"
    sample = [t for t in as_tokens(values[:1000]) if t != MISSING]
    spaced = sum(" " in t for t in sample) / max(len(sample), 1)
    return "text" if spaced > 0.5 and len(tokens) > 0.5 * min(len(values), 100_000) else "category"  # sentences, not labels


def first_non_number(values: np.ndarray) -> tuple[int, object, int] | None:
    """(position, value, how many) of the non-numbers in a column that is mostly numbers; None otherwise."""
    if values.dtype != object:
        return None
    series = pd.Series(values, dtype=object)
    present = ~series.isna().to_numpy()
    bad = np.isnan(pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)) & present
    if not bad.any() or bad.sum() * 2 >= present.sum():
        return None
    i = int(np.argmax(bad))
    return i, values[i], int(bad.sum())


def numbers_read_as_category(cols: Columns, name: str) -> str | None:
    """The warning for a mostly numeric column that a few non-numbers turn into a category, or None."""
    found = first_non_number(cols.data[name])
    if not found:
        return None
    i, value, count = found
    return (f"{cols.origin}: column {name!r} {cols.where(i)}: {value!r} is not a number ({count} such values), so the "
            f"column is read as a category. If it is numeric, declare it with data.features: {{{name}: numeric}} and "
            f"data.na_values: [{value!r}]; data.features: {{{name}: category}} keeps it a category")


def _check_target_is_not_text(train: Columns, name: str) -> None:
    """Text and label columns swapped: a class target with a different value on nearly every row is free text."""
    values = train.data[name]
    tokens = set(as_tokens(values))
    if values.dtype != object or len(values) < 20 or len(tokens) < 0.9 * len(values):
        return
    counts = {n: len(set(as_tokens(v))) for n, v in train.data.items() if n != name and v.ndim == 1}
    labels = sorted((c, n) for n, c in counts.items() if 2 <= c <= 50)
    hint = (f"column {labels[0][1]!r} ({labels[0][0]} values) looks like the label: set data.target: {labels[0][1]}"
            if labels else "set data.target to the column of labels")
    raise DataError(f"{train.origin}: target {name!r} has {len(tokens)} different values in {len(values)} rows, like free "
                    f"text, not class labels; {hint} (and data.features: {{{name}: text}} to read the text)")


def _describe(feature) -> str:
    if feature.kind == "category":
        return f"{feature.name} category ({len(feature.vocab)} values)"
    return f"{feature.name} {feature.kind}"


class FeatureSet:
    def __init__(self, inputs: list, target: ClassLabels | RegressionTarget):
        self.inputs, self.target = inputs, target
        self.summary: str | None = None  # what fit inferred, one line; training notes it (evaluate refits quietly)
        self.warnings: list[str] = []  # what fit found suspicious in the data; training warns them, once, the same way

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, train: Columns, cfg: DataConfig, target_name: str) -> FeatureSet:
        if target_name not in train.data:
            raise DataError(f"{train.origin}: no target column {target_name!r} (columns: {', '.join(train.names)}). "
                            f"Set data.target{did_you_mean(target_name, train.names)}")
        for name in list(cfg.features) + cfg.drop:
            if name not in train.data:
                raise ConfigError(f"data.features/data.drop: {name!r} is not a column of {train.origin}"
                                  f"{did_you_mean(name, train.names)}")
        y = train.data[target_name]
        task = cfg.task if cfg.task != "auto" else infer_task(y)
        if task == "classification":
            _check_target_is_not_text(train, target_name)
        warnings = [task_mismatch(y, task, target_name, train.origin)] if cfg.task != "auto" else []
        with train.citing_rows():
            target = (ClassLabels(target_name) if task == "classification" else RegressionTarget(target_name)).fit(y, train.origin)
        inputs, unused = [], []
        for name, values in train.data.items():
            if name == target_name or name in cfg.drop:
                unused += [name] if name != target_name else []
                continue
            kind = cfg.features.get(name) or infer_kind(values)
            if kind == "category" and name not in cfg.features:
                warnings.append(numbers_read_as_category(train, name))
            if kind == "ignore":
                unused.append(name)
                continue
            cls_ = KINDS[kind]
            if kind == "category":
                feat = cls_(name, min_count=cfg.category_min_count, max_vocab=cfg.category_max_vocab)
            elif kind == "text":
                feat = cls_(name, max_length=cfg.text.max_length, settings=cfg.text.model_dump())
            else:
                feat = cls_(name)
            with train.citing_rows():
                inputs.append(feat.fit(values, train.origin))
        classes = f", {target.n_outputs} classes" if target.kind == "classification" else ""
        summary = (f"columns: {', '.join([_describe(f) for f in inputs] + [f'{n} ignored' for n in unused])}; "
                   f"target {target_name}: {target.kind}{classes}")
        if not inputs:
            raise DataError(f"{train.origin}: no input columns left besides the target {target_name!r}")
        for kind in ("image", "text"):
            if any(f.kind == kind for f in inputs) and len(inputs) > 1:
                raise ConfigError(f"{train.origin}: a {kind} column mixed with other columns is not supported yet; drop the "
                                  f"others ({', '.join(f.name for f in inputs if f.kind != kind)}) with data.drop")
        fitted = cls(inputs, target)
        fitted.summary, fitted.warnings = summary, [w for w in warnings if w]
        return fitted

    # ------------------------------------------------------------------ shapes
    @property
    def task(self) -> str:
        return self.target.kind

    @property
    def input_shape(self) -> list[int]:
        if self.inputs[0].kind == "image":
            return list(self.inputs[0].shape)
        if self.inputs[0].kind == "text":
            return [self.inputs[0].max_length]
        return [sum(f.width for f in self.inputs)]

    @property
    def vocab_size(self) -> int | None:
        """Token vocabulary of a text input (models that embed token ids need it)."""
        return self.inputs[0].vocab_size if self.inputs[0].kind == "text" else None

    @property
    def n_outputs(self) -> int:
        return self.target.n_outputs

    def schema(self) -> dict[str, str]:
        return {f.name: f.kind for f in self.inputs}

    # ------------------------------------------------------------------ transforming
    def transform_inputs(self, cols: Columns) -> torch.Tensor:
        missing = [f.name for f in self.inputs if f.name not in cols.data]
        if missing:
            raise DataError(f"{cols.origin}: missing input column(s) {', '.join(missing)} (the model was trained on "
                            f"{', '.join(self.schema())})")
        with cols.citing_rows():
            parts = [f.transform(cols.data[f.name], cols.origin) for f in self.inputs]
        x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return torch.from_numpy(np.ascontiguousarray(x))

    def transform_target(self, cols: Columns) -> torch.Tensor:
        if self.target.name not in cols.data:
            raise DataError(f"{cols.origin}: no target column {self.target.name!r}; evaluation needs the true values")
        with cols.citing_rows():
            return torch.from_numpy(self.target.encode(cols.data[self.target.name], cols.origin))

    def rows_to_columns(self, rows: list[dict[str, Any]], origin: str = "request", row_names: list[str] | None = None) -> Columns:
        """Raw rows (dicts) to Columns with the input schema; unknown keys are errors, None is missing.

        `row_names` (e.g. 'people.jsonl:3') say where a bad row came from."""
        names = list(self.schema())
        for i, row in enumerate(rows):
            where = f"{origin}: row {i}" if row_names is None else row_names[i]
            if not isinstance(row, dict):
                raise RequestError(f"{where} is {type(row).__name__}; expected an object with keys {', '.join(names)}")
            extra = [k for k in row if k not in names and k != self.target.name]
            if extra:
                raise RequestError(f"{where}: unknown key {extra[0]!r}{did_you_mean(extra[0], names)} (inputs: {', '.join(names)})")
            absent = [n for n in names if n not in row]
            if absent:
                raise RequestError(f"{where}: missing {', '.join(absent)} (the model takes {', '.join(names)}; "
                                   "give null for a missing value)")
        data: dict[str, np.ndarray] = {}
        for f in self.inputs:
            values = [r[f.name] for r in rows]
            if f.kind == "text":
                bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
                if bad:
                    raise RequestError(f"{origin}: row {bad[0]}: {f.name!r} must be a non-empty string")
                data[f.name] = np.array(values, dtype=object)
            elif f.kind == "image":
                try:
                    data[f.name] = np.stack([np.asarray(v) for v in values])
                except ValueError as exc:
                    raise RequestError(f"{origin}: images of different shapes ({exc})") from None
            else:
                data[f.name] = np.array([np.nan if v is None else v for v in values], dtype=object)
        return Columns(data, origin=origin)

    def warn_unseen(self, cols: Columns) -> None:
        """One warning per category/binary column holding values training never saw: they predict as unknown."""
        for f in self.inputs:
            known = getattr(f, "vocab", None) if f.kind == "category" else getattr(f, "values", None) if f.kind == "binary" else None
            if known is None or f.name not in cols.data:
                continue
            known = set(known)
            tokens = as_tokens(cols.data[f.name])
            unseen = [t for t in tokens if t != MISSING and t not in known]
            if unseen:
                warn(f"{f.name}: {len(unseen)} of {len(tokens)} rows have values never seen in training (e.g. {unseen[0]!r}); "
                     "they are treated as unknown")

    # ------------------------------------------------------------------ saving
    def to_json(self) -> dict[str, Any]:
        return {"version": FEATURES_VERSION, "task": self.task, "input_shape": self.input_shape, "schema": self.schema(),
                "target": self.target.to_json(), "inputs": [f.to_json() for f in self.inputs]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureSet:
        return cls([KINDS[f["kind"]].from_json(f) for f in d["inputs"]], TARGETS[d["target"]["kind"]].from_json(d["target"]))
