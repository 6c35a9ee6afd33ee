"""The team backend: runs, configs, series and checkpoint records in a PostgreSQL database.

Opened by a URL (``postgresql://user:password@host:5432/database``), with psycopg 3
(``pip install 'epochal[postgres]'``). The schema is created on first use and migrated by
version, like the embedded one; the statements are :mod:`epochal.store.sql`'s. Each run's files
are where its ``files`` column says (a folder on the machine that trained it, a shared disk, an
``s3://`` prefix): the database holds records only. Training processes do not write here
directly: they write to a local spool that a shipper copies in (:mod:`epochal.store.shipping`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from epochal.errors import StoreError, StoreNotFoundError, StoreUnavailableError
from epochal.redaction import redacted
from epochal.store import sql_query
from epochal.store.sql import SQLBackend

SCHEMA_VERSION = 1
#: Seconds to wait for the server to answer a connection, so that a dashboard or ``start()`` does not hang.
CONNECT_TIMEOUT_S = 5

# Schema 1. Every later version adds its statements to _MIGRATIONS, keyed by the version they bring.
_SCHEMA = """
CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    runs_made BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE runs (
    rowid BIGSERIAL UNIQUE,  -- the order runs were stored in, as SQLite's rowid
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    status TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION,
    heartbeat DOUBLE PRECISION,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    command TEXT NOT NULL,
    git_commit TEXT,
    python TEXT NOT NULL,
    torch TEXT,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    config TEXT NOT NULL DEFAULT '{}',
    steps BIGINT NOT NULL DEFAULT 0,
    epochs BIGINT NOT NULL DEFAULT 0,
    segment BIGINT NOT NULL DEFAULT 0,
    token TEXT NOT NULL DEFAULT '',
    ranks TEXT NOT NULL DEFAULT '[]',
    files TEXT NOT NULL DEFAULT ''  -- where the run's folder of files is: a path on its host or a URL
);
CREATE INDEX runs_by_name ON runs(name, started);
CREATE INDEX runs_by_project ON runs(project_id, started);
CREATE INDEX runs_by_started ON runs(started);
CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE TABLE config (
    rowid BIGSERIAL,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    num DOUBLE PRECISION,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX config_by_key ON config(key, num, run_id);
CREATE TABLE series (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 0,
    last DOUBLE PRECISION,
    last_step BIGINT,
    min DOUBLE PRECISION,
    max DOUBLE PRECISION,
    segment BIGINT NOT NULL DEFAULT 0,
    exact BIGINT NOT NULL DEFAULT 1,
    UNIQUE (run_id, key)
);
CREATE INDEX series_by_key_last ON series(key, last, run_id);
CREATE INDEX series_by_key_min ON series(key, min, run_id);
CREATE INDEX series_by_key_max ON series(key, max, run_id);
CREATE TABLE chunks (
    id BIGSERIAL PRIMARY KEY,
    series_id BIGINT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    segment BIGINT NOT NULL,
    n BIGINT NOT NULL,
    step_min BIGINT NOT NULL,
    step_max BIGINT NOT NULL,
    data BYTEA NOT NULL,
    overview BYTEA
);
CREATE INDEX chunks_by_series ON chunks(series_id, id);
CREATE TABLE checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    step BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    metric_key TEXT,
    metric_value DOUBLE PRECISION,
    mode TEXT,
    kind TEXT NOT NULL DEFAULT 'resume',
    seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, path)
)
"""
_MIGRATIONS: dict[int, str] = {}  # version -> the statements that bring a store of the version before to it
# Taken while the schema is created or migrated, so that eight processes opening a new store at once
# create it once.
_SCHEMA_LOCK = 0x65706F6368616C  # "epochal"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "a PostgreSQL store needs psycopg 3: pip install 'epochal[postgres]'"
        ) from None
    return psycopg


class _Connection:
    """A psycopg connection that takes the shared SQL's ``?`` placeholders and tells a lost server apart."""

    def __init__(self, raw: Any, where: str):
        self.raw = raw
        self.where = where

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        with _unavailable(self.where):
            return self.raw.execute(statement.replace("?", "%s"), tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if rows:
            with _unavailable(self.where), self.raw.cursor() as cursor:
                cursor.executemany(statement.replace("?", "%s"), rows)


@contextmanager
def _unavailable(where: str) -> Iterator[None]:
    """psycopg's errors of a server that cannot be reached (or went away) as a StoreUnavailableError, whose
    message names the store without its password; its own messages never hold the password."""
    psycopg = _psycopg()
    try:
        yield
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"the PostgreSQL store {where} cannot be reached: {_one_line(exc)}") from None
    except psycopg.errors.UndefinedTable as exc:
        raise StoreError(f"the PostgreSQL store {where} has no epochal tables: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class PostgresBackend(SQLBackend):
    """The store in the PostgreSQL database at ``url``."""

    dialect = sql_query.POSTGRES
    stores_files = True

    def __init__(self, url: str, *, create: bool = True, connect_timeout: float = CONNECT_TIMEOUT_S):
        self.url = url
        self.where = redacted(url)
        self.files_root = ""  # no folder of its own: each run's files are where its record says
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple, Any]] = {}
        self._open_schema(create)

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> _Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed or conn.raw.broken:  # a server restarted since: connect again
            psycopg = _psycopg()
            with _unavailable(self.where):
                raw = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout)),
                                      application_name="epochal")
            conn = self._local.conn = _Connection(raw, self.where)
            with self._lock:
                self._all.append(raw)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[_Connection]:
        conn = self._conn()
        with _unavailable(self.where), conn.raw.transaction():
            yield conn

    def _open_schema(self, create: bool) -> None:
        version = self._version()
        if version == SCHEMA_VERSION:
            return
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"the PostgreSQL store {self.where} has schema {version}; this epochal reads up to {SCHEMA_VERSION}: "
                "upgrade epochal"
            )
        if version is None and not create:
            raise StoreNotFoundError(f"no epochal store in the PostgreSQL database {self.where} (it has no epochal tables)")
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            version = self._version()  # another process may have created it meanwhile
            if version is None:
                for statement in _SCHEMA.split(";"):
                    conn.execute(statement)
                conn.execute("CREATE TABLE epochal_schema (version BIGINT NOT NULL)")
                conn.execute("INSERT INTO epochal_schema VALUES (?)", (SCHEMA_VERSION,))
                return
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute("UPDATE epochal_schema SET version = ?", (SCHEMA_VERSION,))

    def _version(self) -> int | None:
        conn = self._conn()
        # Not to_regclass(): its name lookup may answer from this session's cache of names not found, which
        # a table that another process created while we waited for the schema lock does not clear.
        if not conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = 'epochal_schema' "
                            "AND schemaname = ANY (current_schemas(false)))").fetchone()[0]:
            return None
        row = conn.execute("SELECT version FROM epochal_schema").fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            for raw in self._all:
                raw.close()
            self._all.clear()
        self._local = threading.local()
