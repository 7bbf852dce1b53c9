"""forgeml: a deep-learning model's whole life from one YAML file or a few lines of Python.

    import forgeml
    run = forgeml.train("examples/digits-cnn.yaml", overrides={"train.epochs": 5})
    model = forgeml.load(run)
    model.predict([{"image": array}])

Heavy modules are imported on first use so that `import forgeml` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forgeml.errors import ForgeError

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "load", "tune", "Trainer", "ForgeError", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from forgeml.api import evaluate, load, train, tune
    from forgeml.training.trainer import Trainer


def __getattr__(name: str) -> Any:
    if name in ("train", "evaluate", "load", "tune"):
        from forgeml import api

        return getattr(api, name)
    if name == "Trainer":
        from forgeml.training.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'forgeml' has no attribute {name!r}")
