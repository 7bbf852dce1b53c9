"""From the model config and the fitted features to a Network: which encoder reads which feature.

The short forms are today's configs: `mlp` is a tabular encoder + a concat combiner with the MLP's
hidden layers; `cnn`, `rnn`, `transformer` are that encoder on the one image/text + a plain concat, and
`conv1d`, `gru`, `lstm` the same on the one sequence, `pretrained` (a Hugging Face model) on the one text.
`composite` names encoders per kind or per column, and a combiner. One head per output.
"""

from __future__ import annotations

import torch
from torch import nn

from forgeml.errors import ConfigError
from forgeml.models.combiners import COMBINERS
from forgeml.models.encoders import ENCODERS
from forgeml.models.encoders.base import DEFAULT_FOR
from forgeml.models.heads import HEADS
from forgeml.models.init import initialise
from forgeml.models.network import Network

TABULAR_KINDS = ("numeric", "binary", "category")


def head_name(output) -> str:
    """The head an output gets: a fitted target's kind ('classification' -> class; others by their own name)."""
    return {"classification": "class"}.get(output.kind, output.kind)


def build_network(cfg, inputs: list, outputs: list, output_cfgs: list | None = None, seed: int | None = None) -> nn.Module:
    """cfg: the model section; inputs/outputs: fitted features and targets; output_cfgs: per output its settings
    (weight, loss, label smoothing, class weights), in the order of `outputs`."""
    from forgeml.config import ENCODER_CONFIGS, ConcatCombinerConfig

    if seed is not None:
        torch.manual_seed(seed)
    output_cfgs = output_cfgs or [None] * len(outputs)
    if cfg.name == "custom":
        return _custom(cfg, inputs, outputs, output_cfgs)
    if cfg.name == "gpt":
        return _gpt(cfg, inputs, outputs)
    if cfg.name == "composite":
        groups = _groups(cfg, inputs)
        encoders = {}
        for key, (enc_cfg, feats) in groups.items():
            enc_cfg = enc_cfg or ENCODER_CONFIGS[DEFAULT_FOR[feats[0].kind]]()
            encoders[key] = ENCODERS[enc_cfg.name](enc_cfg, feats)
            initialise(encoders[key], enc_cfg.init, getattr(enc_cfg, "activation", "relu"))
        combiner_cfg = cfg.combiner
    else:  # a short form: one encoder over every input, the model's own settings
        _check_short_form(cfg.name, inputs)
        name = "tabular" if cfg.name == "mlp" else cfg.name
        key = "tabular" if name == "tabular" else inputs[0].name
        encoders = {key: ENCODERS[name](cfg, inputs)}
        hidden = cfg.hidden if cfg.name == "mlp" else []
        combiner_cfg = ConcatCombinerConfig(hidden=hidden, activation=getattr(cfg, "activation", "relu"),
                                            dropout=cfg.dropout if cfg.name == "mlp" else 0.0,
                                            norm=cfg.norm if cfg.name == "mlp" else "none")
    combiner = COMBINERS[combiner_cfg.name](combiner_cfg, [e.out_dim for e in encoders.values()])
    heads = {o.name: HEADS[head_name(o)](c, combiner.out_dim, o) for o, c in zip(outputs, output_cfgs)}
    weights = {o.name: getattr(c, "weight", 1.0) for o, c in zip(outputs, output_cfgs)}
    network = Network(encoders, combiner, heads, weights)
    if cfg.name == "composite":  # each encoder has had its own scheme; the combiner's covers the rest
        initialise(network.combiner, combiner_cfg.init, combiner_cfg.activation if hasattr(combiner_cfg, "activation") else "relu")
        initialise(network.heads, combiner_cfg.init)
    else:
        initialise(network, cfg.init, getattr(cfg, "activation", "relu"))
    return network


SERIES_SHORT_FORMS = ("conv1d", "gru", "lstm")


