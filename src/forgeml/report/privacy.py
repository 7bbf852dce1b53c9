"""The privacy a run bought, in one line: for the report, `forgeml train` and `forgeml evaluate` alike."""

from __future__ import annotations

from typing import Any


def privacy_line(meta: dict[str, Any]) -> str | None:
    """'(epsilon 2.98, delta 1e-05)-DP: DP-SGD ...' from meta.json's `privacy` (None for a run trained without it)."""
    p = meta.get("privacy")
    if not p:
        return None
    if p.get("federated"):  # forgeml federate: a guarantee per client, for its rows, over all the rounds
        sigmas = sorted({c["noise_multiplier"] for c in p["clients"]})
        each = ", ".join(f"{c['epsilon']:.4g}" for c in p["clients"])
        return (f"(epsilon {p['epsilon']:.3g}, delta {p['delta']:g})-differentially private for each training row, on every "
                f"client: DP-SGD on each of {len(p['clients'])} clients over {p['rounds']} rounds, composed; the largest "
                f"client epsilon spent is {p['epsilon']:.4g} of the {p['target_epsilon']:g} planned ({p['accountant']} "
                f"accountant; per client: {each}), noise "
                f"multiplier {sigmas[0]:.3g}{f'-{sigmas[-1]:.3g}' if len(sigmas) > 1 else ''}, per-row gradients clipped to "
                f"{p['max_grad_norm']:g}. The server merged the clients' feature summaries (counts, categories) without privacy")
    return (f"(epsilon {p['epsilon']:.3g}, delta {p['delta']:g})-differentially private for each training row: DP-SGD spent "
            f"epsilon {p['epsilon']:.4g} of the {p['target_epsilon']:g} planned ({p['accountant']} accountant) over {p['steps']} "
            f"steps of Poisson-sampled rows (rate {p['sample_rate']:.3g}, about {p['expected_batch']:g} rows), noise "
            f"multiplier {p['noise_multiplier']:.3g}, per-row gradients clipped to {p['max_grad_norm']:g}. The features' "
            "fitting (normalisation, vocabularies, categories) and the training loss logged in history.jsonl read the "
            "training rows without privacy")
