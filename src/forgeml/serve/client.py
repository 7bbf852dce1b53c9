"""`forgeml.serve.Client`: a served model from Python, as plain calls.

    from forgeml.serve import Client
    c = Client("http://127.0.0.1:8000", api_key=None)
    c.predict([{"age": 39, "workclass": "Private", ...}])   # [{'label': '<=50K', 'confidence': 0.91, ...}]
    c.model()                                              # name, task, inputs, outputs, metrics
    c.generate("ROMEO:", max_new_tokens=50)                 # a language model's text
    for piece in c.stream("ROMEO:"): print(piece, end="")   # the same, piece by piece as the server makes it

httpx when it is installed (a kept-alive connection), else the standard library's urllib: the client itself needs no
extra. An answer other than 2xx raises ServeError with the server's message, status and field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from forgeml.errors import RequestError


class ServeError(RequestError):
    """The server refused a request: `status` (400, 401, 413, 422, 503, ...), `field` (the JSON path it names, or None)."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(f"server answered {status}: {message}")
        self.status, self.field = status, field


def _error(status: int, body: bytes) -> ServeError:
    try:
        data = json.loads(body)
        return ServeError(status, str(data.get("error", data)), data.get("field"))
    except (ValueError, AttributeError):
        return ServeError(status, body[:200].decode(errors="replace"))


class Client:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            import httpx

            self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)
        except ImportError:
            self._http = None

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        if self._http is not None:
            r = self._http.request(method, path, json=body)
            if r.status_code >= 300:
                raise _error(r.status_code, r.content)
            return r.json()
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={**self.headers, **({"Content-Type": "application/json"} if data else {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None

    def _events(self, path: str, body: Any) -> Iterator[dict[str, Any]]:
        """Server-sent events' `data:` lines as dicts, as they arrive."""
        if self._http is not None:
            with self._http.stream("POST", path, json=body) as r:
                if r.status_code >= 300:
                    raise _error(r.status_code, r.read())
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        yield json.loads(line[5:])
            return
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={**self.headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                for raw in r:  # urllib reads line by line as the server flushes
                    line = raw.decode().strip()
                    if line.startswith("data:"):
                        yield json.loads(line[5:])
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None

    # ------------------------------------------------------------------ the API
    def predict(self, rows: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
        """Predictions for a list of rows (or one row): one dict per row, in order."""
        body = {"instances": [rows] if isinstance(rows, dict) else list(rows)}
        return self._request("POST", "/v1/predict", body)["predictions"]

    def generate(self, prompt: str, **options: Any) -> str:
        """A language model's continuation of `prompt` (options: max_new_tokens, temperature, top_k, top_p, seed, stop)."""
        return self._request("POST", "/v1/generate", {"prompt": prompt, **options, "stream": False})["text"]

    def stream(self, prompt: str, **options: Any) -> Iterator[str]:
        """The continuation piece by piece, as the server produces it."""
        for event in self._events("/v1/generate", {"prompt": prompt, **options, "stream": True}):
            if "token" in event:
                yield event["token"]
            if event.get("done"):
                return

    def model(self) -> dict[str, Any]:
        """GET /v1/model: name, task, inputs, outputs, metrics, version, backend."""
        return self._request("GET", "/v1/model")

    def health(self) -> bool:
        """True when the server answers /health."""
        try:
            return self._request("GET", "/health").get("status") == "ok"
        except (ServeError, OSError):
            return False
        except Exception as exc:  # noqa: BLE001 - httpx's connection errors are not OSErrors
            if type(exc).__module__.startswith("httpx"):
                return False
            raise

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"
