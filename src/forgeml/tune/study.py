"""The study: its storage, creation or resume, the objective every trial runs, and the worker processes.

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

import contextlib
import dataclasses
import math
import multiprocessing
import os
import shutil
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeml.config import Config
from forgeml.errors import ConfigError, ForgeError
from forgeml.training.callbacks import Callback
from forgeml.tune import space as tune_space

INSTALL = "pip install 'forgeml[tune]'"


def require_optuna():
    """The optuna module, quiet; a ForgeError naming the extra to install when it is missing."""
    try:
        import optuna
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise ForgeError(f"forgeml tune needs Optuna and SQLAlchemy ({exc.name} is not installed): {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # forgeml prints a line per trial itself
    return optuna


# ------------------------------------------------------------------------------------------- storage
def study_folder(cfg: Config) -> Path:
    """runs_dir/<study name>-tune: the study's trials, report and best.yaml (and its SQLite file by default)."""
    return Path(cfg.runs_dir) / f"{cfg.tune.study or cfg.name or 'run'}-tune"


def storage_url(cfg: Config) -> str:
    """tune.storage, or the SQLite file in the study folder (an absolute path: every worker reads the same file).
    A plain postgresql:// URL goes through psycopg2 where psycopg (SQLAlchemy 2.1's default) is not installed."""
    if not cfg.tune.storage:
        return f"sqlite:///{(study_folder(cfg) / 'study.db').resolve()}"
    url = cfg.tune.storage
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def shown_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _engine_kwargs(backend: str) -> dict[str, Any]:
    if backend == "sqlite":  # several worker processes write one file: wait for the lock rather than fail
        return {"connect_args": {"timeout": 60}}
    if backend == "postgresql":
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {"pool_pre_ping": True}


def check_storage(url: str) -> None:
    """A user's storage URL opens: a ConfigError naming tune.storage otherwise. Creates nothing: a SQLite file's
    folder must exist (the file itself is made with the study)."""
    require_optuna()
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    where = f"tune.storage: {shown_url(url)!r}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{where} is not a database URL; give e.g. sqlite:///runs/study.db or "
                          "postgresql://user:password@host:5432/dbname") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"{where}: a study in memory is lost when the command ends (and workers cannot share it); "
                              "give a file, e.g. sqlite:///runs/study.db")
        path = Path(parsed.database)
        if not path.parent.is_dir():
            raise ConfigError(f"{where}: the folder {path.parent} does not exist (or is not a folder); create it or "
                              "choose another place for the SQLite file")
        if path.is_dir():
            raise ConfigError(f"{where}: {path} is a folder; give the path of a database file in it, e.g. {path / 'study.db'}")
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise ConfigError(f"{where}: {path if path.exists() else path.parent} is not writable; choose a folder you can write")
        if not path.exists():
            return  # opening would create it: it is made with the study
    try:
        engine = create_engine(url, **_engine_kwargs(backend))
    except ArgumentError as exc:  # NoSuchModuleError too: an unknown scheme
        raise ConfigError(f"{where}: {str(exc).splitlines()[0]}; give e.g. sqlite:///runs/study.db or "
                          "postgresql://user:password@host:5432/dbname") from None
    except ImportError as exc:
        driver = "psycopg2-binary" if backend == "postgresql" else exc.name
        raise ConfigError(f"{where}: its database driver is not installed ({exc.name}): pip install {driver}") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"{where} cannot be opened: {reason}") from None
    finally:
        engine.dispose()


@contextlib.contextmanager
def _quiet():
    """Optuna's 'experimental' notices about the heartbeat API forgeml relies on: not the user's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def open_storage(url: str, heartbeat: int):
    """Optuna's RDB storage with heartbeats: a trial silent for 3 heartbeats is failed and its values retried."""
    optuna = require_optuna()
    from sqlalchemy.engine import make_url

    try:
        with _quiet():
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
                retry = {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)}
            else:
                retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=2)}
            return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(make_url(url).get_backend_name()),
                                              heartbeat_interval=heartbeat, grace_period=3 * heartbeat, **retry)
    except Exception as exc:  # noqa: BLE001 - any driver's error: the storage did not open
        raise ConfigError(f"tune.storage: {shown_url(url)!r} cannot be opened: {str(exc).strip().splitlines()[0]}") from None


# ----------------------------------------------------------------------------------------- the study
def fingerprint(cfg: Config, objective: str, direction: str) -> dict[str, Any]:
    """What makes a study's trials comparable: the config (bar where runs go and how many trials), the space,
    the objective and its direction. A resume with another fingerprint is refused."""
    base = tune_space.base_dict(cfg)
    for key in ("name", "runs_dir"):
        base.pop(key, None)
    tune = cfg.tune.model_dump(mode="json", by_alias=True)
    return {"config": base, "space": tune["space"], "objective": objective, "direction": direction}


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if a != b else []


