"""One process per run folder, and what a killed `train --overwrite` leaves is put right on the next start."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest
import yaml

from forgeml import pipeline, run_folder
from forgeml.bundle import Bundle
from forgeml.cli import main
from forgeml.config import load_config
from forgeml.errors import BundleError
from tests.conftest import quick


def a_run(path, status):
    Bundle(path).update_meta(status=status)  # creates the folder and meta.json, as a run would
    return path


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_overwrite_leftover_is_put_back_or_deleted(runs, caplog):
    cfg = load_config("examples/digits-cnn.yaml", [f"runs_dir={runs}"])
    caplog.set_level(logging.INFO, logger="forgeml")
    pid = dead_pid()
    # killed between setting the old run aside and making the new folder: the old run comes back
    a_run(runs / f".old.replaced-{pid}", "complete")
    with run_folder.claim_run_dir(cfg, "old", overwrite=False) as run_dir:
        assert run_dir == runs / "old-2"  # the put-back run is not replaced
    assert Bundle(runs / "old").meta()["status"] == "complete" and not (runs / f".old.replaced-{pid}").exists()
    assert "put back the run" in caplog.text
    # killed after the new run finished, before the old one was deleted: the old one goes
    a_run(runs / "done", "complete")
    a_run(runs / f".done.replaced-{pid}", "complete")
    with run_folder.claim_run_dir(cfg, "done", overwrite=True):
        pass
    assert not (runs / f".done.replaced-{pid}").exists() and Bundle(runs / "done").meta()["status"] == "complete"
    assert "the new run is complete" in caplog.text
    # killed while the new run trained, before its first checkpoint: nothing to resume, the old one comes back
    (a_run(runs / "young", "running") / "marker").write_text("new")
    a_run(runs / f".young.replaced-{pid}", "complete")
    with pytest.raises(BundleError, match="already finished"):
        pipeline.resume(runs / "young")
    assert not (runs / "young" / "marker").exists() and Bundle(runs / "young").meta()["status"] == "complete"
    # a leftover whose PID is alive again (reused: ours, here) is still a dead holder's, as the lock is ours
    a_run(runs / "reused", "complete")
    a_run(runs / f".reused.replaced-{os.getpid()}", "complete")
    with run_folder.claim_run_dir(cfg, "reused", overwrite=True):
        pass
    assert not (runs / f".reused.replaced-{os.getpid()}").exists() and Bundle(runs / "reused").meta()["status"] == "complete"
    # another run whose name merely begins like a leftover keeps its own
    a_run(runs / ".done.replaced-5.replaced-7", "complete")
    with run_folder.claim_run_dir(cfg, "done", overwrite=True):
        pass
    assert (runs / ".done.replaced-5.replaced-7").exists()


class Boom(Exception):
    pass


def test_setting_a_run_aside_never_lands_on_a_leftover_of_the_same_pid(runs):
    # leftovers of an earlier process that had our PID, not yet recovered (replacing is called without claim_run_dir)
    (a_run(runs / f".clash.replaced-{os.getpid()}", "complete") / "marker").write_text("earlier")
    (a_run(runs / f".clash.failed-{os.getpid()}", "running") / "marker").write_text("earlier")
    (a_run(runs / "clash", "complete") / "marker").write_text("old")
    with run_folder.replacing(runs / "clash"):
        (a_run(runs / "clash", "complete") / "marker").write_text("new")
    assert (runs / "clash" / "marker").read_text() == "new"
    (a_run(runs / "clash", "complete") / "marker").write_text("old")
    with pytest.raises(Boom), run_folder.replacing(runs / "clash"):
        a_run(runs / "clash", "running")
        raise Boom
    assert (runs / "clash" / "marker").read_text() == "old"  # the failed new run swapped out past the failed- leftover
    assert sorted(p.name for p in runs.iterdir()) == [f".clash.failed-{os.getpid()}", f".clash.replaced-{os.getpid()}", "clash"]
    assert all((runs / f".clash.{kind}-{os.getpid()}" / "marker").read_text() == "earlier" for kind in ("failed", "replaced"))


HOLD = """
import sys, time
from forgeml.run_folder import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_process_cannot_train_a_run_folder_another_holds(runs, capsys):
    cfg = load_config("examples/digits-cnn.yaml", [f"runs_dir={runs}"])
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(runs / "x")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        # the holder has not made runs/x yet (it is still preparing data, say): a new run takes the next name
        with run_folder.claim_run_dir(cfg, "x", overwrite=False) as run_dir:
            assert run_dir == runs / "x-2"
        with pytest.raises(BundleError, match=f"another forgeml process \\(PID {holder.pid}\\) is training this run"):
            with run_folder.claim_run_dir(cfg, "x", overwrite=True):
                pass
        assert main(["train", "--resume", str(runs / "x")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"PID {holder.pid}" in err[0], err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_folder.claim_run_dir(cfg, "x", overwrite=False) as run_dir:  # the OS released the dead holder's lock
        assert run_dir == runs / "x"


def test_an_overwrite_that_diverges_keeps_the_new_run_whose_checkpoint_the_error_points_to(runs, tmp_path, capsys):
    config = tmp_path / "iris.yaml"
    config.write_text(yaml.safe_dump({"name": "iris", "data": {"path": "sklearn:iris"}, "model": {"name": "mlp", "hidden": [8]},
                                      "train": {"batch_size": 16, "log_every_steps": 1}}))
    assert main(["train", str(config), *quick(runs, "train.max_steps=2")]) == 0
    capsys.readouterr()
    code = main(["train", str(config), "--overwrite", *quick(runs, "train.optimizer=sgd", "train.lr=1e6", "train.epochs=20",
                                                           "train.checkpoint_every_steps=1")])
    err = capsys.readouterr().err.replace("\n", "")
    assert code == 2 and "checkpoints/last.pt keeps the last good state" in err
    assert Bundle(runs / "iris").meta()["status"] == "diverged"
    assert (runs / "iris" / "checkpoints" / "last.pt").is_file()
    assert not list(runs.glob(".iris.*"))  # the old run was deleted, as after an interrupted overwrite


def test_resume_takes_any_spelling_of_an_existing_run_folder_and_creates_nothing_for_a_missing_one(runs, tmp_path, monkeypatch,
                                                                                                    capsys):
    a_run(runs / "done", "complete")
    monkeypatch.chdir(runs / "done")
    assert main(["train", "--resume", "."]) == 2  # was a traceback: '.' has no name to put a lock file beside
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "done: this run already finished" in err[0], err
    assert main(["train", "--resume", str(tmp_path / "typo" / "a" / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such run folder to resume" in err[0], err
    assert not (tmp_path / "typo").exists()
    assert main(["train", "--resume", str(runs / "nope")]) == 2
    assert "no such run folder to resume" in capsys.readouterr().err
    assert sorted(p.name for p in runs.iterdir()) == ["done"]  # no lock file left behind either


def test_an_overwrite_that_diverges_before_its_first_checkpoint_puts_the_old_run_back(runs, tmp_path, capsys):
    config = tmp_path / "iris.yaml"
    config.write_text(yaml.safe_dump({"name": "iris", "data": {"path": "sklearn:iris"}, "model": {"name": "mlp", "hidden": [8]},
                                      "train": {"batch_size": 16, "log_every_steps": 1}}))
    assert main(["train", str(config), *quick(runs, "train.max_steps=2")]) == 0
    capsys.readouterr()
    code = main(["train", str(config), "--overwrite", *quick(runs, "train.optimizer=sgd", "train.lr=1e6", "train.epochs=20")])
    err = capsys.readouterr().err
    assert code == 2 and "diverged" in err and "last.pt" not in err  # no checkpoint to point to
    assert Bundle(runs / "iris").meta()["status"] == "complete"  # nothing of the new run was worth the old one
    assert not list(runs.glob(".iris.*"))
