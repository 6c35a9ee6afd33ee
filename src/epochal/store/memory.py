"""An in-memory backend, for tests: ``Store("memory://name")``.

Every ``Store`` opened on the same name in one process shares the same runs, as long as one of
them is still referenced; nothing is written to a database. It answers like the SQLite backend
(same ordering, same summaries, same refusals of records it cannot hold), so the store's tests can
run against both.

Examples:
    >>> store = epochal.Store("memory://scratch")
    >>> run = epochal.start(store="memory://scratch")
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from epochal.errors import RunStateError, StoreError, StoreNotFoundError
from epochal.store import series
from epochal.store.backend import Backend
from epochal.store.query import Column, RunGroup, RunQuery, cell, group_records, matches, sort_key
from epochal.store.records import (
    UPDATABLE,
    Checkpoint,
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


@dataclass
class _Series:
    summary: RunningSummary
    chunks: list[tuple[int, int, bytes, bytes | None]]  # (chunk id, segment, data, overview)


@dataclass
class _State:
    """Everything one memory store holds; a write works on a copy and swaps it in when it is done."""

    runs: dict[str, RunRecord] = field(default_factory=dict)  # in the order they were added
    series: dict[tuple[str, str], _Series] = field(default_factory=dict)
    checkpoints: dict[str, dict[str, Checkpoint]] = field(default_factory=dict)
    last_chunk: int = 0

    def copy(self) -> _State:
        return _State(
            dict(self.runs),
            {k: _Series(s.summary, list(s.chunks)) for k, s in self.series.items()},
            {k: dict(v) for k, v in self.checkpoints.items()},
            self.last_chunk,
        )


class _Shared:
    """The data behind one name, with the temporary folder that holds its runs' files."""

    def __init__(self) -> None:
        self.state = _State()
        self.lock = threading.RLock()
        self.directory = Path(tempfile.mkdtemp(prefix="epochal-memory-"))
        weakref.finalize(self, shutil.rmtree, self.directory, True)


_named: weakref.WeakValueDictionary[str, _Shared] = weakref.WeakValueDictionary()
_named_lock = threading.Lock()


