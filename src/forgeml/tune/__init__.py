"""Hyperparameter search with Optuna over a config's `tune` section (forgeml tune CONFIG).

    space.py   the search space: checked through load_config before anything starts, sampled per trial
    study.py   storage, study creation and resume, the trial objective, stale trials, worker processes
    report.py  the trials table, parameter importances, plots, tune_report.html and best.yaml

This package sits below pipeline.py: it never imports it. pipeline.tune hands it pipeline.train as
the function that trains one trial's config into a bundle. Optuna is imported inside functions only.
"""

import sys as _sys
import types as _types


class _Callable(_types.ModuleType):
    """`forgeml.tune(...)` is the Python face (forgeml.api.tune) even once this package has been imported, which
    makes `forgeml.tune` name the package: calling the package calls the function."""

    def __call__(self, *args, **kwargs):
        from forgeml.api import tune

        return tune(*args, **kwargs)


_sys.modules[__name__].__class__ = _Callable
