"""The optional API key: `forgeml serve RUN --api-key-env NAME` reads the key from that environment variable (never
from the command line, where `ps` would show it); every /v1/ route then wants `Authorization: Bearer KEY` or
`X-API-Key: KEY`. /health, /ready and /metrics stay open, as load balancers and scrapers expect."""

from __future__ import annotations

import hmac

# FastAPI reads the annotation: unannotated, `request` would be taken for a required query parameter (a 422 everywhere)
from starlette.requests import Request


def key_matches(expected: str | None, authorization: str | None, x_api_key: str | None) -> bool:
    """True when no key is set, or the request carries it (compared in constant time)."""
    if not expected:
        return True
    given = x_api_key or ""
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    return hmac.compare_digest(given.encode(), expected.encode())


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for the /v1/ routes: 401 with a JSON error naming the header when the key is wrong or missing.
    The key is `request.app.state.api_key` (None: no key asked)."""
    from fastapi import HTTPException

    expected = getattr(request.app.state, "api_key", None)
    if not key_matches(expected, request.headers.get("authorization"), request.headers.get("x-api-key")):
        raise HTTPException(status_code=401, detail="missing or wrong API key: send the header 'Authorization: Bearer KEY' "
                                                    "or 'X-API-Key: KEY' (the key is in the server's --api-key-env variable)",
                            headers={"WWW-Authenticate": "Bearer"})
