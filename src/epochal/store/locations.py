"""Where a store is, and which backend reads it: a directory, ``sqlite:///DIR``, ``memory://NAME`` or a
PostgreSQL URL. Also the one rule that keeps passwords out of messages, logs and run records.

Examples:
    >>> redacted("postgresql://ana:hunter2@db.example/epochal")
    'postgresql://ana:***@db.example/epochal'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from epochal.errors import StoreError

if TYPE_CHECKING:
    from epochal.store.backend import Backend

#: The URL schemes of a PostgreSQL store (as libpq and SQLAlchemy spell them).
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")

# scheme://user:password@ : the password is whatever lies between the first ':' after '//' and the last '@'
# of the authority (a password may hold '@' and ':').
_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)(?P<password>[^/\s]*)(?=@[^/\s@]*(?:[/\s?#]|$))")
_PASSWORD_OPTION = re.compile(r"(?P<head>\bpassword=)(?P<password>[^&\s]+)")


def redacted(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host``, ``?password=...``)
    replaced by ``***``."""
    text = _PASSWORD.sub(lambda m: m["head"] + "***", text)
    return _PASSWORD_OPTION.sub(lambda m: m["head"] + "***", text)


def scheme(location: str | Path) -> str | None:
    """The URL scheme of a store location, None for a directory."""
    text = str(location)
    return text.partition("://")[0].lower() if "://" in text else None


def is_postgres(location: str | Path | None) -> bool:
    return location is not None and scheme(location) in POSTGRES_SCHEMES


def open_backend(location: str | Path, *, busy_timeout: float = 10.0, create: bool = True) -> Backend:
    """The backend for a store location: a directory, a ``sqlite:///directory`` URI, a PostgreSQL URL
    (``postgresql://user:password@host/database``), or ``memory://name`` (runs kept in this process's
    memory, for tests)."""
    text = str(location)
    kind = scheme(text)
    if kind == "memory":
        from epochal.store.memory import MemoryBackend

        return MemoryBackend(text.partition("://")[2], create=create)
    if kind in POSTGRES_SCHEMES:
        from epochal.store.postgres import PostgresBackend

        return PostgresBackend(text.replace("postgresql+psycopg://", "postgresql://", 1), create=create)
    if kind not in (None, "sqlite"):
        raise StoreError(
            f"store URI scheme {kind!r} in {redacted(text)!r} is not supported; give a directory, 'sqlite:///DIR', "
            "'postgresql://USER:PASSWORD@HOST/DATABASE' or 'memory://NAME'"
        )
    from epochal.store.sqlite import SQLiteBackend

    return SQLiteBackend(text.partition("://")[2] if kind == "sqlite" else text, busy_timeout=busy_timeout, create=create)
