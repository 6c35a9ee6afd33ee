"""Copying runs from one store to another: records, configs, series, checkpoint records and files.

The same copy serves ``epochal sync SRC DST`` (a local store onto the team's server, or a team's runs
down to a laptop) and a training process's shipper, which copies its run from the local spool every
half second (:mod:`epochal.store.shipping`). A copy sends only what the destination lacks: chunks past
the ones it holds, the record's fields that changed, checkpoint records it does not have, files not
yet uploaded. Every chunk carries its place in its series, so a batch sent twice (a copy cut short by
a lost connection, then run again) is stored once.

Examples:
    >>> report = sync(Store("epochal-runs"), Store("postgresql://me@db/epochal"), project="gpt")
    >>> report.runs, report.points
    (12, 480000)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from epochal.store import artifacts, encoding
from epochal.store.records import Checkpoint, RunRecord, RunUpdate, SeriesChunk, WriteBatch
from epochal.store.store import Store

#: Chunks per transaction: a long run is copied in pieces, each of which commits on its own.
CHUNKS_PER_BATCH = 200

# The record's fields a copy brings up to date; the others never change after a run is created.
_UPDATED = ("steps", "epochs", "heartbeat", "status", "pid", "host", "command", "segment", "description", "token",
            "ranks", "tags", "config")


@dataclass
class RunCopy:
    """What the destination holds of one run, as far as copies know: the next copy sends only the rest."""

    run_id: str
    record: RunRecord | None = None  # the record as the destination has it (None: not there yet)
    chunks: dict[str, int] = field(default_factory=dict)  # chunks it holds, per key
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)  # its checkpoint records, by path
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # files uploaded: path -> (size, mtime_ns)
    points: int = 0  # points this copy (and the ones before it on this object) sent
    sent_chunks: int = 0

    @classmethod
    def read(cls, destination: Store, run_id: str) -> RunCopy:
        """What ``destination`` holds of the run, read from it."""
        record = destination.stored_record(run_id)
        if record is None:
            return cls(run_id)
        return cls(run_id, record, destination.chunk_counts(run_id),
                   {c.path: c for c in destination.checkpoints(run_id)})


@dataclass
class SyncReport:
    """What ``sync`` copied."""

    runs: int = 0
    chunks: int = 0
    points: int = 0
    checkpoints: int = 0
    files: int = 0
    skipped: list[str] = field(default_factory=list)  # why a run's files were not copied, one line each


def files_destination(source: Store, destination: Store, record: RunRecord, artifacts_url: str | None) -> str:
    """Where a copy of the run keeps its files: the destination's own folder when it has one, else
    ``artifacts_url/<id>``, else where they already are (a path on the training machine, or a URL)."""
    if destination.keeps_files:
        return str(destination.files_root / record.id)
    if artifacts_url:
        return artifacts.join(artifacts_url, record.id)
    return record.path if not artifacts.is_local(record.path) else os.path.abspath(record.path)


def pending(source: Store, copy: RunCopy) -> int:
    """Chunks of the run in ``source`` that the destination does not hold yet (by ``copy``'s account)."""
    return sum(max(n - copy.chunks.get(key, 0), 0) for key, n in source.chunk_counts(copy.run_id).items())


def copy_run(source: Store, destination: Store, copy: RunCopy, *, files_to: str,
             report: SyncReport | None = None) -> RunCopy:
    """Bring the destination's copy of the run up to the source: its files first (so that no record names
    a file not yet there), then the record, the chunks it lacks, the checkpoint records. ``copy`` (from
    :meth:`RunCopy.read` or an earlier call) is updated as each piece is committed and returned."""
    report = report if report is not None else SyncReport()
    record = source.stored_record(copy.run_id)
    if record is None:
        return copy
    report.files += _copy_files(record, files_to, copy, report)
    first: tuple[RunRecord, ...] = ()
    if copy.record is None:
        first = (replace(record, path=files_to),)
    update = _update(copy.record, record)
    counts = source.chunk_counts(record.id)
    pieces: list[SeriesChunk] = []
    for key in sorted(counts):
        held = copy.chunks.get(key, 0)
        for offset, (segment, blob) in enumerate(source.chunks_from(record.id, key, held)):
            steps, epochs, values, times = encoding.decode(blob)
            pieces.append(SeriesChunk(record.id, key, segment, steps, epochs, values, times, seq=held + offset))
    checkpoints = {c.path: c for c in source.checkpoints(record.id)}
    added = tuple(c for path, c in checkpoints.items() if copy.checkpoints.get(path) != c)
    removed = tuple(c for path, c in copy.checkpoints.items() if path not in checkpoints)
    # The record (new, or its changed fields) goes with the first piece, the checkpoints with the last: a
    # reader sees the points before the run reads as finished.
    batches = [pieces[i:i + CHUNKS_PER_BATCH] for i in range(0, len(pieces), CHUNKS_PER_BATCH)] or [[]]
    for index, part in enumerate(batches):
        last = index == len(batches) - 1
        batch = WriteBatch(
            new_runs=first if index == 0 else (),
            run_updates=(update,) if last and update is not None else (),
            chunks=tuple(part),
            new_checkpoints=added if last else (),
            removed_checkpoints=removed if last else (),
            refresh_summaries=(record.id,) if any(c.segment > 0 for c in part) else (),
        )
        if not batch:
            continue
        destination.write(batch)
        for chunk in part:
            copy.chunks[chunk.key] = chunk.seq + 1
            copy.points += len(chunk.values)
            report.points += len(chunk.values)
        copy.sent_chunks += len(part)
        report.chunks += len(part)
        if index == 0 and first:
            copy.record = first[0]
        if last:
            copy.record = record
            copy.checkpoints = dict(checkpoints)
            report.checkpoints += len(added)
    return copy


def sync(source: Store, destination: Store, *, project: str | None = None, runs: Iterable[str] = (),
         artifacts_url: str | None = None) -> SyncReport:
    """Copy runs (every run, those of ``project``, or the runs named) from ``source`` to ``destination``.
    Idempotent and resumable: what the destination holds is not sent again."""
    report = SyncReport()
    wanted = [source.run(ref) for ref in runs] if runs else source.runs(project)
    for record in wanted:
        if project is not None and record.project != project:
            continue
        copy = RunCopy.read(destination, record.id)
        copy_run(source, destination, copy,
                 files_to=files_destination(source, destination, record, artifacts_url), report=report)
        report.runs += 1
    return report


def _update(held: RunRecord | None, record: RunRecord) -> RunUpdate | None:
    """The fields of ``record`` that differ from the destination's ``held`` copy, as one update."""
    if held is None:  # the new record goes in whole; only a change after it needs an update
        return None
    changed = {name: getattr(record, name) for name in _UPDATED if getattr(record, name) != getattr(held, name)}
    reopen = record.ended is None and held.ended is not None
    if record.ended is not None and record.ended != held.ended:
        changed["ended"] = record.ended
    if not changed and not reopen:
        return None
    if "tags" in changed:
        changed["tags"] = tuple(changed["tags"])
    return RunUpdate(record.id, reopen=reopen, **changed)


def _copy_files(record: RunRecord, files_to: str, copy: RunCopy, report: SyncReport) -> int:
    """Copy the run's folder to ``files_to`` where that is another place; how many files were copied."""
    source = record.path
    same = artifacts.is_local(source) and artifacts.is_local(files_to) and (
        os.path.abspath(source) == os.path.abspath(files_to))
    if same or source == files_to:
        return 0
    if artifacts.is_local(source):
        if not Path(source).is_dir():
            report.skipped.append(f"run {record.id}: its files are not on this machine ({source}); records only")
            return 0
        before = dict(copy.files)
        copy.files = artifacts.upload_folder(Path(source), files_to, copy.files)
        return sum(1 for path, mark in copy.files.items() if before.get(path) != mark)
    if not artifacts.is_local(files_to):
        report.skipped.append(f"run {record.id}: its files stay at {source}")
        return 0
    if not artifacts.exists(source):
        report.skipped.append(f"run {record.id}: its files at {source} are not there; records only")
        return 0
    return artifacts.download_folder(source, Path(files_to))
