"""What training reports about itself: throughput that counts only training, and per-epoch lines that
show the epoch just finished."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from forgeml.training import trainer as trainer_module
from forgeml.training.callbacks import Callback, ProgressBar
from forgeml.training.trainer import Trainer


class Clock:
    """A controlled clock for the trainer: only the model moves it, so every figure can be worked out."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def time(self) -> float:
        return 1e9 + self.now

    def monotonic(self) -> float:
        return self.now


class Timed(nn.Module):
    """A linear model whose forward 'takes' 1 ms per training sample and 5 s per evaluation batch."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock, self.linear = clock, nn.Linear(4, 3)

    def forward(self, x):
        self.clock.now += 0.001 * len(x) if self.training else 5.0
        return self.linear(x)


class Records(Callback):
    def __init__(self):
        self.logs = []

    def on_log(self, trainer, record):
        self.logs.append(record)


@pytest.mark.parametrize("log_every", [3, 7, 25])  # within an epoch, across an epoch end, longer than several epochs
def test_samples_per_s_counts_training_time_only(monkeypatch, log_every):
    clock = Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    x, y = torch.randn(100, 4), torch.randint(0, 3, (100,))
    records = Records()
    Trainer(Timed(clock), "cross_entropy", epochs=5, batch_size=10, log_every_steps=log_every, progress=False,
            callbacks=[records]).fit((x, y), (x, y))
    # every epoch does the same work at 1,000 samples/s; evaluations take seconds and must not count
    assert [round(r["samples_per_s"]) for r in records.logs] == [1000] * len(records.logs)


def test_per_epoch_lines_show_that_epoch_when_epochs_are_shorter_than_the_log_interval():
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    out = io.StringIO()
    from rich.console import Console

    bar = ProgressBar(Console(file=out, width=200))  # not a terminal: a plain line per epoch
    records = Records()
    t = Trainer(nn.Linear(4, 3), "cross_entropy", epochs=3, batch_size=10, log_every_steps=50, progress=False,
                callbacks=[bar, records])
    t.fit((x, y))
    lines = [line for line in out.getvalue().splitlines() if "train loss" in line]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert [line.split()[3] for line in lines] == ["4", "8", "12"]  # the step of that epoch
    losses = [f"{r['loss']:.4f}" for r in records.logs]
    assert len(set(losses)) == 3 and all(f"train loss {loss}" in line for loss, line in zip(losses, lines))


def test_the_end_of_run_samples_per_s_counts_training_time_only(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    x, y = torch.randn(100, 4), torch.randint(0, 3, (100,))
    result = Trainer(Timed(clock), "cross_entropy", epochs=5, batch_size=10, progress=False).fit((x, y), (x, y))
    assert round(result.samples_per_s) == 1000  # 5 epochs of 100 samples at 1 ms each; evaluations excluded
    assert result.wall_time > 5 * 0.1 + 5 * 5.0 - 1e-6  # wall time still counts everything