def _check_short_form(name: str, inputs: list) -> None:
    """`model.name: conv1d | gru | lstm` reads the one sequence input; anything else needs the composite form."""
    if name == "pretrained" and (len(inputs) != 1 or inputs[0].kind != "text"):
        seen = ", ".join(f"{f.name!r} ({f.kind})" for f in inputs[:5])
        raise ConfigError(f"model.name: pretrained reads one text input, but the inputs are {seen}; use model.name: composite "
                          "with model.encoders.text: {name: pretrained, source: ...} (the other columns get their kind's encoder)")
    if name == "frames" and (len(inputs) != 1 or inputs[0].kind != "audio"):
        seen = ", ".join(f"{f.name!r} ({f.kind})" for f in inputs[:5])
        raise ConfigError(f"model.name: frames reads one audio input, but the inputs are {seen}; use model.name: composite "
                          "with model.encoders.audio: {name: frames} (the other columns get their kind's encoder)")
    if name in SERIES_SHORT_FORMS and (len(inputs) != 1 or inputs[0].kind != "sequence"):
        seen = ", ".join(f"{f.name!r} ({f.kind})" for f in inputs[:5])
        raise ConfigError(f"model.name: {name} reads one sequence input, but the inputs are {seen}; use model.name: composite "
                          f"with model.encoders.sequence: {{name: {name}}} (the other columns get their kind's encoder)")


def _groups(cfg, inputs: list) -> dict[str, tuple]:
    """Encoder key -> (its config or None for the kind's default, the features it reads).

    A column named in model.encoders gets its own encoder; otherwise numeric/binary/category columns
    share one `tabular` encoder and every image/text/sequence column gets one of its kind's."""
    names = {f.name for f in inputs}
    kinds = {f.kind for f in inputs} | {"tabular"}
    for key in cfg.encoders:
        if key not in names and key not in kinds:
            raise ConfigError(f"model.encoders.{key}: not an input column nor a kind of this data (columns: "
                              f"{', '.join(sorted(names))}; kinds: {', '.join(sorted(kinds))})")
    own = [f for f in inputs if f.name in cfg.encoders or f.kind not in TABULAR_KINDS]
    if any(f.name == "tabular" for f in own) and any(f not in own for f in inputs):
        raise ConfigError("model.encoders: the column 'tabular' would get the key of the shared tabular encoder of the "
                          "numeric/binary/category columns; rename that column (e.g. data.sequence.name) or drop it")
    groups: dict[str, tuple] = {}
    for f in inputs:
        if f.name in cfg.encoders:
            groups[f.name] = (cfg.encoders[f.name], [f])
        elif f.kind in TABULAR_KINDS:
            groups.setdefault("tabular", (cfg.encoders.get("tabular") or cfg.encoders.get(f.kind), []))[1].append(f)
        else:
            groups[f.name] = (cfg.encoders.get(f.kind), [f])
    return groups


def _gpt(cfg, inputs: list, outputs: list) -> Network:
    """A language model: the gpt encoder over the corpus, a pass-through combiner, a next_token head whose
    weight is the token embedding (tie_weights). Built in the order and initialised in the module order of
    forgeml's single GPT class before format 2, so a seeded build gives the same weights."""
    from forgeml.config import ConcatCombinerConfig
    from forgeml.models.gpt import gpt_init

    if len(outputs) != 1 or outputs[0].kind != "next_token":
        raise ConfigError("model.name: gpt predicts the next token only; data.outputs does not apply to it")
    encoder = ENCODERS["gpt"](cfg, inputs)
    combiner = COMBINERS["concat"](ConcatCombinerConfig(), [encoder.out_dim])  # one input, no layers: (B, T, C) as is
    head = HEADS["next_token"](None, encoder.out_dim, outputs[0])
    if cfg.tie_weights:
        head.proj.weight = encoder.wte.weight  # one matrix reads tokens in and scores them out
    network = Network({inputs[0].name: encoder}, combiner, {outputs[0].name: head})
    network.apply(lambda m: gpt_init(m, cfg.n_layer))
    return network


def _custom(cfg, inputs: list, outputs: list, output_cfgs: list) -> nn.Module:
    """A user's module as the combiner: it reads the old single tensor (the one image or text, or the
    tabular vector) and returns the logits itself, so its head keeps the loss but has no layer."""
    from forgeml.config import TabularEncoderConfig
    from forgeml.models.custom import build_custom

    if len(outputs) != 1:
        raise ConfigError("model.name: custom predicts one output; list one in data.outputs or use model.name: composite")
    single = len(inputs) == 1 and inputs[0].kind in ("image", "text")
    encoder = Passthrough(inputs[0].name) if single else ENCODERS["tabular"](TabularEncoderConfig(), inputs)
    in_shape = list(inputs[0].shape) if single and inputs[0].kind == "image" else (
        [inputs[0].max_length] if single else [encoder.out_dim])
    combiner = Wrapped(initialise(build_custom(cfg, in_shape, outputs[0].n_outputs), cfg.init))
    head = HEADS[head_name(outputs[0])](output_cfgs[0], outputs[0].n_outputs, outputs[0])
    head.proj = nn.Identity()  # the user's module already ends in the output layer
    return Network({"input": encoder}, combiner, {outputs[0].name: head})


