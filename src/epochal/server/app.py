"""The dashboard's web app: the JSON API under /api and the built web UI.

Run it with ``epochal ui``, or build it yourself and serve it with any ASGI server:

    >>> app = create_app(Store("epochal-runs"), read_only=True)
    >>> uvicorn.run(app, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import compile_path

import epochal
from epochal.errors import RunNotFoundError, RunStateError, SeriesNotFoundError, StoreError
from epochal.server import dynamics, files, ledger, runs, series, store_info
from epochal.server.guard import RequestGuard
from epochal.server.models import Problem
from epochal.server.security import Access, reject_repeated_parameters
from epochal.store.store import Store

#: Where `npm run build` in web/ puts the UI.
STATIC_DIR = Path(__file__).with_name("static")


def create_app(
    store: Store,
    *,
    token: str | None = None,
    read_only: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    static_dir: Path | None = STATIC_DIR,
) -> FastAPI:
    """The dashboard over ``store``.

    Args:
        token: when set, every API call must carry it (``Authorization: Bearer`` or ``?token=``).
        read_only: refuse every change (tags, notes, deleting runs) with 403.
        allowed_hosts: accepted ``Host`` headers; the CLI sets the loopback names when bound to
            127.0.0.1, so that a web page cannot reach the API through DNS rebinding.
        static_dir: the built web UI; None serves the API only.

    Examples:
        >>> app = create_app(Store("epochal-runs"), token="s3cret")
    """
    app = FastAPI(
        title="epochal",
        version=epochal.__version__,
        description="Runs recorded by epochal: their configs, summaries, series and checkpoints.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.store = store
    app.state.access = Access(token=token, read_only=read_only)
    app.state.histories = series.HistoryCache()

    checked = [Depends(reject_repeated_parameters)]
    unauthorized = {401: {"model": Problem}}
    app.state.api_paths = []
    for module in (store_info, runs, series, files, dynamics, ledger):
        app.include_router(module.router, prefix="/api", dependencies=checked, responses=unauthorized)
        app.state.api_paths += [(compile_path("/api" + r.path)[0], r.methods) for r in module.router.routes]
    # The token, the origin of changes and the body's size are checked before any body is read.
    app.add_middleware(RequestGuard, routes=app.state.api_paths)
    if allowed_hosts is not None:  # added last, so it runs first
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    _add_error_handlers(app)
    _serve_ui(app, static_dir)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON ``{"detail": "..."}`` with a message a person can act on; none is a 500."""

    def problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": _without_store_path(app, message)}, status_code=status, headers=headers)

    # Errors whose message is the whole answer; the status says which kind of problem it is.
    plain = {RunNotFoundError: 404, SeriesNotFoundError: 404, RunStateError: 409, ValueError: 422, TypeError: 422}

    async def plain_problem(request: Request, exc: Exception) -> JSONResponse:
        return problem(next(plain[kind] for kind in type(exc).__mro__ if kind in plain), str(exc))

    for kind in plain:
        app.add_exception_handler(kind, plain_problem)

    # A store that is locked, full or damaged is a fault of the moment or of the store, not of the
    # request: 503, with what happened, and the change (if any) was not made.
    @app.exception_handler(StoreError)
    async def store_fault(request: Request, exc: StoreError) -> JSONResponse:
        return problem(503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(sqlite3.Error)
    async def database_fault(request: Request, exc: sqlite3.Error) -> JSONResponse:
        text = str(exc)
        if "locked" in text or "busy" in text:
            message = ("the store is locked by another process writing to it; nothing was changed: "
                       "try again in a moment")
        else:
            message = f"the store's database could not be read or written ({text}); nothing was changed"
        return problem(503, message, {"Retry-After": "1"})

    @app.exception_handler(OSError)
    async def file_fault(request: Request, exc: OSError) -> JSONResponse:
        return problem(503, f"a file of the store could not be read or written: {exc.strerror or type(exc).__name__}")

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "; ".join(_describe(e) for e in exc.errors()) or "malformed request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return problem(422, "the request body is not valid JSON; send an object such as {\"notes\": \"...\"}")
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path has several routes here.
            headers = {"Allow": ", ".join(_methods_of(app, request))}
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=headers)


def _without_store_path(app: FastAPI, message: str) -> str:
    """``message`` without the store's location: the API speaks of runs, not of this machine's folders."""
    store = app.state.store
    where = store.where
    message = message.replace(f" in the store '{where}'", "")
    return message.replace(where, store.path.name if store.keeps_files else "the store")


def _methods_of(app: FastAPI, request: Request) -> list[str]:
    path = request.url.path
    return sorted({m for pattern, methods in app.state.api_paths for m in methods if pattern.match(path)})


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body"))
    received = error.get("input")
    shown = "" if received is None or isinstance(received, dict) else f" (got {str(received)[:80]!r})"
    return f"{where or 'request'}: {error.get('msg', 'invalid')}{shown}"


def _serve_ui(app: FastAPI, static_dir: Path | None) -> None:
    if static_dir is None:
        return
    if (static_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="ui")
        return

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def not_built() -> str:
        return (
            "<!doctype html><title>epochal</title><p>The web UI is not built. Build it with "
            "<code>make setup</code> (or <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>); "
            "the JSON API is under <a href='/api/docs'>/api</a>.</p>"
        )