def create_or_load(storage, name: str, direction: str, stamp: dict[str, Any]):
    """The study of that name in the storage, made when missing; a ConfigError when it was made from another
    config, space or objective."""
    optuna = require_optuna()
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    kept = study.user_attrs.get("forgeml")
    if kept is None:
        study.set_user_attr("forgeml", stamp)
    elif kept != stamp:
        changed = _diff(kept, stamp)
        raise ConfigError(f"tune.study: the study {name!r} in this storage was made from another config or search space "
                          f"(changed: {', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''}); keep the config as it was "
                          "to resume it, or give a new study name (--study NAME)")
    return study


def counted(trial) -> bool:
    """Whether a trial counts toward tune.trials: complete, pruned, or failed by its own run (not by a dead process)."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and "fail_reason" in trial.user_attrs)


def surplus(trial) -> bool:
    """A trial that found the total already reached (or running) by trials numbered before it, and ran nothing."""
    return bool(trial.user_attrs.get("surplus"))


def counts(study) -> dict[str, int]:
    trials = [t for t in study.get_trials(deepcopy=False) if not surplus(t)]
    out = {s: sum(t.state.name == s.upper() for t in trials) for s in ("complete", "pruned", "fail", "running")}
    out["finished"] = sum(counted(t) for t in trials)
    return out


def make_sampler(tune, seed: int):
    optuna = require_optuna()
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials, constant_liar=True)


def make_pruner(tune):
    optuna = require_optuna()
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=0)
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------------------------------- one trial
class _Pruned(Exception):
    """Raised from a trial's on_eval to end its run now (not a ForgeError: the run is abandoned, not wrong)."""


class _Surplus(Exception):
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


def _objective(job: Job, cfg: Config, trial) -> float:
    optuna = require_optuna()
    ahead = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number and not surplus(t)]
    if sum(counted(t) or t.state.name == "RUNNING" for t in ahead) >= cfg.tune.trials:
        trial.set_user_attr("surplus", True)
        raise _Surplus()
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


def _say(job: Job, text: str) -> None:
    tag = f"[worker {job.worker + 1}] " if job.workers > 1 else ""
    sys.stderr.write(f"{tag}{text}\n")
    sys.stderr.flush()


def _echo(job: Job, target: int, space) -> Callable:
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
        _say(job, f"{head}  [{done}/{target}]  {secs}  {shown}")
    return after


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace(" ", "")


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
    echo = _echo(job, target, cfg.tune.space)
    trials_dir = Path(job.folder) / "trials"
    clean_trials(trials_dir)
    try:
        while True:
            fail_dead_trials(study, storage, 3 * cfg.tune.heartbeat)
            c = counts(study)
            if c["finished"] >= target or (job.deadline is not None and time.time() >= job.deadline):
                break
            if c["finished"] + c["running"] >= target:  # the last trials are running elsewhere (or a dead one ages out)
                time.sleep(min(1.0, cfg.tune.heartbeat))
                continue
            study.optimize(lambda trial: _objective(job, cfg, trial), n_trials=1, catch=(ForgeError, _Surplus), callbacks=[echo])
    finally:
        log.setLevel(level)
        clean_trials(trials_dir)


def fail_dead_trials(study, storage, grace: float) -> None:
    """Fail the RUNNING trials whose process is gone, and queue their values again: those whose last heartbeat is
    older than `grace` (Optuna's own check), and those with no heartbeat at all that started more than `grace` ago
    (killed between the trial's start and its first heartbeat). Several workers may look at once: the storage lets
    only one of them change a trial's state, and only that one queues the values again."""
    import datetime

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState
    from sqlalchemy import text

    with _quiet():
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
        _say(job, f"error: {exc}")
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
        raise
    bad = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if bad:
        raise ForgeError(f"{len(bad)} of {jobs} tune workers stopped with an error: {', '.join(bad)}; their messages are above. "
                         "The study keeps every finished trial: run the same command again to continue")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


# -------------------------------------------------------------------------------------------- a study
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
    threads = max(1, cores() // tune.jobs) if tune.jobs > 1 else None
    if threads and cfg.train.threads:
        threads = min(threads, cfg.train.threads)
    job = Job(config=cfg.to_dict(), url=url, study=name, objective=objective, direction=direction, folder=str(folder.resolve()),
              train=train, seed=tune.seed, deadline=time.time() + tune.timeout if tune.timeout else None, threads=threads)
    run_workers(job, tune.jobs)
    study = create_or_load(storage, name, direction, fingerprint(cfg, objective, direction))
    summary = report.write_outputs(folder, study, cfg, objective, direction, shown_url(url))
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
