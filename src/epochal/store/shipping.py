"""How a training process's run reaches a team store without ever waiting on the network.

A run started with ``store="postgresql://..."`` is written to a local spool (an embedded store in
``$EPOCHAL_SPOOL``, by default under the user's cache folder) exactly as a local run is: ``log()``
appends to memory, the run's writer commits to the spool's SQLite file. A :class:`Shipper` thread
copies the run from the spool to the team store every half second (:func:`epochal.store.sync.copy_run`):
only what the team store lacks, each chunk at its place so that a batch sent twice is stored once.
When the server is down or slow, training goes on, the spool keeps everything, and shipping resumes when
the server is back; ``finish()`` waits a bounded time for the last batches and says how many are still
spooled; ``epochal sync SPOOL TEAM`` ships them later.

Examples:
    >>> run = epochal.start(project="gpt", store="postgresql://ana@db.example/epochal")
    >>> run.log({"loss": 0.5})      # into the spool; visible on the team's dashboard within a second
    >>> run.finish()                # waits for the last batches (up to 30 s by default)
"""

from __future__ import annotations

import threading
import time
import warnings

from epochal.errors import EpochalWarning
from epochal.logs import logger
from epochal.redaction import redacted
from epochal.store import artifacts
from epochal.store.store import Store
from epochal.store.sync import RunCopy, copy_run, pending

#: Seconds between two copies of a run to the team store while it trains.
SHIP_INTERVAL_S = 0.5
#: The longest wait between two tries while the team store cannot be reached.
MAX_RETRY_S = 10.0
#: The longest ``run.finish()`` waits for the last batches to reach the team store.
SHIP_WAIT_S = 30.0


class Shipper:
    """Copies one run from the spool to the team store on a thread of its own, until :meth:`finish`."""

    def __init__(self, spool: Store, team: str, run_id: str, *, files_to: str | None,
                 interval: float = SHIP_INTERVAL_S, warned: bool = False):
        """
        Args:
            spool: the local store the run is written to.
            team: the team store's location (a PostgreSQL URL); opened on the shipper's thread.
            files_to: where the team store's record says the run's files are (see
                :func:`epochal.store.sync.files_destination`); None: where the team store's record of
                the run already says, when that is an fsspec URL (a resumed run keeps its bucket), else
                the spool's folder on this machine.
            warned: the caller already warned that the team store cannot be reached.
        """
        self.spool = spool
        self.team = team
        self.run_id = run_id
        self.files_to = files_to
        self.interval = interval
        self.where = redacted(team)
        #: Why the last try failed, None while shipping works.
        self.failing: str | None = None
        self._warned = warned
        self._copy: RunCopy | None = None  # None: read what the team store holds before the next copy
        self._store: Store | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = float("inf")  # after finish(): the thread gives up at this time (monotonic)
        self._asked = float("inf")  # when finish() asked for the last copy (monotonic)
        self._failing_at_finish = False
        self._done = threading.Condition()
        self._shipped_up_to = -1.0  # the monotonic time at which the last successful copy started
        self._thread = threading.Thread(target=self._loop, name=f"epochal-shipper-{run_id}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Ship now instead of at the next interval."""
        self._wake.set()

    def _loop(self) -> None:
        retry = self.interval
        while True:
            started = time.monotonic()
            shipped = self._ship()
            if shipped:
                retry = self.interval
                with self._done:
                    self._shipped_up_to = started
                    self._done.notify_all()
            else:
                retry = min(max(retry * 2, 1.0), MAX_RETRY_S)
                with self._done:
                    self._done.notify_all()  # a wait() returns: the points stay in the spool
            # Done once a copy that started after finish() asked has gone through, or the time is up, or the
            # store that failed before finish() asked still fails: waiting would only delay the program's end.
            if self._stopping.is_set() and (self._shipped_up_to >= self._asked or time.monotonic() >= self._deadline
                                            or (not shipped and started >= self._asked and self._failing_at_finish)):
                break
            self._wake.wait(min(self.interval if shipped else retry, max(self._deadline - time.monotonic(), 0)))
            self._wake.clear()
        if self._store is not None:
            self._store.close()
        with self._done:
            self._done.notify_all()  # finish() stops waiting

    def _ship(self) -> bool:
        try:
            if self._store is None:
                self._store = Store(self.team)
            if self._copy is None:
                self._copy = RunCopy.read(self._store, self.run_id)
            if self.files_to is None:
                held = self._copy.record
                remote = held is not None and not artifacts.is_local(held.path)
                self.files_to = held.path if remote else self.spool.run(self.run_id).path
            copy_run(self.spool, self._store, self._copy, files_to=self.files_to)
        except Exception as exc:  # the network, the server, a full bucket: training goes on regardless
            self._copy = None  # whether the last batch arrived is unknown: ask the team store next time
            if self._store is not None:
                self._store.close()
                self._store = None
            self._failed(exc)
            return False
        if self.failing is not None:
            logger.info(f"run {self.run_id}: shipping to the team store {self.where} works again")
            self.failing = None
        return True

    def _failed(self, exc: Exception) -> None:
        self.failing = redacted(" ".join(str(exc).split()) or type(exc).__name__)
        if not self._warned:
            self._warned = True
            message = (f"epochal: run {self.run_id}: the team store {self.where} cannot take its points now "
                       f"({self.failing}); training goes on, the points wait in the spool '{self.spool.where}' "
                       "and are shipped when the store is back")
            try:
                warnings.warn(message, EpochalWarning, stacklevel=2)
            except Exception:  # warnings turned into errors must not stop the thread
                logger.warning(message.removeprefix("epochal: "))

    def wait(self, timeout: float) -> bool:
        """Wait until what the spool holds now has reached the team store, up to ``timeout`` seconds; at
        once False while the team store cannot be reached (the points are safe in the spool)."""
        asked = time.monotonic()
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._shipped_up_to >= asked or self.failing is not None
                                       or not self._thread.is_alive(), timeout=timeout) and self._shipped_up_to >= asked

    def finish(self, timeout: float) -> int:
        """Ship everything written to the spool so far, waiting up to ``timeout`` seconds (one more try only,
        when the team store was failing already); then stop. How many chunks of points (one key's points
        from one flush each) are still only in the spool."""
        self._failing_at_finish = self.failing is not None
        asked = self._asked = time.monotonic()
        self._deadline = asked + timeout
        self._stopping.set()
        self._wake.set()
        with self._done:
            self._done.wait_for(lambda: self._shipped_up_to >= asked or not self._thread.is_alive(),
                                timeout=max(timeout, 0))
        self._thread.join(max(self._deadline - time.monotonic(), 0) + 1.0)
        if self._shipped_up_to >= asked:
            return 0
        copy = self._copy if self._copy is not None else RunCopy(self.run_id)
        return max(pending(self.spool, copy), 1)
