"""What every encoder builder checks first: that it can read the kinds of features it was given."""

from __future__ import annotations

from forgeml.errors import ConfigError


def check_kinds(encoder: str, features: list, reads: tuple[str, ...], where: str) -> None:
    """A cnn on a number, an rnn on a category: one line naming the field and what would fit."""
    for f in features:
        if f.kind not in reads:
            raise ConfigError(f"{where}: the {encoder!r} encoder reads {' or '.join(reads)} features, but {f.name!r} is "
                              f"{f.kind}; choose another encoder for it (e.g. model.encoders.{f.kind}: "
                              f"{{name: {DEFAULT_FOR.get(f.kind, 'tabular')}}})")


def sequence_feature(encoder: str, features: list):
    """The one sequence feature a series encoder (conv1d, gru, lstm) reads; a ConfigError for anything else."""
    kinds = [f"{getattr(f, 'name', '?')!r} ({getattr(f, 'kind', '?')})" for f in features]
    if len(features) != 1 or getattr(features[0], "kind", None) != "sequence":
        raise ConfigError(f"model.encoders: encoder {encoder!r} reads one sequence feature, not {', '.join(kinds) or 'nothing'}; "
                          "choose conv1d/gru/lstm for series, tabular for numbers and categories, cnn for images, rnn/transformer for text")
    return features[0]


# The encoder a kind gets when the config names none.
DEFAULT_FOR = {"numeric": "tabular", "binary": "tabular", "category": "tabular", "image": "cnn", "text": "rnn",
               "sequence": "conv1d", "audio": "cnn"}
