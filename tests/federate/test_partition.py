"""Partitioning the training split among clients: sizes, skew against alpha, seeds, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from forgeml.errors import ConfigError
from forgeml.federate.partition import parse_partition, partition_indices


def test_iid_covers_every_row_once_in_near_equal_shares():
    parts = partition_indices(103, 5, "iid", seed=0)
    assert sorted(len(p) for p in parts) == [20, 20, 21, 21, 21]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(103))


def test_the_same_seed_gives_the_same_shares_and_another_seed_others():
    labels = np.repeat(["a", "b", "c"], 100)
    one = partition_indices(300, 4, "dirichlet:0.5", seed=3, labels=labels)
    again = partition_indices(300, 4, "dirichlet:0.5", seed=3, labels=labels)
    other = partition_indices(300, 4, "dirichlet:0.5", seed=4, labels=labels)
    assert all(np.array_equal(a, b) for a, b in zip(one, again))
    assert not all(np.array_equal(a, b) for a, b in zip(one, other))


def _skew(alpha: float) -> float:
    """Mean over clients of the largest class share on that client (1/3 = balanced, 1 = one class per client)."""
    labels = np.repeat(["a", "b", "c"], 2000)
    parts = partition_indices(len(labels), 5, f"dirichlet:{alpha}", seed=0, labels=labels)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    return float(np.mean([max(np.mean(labels[p] == c) for c in "abc") for p in parts]))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    assert _skew(0.1) > _skew(1.0) > _skew(100.0)
    assert _skew(100.0) < 0.45  # nearly iid
    assert _skew(0.1) > 0.7  # most clients hold mostly one class


def test_fewer_rows_than_clients_is_refused():
    with pytest.raises(ConfigError, match="9 rows for 5 clients: each client needs at least 2 rows"):
        partition_indices(9, 5, "iid")


def test_a_client_left_empty_is_refused():
    labels = np.array(["a"] * 12)
    with pytest.raises(ConfigError, match="gets fewer than 2 of the 12 rows in 20 draws"):
        partition_indices(12, 5, "dirichlet:0.01", seed=0, labels=labels)


@pytest.mark.parametrize("bad", ["dirichlet", "dirichlet:-1", "dirichlet:x", "shards:2", "iid:1"])
def test_a_bad_partition_string_names_the_forms(bad):
    with pytest.raises(ConfigError, match="iid or dirichlet:ALPHA"):
        parse_partition(bad)


def test_fraction_fit_sets_how_many_replies_a_round_needs_and_what_flower_samples():
    """Without min_clients a round needs the clients asked (fraction_fit of them), not every client: Flower samples
    max(int(n x fraction), min_train_nodes) clients, so min_train_nodes = every client made fraction_fit do nothing."""
    pytest.importorskip("flwr")
    from forgeml.config import FederateConfig
    from forgeml.federate.server_app import _strategy

    assert FederateConfig(clients=5).needed() == 5
    assert FederateConfig(clients=5, fraction_fit=0.4).needed() == 2
    assert FederateConfig(clients=5, fraction_fit=0.4, min_clients=1).needed() == 1
    fed = FederateConfig(clients=10, fraction_fit=0.3)
    strategy = _strategy(fed, fed.needed())
    assert strategy.min_train_nodes == 3 and strategy.fraction_train == 0.3
