"""Models: every run's network is encoders -> combiner -> heads (models/network.py, docs/contract.md),
built from its typed config by `build_network`; the GPT language model by `build_model`."""

from forgeml.models.registry import build_model, count_parameters


def build_network(*args, **kwargs):
    from forgeml.models.compose import build_network as build

    return build(*args, **kwargs)


__all__ = ["build_model", "build_network", "count_parameters"]
