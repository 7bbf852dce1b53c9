"""Real studies on wine (a second a trial): the CLI end to end, resume, pruning, failures, what each tune
field changes, worker processes, and a resume after the study's process was killed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from forgeml.cli import main
from forgeml.errors import ForgeError
from tests.tune.conftest import trials_of, wine_config

ROOT = Path(__file__).resolve().parents[2]


def folders(study: Path) -> dict[str, str]:
    """Each trial folder under the study and its meta.json status."""
    trials = study / "trials"
    return {p.name: json.loads((p / "meta.json").read_text())["status"] for p in sorted(trials.iterdir()) if not p.name.startswith(".")}


def test_cli_end_to_end_then_resume_then_train_the_best(runs, tmp_path, capsys):
    path = wine_config(runs, tmp_path, space={"train.lr": {"log_uniform": [1e-3, 1e-1]}, "model.hidden": {"choice": [[8], [32, 16]]},
                                              "model.dropout": {"uniform": [0, 0.3]}}, pruner="none")
    assert main(["tune", str(path), "--trials", "2"]) == 0
    out, err = capsys.readouterr()
    study = runs / "wine-tune"
    assert sorted(p.name for p in study.iterdir()) == ["best.yaml", "study.db", "trials", "tune.json", "tune_report.html"]
    assert [t.state.name for t in trials_of(study / "study.db")] == ["COMPLETE"] * 2
    assert "trial   1 complete  val.accuracy" in err and "[2/2]" in err  # a line per finished trial, with the best so far
    assert "study wine: value = val.accuracy (maximize)" in out and "best: trial" in out and "parameter importances: " in out
    assert folders(study) == {f"trial-000{i}": "complete" for i in range(2)}
    html = (study / "tune_report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == 3  # history, importances, parallel coordinates: inline
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    summary = json.loads((study / "tune.json").read_text())
    assert summary["counts"]["complete"] == 2 and set(summary["importances"]) == {"train.lr", "model.hidden", "model.dropout"}
    first = {t.number: t.value for t in trials_of(study / "study.db")}

    # the same command with a larger total resumes: the 2 trials stay, 1 more runs
    assert main(["tune", str(path), "--trials", "3"]) == 0
    assert "2 finished trials already (2 complete, 0 pruned, 0 failed); 1 more to reach 3" in capsys.readouterr().err
    trials = trials_of(study / "study.db")
    assert len(trials) == 3 and {t.number: t.value for t in trials[:2]} == first

    # best.yaml is the whole config with the best values, no tune section, and trains as it is
    best = yaml.safe_load((study / "best.yaml").read_text())
    summary = json.loads((study / "tune.json").read_text())
    assert "tune" not in best and best["name"] == "wine-best"
    assert best["train"]["lr"] == summary["best"]["params"]["train.lr"] and best["model"]["hidden"] == summary["best"]["params"]["model.hidden"]
    assert main(["train", str(study / "best.yaml")]) == 0
    assert json.loads((runs / "wine-best" / "meta.json").read_text())["status"] == "complete"


def test_median_pruning_stops_hopeless_trials_and_none_never_does(runs, tmp_path):
    space = {"train.lr": {"choice": [0.05, 1e-7]}}  # 1e-7 learns nothing: below the median at the first evaluation
    path = wine_config(runs, tmp_path, space=space, sampler="random", startup_trials=1, trials=5, epochs=3)
    import forgeml

    pruned = forgeml.tune(str(path))
    states = [r["state"] for r in pruned.trials]
    assert "pruned" in states and pruned.counts["pruned"] >= 1
    for row in pruned.trials:
        if row["state"] == "pruned":
            assert row["params"]["train.lr"] == 1e-7 and len(row["intermediate"]) < 4  # stopped before its last evaluation
    # pruned trials leave no folder: everything under trials/ is a complete bundle
    assert set(folders(pruned.folder).values()) == {"complete"} and len(folders(pruned.folder)) == pruned.counts["complete"]

    kept = forgeml.tune(str(path), study="no-pruning", overrides={"tune.pruner": "none", "runs_dir": str(runs / "b")})
    assert kept.counts["pruned"] == 0 and kept.counts["complete"] == 5
    # the same seed drew the same values in both studies
    assert [r["params"] for r in kept.trials] == [r["params"] for r in pruned.trials]


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(runs, tmp_path):
    import forgeml

    path = wine_config(runs, tmp_path, space={"train.lr": {"choice": [0.05, 1e12]}}, sampler="random", trials=4, pruner="none")
    cfg = yaml.safe_load(path.read_text())
    cfg["train"]["optimizer"] = "sgd"  # lr 1e12: NaN within a few steps
    path.write_text(yaml.safe_dump(cfg))
    result = forgeml.tune(str(path))
    failed = [r for r in result.trials if r["state"] == "fail"]
    assert failed and result.counts["complete"] >= 1 and len(result.trials) == 4
    for row in failed:
        assert row["params"]["train.lr"] == 1e12 and row["note"].startswith("TrainingDiverged: ")
    db_trial = next(t for t in trials_of(result.folder / "study.db") if t.state.name == "FAIL")
    assert "training diverged" in db_trial.user_attrs["fail_reason"]
    assert set(folders(result.folder).values()) == {"complete"}

    # every trial failing ends with a clear error, the report still written
    only_bad = wine_config(runs, tmp_path, space={"train.lr": {"choice": [1e12]}}, trials=2, pruner="none")
    cfg = yaml.safe_load(only_bad.read_text())
    cfg["train"]["optimizer"], cfg["name"] = "sgd", "hopeless"
    only_bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ForgeError, match=r"study 'hopeless': no trial completed \(2 failed, 0 pruned\); the first failure: TrainingDiverged"):
        forgeml.tune(str(only_bad))
    assert (runs / "hopeless-tune" / "tune_report.html").is_file() and not (runs / "hopeless-tune" / "best.yaml").exists()


def test_each_tune_field_changes_the_study(runs, tmp_path):
    import forgeml

    path = wine_config(runs, tmp_path, sampler="random", trials=2, pruner="none", epochs=2)
    a = forgeml.tune(str(path), study="a")
    same = forgeml.tune(str(path), study="same")
    db = tmp_path / "elsewhere.db"  # storage: the study goes into the database named, not the study folder's
    other_seed = forgeml.tune(str(path), study="seed1", storage=f"sqlite:///{db}", overrides={"tune.seed": 1, "runs_dir": str(runs / "c")})
    assert db.is_file() and not (other_seed.folder / "study.db").exists() and len(trials_of(db, "seed1")) == 2
    params = lambda r: [t["params"] for t in r.trials]  # noqa: E731
    assert params(a) == params(same) and params(a) != params(other_seed)  # seed: the sequence of values
    assert len(a.trials) == 2  # trials: the total

    # objective and direction: what the value is and which end is best
    by_loss = forgeml.tune(str(path), study="loss", overrides={"tune.objective": "val.loss"})
    assert by_loss.direction == "minimize" and by_loss.objective == "val.loss"
    assert by_loss.best_value == min(t["value"] for t in by_loss.trials)
    worst = forgeml.tune(str(path), study="worst", overrides={"tune.objective": "val.loss", "tune.direction": "maximize"})
    assert worst.best_value == max(t["value"] for t in worst.trials) and worst.best_value > by_loss.best_value

    # timeout: no trial starts after it, however many are asked for
    timed = forgeml.tune(str(path), study="timed", trials=500, timeout=0.5)
    assert 1 <= len(timed.trials) < 500

    # a study resumed with another space is refused, naming what changed
    with pytest.raises(ForgeError, match=r"tune.study: the study 'a' .* made from another config or search space \(changed: space\."):
        forgeml.tune(str(path), study="a", overrides={"tune.space": {"train.lr": {"log_uniform": [1e-4, 1e-3]}}})


def test_jobs_run_trials_at_once_in_worker_processes(runs, tmp_path):
    import forgeml

    path = wine_config(runs, tmp_path, trials=4, pruner="none", epochs=3)
    result = forgeml.tune(str(path), jobs=2)
    trials = [t for t in trials_of(result.folder / "study.db") if t.state.name == "COMPLETE"]
    assert len(trials) == 4
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and str(os.getpid()) not in {w.split(":")[1] for w in workers}  # two processes, not this one
    spans = {w: [(t.datetime_start, t.datetime_complete) for t in trials if t.user_attrs["worker"] == w] for w in workers}
    one, two = spans.values()
    assert any(s1 < e2 and s2 < e1 for s1, e1 in one for s2, e2 in two)  # some trials of the two ran at the same time


def test_a_killed_study_resumes_with_its_finished_trials(runs, tmp_path):
    path = wine_config(runs, tmp_path, trials=2, pruner="none")
    db = runs / "wine-tune" / "study.db"
    cmd = [sys.executable, "-m", "forgeml", "tune", str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    states: list[tuple[int, str]] = []
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if db.is_file():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    states = conn.execute("select number, state from trials order by number").fetchall()
                    drawn = conn.execute("select count(*) from trial_params p join trials t on p.trial_id = t.trial_id "
                                         "where t.state = 'RUNNING'").fetchone()[0]
            except sqlite3.OperationalError:  # the tables are being made
                states, drawn = [], 0
            if any(s == "COMPLETE" for _, s in states) and drawn:  # a trial after a complete one has its values: kill it
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-trial: no chance to tidy anything
    proc.wait()
    assert ("RUNNING" in {s for _, s in states}), f"never saw a running trial after a complete one: {states} {proc.stderr.read()}"
    before = {t.number: t.value for t in trials_of(db) if t.state.name == "COMPLETE"}
    killed = next(t.number for t in trials_of(db) if t.state.name == "RUNNING")

    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{len(before)} finished trials already ({len(before)} complete, 0 pruned, 0 failed, 1 running)" in again.stderr
    trials = trials_of(db)
    assert {t.number: t.value for t in trials if t.number in before} == before  # the earlier trials are kept as they were
    assert sum(t.state.name == "COMPLETE" for t in trials) == 2  # the total asked for
    dead = trials[killed]
    assert dead.state.name == "FAIL" and "fail_reason" not in dead.user_attrs  # failed by its heartbeat, not counted
    assert dead.params  # killed after it drew its first value (the poll above waits for one)
    retried = [t for t in trials if t.number > killed and dead.params.items() <= t.params.items()]
    assert retried and retried[0].state.name == "COMPLETE"  # the values it had drawn were tried again
    assert set(folders(runs / "wine-tune").values()) == {"complete"}  # the killed trial's half run is gone
    assert f"trial-{killed:04d}" not in folders(runs / "wine-tune")
