"""A search from start to end (run): the storage opened, the study created or resumed, the workers run, the report,
best.yaml and tune.json written. How the parts behave:

Storage. Any SQLAlchemy URL; by default sqlite:///<runs_dir>/<study>-tune/study.db. A URL the user gives is
opened (a test connection, nothing created; a SQLite file's folder must exist) before anything is written.
The same storage and study name resume a study; one made from another config or space is refused.

Trials. `tune.trials` is the number of finished trials wanted in the study in all: complete, pruned, and
failed by the run itself (NaN loss, any ForgeError: the reason is the trial's user attr `fail_reason`).
A trial whose process died (SIGKILL, a lost machine) stops sending heartbeats (RDB storage heartbeat every
`tune.heartbeat` s): after 3 x that, the next worker to look marks it failed (no fail_reason: it is not
counted) and enqueues its values again. A worker starts a trial only while the finished plus running
trials are below the total, and waits while others finish the last ones, so a study ends with exactly
the total whatever the number of workers or machines.

Folders. Each trial trains into <study folder>/trials/trial-NNNN, a complete bundle (without report.html:
it would cost more than a small trial's training; `forgeml report RUN` writes it). A pruned or failed
trial's folder is deleted as the trial ends; one left by a killed process (unlocked and not complete) is
deleted by the next worker of the study. So every folder under trials/ is a finished bundle or a live run.

A bug (an exception that is not a ForgeError) fails its trial with the traceback in `fail_reason` and stops
the worker: it would fail every trial the same way.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeml.config import Config
from forgeml.errors import ForgeError
from forgeml.training.runtime import physical_cores
from forgeml.tune import space as tune_space
from forgeml.tune.storage import (
    check_storage,
    open_storage,
    require_optuna,
    shown_url,
    storage_url,
    study_folder,
)
from forgeml.tune.study import counts, create_or_load, fingerprint
from forgeml.tune.trial import Job
from forgeml.tune.workers import run_workers


@dataclasses.dataclass
class TuneResult:
    """What a study ended with (also in <folder>/tune.json)."""

    folder: Path
    study: str
    storage: str
    objective: str
    direction: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_config: Path | None
    report: Path
    counts: dict[str, int]
    trials: list[dict[str, Any]]
    wanted: int = 0


def run(cfg: Config, objective: str, train: Callable[..., Path], say: Callable[[str], None] | None = None) -> TuneResult:
    """Create or resume the study, run trials (in this process, or tune.jobs workers) until tune.trials are
    finished, then write the report, best.yaml and tune.json. `train(config, name=, callbacks=)` trains one
    trial's config into a bundle and returns its folder (pipeline.train). The config is already checked."""
    from forgeml.tune import report

    say = say or (lambda text: (sys.stderr.write(text + "\n"), sys.stderr.flush()))
    require_optuna()
    tune = cfg.tune
    folder = study_folder(cfg)
    url = storage_url(cfg)
    if tune.storage:  # the user's database opens, before any folder is made
        check_storage(url)
    direction = tune_space.direction(objective, tune.direction)
    name = tune.study or cfg.name or "study"
    folder.mkdir(parents=True, exist_ok=True)
    storage = open_storage(url, tune.heartbeat)
    study = create_or_load(storage, name, direction, fingerprint(cfg, objective, direction))
    c = counts(study)
    if c["finished"] or c["running"]:
        left = max(0, tune.trials - c["finished"])
        running = f", {c['running']} running" if c["running"] else ""
        say(f"resuming study {name!r} ({shown_url(url)}): {c['finished']} finished trials already ({c['complete']} complete, "
            f"{c['pruned']} pruned, {c['fail']} failed{running}); {left} more to reach {tune.trials}")
    else:
        say(f"study {name!r} ({shown_url(url)}): {tune.trials} trials, {objective} ({direction}), sampler {tune.sampler} "
            f"(seed {tune.seed}), pruner {tune.pruner}, {tune.jobs} at once; trial runs in {folder / 'trials'}")
    threads = max(1, physical_cores() // tune.jobs) if tune.jobs > 1 else None
    if threads and cfg.train.threads:
        threads = min(threads, cfg.train.threads)
    job = Job(config=cfg.to_dict(), url=url, study=name, objective=objective, direction=direction, folder=str(folder.resolve()),
              train=train, seed=tune.seed, deadline=time.time() + tune.timeout if tune.timeout else None, threads=threads)
    run_workers(job, tune.jobs)
    study = create_or_load(storage, name, direction, fingerprint(cfg, objective, direction))
    try:
        summary = report.write_outputs(folder, study, cfg, objective, direction, shown_url(url))
    finally:
        storage.engine.dispose()  # this process's connections to the study's database
    best = summary["best"]
    result = TuneResult(folder=folder, study=name, storage=shown_url(url), objective=objective, direction=direction,
                        best_value=best["value"] if best else None, best_params=best["params"] if best else {},
                        best_trial=best["trial"] if best else None, best_config=folder / "best.yaml" if best else None,
                        report=folder / "tune_report.html", counts=summary["counts"], trials=summary["trials"], wanted=tune.trials)
    if best is None:
        reasons = [r["note"] for r in summary["trials"] if r["state"] == "fail" and r["note"]]
        pruned = summary["counts"]["pruned"]
        raise ForgeError(f"study {name!r}: no trial completed ({summary['counts']['fail']} failed, {pruned} pruned)"
                         + (f"; the first failure: {reasons[0]}" if reasons else "")
                         + f". Every trial is in {folder / 'tune_report.html'}; narrow tune.space (e.g. a lower train.lr range)")
    return result
