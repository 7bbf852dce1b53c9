"""Runs killed for real (SIGKILL: no handler, no last checkpoint on the way out) resume, or say plainly why not."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from forgeml import pipeline
from forgeml.bundle import Bundle
from forgeml.cli import main
from tests.conftest import quick

FORGEML = [sys.executable, "-m", "forgeml"]


def train_cmd(runs: Path, name: str, *sets: str) -> list[str]:
    # 210 training rows in batches of 4: one epoch is 53 steps, long enough for a kill to land inside it
    return [*FORGEML, "train", "examples/digits-cnn.yaml", "--name", name,
            *quick(runs, "data.limit=300", "train.epochs=1", "train.batch_size=4", *sets)]


def kill_when(proc: subprocess.Popen, path: Path) -> None:
    """SIGKILL `proc` as soon as `path` exists."""
    deadline = time.monotonic() + 300  # a guard against a hung test, not a timing assertion
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_run_killed_after_a_timed_checkpoint_resumes(runs):
    # no step interval and a long epoch: only the clock can write last.pt before the epoch ends
    proc = subprocess.Popen(train_cmd(runs, "timed", "train.checkpoint_every_minutes=0.0005"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = runs / "timed" / "checkpoints" / "last.pt"
    kill_when(proc, last)
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 0 and 0 < state["step"] < 53, "a mid-epoch checkpoint, written on time"
    assert Bundle(runs / "timed").meta()["status"] == "running"  # SIGKILL: nothing recorded the stop
    pipeline.resume(runs / "timed")
    meta = Bundle(runs / "timed").meta()
    assert meta["status"] == "complete" and meta["steps"] == 53


def test_a_run_killed_before_its_first_checkpoint_says_so_and_how_to_start_again(runs, capsys):
    proc = subprocess.Popen(train_cmd(runs, "early", "train.checkpoint_every_minutes=null"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(proc, runs / "early" / "meta.json")  # the run folder is written; training has just begun
    assert not (runs / "early" / "checkpoints" / "last.pt").exists()
    assert main(["train", "--resume", str(runs / "early")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "stopped before its first checkpoint (written at each epoch end), so there is nothing to resume" in lines[0]
    command = shlex.split(lines[0].split("start it again with", 1)[1])
    assert command[:2] == ["forgeml", "train"] and "--overwrite" in command
    assert main(command[1:]) == 0  # the command it gives really starts the run again, in the same folder
    assert Bundle(runs / "early").meta()["status"] == "complete"
    assert not (runs / "early-2").exists()


SHUFFLED_LOADER_RUN = """
import os, signal, sys
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from forgeml.training.callbacks import Callback
from forgeml.training.trainer import Trainer

folder, mode, seeded = sys.argv[1], sys.argv[2], sys.argv[3] == "generator"

class KillAt(Callback):  # SIGKILL at step 20: epoch 2 of 3, 5 batches in, 2 steps after the checkpoint of step 18
    def on_step_end(self, trainer):
        if trainer.step == 20:
            os.kill(os.getpid(), signal.SIGKILL)

def fit(name, kill=False, resume=False):
    torch.manual_seed(0)
    x, y = torch.randn(120, 6), torch.randint(0, 3, (120,))
    # 15 batches, drawn in a new order each epoch, from the loader's own generator or torch's global RNG
    generator = torch.Generator().manual_seed(1) if seeded else None
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=generator)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    trainer = Trainer(model, "cross_entropy", run_dir=os.path.join(folder, name), epochs=3, checkpoint_every_steps=3,
                      checkpoint_every_minutes=None, progress=False, tensorboard=False, callbacks=[KillAt()] if kill else [])
    trainer.fit(loader, resume=resume)
    torch.save(model.state_dict(), os.path.join(folder, name, "final.pt"))

if mode == "cut":
    fit("cut", kill=True)
else:  # a fresh process resumes the killed run, then trains the same run uninterrupted to compare
    fit("cut", resume=True)
    fit("whole")
"""


@pytest.mark.parametrize("order", ["global", "generator"])
def test_a_shuffled_dataloader_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, order):
    # the resumed epoch is followed by a third: its order must be drawn from where the stopped run's RNG was
    script = tmp_path / "train_loader.py"
    script.write_text(SHUFFLED_LOADER_RUN)

    def run(mode):
        return subprocess.run([sys.executable, str(script), str(tmp_path), mode, order], capture_output=True, text=True)

    cut = run("cut")
    assert cut.returncode == -signal.SIGKILL, cut.stderr
    state = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["batch"]) == (18, 1, 3), "killed mid-epoch, after a checkpoint"
    finish = run("resume, then whole")
    assert finish.returncode == 0, finish.stderr
    a = torch.load(tmp_path / "whole" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "final.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
