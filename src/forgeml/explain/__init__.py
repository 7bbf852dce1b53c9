"""Explanations: each prediction attributed to its inputs with Captum (the `explain` extra).

    space.py        the network as Captum sees it: float inputs (one-hot categories, token embeddings), one forward
    baselines.py    the reference input per kind each method compares against
    attribute.py    integrated_gradients, shap (GradientShap), occlusion (FeatureAblation) over that forward
    per_kind.py     raw attributions to what a user reads: a number per column, per token, per pixel, per step
    explainer.py    rows in, one explanation per row and output out (what Predictor.explain calls)
    global_view.py  mean |attribution| per column over many rows, beside permutation importance

Layering: this package reads models/, data/, errors; predictor.py, the CLI, the report and serve call it, never the
other way. Captum is imported inside the functions that need it, so `import forgeml` stays light.
"""

from __future__ import annotations

METHODS = ("integrated_gradients", "shap", "occlusion")
INSTALL = "pip install 'forgeml[explain]'"


def require_captum():
    """The captum.attr module; a ForgeError naming the extra to install when it is missing."""
    from forgeml.errors import ForgeError

    try:
        import captum.attr
    except ImportError as exc:
        raise ForgeError(f"explanations need Captum ({exc.name} is not installed): {INSTALL}") from None
    return captum.attr
