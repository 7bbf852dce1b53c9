"""Real 2-process jobs (torchrun, gloo, on this CPU): DDP equals one process, a killed rank stops the job, runs resume
on another number of processes.

Each job is `forgeml train ... --nproc 2`, as a user types it. Models are small and runs a few steps: the point is
the arithmetic, not the learning. Dropout, augmentation and batch norm are off where two runs are compared: each
rank draws its own dropout masks on its slice and batch norm normalises per slice (as PyTorch's DDP does on a CPU),
so those would differ from one process by design, not by error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from forgeml.bundle import load_safetensors
from tests.conftest import quick

FORGEML = [sys.executable, "-m", "forgeml"]
GUARD_S = 600  # a guard against a hung job, not a timing assertion

# (example, --set overrides): small, deterministic given the data order (no dropout, augmentation or batch norm)
CASES = {
    # 1,000 rows: 700 train, so every batch size used here leaves a short batch of an even number of rows (it splits)
    "cnn": ("examples/digits-cnn.yaml", ["data.limit=1000", "data.augment.translate=0", "model.dropout=0",
                                         "model.blocks=[{channels: 8, kernel: 3, padding: 1}, {channels: 8, kernel: 3, pool: 2}]",
                                         "model.hidden=[32]", "train.max_steps=12", "train.batch_size=32", "train.label_smoothing=0"]),
    "multi-input": ("examples/adult-mlp.yaml", ["data.limit=1200", "data.test_path=null", "data.split.test=0.1", "model.dropout=0",
                                                "model.norm=layer", "model.hidden=[32]", "train.max_steps=12", "train.batch_size=64"]),
    "gpt": ("examples/shakespeare-gpt.yaml", ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16",
                                              "train.max_steps=12", "train.warmup_steps=2", "train.batch_size=8",
                                              "train.eval_every_steps=6", "train.eval_batches=4"]),
}


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def train(runs: Path, case: str, name: str, *extra: str, nproc: int | None = None) -> subprocess.CompletedProcess:
    config, sets = CASES[case]
    cmd = [*FORGEML, "train", config, "--name", name, *quick(runs, *sets, "train.restore_best=false", *extra)]
    cmd += ["--nproc", str(nproc)] if nproc else []
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=GUARD_S, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_safetensors(run / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=2e-5, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_on_two_processes_ends_with_the_weights_of_one_process_taking_the_whole_batch(runs, case):
    train(runs, case, "one")
    two = train(runs, case, "two", nproc=2)
    assert "global batch" in two.stderr and "2 processes" in two.stderr and "DDP" in two.stderr
    assert two.stderr.count("note: device:") == 1, "only rank 0 speaks"
    assert_same_weights(runs / "one", runs / "two")
    # the losses logged (train: the mean over both ranks; val: reduced over both ranks' batches) are one process's
    import json

    def records(run):
        return [r for r in map(json.loads, (run / "history.jsonl").read_text().splitlines())]

    measured = ("loss", "accuracy", "f1_macro", "perplexity", "rmse")  # every figure a val record can hold here
    for r1, r2 in zip(records(runs / "one"), records(runs / "two"), strict=True):
        assert (r1["split"], r1["step"]) == (r2["split"], r2["step"])
        for key in measured:
            if key in r1:  # reduced over both ranks: the figure of the whole set (perplexity's own sums too)
                assert r2[key] == pytest.approx(r1[key], rel=1e-4), (r1["split"], r1["step"], key)
    meta = json.loads((runs / "two" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["steps"] == 12


def test_a_batch_that_does_not_split_across_the_processes_is_refused_before_any_folder(runs):
    config, sets = CASES["cnn"]
    done = subprocess.run([*FORGEML, "train", config, "--nproc", "2", *quick(runs, *sets, "train.batch_size=33")],
                          capture_output=True, text=True, timeout=GUARD_S, env=_env())
    assert done.returncode != 0
    assert "train.batch_size: 33" in done.stderr and "divisible by 2" in done.stderr
    assert not any(runs.iterdir()), "nothing written"


def wait_for(job: subprocess.Popen, path: Path) -> None:
    """Until `path` exists (the job still running)."""
    deadline = time.monotonic() + GUARD_S
    while not path.exists():
        assert job.poll() is None, job.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _parent(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def _rank_pid(launcher: subprocess.Popen, rank: str) -> int | None:
    """The torchrun worker with RANK=rank under this launcher (launcher -> torchrun -> worker)."""
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or f"RANK={rank}".encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            pid, chain = int(entry.name), []
            while pid > 1 and len(chain) < 4:
                pid = _parent(pid)
                chain.append(pid)
            if launcher.pid in chain[1:3]:  # not torchrun itself (it has no RANK): a worker two levels down
                return int(entry.name)
        except (OSError, ValueError, StopIteration):
            continue
    return None


KILL_SETS = ["train.max_steps=160", "train.checkpoint_every_steps=10", "train.batch_size=16", "train.eval_every_steps=1000"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """One process, never stopped: what both killed-and-resumed runs must end with (trained once for both)."""
    runs = tmp_path_factory.mktemp("uninterrupted")
    train(runs, "cnn", "reference", *KILL_SETS)
    return runs / "reference"


def test_killing_one_rank_stops_the_job_and_the_run_resumes_on_one_process_exactly(runs, uninterrupted):
    sets = KILL_SETS
    config, case_sets = CASES["cnn"]
    cmd = [*FORGEML, "train", config, "--name", "killed", "--nproc", "2",
           *quick(runs, *case_sets, "train.restore_best=false", *sets)]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    last = runs / "killed" / "checkpoints" / "last.pt"
    wait_for(job, last)
    pid = _rank_pid(job, "1")
    assert pid is not None, "rank 1's process"
    os.kill(pid, signal.SIGKILL)
    _, err = job.communicate(timeout=GUARD_S)  # torchrun notices the dead worker and stops rank 0: no hang
    assert job.returncode != 0
    assert "the 2-process training job stopped" in err
    assert f"forgeml train --resume {runs / 'killed'} --nproc 2" in err
    state = torch.load(last, weights_only=True)
    assert 0 < state["step"] < 160
    # the same run, resumed by one process, ends where the uninterrupted one did
    resumed = subprocess.run([*FORGEML, "train", "--resume", str(runs / "killed")], capture_output=True, text=True,
                             timeout=GUARD_S, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(uninterrupted, runs / "killed")


def test_a_one_process_run_killed_resumes_on_two_processes_exactly(runs, uninterrupted):
    sets = KILL_SETS
    config, case_sets = CASES["cnn"]
    cmd = [*FORGEML, "train", config, "--name", "killed", *quick(runs, *case_sets, "train.restore_best=false", *sets)]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    last = runs / "killed" / "checkpoints" / "last.pt"
    wait_for(job, last)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert 0 < torch.load(last, weights_only=True)["step"] < 160
    resumed = subprocess.run([*FORGEML, "train", "--resume", str(runs / "killed"), "--nproc", "2"], capture_output=True,
                             text=True, timeout=GUARD_S, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 processes" in resumed.stderr
    assert_same_weights(uninterrupted, runs / "killed")


TRAINER_SCRIPT = """
import sys, torch
from forgeml import Trainer
from forgeml.bundle import save_safetensors
from forgeml.training import distributed
torch.manual_seed(0)
x, y = torch.randn(256, 6), torch.randint(0, 3, (256,))
model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
trainer = Trainer(model, "cross_entropy", epochs=2, batch_size=32, lr=1e-2, progress=False, run_dir=sys.argv[1])
trainer.fit((x, y))
if distributed.is_main():
    save_safetensors(sys.argv[1] + "/weights.safetensors", trainer.full_state_dict())
print("strategy", trainer.strategy.name, "rank", distributed.rank())
distributed.shutdown()
"""


def test_the_python_trainer_under_torchrun_is_ddp_with_the_global_batch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAINER_SCRIPT)
    one, two = tmp_path / "one", tmp_path / "two"
    alone = subprocess.run([sys.executable, str(script), str(one)], capture_output=True, text=True, timeout=GUARD_S, env=_env())
    assert alone.returncode == 0, alone.stderr[-3000:]
    job = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
                          str(two)], capture_output=True, text=True, timeout=GUARD_S, env=_env())
    assert job.returncode == 0, job.stderr[-3000:]
    assert "strategy single rank 0" in alone.stdout
    assert "strategy ddp rank 0" in job.stdout and "strategy ddp rank 1" in job.stdout
    a, b = load_safetensors(one / "weights.safetensors"), load_safetensors(two / "weights.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5)
    assert (two / "history.jsonl").is_file() and (two / "checkpoints" / "last.pt").is_file()  # rank 0 wrote them
