"""Which parameters train, and at which learning rate: train.freeze, train.unfreeze, train.lr_groups.

Patterns are fnmatch patterns over parameter names as `model.named_parameters()` gives them
(`encoders.text.model.embeddings.word_embeddings.weight`). A pattern that matches nothing is a mistake
(a typo freezes nothing silently), so it is a ConfigError naming the pattern and some real names.

- freeze: matching parameters get requires_grad False before the optimizer is built, so they are not in
  it at all and stay bit-identical.
- unfreeze (ULMFiT's gradual unfreezing): every parameter that is not frozen is in the optimizer from the
  start; at the start of epoch e the encoders' top `e // every_epochs` layers (an encoder's `layer_groups()`,
  or the whole encoder as one layer) train, with the combiner and heads always. A parameter without a
  gradient is skipped by every optimizer (no update, no weight decay, no moment), so the frozen layers do not
  move. The state follows from the epoch alone, so a resumed run is where an uninterrupted one would be.
- lr_groups: pattern -> peak lr, first match wins, the rest at train.lr; the schedule (a LambdaLR)
  multiplies each group's own peak, warmup included.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from torch import nn

from forgeml.errors import ConfigError
from forgeml.training.callbacks import Callback


def _unmatched(field: str, pattern: str, names: list[str]) -> ConfigError:
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return ConfigError(f"{field}: {pattern!r} matches no parameter of this model; parameter names look like {shown} "
                       f"({len(names)} in all; '*' matches any run of characters, dots included)")


def matching(model: nn.Module, patterns: list[str], field: str) -> dict[str, list[str]]:
    """Pattern -> the parameter names it matches (each at least one, or a ConfigError)."""
    names = [n for n, _ in model.named_parameters()]
    found = {p: [n for n in names if fnmatchcase(n, p)] for p in patterns}
    for pattern, hits in found.items():
        if not hits:
            raise _unmatched(field, pattern, names)
    return found


def apply_freeze(model: nn.Module, patterns: list[str]) -> int:
    """requires_grad False on every parameter a pattern matches; returns how many tensors were frozen."""
    if not patterns:
        return 0
    frozen = {n for hits in matching(model, patterns, "train.freeze").values() for n in hits}
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return len(frozen)


def lr_of(model: nn.Module, lr_groups: dict[str, float]) -> dict[str, float]:
    """Parameter name -> its peak lr, for the parameters a pattern of train.lr_groups matches (first match wins)."""
    matching(model, list(lr_groups), "train.lr_groups")
    out = {}
    for name, _ in model.named_parameters():
        for pattern, lr in lr_groups.items():
            if fnmatchcase(name, pattern):
                out[name] = lr
                break
    return out


def unfreeze_stages(model: nn.Module) -> list[list[str]]:
    """Parameter names per unfreezing stage: stage k holds the k-th layer from the top of every encoder."""
    encoders = getattr(model, "encoders", None)
    if not isinstance(encoders, nn.ModuleDict):
        raise ConfigError("train.unfreeze: gradual unfreezing needs a forgeml network (encoders -> combiner -> heads)")
    per_encoder = []
    for key, encoder in encoders.items():
        groups = encoder.layer_groups() if hasattr(encoder, "layer_groups") else [[n for n, _ in encoder.named_parameters()]]
        per_encoder.append([[f"encoders.{key}.{n}" for n in g] for g in reversed(groups)])  # top first
    depth = max((len(g) for g in per_encoder), default=0)
    return [[n for groups in per_encoder if k < len(groups) for n in groups[k]] for k in range(depth)]


class GradualUnfreeze(Callback):
    """At every fit start (a resume included) and epoch end: requires_grad as the epoch count says."""

    def __init__(self, model: nn.Module, every_epochs: int):
        self.every = every_epochs
        self.stages = unfreeze_stages(model)
        self.params = dict(model.named_parameters())
        self.trainable = {n for n, p in self.params.items() if p.requires_grad}  # train.freeze'd ones never train
        self.set(model, 0)

    def set(self, model: nn.Module, epoch: int) -> int:
        """Trainable parameters (numel) at the start of `epoch`."""
        opened = min(epoch // self.every, len(self.stages))
        closed = {n for stage in self.stages[opened:] for n in stage}
        for name, p in self.params.items():
            p.requires_grad_(name in self.trainable and name not in closed)
        return sum(p.numel() for p in self.params.values() if p.requires_grad)

    def on_fit_start(self, trainer) -> None:
        self.set(trainer.model, trainer.epoch)

    def on_epoch_end(self, trainer) -> None:
        self.set(trainer.model, trainer.epoch)
