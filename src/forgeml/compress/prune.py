"""Structured pruning that really shrinks the network: whole channels, neurons and feed-forward units go.

    trained Network + its model config  ->  for every width the config names: score its units, keep the best
                                         ->  the model config with the smaller widths + the kept weights

The result is an ordinary model: `build_network` on the new config makes layers of exactly the kept
sizes, and the sliced state dict loads into it strictly. No masks, no zeros left in place: fewer
multiply-adds, so it is faster on any backend.

The slicing is written here rather than taken from the torch-pruning library: every width that can be
pruned is a config field (`blocks[i].channels`, `hidden[j]`, `channels[i]`, `ff_mult`), and the bundle
must be rebuilt from its config, so what matters is mapping each field onto the layers it sizes. That map
is short to write for forgeml's own encoders and combiner, and a dependency graph traced from the
module would still have to be mapped back onto those fields.

What a width touches, for one unit u:
    producer   the layer that makes it (Conv/Linear): row u of its weight and bias
    norm       the BatchNorm/LayerNorm after it: entry u of weight, bias, running mean and variance
    consumers  the layers that read it: its columns of their weights (after a flatten, a unit is the
               h*w columns of its feature map; after the concatenation of the encoders, columns shifted
               by the widths of the encoders before it; every head reads the combiner's last width)

A unit's score is the L1 norm of its outgoing weights (the consumers' columns) times the size of what it
sends through them: the L1 norm of its producer row, or |gamma| of the norm after it (batch norm rescales
every channel to gamma, whatever the filter's norm). The lowest-scoring units go. With batch norm in eval
mode, or no norm, the pruned network computes exactly what the original computes with the removed units'
outputs set to zero; a LayerNorm normalises over its units, so there the result is close, not exact.

Not pruned: the inputs and the heads' outputs (the data and the labels fix them), token vectors
(d_model: every residual connection shares them), attention heads (the attention's head width is d_model
/ heads, so removing a head would need a new config field), recurrent state (rnn, gru, lstm: a GRU's
gates share each unit's rows three or four times over and the config has no per-layer width), a GPT
and a custom module. A composite model prunes the encoders it can and leaves the others whole.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from forgeml.errors import ConfigError

NOT_PRUNABLE = {"rnn": "a recurrent text encoder", "gru": "a recurrent series encoder", "lstm": "a recurrent series encoder",
                "gpt": "a GPT (every width is the shared token vector)", "custom": "a custom module (its layers are not forgeml's)",
                "pretrained": "a pretrained Hugging Face model (its layers are not forgeml's)"}
PRUNABLE = ("cnn (blocks[i].channels, hidden), mlp (hidden), conv1d (channels), transformer (the feed-forward width, ff_mult) "
            "and composite models of them with a concat combiner (combiner.hidden)")


@dataclass
class Width:
    """One prunable width: the config field that names it, and the layers it sizes (parameter-name prefixes)."""

    path: list[Any]  # where the number sits in the model config dict: ["blocks", 1, "channels"], ["ff_mult"]
    size: int  # units now
    producer: str  # "encoders.image.features.1.0": row u of .weight (and .bias) makes unit u
    norm: str | None = None  # "encoders.image.features.1.1": the BatchNorm/LayerNorm after it
    consumers: list[tuple[str, int, int]] = field(default_factory=list)  # (weight name, first column, columns per unit)
    quantum: int = 1  # units come and go in groups of this many (ff_mult counts in steps of d_model)

    @property
    def name(self) -> str:
        return "model." + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path).lstrip(".")


@dataclass
class Pruned:
    """What `prune_network` returns: the model config with the smaller widths and the weights that fit it."""

    model: Any  # the model config section (the same pydantic class as the one given), new widths filled in
    state: dict[str, torch.Tensor]  # the kept weights: build_network(model, ...) loads them strictly
    widths_before: dict[str, int]  # config field -> width, for every width that was pruned
    widths_after: dict[str, int]
    kept: dict[str, list[int]]  # producer prefix -> the unit indices kept, ascending (for tests and inspection)


def prune_network(network: nn.Module, model_cfg: Any, ratio: float) -> Pruned:
    """Remove the `ratio` least important units of every width `model_cfg` names; see the module docstring.

    Args:
        network: a trained forgeml Network built from model_cfg (left untouched).
        model_cfg: its model config section (MLPConfig, CNNConfig, ..., CompositeConfig).
        ratio: the fraction of units to remove from each width, 0 < ratio < 1.

    >>> from forgeml.config import MLPConfig
    >>> from forgeml.models.combiners.concat import ConcatCombiner
    >>> from forgeml.models.network import Network
    >>> class Rows(nn.Module):
    ...     out_dim = 4
    ...     def forward(self, inputs): return inputs["x"]
    >>> net = Network({"tabular": Rows()}, ConcatCombiner([4], [8, 6]), {"y": nn.Module()})
    >>> net.heads["y"].proj = nn.Linear(6, 3)
    >>> p = prune_network(net, MLPConfig(hidden=[8, 6]), 0.5)
    >>> p.model.hidden, p.widths_after
    ([4, 3], {'model.hidden[0]': 4, 'model.hidden[1]': 3})
    """
    check_ratio(ratio)
    if model_cfg.name in NOT_PRUNABLE:
        raise ConfigError(f"model.name: {model_cfg.name}: pruning does not apply to {NOT_PRUNABLE[model_cfg.name]}; "
                          f"structured pruning reaches {PRUNABLE}")
    new_cfg = model_cfg.model_dump(mode="json")
    widths = _widths(network, model_cfg, new_cfg)
    if not widths:
        raise ConfigError(f"model: nothing to prune in this {model_cfg.name} model (no hidden layers, channels or feed-forward "
                          f"units); structured pruning reaches {PRUNABLE}")
    state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    keep: dict[str, dict[int, torch.Tensor]] = {}  # parameter name -> dim -> bool mask of what stays
    kept, before, after = {}, {}, {}
    for w in widths:
        n_keep = _n_keep(w, ratio)
        order = torch.argsort(_scores(w, state), descending=True, stable=True)
        index = order[:n_keep].sort().values  # the best units, in their original order
        mask = torch.zeros(w.size, dtype=torch.bool)
        mask[index] = True
        for suffix in ("weight", "bias"):
            _restrict(keep, state, f"{w.producer}.{suffix}", 0, mask)
        if w.norm:
            for suffix in ("weight", "bias", "running_mean", "running_var"):
                _restrict(keep, state, f"{w.norm}.{suffix}", 0, mask)
        for name, start, per_unit in w.consumers:
            columns = torch.ones(state[name].shape[1], dtype=torch.bool)
            columns[start:start + w.size * per_unit] = mask.repeat_interleave(per_unit)  # unit u = columns u*per_unit..
            _restrict(keep, state, name, 1, columns)
        _set(new_cfg, w.path, n_keep // w.quantum)  # the config's own unit: ff_mult counts in steps of d_model
        kept[w.producer], before[w.name], after[w.name] = index.tolist(), w.size // w.quantum, n_keep // w.quantum
    if before == after:
        raise ConfigError(f"ratio {ratio:g} removes no unit from any width (widths: {', '.join(f'{k}={v}' for k, v in before.items())}); "
                          "give a larger ratio, e.g. 0.5")
    for name, dims in keep.items():
        for dim, mask in dims.items():
            state[name] = state[name].index_select(dim, mask.nonzero().flatten()).contiguous()
    return Pruned(type(model_cfg).model_validate(new_cfg), state, before, after, kept)


def check_ratio(ratio: float) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ConfigError(f"prune ratio {ratio!r}: must be a number between 0 and 1 (exclusive), the fraction of units to "
                          "remove from each width; e.g. 0.5 removes half")


def _n_keep(w: Width, ratio: float) -> int:
    """Units kept: (1 - ratio) of them, rounded half up, in whole quanta; none left is an error naming the field."""
    groups = w.size // w.quantum
    left = int(groups * (1 - ratio) + 0.5)
    if left < 1:
        raise ConfigError(f"prune ratio {ratio:g} leaves {w.name} (now {_unit_words(w)}) with nothing; use a ratio of at most "
                          f"{1 - 0.5 / groups:.3g} for this model")
    return left * w.quantum


def _unit_words(w: Width) -> str:
    return f"{w.size // w.quantum} x {w.quantum} units" if w.quantum > 1 else f"{w.size} units"


def _scores(w: Width, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """(size,) importance: the L1 norm of a unit's outgoing weights times the size of what it sends (module docstring)."""
    out = torch.zeros(w.size)
    for name, start, per_unit in w.consumers:
        cols = state[name][:, start:start + w.size * per_unit].abs().float()  # (out, size * per_unit, ...)
        out += cols.reshape(cols.shape[0], w.size, per_unit, -1).sum((0, 2, 3))  # (size,)
    if w.norm:
        scale = state[f"{w.norm}.weight"].abs().float()  # batch/layer norm sets each unit's size to |gamma|
    else:
        scale = state[f"{w.producer}.weight"].abs().float().flatten(1).sum(1)  # (size,) the producer row's L1 norm
    return out * scale


