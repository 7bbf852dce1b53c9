"""Whether a bundle may run code: the one place that decides.

A bundle is data. A config can name Python code (today `model: {name: custom, target: 'pkg.mod:Name'}`),
and a bundle's config.yaml is whatever its author wrote, so every reader that rebuilds anything from a
bundle's config (load, predict, evaluate, generate, report, resume) calls `require_trust` first: nothing
named in it is imported unless the user passed --trust-code / trust_code=True. A fresh run from the
user's own YAML is the user's own code and does not come here.
"""

from __future__ import annotations

from pathlib import Path

from forgeml.config import Config
from forgeml.errors import BundleError


def code_named(config: Config) -> list[str]:
    """The import paths a config would import and call: empty for the built-in models."""
    return [config.model.target] if config.model.name == "custom" else []


def require_trust(config: Config, where: str | Path, trust_code: bool) -> None:
    """Refuse (BundleError) a config read from `where` that names code, unless trust_code."""
    named = code_named(config)
    if named and not trust_code:
        raise BundleError(f"{where}: model.target {named[0]!r} is Python code that this bundle would import and run; "
                          "refused. If you trust where the bundle came from, pass --trust-code (Python: trust_code=True)")
