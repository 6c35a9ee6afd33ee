"""The SQL the two relational backends share: every write and read of runs, series and checkpoints.

:class:`SQLBackend` holds the statements; :mod:`epochal.store.sqlite` and :mod:`epochal.store.postgres`
give it a connection, a transaction and their schema, and :class:`~epochal.store.sql_query.Dialect` the
few words their SQL differs in. Statements are written with ``?`` placeholders; a PostgreSQL
connection turns them into its own. Writes may be sent twice (a team store's shipper cannot tell a
batch that failed from one whose answer was lost): a run already stored, a chunk already stored by its
``seq``, a checkpoint already recorded are each stored once.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import fields
from typing import Any

from epochal.errors import EpochalWarning, RunStateError, StoreError
from epochal.store import series, sql_query
from epochal.store.backend import Backend
from epochal.store.query import Column, RunGroup, RunQuery
from epochal.store.records import (
    UPDATABLE,
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
from epochal.store.summaries import RunningSummary, folded, is_new_chunk, refreshed, stored_chunk

# The one mapping between a RunRecord and its row: the record's fields in the runs table's order.
# `path` is not stored by the embedded store (it is runs/<id> there), the project is a row of its own
# table, and tags, config and ranks are JSON text.
STORED = tuple(f.name for f in fields(RunRecord) if f.name != "path")
_COLUMNS = tuple("project_id" if name == "project" else name for name in STORED)
RUN_FROM = "runs JOIN projects ON projects.id = runs.project_id"

_CHECKPOINT_COLUMNS = ("run_id", "path", "step", "epoch", "size", "sha256", "created", "metric_key", "metric_value",
                       "mode", "kind", "seq")

#: Run ids per query in an ``IN (...)`` list, well under SQLite's limit on bound parameters.
_IN_BATCH = 500


class SQLBackend(Backend):
    """Runs, series and checkpoints in SQL tables (see :mod:`epochal.store.sqlite` for the schema)."""

    dialect: sql_query.Dialect
    #: Where the store is, for messages (a directory, or a URL without its password).
    where: str
    #: Whether the runs table has a ``files`` column: where each run's files are (else ``files_root/<id>``).
    stores_files = False

    def _conn(self) -> Any:
        """This thread's connection: ``execute(sql, params)`` gives a cursor; ``executemany`` too."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Any]:
        """A context that yields a connection in a transaction, commits on success and rolls back on error."""
        raise NotImplementedError

    # -- the one write path --------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        with self._transaction() as conn:
            for record in batch.new_runs:
                self._insert_run(conn, record)
            for chunk in batch.chunks:
                self._append_chunk(conn, chunk)
            for update in batch.run_updates:
                self._update_run(conn, update)
            for ckpt in batch.new_checkpoints:
                values = [getattr(ckpt, name) for name in _CHECKPOINT_COLUMNS]
                values[_CHECKPOINT_COLUMNS.index("metric_value")] = _real(ckpt.metric_value)
                conn.execute(
                    f"INSERT INTO checkpoints({', '.join(_CHECKPOINT_COLUMNS)}) VALUES "
                    f"({', '.join('?' * len(_CHECKPOINT_COLUMNS))}) ON CONFLICT (run_id, path) DO UPDATE SET "
                    + ", ".join(f"{name} = excluded.{name}" for name in _CHECKPOINT_COLUMNS[2:]),
                    values,
                )
            for ckpt in batch.removed_checkpoints:
                conn.execute("DELETE FROM checkpoints WHERE run_id = ? AND path = ?", (ckpt.run_id, ckpt.path))
            for run_id in batch.refresh_summaries:
                self._refresh_summaries(conn, run_id)
            for run_id in batch.deleted_runs:
                conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def _insert_run(self, conn: Any, r: RunRecord) -> None:
        if not valid_run_id(r.id):
            raise StoreError(f"a run id names a folder: letters, digits, '-', '_' and '.', got {r.id!r:.80}")
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (r.id,)).fetchone():
            return  # sent again: the record stored first stays
        conn.execute("INSERT INTO projects(name) VALUES (?) ON CONFLICT (name) DO NOTHING", (r.project,))
        (project_id,) = conn.execute("SELECT id FROM projects WHERE name = ?", (r.project,)).fetchone()
        conn.execute("UPDATE projects SET runs_made = runs_made + 1 WHERE id = ?", (project_id,))
        stored = {name: getattr(r, name) for name in STORED}
        stored.update(project=project_id, tags=json.dumps(list(r.tags)), config=json.dumps(r.config.to_dict()),
                      ranks=_ranks_text(r.ranks))
        columns = list(_COLUMNS)
        if self.stores_files:
            columns.append("files")
            stored["files"] = r.path
        conn.execute(
            f"INSERT INTO runs({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            tuple(stored.values()),
        )
        self._set_tags(conn, r.id, r.tags)
        self._insert_config(conn, r.id, r.config)

    def _set_tags(self, conn: Any, run_id: str, tags: tuple[str, ...]) -> None:
        conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
        conn.executemany("INSERT INTO run_tags VALUES (?,?) ON CONFLICT DO NOTHING", [(run_id, t) for t in tags])
        conn.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(list(tags)), run_id))

    def _insert_config(self, conn: Any, run_id: str, config: Config) -> None:
        conn.executemany(
            "INSERT INTO config(run_id, key, value, num) VALUES (?,?,?,?) ON CONFLICT (run_id, key) DO UPDATE SET "
            "value = excluded.value, num = excluded.num",
            [(run_id, key, json.dumps(value), _real(config_number(value))) for key, value in config.flat().items()])

    def _update_run(self, conn: Any, u: RunUpdate) -> None:
        fields = {name: getattr(u, name) for name in UPDATABLE if getattr(u, name) is not None}
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
            conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(u.config.to_dict()), u.run_id))
            conn.execute("DELETE FROM config WHERE run_id = ?", (u.run_id,))
            self._insert_config(conn, u.run_id, u.config)

    def _append_chunk(self, conn: Any, chunk: SeriesChunk) -> None:
        row = conn.execute(
            "SELECT id, count, last, last_step, min, max, segment, exact FROM series WHERE run_id = ? AND key = ?",
            (chunk.run_id, chunk.key),
        ).fetchone()
        if chunk.seq is not None:
            held = 0 if row is None else conn.execute(
                "SELECT count(*) FROM chunks WHERE series_id = ?", (row[0],)).fetchone()[0]
            if not is_new_chunk(chunk, held):
                return
        old = None if row is None else RunningSummary(*row[1:7], exact=bool(row[7]))
        new = folded(old, chunk)
        fields = (new.count, _real(new.last), new.last_step, new.min, new.max, new.segment, int(new.exact))
        if row is None:
            (series_id,) = conn.execute(
                "INSERT INTO series(run_id, key, count, last, last_step, min, max, segment, exact) "
                "VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
                (chunk.run_id, chunk.key, *fields),
            ).fetchone()
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

    def _refresh_summaries(self, conn: Any, run_id: str) -> None:
        stale = conn.execute(
            "SELECT id, key, count, last, last_step, min, max, segment FROM series WHERE run_id = ? AND exact = 0",
            (run_id,),
        ).fetchall()
        for series_id, key, *old in stale:
            new = refreshed(RunningSummary(*old, exact=False), series.assemble(key, self._chunks_of(conn, series_id)))
            conn.execute(
                "UPDATE series SET count = ?, last = ?, last_step = ?, min = ?, max = ?, exact = 1 WHERE id = ?",
                (new.count, _real(new.last), new.last_step, new.min, new.max, series_id),
            )

    # -- reads ---------------------------------------------------------------------------------

    def _run_columns(self) -> str:
        names = ["projects.name" if n == "project" else f"runs.{n}" for n in STORED]
        return ", ".join([*names, "runs.files"] if self.stores_files else names)

    def _run_rows(self, where: str = "", params: tuple = (), *,
                  order: str = "ORDER BY started DESC, runs.rowid DESC") -> list[RunRecord]:
        rows = self._conn().execute(f"SELECT {self._run_columns()} FROM {RUN_FROM} {where} {order}", params).fetchall()
        # A row whose id could not name a folder inside the store (a crafted or damaged store) is
        # left out: nothing may read or delete files through it. So is one whose record is damaged.
        records = []
        for row in rows:
            if not valid_run_id(row[0]):
                continue
            try:
                records.append(self._record(row))
            except (ValueError, TypeError) as exc:
                warnings.warn(f"epochal: the record of run {row[0]} in '{self.where}' is damaged ({exc}); "
                              "it is left out", EpochalWarning, stacklevel=3)
        return records

    def _record(self, row: tuple) -> RunRecord:
        stored = dict(zip(STORED, row))
        stored.update(tags=_tags(json.loads(stored["tags"])), config=_config(json.loads(stored["config"])),
                      ranks=checked_ranks(json.loads(stored["ranks"])))
        path = row[len(STORED)] if self.stores_files else os.path.join(self.files_root, stored["id"])
        return RunRecord(**stored, path=path)

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

    def _in_batches(self, select: str, ids: Sequence[str], before: tuple = ()) -> Iterator[tuple]:
        """Rows of ``select`` (ending in ``IN``) for the ids, a few hundred at a time."""
        ids = list(dict.fromkeys(ids))
        return itertools.chain.from_iterable(
            self._conn().execute(f"{select} ({','.join('?' * len(part))})", (*before, *part)).fetchall()
            for part in (ids[i:i + _IN_BATCH] for i in range(0, len(ids), _IN_BATCH))
        )

    def query_runs(self, query: RunQuery) -> tuple[list[RunRecord], int]:
        ids, total = sql_query.page(self._conn(), query, RUN_FROM, self.dialect)
        records: dict[str, RunRecord] = {}
        for part in (ids[i:i + _IN_BATCH] for i in range(0, len(ids), _IN_BATCH)):
            records.update((r.id, r) for r in self._run_rows(f"WHERE runs.id IN ({','.join('?' * len(part))})",
                                                             tuple(part), order=""))
        return [records[run_id] for run_id in ids if run_id in records], total

    def group_runs(self, query: RunQuery, group_by: Sequence[str], metrics: Sequence[Column]) -> list[RunGroup]:
        return sql_query.groups(self._conn(), query, RUN_FROM, group_by, metrics, self.dialect)

    def runs_made(self, project: str) -> int:
        row = self._conn().execute("SELECT runs_made FROM projects WHERE name = ?", (project,)).fetchone()
        return 0 if row is None else row[0]

    def count_runs(self, project: str | None = None) -> int:
        if project is None:
            return self._conn().execute("SELECT count(*) FROM runs").fetchone()[0]
        return self._conn().execute(f"SELECT count(*) FROM {RUN_FROM} WHERE projects.name = ?", (project,)).fetchone()[0]

    def _fingerprint(self) -> tuple:
        """Changes whenever a run, a key or a config value is added or replaced (or a run deleted): one read."""
        return tuple(self._conn().execute(
            "SELECT (SELECT max(rowid) FROM runs), (SELECT max(id) FROM series), (SELECT max(rowid) FROM config), "
            "(SELECT count(*) FROM runs)").fetchone())

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
        return dict(rows.fetchall())

    def config_keys(self) -> list[str]:
        return list(self._cached("config_keys", lambda: [
            key for (key,) in self._conn().execute("SELECT DISTINCT key FROM config ORDER BY key").fetchall()]))

    def overview(self) -> tuple[int, list[str], list[str]]:
        conn = self._conn()
        (count,) = conn.execute("SELECT count(*) FROM runs").fetchone()
        projects = conn.execute(
            "SELECT name FROM projects WHERE EXISTS (SELECT 1 FROM runs WHERE runs.project_id = projects.id) "
            "ORDER BY name"
        ).fetchall()
        tags = conn.execute("SELECT DISTINCT tag FROM run_tags ORDER BY tag").fetchall()
        return count, [p for (p,) in projects], [t for (t,) in tags]

    def get_run(self, run_id: str) -> RunRecord | None:
        found = self._run_rows("WHERE runs.id = ?", (run_id,))
        return found[0] if found else None

    def runs_named(self, name: str) -> list[RunRecord]:
        by_name = self._run_rows("WHERE runs.name = ?", (name,))
        if by_name:
            return by_name
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._run_rows(f"WHERE runs.id {self.dialect.like} ? ESCAPE '\\'", (escaped + "%",))

    def keys(self, run_id: str) -> list[str]:
        rows = self._conn().execute("SELECT key FROM series WHERE run_id = ? ORDER BY key", (run_id,)).fetchall()
        return [key for (key,) in rows]

    def keys_by_run(self, run_ids: Sequence[str] | None = None) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        if run_ids is None:
            rows = self._conn().execute("SELECT run_id, key FROM series ORDER BY run_id, key").fetchall()
        else:
            rows = sorted(self._in_batches("SELECT run_id, key FROM series WHERE run_id IN", run_ids))
        for run_id, key in rows:
            found.setdefault(run_id, []).append(key)
        return found

    def _series_id(self, run_id: str, key: str) -> int | None:
        row = self._conn().execute("SELECT id FROM series WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
        return None if row is None else row[0]

    def chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        series_id = self._series_id(run_id, key)
        return [] if series_id is None else self._chunks_of(self._conn(), series_id)

    def chunks_from(self, run_id: str, key: str, first: int) -> list[tuple[int, bytes]]:
        series_id = self._series_id(run_id, key)
        if series_id is None:
            return []
        rows = self._conn().execute(
            f"SELECT segment, data FROM chunks WHERE series_id = ? ORDER BY id {self.dialect.no_limit} OFFSET ?",
            (series_id, first)).fetchall()
        return [(segment, bytes(data)) for segment, data in rows]

    def chunk_counts(self, run_id: str) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT series.key, (SELECT count(*) FROM chunks WHERE chunks.series_id = series.id) FROM series "
            "WHERE series.run_id = ?", (run_id,)).fetchall()
        return dict(rows)

    def series_state(self, run_id: str, key: str) -> tuple[int, int] | None:
        row = self._conn().execute(
            "SELECT (SELECT max(id) FROM chunks WHERE series_id = series.id), count FROM series "
            "WHERE run_id = ? AND key = ?",
            (run_id, key),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def overview_chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        rows = self._conn().execute(
            "SELECT chunks.segment, coalesce(chunks.overview, chunks.data) FROM series "
            "JOIN chunks ON chunks.series_id = series.id WHERE series.run_id = ? AND series.key = ? "
            "ORDER BY chunks.id",
            (run_id, key),
        ).fetchall()
        return [(segment, bytes(data)) for segment, data in rows]

    @staticmethod
    def _chunks_of(conn: Any, series_id: int) -> list[tuple[int, bytes]]:
        rows = conn.execute("SELECT segment, data FROM chunks WHERE series_id = ? ORDER BY id", (series_id,)).fetchall()
        return [(segment, bytes(data)) for segment, data in rows]

    def summaries(self, run_id: str) -> dict[str, tuple[KeySummary, bool]]:
        rows = self._conn().execute(
            "SELECT key, count, last, last_step, min, max, exact FROM series WHERE run_id = ? ORDER BY key",
            (run_id,),
        ).fetchall()
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
            rows = self._conn().execute(select, tuple(keys)).fetchall()
        else:
            rows = self._in_batches(f"{select} AND run_id IN", run_ids, tuple(keys))
        for run_id, key, *rest in rows:
            out.setdefault(run_id, {})[key] = _summary_of(key, *rest)
        return out

    def all_keys(self) -> list[str]:
        return [key for (key,) in self._conn().execute("SELECT DISTINCT key FROM series ORDER BY key").fetchall()]

    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        rows = self._conn().execute(
            f"SELECT {', '.join(_CHECKPOINT_COLUMNS)} FROM checkpoints WHERE run_id = ? ORDER BY seq, step, epoch",
            (run_id,),
        ).fetchall()
        return [Checkpoint(*row) for row in rows]


def _real(x: float | None) -> float | None:
    """NaN as NULL, as SQLite stores it in a REAL column, so both databases answer alike."""
    return None if x is None or math.isnan(x) else x


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