class Passthrough(nn.Module):
    """One input tensor as it is (a custom model reads the raw image or token ids)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return inputs[self.name]


class Wrapped(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        return self.module(vectors[0])


class HeadSettings:
    """What a head needs from the config besides its output: weight, loss, smoothing, class weights."""

    def __init__(self, weight: float = 1.0, loss: str = "auto", label_smoothing: float = 0.0, class_weights=None,
                 pos_weight: str = "none"):
        self.weight, self.loss, self.label_smoothing, self.class_weights = weight, loss, label_smoothing, class_weights
        self.pos_weight = pos_weight  # multilabel: none, balanced or sqrt (models/heads/multilabel.py)


def check_next_token_settings(t) -> None:
    """A next-token head always trains on plain next-token cross entropy: a setting for another loss would be
    silently ignored, so it is refused (before any run folder exists)."""
    why = "a GPT always trains on plain next-token cross entropy"
    if t.loss not in ("auto", "cross_entropy"):
        raise ConfigError(f"train.loss: {t.loss!r}, but {why}; remove the setting (or set train.loss=auto)")
    if t.label_smoothing:
        raise ConfigError(f"train.label_smoothing: {t.label_smoothing:g}, but {why}; remove the setting (or set it to 0)")
    if t.class_weights != "none":
        raise ConfigError(f"train.class_weights: {t.class_weights!r}, but {why} (tokens are not classes to weigh); "
                          "remove the setting (or set it to none)")


def network_for(cfg, features, seed: int | None = None) -> Network:
    """The network a run's config and fitted features describe, as the run trained it: a private run
    (train.privacy) trained group norm where the config names batch norm (models/group_norm.py)."""
    from forgeml.models import build_network
    from forgeml.models.group_norm import replace_batch_norm

    model = build_network(cfg.model, features.inputs, features.outputs, head_settings(cfg, features.outputs), seed=seed)
    if cfg.train.privacy is not None:
        replace_batch_norm(model)
    return model


def head_settings(cfg, outputs: list) -> list[HeadSettings]:
    """Per output (in order) its settings: data.outputs[i] where given; the train.loss / label_smoothing /
    class_weights of the short form apply to a single output, smoothing and 'balanced' to every class output."""
    from forgeml.models.heads.classification import balanced_class_weights

    given = {o.name: o for o in cfg.data.outputs}
    t = cfg.train
    settings = []
    for out in outputs:
        if out.kind == "next_token":
            check_next_token_settings(t)
            settings.append(HeadSettings(loss="cross_entropy"))
            continue
        oc = given.get(out.name)
        loss = oc.loss if oc is not None and oc.loss != "auto" else (t.loss if len(outputs) == 1 else "auto")
        if loss == "auto":
            loss = {"classification": "cross_entropy", "multilabel": "bce"}.get(out.kind, "mse")
        if out.kind == "multilabel" and loss != "bce":
            raise ConfigError(f"data.outputs.{out.name}.loss: {loss} does not fit the multilabel output {out.name!r}; use bce")
        field = f"data.outputs.{out.name}.loss" if oc is not None and oc.loss != "auto" else "train.loss"
        if out.kind == "classification" and loss != "cross_entropy":
            raise ConfigError(f"{field}: {loss} does not fit the class output {out.name!r}; use cross_entropy")
        if out.kind == "regression" and loss not in ("mse", "l1", "huber"):
            raise ConfigError(f"{field}: {loss} needs a classification target; use mse, l1 or huber for the regression "
                              f"output {out.name!r}")
        weights = None
        if out.kind == "classification":
            if t.class_weights == "balanced":
                weights = balanced_class_weights(out.counts)
            elif isinstance(t.class_weights, list):
                if len(outputs) > 1:
                    raise ConfigError("train.class_weights: a list of weights fits one output; with several outputs use 'balanced'")
                if len(t.class_weights) != out.n_outputs:
                    raise ConfigError(f"train.class_weights: {len(t.class_weights)} weights for {out.n_outputs} classes "
                                      f"({', '.join(out.classes)})")
                weights = t.class_weights
        settings.append(HeadSettings(oc.weight if oc is not None else 1.0, loss, t.label_smoothing, weights,
                                     oc.pos_weight if oc is not None else "none"))
    return settings
