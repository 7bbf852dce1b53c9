"""The search space of a config's `tune` section: every field and value checked before a study starts,
then sampled by each trial and applied to the config.

    check_space(cfg)                  # ConfigError naming the field and the refused value, or nothing
    values = suggest(trial, space)    # {"train.lr": 0.0031, "model.hidden": [256, 256]}
    trial_cfg = apply(cfg, values)    # a plain Config (no tune section) with those values
"""

from __future__ import annotations

import json
import math
from typing import Any

from forgeml.config import Config, ParamSpace, load_config
from forgeml.errors import ConfigError

# metrics a smaller value of is better; anything else is maximised under direction: auto
SMALLER_IS_BETTER = ("loss", "mse", "mae", "rmse", "perplexity", "error")
NOT_SEARCHABLE = ("tune", "name", "runs_dir")


def base_dict(cfg: Config) -> dict[str, Any]:
    """The resolved config as a dict without its tune section: what every trial starts from."""
    d = cfg.to_dict()
    d.pop("tune", None)
    return d


def direction(objective: str, setting: str) -> str:
    """minimize or maximize: the setting, or (auto) by the metric's last name."""
    if setting != "auto":
        return setting
    last = objective.rsplit(".", 1)[-1]
    return "minimize" if any(last == m or last.endswith("_" + m) for m in SMALLER_IS_BETTER) else "maximize"


def _probes(spec: ParamSpace) -> list[tuple[str, Any]]:
    """The values a range or choice can give that the config must accept: both ends, a value inside (a float
    range on an integer field fails there), every choice."""
    kind = spec.kind
    if kind == "choice":
        return [(f"choice {i + 1}", v) for i, v in enumerate(spec.choice)]
    low, high = spec.int_ if kind == "int" else getattr(spec, kind)
    out = [("low end", low), ("high end", high)]
    if kind == "uniform" and spec.step is None:
        out.append(("a value inside", low + (high - low) * 0.381966))
    elif kind == "log_uniform":
        out.append(("a value inside", math.exp(math.log(low) + (math.log(high) - math.log(low)) * 0.381966)))
    return out


def check_space(cfg: Config) -> None:
    """Every searched field exists and accepts every value the space can give (both ends of a range, each
    choice): checked through load_config, so the errors are the config's own. Nothing is written."""
    if cfg.tune is None or not cfg.tune.space:
        raise ConfigError("tune.space: nothing to search; add a tune section, e.g.\n"
                          "  tune: {space: {train.lr: {log_uniform: [1e-4, 1e-2]}, model.dropout: {uniform: [0, 0.5]}}}")
    base = base_dict(cfg)
    for key, spec in cfg.tune.space.items():
        if key.split(".")[0] in NOT_SEARCHABLE:
            raise ConfigError(f"tune.space.{key}: {key.split('.')[0]} cannot be searched; search data, model, train or eval fields")
        for what, value in _probes(spec):
            try:
                load_config(base, {key: value})
            except ConfigError as exc:
                lines = [line.strip() for line in str(exc).splitlines()[1:]] or [str(exc)]
                if any(line.startswith(f"{key}: unknown key") or "unknown key" in line for line in lines):
                    raise ConfigError(f"tune.space.{key}: not a config field ({'; '.join(lines)})") from None
                raise ConfigError(f"tune.space.{key}: its {what}, {value!r}, is refused by the config: {'; '.join(lines)}") from None


def _encode(value: Any) -> Any:
    """Optuna's categorical values are None, bool, int, float or str: lists and mappings travel as JSON text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def suggest(trial: Any, space: dict[str, ParamSpace]) -> dict[str, Any]:
    """This trial's value of every searched field (Optuna's trial.suggest_*), keyed by the dotted field name."""
    out = {}
    for key, spec in space.items():
        kind = spec.kind
        if kind == "uniform":
            out[key] = trial.suggest_float(key, *spec.uniform, step=spec.step)
        elif kind == "log_uniform":
            out[key] = trial.suggest_float(key, *spec.log_uniform, log=True)
        elif kind == "int":
            out[key] = trial.suggest_int(key, *spec.int_, step=int(spec.step or 1), log=spec.log)
        else:
            out[key] = trial.suggest_categorical(key, [_encode(c) for c in spec.choice])
    return decode(out, space)


def decode(params: dict[str, Any], space: dict[str, ParamSpace]) -> dict[str, Any]:
    """A trial's stored params as config values: a choice stored as JSON text back to its list or mapping."""
    out = dict(params)
    for key, spec in space.items():
        if spec.kind == "choice" and key in out:
            out[key] = {_encode(c): c for c in spec.choice}.get(out[key], out[key])
    return out


def apply(cfg: Config, values: dict[str, Any], **settings: Any) -> Config:
    """The config with the searched values (and any other dotted `settings`) applied and no tune section."""
    return load_config(base_dict(cfg), {**values, **settings})
