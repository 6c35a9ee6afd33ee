"""The background writer: buffered log records in, one transaction per flush out.

The training thread only appends records ``(step, epoch, time, keys, values)``
(or :class:`Deferred` ones) to a deque (``Writer.queue``). This thread wakes
every ``interval`` seconds, or sooner when the caller counted ``max_points`` new
points, turns everything queued into a :class:`WriteBatch` and hands it to the
store's one write path, :meth:`Store.write`.

Faults are of two kinds. A store that refuses writes for a while (disk full,
database locked) is retried at the next wake-up with everything still buffered;
the caller is never interrupted, and is told (warnings) as the buffer fills. A
record the store can never hold is set apart: the batch is written piece by piece,
the piece that fails is dropped with a warning naming it, and every other record is
kept. Either way the threads waiting in ``flush()`` are released.

A failure is *persistent* when waiting will not mend it: the store has refused writes for
``PERSISTENT_AFTER_S`` while the buffer is full (new points are being dropped), a store that fails
in some other way than a refusal (a damaged database) has done so for as long, or a round of
writing hit an unexpected error (a bug). The writer keeps it and :meth:`Writer.check` raises it, as
a StoreError naming the cause, once on the caller's thread: ``Run.log()`` and ``flush()`` call it
(TensorBoard's ``_AsyncWriter`` does the same). Nothing buffered is given up because of it; the
writer keeps retrying, and ``close()`` (``Run.finish()``) still writes what it can.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

from epochal.errors import EpochalWarning, StoreError
from epochal.logs import logger
from epochal.store.records import Checkpoint, RunUpdate, SeriesChunk, WriteBatch

if TYPE_CHECKING:
    from epochal.store.store import Store
    from epochal.system_metrics import SystemSampler

#: log() waits for the writer (hand_over) once this many flushes' worth of points (flush_points each) are
#: outstanding: big enough for the writer's batches to stay efficient, small enough to bound what a
#: crash loses when logging outruns the store (1,000,000 points by default, half a second at 2M/s).
PACE_FLUSHES = 100
#: Even an idle run writes a heartbeat this often, so readers can tell it is alive.
HEARTBEAT_S = 5.0
#: A write that has waited this long is waiting on the store (a lock), not just writing a lot.
STALLED_AFTER_S = 0.5
#: A failing store becomes a persistent failure, raised on the caller's thread, after this long
#: (a refusal only while the buffer is full, so while points are being dropped).
PERSISTENT_AFTER_S = 60.0


@dataclass(frozen=True, eq=False)
class Deferred:
    """A log record whose values include device tensors, converted on the writer thread.

    ``values`` holds NaN placeholders at ``tensor_keys``; ``stacked`` holds those values
    (one tensor, copied on the device when logged, so later in-place changes don't leak in).
    """

    step: int
    epoch: int
    time: float
    keys: tuple[str, ...]
    values: tuple[float, ...]
    tensor_keys: tuple[str, ...]
    stacked: object  # torch.Tensor


@dataclass(eq=False)
class _Marker:
    """Put in the queue by flush(): set once everything queued before it is written."""

    done: threading.Event = field(default_factory=threading.Event)


class Writer:
    """The thread that writes one run's buffered points and updates to the store."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        segment: int,
        counters: Callable[[], tuple[int, int]],
        *,
        interval: float = 0.5,
        max_points: int = 10_000,
        max_buffered: int = 5_000_000,
        on_error: Callable[[], None] | None = None,
        sampler: SystemSampler | None = None,
    ):
        """
        Args:
            on_error: called on the writer thread when it keeps a persistent failure, so that the
                caller can look (call :meth:`check`) sooner than it otherwise would.
            sampler: system metrics to record, on this thread, at the run's counters when it is due.
        """
        self.store, self.run_id, self.segment = store, run_id, segment
        # When to write (every `interval` s, or at `max_points` new points) and how much to hold meanwhile.
        self.interval, self.max_points, self.max_buffered = interval, max_points, max_buffered
        self.queue: deque = deque()
        self.wake = threading.Event()
        #: Set after every round of writing, so a caller waiting for room can look again.
        self.progress = threading.Event()
        #: Points written to the store or given up on (dropped); only this thread adds to it.
        self.done_points = 0
        #: Points the caller has handed over so far (see :meth:`hand_over`).
        self.handed = 0
        # hand_over() waits for this thread once this many points are outstanding.
        self.pace_points = min(PACE_FLUSHES * max_points, max_buffered)
        #: Points the store could never hold, and why (the first few reasons).
        self.dropped_points = 0
        self.drop_reasons: list[str] = []
        self._counters = counters
        self._unwritten: list[WriteBatch] = []
        self._waiting: list[_Marker] = []
        self._failures = 0
        self._failing_since = 0.0
        self._writing_since: float | None = None
        self._fill_warned = 0.0
        self._last_heartbeat = 0.0
        self._stop = False
        self._persistent_after = PERSISTENT_AFTER_S
        self._error: StoreError | None = None  # the persistent failure check() raises next, once
        self._reported = False  # whether the store's current spell of failing was kept as persistent
        self._on_error = on_error
        self._sampler = sampler
        self._thread = threading.Thread(target=self._loop, name=f"epochal-writer-{run_id}", daemon=True)
        self._thread.start()

    # -- caller side ---------------------------------------------------------------------------

    def submit(self, *items: object) -> None:
        """Queue updates (RunUpdate, Checkpoint records, ...) behind the points logged so far."""
        self.queue.extend(items)
        self.wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is in the store; False if it was not by ``timeout``.

        Raises:
            StoreError: the writer hit a persistent failure (see :meth:`check`), before or while waiting.
        """
        self.check()
        done = self._wait_written(timeout)
        self.check()
        return done

    def check(self) -> None:
        """Raise the persistent failure the writer thread hit, once, on the caller's thread.

        Raises:
            StoreError: naming the cause. Buffered points are kept and retried all the same.
        """
        error = self._error
        if error is not None:
            self._error = None
            raise error

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the thread. False if points remain unwritten after ``timeout``.

        A persistent failure is not raised here: closing still writes what it can.
        """
        written = self._wait_written(timeout)
        self._stop = True
        self.wake.set()
        self._thread.join(None if timeout is None else max(timeout, 1.0))
        return written

    def hand_over(self, points: int) -> bool:
        """Count ``points`` more queued by the caller and wake the thread. When logging outruns a store that
        keeps up, wait for it: this bounds both the memory and what a crash can lose. True when the buffer
        is full while the store refuses writes (locked, full): the caller drops new points then.

        Raises:
            StoreError: a persistent failure, as :meth:`check`.
        """
        self.handed += points
        self.wake.set()
        self.check()
        if self.handed - self.done_points < self.pace_points:
            return False
        if self.failing:  # keep buffering up to the bound
            return self.handed - self.done_points >= self.max_buffered
        while self.handed - self.done_points > self.pace_points // 2 and not self.failing and self.alive:
            self.progress.clear()
            self.wake.set()
            self.progress.wait(0.1)
        return False

    def has_room(self) -> bool:
        """After :meth:`hand_over` said full: whether the store took enough of the buffer to take points again."""
        return self.handed - self.done_points <= self.max_buffered // 2

    def _wait_written(self, timeout: float | None) -> bool:
        if not self._thread.is_alive():
            return not self.queue and not self._unwritten
        marker = _Marker()
        self.queue.append(marker)
        self.wake.set()
        return marker.done.wait(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def failing(self) -> bool:
        """Whether the store refused the last write (locked, full), or the write under way has waited
        on it for STALLED_AFTER_S (another process holds the lock): points stay buffered meanwhile."""
        started = self._writing_since
        return self._failures > 0 or (started is not None and time.monotonic() - started >= STALLED_AFTER_S)

    @property
    def unwritten_points(self) -> int:
        queued = sum(len(r[3]) for r in list(self.queue) if type(r) is tuple)
        return queued + sum(_points(b) for b in self._unwritten)

    # -- writer thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            stopping = self._stop
            try:
                if self._sampler is not None and not stopping and self._sampler.due(time.monotonic()):
                    self._queue_system_metrics()
                self._write_pending()
            except Exception as exc:  # a bug: never let the thread die, and never leave a flush() waiting
                _warn(f"epochal: unexpected error in the store writer of run {self.run_id}: {exc!r}")
                self._keep_error(exc, f"the store writer failed unexpectedly ({exc!r})")
                self._release_waiters()
            self.progress.set()
            if stopping and not self._unwritten:
                return
            if stopping:
                time.sleep(self.interval)

    def _queue_system_metrics(self) -> None:
        values = self._sampler.sample()
        if values:
            steps, epochs = self._counters()
            self.queue.append((steps, epochs, time.time(), tuple(values), tuple(values.values())))

    def _write_pending(self) -> None:
        items = [self.queue.popleft() for _ in range(len(self.queue))]
        try:
            batch, markers = self._batch(items)
        except Exception:  # some record cannot be converted: convert them one by one
            batch, markers = self._batch_apart(items)
        self._waiting += markers
        if batch:
            self._unwritten.append(batch)  # buffered first, so that nothing below can lose it
        now = time.time()
        if self._unwritten or now - self._last_heartbeat >= HEARTBEAT_S:
            steps, epochs = self._counters()
            update = RunUpdate(self.run_id, steps=steps, epochs=epochs, heartbeat=now)
            self._unwritten.append(WriteBatch(run_updates=(update,)))
        if self._unwritten:
            pending = _merge(self._unwritten)
            self._unwritten = []
            self._writing_since = time.monotonic()
            try:
                self.store.write(pending)
            except Exception as exc:
                self._writing_since = None
                if _refusal(exc):
                    self._keep_for_retry(pending, exc)
                    return
                # The store refuses something in the batch for good: write its pieces one by one.
                self._write_apart(pending)
                if self._unwritten:
                    return
            else:
                self._writing_since = None
                self.done_points += _points(pending)
            if self._failures:
                _warn(
                    f"epochal: the store accepted run {self.run_id}'s buffered points after "
                    f"{self._failures} failed attempts; nothing was lost"
                )
            self._failures = 0
            self._fill_warned = 0.0
            self._reported = False  # a later spell of failing is raised again
            self._last_heartbeat = now
        self._release_waiters()

    def _release_waiters(self) -> None:
        for marker in self._waiting:
            marker.done.set()
        self._waiting = []

    def _keep_for_retry(self, pending: WriteBatch, exc: BaseException) -> None:
        self._unwritten = [pending]
        self._failures += 1
        buffered = _points(pending)
        if self._failures == 1:
            self._failing_since = time.time()
            _warn(
                f"epochal: could not write {buffered} points of run {self.run_id} to the store ({exc}); "
                f"they stay buffered and are retried every {self.interval} s"
            )
        # Warn again as the buffer fills: at a quarter, half, three quarters and full.
        fill = min(buffered / self.max_buffered, 1.0)
        level = max((f for f in (0.25, 0.5, 0.75, 1.0) if fill >= f), default=0.0)
        if level > self._fill_warned:
            self._fill_warned = level
            then = "new points are dropped until it accepts writes again" if level >= 1.0 else (
                "when it is full, new points are dropped until the store accepts writes again")
            _warn(
                f"epochal: the store has refused writes of run {self.run_id} for "
                f"{time.time() - self._failing_since:.0f} s ({exc}); {buffered:,} points are buffered, "
                f"{level:.0%} of max_buffered_points ({self.max_buffered:,}); {then}"
            )
        lasted = time.time() - self._failing_since
        if lasted >= self._persistent_after and (fill >= 1.0 or not _refusal(exc)) and not self._reported:
            self._reported = True
            why = "the buffer is full, so new points are being dropped" if fill >= 1.0 else "retrying has not helped"
            self._keep_error(exc, f"the store has refused its writes for {lasted:.0f} s ({exc}) and {why}")

    def _keep_error(self, exc: BaseException, cause: str) -> None:
        """Keep a persistent failure for :meth:`check` to raise on the caller's thread."""
        error = StoreError(
            f"run {self.run_id}: {cause}; the {self.unwritten_points:,} points buffered are kept and retried, "
            "and finishing the run still writes them if the store recovers"
        )
        error.__cause__ = exc
        self._error = error
        if self._on_error is not None:
            self._on_error()

    def _write_apart(self, batch: WriteBatch) -> None:
        """Write each piece of ``batch`` in a transaction of its own; drop (and name) what the store
        can never hold, keep what it refuses for now for the next try.

        A piece counts as one the store can never hold only if other pieces were written: when
        every piece fails (a damaged or closed database), the fault is the store's, and all of
        them are kept and retried.
        """
        pieces = list(_pieces(batch))
        failed: list[tuple[WriteBatch, BaseException]] = []
        written = 0
        for index, piece in enumerate(pieces):
            try:
                self.store.write(piece)
            except Exception as exc:
                if _refusal(exc):
                    self._keep_for_retry(_merge([p for p, _ in failed] + pieces[index:]), exc)
                    return
                failed.append((piece, exc))
            else:
                written += 1
                self.done_points += _points(piece)
        if failed and not written:
            self._keep_for_retry(_merge([p for p, _ in failed]), failed[0][1])
            return
        for piece, exc in failed:
            self._drop(piece, exc)

    def _drop(self, piece: WriteBatch, exc: BaseException) -> None:
        what = _describe(piece)
        self._count_drop(_points(piece), f"{what}: {exc!r}")
        _warn(f"epochal: the store cannot hold {what} of run {self.run_id} ({exc!r}); it is dropped, "
              "everything else is kept")

    def _count_drop(self, lost: int, reason: str) -> None:
        """``lost`` points given up for good: counted as done, since nobody must wait for them."""
        self.dropped_points += lost
        self.done_points += lost
        if len(self.drop_reasons) < 5:
            self.drop_reasons.append(reason)

    def _batch_apart(self, items: list) -> tuple[WriteBatch, list[_Marker]]:
        """``_batch`` for items among which some cannot be converted: each is tried alone first."""
        good = []
        for item in items:
            if type(item) is tuple or isinstance(item, Deferred):
                try:
                    self._batch([item])
                except Exception as exc:
                    step, keys = (item.step, item.keys) if isinstance(item, Deferred) else (item[0], item[3])
                    self._count_drop(len(keys), f"a record at step {step}: {exc!r}")
                    _warn(f"epochal: a logged record of run {self.run_id} cannot be stored ({exc!r}); it is "
                          "dropped, everything else is kept")
                    continue
            good.append(item)
        return self._batch(good)

    def _batch(self, items: list) -> tuple[WriteBatch, list[_Marker]]:
        records, deferred, updates, new_ckpts, removed_ckpts, refresh, markers = [], [], [], [], [], [], []
        for item in items:
            if type(item) is tuple:
                records.append(item)
            elif isinstance(item, Deferred):
                records.append(item)
                deferred.append(item)
            elif isinstance(item, _Marker):
                markers.append(item)
            elif isinstance(item, RunUpdate):
                updates.append(item)
            elif isinstance(item, _Removal):
                removed_ckpts.append(item.checkpoint)
            elif isinstance(item, Checkpoint):
                new_ckpts.append(item)
            elif isinstance(item, _Refresh):
                refresh.append(self.run_id)
        if deferred:
            records = _resolve_tensors(records, deferred)
        batch = WriteBatch(
            run_updates=tuple(updates),
            chunks=tuple(self._chunks(records)),
            new_checkpoints=tuple(new_ckpts),
            removed_checkpoints=tuple(removed_ckpts),
            refresh_summaries=tuple(refresh),
        )
        return batch, markers

    def _chunks(self, records: list[tuple]) -> list[SeriesChunk]:
        """Columns per key. Records with the same keys are converted together, which is fast."""
        first_keys = records[0][3] if records else ()
        if all(r[3] == first_keys for r in records):  # the usual case: one set of keys throughout
            groups: dict = {first_keys: range(len(records))}
        else:
            groups = {}
            for index, record in enumerate(records):
                groups.setdefault(record[3], []).append(index)
        parts: dict[str, list[tuple]] = {}
        for keys, indexes in groups.items():
            n, width = len(indexes), len(keys)
            group = records if isinstance(indexes, range) else [records[i] for i in indexes]
            steps = np.fromiter(map(itemgetter(0), group), np.int64, n)
            epochs = np.fromiter(map(itemgetter(1), group), np.int64, n)
            times = np.rint(np.fromiter(map(itemgetter(2), group), np.float64, n) * 1e6).astype(np.int64)
            values = np.fromiter(
                itertools.chain.from_iterable(map(itemgetter(4), group)), np.float64, n * width
            ).reshape(n, width)
            order = np.asarray(indexes, dtype=np.int64)
            for column, key in enumerate(keys):
                parts.setdefault(key, []).append((order, steps, epochs, values[:, column], times))
        chunks = []
        for key, pieces in parts.items():
            if len(pieces) == 1:
                _, steps, epochs, values, times = pieces[0]
                values = np.ascontiguousarray(values)
            else:  # the key was logged together with different keys: restore logging order
                order, steps, epochs, values, times = (np.concatenate(c) for c in zip(*pieces))
                by_order = np.argsort(order, kind="stable")
                steps, epochs, values, times = steps[by_order], epochs[by_order], values[by_order], times[by_order]
            chunks.append(SeriesChunk(self.run_id, key, self.segment, steps, epochs, values, times))
        return chunks


@dataclass(frozen=True)
class _Removal:
    checkpoint: Checkpoint


@dataclass(frozen=True)
class _Refresh:
    """Recompute the run's inexact summaries (queued when the run finishes)."""


def removal(checkpoint: Checkpoint) -> _Removal:
    return _Removal(checkpoint)


REFRESH_SUMMARIES = _Refresh()


def _resolve_tensors(records: list, deferred: list[Deferred]) -> list[tuple]:
    """Copy all device tensors to the host in one transfer per device, then fill them in."""
    import torch

    by_device: dict = {}
    for record in deferred:
        by_device.setdefault(record.stacked.device, []).append(record)
    resolved: dict[int, tuple] = {}
    for group in by_device.values():
        flat = torch.cat([r.stacked.reshape(-1) for r in group]).to("cpu", torch.float64).tolist()
        offset = 0
        for record in group:
            values = list(record.values)
            for key in record.tensor_keys:
                values[record.keys.index(key)] = flat[offset]
                offset += 1
            resolved[id(record)] = (record.step, record.epoch, record.time, record.keys, tuple(values))
    return [resolved[id(r)] if isinstance(r, Deferred) else r for r in records]


def _refusal(exc: BaseException) -> bool:
    """Whether the store refused a write for now (locked, busy, full, I/O), so it is worth retrying;
    anything else means the batch holds something the store can never take."""
    return isinstance(exc, (sqlite3.OperationalError, OSError, MemoryError))


def _points(batch: WriteBatch) -> int:
    return sum(len(c.values) for c in batch.chunks)


def _pieces(batch: WriteBatch):
    """The batch split into one-item batches, in the order the backend applies them."""
    for name in WriteBatch.__dataclass_fields__:
        for item in getattr(batch, name):
            yield WriteBatch(**{name: (item,)})


def _describe(piece: WriteBatch) -> str:
    if piece.chunks:
        chunk = piece.chunks[0]
        return f"{len(chunk.values)} points of key {chunk.key!r}"
    if piece.new_checkpoints:
        return f"the record of checkpoint {piece.new_checkpoints[0].path!r}"
    if piece.run_updates:
        return "an update of the run's record"
    return "a record"


def _warn(message: str) -> None:
    # Even with warnings turned into errors, the writer thread must go on.
    try:
        warnings.warn(message, EpochalWarning, stacklevel=2)
    except Exception:
        logger.warning(message.removeprefix("epochal: "))


def _merge(batches: list[WriteBatch]) -> WriteBatch:
    if len(batches) == 1:
        return batches[0]
    return WriteBatch(
        **{name: tuple(itertools.chain.from_iterable(getattr(b, name) for b in batches))
           for name in WriteBatch.__dataclass_fields__}
    )
