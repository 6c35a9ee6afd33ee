"""The embedded backend: one SQLite database in WAL mode, a folder of files per run.

WAL lets a dashboard or ``epochal ls`` in another process read while a run
writes; a busy timeout lets two writing processes take turns. The statements
are :mod:`epochal.store.sql`'s; this module holds the schema and the connections.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from epochal.errors import StoreError, StoreNotFoundError
from epochal.store import sql_query
from epochal.store.sql import SQLBackend

DB_NAME = "epochal.db"
SCHEMA_VERSION = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    runs_made INTEGER NOT NULL DEFAULT 0  -- schema 6: runs ever created in it, for the next run's name
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    heartbeat REAL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    command TEXT NOT NULL,
    git_commit TEXT,
    python TEXT NOT NULL,
    torch TEXT,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    config TEXT NOT NULL DEFAULT '{}',
    steps INTEGER NOT NULL DEFAULT 0,
    epochs INTEGER NOT NULL DEFAULT 0,
    segment INTEGER NOT NULL DEFAULT 0,
    token TEXT NOT NULL DEFAULT '',  -- the writing process's random token: tells a reused pid apart
    ranks TEXT NOT NULL DEFAULT '[]'  -- JSON [[host, pid], ...] of a DDP job's ranks, [] for one process
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs(name, started);
CREATE INDEX IF NOT EXISTS runs_by_project ON runs(project_id, started);
CREATE TABLE IF NOT EXISTS run_tags (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
-- The config flattened to dotted keys, so runs can be filtered by any leaf.
CREATE TABLE IF NOT EXISTS config (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    num REAL,
    PRIMARY KEY (run_id, key)
);
-- One row per logged key, with its running summary.
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    last REAL,
    last_step INTEGER,
    min REAL,
    max REAL,
    segment INTEGER NOT NULL DEFAULT 0,
    exact INTEGER NOT NULL DEFAULT 1,
    UNIQUE (run_id, key)
);
-- Schema 6: the runs table sorts and filters by a key's values across runs, and lists every key.
-- Each a covering index that a sort or a condition on a metric or a config value reads in order.
CREATE INDEX IF NOT EXISTS series_by_key_last ON series(key, last, run_id);
CREATE INDEX IF NOT EXISTS series_by_key_min ON series(key, min, run_id);
CREATE INDEX IF NOT EXISTS series_by_key_max ON series(key, max, run_id);
CREATE INDEX IF NOT EXISTS config_by_key ON config(key, num, run_id);
CREATE INDEX IF NOT EXISTS runs_by_started ON runs(started);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    segment INTEGER NOT NULL,
    n INTEGER NOT NULL,
    step_min INTEGER NOT NULL,
    step_max INTEGER NOT NULL,
    data BLOB NOT NULL,
    overview BLOB  -- NULL: the chunk is small enough to be its own overview
);
CREATE INDEX IF NOT EXISTS chunks_by_series ON chunks(series_id, id);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    metric_key TEXT,
    metric_value REAL,
    mode TEXT,
    kind TEXT NOT NULL DEFAULT 'resume',
    seq INTEGER NOT NULL DEFAULT 0,  -- the run's save sequence: later saves have higher ones
    PRIMARY KEY (run_id, path)
);
"""

class SQLiteBackend(SQLBackend):
    """The store in ``directory``: ``epochal.db`` plus ``runs/<run id>/`` folders."""

    dialect = sql_query.SQLITE

    def __init__(self, directory: str | Path, *, busy_timeout: float = 10.0, create: bool = True):
        self.directory = Path(directory)
        self.where = str(self.directory)
        self.files_root = str(self.directory / "runs")
        self.db_path = self.directory / DB_NAME
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple, Any]] = {}  # name -> (the store's fingerprint, a value computed then)
        if not create and not self.db_path.is_file():
            raise StoreNotFoundError(f"no store in '{self.directory}' (it has no {DB_NAME})")
        try:
            Path(self.files_root).mkdir(parents=True, exist_ok=True)
            self._create_schema(self._conn())
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store in '{self.directory}': {exc}") from exc

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.db_path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store in '{self.directory}' has schema {version}; this epochal reads up to "
                f"{SCHEMA_VERSION}: upgrade epochal"
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version >= 1:  # an older store: add the columns later schemas brought
                _add_column(conn, "chunks", "overview", "BLOB")  # schema 2; older chunks read as their own
                _add_column(conn, "runs", "token", "TEXT NOT NULL DEFAULT ''")  # schema 3
                _add_column(conn, "checkpoints", "seq", "INTEGER NOT NULL DEFAULT 0")  # schema 4
                # Checkpoints recorded before schema 4 get their run's recording order (rowid order).
                conn.execute(
                    "UPDATE checkpoints SET seq = (SELECT count(*) FROM checkpoints AS c WHERE "
                    "c.run_id = checkpoints.run_id AND c.rowid <= checkpoints.rowid) WHERE seq = 0"
                )
                _add_column(conn, "runs", "ranks", "TEXT NOT NULL DEFAULT '[]'")  # schema 5
                if _add_column(conn, "projects", "runs_made", "INTEGER NOT NULL DEFAULT 0"):  # schema 6
                    conn.execute("UPDATE projects SET runs_made = (SELECT count(*) FROM runs WHERE project_id = projects.id)")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def _add_column(conn: sqlite3.Connection, table: str, column: str, declaration: str) -> bool:
    """Add ``column`` to ``table`` unless it is there; whether it was added."""
    if column in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
        return False
    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    return True
