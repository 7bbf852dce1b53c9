"""Batches are a tensor or a dict of named tensors (docs/contract.md); these functions treat both alike.

Every tensor in a batch has the rows on its first axis, so the batch size is that of any one of them."""

from __future__ import annotations

import torch

Tensors = torch.Tensor | dict[str, torch.Tensor]


def n_rows(t: Tensors) -> int:
    """Rows in a batch: the first axis of its first tensor (a shape: no device sync)."""
    return len(t if isinstance(t, torch.Tensor) else next(iter(t.values())))


def numel(t: Tensors) -> int:
    """Elements in the targets: tokens for a language model, rows for one value per row. In a dict, a target of
    integer ids per position (B, T) (next_token) counts its tokens; every other target one per row."""
    if isinstance(t, torch.Tensor):
        return t.numel()
    positions = [v for v in t.values() if v.dim() == 2 and not v.is_floating_point()]
    return positions[0].numel() if positions else n_rows(t)


def index_select(t: Tensors, idx: torch.Tensor) -> Tensors:
    if isinstance(t, torch.Tensor):
        return t.index_select(0, idx)
    return {k: v.index_select(0, idx) for k, v in t.items()}


def rows(t: Tensors, start: int, stop: int) -> Tensors:
    """Rows start:stop as views (no copy)."""
    if isinstance(t, torch.Tensor):
        return t[start:stop]
    return {k: v[start:stop] for k, v in t.items()}


def to_device(t: Tensors, device, non_blocking: bool = False) -> Tensors:
    if isinstance(t, torch.Tensor):
        return t.to(device, non_blocking=non_blocking)
    return {k: v.to(device, non_blocking=non_blocking) for k, v in t.items()}


def is_tensors(t) -> bool:
    return isinstance(t, torch.Tensor) or (isinstance(t, dict) and bool(t) and all(isinstance(v, torch.Tensor) for v in t.values()))
