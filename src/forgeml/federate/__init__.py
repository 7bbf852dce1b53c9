"""forgeml federate: federated training with Flower. A real SuperLink and one real SuperNode per client run as separate
processes (processes.py); the ServerApp (server_app.py) and ClientApp (client_app.py) live here and are found by import
path; the launcher (launch.py) holds the held-out split, measures the global weights each round and writes the bundle.

This package sits beside cli/api: it may import pipeline; nothing below it imports federate. Flower is imported only
inside federate's functions and in the two app modules (loaded by Flower's own processes)."""

from __future__ import annotations

from forgeml.errors import ForgeError

INSTALL = "pip install 'forgeml[federated]'"


class FederateError(ForgeError):
    """A federated run that could not finish: a client or the server failed, a round lacked replies, a process died."""


def require_flwr():
    """The flwr module, or a ForgeError saying how to install it."""
    try:
        import flwr
    except ImportError as exc:
        raise ForgeError(f"forgeml federate needs Flower ({exc.name} is not installed): {INSTALL}") from None
    return flwr
