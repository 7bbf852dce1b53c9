"""train.privacy on federated clients: each client's rounds share one budget (PrivateTrainer.share_budget), its
cumulative epsilon is what it replies, FedProx's term survives the DP noise, and an impossible budget is refused
before any process starts. The budget logic runs local_round directly (what the ClientApp's train handler runs)."""

from __future__ import annotations

import pytest

from forgeml.cli import main
from forgeml.config import load_config
from tests.federate.tables import table_config, write_table

pytest.importorskip("opacus")

PRIVACY = {"epsilon": 4.0, "delta": 1e-3, "max_grad_norm": 1.0, "seed": 7}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A client's round on partition 0 of 2 (72 rows), from the same global weights: round(server_round, **federate)."""
    from forgeml.data.featureset import FeatureSet
    from forgeml.federate.local import local_round
    from forgeml.federate.shares import client_columns
    from forgeml.federate.stats import merge, summarise
    from forgeml.models import build_network
    from forgeml.models.compose import head_settings

    tmp = tmp_path_factory.mktemp("private-clients")
    table = write_table(tmp / "table.csv")

    def config(**federate):
        d = table_config(table, tmp / "runs", **federate)
        d["train"]["privacy"] = dict(PRIVACY)
        return load_config(d)

    cfg = config()
    cols = client_columns(cfg, 0, 2, "iid", 0)
    features_json = merge([summarise(client_columns(cfg, i, 2, "iid", 0), cfg.data) for i in range(2)], cfg.data)
    features = FeatureSet.from_json(features_json)
    model = build_network(cfg.model, features.inputs, features.outputs, head_settings(cfg, features.outputs), seed=0)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def run(server_round: int = 1, mu: float = 0.0, **federate):
        return local_round(config(**federate), cols, features_json, start, mu, server_round)

    run.start = start
    return run


def test_a_clients_epsilon_grows_round_by_round_and_the_last_round_spends_the_target(client):
    spent = [client(r, rounds=3)[2] for r in (1, 2, 3)]
    eps = [p["epsilon"] for p in spent]
    assert eps[0] < eps[1] < eps[2] <= PRIVACY["epsilon"]
    assert eps[2] >= 0.97 * PRIVACY["epsilon"]  # the plan covered the three rounds: the last one reaches the target
    assert len({p["noise_multiplier"] for p in spent}) == 1  # the same plan every round
    assert [p["steps"] for p in spent] == [3, 6, 9] and [p["round"] for p in spent] == [1, 2, 3]  # 72 rows / 32 a step
    # exact, not an estimate: three shared rounds of one epoch spend what one private fit of three epochs spends
    whole = client(1, rounds=1, local_epochs=3)[2]
    assert whole["noise_multiplier"] == spent[2]["noise_multiplier"]
    assert eps[2] == pytest.approx(whole["epsilon"], rel=1e-6)


def test_a_ten_round_share_adds_more_noise_than_a_one_round_plan(client):
    one, ten = client(1, rounds=1)[2], client(1, rounds=10)[2]
    assert ten["noise_multiplier"] > one["noise_multiplier"]
    assert ten["epsilon"] < one["epsilon"] and one["epsilon"] >= 0.97 * PRIVACY["epsilon"]


def test_fedprox_with_privacy_still_pulls_the_client_toward_the_global_weights(client):
    """Opacus replaces p.grad with the noised per-row sum; the proximal gradient is added after it (proximal.py)."""
    start = client.start

    def distance(mu: float) -> float:
        state, _, privacy = client(1, mu, rounds=2, local_epochs=3)
        assert privacy["epsilon"] > 0
        return sum(float((state[k] - start[k]).pow(2).sum()) for k in start if start[k].is_floating_point())

    plain, prox = distance(0.0), distance(5.0)
    assert prox < 0.8 * plain and distance(0.0) == pytest.approx(plain, rel=1e-9)  # privacy.seed: the same noise


