"""The one exception family for what a user did wrong.

The CLI prints a ForgeError's message (what, where, how to fix) without a traceback and exits
non-zero. Anything else is a bug and stays a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ForgeError(Exception):
    """Something the user can fix: a bad config, unreadable data, a broken bundle, a bad request."""


class ConfigError(ForgeError):
    """A config key, value or type is wrong."""


class DataError(ForgeError):
    """A data file is missing, unreadable or does not match what the config says."""


class BundleError(ForgeError):
    """A run folder is missing a file, has the wrong format version, or cannot be resumed."""


class RequestError(ForgeError):
    """An input given to predict (or to a server) cannot be turned into model inputs."""


class TrainingDiverged(ForgeError):
    """The training loss became NaN or infinite; the last good checkpoint was kept."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the checkpoint was saved; carries the run folder to resume."""

    def __init__(self, run: object):
        super().__init__(str(run))
        self.run = run


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The nearest valid name to a misspelt one, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' did you mean X?' or '' — for appending to an error message."""
    best = closest(name, choices)
    return f"; did you mean {best}?" if best else ""


class WriteError(ForgeError):
    """A file cannot be written: a read-only folder, a path through a regular file, a full disk."""