def _restrict(keep: dict, state: dict, name: str, dim: int, mask: torch.Tensor) -> None:
    if name not in state:  # a Linear/Conv without bias (batch norm after it), a norm without affine
        return
    dims = keep.setdefault(name, {})
    dims[dim] = dims[dim] & mask if dim in dims else mask


def _get(d: Any, path: list[Any]) -> Any:
    for p in path:
        d = d[p]
    return d


def _set(d: Any, path: list[Any], value: Any) -> None:
    _get(d, path[:-1])[path[-1]] = value


# ------------------------------------------------------------------------------ which layers each width sizes
def _widths(network: nn.Module, model_cfg: Any, new_cfg: dict) -> list[Width]:
    """Every prunable width of the network, with its config field. `new_cfg` (the config as a dict) gets each
    composite encoder's effective config written under its column, so a pruned default has a place to live."""
    from forgeml.models.combiners.concat import ConcatCombiner

    combiner = network.combiner
    if not isinstance(combiner, ConcatCombiner):
        raise ConfigError(f"model.combiner: {model_cfg.combiner.name}: pruning reaches the concat combiner only (the "
                          f"transformer combiner's feature tokens have one shared width); structured pruning reaches {PRUNABLE}")
    body = _linears(combiner.body, "combiner.body")
    after_encoders = [(body[0][0] + ".weight")] if body else [f"heads.{k}.proj.weight" for k in network.heads]
    composite = model_cfg.name == "composite"
    widths, offset = [], 0
    for key, encoder in network.encoders.items():
        prefix = f"encoders.{key}"
        downstream = [(name, offset, 1) for name in after_encoders]
        offset += encoder.out_dim
        base = _encoder_config_path(encoder, model_cfg, new_cfg) if composite else []
        widths += _encoder_widths(encoder, prefix, base, downstream)
    hidden_path = ["combiner", "hidden"] if composite else ["hidden"]
    heads = [(f"heads.{k}.proj.weight", 0, 1) for k in network.heads]
    for j, (producer, norm) in enumerate(body):
        consumers = [(body[j + 1][0] + ".weight", 0, 1)] if j + 1 < len(body) else heads
        widths.append(Width([*hidden_path, j], network.get_submodule(producer).out_features, producer, norm, consumers))
    return widths


