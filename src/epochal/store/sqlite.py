"""The embedded backend: one SQLite database in WAL mode, a folder of files per run.

WAL lets a dashboard or ``epochal ls`` in another process read while a run
writes; a busy timeout lets two writing processes take turns.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from epochal.errors import EpochalWarning, RunStateError, StoreError, StoreNotFoundError
from epochal.store import series, sqlite_query
from epochal.store.backend import Backend
from epochal.store.query import Column, RunGroup, RunQuery
from epochal.store.records import (
    Checkpoint,
    Config,
    KeySummary,
    RunRecord,
    RunUpdate,
    SeriesChunk,
    WriteBatch,
    checked_ranks,
    config_number,
    valid_run_id,
)
from epochal.store.summaries import RunningSummary, folded, refreshed, stored_chunk

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

# The one mapping between a RunRecord and its row: the record's fields in the runs table's order.
# `path` is not stored (it is runs/<id> in this store), the project is a row of its own table, and
# tags, config and ranks are JSON text.
_STORED = tuple(f.name for f in fields(RunRecord) if f.name != "path")
_COLUMNS = tuple("project_id" if name == "project" else name for name in _STORED)
_RUN_COLUMNS = ", ".join("projects.name" if n == "project" else f"runs.{n}" for n in _STORED)
_RUN_FROM = "runs JOIN projects ON projects.id = runs.project_id"

_UPDATABLE = (
    "steps", "epochs", "heartbeat", "status", "ended", "pid", "host", "command", "segment", "description", "token",
)

#: Run ids per query in an ``IN (...)`` list, well under SQLite's limit on bound parameters.
_IN_BATCH = 500


class SQLiteBackend(Backend):
    """The store in ``directory``: ``epochal.db`` plus ``runs/<run id>/`` folders."""

    def __init__(self, directory: str | Path, *, busy_timeout: float = 10.0, create: bool = True):
        self.directory = Path(directory)
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

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # -- the one write path --------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for record in batch.new_runs:
                self._insert_run(conn, record)
            for chunk in batch.chunks:
                self._append_chunk(conn, chunk)
            for update in batch.run_updates:
                self._update_run(conn, update)
            for ckpt in batch.new_checkpoints:
                conn.execute(
                    "INSERT OR REPLACE INTO checkpoints(run_id, path, step, epoch, size, sha256, created, "
                    "metric_key, metric_value, mode, kind, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (ckpt.run_id, ckpt.path, ckpt.step, ckpt.epoch, ckpt.size, ckpt.sha256, ckpt.created,
                     ckpt.metric_key, ckpt.metric_value, ckpt.mode, ckpt.kind, ckpt.seq),
                )
            for ckpt in batch.removed_checkpoints:
                conn.execute("DELETE FROM checkpoints WHERE run_id = ? AND path = ?", (ckpt.run_id, ckpt.path))
            for run_id in batch.refresh_summaries:
                self._refresh_summaries(conn, run_id)
            for run_id in batch.deleted_runs:
                conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _insert_run(self, conn: sqlite3.Connection, r: RunRecord) -> None:
        if not valid_run_id(r.id):
            raise StoreError(f"a run id names a folder: letters, digits, '-', '_' and '.', got {r.id!r:.80}")
        conn.execute("INSERT OR IGNORE INTO projects(name) VALUES (?)", (r.project,))
        (project_id,) = conn.execute("SELECT id FROM projects WHERE name = ?", (r.project,)).fetchone()
        conn.execute("UPDATE projects SET runs_made = runs_made + 1 WHERE id = ?", (project_id,))
        stored = {name: getattr(r, name) for name in _STORED}
        stored.update(project=project_id, tags=json.dumps(list(r.tags)), config=json.dumps(r.config.to_dict()),
                      ranks=_ranks_text(r.ranks))
        conn.execute(
            f"INSERT INTO runs({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            tuple(stored.values()),
        )
        self._set_tags(conn, r.id, r.tags)
        for key, value in r.config.flat().items():
            num = config_number(value)
            conn.execute(
                "INSERT OR REPLACE INTO config VALUES (?,?,?,?)", (r.id, key, json.dumps(value), num)
            )

    def _set_tags(self, conn: sqlite3.Connection, run_id: str, tags: tuple[str, ...]) -> None:
        conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
        conn.executemany("INSERT OR IGNORE INTO run_tags VALUES (?,?)", [(run_id, t) for t in tags])
        conn.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(list(tags)), run_id))

    def _update_run(self, conn: sqlite3.Connection, u: RunUpdate) -> None:
        fields = {name: getattr(u, name) for name in _UPDATABLE if getattr(u, name) is not None}
        if u.reopen:
            fields["ended"] = None
        if u.ranks is not None:
            fields["ranks"] = _ranks_text(u.ranks)
        if u.if_segment is not None:
            # A claim: only one of several processes resuming the same run at once may win.
            claimed = conn.execute(
                f"UPDATE runs SET {', '.join(f'{name} = ?' for name in fields)} WHERE id = ? AND segment = ?",
                (*fields.values(), u.run_id, u.if_segment),
            ).rowcount
            if not claimed:
                raise RunStateError(f"run {u.run_id} was just resumed by another process")
        elif fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), u.run_id))
        if u.tags is not None:
            self._set_tags(conn, u.run_id, u.tags)
        if u.config is not None:
            self._set_config(conn, u.run_id, u.config)

    def _set_config(self, conn: sqlite3.Connection, run_id: str, config: Config) -> None:
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config.to_dict()), run_id))
        conn.execute("DELETE FROM config WHERE run_id = ?", (run_id,))
        conn.executemany("INSERT OR REPLACE INTO config VALUES (?,?,?,?)",
                         [(run_id, key, json.dumps(value), config_number(value)) for key, value in config.flat().items()])

    def _append_chunk(self, conn: sqlite3.Connection, chunk: SeriesChunk) -> None:
        row = conn.execute(
            "SELECT id, count, last, last_step, min, max, segment, exact FROM series WHERE run_id = ? AND key = ?",
            (chunk.run_id, chunk.key),
        ).fetchone()
        old = None if row is None else RunningSummary(*row[1:7], exact=bool(row[7]))
        new = folded(old, chunk)
        fields = (new.count, new.last, new.last_step, new.min, new.max, new.segment, int(new.exact))
        if row is None:
            cursor = conn.execute(
                "INSERT INTO series(run_id, key, count, last, last_step, min, max, segment, exact) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (chunk.run_id, chunk.key, *fields),
            )
            series_id = cursor.lastrowid
        else:
            series_id = row[0]
            conn.execute(
                "UPDATE series SET count = ?, last = ?, last_step = ?, min = ?, max = ?, segment = ?, exact = ? "
                "WHERE id = ?",
                (*fields, series_id),
            )
        data, overview = stored_chunk(chunk)
        conn.execute(
            "INSERT INTO chunks(series_id, segment, n, step_min, step_max, data, overview) VALUES (?,?,?,?,?,?,?)",
            (series_id, chunk.segment, len(chunk.values), int(chunk.steps.min()), int(chunk.steps.max()), data,
             overview),
        )

    def _refresh_summaries(self, conn: sqlite3.Connection, run_id: str) -> None:
        stale = conn.execute(
            "SELECT id, key, count, last, last_step, min, max, segment FROM series WHERE run_id = ? AND NOT exact",
            (run_id,),
        ).fetchall()
        for series_id, key, *old in stale:
            new = refreshed(RunningSummary(*old, exact=False), series.assemble(key, self._chunks_of(conn, series_id)))
            conn.execute(
                "UPDATE series SET count = ?, last = ?, last_step = ?, min = ?, max = ?, exact = 1 WHERE id = ?",
                (new.count, new.last, new.last_step, new.min, new.max, series_id),
            )

    # -- reads ---------------------------------------------------------------------------------

    def _run_rows(self, where: str = "", params: tuple = (), *,
                  order: str = "ORDER BY started DESC, runs.rowid DESC") -> list[RunRecord]:
        rows = self._conn().execute(f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} {where} {order}", params).fetchall()
        # A row whose id could not name a folder inside the store (a crafted or damaged store) is
        # left out: nothing may read or delete files through it. So is one whose record is damaged.
        records = []
        for row in rows:
            if not valid_run_id(row[0]):
                continue
            try:
                records.append(self._record(row))
            except (ValueError, TypeError) as exc:
                warnings.warn(f"epochal: the record of run {row[0]} in '{self.directory}' is damaged ({exc}); "
                              "it is left out", EpochalWarning, stacklevel=3)
        return records

    def _record(self, row: tuple) -> RunRecord:
        stored = dict(zip(_STORED, row))
        stored.update(tags=_tags(json.loads(stored["tags"])), config=_config(json.loads(stored["config"])),
                      ranks=checked_ranks(json.loads(stored["ranks"])))
        return RunRecord(**stored, path=os.path.join(self.files_root, stored["id"]))

    def find_runs(
        self,
        *,
        project: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if project is not None:
            clauses.append("projects.name = ?")
            params.append(project)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if tag is not None:
            clauses.append("EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = runs.id AND t.tag = ?)")
            params.append(tag)
        for key, value in (config or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                clauses.append("EXISTS (SELECT 1 FROM config c WHERE c.run_id = runs.id AND c.key = ? AND c.num = ?)")
                params += [key, float(value)]
            else:
                clauses.append("EXISTS (SELECT 1 FROM config c WHERE c.run_id = runs.id AND c.key = ? AND c.value = ?)")
                params += [key, json.dumps(value)]
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._run_rows(where, tuple(params))

    def query_runs(self, query: RunQuery) -> tuple[list[RunRecord], int]:
        ids, total = sqlite_query.page(self._conn(), query, _RUN_FROM)
        records: dict[str, RunRecord] = {}
        for part in (ids[i:i + _IN_BATCH] for i in range(0, len(ids), _IN_BATCH)):
            records.update((r.id, r) for r in self._run_rows(f"WHERE runs.id IN ({','.join('?' * len(part))})",
                                                             tuple(part), order=""))
        return [records[run_id] for run_id in ids if run_id in records], total

    def group_runs(self, query: RunQuery, group_by: Sequence[str], metrics: Sequence[Column]) -> list[RunGroup]:
        return sqlite_query.groups(self._conn(), query, _RUN_FROM, group_by, metrics)

    def runs_made(self, project: str) -> int:
        row = self._conn().execute("SELECT runs_made FROM projects WHERE name = ?", (project,)).fetchone()
        return 0 if row is None else row[0]

    def count_runs(self, project: str | None = None) -> int:
        if project is None:
            return self._conn().execute("SELECT count(*) FROM runs").fetchone()[0]
        return self._conn().execute(f"SELECT count(*) FROM {_RUN_FROM} WHERE projects.name = ?", (project,)).fetchone()[0]

    def _fingerprint(self) -> tuple:
        """Changes whenever a run, a key or a config value is added or replaced (or a run deleted): one read."""
        return self._conn().execute(
            "SELECT (SELECT max(rowid) FROM runs), (SELECT max(rowid) FROM series), (SELECT max(rowid) FROM config), "
            "(SELECT count(*) FROM runs)").fetchone()

    def _cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept until the store's fingerprint changes: the runs page asks for every key of
        100,000 runs on each request, and they rarely change between two."""
        fingerprint = self._fingerprint()
        kept = self._kept.get(name)
        if kept is None or kept[0] != fingerprint:
            kept = self._kept[name] = (fingerprint, compute())
        return kept[1]

    def key_counts(self, project: str | None = None) -> dict[str, int]:
        return dict(self._cached(f"key_counts:{project}", lambda: self._key_counts(project)))

    def _key_counts(self, project: str | None) -> dict[str, int]:
        if project is None:
            rows = self._conn().execute("SELECT key, count(*) FROM series GROUP BY key ORDER BY key")
        else:
            rows = self._conn().execute(
                "SELECT series.key, count(*) FROM series JOIN runs ON runs.id = series.run_id JOIN projects ON "
                "projects.id = runs.project_id WHERE projects.name = ? GROUP BY series.key ORDER BY series.key",
                (project,))
        return dict(rows)

    def config_keys(self) -> list[str]:
        return list(self._cached("config_keys", lambda: [
            key for (key,) in self._conn().execute("SELECT DISTINCT key FROM config ORDER BY key")]))

    def overview(self) -> tuple[int, list[str], list[str]]:
        conn = self._conn()
        (count,) = conn.execute("SELECT count(*) FROM runs").fetchone()
        projects = conn.execute(
            "SELECT name FROM projects WHERE EXISTS (SELECT 1 FROM runs WHERE runs.project_id = projects.id) "
            "ORDER BY name"
        )
        tags = conn.execute("SELECT DISTINCT tag FROM run_tags ORDER BY tag")
        return count, [p for (p,) in projects], [t for (t,) in tags]

    def get_run(self, run_id: str) -> RunRecord | None:
        found = self._run_rows("WHERE runs.id = ?", (run_id,))
        return found[0] if found else None

    def runs_named(self, name: str) -> list[RunRecord]:
        by_name = self._run_rows("WHERE runs.name = ?", (name,))
        if by_name:
            return by_name
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._run_rows("WHERE runs.id LIKE ? ESCAPE '\\'", (escaped + "%",))

    def keys(self, run_id: str) -> list[str]:
        rows = self._conn().execute("SELECT key FROM series WHERE run_id = ? ORDER BY key", (run_id,))
        return [key for (key,) in rows]

    def keys_by_run(self, run_ids: Sequence[str] | None = None) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        if run_ids is None:
            rows = self._conn().execute("SELECT run_id, key FROM series ORDER BY run_id, key")
        else:
            ids = list(dict.fromkeys(run_ids))
            rows = itertools.chain.from_iterable(
                self._conn().execute(
                    f"SELECT run_id, key FROM series WHERE run_id IN ({','.join('?' * len(part))}) ORDER BY run_id, key",
                    part,
                )
                for part in (ids[i:i + _IN_BATCH] for i in range(0, len(ids), _IN_BATCH))
            )
        for run_id, key in rows:
            found.setdefault(run_id, []).append(key)
        return found

    def chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        row = self._conn().execute(
            "SELECT id FROM series WHERE run_id = ? AND key = ?", (run_id, key)
        ).fetchone()
        return [] if row is None else self._chunks_of(self._conn(), row[0])

    def series_state(self, run_id: str, key: str) -> tuple[int, int] | None:
        row = self._conn().execute(
            "SELECT (SELECT max(id) FROM chunks WHERE series_id = series.id), count FROM series "
            "WHERE run_id = ? AND key = ?",
            (run_id, key),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def overview_chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        return self._conn().execute(
            "SELECT chunks.segment, coalesce(chunks.overview, chunks.data) FROM series "
            "JOIN chunks ON chunks.series_id = series.id WHERE series.run_id = ? AND series.key = ? "
            "ORDER BY chunks.id",
            (run_id, key),
        ).fetchall()

    @staticmethod
    def _chunks_of(conn: sqlite3.Connection, series_id: int) -> list[tuple[int, bytes]]:
        return conn.execute(
            "SELECT segment, data FROM chunks WHERE series_id = ? ORDER BY id", (series_id,)
        ).fetchall()

    def summaries(self, run_id: str) -> dict[str, tuple[KeySummary, bool]]:
        rows = self._conn().execute(
            "SELECT key, count, last, last_step, min, max, exact FROM series WHERE run_id = ? ORDER BY key",
            (run_id,),
        )
        return {key: _summary_of(key, *rest) for key, *rest in rows}

    def summaries_of_keys(self, keys: Sequence[str], run_ids: Sequence[str] | None = None,
                          ) -> dict[str, dict[str, tuple[KeySummary, bool]]]:
        out: dict[str, dict[str, tuple[KeySummary, bool]]] = {}
        if not keys:
            return out
        # One query for all runs (or a page of them): the runs page asks for a few keys of each at once.
        marks = ",".join("?" * len(keys))
        select = f"SELECT run_id, key, count, last, last_step, min, max, exact FROM series WHERE key IN ({marks})"
        if run_ids is None:
            rows = self._conn().execute(select, tuple(keys))
        else:
            ids = list(dict.fromkeys(run_ids))
            rows = itertools.chain.from_iterable(
                self._conn().execute(f"{select} AND run_id IN ({','.join('?' * len(part))})", (*keys, *part))
                for part in (ids[i:i + _IN_BATCH] for i in range(0, len(ids), _IN_BATCH))
            )
        for run_id, key, *rest in rows:
            out.setdefault(run_id, {})[key] = _summary_of(key, *rest)
        return out

    def all_keys(self) -> list[str]:
        return [key for (key,) in self._conn().execute("SELECT DISTINCT key FROM series ORDER BY key")]

    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        rows = self._conn().execute(
            "SELECT run_id, path, step, epoch, size, sha256, created, metric_key, metric_value, mode, kind, seq "
            "FROM checkpoints WHERE run_id = ? ORDER BY seq, step, epoch",
            (run_id,),
        )
        return [Checkpoint(*row) for row in rows]


def _summary_of(
    key: str, count: int, last: float | None, last_step: int, low: float | None, high: float | None, exact: int
) -> tuple[KeySummary, bool]:
    return RunningSummary(count, last, last_step, low, high, 0, bool(exact)).key_summary(key)


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"its tags are not a list of strings: {value!r:.60}")
    return tuple(value)


def _config(value: Any) -> Config:
    if not isinstance(value, dict):
        raise ValueError(f"its config is not a JSON object: {value!r:.60}")
    return Config(value)


def _ranks_text(ranks: Any) -> str:
    return json.dumps([list(pair) for pair in checked_ranks(ranks)])


def _add_column(conn: sqlite3.Connection, table: str, column: str, declaration: str) -> bool:
    """Add ``column`` to ``table`` unless it is there; whether it was added."""
    if column in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
        return False
    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    return True
