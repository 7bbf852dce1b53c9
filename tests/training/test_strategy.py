"""The strategy choice and the batch arithmetic, in one process (the 2-process jobs are in test_distributed.py)."""

from __future__ import annotations

import pytest
import torch

from forgeml.errors import ConfigError
from forgeml.training.strategy import Single, auto_strategy, choose, state_bytes
from forgeml.training.trainer import Trainer


def test_auto_is_single_alone_ddp_under_torchrun_and_fsdp_when_the_state_would_not_fit():
    assert auto_strategy(1, 10**12, 10**9) == "single"
    assert auto_strategy(2, 10**6, 10**9) == "ddp"
    assert auto_strategy(2, 3 * 10**8, 10**9) == "fsdp"  # more than a quarter of the device
    assert auto_strategy(2, 3 * 10**8, None) == "ddp"  # memory unknown: the plain one


def test_state_bytes_counts_weights_gradients_and_two_adam_moments():
    model = torch.nn.Linear(10, 10)  # 110 fp32 parameters
    assert state_bytes(model) == 4 * 110 * 4


def test_ddp_without_torchrun_is_a_clear_error_and_fsdp_is_a_group_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="--nproc 2"):
        choose("ddp", torch.nn.Linear(2, 2), torch.device("cpu"))
    assert choose("fsdp", torch.nn.Linear(2, 2), torch.device("cpu")) == "fsdp"  # a sharded run resumes on one process
    assert choose("auto", torch.nn.Linear(2, 2), torch.device("cpu")) == "single"


def test_single_under_several_processes_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="2 separate copies"):
        choose("single", torch.nn.Linear(2, 2), torch.device("cpu"))


def test_one_process_says_how_its_batch_is_made():
    t = Trainer(torch.nn.Linear(4, 3), "cross_entropy", batch_size=64, grad_accum=2, progress=False)
    assert isinstance(t.strategy, Single)
    assert t.describe_batch() == "global batch 64 = 1 process x 32 rows x 2 micro-steps (1 process)"
