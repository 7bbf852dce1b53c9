"""CSV / TSV / Parquet / JSONL tables (gzipped or not) read with pandas.

Nothing is lost without a word: the records pandas read are checked against the lines of the file (a stray
quote can swallow hundreds of rows into one value), and every row keeps its line number for later errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.data.sequence_columns import group_series_columns
from forgeml.errors import ConfigError, DataError
from forgeml.notes import note


def read_table(path: str, kind: str, cfg: DataConfig) -> Columns:
    if cfg.header is not None and kind in ("parquet", "jsonl"):
        raise ConfigError(f"data.header: {kind} files name their own columns; remove data.header (or rename with data.columns)")
    sep = cfg.sep or ("\t" if kind == "tsv" else ",")
    header = cfg.header if cfg.header is not None else not cfg.columns
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        elif kind == "jsonl":
            df = pd.read_json(path, lines=True)
        else:
            df = pd.read_csv(
                path, sep=sep, header=0 if header else None, names=cfg.columns,
                na_values=cfg.na_values or None, skipinitialspace=True, comment=cfg.comment,
                quoting=3 if cfg.quote_char is None else 0, quotechar=cfg.quote_char or '"',  # 3: csv.QUOTE_NONE
                on_bad_lines="error", engine="c",
            )
    except ImportError as exc:
        raise DataError(f"{path}: reading {kind} needs an extra package ({exc}); pip install 'forgeml[parquet]'") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError, EOFError, OSError) as exc:
        looks = _looks_separated(path, sep) if kind in ("csv", "tsv") else None
        hint = f"this file looks {looks!r}-separated: set data.sep: {looks!r}" if looks else "Check data.sep, data.columns and data.comment"
        raise DataError(f"{path}: cannot parse as {kind}: {str(exc).strip()}. {hint}") from None
    if kind in ("csv", "tsv") and len(df.columns) == 1:
        looks = _looks_separated(path, sep)
        if looks and looks in str(df.columns[0]):
            raise DataError(f"{path}: read as one column {str(df.columns[0])[:60]!r} with data.sep {sep!r}; this file looks "
                            f"{looks!r}-separated: set data.sep: {looks!r}")
    if df.empty:
        raise DataError(f"{path}: no rows")
    if cfg.na_values and kind in ("parquet", "jsonl"):
        df = df.replace(cfg.na_values, np.nan)
    if cfg.columns and len(df.columns) != len(cfg.columns):
        raise DataError(f"{path}: {len(df.columns)} columns but data.columns names {len(cfg.columns)}")
    if cfg.header is False and not cfg.columns:
        df.columns = [f"col_{i}" for i in range(len(df.columns))]
    if kind == "parquet":
        rows, word = np.arange(1, len(df) + 1), "row"
    else:
        text = kind != "jsonl"  # a JSONL line is one object: no separator, no header
        rows, word = _record_lines(path, df, sep if text else None, cfg, header and text), "line"
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
    cols = Columns(data, origin=path, rows=rows, row_word=word)
    if any(k == "audio" for k in cfg.features.values()) or any(v.dtype == object for v in data.values()):
        from forgeml.data.sources.audio import resolve_audio_paths  # audio files named relative to the table

        cols = resolve_audio_paths(cols, path, cfg.features)
    if cfg.sequence.pattern:  # x_0..x_44, y_0..y_44 -> one series column (N, 45, 2)
        return group_series_columns(cols, cfg.sequence.pattern, cfg.sequence.name)
    return cols


def _looks_separated(path: str, used: str) -> str | None:
    """The separator csv.Sniffer sees in the first lines, when it is not the one used; None when unsure."""
    import csv

    try:
        with _open(path) as f:
            sample = b"".join(f.readline() for _ in range(20)).decode("utf-8", "replace")
        found = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except (csv.Error, OSError, EOFError):
        return None
    return found if found != used else None


def _open(path: str):
    """The file's bytes, looking through the compressions pandas infers from the name."""
    low = path.lower()
    if low.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    if low.endswith(".bz2"):
        import bz2

        return bz2.open(path, "rb")
    if low.endswith(".xz"):
        import lzma

        return lzma.open(path, "rb")
    if low.endswith(".zip"):
        import zipfile

        with zipfile.ZipFile(path) as archive:  # closed now; the member keeps the file open only until it is closed
            return archive.open(archive.namelist()[0])
    return open(path, "rb")


