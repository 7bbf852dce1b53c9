"""What `forgeml predict RUN INPUT...` accepts: table files, image files, audio files, JSON(L) files, or JSON text."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from forgeml.data.audio.decode import AUDIO_EXT, MP3, is_audio_name
from forgeml.data.columns import Columns
from forgeml.data.sources.arrays import read_npz
from forgeml.data.sources.images import IMAGE_EXT, read_image
from forgeml.data.sources.tables import read_table
from forgeml.errors import RequestError
from forgeml.predictor import Predictor


def read_inputs(predictor: Predictor, inputs: list[str]) -> tuple[Columns, list[str], list[str] | None]:
    """Columns to predict, a display name per row, and the true labels when the input carries them."""
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    truth: list[str] = []
    target = predictor.features.target.name
    schema = predictor.features.schema()
    image_feature = next((f for f in predictor.features.inputs if f.kind == "image"), None)
    text_feature = next((f for f in predictor.features.inputs if f.kind in ("text", "corpus")), None)  # corpus: a prompt
    audio_feature = next((f for f in predictor.features.inputs if f.kind == "audio"), None)
    for item in inputs:
        path = Path(item)
        if item != "-" and not item.lstrip().startswith(("{", "[")) and not path.exists() and _looks_like_path(item):
            raise RequestError(f"{item}: no such file (relative paths are read from {Path.cwd()})")
        if item == "-":
            parsed = _json_lines(sys.stdin.read(), "stdin")
            rows += parsed
            names += [f"stdin:{i}" for i in range(len(parsed))]
        elif item.lstrip().startswith(("{", "[")) and (text_feature is None or _is_json(item)):
            parsed = _json_rows(item, "argument")
            rows += parsed
            names += [f"arg:{i}" for i in range(len(parsed))]
        elif path.suffix.lower() in IMAGE_EXT:
            if image_feature is None:
                raise RequestError(f"{item}: this model takes {', '.join(schema)}, not images")
            if not path.is_file():
                raise RequestError(f"{item}: no such image file")
            if image_feature.dtype != "uint8":
                raise RequestError(f"{item}: this model was trained on {image_feature.dtype} arrays, not on 8-bit image files "
                                   "(their pixel scale would differ); give the arrays as JSON rows instead")
            c, h, w = image_feature.shape
            rows.append({image_feature.name: read_image(path, (h, w), c)})
            names.append(path.name)
        elif is_audio_name(path.name):  # decoded by the audio feature, as in training
            if audio_feature is None or len(schema) > 1:
                raise RequestError(f"{item}: this model takes {', '.join(schema)}, not a lone audio file"
                                   + ("; give a table or JSON rows with every input" if audio_feature is not None else ""))
            if not path.is_file():
                raise RequestError(f"{item}: no such audio file")
            rows.append({audio_feature.name: str(path)})
            names.append(path.name)
        elif path.suffix.lower() == ".npz" and path.is_file():
            data_cfg = predictor.config.data
            cols = read_npz(str(path), data_cfg.x_key, data_cfg.y_key, target=target, key_fields="data.x_key", require_y=False,
                            x_kind=data_cfg.x_kind, series_name=data_cfg.sequence.name)
            rows += _table_rows(cols, item, schema, target)
            names += [f"{path.name}:{i}" for i in range(len(cols))]
        elif path.suffix.lower() in (".json",):
            parsed = _json_rows(_read(path), item)
            rows += parsed
            names += [f"{path.name}:{i}" for i in range(len(parsed))]
        elif path.suffix.lower() == ".jsonl":
            parsed = _json_lines(_read(path), item)
            rows += parsed
            names += [f"{path.name}:{i}" for i in range(len(parsed))]
        elif path.is_file() and image_feature is not None:
            raise RequestError(f"{item}: this model takes images ({', '.join(sorted(IMAGE_EXT))}) or JSON rows, not a table file")
        elif path.is_file() and text_feature is not None and path.suffix.lower() == ".txt":
            rows += [{text_feature.name: line} for line in _read(path).splitlines() if line.strip()]
            names += [f"{path.name}:{i}" for i in range(len(rows) - len(names))]
        elif path.is_file():
            kind = "tsv" if ".tsv" in path.suffixes else "parquet" if path.suffix in (".parquet", ".pq") else "csv"
            cols = read_table(str(path), kind, predictor.config.data)
            rows += _table_rows(cols, item, schema, target)
            names += [f"{path.name}:{i}" for i in range(len(cols))]
        elif text_feature is not None:  # a raw string for a text model
            rows.append({text_feature.name: item})
            names.append(item if len(item) <= 40 else item[:37] + "...")
        else:
            raise RequestError(f"{item}: not a file, and not JSON text. Give CSV/TSV/Parquet/JSON/JSONL files, image or audio files, "
                               "or '-' for JSON lines on stdin")
    if not rows:
        raise RequestError("no rows to predict")
    has_truth = all(isinstance(r, dict) and target in r for r in rows)
    if has_truth:
        from forgeml.data.features.category import as_tokens

        aliases = predictor.config.data.label_aliases  # the same renaming as in training ('>50K.' -> '>50K')
        truth = [aliases.get(t, t) for t in as_tokens(np.array([r.pop(target) for r in rows], dtype=object))]
    else:
        for r in rows:
            if isinstance(r, dict):
                r.pop(target, None)
    return predictor.features.rows_to_columns(rows, origin="input", row_names=names), names, (truth if has_truth else None)


# A text model reads a bare argument as a sentence; one shaped like a file name is a mistyped path, not a review.
FILE_EXT = {".csv", ".tsv", ".txt", ".json", ".jsonl", ".parquet", ".pq", ".npz", ".gz", *IMAGE_EXT, *AUDIO_EXT, MP3}


def _looks_like_path(item: str) -> bool:
    if any(c.isspace() for c in item):
        return False
    return "/" in item or "\\" in item or Path(item).suffix.lower() in FILE_EXT


def _table_rows(cols: Columns, item: str, schema: dict[str, str], target: str) -> list[dict[str, Any]]:
    """A file's rows as dicts of the model's inputs (and the target, when the file has it)."""
    missing = [k for k in schema if k not in cols.data]
    if missing:
        raise RequestError(f"{item}: no column {', '.join(missing)}; the model takes {', '.join(schema)} "
                           "(an empty cell is a missing value)")
    keep = [k for k in cols.names if k in schema or k == target]
    return [{k: _plain(cols.data[k][i]) for k in keep} for i in range(len(cols))]


def _read(path: Path) -> str:
    if not path.is_file():
        raise RequestError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _is_json(text: str) -> bool:
    """Text models take raw strings: '[URGENT] call now' is a message, not JSON."""
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _json_lines(text: str, origin: str) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RequestError(f"{origin}: line {i + 1} is not valid JSON ({exc})") from None
    return rows


def _json_rows(text: str, origin: str) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"{origin}: not valid JSON ({exc})") from None
    return parsed if isinstance(parsed, list) else [parsed]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
