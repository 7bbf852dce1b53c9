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


# The encoder a kind gets when the config names none.
DEFAULT_FOR = {"numeric": "tabular", "binary": "tabular", "category": "tabular", "image": "cnn", "text": "rnn",
               "sequence": "conv1d"}
