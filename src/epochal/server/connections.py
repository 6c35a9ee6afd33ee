"""The HTTP connections `epochal ui` accepts: how long a client may take, and how many it may hold open.

uvicorn closes a kept-alive connection that stays silent, and h11 bounds the size of a request's
headers, but nothing closes a connection that sends no request, or its headers a byte at a time: a
thousand of those use up the process's files and the dashboard stops answering. This protocol gives a
request ``header_timeout`` seconds for its whole headers and keeps at most ``max_connections`` open,
closing the one that has waited longest without a request when a new one comes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client may hold of the dashboard's server.

    Examples:
        >>> serve(store, limits=ConnectionLimits(max_connections=50))
    """

    header_timeout: float = 10.0  # seconds from connecting (or from a request's first byte) to its whole headers
    keep_alive: int = 5  # seconds an idle kept-alive connection stays open between requests
    max_connections: int = 200  # open at once; a browser tab uses about six, the usual file limit is 1,024
    max_header_bytes: int = 16 * 1024  # a request line and headers larger than this are refused (400)


def protocol_for(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, with ``limits``: pass it as ``uvicorn.Config(http=...)``."""
    return type("LimitedH11Protocol", (_LimitedH11Protocol,), {"limits": limits})


class _LimitedH11Protocol(H11Protocol):
    limits: ConnectionLimits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_since = self.loop.time()
        self._watch_headers()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._waiting_since = self.loop.time()

    def _waiting(self) -> bool:
        """No request is being read or answered: the connection waits for one's headers."""
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _watch_headers(self) -> None:
        if self.conn.their_state is not h11.IDLE:
            self._stop_header_timer()
        elif self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        """Close the connection that has waited longest without a request; this one if all are busy."""
        waiting: list[Any] = [
            c for c in self.connections
            if c is not self and isinstance(c, _LimitedH11Protocol) and c._waiting() and not c.transport.is_closing()
        ]
        oldest = min(waiting, key=lambda c: c._waiting_since, default=self)
        oldest.transport.close()
