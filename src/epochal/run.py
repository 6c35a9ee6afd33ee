"""Run: start or resume a run, log scalars against step and epoch, save checkpoints, finish.

Examples:
    >>> import epochal
    >>> with epochal.start(project="mnist", config={"lr": 1e-3}) as run:
    ...     run.log({"train/loss": 0.5})
    ...     run.step()
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from epochal.checkpoint import LoadedCheckpoint
from epochal.checks import MAX_INDEX, check_index, check_key, check_time, to_config, to_float
from epochal.distributed import Ranks, Reducer, check_reduce
from epochal.errors import EpochalWarning, RunStateError, StoreError, warn
from epochal.exiting import open_runs
from epochal.retention import Retention
from epochal.run_checkpoints import RunCheckpoints
from epochal.store.records import Checkpoint, Config, KeySummary, RunRecord, RunUpdate
from epochal.store.shipping import SHIP_WAIT_S, Shipper
from epochal.store.store import Store
from epochal.store.writer import REFRESH_SUMMARIES, Deferred, Writer
from epochal.system_metrics import SystemSampler

#: Under DDP, values logged with ``reduce=`` are reduced across ranks at least every this many steps.
REDUCE_EVERY_STEPS = 100
#: Seconds ``run.summary`` waits for buffered points before it answers from what is stored.
SUMMARY_WAIT_S = 5.0
_now = time.time
# Values of these exact types go straight into the buffer. Everything else (ints, which may not
# fit a float64, bools, NumPy scalars, tensors) is checked and converted on the slow path.
_PLAIN = (float,)


class Run:
    """A run being recorded. Create one with :func:`start` or :func:`resume`.

    ``log`` only appends to an in-memory buffer; a background thread writes it to
    the store in batches. Leaving a ``with`` block finishes the run: 'finished',
    'failed' after an exception, 'interrupted' after Ctrl-C.

    Examples:
        >>> run = epochal.start(project="demo", name="first")
        >>> run.log({"train/loss": 0.25, "train/acc": 0.9})
        >>> run.step()
        1
        >>> run.finish()
    """

    def __init__(self, store: Store, record: RunRecord, *, flush_interval: float, flush_points: int,
                 max_buffered_points: int = 5_000_000, previous: RunRecord | None = None,
                 previous_status: str | None = None, job: Ranks | None = None, system_metrics: float | None = None,
                 shipper: Shipper | None = None):
        self.store = store
        self.record = record
        self.id = record.id
        self.name = record.name
        self.project = record.project
        self.config = record.config
        self.path = Path(record.path)
        self._steps = record.steps
        self._epochs = record.epochs
        self.segment = record.segment
        self._keys: set[str] = set()  # every key checked so far
        self._admitted: set[str] | frozenset = self._keys  # keys that may take the fast path of log()
        self._finished = False
        self._previous = previous  # the record as it was before resume(), for abandon()
        #: The status the run had before :func:`resume` reopened it (None for a new run).
        self.previous_status = previous_status
        #: The DDP job recording this run (None in a single process): rank 0 writes, the others follow.
        self.job = job
        self._reducer = Reducer(job) if job is not None else None
        self._shipper = shipper  # copies the run from the local spool to a team store (see store.shipping)
        self._follower = job is not None and not job.leader
        self._writer = Writer(
            store, record.id, record.segment, lambda: (self._steps, self._epochs),
            interval=flush_interval, max_points=flush_points, max_buffered=max_buffered_points,
            on_error=self._divert,
            sampler=SystemSampler(system_metrics) if system_metrics and not self._follower else None,
        )
        self._queue = self._writer.queue
        self._wake = self._writer.wake
        # log() looks at the buffer's size every `_wake_points` points: it wakes the writer then, and
        # the writer paces it when logging outruns the store (see Writer.hand_over).
        self._wake_points = min(flush_points, max(max_buffered_points // 8, 1))
        self._pending = 0  # points logged since the last wake-up
        self._dropping = False
        self._dropped = 0  # points not buffered because the buffer was full while the store refused writes
        self._checkpoints = RunCheckpoints(
            store, self.id, self.name, self.path, self.segment, submit=self._writer.submit, flush=self._flush_writer,
            writes_failing=lambda: self.writes_failing, job=job,
        )
        if self._follower:
            self._admitted = frozenset()  # every log() takes the checked path, which records nothing here
        self._ledger: Any = None  # the LedgerRecorder of record_samples, made on its first call
        open_runs.add(self)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, project={self.project!r}, steps={self._steps})"

    # -- counters ------------------------------------------------------------------------------

    @property
    def rank(self) -> int:
        """This process's rank in the DDP job (0 in a single process)."""
        return 0 if self.job is None else self.job.rank

    @property
    def world_size(self) -> int:
        """The number of ranks recording this run (1 in a single process)."""
        return 1 if self.job is None else self.job.world_size

    @property
    def steps(self) -> int:
        """Steps taken so far: the step that ``log`` records unless told otherwise."""
        return self._steps

    @property
    def epochs(self) -> int:
        """Epochs completed so far: the epoch that ``log`` records unless told otherwise."""
        return self._epochs

    def step(self, n: int = 1) -> int:
        """Advance the step counter by ``n`` and return it."""
        steps = self._steps + (n if type(n) is int and n >= 0 else check_index("n", n))
        if steps > MAX_INDEX:
            raise ValueError(f"run.step: the step would become {steps}, past the largest the store holds ({MAX_INDEX})")
        before, self._steps = self._steps, steps
        if self._reducer is not None and steps // REDUCE_EVERY_STEPS != before // REDUCE_EVERY_STEPS:
            self._reduce_held()
        return steps

    def epoch(self, n: int = 1) -> int:
        """Advance the epoch counter by ``n`` and return it."""
        epochs = self._epochs + (n if type(n) is int and n >= 0 else check_index("n", n))
        if epochs > MAX_INDEX:
            raise ValueError(f"run.epoch: the epoch would become {epochs}, past the largest the store holds ({MAX_INDEX})")
        self._epochs = epochs
        if self._reducer is not None:
            self._reduce_held()
        return epochs

    # -- logging -------------------------------------------------------------------------------

    def log(self, values: Mapping[str, Any], *, step: int | None = None, epoch: int | None = None,
            reduce: str | None = None, time: float | None = None) -> None:
        """Record scalars at the current (or given) step and epoch. Never waits for disk.

        Under DDP (several ranks, see :attr:`world_size`), only rank 0's values are recorded; the
        other ranks' calls check their values and record nothing. With ``reduce``, every rank's
        value counts: one point per key and step holds the ``'mean'``, ``'sum'``, ``'min'`` or
        ``'max'`` over the ranks. Values to reduce are held, not sent: the ranks reduce them all
        together at their next :meth:`step` that reaches a multiple of ``REDUCE_EVERY_STEPS``, or
        at :meth:`epoch`, :meth:`flush`, :meth:`save_checkpoint` or :meth:`finish`, so every rank
        calls those (the Trainer does). In a single process ``reduce`` changes nothing.

        Args:
            values: key -> float, int, bool, NumPy scalar or single-element tensor. NaN and
                inf are kept. A tensor on an accelerator is copied there and read by the
                writer thread, so logging never synchronizes the device.
            step: record at this step instead of the run's counter.
            epoch: record at this epoch instead of the run's counter.
            time: the points' wall time (seconds since the epoch) instead of now, for logs replayed
                from elsewhere (a TensorBoard ``walltime``).

        Raises:
            TypeError: ``values`` is not a dict, a value is not a single number (a string, None,
                a tensor with several elements), or a key is not a string. Nothing of the call is
                recorded then.
            ValueError: ``reduce`` is not one of 'mean', 'sum', 'min', 'max'; a key is empty, longer
                than 255 characters or holds text the store cannot keep (a lone surrogate, a NUL); a
                number is too large for a float64; a step or epoch is negative or 2**63 or more; a
                ``time`` that is not a finite number of seconds.
            StoreError: the store failed persistently (it refused writes while the buffer was full
                for ``PERSISTENT_AFTER_S``, or its writer hit an unexpected error); raised once, after
                this call's values were buffered. Buffered points are kept and retried.
        """
        if reduce is not None or time is not None:
            if reduce is None:
                return self._log_checked(values, step, epoch, check_time(time))
            return self._log_reduced(values, step, epoch, reduce, time)
        # The fast path: known keys, plain numbers. Everything else goes the slow way.
        admitted = self._admitted
        try:
            items = values.items()
        except AttributeError:
            return self._log_checked(values, step, epoch)
        for key, value in items:
            if key not in admitted or type(value) not in _PLAIN:
                return self._log_checked(values, step, epoch)
        if not values:
            return self._log_checked(values, step, epoch)
        # Tuples of strings and floats, unlike dicts, drop out of the garbage collector's
        # sight, so a long queue costs the collector (and so the caller) nothing.
        self._queue.append((
            self._steps if step is None else check_index("step", step),
            self._epochs if epoch is None else check_index("epoch", epoch),
            _now(),
            tuple(values),
            tuple(values.values()),
        ))
        self._pending += len(values)
        if self._pending >= self._wake_points:
            self._wake_writer()

    def _log_checked(self, values: Mapping[str, Any], step: int | None, epoch: int | None,
                     time: float | None = None) -> None:
        """``log`` for new keys, values that need converting, a full buffer, and finished runs."""
        if self._finished:
            raise RunStateError(f"run {self.name!r} ({self.id}) is finished; resume it to log more")
        if not isinstance(values, Mapping):
            raise TypeError(
                f"run.log takes a dict of key -> number, such as {{'train/loss': 0.5}}; got "
                f"{type(values).__name__} ({values!r:.60})"
            )
        if self._follower:  # under DDP rank 0 records; the values are checked all the same
            for key, value in values.items():
                check_key(key)
                to_float(key, value)
            return
        converted = dict(values)
        tensor_keys = []
        for key, value in values.items():
            check_key(key)
            if type(value) not in _PLAIN:
                number = to_float(key, value)
                if number is None:  # a device tensor: read later, on the writer thread
                    tensor_keys.append(key)
                    number = math.nan
                converted[key] = number
        s = self._steps if step is None else check_index("step", step)
        e = self._epochs if epoch is None else check_index("epoch", epoch)
        self._keys.update(values)
        if self._dropping and not self._room_again():
            self._dropped += len(values)
            self._writer.check()
            return
        if not tensor_keys:
            self._queue.append((s, e, time or _now(), tuple(converted), tuple(converted.values())))
        else:
            import torch

            with torch.no_grad():
                stacked = torch.stack([values[k].detach().reshape(()) for k in tensor_keys])
            self._queue.append(
                Deferred(s, e, time or _now(), tuple(converted), tuple(converted.values()), tuple(tensor_keys), stacked)
            )
        self._pending += len(values)
        self._admitted = self._keys  # the fast path again, if a failure of the writer diverted log() here
        self._writer.check()
        if self._pending >= self._wake_points:
            self._wake_writer()

    def _log_reduced(self, values: Mapping[str, Any], step: int | None, epoch: int | None, reduce: str,
                     time: float | None) -> None:
        check_reduce(reduce)
        if self._reducer is None:
            return self.log(values, step=step, epoch=epoch, time=time)
        if self._finished:
            raise RunStateError(f"run {self.name!r} ({self.id}) is finished; resume it to log more")
        s = self._steps if step is None else check_index("step", step)
        e = self._epochs if epoch is None else check_index("epoch", epoch)
        self._reducer.add(s, e, check_time(time) if time is not None else _now(), values, reduce)

    def _reduce_held(self) -> None:
        """Reduce the values every rank holds (a collective); rank 0 queues the results for the writer."""
        records = self._reducer.reduce()
        if self._follower:
            return
        for s, e, t, keys, values in records:
            self._keys.update(keys)
            if isinstance(values, list):
                self._queue.append((s, e, t, keys, tuple(values)))
            else:  # on the accelerator: the writer thread reads it
                self._queue.append(Deferred(s, e, t, keys, (math.nan,) * len(keys), keys, values))
            self._pending += len(keys)
        self._wake_writer()

    def _divert(self) -> None:
        """Called by the writer thread when it keeps a persistent failure: the next log() takes the
        checked path, which raises it."""
        self._admitted = frozenset()

    # -- the bound on the buffer -----------------------------------------------------------------

    def _wake_writer(self) -> None:
        """Hand the points logged since the last call to the writer; mind the buffer's bound."""
        pending, self._pending = self._pending, 0
        if self._writer.hand_over(pending):  # full while the store refuses writes: drop until there is room
            self._dropping = True
            self._admitted = frozenset()  # every log() takes the checked path, which drops

    def _room_again(self) -> bool:
        """While dropping: whether the store took enough of the buffer to take points again."""
        if not self._writer.has_room():
            return False
        self._dropping = False
        self._admitted = self._keys
        warn(
            f"epochal: run {self.name!r} ({self.id}): the store accepts writes again; {self._dropped:,} points "
            "logged while the buffer was full were dropped"
        )
        return True

    @property
    def finished(self) -> bool:
        """Whether ``finish`` (or ``abandon``) has ended this Run object; ``resume`` gives an open one."""
        return self._finished

    @property
    def writes_failing(self) -> bool:
        """Whether the store is refusing this run's writes (locked by another program, disk full):
        points and checkpoint records stay buffered meanwhile and are retried."""
        return self._writer.failing

    @property
    def dropped_points(self) -> int:
        """Points this run did not store: logged while the buffer was full and the store refused
        writes, or records the store could not hold (each was warned about)."""
        return self._dropped + self._writer.dropped_points

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the store. False if not done by ``timeout``. For a
        team store: in its spool, then shipped (for at most ``SHIP_WAIT_S``; not at all while it is down).

        Under DDP every rank calls it: values logged with ``reduce=`` are reduced first.

        Raises:
            StoreError: the store failed persistently (as for :meth:`log`); raised once.
            RankError: under DDP, the ranks logged different keys with ``reduce=``.
        """
        if self._reducer is not None:
            self._reduce_held()
        done = self._flush_writer(timeout)
        self._ledger and self._ledger.flush()
        wait = SHIP_WAIT_S if timeout is None else min(timeout, SHIP_WAIT_S)
        return done and (self._shipper is None or self._shipper.wait(wait))

    def _flush_writer(self, timeout: float | None = None) -> bool:
        self._writer.handed += self._pending
        self._pending = 0
        return self._writer.flush(timeout)

    @property
    def summary(self) -> dict[str, KeySummary]:
        """Per key: count, last value, min, max and best.

        Waits up to ``SUMMARY_WAIT_S`` seconds for the points logged so far to be stored (not at all
        while the store is known to refuse writes). When the store does not take them in time
        (locked, full), warns and returns what is stored already.
        """
        if not self._flush_writer(0.0 if self._writer.failing else SUMMARY_WAIT_S):
            warnings.warn(
                f"epochal: run {self.name!r} ({self.id}): the store did not take the last "
                f"{self._writer.unwritten_points} points within {SUMMARY_WAIT_S} s (see the warnings above "
                "for why); this summary leaves them out",
                EpochalWarning, stacklevel=2,
            )
        return self.store.summary(self.id)

    # -- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(
        self,
        *,
        models: Any = None,
        optimizers: Any = None,
        schedulers: Any = None,
        scaler: Any = None,
        extra: Any = None,
        metric: tuple[str, Any] | None = None,
        mode: str = "max",
        retention: Retention | None = None,
        kind: str = "resume",
        timeout: float | None = None,
    ) -> Checkpoint:
        """Save a checkpoint at the current step and epoch, then apply ``retention``.

        The file is written first, atomically, under a name of its own (a second save at the same
        step and epoch gets a ``-1``, ``-2``, ... suffix). Its record then goes to the store through
        the run's writer; if the store has not taken it within ``timeout`` seconds (locked, full), an
        :class:`~epochal.EpochalWarning` says so and training goes on: the record is written when
        the store accepts writes again, and this run's ``load_checkpoint`` already sees it.

        Args:
            models, optimizers, schedulers: one object, a list, or a dict name -> object;
                anything with ``state_dict()``.
            scaler: a ``torch.amp.GradScaler`` (or anything with ``state_dict()``).
            extra: more state to keep (data-order state, callback state): plain Python values,
                tensors and NumPy arrays, in dicts, lists and tuples.
            metric: ``(key, value)`` that ranks this checkpoint for ``which="best"``.
            mode: 'max' if a higher metric is better, 'min' if lower is.
            retention: which checkpoints of this kind to keep; default the last one and the best one.
            kind: 'resume' (everything needed to continue) or 'weights' (only the models, a small
                file for inference; ``load_checkpoint("last")`` never picks one).
            timeout: seconds to wait for the store to record the checkpoint; default 5.

        Under DDP every rank calls it, each with its own ``extra``: rank 0 writes one file holding the
        models and optimizers (rank 0's, the same on every rank under DDP), and each rank's ``extra`` and
        random states; every rank gets the record back. The sample ledger's rows so far are written first.

        Raises:
            CheckpointError: the file cannot be written (nothing is recorded then), or a value
                cannot be held safely.
            RunStateError: the run is finished.
        """
        if self._finished:
            raise RunStateError(f"run {self.name!r} ({self.id}) is finished; resume it to save checkpoints")
        self._ledger and self._ledger.flush()  # a resume from this checkpoint finds the ledger's rows before it
        return self._checkpoints.save(
            self._steps, self._epochs, models=models, optimizers=optimizers, schedulers=schedulers, scaler=scaler,
            extra=extra, metric=metric, mode=mode, retention=retention, kind=kind, timeout=timeout,
        )

    def load_checkpoint(
        self,
        which: str | os.PathLike | Checkpoint = "last",
        *,
        models: Any = None,
        optimizers: Any = None,
        schedulers: Any = None,
        scaler: Any = None,
        restore_rng: bool = True,
        strict: bool = True,
    ) -> LoadedCheckpoint:
        """Load a checkpoint into the objects given, restore the random states and this run's counters.

        Args:
            which: 'last', 'best' (by the metric it was saved with), a checkpoint record, or a path.
                'last' is the newest resumable checkpoint whose file is present and matches its
                recorded sha256; newer ones that do not are skipped with a warning.
            models, optimizers, schedulers, scaler, restore_rng, strict: as
                :func:`epochal.checkpoint.load`.

        Under DDP every rank calls it: rank 0 picks the checkpoint, each rank loads the file (the
        store must be on a disk every machine sees) and gets its own ``extra`` and random states back.

        Raises:
            CheckpointError: no usable checkpoint, a damaged file, a checkpoint that does not
                fit the objects given (another architecture, other parameter groups), or one saved
                by a DDP job of another number of ranks (with ``restore_rng``).
            RankError: under DDP, the checkpoint could not be loaded on another rank.
        """
        loaded = self._checkpoints.load(which, models=models, optimizers=optimizers, schedulers=schedulers,
                                        scaler=scaler, restore_rng=restore_rng, strict=strict)
        self.set_counters(loaded.step, loaded.epoch)
        return loaded

    def add_checkpoint(self, path: str | os.PathLike, *, step: int | None = None, epoch: int | None = None,
                       metric: tuple[str, Any] | None = None, mode: str = "max") -> Checkpoint:
        """Record a checkpoint file (or folder) another framework wrote, such as Lightning's ``.ckpt``,
        at the current (or given) step and epoch. The file stays where it is and epochal never loads or
        deletes it (``kind='external'``; 'last' and 'best' pass it by); its path (relative to the run's
        folder when inside it) and size are recorded, no SHA-256. Recording a path again replaces its record.

        Raises:
            CheckpointError: nothing is at ``path``.
            TypeError, ValueError: a ``metric`` that is not a (key, number) pair, a mode not 'min' or 'max'.
        """
        if self._finished:
            raise RunStateError(f"run {self.name!r} ({self.id}) is finished; resume it to record checkpoints")
        return self._checkpoints.add(path, self._steps if step is None else check_index("step", step),
                                     self._epochs if epoch is None else check_index("epoch", epoch),
                                     metric=metric, mode=mode)

    def remove_checkpoint(self, path: str | os.PathLike) -> bool:
        """Drop the record of a checkpoint :meth:`add_checkpoint` recorded, whose framework deleted its file
        (the file is not touched). False if no checkpoint of this run has that path."""
        return self._checkpoints.remove(path)

    def checkpoints(self) -> list[Checkpoint]:
        """This run's checkpoints as its store lists them, oldest first (under DDP, rank 0's answer on every rank)."""
        return self._checkpoints.listed()

    def record_dynamics(self, model: Any, inputs: Any, labels: Any, *, image_shape: tuple[int, ...] | None = None,
                        **kwargs: Any):
        """Record this epoch's representations and predictions of ``inputs``. See :func:`epochal.dynamics.record.record`.

        ``image_shape=(h, w)`` or ``(h, w, 3)`` folds flat inputs into images to keep a sprite of each sample.
        """
        from epochal.dynamics.record import record

        return record(self, model, inputs, labels, image_shape=image_shape, **kwargs)

    def record_samples(self, indices: Any, logits: Any, targets: Any) -> None:
        """Record each sample's loss, logit margin and prediction from this training step's ``logits``, off this
        thread, no device sync (see :mod:`epochal.dynamics.ledger`): ``run.record_samples(idx, logits, y)``."""
        if self._finished:
            raise RunStateError(f"run {self.name!r} ({self.id}) is finished; resume it to record samples")
        from epochal.dynamics.ledger import LedgerRecorder
        self._ledger = self._ledger or LedgerRecorder(self.path / "ledger", f"s{self.segment}-r{self.rank}")
        self._ledger.record(indices, logits, targets, self._epochs, self._steps)

    def update_config(self, values: Mapping[str, Any]) -> Config:
        """Add to the run's config (nested dicts merged, other values replaced) behind the points logged
        so far; the new config, also ``run.config``. Raises TypeError for a ``values`` that is not a dict,
        ValueError for a value the store cannot hold (nothing changes then), RunStateError once finished."""
        if self._finished:
            raise RunStateError(f"run {self.name!r} ({self.id}) is finished; resume it to change its config")
        if not isinstance(values, Mapping):
            raise TypeError(f"a run's config is updated with a dict, got {type(values).__name__} ({values!r:.60})")
        self.config = Config(to_config(self.config.merged(to_config(values))))
        self._writer.submit(RunUpdate(self.id, config=self.config))
        return self.config

    def set_counters(self, steps: int, epochs: int) -> None:
        """Put the step and epoch counters at ``steps`` and ``epochs``: where a loaded checkpoint was saved,
        or back to 0 when a run is trained again from its start."""
        self._steps, self._epochs = check_index("steps", steps), check_index("epochs", epochs)

    # -- ending --------------------------------------------------------------------------------

    def finish(self, status: str = "finished", *, timeout: float = 60.0) -> None:
        """Write everything still buffered and mark the run ``status``.

        A warning (EpochalWarning) says how many points were not stored, if any were dropped
        (see ``dropped_points``).

        Raises:
            StoreError: the store refused the buffered points for ``timeout`` seconds (a full
                disk, say); the points are lost with the process unless the store recovers.
        """
        if self._finished:
            return
        if status not in ("finished", "failed", "interrupted"):
            raise ValueError(f"a run finishes as 'finished', 'failed' or 'interrupted', not {status!r}")
        rank_error = None
        if self._reducer is not None:
            rank_error = self._reducer.at_finish(status, f"run {self.name!r} ({self.id})", self._reduce_held,
                                                 self.record.ranks)
        self._close(RunUpdate(self.id, status=status, ended=time.time(), steps=self._steps, epochs=self._epochs),
                    timeout)
        if self.dropped_points:
            reasons = "; ".join(self._writer.drop_reasons[:3])
            warn(
                f"epochal: run {self.name!r} ({self.id}) finished without {self.dropped_points:,} of its points: "
                f"{self._dropped:,} logged while the buffer was full and the store refused writes, "
                f"{self._writer.dropped_points:,} the store could not hold{': ' + reasons if reasons else ''}"
            )
        if rank_error is not None:
            raise rank_error

    def abandon(self, *, timeout: float = 60.0) -> None:
        """Give a run just reopened by :func:`resume` back as it was: its status (interrupted,
        crashed, ...), end time and process. Nothing logged is lost; this Run is closed.

        For a caller whose resume failed (a checkpoint that does not fit, say), so that the run
        does not read as finished or failed when it was neither.
        """
        if self._finished:
            return
        before = self._previous
        if before is None:
            raise RunStateError(f"run {self.name!r} ({self.id}) was started, not resumed; finish it instead")
        self._close(RunUpdate(
            self.id, status=before.status, ended=before.ended, heartbeat=before.heartbeat, pid=before.pid,
            host=before.host, command=before.command, token=before.token, steps=self._steps, epochs=self._epochs,
        ), timeout)

    def _close(self, update: RunUpdate, timeout: float) -> None:
        self._finished = True
        self._admitted = frozenset()  # sends every later log() down the checked path, which refuses it
        open_runs.discard(self)
        self._ledger and self._ledger.close()
        self._writer.submit(update, REFRESH_SUMMARIES)
        written = self._writer.close(timeout)
        if self._shipper is not None:
            left = self._shipper.finish(min(timeout, SHIP_WAIT_S))
            if left:
                warn(f"epochal: run {self.name!r} ({self.id}): {left} batches of points are still only in the spool "
                      f"'{self.store.where}': the team store {self._shipper.where} did not take them "
                      f"({self._shipper.failing or 'it was still shipping'}); ship them with `epochal sync {self.store.where} "
                      f"{self._shipper.where} --run {self.id}`")
        if not written:
            raise StoreError(
                f"run {self.name!r} ({self.id}): the store did not accept {self._writer.unwritten_points} "
                f"buffered points within {timeout} s; see the warnings above for why"
            )

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed")
