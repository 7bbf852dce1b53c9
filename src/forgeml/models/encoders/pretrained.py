"""`pretrained`: a Hugging Face model (BERT, MiniLM, ...) over one text column, pooled into one vector.

The network is built from the model's config.json with `transformers.AutoModel.from_config` (no weights, no
hub). The run's config keeps that config.json as `hf_config`, so a bundle rebuilds the model without the source
folder and loads its own model.safetensors. The source folder's weights are loaded only when a fresh training run
starts (`load_source_weights`, called by the pipeline), never on resume or load.

`source` is a local folder, or the name of an installed package that ships one (found with
importlib.util.find_spec, without importing it). Ids come from the model's own tokenizer (data/tokenizers/
pretrained.py), id 0 = padding, so the attention mask is `ids != 0`.

Pooling: the mean of the real tokens' last hidden states (sentence-transformers' choice for MiniLM), or the
first token's ([CLS]).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgeml.config import PretrainedConfig
from forgeml.errors import ConfigError, ForgeError
from forgeml.models.encoders.base import check_kinds

READS = ("text",)
INSTALL = "pip install 'forgeml[pretrained]'"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def require_transformers():
    """The transformers module, or a ForgeError that says how to install it."""
    try:
        import transformers
    except ImportError:
        raise ForgeError(f"the pretrained encoder needs the transformers package: {INSTALL}") from None
    return transformers


def resolve_source(source: str, field: str = "model.source") -> Path:
    """The model folder `source` names: a folder holding config.json, or an installed package that ships one.
    A ConfigError that says where it looked otherwise; never a download."""
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir() and (path / "config.json").is_file():
            return path.resolve()
        found = _model_folder(path) if path.is_dir() else None
        if found is not None:
            return found
        raise ConfigError(f"{field}: {path.resolve()} is not a Hugging Face model folder (no config.json in it"
                          f"{' or its subfolders' if path.is_dir() else ''}); give the folder holding config.json, "
                          "model.safetensors and tokenizer.json")
    package = source.replace("-", "_")
    looked = f"looked for the folder {path.resolve()} (does not exist)"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", package):
        spec = importlib.util.find_spec(package)
        if spec is None:
            looked += f" and for an installed package {package!r} (not installed)"
        else:
            roots = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
            for root in roots:
                found = _model_folder(Path(root))
                if found is not None:
                    return found
            looked += f" and in the installed package {package!r} at {', '.join(roots)} (no folder with a config.json in it)"
    hub = " (forgeml never downloads from the Hugging Face hub: save the model to a folder first)" if "/" in source else ""
    raise ConfigError(f"{field}: {source!r}: no pretrained model found; {looked}{hub}. Give a local model folder "
                      "(config.json, model.safetensors, tokenizer.json) or an installed package that ships one")


def _model_folder(root: Path, depth: int = 3) -> Path | None:
    """The shallowest folder under root (root included) that holds config.json; folders in sorted order."""
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            if (folder / "config.json").is_file():
                return folder.resolve()
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    return None


def check_folder(folder: Path) -> Path:
    """The folder's weights file; a ConfigError naming every file a model folder lacks (config, weights, tokenizer)."""
    weights = next((folder / w for w in WEIGHTS if (folder / w).is_file()), None)
    missing = [name for name, ok in (("config.json", (folder / "config.json").is_file()),
                                     (" or ".join(WEIGHTS), weights is not None),
                                     ("tokenizer.json", (folder / "tokenizer.json").is_file())) if not ok]
    if missing:
        raise ConfigError(f"{folder}: not a complete pretrained model folder: missing {', '.join(missing)}")
    return weights


def read_hf_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(d, dict) or "model_type" not in d:
        raise ConfigError(f"{path}: a Hugging Face config.json names its model_type (e.g. bert); this one does not")
    return d


def hf_model(hf_config: dict[str, Any]) -> nn.Module:
    """The bare model (no task head, no pooler) the config describes, randomly initialised: weights come later."""
    transformers = require_transformers()
    d = dict(hf_config)
    model_type = d.pop("model_type")
    try:
        config = transformers.AutoConfig.for_model(model_type, **d)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"hf_config: model_type {model_type!r} is not known to transformers {transformers.__version__} "
                          f"({str(exc).splitlines()[0]})") from None
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "some weights are newly initialised": they are, and loaded next
    try:
        try:
            # fp32 whatever config.json's torch_dtype says (a folder saved in fp16): train.precision decides autocast
            return transformers.AutoModel.from_config(config, add_pooling_layer=False, torch_dtype=torch.float32)  # no pooler: mean or [CLS]
        except TypeError:
            return transformers.AutoModel.from_config(config, torch_dtype=torch.float32)
    finally:
        transformers.logging.set_verbosity(verbosity)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A model folder's tensors: safetensors, or a PyTorch .bin read with weights_only (no code runs)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path}: not loadable as plain tensors (weights_only=True refuses pickled code: {str(exc).splitlines()[0]}); "
                          "convert it to model.safetensors") from None


