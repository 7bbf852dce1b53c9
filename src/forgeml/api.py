"""The Python face: a few stable names.

    import forgeml
    run = forgeml.train("examples/digits-cnn.yaml", overrides={"train.epochs": 5})
    model = forgeml.load(run)
    model.predict([{"image": array}])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeml.predictor import Predictor


def train(config: str | Path | dict[str, Any], overrides: list[str] | dict[str, Any] | None = None, *, name: str | None = None,
          overwrite: bool = False, callbacks=()) -> Path:
    """Train from a YAML file (or a dict with the same sections) and return the run folder.

    Args:
        config: path to a YAML config, or a dict with sections data/model/train/eval.
        overrides: ``{"train.epochs": 5}`` or ``["train.epochs=5"]``. Default: none.
        name: run folder name under runs_dir. Default: the config's name (its file name).
        overwrite: replace an existing run of that name instead of writing name-2. Default: False.
        callbacks: extra forgeml.training.callbacks.Callback objects. Default: none.

    Example:
        >>> run = forgeml.train("examples/digits-cnn.yaml", overrides={"train.epochs": 2})  # doctest: +SKIP
    """
    from forgeml import pipeline
    from forgeml.config import load_config

    cfg = load_config(config, overrides)
    return pipeline.train(cfg, name=name, overwrite=overwrite, callbacks=callbacks)


def evaluate(run: str | Path, data: str | None = None, trust_code: bool = False) -> dict[str, Any]:
    """Metrics of a run on its held-out splits, or on a labelled file `data`; also saved to metrics.json."""
    from forgeml import pipeline

    return pipeline.evaluate(run, data, trust_code=trust_code)


def load(run: str | Path, device: str = "cpu", trust_code: bool = False, backend: str | None = None) -> Predictor:
    """Rebuild a trained model and its preprocessing from a run folder: one type for every bundle, with
    .predict(rows); a language model (GPT) also has .generate(prompt, ...), .stream(...), .evaluate_text(...).

    Example:
        >>> model = forgeml.load("runs/digits-cnn")  # doctest: +SKIP
        >>> model.predict([{"image": images[0]}])[0]["label"]  # doctest: +SKIP
        '0'
        >>> forgeml.load("runs/shakespeare-gpt").generate("ROMEO:", 100, seed=1)  # doctest: +SKIP

    A bundle whose model is `custom` names Python code; it loads only with trust_code=True.
    backend="onnx" computes the outputs with ONNX Runtime from RUN/model.onnx (written by `forgeml export RUN
    --format onnx`; needs pip install 'forgeml[onnx]'); the preprocessing and decoding are the same. A bundle
    that holds only model.onnx (an int8 variant from `forgeml compress`) runs in ONNX Runtime by default.
    """
    return Predictor(run, device, trust_code, backend)


def tune(config: str | Path | dict[str, Any], overrides: list[str] | dict[str, Any] | None = None, *, trials: int | None = None,
         timeout: float | None = None, storage: str | None = None, study: str | None = None, jobs: int | None = None):
    """Search the config's `tune.space` with Optuna (needs pip install 'forgeml[tune]'); returns a TuneResult:
    .folder (runs/<name>-tune), .best_params, .best_value, .best_config (best.yaml), .report, .trials.

    Arguments given here replace the tune section's own; the same storage and study name resume a study,
    `trials` counting the finished trials already in it. A line per finished trial goes to stderr.

    Example:
        >>> result = forgeml.tune("examples/adult-mlp.yaml", trials=20)  # doctest: +SKIP
        >>> result.best_params, result.best_value  # doctest: +SKIP
        ({'train.lr': 0.0031, 'model.dropout': 0.12}, 0.8571)
        >>> run = forgeml.train(result.best_config)  # doctest: +SKIP
    """
    from forgeml import pipeline

    return pipeline.tune(config, overrides=overrides, trials=trials, timeout=timeout, storage=storage, study=study, jobs=jobs)
