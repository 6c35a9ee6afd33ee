"""Opening runs: ``start`` a new one in a store, or ``resume`` one that is not running any more.

Examples:
    >>> run = epochal.start(project="mnist", config={"lr": 3e-4})
    >>> run = epochal.resume("swift-otter-3")   # by name (the newest of that name) or id
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from epochal import distributed, names, system
from epochal.store import teams
from epochal.atomic import clean_stale_temporaries
from epochal.checks import check_flush_settings, check_text, to_config
from epochal.distributed import Ranks
from epochal.errors import EpochalError, RunNotFoundError, RunStateError, StoreError
from epochal.logs import logger
from epochal.run import Run
from epochal.store.records import Config, RunRecord, RunUpdate, WriteBatch
from epochal.store.store import Store, checked_tag, storable_text
from epochal.system_metrics import check_interval

__all__ = ["resume", "start"]


def start(
    project: str = "default",
    name: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    description: str = "",
    store: str | Path | Store | None = None,
    flush_interval: float = 0.5,
    flush_points: int = 10_000,
    max_buffered_points: int = 5_000_000,
    system_metrics: float | bool = True,
    job: bool = True,
    artifacts: str | None = None,
) -> Run:
    """Start a new run and return it.

    Args:
        project: group of runs this one belongs to.
        name: human-readable name; a name like 'swift-otter-3' is made up when not given.
            Names need not be unique: where a run is named, the newest of that name is meant.
        config: hyperparameters and settings, a nested dict kept as given (values that are
            not JSON, such as paths, are stored as text).
        tags: labels to filter runs by (each at most 100 characters).
        store: the store directory, a team's PostgreSQL URL (``postgresql://user:password@host/db``)
            or a :class:`Store`; default ``$EPOCHAL_DIR``, else ``./epochal-runs``. A run for a
            PostgreSQL store is written to a local spool (``$EPOCHAL_SPOOL``, else ``~/.cache/epochal/spool``)
            and shipped from there by a background thread, so training never waits on the network: see
            :mod:`epochal.store.shipping`.
        flush_interval: seconds between writes of buffered points.
        flush_points: write sooner once this many points are buffered.
        max_buffered_points: the most points kept in memory while the store refuses writes
            (locked, disk full); past it, new points are dropped (with a warning) until the
            store accepts writes again.
        system_metrics: seconds between samples of the machine's and this process's CPU, memory,
            disk, network and GPUs, recorded under ``system/`` by the writer's thread (see
            :mod:`epochal.system_metrics`); True for every 10 s, False for none.
        job: under DDP, whether this is the job's run (every rank calls ``start``). False gives this
            process a run of its own and talks to no other rank: for code that runs on rank 0 alone,
            such as a framework's logger.
        artifacts: for a PostgreSQL store, where the run's files (checkpoints, dynamics, plots) are
            shipped: any fsspec URL (``s3://bucket/prefix``, ``gs://...``) or a folder on a shared disk;
            default ``$EPOCHAL_ARTIFACTS``, else they stay in the spool's folder on this machine.

    Under DDP (``torchrun``, or an initialized process group of several ranks) every rank calls it and
    gets the job's one run: rank 0 creates it and writes to the store; the others attach to it
    (``run.rank``, ``run.world_size``) and write nothing. The default process group is started from
    torchrun's environment if nobody has yet. Ranks given different names get rank 0's run, with a warning.

    Raises:
        ValueError: a name, tag, project or config that the store cannot hold (text that is not
            valid Unicode, a config nested too deep or referring to itself, ...).
        StoreError: the store directory cannot be created or written.
    """
    check_text("project", project)
    check_flush_settings(flush_interval, flush_points, max_buffered_points)
    if name is not None:
        check_text("name", name)
    # The same rule as the dashboard's tag edit.
    tag_tuple = tuple(dict.fromkeys(checked_tag(t) for t in ([tags] if isinstance(tags, str) else tags)))
    if not isinstance(description, str):
        raise TypeError(f"a run's description is a string, got {type(description).__name__}")
    storable_text(description, "a run's description")
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"a run's config is a dict, got {type(config).__name__} ({config!r:.60})")
    config_data = to_config(config or {})
    settings = {"flush_interval": flush_interval, "flush_points": flush_points,
                "max_buffered_points": max_buffered_points, "system_metrics": check_interval(system_metrics)}
    job = distributed.job() if _joins(job) else None
    team = teams.TeamStore.of(store, artifacts)
    if job is None:
        the_store, record = _create(store, project, name, description, tag_tuple, config_data, team=team)
        return Run(the_store, record, shipper=team and team.shipper(the_store, record), **settings)
    # One run per DDP job: rank 0 creates it, every rank records its host and pid in it.
    asked = job.gather((project, name))
    processes = job.gather((system.host(), os.getpid()))
    the_store, (record,) = _opened_by_leader(
        job, lambda: _create(store, project, name, description, tag_tuple, config_data, tuple(processes), team=team))
    if asked[job.rank] != asked[0] and not job.leader:
        logger.warning(f"rank {job.rank} was given project {asked[job.rank][0]!r}, name {asked[job.rank][1]!r}; "
                       f"rank 0's run {record.name!r} in project {record.project!r} is the job's run")
    shipper = team.shipper(the_store, record) if team and job.leader else None
    return Run(the_store, record, job=job, shipper=shipper, **settings)


def _joins(job: object) -> bool:
    if not isinstance(job, bool):
        raise TypeError(f"job is True (the DDP job's run) or False (this process's own run), got {job!r}")
    return job


def _create(store: str | Path | Store | None, project: str, name: str | None, description: str,
            tags: tuple[str, ...], config_data: Any,
            ranks: tuple[tuple[str, int], ...] = (), *, team: teams.TeamStore | None = None) -> tuple[Store, RunRecord]:
    """Write a new run's record in the store (for a team store, in its spool); the store written to and
    the record as stored."""
    if team is not None:
        the_store, existing = team.spool(), team.runs_made(project)
    else:
        the_store = store if isinstance(store, Store) else Store(store)
        existing = the_store.runs_made(project)
    now = time.time()
    record = RunRecord(
        id=uuid.uuid4().hex[:12], name=name or names.random_name(existing + 1), project=project,
        status="running", started=now, ended=None, heartbeat=now, host=system.host(), pid=os.getpid(),
        command=system.command_line(), git_commit=system.git_commit(), python=system.python_version(),
        torch=system.torch_version(), description=description, tags=tags,
        config=Config(config_data), steps=0, epochs=0, segment=0,
        path=str(the_store.files_root / "pending"), token=system.process_token(), ranks=ranks,
    )
    try:
        the_store.write(WriteBatch(new_runs=(record,)))
        record = the_store.stored_record(record.id)
        Path(record.path).mkdir(parents=True, exist_ok=True)
        probe = Path(record.path) / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except EpochalError:
        raise
    except Exception as exc:  # OSError, sqlite3.Error: the store is not writable
        raise StoreError(f"cannot write to the store in '{the_store.where}': {exc}") from exc
    return the_store, record


def _opened_by_leader(job: Ranks, open_run: Callable[[], tuple]) -> tuple[Store, tuple]:
    """``open_run()`` (a store, the run's record, more) on rank 0, its outcome handed to every rank:
    rank 0 keeps its store, the others get one of their own for the record."""
    kept: list[Store] = []

    def on_leader() -> tuple:
        the_store, *rest = open_run()
        kept.append(the_store)
        return tuple(rest)

    rest = job.leader_does(on_leader)
    return (kept[0] if job.leader else _follower_store(rest[0])), rest


def _follower_store(record: RunRecord) -> Store:
    """Where a rank other than 0 keeps its copy of the job's run: in memory, written nowhere
    (rank 0 writes the run; this rank may be on a machine that does not even see the store)."""
    the_store = Store(f"memory://epochal-rank-{record.id}-{uuid.uuid4().hex[:8]}")
    the_store.write(WriteBatch(new_runs=(dataclasses.replace(record, status="running"),)))
    return the_store


def resume(
    run: str | RunRecord,
    *,
    store: str | Path | Store | None = None,
    flush_interval: float = 0.5,
    flush_points: int = 10_000,
    max_buffered_points: int = 5_000_000,
    system_metrics: float | bool = True,
    job: bool = True,
    artifacts: str | None = None,
) -> Run:
    """Reopen a run that is not running any more; its step and epoch counters continue.

    Points logged after a resume at steps the run had already logged are kept; when
    reading, the newest wins for those steps. Load a checkpoint afterwards
    (``run.load_checkpoint("last", ...)``) to go back to where it was saved. Of several
    processes resuming the same run at once, one wins; the others get a RunStateError. Under DDP
    every rank calls it: rank 0 claims the run, every rank gets it back. ``system_metrics``, ``job``
    and ``artifacts`` are as for :func:`start`. A run of a team (PostgreSQL) store is reopened in the
    local spool, copied there from the team store first when the spool does not hold it.

    Raises:
        RunNotFoundError: no run has that id or name.
        RunStateError: the run is still running in a live process, or another process
            resumed it first.
    """
    check_flush_settings(flush_interval, flush_points, max_buffered_points)
    settings = {"flush_interval": flush_interval, "flush_points": flush_points,
                "max_buffered_points": max_buffered_points, "system_metrics": check_interval(system_metrics)}
    job = distributed.job() if _joins(job) else None
    team = teams.TeamStore.of(store, artifacts)

    def reopen(ranks: tuple[tuple[str, int], ...] = ()) -> tuple[Store, RunRecord, RunRecord, str]:
        if team is None:
            return _reopen(run, store, ranks)
        spool = team.spool()
        try:
            spool.run(run)
        except RunNotFoundError:
            return _reopen(team.fetch(run), spool, ranks)
        return _reopen(run, spool, ranks)

    if job is None:
        the_store, reopened, stored, before = reopen()
        shipper = team and team.shipper(the_store, reopened)
        return Run(the_store, reopened, previous=stored, previous_status=before, shipper=shipper, **settings)
    processes = job.gather((system.host(), os.getpid()))
    the_store, (reopened, stored, before) = _opened_by_leader(job, lambda: reopen(tuple(processes)))
    shipper = team.shipper(the_store, reopened) if team and job.leader else None
    return Run(the_store, reopened, previous=stored, previous_status=before, job=job, shipper=shipper, **settings)


def _reopen(run: str | RunRecord, store: str | Path | Store | None,
            ranks: tuple[tuple[str, int], ...] = ()) -> tuple[Store, RunRecord, RunRecord, str]:
    """Claim a run that is not running: the store, the record reopened, as stored before, and its status then."""
    the_store = store if isinstance(store, Store) else Store(store)
    record = the_store.run(run)
    if record.status == "running":
        raise RunStateError(
            f"run {record.name!r} ({record.id}) is still running as pid {record.pid} on {record.host}; "
            "finish it there first"
        )
    stored = the_store.stored_record(record.id) or record
    # The claim holds only if no other process reopened the run since it was read.
    the_store.write(
        WriteBatch(run_updates=(
            RunUpdate(record.id, status="running", reopen=True, heartbeat=time.time(), pid=os.getpid(),
                      host=system.host(), command=system.command_line(), segment=record.segment + 1,
                      token=system.process_token(), if_segment=record.segment, ranks=ranks),
        ))
    )
    reopened = the_store.run(record.id)
    clean_stale_temporaries(Path(reopened.path))  # files a killed process left (a checkpoint cut short)
    return the_store, reopened, stored, record.status
