"""Serving a bundle over HTTP: `forgeml serve RUN` (FastAPI under uvicorn) and `forgeml.serve.Client`.

fastapi, uvicorn, prometheus-client and python-multipart are an optional extra (`pip install 'forgeml[serve]'`),
imported inside the functions that need them: `import forgeml` stays fast.
"""


def __getattr__(name: str):
    """`forgeml.serve.Client` imported on first use (it needs no extra; httpx if present)."""
    if name in ("Client", "ServeError"):
        from forgeml.serve import client

        return getattr(client, name)
    raise AttributeError(f"module 'forgeml.serve' has no attribute {name!r}")
