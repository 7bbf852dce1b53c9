"""Sharing the training split out among clients: iid (a seeded shuffle cut into near-equal parts) or
dirichlet:ALPHA (for each class, its rows go to the clients in proportions drawn from Dir(ALPHA): small ALPHA gives
each client a few dominant classes, large ALPHA approaches iid). Pure numpy; no Flower here."""

from __future__ import annotations

import numpy as np

from forgeml.errors import ConfigError

DRAWS = 20  # Dirichlet draws tried before a partition that leaves a client (nearly) empty is refused
MIN_ROWS = 2  # rows a client needs: one row is a batch of one, which batch norm cannot train on


def parse_partition(spec: str) -> tuple[str, float | None]:
    """'iid' -> ('iid', None); 'dirichlet:0.5' -> ('dirichlet', 0.5); anything else is a ConfigError."""
    text = str(spec).strip().lower()
    if text == "iid":
        return "iid", None
    head, _, alpha = text.partition(":")
    try:
        value = float(alpha)
    except ValueError:
        value = -1.0
    if head != "dirichlet" or not value > 0 or not np.isfinite(value):
        raise ConfigError(f"--partition {spec!r}: give iid or dirichlet:ALPHA with ALPHA > 0 (e.g. dirichlet:0.5)")
    return "dirichlet", value


def partition_indices(n_rows: int, clients: int, spec: str, seed: int = 0, labels: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices (sorted) of each client's share of n_rows training rows. dirichlet needs `labels` (one class token per
    row; a regression target is cut into 10 quantile bins by the caller). Every client must get at least one row: fewer
    rows than clients, or a draw that leaves a client fewer than MIN_ROWS, is a ConfigError (before any process starts)."""
    kind, alpha = parse_partition(spec)
    if clients < 1:
        raise ConfigError(f"federate.clients {clients}: at least one client")
    if n_rows < MIN_ROWS * clients:
        raise ConfigError(f"the training split has {n_rows} rows for {clients} clients: each client needs at least {MIN_ROWS} rows; "
                          "use fewer --clients or more data")
    rng = np.random.default_rng(seed)
    if kind == "iid":
        parts = np.array_split(rng.permutation(n_rows), clients)
    else:
        if labels is None or len(labels) != n_rows:
            raise ConfigError("--partition dirichlet: needs the training labels to share each class out")
        _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
        for _ in range(DRAWS):  # a draw that leaves a client empty is drawn again (from the same seeded stream)
            parts = _dirichlet(codes, clients, alpha, rng)
            if all(len(p) >= MIN_ROWS for p in parts):
                break
    empty = [k for k, p in enumerate(parts) if len(p) < MIN_ROWS]
    if empty:
        raise ConfigError(f"--partition {spec}: client {empty[0]} gets fewer than {MIN_ROWS} of the {n_rows} rows in {DRAWS} draws; "
                          "use a larger ALPHA, fewer --clients, more data, or another federate.partition_seed")
    return [np.sort(p) for p in parts]


def _dirichlet(codes: np.ndarray, clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """For each class, its rows (shuffled) cut among the clients in proportions drawn from Dir(alpha)."""
    shares: list[list[np.ndarray]] = [[] for _ in range(clients)]
    for c in range(int(codes.max()) + 1):
        rows = rng.permutation(np.flatnonzero(codes == c))
        p = rng.dirichlet(np.full(clients, alpha))  # this class's proportions over the clients
        cuts = (np.cumsum(p)[:-1] * len(rows)).round().astype(int)
        for k, part in enumerate(np.split(rows, cuts)):
            shares[k].append(part)
    return [np.concatenate(s) for s in shares]
