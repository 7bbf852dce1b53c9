"""All the features of a run plus its outputs: fitted together, saved together as features.json.

The tensor contract (docs/contract.md): `transform_inputs` gives one tensor per input column, keyed by
its name; `transform_targets` one per output; `decode` turns the network's output dict back into
labels and values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.data.features import KINDS, TARGETS, ClassLabels, RegressionTarget
from forgeml.data.features.category import MISSING, as_tokens
from forgeml.data.features.multilabel import MultiLabelTarget
from forgeml.data.features.numeric import as_float
from forgeml.errors import ConfigError, DataError, RequestError, did_you_mean
from forgeml.notes import warn

FEATURES_VERSION = 2


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
    from forgeml.data.features.audio import looks_like_audio

    if looks_like_audio(values):  # a column of .wav/.flac/.ogg file names
        return "audio"
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


def output_configs(cfg: DataConfig, target_name: str) -> list:
    """data.outputs, or the short form: data.target (+ data.task) as one output."""
    from forgeml.config import OutputConfig

    if cfg.outputs:
        return list(cfg.outputs)
    task = {"classification": "class", "regression": "regression"}.get(cfg.task, "auto")
    return [OutputConfig(name=target_name, type=task)]


class FeatureSet:
    def __init__(self, inputs: list, outputs: list, weights: dict[str, float] | None = None):
        self.inputs, self.outputs = inputs, outputs
        self.weights = {o.name: float((weights or {}).get(o.name, 1.0)) for o in outputs}
        self.summary: str | None = None  # what fit inferred, one line; training notes it (evaluate refits quietly)
        self.warnings: list[str] = []  # what fit found suspicious in the data; training warns them, once, the same way

    # ------------------------------------------------------------------ fitting
    @property
    def target(self):
        """The first output (the only one in the short form)."""
        return self.outputs[0]

    @classmethod
    def fit(cls, train: Columns, cfg: DataConfig, target_name: str, tokenizers: dict[str, Any] | None = None) -> FeatureSet:
        """`tokenizers`: given tokenizers by text column name, or by the kind 'text' for every text column (a pretrained
        model's, a run's kept one): those columns keep them instead of fitting one, truncating at their max_length."""
        tokenizers = tokenizers or {}
        wanted = output_configs(cfg, target_name)
        for out in wanted:
            if out.name not in train.data:
                field = "data.outputs" if cfg.outputs else "data.target"
                raise DataError(f"{train.origin}: no target column {out.name!r} (columns: {', '.join(train.names)}). "
                                f"Set {field}{did_you_mean(out.name, train.names)}")
        for name in list(cfg.features) + cfg.drop:
            if name not in train.data:
                raise ConfigError(f"data.features/data.drop: {name!r} is not a column of {train.origin}"
                                  f"{did_you_mean(name, train.names)}")
        outputs, warnings = [], []
        for out in wanted:
            target, warning = _fit_output(train, cfg, out)
            outputs.append(target)
            warnings.append(warning)
        output_names = {o.name for o in outputs}
        inputs, unused = [], []
        for name, values in train.data.items():
            if name in output_names or name in cfg.drop:
                unused += [name] if name not in output_names else []
                continue
            kind = cfg.features.get(name) or ("sequence" if values.ndim == 3 else infer_kind(values))  # (N, T, C): a series
            if kind == "category" and name not in cfg.features:
                warnings.append(numbers_read_as_category(train, name))
            if kind == "ignore":
                unused.append(name)
                continue
            cls_ = KINDS[kind]
            if kind == "category":
                feat = cls_(name, min_count=cfg.category_min_count, max_vocab=cfg.category_max_vocab)
            elif kind == "text" and (given := tokenizers.get(name, tokenizers.get("text"))) is not None:
                feat = cls_(name, given, max_length=getattr(given, "max_length", cfg.text.max_length), kept=True)
            elif kind == "text":
                feat = cls_(name, max_length=cfg.text.max_length, settings=cfg.text.model_dump())
            elif kind == "sequence":
                feat = cls_(name, settings=cfg.sequence)
            elif kind == "audio":
                feat = cls_(name, settings=cfg.audio)
            else:
                feat = cls_(name)
            with train.citing_rows():
                inputs.append(feat.fit(values, train.origin))
        said = [f"{o.name}: {o.kind}" + (f", {o.n_outputs} classes" if o.kind == "classification" else
                                         f", {o.n_outputs} labels" if o.kind == "multilabel" else "") for o in outputs]
        summary = (f"columns: {', '.join([_describe(f) for f in inputs] + [f'{n} ignored' for n in unused])}; "
                   f"{'target' if len(outputs) == 1 else 'outputs'} {'; '.join(said)}")
        if not inputs:
            raise DataError(f"{train.origin}: no input columns left besides the output(s) {', '.join(sorted(output_names))}")
        fitted = cls(inputs, outputs, {o.name: o.weight for o in wanted})
        fitted.summary, fitted.warnings = summary, [w for w in warnings if w]
        return fitted

    # ------------------------------------------------------------------ shapes
    @property
    def task(self) -> str:
        """The one output's kind (classification, regression, multilabel; language_model for next_token), or multi_output."""
        if len(self.outputs) > 1:
            return "multi_output"
        return {"next_token": "language_model"}.get(self.outputs[0].kind, self.outputs[0].kind)

    @property
    def input_shape(self) -> list[int]:
        if self.inputs[0].kind in ("image", "audio"):
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
    def transform_inputs(self, cols: Columns) -> dict[str, torch.Tensor]:
        """One tensor per input column, keyed by its name (docs/contract.md: categories as int64 indices)."""
        missing = [f.name for f in self.inputs if f.name not in cols.data]
        if missing:
            raise DataError(f"{cols.origin}: missing input column(s) {', '.join(missing)} (the model was trained on "
                            f"{', '.join(self.schema())})")
        out = {}
        with cols.citing_rows():
            for f in self.inputs:
                values = cols.data[f.name]
                if f.kind == "sequence":  # the series, and `<name>.length` when rows may differ in length
                    out.update({k: torch.from_numpy(v) for k, v in f.inputs(values, cols.origin).items()})
                    continue
                x = f.indices(values) if f.kind == "category" else f.transform(values, cols.origin)
                out[f.name] = torch.from_numpy(np.ascontiguousarray(x))
        return out

    def transform_targets(self, cols: Columns) -> dict[str, torch.Tensor]:
        """One tensor per output: class int64 (N,), regression float32 (N, 1) standardised, multilabel float32 (N, L) of 0/1."""
        out = {}
        for target in self.outputs:
            if target.name not in cols.data:
                raise DataError(f"{cols.origin}: no target column {target.name!r}; evaluation needs the true values")
            with cols.citing_rows():
                y = target.encode(cols.data[target.name], cols.origin)
            out[target.name] = torch.from_numpy(y if y.dtype == np.int64 or y.ndim == 2 else y.reshape(len(y), -1))
        return out

    def decode(self, outputs: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """The network's outputs back to one dict per row. One output: its fields ({label, confidence,
        probabilities} or {prediction}); several: a key per output holding those fields."""
        per_output = {o.name: _decode_one(o, outputs[o.name].float().cpu()) for o in self.outputs}
        if len(self.outputs) == 1:
            return per_output[self.outputs[0].name]
        n = len(next(iter(per_output.values())))
        return [{name: rows[i] for name, rows in per_output.items()} for i in range(n)]

    def rows_to_columns(self, rows: list[dict[str, Any]], origin: str = "request", row_names: list[str] | None = None) -> Columns:
        """Raw rows (dicts) to Columns with the input schema; unknown keys are errors, None is missing.

        `row_names` (e.g. 'people.jsonl:3') say where a bad row came from."""
        names = list(self.schema())
        for i, row in enumerate(rows):
            where = f"{origin}: row {i}" if row_names is None else row_names[i]
            if not isinstance(row, dict):
                raise RequestError(f"{where} is {type(row).__name__}; expected an object with keys {', '.join(names)}")
            extra = [k for k in row if k not in names and k not in self.weights]
            if extra:
                raise RequestError(f"{where}: unknown key {extra[0]!r}{did_you_mean(extra[0], names)} (inputs: {', '.join(names)})")
            absent = [n for n in names if n not in row]
            if absent:
                raise RequestError(f"{where}: missing {', '.join(absent)} (the model takes {', '.join(names)}; "
                                   "give null for a missing value)")
        data: dict[str, np.ndarray] = {}
        for f in self.inputs:
            values = [r[f.name] for r in rows]
            if f.kind in ("text", "corpus"):  # corpus: a language model's prompt
                # a prompt may be a new line or a space (a GPT continues it); a text to classify needs some word
                bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not (v if f.kind == "corpus" else v.strip())]
                if bad:
                    raise RequestError(f"{origin}: row {bad[0]}: {f.name!r} must be a non-empty string"
                                       + ("" if f.kind == "corpus" else " with some non-space character"))
                data[f.name] = np.array(values, dtype=object)
            elif f.kind == "image":
                try:
                    data[f.name] = np.stack([np.asarray(v) for v in values])
                except ValueError as exc:
                    raise RequestError(f"{origin}: images of different shapes ({exc})") from None
            elif f.kind in ("audio", "sequence"):  # one clip (path, bytes or 1-D wave) or one series per cell; np.array
                # would merge equal-length lists or waves into one block
                data[f.name] = np.empty(len(values), dtype=object)
                for i, v in enumerate(values):
                    data[f.name][i] = v
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
        return {"version": FEATURES_VERSION, "task": self.task, "schema": self.schema(),
                "inputs": [f.to_json() for f in self.inputs],
                "outputs": [{**o.to_json(), "weight": self.weights[o.name]} for o in self.outputs]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureSet:
        if d.get("version") != FEATURES_VERSION:
            raise DataError(f"features.json version {d.get('version')}, this forgeml reads {FEATURES_VERSION}; convert the run "
                            "with: forgeml upgrade RUN")
        inputs = [KINDS[f["kind"]].from_json(f) for f in d["inputs"]]
        tokenizer = next((f.tokenizer for f in inputs if f.kind == "corpus"), None)  # a next_token output decodes with it
        outputs = [TARGETS[o["kind"]].from_json(o, tokenizer) if o["kind"] == "next_token" else TARGETS[o["kind"]].from_json(o)
                   for o in d["outputs"]]
        return cls(inputs, outputs, {o["name"]: o.get("weight", 1.0) for o in d["outputs"]})


def fitted_state(features_json: dict[str, Any]) -> dict[str, Any]:
    """features.json less what is set after fitting (multilabel thresholds, tuned on validation data once
    training ends): what a refit on the same data must reproduce exactly."""
    outputs = [{k: v for k, v in o.items() if not (o.get("kind") == "multilabel" and k == "thresholds")}
               for o in features_json.get("outputs", [])]
    return {**features_json, "outputs": outputs}


def _fit_output(train: Columns, cfg: DataConfig, out) -> tuple[Any, str | None]:
    """One output column fitted on the training split (its classes, or its mean and spread), and the
    warning to give when its declared type does not fit its values (or None)."""
    y = train.data[out.name]
    if out.type == "multilabel":  # a set per row: never inferred, always declared
        with train.citing_rows():
            return MultiLabelTarget.from_settings(out).fit(y, train.origin), None
    task = {"class": "classification", "regression": "regression"}.get(out.type) or (
        cfg.task if cfg.task != "auto" else infer_task(y))
    if task == "classification":
        _check_target_is_not_text(train, out.name)
    warning = task_mismatch(y, task, out.name, train.origin) if out.type != "auto" or cfg.task != "auto" else None
    with train.citing_rows():
        return (ClassLabels(out.name) if task == "classification" else RegressionTarget(out.name)).fit(y, train.origin), warning


def _decode_one(output, out: torch.Tensor) -> list[dict[str, Any]]:
    if output.kind == "classification":
        probs = out.softmax(-1).numpy()
        return [{"label": output.classes[int(p.argmax())], "confidence": float(p.max()),
                 "probabilities": {c: float(v) for c, v in zip(output.classes, p)}} for p in probs]
    if output.kind == "regression":
        values = output.decode(out.reshape(len(out)).numpy().astype(np.float64))
        return [{"prediction": float(v)} for v in values]
    return output.decode_rows(out)  # kinds added later (multilabel) decode themselves