def _data_lines(path: str, sep: str | None, comment: str | None, header: bool) -> np.ndarray:
    """1-based numbers of the lines pandas reads as records: not blank, not a comment, not the header."""
    blank = bytes(c for c in b" \t\r\n\f\v" if sep is None or chr(c) != sep)  # a line of tabs is a record of a TSV
    mark = comment.encode() if comment else None
    with _open(path) as f:
        if mark is None or len(mark) == 1:
            kept = record_lines_in(f, blank, mark)
        else:  # a comment character that takes several bytes: line by line
            kept = np.array([n for n, line in enumerate(f, 1) if line.strip(blank) and not line.startswith(mark)], dtype=np.int64)
    return kept[1:] if header else kept


def record_lines_in(f, blank: bytes, mark: bytes | None = None, chunk: int = 1 << 22) -> np.ndarray:
    """1-based numbers of the lines of binary file `f` that hold a byte outside `blank` and do not start with the
    one-byte comment `mark`: what a Python loop over the lines finds, read in chunks (a loop per line took as
    long as pandas' whole read of a large file). A line that starts with neither a blank byte nor the mark is
    a record at once; only the others (rare in a table) are looked at one by one."""
    special = np.zeros(256, dtype=bool)
    special[list(blank + (mark or b""))] = True

    def has_content(piece: bytes) -> bool:
        return bool(piece.translate(None, blank))

    kept, line = [], 1  # `line`: the number of the line open at the start of a chunk
    open_content, open_comment, at_start = False, False, True  # that line so far: content? a comment? nothing read yet?
    while data := f.read(chunk):
        arr = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(arr == 10)  # each line's newline
        starts = np.concatenate(([0], ends[ends + 1 < len(arr)] + 1))  # every piece of a line in this chunk
        stops = np.append(starts[1:], len(arr))
        record = ~special[arr[starts]]
        for k in np.flatnonzero(~record).tolist():
            piece = data[starts[k]:stops[k]]
            record[k] = has_content(piece) and not (mark and piece.startswith(mark))
        if not at_start:  # piece 0 goes on with the line the last chunk left open
            open_content = open_content or has_content(data[:stops[0]])
            record[0] = open_content and not open_comment
        done = len(ends)  # pieces 0..done-1 end with their newline: whole lines
        kept.append(line + np.flatnonzero(record[:done]))
        line += done
        if done == len(starts):
            open_content, open_comment, at_start = False, False, True
        elif done:  # the last piece starts a line that runs on into the next chunk
            piece = data[starts[-1]:]
            open_content, open_comment, at_start = has_content(piece), bool(mark) and piece.startswith(mark), False
        elif at_start:  # no newline at all: the chunk starts a line that goes on
            open_content, open_comment, at_start = has_content(data), bool(mark) and data.startswith(mark), False
    if open_content and not open_comment:  # a last line without a newline
        kept.append(np.array([line]))
    return np.concatenate(kept).astype(np.int64) if kept else np.zeros(0, dtype=np.int64)


def _record_lines(path: str, df: pd.DataFrame, sep: str | None, cfg: DataConfig, header: bool) -> np.ndarray:
    """The line each record starts on. Records and lines must agree, except where a quoted value really spans lines."""
    lines = _data_lines(path, sep, cfg.comment if sep else None, header)
    if len(lines) == len(df):
        return lines
    texts = [df[c].astype(object) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    breaks = sum((t.str.count("\n").fillna(0).to_numpy(dtype=np.int64) for t in texts), np.zeros(len(df), np.int64))
    problem = f"{path}: read {len(df)} records from {len(lines)} lines"
    if sep is None or not breaks.any():
        raise DataError(f"{problem}; some lines were skipped or merged. Check data.sep, data.comment and data.header")
    starts = np.empty(len(df), dtype=np.int64)
    j = 0
    for i in range(len(df)):  # a record spanning k lines covers the next kept lines up to its last one
        if j >= len(lines):
            raise DataError(f"{problem}; the records do not fit the lines. Check data.sep and data.quote_char")
        starts[i] = lines[j]
        j = int(np.searchsorted(lines, lines[j] + breaks[i] + 1))
    quote = cfg.quote_char
    pieces = [p for t in texts for v in t[t.str.contains("\n", na=False)] for p in v.split("\n")[1:]]
    record_like = sum(p.count(sep) == len(df.columns) - 1 for p in pieces)
    if j != len(lines) or record_like >= 0.8 * len(pieces):
        first = starts[int(np.argmax(breaks > 0))]
        raise DataError(f"{problem}: the {quote} on line {first} opens a quoted value that runs over {int(breaks.max()) + 1} "
                        f"lines, holding lines that look like rows. If {quote} in this file is plain text, set "
                        f"data.quote_char: null")
    note(f"{path}: {len(lines)} lines hold {len(df)} records; {int((breaks > 0).sum())} quoted values span several lines")
    return starts
