"""Each client's rows: the config's training split (the same seeded split the launcher holds val/test out of), cut
by the partition, or (a client on a machine of its own) all of its local file's training split. No Flower here."""

from __future__ import annotations

import numpy as np

from forgeml.config import Config
from forgeml.data.columns import Columns
from forgeml.federate.partition import partition_indices


def training_columns(cfg: Config) -> Columns:
    """The raw training split of the config's data (val/test held out by the config's own split settings)."""
    from forgeml.data.prepare import load_columns

    return load_columns(cfg.data)["train"]


def partition_labels(cfg: Config, cols: Columns) -> np.ndarray:
    """What dirichlet shares out by: the first output's class tokens, or (regression) its decile."""
    from forgeml.data.features.category import as_tokens
    from forgeml.data.features.numeric import as_float
    from forgeml.data.featureset import infer_task, output_configs
    from forgeml.data.prepare import target_name

    out = output_configs(cfg.data, target_name(cfg.data, cols))[0]
    y = cols.data[out.name]
    task = {"class": "classification", "regression": "regression"}.get(out.type) or (
        cfg.data.task if cfg.data.task != "auto" else infer_task(y))
    if task != "regression":
        return np.array(as_tokens(y), dtype=object)
    v = as_float(y, out.name)
    return np.searchsorted(np.nanquantile(v, np.linspace(0.1, 0.9, 9)), v).astype(str)


def shares(cfg: Config, cols: Columns, clients: int, partition: str, seed: int) -> list[np.ndarray]:
    labels = partition_labels(cfg, cols) if partition.startswith("dirichlet") else None
    return partition_indices(len(next(iter(cols.data.values()))), clients, partition, seed, labels)


def client_columns(cfg: Config, partition_id: int | None, clients: int, partition: str, seed: int) -> Columns:
    """Client partition_id's share of the training split; None = the whole local training split (its own data)."""
    cols = training_columns(cfg)
    if partition_id is None:
        return cols
    return cols.take(shares(cfg, cols, clients, partition, seed)[partition_id])