class PretrainedEncoder(nn.Module):
    def __init__(self, cfg: PretrainedConfig, name: str, hf_config: dict[str, Any]):
        super().__init__()
        self.name, self.pooling, self.source = name, cfg.pooling, cfg.source
        self.model = hf_model(hf_config)
        self.drop = nn.Dropout(cfg.dropout)
        self.out_dim = int(self.model.config.hidden_size)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = inputs[self.name]  # (B, T) token ids, 0 = padding
        keep = ids != 0  # (B, T)
        hidden = self.model(input_ids=ids, attention_mask=keep.long()).last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            w = keep[:, :, None].to(hidden.dtype)
            pooled = (hidden * w).sum(1) / w.sum(1).clamp(min=1)
        return self.drop(pooled)  # (B, H)

    def layer_groups(self) -> list[list[str]]:
        """Parameter names (relative to this encoder) per layer, bottom to top: the embeddings, then each numbered
        block (`layer.3`, `layers.3`, `h.3`); what follows the blocks (a final norm) goes with the top one."""
        bottom, layers, top = [], {}, []
        for name, _ in self.named_parameters():
            m = re.search(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.", name)
            if m:
                layers.setdefault(int(m.group(1)), []).append(name)
            elif "embed" in name:
                bottom.append(name)
            else:
                top.append(name)
        groups = [bottom] + [layers[i] for i in sorted(layers)]
        groups[-1] = groups[-1] + top
        return [g for g in groups if g]

    @torch.no_grad()
    def load_source_weights(self) -> None:
        """The source folder's weights into the model: every tensor the model has must be there, with its shape."""
        folder = resolve_source(self.source)
        path = check_folder(folder)
        state = read_weights(path)
        prefix = getattr(self.model, "base_model_prefix", "") + "."
        if prefix != "." and not any(k.startswith("embeddings.") for k in state) and any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}  # saved with a task head (BertFor...)
        own = self.model.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ConfigError(f"{path}: lacks {len(missing)} of the model's {len(own)} tensors (e.g. {', '.join(missing[:3])}); "
                              "are these the weights of the model its config.json describes?")
        wrong = [f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})" for k, v in own.items() if state[k].shape != v.shape]
        if wrong:
            raise ConfigError(f"{path}: tensors of the wrong shape: {', '.join(wrong[:3])}")
        self.model.load_state_dict({k: state[k] for k in own}, strict=True)


def build(cfg: PretrainedConfig, features: list) -> PretrainedEncoder:
    check_kinds("pretrained", features, READS, "model.encoders")
    if len(features) != 1:
        raise ConfigError(f"model.encoders: a pretrained encoder reads one text; give each of "
                          f"{', '.join(f.name for f in features)} its own encoder (model.name: composite)")
    feature = features[0]
    if getattr(feature.tokenizer, "kind", None) != "pretrained":
        raise ConfigError(f"model.encoders: the pretrained encoder of {feature.name!r} needs the model's own tokenizer, but the "
                          f"column was tokenized with {getattr(feature.tokenizer, 'kind', '?')!r}; train it through forgeml.train, "
                          "which gives the column the model's tokenizer")
    hf_config = cfg.hf_config or read_hf_config(resolve_source(cfg.source))
    vocab = hf_config.get("vocab_size")
    if vocab is not None and feature.vocab_size > vocab:
        raise ConfigError(f"{cfg.source}: the tokenizer has {feature.vocab_size} tokens but the model embeds {vocab}; "
                          "tokenizer.json and config.json are not of the same model")
    return PretrainedEncoder(cfg, feature.name, hf_config)


def load_pretrained_weights(network: nn.Module) -> int:
    """Every pretrained encoder of a freshly built network gets its source's weights; returns how many did."""
    encoders = [m for m in network.modules() if isinstance(m, PretrainedEncoder)]
    for encoder in encoders:
        encoder.load_source_weights()
    return len(encoders)
