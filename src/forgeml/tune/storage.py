"""Where a study lives: any SQLAlchemy URL, by default sqlite:///<runs_dir>/<study>-tune/study.db. A URL the user
gives is opened (a test connection, nothing created; a SQLite file's folder must exist) before anything is written;
passwords never appear in messages. Optuna's RDB storage with heartbeats, so a dead worker's trial is noticed."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

from forgeml.config import Config
from forgeml.errors import ConfigError, ForgeError

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
def quiet():
    """Optuna's 'experimental' notices about the heartbeat API forgeml relies on: not the user's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def open_storage(url: str, heartbeat: int):
    """Optuna's RDB storage with heartbeats: a trial silent for 3 heartbeats is failed and its values retried."""
    optuna = require_optuna()
    from sqlalchemy.engine import make_url

    try:
        with quiet():
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
                retry = {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)}
            else:
                retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=2)}
            return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(make_url(url).get_backend_name()),
                                              heartbeat_interval=heartbeat, grace_period=3 * heartbeat, **retry)
    except Exception as exc:  # noqa: BLE001 - any driver's error: the storage did not open
        raise ConfigError(f"tune.storage: {shown_url(url)!r} cannot be opened: {str(exc).strip().splitlines()[0]}") from None
