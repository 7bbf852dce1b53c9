"""Readers that turn files into Columns. `read_source` picks one from the config."""

from __future__ import annotations

from pathlib import Path

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.errors import ConfigError, DataError

# Compressions pandas (and tables._open) read a table through, so reviews.csv.zip is a CSV like reviews.csv.gz.
# Only .gz is also read by the array readers (arrays.py), so the others are looked through for tables alone.
TABLE_COMPRESSED = (".bz2", ".xz", ".zip")
TABLE_EXT = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".txt": "csv"}


def detect_source(path: str) -> str:
    """The source kind for a path: by extension or folder layout. A trailing .gz is looked through, and so is
    .bz2/.xz/.zip after a table's extension (reviews.csv.zip, Kaggle's usual download, is a CSV)."""
    p = Path(path)
    if p.is_dir():
        from forgeml.data.sources.audio import is_audio_folder

        return "audio_folder" if is_audio_folder(p) else "image_folder"
    suffixes = [s.lower() for s in p.suffixes]
    if len(suffixes) > 1 and suffixes[-1] in TABLE_COMPRESSED and suffixes[-2] in TABLE_EXT:
        return TABLE_EXT[suffixes[-2]]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in TABLE_EXT:
        return TABLE_EXT[ext]
    if ext == ".npz":
        return "npz"
    if "ubyte" in p.name or ext.startswith(".idx"):
        return "idx"
    if ext in (".data", ".test", ".names", ""):
        return "csv"
    raise ConfigError(f"data.path {path}: cannot tell its format from the name; set data.source (csv, tsv, parquet, jsonl, npz, idx, image_folder, audio_folder)")


def read_source(cfg: DataConfig, path: str | None = None, labels_path: str | None = None, split: str = "train") -> Columns:
    """Read one file/folder/set named by the config (or `path` for val/test/evaluation files).

    `split` (train, val or test) picks the arrays an NPZ file is read with (data.npz_keys)."""
    path = path or cfg.path
    if not path:
        raise ConfigError("data.path: not set. Give a file, a folder of class folders, or a scikit-learn set (data.source: sklearn, data.path: digits)")
    kind = cfg.source if cfg.source != "auto" else ("sklearn" if path.startswith("sklearn:") else None)
    if kind == "sklearn" or path.startswith("sklearn:"):
        from forgeml.data.sources.sklearn_sets import read_sklearn

        name = path.removeprefix("sklearn:")
        if Path(name).exists():
            how = f"data.path: {path}" if path.startswith("sklearn:") else "data.source: sklearn"
            raise ConfigError(f"{how} asks for a scikit-learn set, but {name} is a file; to read the file set data.source: auto "
                              f"(or its format) and data.path: {name}")
        return read_sklearn(name)
    if not Path(path).exists():
        from forgeml.data.sources.sklearn_sets import SETS

        if path in SETS:
            raise ConfigError(f"data.path: {path!r} is a scikit-learn set, not a file (data.source is {cfg.source}); "
                              f"set data.source: sklearn, or data.path: sklearn:{path}")
        raise DataError(f"{path}: no such file or folder (relative paths are read from {Path.cwd()}). Check data.path / data.test_path")
    kind = kind or detect_source(path)
    if cfg.x_kind != "auto" and kind != "npz":  # a promise about an npz array that this file cannot keep
        raise ConfigError(f"data.x_kind: {cfg.x_kind} says what an NPZ inputs array holds, but {path} is read as {kind}; "
                          "remove data.x_kind (table columns become series through data.sequence.pattern or data.features)")
    if kind in ("csv", "tsv", "parquet", "jsonl"):
        from forgeml.data.sources.tables import read_table

        return read_table(path, kind, cfg)
    if kind == "npz":
        from forgeml.data.sources.arrays import read_npz

        x_key, y_key = cfg.npz_keys(split)
        prefix = "" if split == "train" else f"{split}_"
        return read_npz(path, x_key, y_key, target=cfg.target or "label", key_fields=f"data.{prefix}x_key and data.{prefix}y_key",
                        x_kind=cfg.x_kind, series_name=cfg.sequence.name)
    if kind == "idx":
        from forgeml.data.sources.arrays import read_idx_pair

        return read_idx_pair(path, labels_path or cfg.labels_path, target=cfg.target or "label")
    if kind == "image_folder":
        from forgeml.data.sources.images import read_image_folder

        return read_image_folder(path, cfg.image.size, cfg.image.channels, target=cfg.target or "label")
    if kind == "audio_folder":
        from forgeml.data.sources.audio import read_audio_folder

        return read_audio_folder(path, target=cfg.target or "label")
    if kind == "text":
        raise ConfigError("data.source: text is a corpus for a language model; set model.name: gpt "
                          "(for a column of texts to classify, read the table and set data.features: {COLUMN: text})")
    raise ConfigError(f"data.source: {kind!r} is not a source")