def test_an_impossible_budget_over_the_rounds_is_refused_before_any_process(tmp_path, capsys):
    import yaml

    runs = tmp_path / "runs"
    d = table_config(write_table(tmp_path / "table.csv"), runs, clients=2, rounds=3)
    d["train"]["privacy"] = {**PRIVACY, "epsilon": 0.01}
    config = tmp_path / "private.yaml"
    config.write_text(yaml.safe_dump(d))
    assert main(["federate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "3 rounds x 1 local epoch(s) on the smallest client's 72 rows" in err and "cannot be met" in err
    d["train"]["privacy"] = {**PRIVACY, "delta": 0.02}  # below 1 / 144 training rows, not below 1 / a client's 72
    config.write_text(yaml.safe_dump(d))
    assert main(["federate", str(config)]) == 2
    assert "1/72" in capsys.readouterr().err
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_private_federated_run_records_each_clients_epsilon_and_evaluate_states_it(tmp_path, capsys):
    """The one run with real Flower processes: 2 clients, 2 rounds of FedProx, train.privacy on each client."""
    import json

    pytest.importorskip("flwr")
    from forgeml.federate.launch import federate
    from tests.federate.test_federate import flower_processes

    runs = tmp_path / "runs"
    d = table_config(write_table(tmp_path / "table.csv"), runs, clients=2, rounds=2, strategy="fedprox", proximal_mu=0.1)
    d["train"]["privacy"] = {"epsilon": 4.0, "delta": 1e-3}
    run = federate(d)
    assert not flower_processes(runs)
    p = json.loads((run / "meta.json").read_text())["privacy"]
    assert p["federated"] and p["rounds"] == 2 and [c["client"] for c in p["clients"]] == [0, 1]
    assert all(c["round"] == 2 and c["steps"] == 6 for c in p["clients"])  # 72 rows / 32 a step, 3 steps a round
    assert p["epsilon"] == max(c["epsilon"] for c in p["clients"]) and 0.97 * 4.0 <= p["epsilon"] <= 4.0
    train = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if '"train"' in line]
    assert [r["round"] for r in train] == [1, 2] and train[0]["epsilon"] < train[1]["epsilon"] == p["epsilon"]
    assert main(["evaluate", str(run)]) == 0
    assert "on every client: DP-SGD on each of 2 clients over 2 rounds" in capsys.readouterr().out
    assert "on every client" in (run / "report.html").read_text()


def test_a_fixed_privacy_seed_gives_each_client_and_round_its_own_noise(tmp_path):
    """The same seed every round would draw the same batches and add the same noise each time (subtracting two rounds'
    updates would cancel it), while the accountant composes the rounds as independent."""
    from forgeml.federate.local import client_config

    d = table_config(write_table(tmp_path / "t.csv"), tmp_path / "runs")
    d["train"]["privacy"] = dict(PRIVACY)
    cfg = load_config(d)
    seeds = {client_config(cfg, c, r).train.privacy.seed for c in ("0", "1") for r in (1, 2, 3)}
    assert len(seeds) == 6 and PRIVACY["seed"] not in seeds
    assert client_config(cfg, "1", 2).train.privacy.seed == client_config(cfg, "1", 2).train.privacy.seed  # repeatable


def test_a_batch_norm_model_trains_privately_from_the_servers_group_norm_weights(tmp_path):
    """The server builds group norm where the config says batch norm (as the clients train it): a private client's
    round loads those weights and sends group-norm weights back (it used to load batch-norm ones and crash)."""
    from forgeml.data.featureset import FeatureSet
    from forgeml.federate.local import local_round
    from forgeml.federate.shares import client_columns
    from forgeml.federate.stats import merge, summarise
    from forgeml.models import build_network
    from forgeml.models.compose import head_settings
    from forgeml.models.group_norm import replace_batch_norm

    d = table_config(write_table(tmp_path / "t.csv"), tmp_path / "runs")
    d["model"]["norm"] = "batch"
    d["train"]["privacy"] = dict(PRIVACY)
    cfg = load_config(d)
    features_json = merge([summarise(client_columns(cfg, i, 2, "iid", 0), cfg.data) for i in range(2)], cfg.data)
    features = FeatureSet.from_json(features_json)
    model = build_network(cfg.model, features.inputs, features.outputs, head_settings(cfg, features.outputs), seed=0)
    assert replace_batch_norm(model)  # what server_app and the launcher's evaluator do for a private run
    start = {k: v.clone() for k, v in model.state_dict().items()}
    state, rows, privacy = local_round(cfg, client_columns(cfg, 0, 2, "iid", 0), features_json, start, 0.0, 1, "0")
    assert set(state) == set(start) and not any("running_mean" in k for k in state)
    assert privacy["epsilon"] > 0 and rows == 72
