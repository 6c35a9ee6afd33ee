"""Where a store is, and which backend reads it: a directory, ``sqlite:///DIR``, ``memory://NAME`` or a
PostgreSQL URL (shown without its password: :func:`epochal.redaction.redacted`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from epochal.errors import StoreError
from epochal.redaction import redacted

if TYPE_CHECKING:
    from epochal.store.backend import Backend

#: The URL schemes of a PostgreSQL store (as libpq and SQLAlchemy spell them).
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")

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
