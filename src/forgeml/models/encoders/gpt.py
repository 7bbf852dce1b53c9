"""`gpt`: a decoder-only Transformer over token ids (the `corpus` input of a language model), one vector
per position (B, T, n_embd). The model itself is models/gpt.py."""

from __future__ import annotations

from forgeml.errors import ConfigError
from forgeml.models.gpt import GPT


def build(cfg, features: list) -> GPT:
    if len(features) != 1 or features[0].kind != "corpus":
        raise ConfigError("model.name: gpt reads one tokenized text corpus (data.path: a text file or folder); "
                          f"this data has {', '.join(f'{f.name} ({f.kind})' for f in features)}")
    return GPT(cfg, features[0].vocab_size, key=features[0].name)
