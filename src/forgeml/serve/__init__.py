"""Serving a bundle over HTTP: `forgeml serve RUN` (FastAPI under uvicorn) and `forgeml.serve.Client`.

fastapi, uvicorn, prometheus-client and python-multipart are an optional extra (`pip install 'forgeml[serve]'`),
imported inside the functions that need them: `import forgeml` stays fast.
"""
