"""Training into a run folder: trainer.fit with the run's status kept in meta.json, then the weights saved.

Shared by the table/image pipeline and the language-model pipeline."""

from __future__ import annotations

from forgeml.bundle import Bundle
from forgeml.errors import Interrupted, TrainingDiverged
from forgeml.training.trainer import FitResult, Trainer


def fit_into_bundle(trainer: Trainer, bundle: Bundle, train, val, resume: bool) -> tuple[FitResult, int]:
    """Run trainer.fit with the run's status kept in meta.json, then save the weights.

    Returns the FitResult and the step the saved weights come from (the best one, when restored);
    meta.json's `weights` says which step and why."""
    try:
        result = trainer.fit(train, val, resume=resume)
    except KeyboardInterrupt:
        bundle.update_meta(status="interrupted", step=trainer.step)
        raise Interrupted(bundle.path) from None
    except TrainingDiverged as exc:  # checkpoints/last.pt still holds the last finite state
        bundle.update_meta(status="diverged", step=trainer.step, error=str(exc))
        raise
    except BaseException as exc:
        bundle.update_meta(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    bundle.save_weights(trainer.full_state_dict())
    bundle.update_meta(weights=result.weights)
    return result, result.weights["step"]
