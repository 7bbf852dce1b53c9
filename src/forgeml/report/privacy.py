"""The privacy a run bought, in one line: for the report, `forgeml train` and `forgeml evaluate` alike."""

from __future__ import annotations

from typing import Any


def privacy_line(meta: dict[str, Any]) -> str | None:
    """'(epsilon 2.98, delta 1e-05)-DP: DP-SGD ...' from meta.json's `privacy` (None for a run trained without it)."""
    p = meta.get("privacy")
    if not p:
        return None
    return (f"(epsilon {p['epsilon']:.3g}, delta {p['delta']:g})-differentially private for each training row: DP-SGD spent "
            f"epsilon {p['epsilon']:.4g} of the {p['target_epsilon']:g} planned ({p['accountant']} accountant) over {p['steps']} "
            f"steps of Poisson-sampled rows (rate {p['sample_rate']:.3g}, about {p['expected_batch']:g} rows), noise "
            f"multiplier {p['noise_multiplier']:.3g}, per-row gradients clipped to {p['max_grad_norm']:g}. The features' "
            "fitting (normalisation, vocabularies, categories) read the training rows without privacy")
