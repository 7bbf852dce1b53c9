"""User-item interactions for recommendation: read from a table, checked, de-duplicated, split, and indexed.

A recommendation run's data is one table of (user, item[, rating][, time]) rows, named by data.users, data.items,
data.rating and data.time. What happens to it, in order (docs/recommendation.md):

1. read with the ordinary table readers (CSV/TSV/Parquet/JSONL); ids become strings (10001.0 -> "10001");
2. checked: a missing id, a missing or non-numeric rating, a rating outside data.rating_range, an unreadable time is a
   DataError naming the file's line and the value;
3. duplicates (the same user and item twice): data.duplicates says error (the default), last (keep the latest by
   data.time, else by file order) or mean (the mean rating); what was merged is counted in a note;
4. split: data.split.by random, time (per user or global) or leave_last_out;
5. the id vocabularies are fitted on the training split alone (sorted ids); val/test rows with a user or item that
   training never saw (cold) are counted, said in a note, and left out: a vector exists only for trained ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from forgeml.config import DataConfig
from forgeml.data.columns import Columns
from forgeml.errors import ConfigError, DataError, did_you_mean


@dataclass
class Interactions:
    """One split: index arrays into the id vocabularies, the ratings (None: implicit), each row's line in the file."""

    user: np.ndarray  # (N,) int64
    item: np.ndarray  # (N,) int64
    rating: np.ndarray | None  # (N,) float32
    lines: np.ndarray  # (N,) the file's line (or row) of each interaction

    def __len__(self) -> int:
        return len(self.user)

    def x(self) -> dict[str, torch.Tensor]:
        """The network's inputs: the user and item indices."""
        return {"user": torch.from_numpy(self.user), "item": torch.from_numpy(self.item)}

    def y(self) -> torch.Tensor:
        """What the loss compares with: the rating (explicit), or the item itself (implicit: the item to rank first)."""
        return torch.from_numpy(self.rating) if self.rating is not None else torch.from_numpy(self.item)


@dataclass
class RecData:
    users: list[str]  # index -> raw user id, fitted on the training split
    items: list[str]
    splits: dict[str, Interactions]
    notes: list[str] = field(default_factory=list)
    side: dict[str, Columns] = field(default_factory=dict)  # "user"/"item": the feature columns, one row per index

    @property
    def explicit(self) -> bool:
        return self.splits["train"].rating is not None

    def csr(self, names: tuple[str, ...] = ("train",)) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices): each user's items in the named splits, sorted and unique (users x items, CSR)."""
        return to_csr([self.splits[n] for n in names if n in self.splits], len(self.users))

    def item_counts(self) -> np.ndarray:
        """Training interactions per item (the popularity sampled softmax corrects for, the most-popular baseline)."""
        return np.bincount(self.splits["train"].item, minlength=len(self.items))

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())
        kind = "ratings" if self.explicit else "implicit interactions"
        return f"{len(self.users):,} users x {len(self.items):,} items; {kind}: {sizes}"


