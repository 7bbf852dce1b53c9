"""The one model shape for every run: encoders -> combiner -> heads (see docs/contract.md).

    inputs: dict[str, Tensor] -> an encoder per input feature (or group) -> (B, D_i) each
                              -> the combiner joins them                 -> (B, D)
                              -> a head per output                       -> dict[str, Tensor]

Nothing here knows a feature kind or a loss: encoders pick their own tensors from the input dict,
heads own their losses. The training loss is the weighted sum of the heads' losses.
"""

from __future__ import annotations

import torch
from torch import nn


def module_key(name: str) -> str:
    """A column name as a submodule name: nn.Module names may not contain '.' (nor be empty)."""
    return name.replace(".", "_") or "_"


# Names an nn.ModuleDict already has as attributes ('type', 'values', 'training', ...): a submodule may not take them.
_RESERVED = frozenset(dir(nn.ModuleDict()))


def module_keys(names: list[str]) -> dict[str, str]:
    """A distinct submodule name per column name: `module_key`, unless that key is taken ('a.b' beside 'a_b').

    A name that is already a valid key keeps it; one that is an attribute of nn.ModuleDict ('type', 'values')
    gets a trailing '_'; a name that had to change and lands on a taken key gets `_2`, `_3`, ... in list order.
    The list is the config's order, so a bundle's weight names come out the same at every load; without a
    collision every key is plain `module_key`.

    >>> module_keys(["a_b", "a.b", "c.d", "type"])
    {'a_b': 'a_b', 'a.b': 'a_b_2', 'c.d': 'c_d', 'type': 'type_'}
    """
    keys = {n: n for n in names if module_key(n) == n and n not in _RESERVED}  # valid as they are: never renamed
    taken = set(keys.values())
    for name in names:
        if name in keys:
            continue
        base = module_key(name) + ("_" if module_key(name) in _RESERVED else "")
        key, i = base, 1
        while key in taken or key in _RESERVED:
            i += 1
            key = f"{base}_{i}"
        keys[name] = key
        taken.add(key)
    return {n: keys[n] for n in names}


class Network(nn.Module):
    def __init__(self, encoders: dict[str, nn.Module], combiner: nn.Module, heads: dict[str, nn.Module],
                 weights: dict[str, float] | None = None):
        super().__init__()
        # created in this order (encoders, combiner, heads) so a seeded build gives the weights the
        # single-model classes of forgeml <= 0.1 gave: same layers, same creation order
        self.encoders = nn.ModuleDict({key: encoders[k] for k, key in module_keys(list(encoders)).items()})
        self.combiner = combiner
        self.head_keys = module_keys(list(heads))  # output name -> submodule name ('a.b' -> 'a_b')
        self.heads = nn.ModuleDict({key: heads[k] for k, key in self.head_keys.items()})
        self.output_names = list(heads)  # the real names (keys of the output dict), in config order
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in heads}

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        vectors = [encoder(inputs) for encoder in self.encoders.values()]  # each (B, D_i)
        h = self.combiner(vectors)  # (B, D)
        return {name: self.heads[self.head_keys[name]](h) for name in self.output_names}

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training objective: sum over outputs of weight * that head's loss."""
        total = None
        for name in self.output_names:
            term = self.weights[name] * self.heads[self.head_keys[name]].loss(outputs[name], targets[name])
            total = term if total is None else total + term
        return total

    def eval_loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The reported loss: like `loss`, but each head's plain loss (no label smoothing or class weights)."""
        total = None
        for name in self.output_names:
            head = self.heads[self.head_keys[name]]
            term = self.weights[name] * getattr(head, "eval_loss", head.loss)(outputs[name], targets[name])
            total = term if total is None else total + term
        return total

    def head(self, name: str) -> nn.Module:
        return self.heads[self.head_keys[name]]

    # ------------------------------------------------------------------ what the optimizer and the Trainer ask
    def no_decay_parameters(self) -> set[int]:
        """ids of parameters AdamW must not decay, as each encoder says (a GPT's tied embedding)."""
        return {i for e in self.encoders.values() if hasattr(e, "no_decay_parameters") for i in e.no_decay_parameters()}

    def flops_per_token(self) -> float | None:
        """Training FLOPs per token of a token model (its encoder's, plus 6 per weight outside it): for MFU."""
        counted = [e for e in self.encoders.values() if hasattr(e, "flops_per_token")]
        if len(counted) != 1:
            return None
        inside = {id(p) for p in counted[0].parameters()}
        return counted[0].flops_per_token() + 6 * sum(p.numel() for p in self.parameters() if id(p) not in inside)