def _linears(seq: nn.Sequential, prefix: str) -> list[tuple[str, str | None]]:
    """(Linear prefix, the norm right after it or None) for each Linear of an [Linear -> norm -> act -> dropout] stack."""
    mods = list(seq)
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            out.append((f"{prefix}.{i}", f"{prefix}.{i + 1}" if isinstance(nxt, (nn.BatchNorm1d, nn.LayerNorm)) else None))
    return out


def _encoder_config_path(encoder: nn.Module, model_cfg: Any, new_cfg: dict) -> list[Any]:
    """Where a composite encoder's widths go: model.encoders[<its column>], holding a copy of the config it was built
    from (its column's, its kind's, or the kind's default), so its pruned widths apply to it alone."""
    from forgeml.config import ENCODER_CONFIGS
    from forgeml.models.encoders.base import DEFAULT_FOR

    column = getattr(encoder, "name", None) or getattr(encoder, "feature", None)
    kind = _KIND.get(type(encoder).__name__)
    if column is None or kind is None:
        return []  # an encoder with no prunable widths: nothing is written for it
    given = model_cfg.encoders.get(column) or model_cfg.encoders.get(kind)
    effective = given if given is not None else ENCODER_CONFIGS[DEFAULT_FOR[kind]]()
    new_cfg["encoders"][column] = copy.deepcopy(effective.model_dump(mode="json"))
    return ["encoders", column]


