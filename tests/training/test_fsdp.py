"""Real 2-process FSDP2 jobs (torchrun, gloo, on this CPU): the same loss curve and weights as one process, and a run
killed after a sharded checkpoint resumes exactly on 1 process and on 2.

Written like test_distributed.py (whose helpers it uses): each job is `forgeml train ... --nproc 2` as a user types
it, on the small GPT with dropout off. The reference is one plain process, never stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest
import torch

from forgeml.training.fsdp import mixed_precision
from tests.conftest import quick
from tests.training.test_distributed import (
    CASES,
    FORGEML,
    GUARD_S,
    _env,
    _rank_pid,
    assert_same_weights,
    wait_for,
)
from tests.training.test_distributed import train as train_run

# long enough that a kill lands mid-run after the first checkpoint; evaluations (of 4 batches) at 30 and 60 only
SETS = ["train.max_steps=60", "train.checkpoint_every_steps=5", "train.eval_every_steps=30"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    runs = tmp_path_factory.mktemp("reference")
    train_run(runs, "gpt", "one", *SETS, "train.restore_best=true")
    return runs / "one"


def history(run):
    return [(r["split"], r["step"], r["loss"]) for r in map(json.loads, (run / "history.jsonl").read_text().splitlines())]


def assert_same_curve(a, b, splits=("train", "val")):
    """The same losses logged at the same steps (records of the other splits: at the same steps)."""
    for (s1, t1, l1), (s2, t2, l2) in zip(history(a), history(b), strict=True):
        assert (s1, t1) == (s2, t2) and (s1 not in splits or l1 == pytest.approx(l2, rel=1e-4))


def test_fsdp_on_two_processes_gives_the_loss_curve_and_weights_of_one_process(runs, reference):
    # activation checkpointing on as well: recomputing the blocks inside FSDP's units changes nothing either
    two = train_run(runs, "gpt", "two", *SETS, "train.restore_best=true", "train.strategy=fsdp",
                "train.activation_checkpointing=true", nproc=2)
    assert "FSDP2 over 2 processes (gloo): 1 block + the root sharded, fp32" in two.stderr
    assert_same_curve(reference, runs / "two")
    # one ordinary safetensors file, gathered from the shards, named as the plain model's (and the best weights
    # restored into the sharded model before the bundle was written)
    assert_same_weights(reference, runs / "two")
    checkpoints = runs / "two" / "checkpoints"
    state = torch.load(checkpoints / "last.pt", weights_only=True)
    assert "model" not in state and "optimizer" not in state, "sharded, not in last.pt"
    assert [p.name for p in checkpoints.glob("*.dcp")] == [state["sharded"]], "earlier saves removed"


def test_a_killed_fsdp_run_resumes_exactly_on_one_process_and_on_two(runs, reference):
    config, case_sets = CASES["gpt"]
    cmd = [*FORGEML, "train", config, "--name", "killed", "--nproc", "2",
           *quick(runs, *case_sets, "train.restore_best=true", *SETS, "train.strategy=fsdp")]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    last = runs / "killed" / "checkpoints" / "last.pt"
    wait_for(job, last)
    pid = _rank_pid(job, "1")
    assert pid is not None, "rank 1's process"
    os.kill(pid, signal.SIGKILL)  # perhaps mid-save: last.pt still names a complete folder
    _, err = job.communicate(timeout=GUARD_S)
    assert job.returncode != 0, "killed before the end"
    assert 0 < torch.load(last, weights_only=True)["step"] < 60
    shutil.copytree(runs / "killed", runs / "killed-again")  # the same stopped run, resumed a second way
    for run, nproc in ((runs / "killed", []), (runs / "killed-again", ["--nproc", "2"])):
        resumed = subprocess.run([*FORGEML, "train", "--resume", str(run), *nproc], capture_output=True, text=True,
                                 timeout=GUARD_S, env=_env())
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"FSDP2 over {'2 processes' if nproc else '1 process'}" in resumed.stderr  # DCP resharded 2 -> 1
        assert_same_weights(reference, run)
        # the history before the kill is kept and continued; train records average the steps since the last log,
        # and the first log after a resume counts from the resume (a shorter window), so the val losses are compared
        assert_same_curve(reference, run, splits=("val",))


def test_bf16_gathers_bf16_parameters_and_reduces_in_fp32_while_fp32_stays_fp32():
    bf16, fp32 = mixed_precision("bf16"), mixed_precision("fp32")
    assert (bf16.param_dtype, bf16.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert (fp32.param_dtype, fp32.reduce_dtype) == (None, None)  # None: the parameters' own dtype, fp32
