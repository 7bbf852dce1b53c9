"""Optimizers by name. Weight decay goes to matrices and kernels only, never to biases or norms."""

from __future__ import annotations

import torch
from torch import nn

from forgeml.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, lr_groups: dict[str, float] | None = None) -> list[dict]:
    """Decay matrices and kernels; not biases, norms, or what the model names (a tied embedding).

    `lr_groups` (train.lr_groups: name pattern -> peak lr) splits them further: each group then carries its own
    "lr"; the groups without one take the optimizer's lr (train.lr) and come first."""
    exempt = model.no_decay_parameters() if hasattr(model, "no_decay_parameters") else set()
    lrs: dict[str, float] = {}
    if lr_groups:
        from forgeml.training.freeze import lr_of

        lrs = lr_of(model, lr_groups)
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():  # a tied weight appears once: named_parameters() deduplicates
        if p.requires_grad:
            decays = p.dim() >= 2 and id(p) not in exempt
            groups.setdefault((name in lrs, lrs.get(name), decays), []).append(p)
    out = []
    for (own, lr, decays), params in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0.0, not kv[0][2])):
        group = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if own:
            group["lr"] = lr
        out.append(group)
    return out


def adam_kernel(model: nn.Module) -> dict[str, bool]:
    """Adam/AdamW's fused kernel (one pass over each parameter's memory for the whole update) where torch has it for
    these parameters, else foreach (one op per step of the update, over all parameters at once). Fused is the same
    update to an ulp and 2.4x faster than foreach on this 2-core CPU on the GPT recipe (8% of its step before)."""
    params = list(model.parameters())
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return {"fused": True} if fused else {"foreach": True}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.lr_groups)
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
