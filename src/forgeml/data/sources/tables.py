"""CSV / TSV / Parquet / JSONL tables (gzipped or not) read with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.errors import ConfigError, DataError


def read_table(path: str, kind: str, cfg: DataConfig) -> Columns:
    if cfg.header is not None and kind in ("parquet", "jsonl"):
        raise ConfigError(f"data.header: {kind} files name their own columns; remove data.header (or rename with data.columns)")
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        elif kind == "jsonl":
            df = pd.read_json(path, lines=True)
        else:
            sep = cfg.sep or ("\t" if kind == "tsv" else ",")
            header = cfg.header if cfg.header is not None else not cfg.columns
            df = pd.read_csv(
                path, sep=sep, header=0 if header else None, names=cfg.columns,
                na_values=cfg.na_values or None, skipinitialspace=True, comment=cfg.comment,
                quoting=3 if cfg.quote_char is None else 0, quotechar=cfg.quote_char or '"',  # 3: csv.QUOTE_NONE
                on_bad_lines="error", engine="c",
            )
    except ImportError as exc:
        raise DataError(f"{path}: reading {kind} needs an extra package ({exc}); pip install 'forgeml[parquet]'") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataError(f"{path}: cannot parse as {kind}: {str(exc).strip()}. Check data.sep, data.columns and data.comment") from None
    if df.empty:
        raise DataError(f"{path}: no rows")
    if cfg.na_values and kind in ("parquet", "jsonl"):
        df = df.replace(cfg.na_values, np.nan)
    if cfg.columns and len(df.columns) != len(cfg.columns):
        raise DataError(f"{path}: {len(df.columns)} columns but data.columns names {len(cfg.columns)}")
    if cfg.header is False and not cfg.columns:
        df.columns = [f"col_{i}" for i in range(len(df.columns))]
    data = {}
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_bool_dtype(col):
            data[str(name)] = col.to_numpy(dtype=object)
        elif pd.api.types.is_numeric_dtype(col):
            data[str(name)] = col.to_numpy(dtype=np.float64)
        else:
            values = col.to_numpy(dtype=object)
            data[str(name)] = np.array([v.strip() if isinstance(v, str) else v for v in values], dtype=object)
    return Columns(data, origin=path)
