"""Hyperparameter search with Optuna over a config's `tune` section (forgeml tune CONFIG).

    space.py   the search space: checked through load_config before anything starts, sampled per trial
    storage.py where the study lives (any SQLAlchemy URL), opened and checked before anything is written
    study.py   the Optuna study: created or resumed, what counts toward tune.trials, sampler and pruner
    trial.py   one trial: values drawn, config trained into a bundle, objective reported, pruned or failed
    workers.py the loop of trials, dead trials retried, tune.jobs worker processes
    search.py  run(): a whole search from start to the report
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
