"""Arrays: NPZ files and IDX files (MNIST's own format, gzipped or not)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from forgeml.data.columns import Columns
from forgeml.errors import ConfigError, DataError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file: magic (0, 0, dtype, ndim), ndim big-endian sizes, then the data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataError(f"{path}: header says {dims} but the file holds {len(raw) - offset} bytes of data (expected {expected}); it is truncated")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def _as_images(x: np.ndarray, origin: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in 1/3/4 -> (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim == 4:
        return x
    raise DataError(f"{origin}: an image array must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {x.shape}")


def read_idx_pair(images: str, labels: str | None, target: str = "label") -> Columns:
    if not labels:
        raise ConfigError(f"data.labels_path: IDX images {images} need their labels file (e.g. t10k-labels-idx1-ubyte.gz)")
    if not Path(labels).exists():
        raise DataError(f"{labels}: no such labels file. Check data.labels_path")
    x, y = read_idx(images), read_idx(labels)
    if len(x) != len(y):
        raise DataError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels")
    data = {"image": _as_images(x, images)} if x.ndim >= 3 else {f"x{i}": x[:, i].astype(np.float64) for i in range(x.shape[1])}
    data[target] = y.astype(np.int64)
    return Columns(data, origin=images)


def read_npz(path: str, x_key: str, y_key: str, target: str = "label", key_fields: str = "data.x_key and data.y_key",
             require_y: bool = True, x_kind: str = "auto", series_name: str = "series") -> Columns:
    """The inputs array `x_key` and the targets array `y_key` as Columns. require_y=False (inputs to
    predict): a file without `y_key` gives the inputs alone.

    x_kind (data.x_kind) says what the inputs array is, since its rank alone cannot: (N, H, W) is a stack of
    gray images (MNIST) and also N series of H steps with W channels. auto: (N, F) is a table (columns x0..),
    3 or 4 dims are images; image and table insist on that; sequence reads (N, T) or (N, T, C) as one series
    column `series_name`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if x_key not in keys or (require_y and y_key not in keys):
                wanted = f"{x_key!r} and {y_key!r}" if require_y else repr(x_key)
                raise DataError(f"{path}: holds arrays {keys}, not {wanted}; set {key_fields} to the inputs and targets")
            x = npz[x_key]
            y = npz[y_key] if y_key in keys else None
    except ValueError as exc:  # object arrays need pickle: refuse
        raise DataError(f"{path}: cannot read without pickle ({exc}); save plain numeric arrays") from None
    if y is not None and len(x) != len(y):
        raise DataError(f"{path}: {x_key} has {len(x)} rows but {y_key} has {len(y)}")
    expected = {"image": (3, 4), "table": (1, 2), "sequence": (2, 3)}.get(x_kind)
    if expected and x.ndim not in expected:
        shapes = {"image": "(N, H, W), (N, H, W, C) or (N, C, H, W)", "table": "(N, F)", "sequence": "(N, T) or (N, T, C)"}[x_kind]
        others = {"image": "sequence for (N, T, C) series, table for (N, F)", "table": "image or sequence",
                  "sequence": "image for (N, H, W, C) or (N, C, H, W) images"}[x_kind]
        raise DataError(f"{path}: data.x_kind is {x_kind}, which needs {x_key} of shape {shapes}; it has shape {x.shape}. "
                        f"Set data.x_kind to auto or {others}")
    if x_kind == "sequence":
        from forgeml.data.sequence_columns import series_from_array

        data = {series_name: series_from_array(x, series_name, path)}  # (N, T, C): one channel for an (N, T) array
    elif x.ndim >= 3:
        data = {"image": _as_images(x, path)}
    elif x.ndim == 2:
        data = {f"x{i}": x[:, i].astype(np.float64) for i in range(x.shape[1])}
    else:
        data = {"x0": x.astype(np.float64)}
    if y is not None:
        data[target] = y if y.dtype.kind in "iufb" else y.astype(object)
    return Columns(data, origin=path)