def to_csr(parts: list[Interactions], n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Users' items as CSR arrays (int64): indices[indptr[u]:indptr[u+1]] are user u's items, sorted, each once."""
    user = np.concatenate([p.user for p in parts]) if parts else np.zeros(0, np.int64)
    item = np.concatenate([p.item for p in parts]) if parts else np.zeros(0, np.int64)
    pairs = np.unique(np.stack([user, item], axis=1), axis=0) if len(user) else np.zeros((0, 2), np.int64)
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n_users), out=indptr[1:])
    return indptr, pairs[:, 1].astype(np.int64)


# ------------------------------------------------------------------------------------------------ reading
def id_strings(values: np.ndarray, column: str, cols: Columns) -> np.ndarray:
    """Ids as strings, whatever the reader made of them: 10001.0 -> '10001', ' a ' -> 'a'; a missing id is an error."""
    out = np.empty(len(values), dtype=object)
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(f"{cols.origin}: {cols.where(int(bad[0]))}: the {column!r} id is missing; every interaction needs "
                            "a user and an item (drop such rows from the file)")
        whole = values == np.round(values)
        out[whole] = values[whole].astype(np.int64).astype(str)
        out[~whole] = values[~whole].astype(str)
        return out
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and not np.isfinite(v)) or (isinstance(v, str) and not v.strip()):
            raise DataError(f"{cols.origin}: {cols.where(i)}: the {column!r} id is missing; every interaction needs a user and "
                            "an item (drop such rows from the file)")
        out[i] = str(v).strip()
    return out


def _ratings(values: np.ndarray, cfg: DataConfig, cols: Columns) -> np.ndarray:
    try:
        r = values.astype(np.float64)
    except (TypeError, ValueError):
        r = np.array([_number(v) for v in values])
    bad = np.flatnonzero(~np.isfinite(r))
    if len(bad):
        i = int(bad[0])
        v = values[i]
        shown = "empty" if v is None or (isinstance(v, float) and v != v) else repr(v)
        raise DataError(f"{cols.origin}: {cols.where(i)}: the rating in column {cfg.rating!r} is {shown}, not a number; "
                        "every row of an explicit-feedback table needs its rating (or leave data.rating out: implicit)")
    if cfg.rating_range is not None:
        lo, hi = cfg.rating_range
        out = np.flatnonzero((r < lo) | (r > hi))
        if len(out):
            i = int(out[0])
            raise DataError(f"{cols.origin}: {cols.where(i)}: rating {r[i]:g} is outside data.rating_range [{lo:g}, {hi:g}] "
                            f"({len(out)} row(s) in all); fix the data or widen data.rating_range")
    return r.astype(np.float32)


def _number(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _times(values: np.ndarray, column: str, cols: Columns) -> np.ndarray:
    """Numbers as they are; dates and times as nanoseconds; anything else an error naming the line."""
    if values.dtype.kind in "fi":
        bad = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
        if len(bad):
            raise DataError(f"{cols.origin}: {cols.where(int(bad[0]))}: the time ({column!r}) is missing")
        return values.astype(np.float64)
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(values), errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{cols.origin}: {cols.where(i)}: time {values[i]!r} in column {column!r} is neither a number nor a "
                        "date; give timestamps, dates (2024-01-31 12:00) or sequence numbers")
    return parsed.astype("int64").to_numpy().astype(np.float64)


def _check_columns(cfg: DataConfig, cols: Columns) -> None:
    named = [("data.users", cfg.users), ("data.items", cfg.items), ("data.rating", cfg.rating), ("data.time", cfg.time)]
    named += [("data.user_features", c) for c in cfg.user_features if not cfg.user_table]
    named += [("data.item_features", c) for c in cfg.item_features if not cfg.item_table]
    for key, column in named:
        if column is not None and column not in cols.data:
            raise ConfigError(f"{key}: {column!r} is not a column of {cols.origin} (columns: {', '.join(cols.names)})"
                              f"{did_you_mean(column, cols.names)}")


# ------------------------------------------------------------------------------------------- duplicates
def _dedupe(cfg: DataConfig, user: np.ndarray, item: np.ndarray, rating: np.ndarray | None, order: np.ndarray,
            cols: Columns) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """The rows kept (positions, in time order) and the ratings they carry, and a note of what was merged."""
    import pandas as pd

    df = pd.DataFrame({"u": user, "i": item, "pos": np.arange(len(user))}).iloc[order]
    twice = df.duplicated(["u", "i"], keep=False).to_numpy()
    if not twice.any():
        return order, rating[order] if rating is not None else None, None
    n_pairs = int(df[twice].drop_duplicates(["u", "i"]).shape[0])
    n_extra = int(twice.sum()) - n_pairs
    if cfg.duplicates == "error":
        first = df[twice].iloc[0]
        same = df[(df.u == first.u) & (df.i == first.i)].pos.to_numpy()
        raise DataError(f"{cols.origin}: user {first.u!r} and item {first.i!r} appear together on {cols.where(int(same[0]))} and "
                        f"{cols.where(int(same[1]))} ({n_pairs:,} such pair(s), {n_extra:,} extra row(s)); set data.duplicates: "
                        "last (keep the latest) or mean (average the ratings)")
    last = ~df.duplicated(["u", "i"], keep="last").to_numpy()
    kept = order[last]
    values = rating[kept] if rating is not None else None
    if cfg.duplicates == "mean" and rating is not None:
        means = pd.Series(rating[order]).groupby([df.u.to_numpy(), df.i.to_numpy()]).mean()
        values = means.loc[list(zip(user[kept], item[kept]))].to_numpy().astype(np.float32)
    how = "their mean rating" if cfg.duplicates == "mean" and rating is not None else "the latest row"
    return kept, values, (f"data.duplicates {cfg.duplicates}: {n_pairs:,} (user, item) pair(s) appeared more than once; "
                          f"{n_extra:,} extra row(s) merged into one per pair ({how} kept)")


# ------------------------------------------------------------------------------------------------ split
def _per_user_cut(user: np.ndarray, n_test: np.ndarray, n_val: np.ndarray) -> np.ndarray:
    """For rows in time order: 0 train, 1 val, 2 test, holding out each user's last n_test rows (and n_val before them)."""
    import pandas as pd

    g = pd.Series(user).groupby(user)
    from_end = (g.transform("size") - 1 - g.cumcount()).to_numpy()  # 0 = the user's last interaction
    t = pd.Series(n_test).reindex(user).to_numpy()
    v = pd.Series(n_val).reindex(user).to_numpy()
    return np.where(from_end < t, 2, np.where(from_end < t + v, 1, 0))


def split_rows(cfg: DataConfig, user: np.ndarray) -> np.ndarray:
    """0/1/2 (train/val/test) per row of a table in time order (file order without data.time)."""
    s, n = cfg.split, len(user)
    if s.by == "random":
        rng = np.random.default_rng(s.seed)
        perm = rng.permutation(n)
        n_test, n_val = round(n * s.test), round(n * s.val)
        part = np.zeros(n, np.int64)
        part[perm[:n_test]] = 2
        part[perm[n_test:n_test + n_val]] = 1
        return part
    if s.by == "time" and not s.per_user:  # one cut in time for everyone: the last rows of the whole table
        n_test, n_val = round(n * s.test), round(n * s.val)
        part = np.zeros(n, np.int64)
        part[n - n_test:] = 2
        part[n - n_test - n_val:n - n_test] = 1
        return part
    names, counts = np.unique(user, return_counts=True)
    if s.by == "leave_last_out":  # at least one interaction always stays in training
        n_test = (counts >= 2).astype(np.int64)
        n_val = ((counts >= 3) & (s.val > 0)).astype(np.int64)
    else:
        n_test = np.minimum(np.round(counts * s.test), counts - 1).astype(np.int64)
        n_val = np.minimum(np.round(counts * s.val), counts - 1 - n_test).astype(np.int64)
    import pandas as pd

    return _per_user_cut(user, pd.Series(n_test, index=names), pd.Series(n_val, index=names))


# ----------------------------------------------------------------------------------------------- loading
def load_interactions(cfg: DataConfig, cols: Columns | None = None) -> RecData:
    """Read, check, de-duplicate, split and index the interactions data.path holds (or `cols`, already read)."""
    if cols is None:
        from forgeml.data.sources import read_source

        if cfg.val_path or cfg.test_path:
            raise ConfigError("data.val_path/data.test_path with a recommendation run: its splits are carved from data.path "
                              "by data.split.by (one table, so that ids mean the same in every split); join the files")
        cols = read_source(cfg)
    if cfg.limit is not None and cfg.limit < len(cols):  # a seeded random subset of the interactions, kept in file order
        cols = cols.take(np.sort(np.random.default_rng(cfg.split.seed).choice(len(cols), cfg.limit, replace=False)))
    _check_columns(cfg, cols)
    user = id_strings(cols.data[cfg.users], cfg.users, cols)
    item = id_strings(cols.data[cfg.items], cfg.items, cols)
    rating = _ratings(cols.data[cfg.rating], cfg, cols) if cfg.rating is not None else None
    when = _times(cols.data[cfg.time], cfg.time, cols) if cfg.time is not None else np.arange(len(user), dtype=np.float64)
    order = np.argsort(when, kind="stable")  # time order; ties (and no data.time) keep the file's order
    notes: list[str] = []
    kept, rating, merged = _dedupe(cfg, user, item, rating, order, cols)
    if merged:
        notes.append(merged)
    user, item = user[kept], item[kept]
    lines = cols.rows[kept] if cols.rows is not None else kept + 1
    part = split_rows(cfg, user)
    train = part == 0
    if not train.any():
        raise DataError(f"{cols.origin}: no training interactions left after the split (data.split: {cfg.split.by}); "
                        "lower data.split.val/test")
    users = np.unique(user[train])
    items = np.unique(item[train])
    splits = {}
    for code, name in ((0, "train"), (1, "val"), (2, "test")):
        rows = np.flatnonzero(part == code)
        if not len(rows):
            continue
        u = _index(users, user[rows])
        i = _index(items, item[rows])
        known = (u >= 0) & (i >= 0)
        if not known.all():
            cold_u = len(set(user[rows][u < 0]))
            cold_i = len(set(item[rows][i < 0]))
            notes.append(f"{name}: {int((~known).sum()):,} of {len(rows):,} interactions left out, their user ({cold_u:,} new "
                         f"user(s)) or item ({cold_i:,} new item(s)) never appears in training: the model has no vector for "
                         "them (cold start)")
            rows, u, i = rows[known], u[known], i[known]
        if len(rows):
            splits[name] = Interactions(u, i, rating[rows] if rating is not None else None, lines[rows])
    data = RecData([str(x) for x in users], [str(x) for x in items], splits, notes)
    data.side = _side_columns(cfg, cols, kept, train, users, items, user, item)
    return data


def _index(vocab: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in the sorted vocabulary, -1 where it is not there."""
    pos = np.searchsorted(vocab, values)
    pos = np.minimum(pos, len(vocab) - 1)
    found = vocab[pos] == values if len(vocab) else np.zeros(len(values), bool)
    return np.where(found, pos, -1).astype(np.int64)


def _side_columns(cfg: DataConfig, cols: Columns, kept: np.ndarray, train: np.ndarray, users: np.ndarray,
                  items: np.ndarray, user: np.ndarray, item: np.ndarray) -> dict[str, Columns]:
    """data.user_features / item_features: one row per user (item) index, its last training row's values."""
    side = {}
    for what, names, ids, vocab in (("user", cfg.user_features, user, users), ("item", cfg.item_features, item, items)):
        table = cfg.user_table if what == "user" else cfg.item_table
        if table:
            side[what] = _table_rows(cfg, what, table, names, vocab)
            continue
        if not names:
            continue
        rows = np.flatnonzero(train)
        idx = _index(vocab, ids[rows])
        last = np.zeros(len(vocab), np.int64)
        last[idx] = rows  # rows are in time order: the last write per index is its latest row
        source = kept[last]
        side[what] = Columns({c: cols.data[c][source] for c in names}, f"{cols.origin} ({what} features)",
                             rows=cols.rows[source] if cols.rows is not None else None, row_word=cols.row_word)
    return side


def _table_rows(cfg: DataConfig, what: str, path: str, names: list[str], vocab: np.ndarray) -> Columns:
    """data.user_table / item_table: the row of each trained id (in index order), its feature columns."""
    from forgeml.data.sources import read_source

    key = cfg.users if what == "user" else cfg.items
    cols = read_source(cfg, path=path)
    if key not in cols.data:
        raise ConfigError(f"data.{what}_table {path}: no {key!r} column (data.{what}s) to key its rows by (columns: "
                          f"{', '.join(cols.names)})")
    names = names or [c for c in cols.names if c != key]
    for c in names:
        if c not in cols.data:
            raise ConfigError(f"data.{what}_features: {c!r} is not a column of {path}{did_you_mean(c, cols.names)}")
    ids = id_strings(cols.data[key], key, cols)
    uniq, first = np.unique(ids, return_index=True)
    if len(uniq) != len(ids):
        raise DataError(f"{path}: a {what} appears on more than one row; data.{what}_table holds one row per {what}")
    pos = _index(uniq, vocab)
    if (pos < 0).any():
        missing = vocab[pos < 0]
        raise DataError(f"{path}: {len(missing):,} {what}(s) of the training interactions have no row here (e.g. "
                        f"{missing[0]!r}); data.{what}_table needs a row for every {what}")
    rows = first[pos]
    return cols.take(rows).without([c for c in cols.names if c not in names])


def load_run_interactions(bundle, cfg) -> RecData:
    """A trained run's interactions (bundle: its Bundle; cfg: its Config), split again from its config; a BundleError when
    they are not what it trained on (evaluate, resume and the report measure a run on its own data only)."""
    from forgeml.errors import BundleError

    data = load_interactions(cfg.data)
    saved = bundle.read_json("features.json")
    if data.users != saved["users"] or data.items != saved["items"]:
        raise BundleError(f"{bundle.path}: the interactions at {cfg.data.path} differ from what the run was trained on (its "
                          "users or items changed); a run is measured and resumed on its own data")
    return data
