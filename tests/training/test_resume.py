"""Exact resume: a run interrupted and resumed ends with bit-identical weights to one never interrupted."""

import os
import signal

import pytest
import torch

from forgeml import pipeline
from forgeml.bundle import Bundle
from forgeml.config import load_config
from forgeml.errors import BundleError
from forgeml.training.callbacks import Callback


class InterruptAt(Callback):
    """A real Ctrl-C (SIGINT to this process) during step `step`: training stops at that step's boundary."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


class HardStopAt(Callback):
    """Two Ctrl-Cs, or a crash: KeyboardInterrupt right away, mid-step; the last periodic checkpoint is the resume point."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.step == self.step:
            raise KeyboardInterrupt


def config(runs, *extra):
    # dropout + augmentation + a schedule + accumulation: every source of state an exact resume must restore
    return load_config("examples/digits-cnn.yaml", [
        f"runs_dir={runs}", "train.epochs=3", "train.progress=false", "train.tensorboard=false", "data.limit=400",
        "train.grad_accum=2", "data.augment.cutout=2", *extra])


@pytest.mark.parametrize("stop_at", [7, 10])  # mid-epoch, and exactly at an epoch boundary (5 steps per epoch)
def test_interrupted_and_resumed_equals_uninterrupted(runs, stop_at):
    whole = pipeline.train(config(runs), name="whole")
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(config(runs), name="cut", callbacks=[InterruptAt(stop_at)])
    cut = runs / "cut"
    assert Bundle(cut).meta()["status"] == "interrupted"
    with pytest.raises(BundleError, match="resume it with forgeml train --resume"):
        Bundle.open(cut)
    pipeline.resume(cut)
    a, b = Bundle(whole).load_weights(), Bundle(cut).load_weights()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [r["step"] for r in Bundle(cut).read_history() if r["split"] == "val"]
    assert steps == sorted(set(steps)), "history has each evaluation once after the resume"


def test_a_hard_stop_resumes_from_the_last_periodic_checkpoint(runs):
    whole = pipeline.train(config(runs), name="whole")
    with pytest.raises(KeyboardInterrupt):  # step 8 of 15, checkpoints every 3 steps and at epoch ends
        pipeline.train(config(runs, "train.checkpoint_every_steps=3"), name="cut", callbacks=[HardStopAt(8)])
    pipeline.resume(runs / "cut")
    a, b = Bundle(whole).load_weights(), Bundle(runs / "cut").load_weights()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_changed_config_and_a_finished_run(runs):
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(config(runs), name="cut", callbacks=[InterruptAt(3)])
    with pytest.raises(BundleError, match=r"train.lr: 0.003 in the run, 0.1 now"):
        pipeline.resume(runs / "cut", overrides=["train.lr=0.1"])
    pipeline.resume(runs / "cut")
    with pytest.raises(BundleError, match="already finished"):
        pipeline.resume(runs / "cut")


def test_a_language_model_resumes_exactly(runs):
    overrides = [f"runs_dir={runs}", "train.max_steps=24", "train.eval_every_steps=8", "train.eval_batches=2",
                 "train.warmup_steps=4", "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.dropout=0.1",
                 "train.progress=false", "train.tensorboard=false"]
    whole = pipeline.train(load_config("examples/shakespeare-gpt.yaml", overrides), name="whole")
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(load_config("examples/shakespeare-gpt.yaml", overrides), name="cut", callbacks=[InterruptAt(13)])
    pipeline.resume(runs / "cut")
    a, b = Bundle(whole).load_weights(), Bundle(runs / "cut").load_weights()
    assert all(torch.equal(a[k], b[k]) for k in a)
