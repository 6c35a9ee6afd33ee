"""Who may read and who may change: the access token, same-origin changes, read-only mode.

On 127.0.0.1 (the default) anyone on this machine may read, as with any local file, and changes
need a same-origin request so that another web page open in the browser cannot make them. Bound
to any other address the server needs a token on every API call. The rule is :func:`refusal`;
:mod:`epochal.server.guard` applies it to every request before its body is read.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any, get_origin

from fastapi import HTTPException, Request

#: Host names that reach only this machine.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Access:
    token: str | None = None  # needed on every API call when set
    read_only: bool = False  # refuse every change (tags, notes, deletes)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def refusal(request: Request, *, changing: bool) -> tuple[int, str] | None:
    """Why the request may not go on, as (status, message), or None when it may.

    Decided from the request line and headers only, so that it runs before any body is read
    (see :mod:`epochal.server.guard`). ``changing``: the request would change the store.
    """
    access: Access = request.app.state.access
    has_token = access.token is not None and _has_token(request, access.token)
    if access.token is not None and not has_token:
        return 401, "this dashboard needs its access token: open the URL that `epochal ui` printed"
    if not changing:
        return None
    if access.read_only:
        return 403, "the dashboard was started with --read-only: changes are refused"
    if has_token or _same_origin(request):
        return None
    return 403, "a change needs the access token or a request from the dashboard's own page (same origin)"


def _has_token(request: Request, token: str) -> bool:
    given = request.query_params.get("token")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        given = header[7:].strip()
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def _same_origin(request: Request) -> bool:
    # Browsers send Sec-Fetch-Site on every request they make; older ones at least Origin.
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return origin is not None and host is not None and origin == f"{request.url.scheme}://{host}"


def reject_repeated_parameters(request: Request) -> None:
    """FastAPI dependency: a parameter that takes one value, given several times, is 422 (FastAPI
    would quietly keep the last one)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    many = {f.alias for f in _query_params(dependant) if get_origin(f.field_info.annotation) is list}
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen and name not in many:
            raise HTTPException(422, f"query parameter {name!r} takes one value, and was given several")
        seen.add(name)


def _query_params(dependant: Any) -> list[Any]:
    """The route's own query parameters and those of the dependencies it shares with others (the runs filter)."""
    return [*dependant.query_params, *(p for sub in dependant.dependencies for p in _query_params(sub))]
