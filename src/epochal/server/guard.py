"""The layer in front of the app that answers before a request's body is read: access, then size.

FastAPI reads and parses a request's body before any dependency runs, so a token or origin checked
in a dependency is checked after a stranger's upload is already in memory. This ASGI middleware
decides from the request line and headers alone (:func:`epochal.server.security.refusal`), then reads
the body itself, at most ``max_body`` bytes within ``body_timeout`` seconds, and hands the app those
bytes. Every refusal closes the connection, so the rest of an unwanted body is never read.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epochal.server.security import refusal

#: The largest request body accepted: the API's biggest change, 100,000 characters of notes and 100 tags,
#: is well under half of it even with every character escaped.
MAX_BODY = 1 << 20
#: Seconds a client has to send a whole body.
BODY_TIMEOUT = 30.0
#: API paths anyone may read: the schema and its documentation page, which hold no run data.
_OPEN = frozenset({"/api/docs", "/api/docs/oauth2-redirect", "/api/openapi.json"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _TooLarge(Exception):
    pass


class RequestGuard:
    """ASGI middleware: the access check and the body cap, before the app sees the request.

    Args:
        routes: the API's (path pattern, methods) pairs; a request is a change when one of them
            takes its path and method and the method is not a safe one.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[tuple[re.Pattern, set[str]]],
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
    ):
        self.app = app
        self.routes = routes
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path, method = scope["path"], scope["method"]
        if (path == "/api" or path.startswith("/api/")) and path not in _OPEN:
            refused = refusal(request, changing=method not in _SAFE_METHODS and self._routed(path, method))
            if refused is not None:
                await _answer(send, *refused)
                return
        length = request.headers.get("content-length")
        if length is None and "transfer-encoding" not in request.headers:
            await self.app(scope, receive, send)
            return
        if length is not None and not length.strip().isdigit():
            await _answer(send, 400, f"Content-Length must be a number of bytes, got {length[:40]!r}")
            return
        if length is not None and int(length) > self.max_body:
            await _answer(send, 413, self._too_large(f"{int(length):,}"))
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.body_timeout)
        except _TooLarge:
            await _answer(send, 413, self._too_large("more"))
            return
        except asyncio.TimeoutError:
            await _answer(send, 408, f"the request's body did not arrive within {self.body_timeout:g} s")
            return
        if body is None:  # the client went away
            return
        await self.app(scope, _replay(body, receive), send)

    def _routed(self, path: str, method: str) -> bool:
        return any(method in methods and pattern.match(path) for pattern, methods in self.routes)

    async def _read(self, receive: Receive) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    def _too_large(self, size: str) -> str:
        return f"the request's body is {size} bytes; this API takes at most {self.max_body:,} bytes"


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, read already, as the app's first message; then the connection's own messages
    (a disconnect, which streaming responses listen for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The body that was not read must not be taken as the next request: close the connection.
            (b"connection", b"close"),
        ],
    })
    await send({"type": "http.response.body", "body": body})