class MemoryBackend(Backend):
    """Runs kept in this process's memory under ``name``.

    ``files_root`` is ``runs/`` in a temporary folder that the store owns: run folders (checkpoints,
    plots) live there, and it is removed when the last ``Store`` on this name is garbage-collected.
    """

    def __init__(self, name: str, *, create: bool = True):
        with _named_lock:
            shared = _named.get(name)
            if shared is None:
                if not create:
                    raise StoreNotFoundError(f"no memory store named {name!r} in this process")
                shared = _named[name] = _Shared()
        self._shared = shared
        self.name = name
        self.directory = shared.directory
        self.files_root = str(shared.directory / "runs")
        Path(self.files_root).mkdir(exist_ok=True)

    def close(self) -> None:
        """Nothing to release: the data stays while a Store on this name is referenced."""

    # -- the one write path --------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        with self._shared.lock:
            state = self._shared.state.copy()
            for record in batch.new_runs:
                self._insert_run(state, record)
            for chunk in batch.chunks:
                _append_chunk(state, chunk)
            for update in batch.run_updates:
                _update_run(state, update)
            for ckpt in batch.new_checkpoints:
                _known_run(state, ckpt.run_id, "a checkpoint")
                _text(ckpt.path, ckpt.metric_key)
                state.checkpoints.setdefault(ckpt.run_id, {})[ckpt.path] = ckpt
            for ckpt in batch.removed_checkpoints:
                state.checkpoints.get(ckpt.run_id, {}).pop(ckpt.path, None)
            for run_id in batch.refresh_summaries:
                _refresh_summaries(state, run_id)
            for run_id in batch.deleted_runs:
                _delete_run(state, run_id)
            self._shared.state = state

    def _insert_run(self, state: _State, r: RunRecord) -> None:
        if not valid_run_id(r.id):
            raise StoreError(f"a run id names a folder: letters, digits, '-', '_' and '.', got {r.id!r:.80}")
        if r.id in state.runs:
            return  # sent again: the record stored first stays
        _text(r.name, r.project, r.host, r.command, r.python, r.description, r.token, *r.tags, *r.config.flat())
        state.runs[r.id] = replace(r, path=str(Path(self.files_root) / r.id), ranks=checked_ranks(r.ranks))

    # -- reads ---------------------------------------------------------------------------------

    def _state(self) -> _State:
        return self._shared.state  # replaced whole by a write, never changed in place

    def _newest_first(self, records: Iterable[RunRecord]) -> list[RunRecord]:
        order = {run_id: index for index, run_id in enumerate(self._state().runs)}
        return sorted(records, key=lambda r: (r.started, order[r.id]), reverse=True)

    def find_runs(
        self,
        *,
        project: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        wanted = list((config or {}).items())
        return self._newest_first(
            r for r in self._state().runs.values()
            if (project is None or r.project == project) and (status is None or r.status == status)
            and (tag is None or tag in r.tags) and all(_config_matches(r, k, v) for k, v in wanted)
        )

    def query_runs(self, query: RunQuery) -> tuple[list[RunRecord], int]:
        state = self._state()
        needed = {c.column.name for c in query.conditions if c.column.kind == "metric"}
        if query.sort.kind == "metric":
            needed.add(query.sort.name)
        summaries: dict[str, dict] = {}
        for (run_id, key), found in state.series.items():
            if key in needed:
                summaries.setdefault(run_id, {})[key] = found.summary.key_summary(key)[0]
        text = _ascii_lower(query.text or "")  # as SQLite's LIKE: ASCII letters match either case
        chosen = [
            r for r in self._newest_first(state.runs.values())
            if (query.project is None or r.project == query.project) and (query.status is None or r.status == query.status)
            and (query.tag is None or query.tag in r.tags)
            and (not text or any(text in _ascii_lower(part) for part in (r.name, r.id, r.project, r.description, *r.tags)))
            and (query.started_before is None or r.started <= query.started_before)
            and (query.started_after is None or r.started > query.started_after)
            and all(matches(r, c, summaries.get(r.id, {})) for c in query.conditions)
        ]
        if query.sort != Column("run", "started"):
            cells = {r.id: cell(r, query.sort, summaries.get(r.id, {})) for r in chosen}
            present = [r for r in chosen if sort_key(cells[r.id])[0] < 2]
            present.sort(key=lambda r: sort_key(cells[r.id]), reverse=query.descending)
            chosen = present + [r for r in chosen if sort_key(cells[r.id])[0] == 2]
        elif not query.descending:
            chosen.reverse()
        end = None if query.limit is None else query.offset + query.limit
        return chosen[query.offset:end], len(chosen)

    def group_runs(self, query: RunQuery, group_by: Sequence[str], metrics: Sequence[Column]) -> list[RunGroup]:
        records, _ = self.query_runs(replace(query, limit=None, offset=0))
        keys = list({c.name for c in metrics})
        summaries = {run_id: {k: s for k, (s, _) in per_key.items()}
                     for run_id, per_key in self.summaries_of_keys(keys, [r.id for r in records]).items()}
        return group_records(records, group_by, metrics, summaries)

    def key_counts(self, project: str | None = None) -> dict[str, int]:
        state = self._state()
        counts: dict[str, int] = {}
        for run_id, key in sorted(state.series):
            if project is None or state.runs[run_id].project == project:
                counts[key] = counts.get(key, 0) + 1
        return counts

    def runs_made(self, project: str) -> int:
        return self.count_runs(project)  # a store for tests: its runs are never many

    def count_runs(self, project: str | None = None) -> int:
        return sum(1 for r in self._state().runs.values() if project is None or r.project == project)

    def config_keys(self) -> list[str]:
        return sorted({key for r in self._state().runs.values() for key in r.config.flat()})

    def overview(self) -> tuple[int, list[str], list[str]]:
        runs = self._state().runs.values()
        return len(runs), sorted({r.project for r in runs}), sorted({t for r in runs for t in r.tags})

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._state().runs.get(run_id)

    def runs_named(self, name: str) -> list[RunRecord]:
        runs = self._state().runs.values()
        by_name = [r for r in runs if r.name == name]
        if by_name:
            return self._newest_first(by_name)
        # As SQLite's LIKE: ASCII letters match either case.
        prefix = _ascii_lower(name)
        return self._newest_first(r for r in runs if _ascii_lower(r.id).startswith(prefix))

    def keys(self, run_id: str) -> list[str]:
        return sorted(key for rid, key in self._state().series if rid == run_id)

    def keys_by_run(self, run_ids: Sequence[str] | None = None) -> dict[str, list[str]]:
        wanted = None if run_ids is None else set(run_ids)
        found: dict[str, list[str]] = {}
        for run_id, key in sorted(self._state().series):
            if wanted is None or run_id in wanted:
                found.setdefault(run_id, []).append(key)
        return found

    def chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        found = self._state().series.get((run_id, key))
        return [] if found is None else [(segment, data) for _, segment, data, _ in found.chunks]

    def chunks_from(self, run_id: str, key: str, first: int) -> list[tuple[int, bytes]]:
        return self.chunks(run_id, key)[first:]

    def chunk_counts(self, run_id: str) -> dict[str, int]:
        return {key: len(found.chunks) for (rid, key), found in self._state().series.items() if rid == run_id}

    def overview_chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        found = self._state().series.get((run_id, key))
        return [] if found is None else [(seg, data if ov is None else ov) for _, seg, data, ov in found.chunks]

    def series_state(self, run_id: str, key: str) -> tuple[int, int] | None:
        found = self._state().series.get((run_id, key))
        return None if found is None else (found.chunks[-1][0], found.summary.count)

    def summaries(self, run_id: str) -> dict[str, tuple[KeySummary, bool]]:
        state = self._state()
        return {key: state.series[run_id, key].summary.key_summary(key) for key in self.keys(run_id)}

    def summaries_of_keys(self, keys: Sequence[str], run_ids: Sequence[str] | None = None,
                          ) -> dict[str, dict[str, tuple[KeySummary, bool]]]:
        wanted, runs = set(keys), None if run_ids is None else set(run_ids)
        out: dict[str, dict[str, tuple[KeySummary, bool]]] = {}
        for (run_id, key), found in self._state().series.items():
            if key in wanted and (runs is None or run_id in runs):
                out.setdefault(run_id, {})[key] = found.summary.key_summary(key)
        return out

    def all_keys(self) -> list[str]:
        return sorted({key for _, key in self._state().series})

    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        return sorted(self._state().checkpoints.get(run_id, {}).values(), key=lambda c: (c.seq, c.step, c.epoch))


def _append_chunk(state: _State, chunk: SeriesChunk) -> None:
    _known_run(state, chunk.run_id, "points")
    _text(chunk.key)
    old = state.series.get((chunk.run_id, chunk.key))
    if not is_new_chunk(chunk, 0 if old is None else len(old.chunks)):
        return
    data, overview = stored_chunk(chunk)
    state.last_chunk += 1
    entry = (state.last_chunk, chunk.segment, data, overview)
    if old is None:
        state.series[chunk.run_id, chunk.key] = _Series(folded(None, chunk), [entry])
    else:
        old.summary = folded(old.summary, chunk)
        old.chunks.append(entry)


def _update_run(state: _State, u: RunUpdate) -> None:
    record = state.runs.get(u.run_id)
    if u.if_segment is not None and (record is None or record.segment != u.if_segment):
        raise RunStateError(f"run {u.run_id} was just resumed by another process")
    if record is None:
        if u.tags is not None:
            raise StoreError(f"no run {u.run_id!r} to tag")
        return  # as an SQL UPDATE of no row
    fields = {name: getattr(u, name) for name in UPDATABLE if getattr(u, name) is not None}
    if u.reopen:
        fields["ended"] = None
    if u.tags is not None:
        fields["tags"] = tuple(u.tags)
    if u.ranks is not None:
        fields["ranks"] = checked_ranks(u.ranks)
    if u.config is not None:
        fields["config"] = u.config
        _text(*u.config.flat())
    _text(*(v for v in fields.values() if isinstance(v, str)), *fields.get("tags", ()))
    state.runs[u.run_id] = replace(record, **fields)


def _refresh_summaries(state: _State, run_id: str) -> None:
    for (rid, key), found in state.series.items():
        if rid == run_id and not found.summary.exact:
            history = series.assemble(key, [(segment, data) for _, segment, data, _ in found.chunks])
            found.summary = refreshed(found.summary, history)


def _delete_run(state: _State, run_id: str) -> None:
    state.runs.pop(run_id, None)
    state.checkpoints.pop(run_id, None)
    for key in [k for k in state.series if k[0] == run_id]:
        del state.series[key]


def _known_run(state: _State, run_id: str, what: str) -> None:
    if run_id not in state.runs:
        raise StoreError(f"{what} of run {run_id!r}, which is not in the store")


def _text(*texts: str | None) -> None:
    """Refuse, as SQLite does, text that is not valid UTF-8 (a lone surrogate)."""
    for text in texts:
        if text is not None:
            text.encode("utf-8")


def _config_matches(record: RunRecord, key: str, value: Any) -> bool:
    """The SQLite backend's rule: numbers compare as numbers, everything else as its JSON text."""
    flat = record.config.flat()
    if key not in flat:
        return False
    stored = flat[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return config_number(stored) == float(value)
    return json.dumps(stored) == json.dumps(value)


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {ord(c): ord(c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
