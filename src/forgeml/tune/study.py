"""The Optuna study: created or resumed (one made from another config, space or objective is refused), what counts
toward tune.trials, the sampler and the pruner."""

from __future__ import annotations

from typing import Any

from forgeml.config import Config, diff_dicts
from forgeml.errors import ConfigError
from forgeml.tune import space as tune_space
from forgeml.tune.storage import require_optuna


def fingerprint(cfg: Config, objective: str, direction: str) -> dict[str, Any]:
    """What makes a study's trials comparable: the config (bar where runs go and how many trials), the space,
    the objective and its direction. A resume with another fingerprint is refused."""
    base = tune_space.base_dict(cfg)
    for key in ("name", "runs_dir"):
        base.pop(key, None)
    tune = cfg.tune.model_dump(mode="json", by_alias=True)
    return {"config": base, "space": tune["space"], "objective": objective, "direction": direction}


def create_or_load(storage, name: str, direction: str, stamp: dict[str, Any]):
    """The study of that name in the storage, made when missing; a ConfigError when it was made from another
    config, space or objective."""
    optuna = require_optuna()
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    kept = study.user_attrs.get("forgeml")
    if kept is None:
        study.set_user_attr("forgeml", stamp)
    elif kept != stamp:
        changed = [path for path, _, _ in diff_dicts(kept, stamp)]
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
