"""A run bound for a team store: the local spool it is written to and the shipper that copies it over.

:func:`epochal.start` and :func:`epochal.resume` ask :meth:`TeamStore.of` whether their ``store=``
names a team store (a PostgreSQL URL); the run is then created in the spool, and a
:class:`~epochal.store.shipping.Shipper` ships it. See :mod:`epochal.store.shipping`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from epochal import settings
from epochal.errors import EpochalWarning, StoreError
from epochal.redaction import redacted
from epochal.store import artifacts as files
from epochal.store.locations import is_postgres
from epochal.store.records import RunRecord
from epochal.store.shipping import Shipper
from epochal.store.store import Store
from epochal.store.sync import RunCopy, copy_run


@dataclass
class TeamStore:
    """Where a run goes: the team store's ``location`` (its URL, password included), and where its files go."""

    location: str
    artifacts: str | None  # an fsspec URL or a folder; None: the files stay in the spool's folder
    warned: bool = False  # the team store could not be reached when the run started, and the user was told

    @classmethod
    def of(cls, store: str | Path | Store | None, artifacts: str | None) -> TeamStore | None:
        """The team store ``store`` names, or None for a store on this machine."""
        location = store.location if isinstance(store, Store) else str(settings.default_store_path() if store is None
                                                                            else store)
        if not is_postgres(location):
            if artifacts is not None:
                raise ValueError(
                    f"artifacts={artifacts!r} is for a team (PostgreSQL) store; the store {redacted(location)!r} keeps "
                    "each run's files in its own runs/ folder"
                )
            return None
        where = artifacts if artifacts is not None else settings.artifacts_location()
        if where is not None:
            files.filesystem(where)  # an unknown scheme or a missing driver is an error now, not at the first ship
        return cls(location, where)

    def spool(self) -> Store:
        return Store(settings.spool_path())

    def runs_made(self, project: str) -> int:
        """Runs made in ``project`` so far, as the team store counts them (for the new run's made-up name); the
        spool's count when the team store cannot be reached, with one warning."""
        try:
            with Store(self.location) as team:
                return team.runs_made(project)
        except StoreError as exc:
            self.warned = True
            warnings.warn(
                f"epochal: the team store {redacted(self.location)} cannot be reached ({exc}); the run starts anyway: "
                f"its points wait in the spool '{settings.spool_path()}' and are shipped when the store is back",
                EpochalWarning, stacklevel=4,
            )
            with self.spool() as spool:
                return spool.runs_made(project)

    def files_to(self, record: RunRecord) -> str | None:
        """Where the run's files go: ``artifacts/<id>``; None lets the shipper keep where the team store's
        record already says (see :class:`~epochal.store.shipping.Shipper`)."""
        return files.join(self.artifacts, record.id) if self.artifacts else None

    def shipper(self, spool: Store, record: RunRecord) -> Shipper:
        return Shipper(spool, self.location, record.id, files_to=self.files_to(record), warned=self.warned)

    def fetch(self, ref: str | RunRecord) -> str:
        """Bring a run of the team store into the spool (records, series, checkpoints and files), for
        :func:`epochal.resume` on a machine whose spool does not hold it; its id."""
        with Store(self.location) as team, self.spool() as spool:
            record = team.run(ref)
            copy_run(team, spool, RunCopy.read(spool, record.id), files_to=str(spool.files_root / record.id))
            return record.id
