"""From a DataConfig to fitted features and tensors per split.

    data = prepare(cfg.data)            # reads, splits, fits on train only, transforms
    data.splits["train"].x, data.splits["train"].y
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.data.features.category import as_tokens
from forgeml.data.featureset import FeatureSet
from forgeml.data.sources import detect_source, read_source
from forgeml.data.split import split_indices
from forgeml.errors import ConfigError, did_you_mean


@dataclass
class Split:
    x: dict[str, torch.Tensor]  # one tensor per input column (docs/contract.md)
    y: dict[str, torch.Tensor]  # one tensor per output
    raw: Columns

    def __len__(self) -> int:
        return len(next(iter(self.y.values())))


@dataclass
class PreparedData:
    features: FeatureSet
    splits: dict[str, Split]


def target_name(cfg: DataConfig, cols: Columns) -> str:
    """The column to predict (with data.outputs: the first one, which also stratifies the split)."""
    if cfg.outputs:
        return cfg.outputs[0].name
    if cfg.target:
        return cfg.target
    for guess in ("label", "target"):
        if guess in cols.data:
            return guess
    raise ConfigError(f"data.target: not set and {cols.origin} has no 'label' or 'target' column; name the column to predict "
                      f"(columns: {', '.join(cols.names[:20])})")


def _read(cfg: DataConfig, path: str | None = None, split: str = "train") -> Columns:
    cols = read_source(cfg, path, labels_path=_labels_for(cfg, path), split=split)
    if cfg.label_aliases:
        name = target_name(cfg, cols)
        if name in cols.data:
            tokens = as_tokens(cols.data[name])
            values = cols.data[name]
            if values.dtype == object or any(t in cfg.label_aliases for t in tokens):
                cols.data[name] = np.array([cfg.label_aliases.get(t, v) for t, v in zip(tokens, values)], dtype=object)
    return cols


def _labels_for(cfg: DataConfig, path: str | None) -> str | None:
    """IDX val/test files: their labels file sits beside them with 'images' -> 'labels' in the name."""
    if path is None or cfg.labels_path is None:
        return cfg.labels_path
    return path.replace("images-idx3", "labels-idx1").replace("images", "labels")


def load_columns(cfg: DataConfig) -> dict[str, Columns]:
    """Raw columns per split (train, and val/test where there are any)."""
    return _load_columns(cfg)[0]


def _load_columns(cfg: DataConfig) -> tuple[dict[str, Columns], str | None]:
    """Raw columns per split, and a line on the groups data.split.group kept together (None without one)."""
    for split in ("val", "test"):
        _check_not_training_file(cfg, split)
    main = _read(cfg)
    if cfg.limit and cfg.limit < len(main):
        keep = np.sort(np.random.default_rng(cfg.split.seed).choice(len(main), cfg.limit, replace=False))
        main = main.take(keep)
    name = target_name(cfg, main)
    labels = None
    # a multilabel cell ('3,12') is a set, not a class: splitting by its exact set would only warn about rare sets
    multilabel = any(o.name == name and o.type == "multilabel" for o in cfg.outputs)
    if name in main.data and not multilabel and (cfg.task == "classification" or (cfg.task == "auto" and _looks_categorical(main.data[name]))):
        labels = np.array(as_tokens(main.data[name]), dtype=object)
    want_val, want_test = cfg.val_path is None, cfg.test_path is None
    groups, said = split_groups(cfg, main) if (want_val and cfg.split.val) or (want_test and cfg.split.test) else (None, None)
    try:
        idx = split_indices(len(main), cfg.split, labels, want_val=want_val, want_test=want_test, groups=groups)
    except ValueError as exc:
        raise ConfigError(f"data.split: {exc}") from None
    out = {k: main.take(v) for k, v in idx.items() if len(v)}
    if cfg.val_path:
        out["val"] = _read(cfg, cfg.val_path, "val")
    if cfg.test_path:
        out["test"] = _read(cfg, cfg.test_path, "test")
    return out, said


def split_groups(cfg: DataConfig, cols: Columns) -> tuple[np.ndarray | None, str | None]:
    """data.split.group as a group id per row, and a line saying how many groups of several rows it keeps whole."""
    from forgeml.data.groups import row_groups

    how = cfg.split.group
    if how == "none":
        return None, None
    if how == "duplicates":  # identical inputs: the outputs and dropped columns do not count
        outputs = {o.name for o in cfg.outputs} or {target_name(cfg, cols)}
        names = [n for n in cols.names if n not in outputs and n not in cfg.drop and cfg.features.get(n) != "ignore"]
        what = "with identical inputs"
    elif how in cols.data:
        names, what = [how], f"sharing a value of {how!r}"
    else:
        raise ConfigError(f"data.split.group: {how!r} is neither none, duplicates nor a column of {cols.origin}"
                          f"{did_you_mean(how, ['none', 'duplicates', *cols.names])}")
    groups = row_groups([cols.data[n] for n in names])
    sizes = np.bincount(groups)
    several = sizes[sizes > 1]
    return groups, (f"split: {len(several)} groups of 2+ rows {what} ({int(several.sum())} rows), each kept within "
                    f"one split (data.split.group: {how})")


def _same_file(a: str, b: str) -> bool:
    """Two spellings of one file or folder (./x.csv, x.csv, a link to it), or one scikit-learn set."""
    if Path(a).exists() and Path(b).exists():
        return Path(a).resolve() == Path(b).resolve()
    return a.removeprefix("sklearn:") == b.removeprefix("sklearn:")


def _check_not_training_file(cfg: DataConfig, split: str) -> None:
    """data.val_path/test_path naming the training file would measure the model on rows it trained on."""
    path = cfg.val_path if split == "val" else cfg.test_path
    if not path or not cfg.path or not _same_file(path, cfg.path):
        return
    source = cfg.source if cfg.source != "auto" else (detect_source(cfg.path) if Path(cfg.path).exists() else "")
    if source == "npz" and cfg.npz_keys(split)[0] != cfg.x_key:
        return  # one file holding x_train/y_train and x_test/y_test
    hint = f", or set data.{split}_x_key/{split}_y_key to other arrays in it" if source == "npz" else ""
    raise ConfigError(f"data.{split}_path: {path} is the training file data.path, so the {split} set would be the training "
                      f"set; give a separate file, or remove data.{split}_path to hold out split.{split} of data.path{hint}")


def _looks_categorical(values: np.ndarray) -> bool:
    from forgeml.data.featureset import infer_task

    return infer_task(values) == "classification"


def prepare(cfg: DataConfig, tokenizers: dict | None = None) -> PreparedData:
    """`tokenizers`: text columns (by name, or 'text' for all) that keep a given tokenizer (FeatureSet.fit)."""
    cols, grouped = _load_columns(cfg)
    train = cols["train"]
    features = FeatureSet.fit(train, cfg, target_name(cfg, train), tokenizers=tokenizers)
    if grouped:  # training notes the summary once; evaluate and the report prepare again quietly
        features.summary = f"{features.summary}; {grouped}"
    _check_augment(cfg, features, train.origin)
    splits = {name: make_split(features, c) for name, c in cols.items()}
    return PreparedData(features, splits)


def _check_augment(cfg: DataConfig, features: FeatureSet, origin: str) -> None:
    """data.augment is a promise about training images (or spectrograms): refuse it where it cannot do what it says."""
    from forgeml.data.augment import AUDIO_OPS, IMAGE_OPS, asked, check_audio_fits

    aug = cfg.augment
    if asked(aug, AUDIO_OPS):
        audio = [f for f in features.inputs if f.kind == "audio"]
        if len(audio) != 1 or asked(aug, IMAGE_OPS):
            raise ConfigError(f"data.augment ({', '.join(asked(aug, AUDIO_OPS))}): masks and time shifts apply to one audio "
                              f"input's spectrograms (and no image ops beside them), but the inputs of {origin} are "
                              f"{', '.join(f'{f.name} ({f.kind})' for f in features.inputs[:5])}; remove them from data.augment")
        check_audio_fits(aug, audio[0].shape, origin)
        return
    image_ops = asked(aug, IMAGE_OPS)
    if not image_ops:
        return
    first = features.inputs[0]
    if first.kind != "image":
        raise ConfigError(f"data.augment ({', '.join(image_ops)}): augmentation applies to images, but the inputs of {origin} are "
                          f"{', '.join(f'{f.name} ({f.kind})' for f in features.inputs[:5])}; remove data.augment")
    from forgeml.data.augment import check_fits

    check_fits(aug, first.shape, origin)


def make_split(features: FeatureSet, cols: Columns) -> Split:
    return Split(features.transform_inputs(cols), features.transform_targets(cols), cols)


def load_eval_file(cfg: DataConfig, features: FeatureSet, path: str) -> Split:
    """A new labelled file (same format as training) transformed with the run's fitted features."""
    return make_split(features, _read(cfg, path, "test"))
