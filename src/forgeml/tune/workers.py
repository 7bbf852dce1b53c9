"""The workers: each runs trials until the study holds tune.trials finished ones; dead trials (no heartbeat) are failed
and their values queued again; tune.jobs > 1 runs that many spawned processes."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from pathlib import Path

from forgeml.errors import ForgeError
from forgeml.tune.storage import open_storage, quiet, require_optuna
from forgeml.tune.study import counts, make_pruner, make_sampler
from forgeml.tune.trial import Job, Surplus, clean_trials, echo_after, run_trial, say_line


def work(job: Job) -> None:
    """One worker: trials until the study holds tune.trials finished ones (or the deadline passes)."""
    import logging

    from forgeml.config import load_config

    optuna = require_optuna()
    cfg = load_config(job.config)
    target = cfg.tune.trials
    storage = open_storage(job.url, cfg.tune.heartbeat)
    existing = len(storage.get_all_trials(storage.get_study_id_from_name(job.study), deepcopy=False))
    # a fresh single-worker study draws the seed's own sequence; more workers, or a resumed study, draw other values
    seed = job.seed + 7919 * job.worker + existing
    study = optuna.load_study(study_name=job.study, storage=storage, sampler=make_sampler(cfg.tune, seed), pruner=make_pruner(cfg.tune))
    log = logging.getLogger("forgeml")
    level = log.level
    log.setLevel(logging.ERROR)  # each trial would repeat the data notes the study start already showed
    echo = echo_after(job, target, cfg.tune.space)
    trials_dir = Path(job.folder) / "trials"
    clean_trials(trials_dir)
    started = 0
    try:
        while True:
            fail_dead_trials(study, storage, 3 * cfg.tune.heartbeat)
            c = counts(study)
            # the timeout ends a worker after its first trial at the earliest (as Optuna's own timeout does), so a
            # short timeout on a slow start still gives a trial
            if c["finished"] >= target or (job.deadline is not None and time.time() >= job.deadline and started):
                break
            if c["finished"] + c["running"] >= target:  # the last trials are running elsewhere (or a dead one ages out)
                time.sleep(min(1.0, cfg.tune.heartbeat))
                continue
            study.optimize(lambda trial: run_trial(job, cfg, trial), n_trials=1, catch=(ForgeError, Surplus), callbacks=[echo])
            started += 1
    finally:
        log.setLevel(level)
        clean_trials(trials_dir)
        storage.engine.dispose()  # the database connections of this worker's storage


def fail_dead_trials(study, storage, grace: float) -> None:
    """Fail the RUNNING trials whose process is gone, and queue their values again: those whose last heartbeat is
    older than `grace` (Optuna's own check), and those with no heartbeat at all that started more than `grace` ago
    (killed between the trial's start and its first heartbeat). Several workers may look at once: the storage lets
    only one of them change a trial's state, and only that one queues the values again."""
    import datetime

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState
    from sqlalchemy import text

    with quiet():
        require_optuna().storages.fail_stale_trials(study)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return
    with storage.engine.connect() as conn:
        beating = {row[0] for row in conn.execute(text("select trial_id from trial_heartbeats"))}
    now = datetime.datetime.now()  # Optuna stores trial times in local time
    for t in running:
        if t._trial_id in beating or t.datetime_start is None or (now - t.datetime_start).total_seconds() <= grace:
            continue
        try:
            changed = storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:  # another worker got there first
            continue
        if changed and t.params:
            study.enqueue_trial(t.params, skip_if_exists=False)


def _worker_main(job: Job) -> None:
    """A spawned worker: a ForgeError is one line and exit code 2, like the CLI."""
    try:
        work(job)
    except ForgeError as exc:
        say_line(job, f"error: {exc}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def run_workers(job: Job, jobs: int) -> None:
    """jobs == 1: trials in this process. More: that many spawned processes (torch keeps process-wide thread
    settings, so threads would not do), each with cores / jobs torch threads."""
    if jobs == 1:
        work(job)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(dataclasses.replace(job, worker=i, workers=jobs),), name=f"forgeml-tune-{i + 1}")
             for i in range(jobs)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)  # they got the Ctrl-C too: each marks its trial failed and ends
            if p.is_alive():  # only this process was interrupted (kill -INT PID): the workers would run on
                p.terminate()
                p.join(timeout=10)
        raise
    bad = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if bad:
        raise ForgeError(f"{len(bad)} of {jobs} tune workers stopped with an error: {', '.join(bad)}; their messages are above. "
                         "The study keeps every finished trial: run the same command again to continue")
