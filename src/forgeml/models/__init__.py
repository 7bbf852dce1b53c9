"""Model zoo: one architecture per file, built from its typed config by `build_model`."""

from forgeml.models.registry import build_model, count_parameters

__all__ = ["build_model", "count_parameters"]
