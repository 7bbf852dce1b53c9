"""scikit-learn's built-in sets (inside its wheel, no download): digits, iris, wine, breast_cancer, diabetes."""

from __future__ import annotations

import numpy as np

from forgeml.data.columns import Columns
from forgeml.errors import ConfigError, did_you_mean

SETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")


def read_sklearn(name: str) -> Columns:
    if name not in SETS:
        raise ConfigError(f"data.path: {name!r} is not a scikit-learn built-in set; choose one of {', '.join(SETS)}{did_you_mean(name, SETS)}")
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    if name == "digits":  # 8x8 images, ink 0..16
        data = {"image": bunch.images[:, None].astype(np.float32), "target": bunch.target.astype(np.int64)}
        return Columns(data, origin="sklearn:digits")
    data = {str(f): bunch.data[:, i].astype(np.float64) for i, f in enumerate(bunch.feature_names)}
    if "target_names" in bunch:
        data["target"] = np.asarray(bunch.target_names, dtype=object)[bunch.target]
    else:
        data["target"] = bunch.target.astype(np.float64)
    return Columns(data, origin=f"sklearn:{name}")
