"""Models: every run's network is encoders -> combiner -> heads (models/network.py, docs/contract.md),
built from its typed config by `build_network` (a GPT too: the gpt encoder and a next_token head)."""

from forgeml.models.registry import count_parameters


def build_network(*args, **kwargs):
    from forgeml.models.compose import build_network as build

    return build(*args, **kwargs)


__all__ = ["build_network", "count_parameters"]
