"""Refuse a request body larger than max_body_bytes before it is read whole (a 413), as pure ASGI middleware.

A declared Content-Length over the limit is refused before one byte of the body is read; a body without one (chunked)
is counted as its pieces arrive and refused at the piece that crosses the limit. Starlette's Request.body() would
otherwise read any size into memory.
"""

from __future__ import annotations

import json


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes

    def _message(self) -> str:
        return (f"request body larger than {self.max_body_bytes} bytes; send fewer instances per request, or start the "
                f"server with a larger --max-body-mb")

    async def _refuse(self, send) -> None:
        body = json.dumps({"error": self._message(), "field": None}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return await self._refuse(send)  # the body is never read
        seen, started = 0, [False]

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def watched_send(message):
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started[0]:
                await self._refuse(send)
