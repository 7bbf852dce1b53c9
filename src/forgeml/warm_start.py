"""Where a new run's weights and tokenizers come from, when not from a seeded init and a tokenizer fitted on its data:
a pretrained encoder's source folder (its tokenizer, and its config.json kept in the run's config as hf_config), or a
trained run named by model.init_from (its weights, its architecture, its tokenizers). Read once, before the run
folder exists, so every mistake is refused with nothing written."""

from __future__ import annotations

from typing import Any

import torch

from forgeml.bundle import Bundle
from forgeml.config import Config
from forgeml.data.featureset import FeatureSet, fitted_state
from forgeml.errors import BundleError, ConfigError, DataError


def pretrained_encoders(cfg: Config) -> list[tuple[str, str, Any]]:
    """(key of the text column or kind, its config field, the pretrained encoder's config) of the model."""
    if cfg.model.name == "pretrained":
        return [("text", "model.source", cfg.model)]
    if cfg.model.name == "composite":
        return [(k, f"model.encoders.{k}.source", e) for k, e in cfg.model.encoders.items() if e.name == "pretrained"]
    return []


def pretrained_tokenizers(cfg: Config) -> dict[str, Any]:
    """Each pretrained encoder's tokenizer, read from its source folder, by the text column (or kind) it reads; its
    config.json goes into the encoder's config (hf_config), so the bundle rebuilds the model without the folder."""
    from forgeml.data.tokenizers.pretrained import PretrainedTokenizer
    from forgeml.models.encoders.pretrained import (
        check_folder,
        read_hf_config,
        require_transformers,
        resolve_source,
    )

    found = {}
    for key, field, enc in pretrained_encoders(cfg):
        require_transformers()
        folder = resolve_source(enc.source, field)
        check_folder(folder)
        hf = read_hf_config(folder)
        enc.hf_config = hf
        limit = hf.get("max_position_embeddings") or 10**9
        found[key] = PretrainedTokenizer.from_folder(folder, min(enc.max_length or cfg.data.text.max_length, limit))
    return found


ARCH_FREE = ("init_from", "dropout", "init", "hf_config")  # model fields that are not the architecture


def architecture(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: architecture(v) for k, v in d.items() if k not in ARCH_FREE}
    return d


def init_from(cfg: Config) -> tuple[dict[str, torch.Tensor], FeatureSet]:
    """model.init_from: the run's weights and fitted features; cfg.model becomes the run's architecture, with this
    config's dropout/init. A field this config sets to something else than the run's is a ConfigError."""
    where = cfg.model.init_from
    try:
        bundle = Bundle.open(where)
        theirs = bundle.read_config_dict().get("model") or {}
        features = FeatureSet.from_json(bundle.read_json("features.json"))
        weights = bundle.load_weights()
    except (BundleError, DataError) as exc:
        raise ConfigError(f"model.init_from: {exc}") from None
    if theirs.get("name") != cfg.model.name:
        raise ConfigError(f"model.init_from: {where} is a {theirs.get('name')} run, but model.name is {cfg.model.name}; "
                          f"init_from continues a run of the same model")
    mine = cfg.model.model_dump(mode="json")
    # a field this config gives a value other than its default (a config written out whole, as a study's trials and
    # best.yaml are, names every field: those at their defaults are not choices that clash)
    defaults = _defaults(cfg.model)
    given = sorted(k for k in set(cfg.model.model_fields_set) - set(ARCH_FREE) - {"name"}
                   if k not in defaults or mine[k] != defaults[k])
    clash = [(k, mine[k], theirs.get(k)) for k in given if architecture(mine[k]) != architecture(theirs.get(k))]
    if clash:
        raise ConfigError(f"model.init_from: the architecture comes from {where}, but this config sets "
                          + "; ".join(f"model.{k} to {a!r} (the run's: {b!r})" for k, a, b in clash)
                          + "; remove those fields (or make them the run's)")
    free = {k: mine[k] for k in ARCH_FREE if k in cfg.model.model_fields_set and k not in ("hf_config", "init_from")}
    cfg.model = {**theirs, **free, "init_from": str(where)}
    return weights, features


def _defaults(section: Any) -> dict[str, Any]:
    """A config section's default values as model_dump(mode="json") writes values (the required fields left out)."""
    out = {}
    for name, field in type(section).model_fields.items():
        if field.is_required():
            continue
        value = field.get_default(call_default_factory=True)
        out[name] = value.model_dump(mode="json") if hasattr(value, "model_dump") else list(value) if isinstance(value, tuple) else value
    return out


def check_same_features(where: str, start: FeatureSet, now: FeatureSet) -> None:
    """model.init_from on a table: every input and output fitted on the new data must be the run's (its tokenizers are)."""
    a, b = fitted_state(start.to_json()), fitted_state(now.to_json())
    for part in ("inputs", "outputs"):
        old, new = {f["name"]: f for f in a[part]}, {f["name"]: f for f in b[part]}
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                what = ("is not in the run" if name not in old else "is missing here" if name not in new else
                        f"fits differently on this data ({new[name].get('kind')}: e.g. other classes, values or statistics)")
                raise ConfigError(f"model.init_from: {where}: the {part[:-1]} {name!r} {what}; init_from needs the run's "
                                  "inputs and outputs with the same fitted preprocessing (text tokenizers are kept)")
