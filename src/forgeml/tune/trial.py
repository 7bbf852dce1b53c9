"""One trial: its values drawn, its config trained into trials/trial-NNNN (a complete bundle or nothing), its objective
reported at each evaluation (pruned when the pruner says so), its failure recorded with the reason."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeml.config import Config
from forgeml.errors import ForgeError
from forgeml.training.callbacks import Callback
from forgeml.tune import space as tune_space
from forgeml.tune.storage import require_optuna
from forgeml.tune.study import counted, counts, surplus


class _Pruned(Exception):
    """Raised from a trial's on_eval to end its run now (not a ForgeError: the run is abandoned, not wrong)."""


class Surplus(Exception):
    """Two workers saw one free place at once: the trial with the higher number steps back (FAIL, user attr surplus,
    left out of every count and table)."""


class ReportToTrial(Callback):
    """Reports the objective at every evaluation to the Optuna trial (step = evaluation number 1, 2, ...: the same
    for trials of different batch sizes) and ends the run when the pruner says so."""

    def __init__(self, trial, key: str, prune: bool):
        self.trial, self.key, self.prune, self.n, self.values = trial, key, prune, 0, []

    def on_eval(self, trainer, record: dict[str, Any]) -> None:
        self.n += 1
        value = record.get(self.key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        self.values.append(float(value))
        self.trial.report(float(value), self.n)
        if self.prune and self.trial.should_prune():
            self.trial.set_user_attr("pruned_at", {"evaluation": self.n, "step": record.get("step"), "value": float(value)})
            raise _Pruned(self.n)


def clean_trials(trials_dir: Path) -> None:
    """Delete every trial folder that is not a complete bundle and that no live process holds (a pruned or failed
    trial's, or one a killed process left)."""
    from forgeml.bundle import Bundle
    from forgeml.run_folder import RunInUse, run_lock

    if not trials_dir.is_dir():
        return
    for run in sorted(trials_dir.iterdir()):
        if run.name.startswith(".") or not run.is_dir():
            continue
        try:
            with run_lock(run):
                meta = Bundle(run).meta() if (run / "meta.json").is_file() else {}
                if meta.get("status") != "complete":
                    shutil.rmtree(run, ignore_errors=True)
        except RunInUse:
            continue


def _value(run: Path, key: str, reporter: ReportToTrial, direction: str) -> float | None:
    """The trial's objective: the bundle's own validation metric (measured on the weights it keeps), or, when the
    run does not measure val into metrics.json (eval.splits), the best value reported during training."""
    import json

    metrics = json.loads((run / "metrics.json").read_text()).get("val") if (run / "metrics.json").is_file() else None
    node: Any = metrics
    if isinstance(node, dict) and key in node:
        node = node[key]
    else:
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, (int, float)) and math.isfinite(node):
        return float(node)
    if reporter.values:
        return min(reporter.values) if direction == "minimize" else max(reporter.values)
    return None


@dataclasses.dataclass
class Job:
    """What a worker needs; plain values and a module-level function, so it crosses to a spawned process."""

    config: dict[str, Any]
    url: str
    study: str
    objective: str
    direction: str
    folder: str
    train: Callable[..., Path]
    seed: int
    deadline: float | None = None
    threads: int | None = None
    worker: int = 0
    workers: int = 1


def run_trial(job: Job, cfg: Config, trial) -> float:
    optuna = require_optuna()
    ahead = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number and not surplus(t)]
    if sum(counted(t) or t.state.name == "RUNNING" for t in ahead) >= cfg.tune.trials:
        trial.set_user_attr("surplus", True)
        raise Surplus()
    values = tune_space.suggest(trial, cfg.tune.space)
    name = f"trial-{trial.number:04d}"
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    settings: dict[str, Any] = {"runs_dir": str(Path(job.folder) / "trials"), "name": name, "train.progress": False}
    if job.threads:
        settings["train.threads"] = job.threads
    trials_dir = Path(job.folder) / "trials"
    reporter = ReportToTrial(trial, job.objective.removeprefix("val."), prune=cfg.tune.pruner != "none")
    try:
        trial_cfg = tune_space.apply(cfg, values, **settings)
        run = job.train(trial_cfg, name=name, callbacks=[reporter], report=False)  # forgeml report RUN writes one later
    except _Pruned:
        clean_trials(trials_dir)
        raise optuna.TrialPruned() from None
    except ForgeError as exc:
        clean_trials(trials_dir)
        message = str(exc)
        if message.startswith(str(trials_dir)):  # the trial's folder, deleted just now: not a place to look
            message = message.split(": ", 1)[-1]
        trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {message}")
        raise
    except Exception as exc:
        clean_trials(trials_dir)
        trial.set_user_attr("fail_reason", f"bug: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise
    value = _value(run, job.objective.removeprefix("val."), reporter, job.direction)
    if value is None:
        trial.set_user_attr("fail_reason", f"{job.objective} was not measured (not finite)")
        shutil.rmtree(run, ignore_errors=True)
        raise ForgeError(f"trial {trial.number}: {job.objective} was not measured")
    trial.set_user_attr("run", str(run))
    return value


def say_line(job: Job, text: str) -> None:
    tag = f"[worker {job.worker + 1}] " if job.workers > 1 else ""
    sys.stderr.write(f"{tag}{text}\n")
    sys.stderr.flush()


def echo_after(job: Job, target: int, space) -> Callable:
    def after(study, trial) -> None:
        if surplus(trial):
            return
        shown = "  ".join(f"{k}={_short(v)}" for k, v in tune_space.decode(trial.params, space).items())
        done = counts(study)["finished"]
        secs = f"{trial.duration.total_seconds():.1f} s" if trial.duration else ""
        if trial.state.name == "COMPLETE":
            try:
                best = study.best_trial
                best_txt = f"best {best.value:.4f} (trial {best.number})"
            except ValueError:
                best_txt = ""
            head = f"trial {trial.number:>3} complete  {job.objective} {trial.value:.4f}  {best_txt}"
        elif trial.state.name == "PRUNED":
            at = trial.user_attrs.get("pruned_at", {})
            head = f"trial {trial.number:>3} pruned at evaluation {at.get('evaluation', '?')} ({job.objective} {at.get('value', float('nan')):.4f})"
        else:
            reason = trial.user_attrs.get("fail_reason", "stopped").splitlines()[0]
            head = f"trial {trial.number:>3} failed: {reason}"
        say_line(job, f"{head}  [{done}/{target}]  {secs}  {shown}")
    return after


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace(" ", "")
