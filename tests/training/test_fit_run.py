"""A training run's outcome in its bundle: which weights it keeps and why, a diverging loss, wall time across a
resume, threads, and the val loss that history.jsonl and metrics.json both report. Tiny runs on iris."""

import json
import math
import os
import signal
import time

import pytest
import torch
import yaml

from forgeml import pipeline
from forgeml.bundle import Bundle
from forgeml.cli import main
from forgeml.report.build import summary
from forgeml.training.callbacks import Callback
from tests.conftest import quick

IRIS = {"name": "iris", "data": {"path": "sklearn:iris"}, "model": {"name": "mlp", "hidden": [8]},
        "train": {"batch_size": 16, "lr": 0.01, "log_every_steps": 1}}


@pytest.fixture
def iris(tmp_path):
    path = tmp_path / "iris.yaml"
    path.write_text(yaml.safe_dump(IRIS))
    return str(path)


def strict_json(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_the_last_step_is_evaluated_and_the_bundle_says_which_weights_it_holds(iris, runs, capsys):
    # 7 steps, evaluations every 4: step 7 used to be thrown away unevaluated
    assert main(["train", iris, *quick(runs, "train.max_steps=7", "train.eval_every_steps=4", "train.restore_best=false")]) == 0
    bundle = Bundle(runs / "iris")
    assert [r["step"] for r in bundle.read_history() if r["split"] == "val"] == [4, 7]
    assert bundle.meta()["weights"] == {"step": 7, "why": "the last step; train.restore_best is false"}
    assert "weights: step 7 (the last step; train.restore_best is false)" in capsys.readouterr().out
    assert ("weights", "step 7 (the last step; train.restore_best is false)") in summary(bundle)
    assert bundle.read_json("metrics.json")["val"]["step"] == 7

    assert main(["train", iris, "--name", "best", *quick(runs, "train.max_steps=7", "train.eval_every_steps=4")]) == 0
    meta = Bundle(runs / "best").meta()
    assert meta["weights"] == {"step": meta["best"]["step"], "why": f"best val.loss {meta['best']['value']:.4g}"}

    assert main(["train", iris, "--name", "noval", *quick(runs, "train.max_steps=3", "data.split.val=0")]) == 0
    assert Bundle(runs / "noval").meta()["weights"] == {"step": 3, "why": "the last step; no validation data"}


def test_a_diverging_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(iris, runs, capsys):
    code = main(["train", iris, *quick(runs, "train.optimizer=sgd", "train.lr=1e6", "train.epochs=20",
                                        "train.checkpoint_every_steps=1")])
    err = capsys.readouterr().err.replace("\n", "")
    assert code == 2 and "Traceback" not in err
    assert "training diverged by step" in err and "train.lr" in err and "train.clip_grad_norm" in err
    run = runs / "iris"
    meta = Bundle(run).meta()
    assert meta["status"] == "diverged" and meta["step"] < 20 * 7
    strict_json((run / "meta.json").read_text())
    assert not (run / "metrics.json").exists()  # no finite weights to measure: no metrics rather than NaN ones
    for line in (run / "history.jsonl").read_text().splitlines():
        strict_json(line)
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert "report.html: the report of the diverged run" in err
    page = (run / "report.html").read_text()  # written by train itself, not only by a later `forgeml report`
    assert "no metrics: the run diverged" in page and "training diverged by step" in page
    assert main(["report", str(run)]) == 0 and "no metrics: the run diverged" in (run / "report.html").read_text()


class SlowThenCtrlC(Callback):
    """The first part of a run takes at least 0.3 s a step, then a Ctrl-C at step 3."""

    def on_step_end(self, trainer):
        time.sleep(0.3)
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGINT)


def test_wall_time_after_a_resume_counts_the_time_before_the_interruption(iris, runs):
    cfg = pipeline.load_config(iris, [f"runs_dir={runs}", "train.progress=false", "train.tensorboard=false", "train.max_steps=5"])
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(cfg, callbacks=[SlowThenCtrlC()])
    pipeline.resume(runs / "iris")
    assert Bundle(runs / "iris").meta()["wall_time"] >= 0.9  # 3 slept steps before the Ctrl-C


def test_threads_are_set_for_training_recorded_and_put_back(iris, runs):
    seen = []

    class Threads(Callback):
        def on_step_end(self, trainer):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    for n in (1, 3):
        cfg = pipeline.load_config(iris, [f"runs_dir={runs}", "train.progress=false", "train.tensorboard=false",
                                          "train.max_steps=2", f"train.threads={n}"])
        run = pipeline.train(cfg, name=f"t{n}", callbacks=[Threads()])
        assert f"{n} threads" in Bundle(run).meta()["hardware"]
    assert seen == [1, 1, 3, 3] and torch.get_num_threads() == before


def test_history_val_loss_is_the_metrics_json_loss_under_label_smoothing(iris, runs):
    cfg = pipeline.load_config(iris, [f"runs_dir={runs}", "train.progress=false", "train.tensorboard=false", "train.max_steps=6",
                                      "train.label_smoothing=0.3", "train.restore_best=false", "train.eval_every_steps=6"])
    bundle = Bundle(pipeline.train(cfg))
    last_val = [r for r in bundle.read_history() if r["split"] == "val"][-1]
    metrics = bundle.read_json("metrics.json")["val"]
    assert last_val["step"] == metrics["step"] == 6
    assert math.isclose(last_val["loss"], metrics["loss"], abs_tol=1e-5)
    smoothed = [r["loss"] for r in bundle.read_history() if r["split"] == "train"]
    assert smoothed[-1] > last_val["loss"]  # the train records' loss is the objective, smoothing included
