"""Store: open a store directory and read runs, series, summaries and checkpoints.

Examples:
    >>> store = epochal.Store("epochal-runs")
    >>> run = store.run("baseline")            # id, id prefix, name or record
    >>> h = store.history(run, "train/loss", max_points=2000)
    >>> h.steps, h.values
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from epochal import settings, system
from epochal.errors import RunNotFoundError, RunStateError, SeriesNotFoundError, StoreError
from epochal.keys import best_mode
from epochal.redaction import redacted
from epochal.store import series
from epochal.store.locations import open_backend
from epochal.store.query import Column, RunGroup, RunQuery, group_records
from epochal.store.records import Checkpoint, History, KeySummary, RunRecord, RunUpdate, WriteBatch

#: A running run whose heartbeat is older than this is shown as crashed (its process is gone or hung).
STALE_AFTER_S = 120.0


class Store:
    """A store of runs in a directory (default: ``$EPOCHAL_DIR``, else ``./epochal-runs``).

    Wherever a run is named, its id, an unambiguous id prefix, its name (the newest run
    of that name) or its record is accepted. Readers work while other processes write.

    Examples:
        >>> store = Store()
        >>> [r.name for r in store.runs(project="mnist")]
        ['baseline']
    """

    def __init__(self, path: str | Path | None = None, *, create: bool = True, busy_timeout: float = 10.0):
        """
        Args:
            path: the store's directory, a ``sqlite:///DIR`` URI, a PostgreSQL URL
                (``postgresql://user:password@host/database``, a team's store), or ``memory://NAME`` for a
                store in this process's memory (tests).
            create: create the store if there is none; with False a missing store is a StoreError.
            busy_timeout: seconds to wait for another process's write before a write fails.
        """
        location = settings.default_store_path() if path is None else path
        # Private: every caller goes through this class's methods, whatever the backend.
        self._backend = open_backend(location, busy_timeout=busy_timeout, create=create)
        #: The location as given: what another process opens the same store by (it may hold a password).
        self.location = str(location)
        #: The location for messages: a directory, or a URL without its password.
        self.where = getattr(self._backend, "where", None) or redacted(self.location)
        directory = getattr(self._backend, "directory", None)
        #: The store's directory (for a PostgreSQL store, its URL without the password).
        self.path = Path(directory if directory is not None else self.where)

    def __repr__(self) -> str:
        return f"Store({self.where!r})"

    @property
    def keeps_files(self) -> bool:
        """Whether the store keeps its runs' files in folders of its own (``runs/<id>``): a PostgreSQL
        store keeps records only, and each run's files are where its record's ``path`` says."""
        return bool(self._backend.files_root)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def files_root(self) -> Path:
        """The folder that holds one folder of files per run (``runs/<id>``)."""
        if not self._backend.files_root:
            raise StoreError(
                f"the store {self.where} keeps records only, no folders of files: each run's files are where its "
                "record's path says; write runs into a local store and copy them over with `epochal sync`"
            )
        return Path(self._backend.files_root)

    def chunk_counts(self, run_id: str) -> dict[str, int]:
        """How many chunks each key of a run (by full id) has stored: what a copy to another store compares."""
        return self._backend.chunk_counts(run_id)

    def chunks_from(self, run_id: str, key: str, first: int) -> list[tuple[int, bytes]]:
        """A key's stored chunks, (segment, encoded points), from the ``first``-th on, in the order written."""
        return self._backend.chunks_from(run_id, key, first)

    def write(self, batch: WriteBatch) -> None:
        """The one write path: apply the whole batch in one transaction, or nothing of it (and raise)."""
        self._backend.write(batch)

    # -- runs ----------------------------------------------------------------------------------

    def runs(
        self,
        project: str | None = None,
        *,
        status: str | None = None,
        tag: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by project, status, tag and config values by dotted key."""
        stored = None if status in (None, "crashed", "running") else status
        found = [_with_live_status(r) for r in self._backend.find_runs(project=project, status=stored, tag=tag, config=config)]
        return [r for r in found if status is None or r.status == status]

    def group_runs(self, query: RunQuery, group_by: Sequence[str], metrics: Sequence[Column] = ()) -> list[RunGroup]:
        """The runs ``query`` selects, grouped by their values of the config keys ``group_by`` (see
        :class:`~epochal.store.query.RunGroup`), largest group first. A live status ('running',
        'crashed') is told by looking at processes, so those groups are made here from the records."""
        if query.status not in ("running", "crashed"):
            return self._backend.group_runs(query, group_by, metrics)
        records, _ = self.query_runs(replace(query, limit=None, offset=0))
        summaries = self.key_summaries({c.name for c in metrics}, [r.id for r in records])
        return group_records(records, group_by, metrics, summaries)

    def query_runs(self, query: RunQuery) -> tuple[list[RunRecord], int]:
        """One page of the runs ``query`` selects (see :mod:`epochal.store.query`), with their status as of
        now, and how many it selects in all. ``query.status`` is the live status: 'running' and
        'crashed' are told apart by looking at each stored 'running' run's process."""
        if query.status not in ("running", "crashed"):
            records, total = self._backend.query_runs(query)
            return [_with_live_status(r) for r in records], total
        every = replace(query, status="running", limit=None, offset=0)
        live = [r for r in map(_with_live_status, self._backend.query_runs(every)[0]) if r.status == query.status]
        end = None if query.limit is None else query.offset + query.limit
        return live[query.offset:end], len(live)

    def runs_made(self, project: str) -> int:
        """How many runs were ever created in ``project``, deleted ones included, in one read: the number
        in the next run's made-up name is one more."""
        return self._backend.runs_made(project)

    def count_runs(self, project: str | None = None) -> int:
        """How many runs the store (or ``project``) holds, without reading them."""
        return self._backend.count_runs(project)

    def key_counts(self, project: str | None = None) -> dict[str, int]:
        """Every key logged by a run (of ``project``), sorted, with how many runs logged it: one read."""
        return self._backend.key_counts(project)

    def config_keys(self) -> list[str]:
        """Every dotted config key of any run, sorted."""
        return self._backend.config_keys()

    def overview(self) -> tuple[int, list[str], list[str]]:
        """How many runs, and the sorted names of their projects and tags."""
        return self._backend.overview()

    def stored_record(self, run_id: str) -> RunRecord | None:
        """A run's record exactly as stored, by its full id: unlike :meth:`run`, a run whose process
        is gone still reads 'running'. None if there is no such run."""
        return self._backend.get_run(run_id)

    def run(self, ref: str | RunRecord | Any) -> RunRecord:
        """The record of one run, with its status as of now."""
        if isinstance(ref, RunRecord) or hasattr(ref, "id") and not isinstance(ref, str):
            ref = ref.id
        if not isinstance(ref, str) or not ref:
            raise RunNotFoundError(f"a run is named by its id, an id prefix, its name or its record, got {ref!r}")
        record = self._backend.get_run(ref)
        if record is None:
            matches = self._backend.runs_named(ref)
            by_name = [r for r in matches if r.name == ref]
            if by_name:
                record = by_name[0]
            elif len(matches) == 1:
                record = matches[0]
            elif len(matches) > 1:
                raise RunNotFoundError(
                    f"{ref!r} is the start of {len(matches)} run ids ({', '.join(r.id for r in matches[:5])}); "
                    "give more of the id"
                )
        if record is None:
            raise RunNotFoundError(f"no run with id or name {ref!r} in the store '{self.where}'")
        return _with_live_status(record)

    def delete(self, ref: str | RunRecord) -> RunRecord:
        """Remove a run's records and its folder of files.

        In a store that keeps records only (PostgreSQL), the records are removed and the files stay where
        the record's path says. A running run is refused, and so is a run whose folder is not ``runs/<id>`` inside the store
        (an id written into the database by someone else, such as ``../../x``): nothing is removed
        then. A run folder that is a symbolic link is unlinked; what it points to stays.
        """
        record = self.run(ref)
        if record.status == "running":
            raise RunStateError(
                f"run {record.name!r} ({record.id}) is still running as pid {record.pid} on {record.host}; "
                "finish it before deleting it"
            )
        if not self.keeps_files:  # its files are on another machine or an object store: the records go
            self._backend.write(WriteBatch(deleted_runs=(record.id,)))
            return record
        folder = Path(record.path)
        runs = self.files_root.resolve()
        # It must be runs/<id> itself. A link there is judged by where it lies, a folder by where it
        # leads (symlinks resolved), so no id and no link makes this remove anything outside.
        try:
            where = folder.parent.resolve() / folder.name if folder.is_symlink() else folder.resolve()
        except (OSError, ValueError):  # a NUL in the id, a loop of links
            where = None
        if where is None or where.parent != runs or where.name != record.id:  # "x/y", ".", "" are no names
            raise StoreError(
                f"refused to delete run {record.id!r}: its folder is not runs/<id> inside the store (the id "
                "names another place); nothing was deleted"
            )
        self._backend.write(WriteBatch(deleted_runs=(record.id,)))
        if folder.is_symlink():
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)
        return record

    # -- series --------------------------------------------------------------------------------

    def keys(self, ref: str | RunRecord) -> list[str]:
        """The keys a run has logged, sorted."""
        return self._backend.keys(self.run(ref).id)

    def keys_of(self, run_ids: Iterable[str]) -> list[str]:
        """Every key that any of these runs (by full id) has logged, sorted."""
        return sorted({key for keys in self._backend.keys_by_run(list(run_ids)).values() for key in keys})

    def keys_by_run(self, run_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """The sorted keys of each of these runs (by full id; every run for None) that has logged any, in one read."""
        return self._backend.keys_by_run(None if run_ids is None else list(run_ids))

    def series_state(self, run_id: str, key: str) -> tuple[int, int] | None:
        """(version, count) of a key's series of a run (by full id), None if it has no such key.

        The version grows whenever the series changes, so it keys caches; the count is of the points
        written (superseded ones included until the run's summaries are refreshed).
        """
        return self._backend.series_state(run_id, key)

    def history(
        self, ref: str | RunRecord, key: str, *, max_points: int | None = None, superseded: bool = False
    ) -> History:
        """A key's series ordered by step.

        Args:
            max_points: downsample to about this many points, keeping each bucket's
                lowest and highest value so spikes stay visible.
            superseded: also return points that a resumed run logged again (by
                default the newest timeline wins for a step that was logged twice).
        """
        record = self.run(ref)
        state = self._backend.series_state(record.id, key) if max_points is not None and not superseded else None
        if state is not None and state[1] > max_points:
            # Long series are drawn from the chunks' overviews: the same extremes, a fraction of the decoding.
            quick = series.from_overviews(key, self._backend.overview_chunks(record.id, key), max_points)
            if quick is not None:
                return quick
        chunks = self._backend.chunks(record.id, key)
        if not chunks:
            known = ", ".join(self._backend.keys(record.id)[:20]) or "none"
            raise SeriesNotFoundError(f"run {record.name!r} ({record.id}) has no key {key!r}; its keys: {known}")
        history = series.assemble(key, chunks, superseded=superseded)
        return history if max_points is None else series.downsample(history, max_points)

    def frame(self, ref: str | RunRecord, keys: Iterable[str] | None = None, *, x: str = "step") -> Any:
        """One run's series as a pandas DataFrame: a row per step, a column per key, and ``epoch``
        and ``time``; ``x`` picks the index ('step', 'epoch' or 'time'). See :mod:`epochal.store.frames`."""
        from epochal.store.frames import run_frame

        return run_frame(self, ref, keys, x)

    def runs_frame(self, project: str | None = None) -> Any:
        """The runs as a pandas DataFrame: a row per run with its record, ``config.*`` columns and each
        key's ``:last`` and ``:best`` value. See :mod:`epochal.store.frames`."""
        from epochal.store.frames import runs_frame

        return runs_frame(self, project)

    def samples(self, ref: str | RunRecord) -> Any:
        """Per sample of a run's ledger (``run.record_samples``), a pandas DataFrame sorted by ``sample``: ``label``,
        ``aum``, ``forgetting_events``, ``first_learned``, ``last_learned``, ``confidence``, ``variability``,
        ``correctness``, ``mislabeled_score`` and ``presentations``. See :mod:`epochal.dynamics.ledger_measures`.

        Raises:
            DynamicsError: the run recorded no ledger.
            ImportError: pandas is not installed (``pip install 'epochal[pandas]'``).
        """
        from epochal.dynamics.ledger import FOLDER
        from epochal.dynamics.ledger_measures import ledger_stats

        return ledger_stats(Path(self.run(ref).path) / FOLDER).frame()

    def summary(self, ref: str | RunRecord) -> dict[str, KeySummary]:
        """Per key: count, last value, min, max and best (by the key's direction)."""
        record = self.run(ref)
        out = {}
        for key, (summary, exact) in self._backend.summaries(record.id).items():
            out[key] = summary if exact else _summarize(self.history(record, key))
        return out

    def key_summaries(self, keys: Sequence[str], run_ids: Iterable[str] | None = None,
                      ) -> dict[str, dict[str, KeySummary]]:
        """For every run (of ``run_ids``, by full id, or any) that logged any of ``keys``: run id -> key ->
        summary, in one read."""
        out: dict[str, dict[str, KeySummary]] = {}
        ids = None if run_ids is None else list(run_ids)
        for run_id, per_key in self._backend.summaries_of_keys(list(keys), ids).items():
            out[run_id] = {
                key: summary if exact else _summarize(self.history(run_id, key))
                for key, (summary, exact) in per_key.items()
            }
        return out

    def all_keys(self) -> list[str]:
        """Every key that any run in the store has logged, sorted."""
        return self._backend.all_keys()

    def update(
        self, ref: str | RunRecord, *, tags: Sequence[str] | None = None, notes: str | None = None
    ) -> RunRecord:
        """Replace a run's tags and/or its notes (its description); works on running runs too."""
        record = self.run(ref)
        if tags is not None:
            tags = tuple(dict.fromkeys(checked_tag(t) for t in tags))
        if notes is not None and not isinstance(notes, str):
            raise TypeError(f"notes must be a string, got {type(notes).__name__}")
        if notes is not None:
            storable_text(notes, "the notes")
        self._backend.write(WriteBatch(run_updates=(RunUpdate(record.id, tags=tags, description=notes),)))
        return self.run(record.id)

    def checkpoints(self, ref: str | RunRecord) -> list[Checkpoint]:
        """A run's checkpoints, oldest first."""
        return self._backend.checkpoints(self.run(ref).id)


MAX_TAG_LENGTH = 100


def checked_tag(tag: object) -> str:
    """The one rule for tags, wherever they are set: a non-empty string of at most 100 characters
    (surrounding spaces removed) that the store can keep."""
    if not isinstance(tag, str) or not tag.strip() or len(tag.strip()) > MAX_TAG_LENGTH:
        shown = f"a string of {len(tag)} characters ({tag[:40]!r}...)" if isinstance(tag, str) and len(tag) > 60 else repr(tag)
        raise ValueError(f"a tag is a non-empty string of at most {MAX_TAG_LENGTH} characters, got {shown}")
    return storable_text(tag.strip(), "a tag")


def storable_text(text: str, what: str, *, nul: bool = False) -> str:
    """The one rule for text the store keeps: UTF-8, so no lone surrogates (which file names decoded
    with 'surrogateescape' hold), and no NUL (which C libraries take for the end) unless ``nul``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} {text[:60]!r} holds {text[exc.start:exc.end]!r} at position {exc.start}, which is not valid "
            "Unicode text (a lone surrogate, as from an undecodable file name); the store holds UTF-8 text only: "
            "decode it properly or replace that character"
        ) from None
    if not nul and "\0" in text:
        raise ValueError(f"{what} {text[:60]!r} holds a NUL character, which the store cannot keep")
    return text


def _summarize(history: History) -> KeySummary:
    values = history.values
    with np.errstate(invalid="ignore"):
        low, high = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))
    return KeySummary(
        history.key, len(values), float(values[-1]), int(history.steps[-1]),
        None if math.isnan(low) else low, None if math.isnan(high) else high, best_mode(history.key),
    )


def _with_live_status(record: RunRecord) -> RunRecord:
    """A 'running' record whose process is gone (or silent for too long) is 'crashed'; so is a DDP
    job with any rank on this host whose process is gone. Ranks elsewhere are judged by the heartbeat."""
    if record.status != "running":
        return record
    silent_for = time.time() - (record.heartbeat or record.started)
    here = system.host()
    if record.host == here:
        # A pid reused by a new process (a restarted container's PID 1) is not the run's process:
        # when it is this very process, the token tells.
        reused = record.pid == os.getpid() and record.token != system.process_token()
        crashed = reused or not system.pid_alive(record.pid) or silent_for > 5 * STALE_AFTER_S
    else:
        crashed = silent_for > STALE_AFTER_S
    crashed = crashed or bool(system.gone_on_this_host(record.ranks))
    if not crashed:
        return record
    return replace(record, status="crashed")
