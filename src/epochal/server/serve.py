"""Serve the dashboard: bind the port, print the URL, run uvicorn until interrupted."""

from __future__ import annotations

import socket
import sys
from typing import TextIO

from epochal.errors import EpochalError
from epochal.server.app import create_app
from epochal.server.connections import ConnectionLimits, protocol_for
from epochal.server.security import LOOPBACK_NAMES, is_loopback, new_token
from epochal.store.store import Store


def serve(
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    read_only: bool = False,
    limits: ConnectionLimits = ConnectionLimits(),
    out: TextIO = sys.stdout,
) -> None:
    """Serve ``store`` at http://host:port/ until Ctrl-C.

    Off the loopback interface a token is required: the one given, else a new one that is
    printed in the URL. On loopback, requests must name a loopback host (no DNS rebinding).
    ``limits`` bounds what a client may hold: time to send headers, idle time, open connections.
    """
    import uvicorn

    loopback = is_loopback(host)
    if not loopback and token is None:
        token = new_token()
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    app = create_app(
        store, token=token, read_only=read_only, allowed_hosts=LOOPBACK_NAMES if loopback else None
    )
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}/" + (f"?token={token}" if token else "")
    print(f"epochal dashboard for {store.where}: {url}", file=out, flush=True)
    if not loopback:
        print("anyone who can reach this address and has the token can read these runs", file=out, flush=True)
    config = uvicorn.Config(
        app, http=protocol_for(limits), timeout_keep_alive=limits.keep_alive,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        log_level="warning", access_log=False, timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say they are TCP,
    # and with it on every reply on a kept-alive connection waits ~40 ms for the client's ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise EpochalError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another --port (0 picks a free one)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
