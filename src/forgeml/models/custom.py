"""`custom`: any nn.Module named by an import path, 'package.module:Name'."""

from __future__ import annotations

import importlib
import inspect

from torch import nn

from forgeml.config import CustomConfig
from forgeml.errors import ConfigError


def build_custom(cfg: CustomConfig, in_shape: list[int], n_outputs: int) -> nn.Module:
    module_name, _, attr = cfg.target.partition(":")
    if not attr:
        raise ConfigError(f"model.target: {cfg.target!r} must look like 'package.module:ClassName'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model.target: cannot import {cfg.target!r} ({exc}); is its package on PYTHONPATH?") from None
    kwargs = dict(cfg.kwargs)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    for name, value in (("in_features", in_shape[0] if len(in_shape) == 1 else None), ("in_shape", list(in_shape)),
                        ("n_outputs", n_outputs)):
        if name in params and name not in kwargs and value is not None:
            kwargs[name] = value
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs: {cfg.target} rejected {sorted(kwargs)}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model.target: {cfg.target} returned {type(model).__name__}, not an nn.Module")
    return model
