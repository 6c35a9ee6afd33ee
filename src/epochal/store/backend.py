"""The interface every store backend implements: one batched write, a few reads.

Callers never speak SQL; they hand a :class:`WriteBatch` to :meth:`Backend.write`
and read typed records back. Three implement it: the embedded SQLite store, PostgreSQL
for teams (both through :mod:`epochal.store.sql`) and an in-memory one for tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from epochal.store.query import Column, RunGroup, RunQuery
from epochal.store.records import Checkpoint, KeySummary, RunRecord, WriteBatch


class Backend(ABC):
    """Storage of runs, their configs, scalar series and checkpoint records."""

    #: Directory that holds one folder of files per run.
    files_root: str

    @abstractmethod
    def write(self, batch: WriteBatch) -> None:
        """Apply the whole batch in one transaction, or nothing of it (and raise)."""

    @abstractmethod
    def find_runs(
        self,
        *,
        project: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter given, newest first. ``status`` is the stored one."""

    @abstractmethod
    def query_runs(self, query: RunQuery) -> tuple[list[RunRecord], int]:
        """One page of the runs ``query`` selects, in its order, and how many it selects in all."""

    @abstractmethod
    def group_runs(self, query: RunQuery, group_by: Sequence[str], metrics: Sequence[Column]) -> list[RunGroup]:
        """The runs ``query`` selects (its sort and page aside) in groups of equal values of the config keys
        ``group_by``, largest first, each with its count and each metric's mean and standard deviation."""

    @abstractmethod
    def runs_made(self, project: str) -> int:
        """How many runs were ever created in ``project`` (deleted ones too): the next one's number, less one."""

    @abstractmethod
    def count_runs(self, project: str | None = None) -> int:
        """How many runs (of ``project``) the store holds, without reading them."""

    @abstractmethod
    def key_counts(self, project: str | None = None) -> dict[str, int]:
        """Every key logged (in ``project``), sorted, with how many runs logged it."""

    @abstractmethod
    def config_keys(self) -> list[str]:
        """Every dotted config key of any run, sorted."""

    @abstractmethod
    def overview(self) -> tuple[int, list[str], list[str]]:
        """How many runs, and the sorted names of their projects and tags."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def runs_named(self, name: str) -> list[RunRecord]:
        """Runs with this name or whose id starts with it, newest first."""

    @abstractmethod
    def keys(self, run_id: str) -> list[str]: ...

    @abstractmethod
    def keys_by_run(self, run_ids: Sequence[str] | None = None) -> dict[str, list[str]]:
        """The sorted keys of each of these runs that has logged any (of every run for None), in one read."""

    @abstractmethod
    def chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        """(segment, blob) of a key's series in the order they were written."""

    @abstractmethod
    def chunks_from(self, run_id: str, key: str, first: int) -> list[tuple[int, bytes]]:
        """Like :meth:`chunks`, from the ``first``-th chunk (0-based) on: what a copy to another store lacks."""

    @abstractmethod
    def chunk_counts(self, run_id: str) -> dict[str, int]:
        """How many chunks each key of the run has stored."""

    @abstractmethod
    def overview_chunks(self, run_id: str, key: str) -> list[tuple[int, bytes]]:
        """Like :meth:`chunks`, with each long chunk replaced by its stored overview (its extremes)."""

    @abstractmethod
    def series_state(self, run_id: str, key: str) -> tuple[int, int] | None:
        """(version, count) of a key's series: the version grows whenever the series changes, the
        count is of the points written (superseded ones included until the run's summaries are
        refreshed); None if the run has no such key."""

    @abstractmethod
    def summaries(self, run_id: str) -> dict[str, tuple[KeySummary, bool]]:
        """Per key its summary and whether it is exact (False after a resume rewound steps)."""

    @abstractmethod
    def summaries_of_keys(self, keys: Sequence[str], run_ids: Sequence[str] | None = None,
                          ) -> dict[str, dict[str, tuple[KeySummary, bool]]]:
        """For every run (of ``run_ids``, or any) that has any of ``keys``: per key its summary and whether it is exact."""

    @abstractmethod
    def all_keys(self) -> list[str]:
        """Every key any run has logged, sorted."""

    @abstractmethod
    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        """A run's checkpoint records, oldest first."""

    @abstractmethod
    def close(self) -> None: ...
