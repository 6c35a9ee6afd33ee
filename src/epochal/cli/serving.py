"""``epochal ui``: serve the web dashboard over the store."""

from __future__ import annotations

import argparse

from epochal.cli.common import command, error, location, open_store, port


def add_ui(commands: argparse._SubParsersAction) -> None:
    parser = command(commands, "ui", _ui, "serve the web dashboard")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=port, default=8765, help="port to bind (default: 8765; 0 picks a free one)"
    )
    parser.add_argument("--token", metavar="T", help="the access token every API call must carry")
    parser.add_argument("--read-only", action="store_true", help="refuse every change (tags, notes, deletes)")


def _ui(args: argparse.Namespace) -> int:
    """Serve the dashboard over the store: runs table, run pages with charts, comparisons, live
    updates while runs train. It binds to 127.0.0.1 unless --host says otherwise; on any other
    address every API call needs a token (--token, or a new one printed in the URL). Changes
    (tags, notes, deleting runs) need the token or a request from the dashboard's own page.
    The JSON API and its OpenAPI schema are under /api (/api/docs).
    """
    from epochal.server.serve import serve  # FastAPI and uvicorn load only for this command

    if args.token is not None and len(args.token) < 8:
        return error(f"a --token needs at least 8 characters, got {len(args.token)}")
    with open_store(location(args)) as store:
        serve(store, host=args.host, port=args.port, token=args.token, read_only=args.read_only)
    return 0
