"""Optimizers by name. Weight decay goes to matrices and kernels only, never to biases or norms."""

from __future__ import annotations

import torch
from torch import nn

from forgeml.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and kernels; not biases, norms, or what the model names (a tied embedding)."""
    exempt = model.no_decay_parameters() if hasattr(model, "no_decay_parameters") else set()
    decay, no_decay = [], []
    for p in model.parameters():  # a tied weight appears once: parameters() deduplicates
        if p.requires_grad:
            (decay if p.dim() >= 2 and id(p) not in exempt else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def adam_kernel(model: nn.Module) -> dict[str, bool]:
    """Adam/AdamW's fused kernel (one pass over each parameter's memory for the whole update) where torch has it for
    these parameters, else foreach (one op per step of the update, over all parameters at once). Fused is the same
    update to an ulp and 2.4x faster than foreach on this 2-core CPU on the GPT recipe (8% of its step before)."""
    params = list(model.parameters())
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return {"fused": True} if fused else {"foreach": True}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    # foreach (multi-tensor) kernels: one launch for all parameters instead of one per tensor.
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, foreach=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, **adam_kernel(model))
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, **adam_kernel(model))
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, foreach=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
