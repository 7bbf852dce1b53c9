"""Knowledge distillation: a smaller student learns from a trained teacher's outputs as well as from the labels.

Per output (the tensor contract: one tensor per output name), with s the student's output, t the teacher's,
T the temperature and alpha the share of the teacher:

    class       alpha * T^2 * KL(softmax(t/T) || softmax(s/T))  + (1 - alpha) * the head's own loss on the labels
    multilabel  alpha * T^2 * BCE(sigmoid(s/T), sigmoid(t/T))    + (1 - alpha) * the head's own loss
    regression  alpha * MSE(s, t)                                 + (1 - alpha) * the head's own loss

summed with each output's weight, as Network.loss sums the heads' losses. T^2 keeps the soft term's gradients
about the same size whatever T is (Hinton et al., 2015), so alpha means the same at every temperature.

The teacher runs on the very batch the student sees (augmented images included), in eval mode, without
gradients. It is held beside the student, never inside it, so the student's state dict (the bundle's
model.safetensors, its checkpoints) holds the student's weights alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from forgeml.errors import BundleError, ConfigError
from forgeml.models import count_parameters
from forgeml.training.trainer import Trainer


# ------------------------------------------------------------------------------- the soft term per kind
def soft_class_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over rows; logits (B, K)."""
    T = temperature
    s, t = F.log_softmax(student.float() / T, dim=-1), F.log_softmax(teacher.float() / T, dim=-1)
    return F.kl_div(s, t, reduction="batchmean", log_target=True) * T * T


def soft_multilabel_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * BCE of the student's softened probabilities against the teacher's, averaged over (row, label); logits (B, L).

    The student's logits are divided by T as well as the teacher's (as for a class output): trained against
    sigmoid(t/T) alone, the student would learn t/T, logits T times too small for the thresholds features.json
    decodes with. At T = 1 both are BCE(s, sigmoid(t))."""
    T = temperature
    return F.binary_cross_entropy_with_logits(student.float() / T, torch.sigmoid(teacher.float() / T)) * T * T


def soft_regression_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """MSE between the standardised values (B, k); a regression has nothing to soften, so T plays no part."""
    return F.mse_loss(student.float(), teacher.float())


SOFT_LOSSES = {"classification": soft_class_loss, "multilabel": soft_multilabel_loss, "regression": soft_regression_loss}


def check_kinds(kinds: dict[str, str], where: str) -> None:
    """Every output must have a soft term; a next-token output (a GPT) has none yet."""
    for name, kind in kinds.items():
        if kind not in SOFT_LOSSES:
            raise ConfigError(f"{where}: output {name!r} is a {kind} output, which distillation does not support yet "
                              f"(it supports {', '.join(SOFT_LOSSES)} outputs); compress it with --quantize or --prune instead")


def check_settings(temperature: float, alpha: float) -> None:
    if not temperature > 0:
        raise ConfigError(f"temperature: {temperature!r} must be above 0 (1 = the teacher's own probabilities; 2-8 is usual)")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha: {alpha!r} must be between 0 (labels only) and 1 (the teacher only)")


def distill_loss(student_out: dict[str, torch.Tensor], teacher_out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 network: nn.Module, kinds: dict[str, str], temperature: float, alpha: float) -> torch.Tensor:
    """sum over outputs of weight * (alpha * soft term + (1 - alpha) * the head's own loss on the labels).

    `network` is the student Network: its heads own the label losses (label smoothing, class weights included)
    and its `weights` the outputs' weights."""
    total = None
    for name, kind in kinds.items():
        s = student_out[name]
        soft = SOFT_LOSSES[kind](s, teacher_out[name], temperature) if alpha > 0 else 0.0
        hard = network.head(name).loss(s, targets[name]) if alpha < 1 else 0.0  # alpha = 1: the labels play no part
        term = network.weights[name] * (alpha * soft + (1 - alpha) * hard)
        total = term if total is None else total + term
    return total


# ------------------------------------------------------------------------------------------ the teacher
@dataclass
class Teacher:
    """A trained network to distil from, with the settings of the distillation and where it came from."""

    model: nn.Module  # the teacher Network, loaded from its bundle
    source: Path  # the teacher's bundle
    features: dict[str, Any]  # the teacher's features.json: the student's must be the same
    temperature: float = 4.0
    alpha: float = 0.5
    config: Any = None  # the teacher's Config, which the student's is built from

    def __post_init__(self):
        check_settings(self.temperature, self.alpha)
        self.kinds = {o["name"]: o["kind"] for o in self.features["outputs"]}
        check_kinds(self.kinds, str(self.source))
        self.model.eval().requires_grad_(False)  # frozen: dropout off, batch-norm statistics as trained, no gradients

    def check(self, features: Any, student: nn.Module, sample: dict[str, torch.Tensor]) -> None:
        """Before the run folder exists: the student trains on the teacher's features, and on a few rows gives
        the same outputs (names, shapes) as the teacher."""
        from forgeml.data.featureset import fitted_state

        if fitted_state(features.to_json()) != fitted_state(self.features):
            raise BundleError(f"{self.source}: the teacher's training data changed since it was trained (its fitted features "
                              "differ); distillation needs the teacher's own data")
        self.check_outputs(student, sample)

    def check_outputs(self, student: nn.Module, sample: dict[str, torch.Tensor]) -> None:
        """The student's output dict on a few rows has the teacher's names and shapes. A student built from a config
        on the teacher's features always has; this guards the contract for any other network."""
        from forgeml.data.tensor_dict import to_device

        was, sample = student.training, to_device(sample, next(student.parameters()).device)
        with torch.no_grad():
            s, t = student.eval()(sample), self.model(sample)
        student.train(was)
        want, got = {k: tuple(v.shape[1:]) for k, v in t.items()}, {k: tuple(v.shape[1:]) for k, v in s.items()}
        if want != got:
            raise ConfigError(f"student: its outputs {_shapes(got)} do not match the teacher's {_shapes(want)} "
                              f"({self.source}); the student must predict the teacher's outputs")

    def variant(self, student: nn.Module) -> dict[str, Any]:
        """What meta.json records about where the student came from."""
        return {"kind": "distilled", "source": str(self.source), "temperature": self.temperature, "alpha": self.alpha,
                "params_teacher": count_parameters(self.model), "params_student": count_parameters(student)}


def _shapes(shapes: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {list(v)}" for k, v in shapes.items()) or "(none)"


class DistillTrainer(Trainer):
    """The Trainer with the distillation objective: the teacher sees each micro-batch the student sees."""

    def __init__(self, model: nn.Module, teacher: Teacher, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.teacher = teacher
        teacher.model.to(self.device)  # an attribute, not a submodule: never in the student's state dict

    def compute_loss(self, x, y) -> torch.Tensor:
        with torch.no_grad():  # no graph through the teacher: its forward costs inference only
            teacher_out = self.teacher.model(x)
        t = self.teacher
        return distill_loss(self.step_model(x), teacher_out, y, self.model, t.kinds, t.temperature, t.alpha)
