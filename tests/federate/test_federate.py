"""forgeml federate with real Flower processes on 127.0.0.1 (a SuperLink, SuperNodes, flwr run), and its refusals.

These spawn processes and import torch in each: the runs are kept to a tiny table, 2-3 clients and 2 rounds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from forgeml.cli import main
from forgeml.config import load_config
from forgeml.federate import FederateError
from tests.federate.tables import table_config, write_table

pytest.importorskip("flwr")


def flower_processes(under: Path) -> list[int]:
    """Live processes started for a run whose work folder is under `under` (their FLWR_HOME says where)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(e.startswith(f"FLWR_HOME={under}".encode()) for e in env):
            found.append(int(entry))
    return found


@pytest.fixture
def table(tmp_path) -> Path:
    return write_table(tmp_path / "table.csv")


def test_a_client_killed_mid_run_leaves_the_others_to_finish_into_a_bundle_that_predicts(table, tmp_path):
    from forgeml import load
    from forgeml.federate.launch import federate

    runs = tmp_path / "runs"
    killed = []

    def kill_after_round_one(r, fleet):
        if r == 1:
            fleet.kill("client-2")  # its SuperNode and whatever it started: the process dies mid-run
            killed.append(r)

    lines: list[str] = []
    run = federate(table_config(table, runs, clients=3, min_clients=2), say=lines.append, on_round=kill_after_round_one)
    assert killed == [1]
    assert run == runs / "tiny-federated" and not flower_processes(runs)
    assert sorted(p.name for p in runs.iterdir()) == ["tiny-federated"]  # no staging folder left beside it
    assert any(line.startswith("round 2/2") for line in lines)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["round"] for r in history if r["split"] == "val"] == [0, 1, 2]  # the global val metric per round
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["variant"]["kind"] == "federated" and meta["variant"]["clients"] == 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"val", "test"} and metrics["test"]["step"] == 2
    assert (run / "report.html").is_file()
    rows = [{"x1": 2.0, "x2": 1.0, "color": "red", "flag": "yes"}, {"x1": -2.0, "x2": -1.0, "color": "blue", "flag": "no"}]
    out = load(run).predict(rows)
    assert {o["label"] for o in out} <= {"pos", "neg"}
    features = json.loads((run / "features.json").read_text())
    assert [f["kind"] for f in features["inputs"]] == ["numeric", "numeric", "category", "binary"]
    before = metrics["test"]["accuracy"]
    assert main(["evaluate", str(run)]) == 0  # the held-out splits again, with the bundle's merged features
    assert json.loads((run / "metrics.json").read_text())["test"]["accuracy"] == pytest.approx(before)


def test_a_dead_client_below_the_minimum_fails_the_run_clearly_and_leaves_nothing(table, tmp_path):
    from forgeml.federate.launch import federate

    runs = tmp_path / "runs"

    def kill_at_start(r, fleet):
        if r == 0:
            fleet.kill("client-1")

    with pytest.raises(FederateError, match=r"round 1: 1 of \d clients replied, the round needs 2"):
        federate(table_config(table, runs, clients=2, rounds=1), on_round=kill_at_start)
    assert list(runs.iterdir()) == [] and not flower_processes(runs)


def test_fedprox_mu_changes_what_a_client_sends_back(table, tmp_path):
    """A client's round (what the ClientApp's train handler runs): the same global weights and partition, with
    proximal-mu 0 and 1, give different weights; mu keeps them nearer the global ones."""
    from forgeml.data.featureset import FeatureSet
    from forgeml.federate.local import local_round
    from forgeml.federate.shares import client_columns
    from forgeml.federate.stats import merge, summarise
    from forgeml.models import build_network
    from forgeml.models.compose import head_settings

    cfg = load_config(table_config(table, tmp_path, clients=2, local_epochs=3))
    cols = client_columns(cfg, 0, 2, "iid", 0)
    features_json = merge([summarise(client_columns(cfg, i, 2, "iid", 0), cfg.data) for i in range(2)], cfg.data)
    features = FeatureSet.from_json(features_json)
    model = build_network(cfg.model, features.inputs, features.outputs, head_settings(cfg, features.outputs), seed=0)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def distance(mu: float) -> float:
        state, rows, privacy = local_round(cfg, cols, features_json, start, mu)
        assert privacy is None  # no train.privacy
        assert rows == 72  # half of the 144 training rows (240, less 20% val and 20% test)
        return sum(float((state[k] - start[k]).pow(2).sum()) for k in start if start[k].is_floating_point())

    plain, prox = distance(0.0), distance(1.0)
    assert prox < plain and abs(plain - distance(0.0)) < 1e-12  # seeded: the same mu gives the same weights


def test_cli_refuses_bad_input_before_any_process_starts(table, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    config = tmp_path / "tiny.yaml"
    import yaml

    config.write_text(yaml.safe_dump(table_config(table, runs)))
    assert main(["federate", str(config), "--partition", "shards:3"]) == 2
    assert "iid or dirichlet:ALPHA" in capsys.readouterr().err
    assert main(["federate", str(config), "--clients", "500"]) == 2
    assert "rows for 500 clients" in capsys.readouterr().err
    assert not runs.exists() or list(runs.iterdir()) == []
    monkeypatch.setitem(sys.modules, "flwr", None)  # as if Flower were not installed
    assert main(["federate", str(config)]) == 2
    assert "pip install 'forgeml[federated]'" in capsys.readouterr().err