_KIND = {"CNNEncoder": "image", "TransformerEncoder": "text", "Conv1dEncoder": "sequence"}


def _encoder_widths(encoder: nn.Module, prefix: str, base: list[Any], downstream: list[tuple[str, int, int]]) -> list[Width]:
    """The widths inside one encoder; its last one feeds `downstream` (the combiner's first Linear or the heads)."""
    from forgeml.models.encoders.cnn import CNNEncoder
    from forgeml.models.encoders.conv1d import Conv1dEncoder
    from forgeml.models.encoders.transformer import TransformerEncoder

    if isinstance(encoder, CNNEncoder):
        return _cnn_widths(encoder, prefix, base, downstream)
    if isinstance(encoder, Conv1dEncoder):
        widths = []
        for i, block in enumerate(encoder.blocks):
            last = i + 1 == len(encoder.blocks)
            consumers = downstream if last else [(f"{prefix}.blocks.{i + 1}.conv.weight", 0, 1)]  # pooled: 1 column a channel
            widths.append(Width([*base, "channels", i], block.conv.out_channels, f"{prefix}.blocks.{i}.conv", f"{prefix}.blocks.{i}.bn", consumers))
        return widths
    if isinstance(encoder, TransformerEncoder):
        d = encoder.cfg.d_model
        return [Width([*base, "ff_mult"], block.mlp[0].out_features, f"{prefix}.blocks.{i}.mlp.0", None,
                      [(f"{prefix}.blocks.{i}.mlp.2.weight", 0, 1)], quantum=d)
                for i, block in enumerate(encoder.blocks)]
    return []  # tabular (no layers of its own), recurrent encoders: left whole


def _cnn_widths(encoder: nn.Module, prefix: str, base: list[Any], downstream: list[tuple[str, int, int]]) -> list[Width]:
    fc = _linears(encoder.classifier, f"{prefix}.classifier")
    n_blocks = len(encoder.features)
    last_channels = encoder.features[-1][0].out_channels
    flat = encoder.get_submodule(fc[0][0][len(prefix) + 1:]).in_features if fc else encoder.out_dim
    per_channel = flat // last_channels  # h*w after a flatten, 1 after the global average
    widths = []
    for i, block in enumerate(encoder.features):
        if i + 1 < n_blocks:
            consumers = [(f"{prefix}.features.{i + 1}.0.weight", 0, 1)]
        elif fc:
            consumers = [(fc[0][0] + ".weight", 0, per_channel)]
        else:
            consumers = [(name, start, per_channel) for name, start, _ in downstream]
        norm = f"{prefix}.features.{i}.1" if isinstance(block[1], nn.BatchNorm2d) else None
        widths.append(Width([*base, "blocks", i, "channels"], block[0].out_channels, f"{prefix}.features.{i}.0", norm, consumers))
    for j, (producer, _) in enumerate(fc):
        consumers = [(fc[j + 1][0] + ".weight", 0, 1)] if j + 1 < len(fc) else downstream
        widths.append(Width([*base, "hidden", j], encoder.get_submodule(producer[len(prefix) + 1:]).out_features, producer, None, consumers))
    return widths
