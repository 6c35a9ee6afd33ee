"""A run's checkpoints in the store: naming, records, retention, and which one 'last' and 'best' mean.

:mod:`epochal.checkpoint` writes and reads the files; this module is the store side that a
:class:`~epochal.Run` owns. A save writes its file first, under a name no other checkpoint of the
run has, then queues its record through the run's writer and waits for it only a bounded time, so
a locked or full database never stops training: until the store takes the record, the run itself
knows the checkpoint (for loading and retention), and files that retention drops are deleted only
once the store no longer lists them.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from epochal import checkpoint
from epochal.atomic import clean_stale_temporaries
from epochal.distributed import Ranks
from epochal.errors import CheckpointError, EpochalWarning
from epochal.retention import Retention, newness
from epochal.store.records import Checkpoint
from epochal.store.store import Store, storable_text
from epochal.store.writer import removal

__all__ = ["EXTERNAL", "KINDS", "RECORD_TIMEOUT_S", "RunCheckpoints"]

KINDS = ("resume", "weights")
#: The kind of a checkpoint another framework wrote (Lightning, Hugging Face): recorded, never loaded by epochal.
EXTERNAL = "external"
#: Seconds a save waits for the store to record its checkpoint before it warns and goes on.
RECORD_TIMEOUT_S = 5.0


class RunCheckpoints:
    """The checkpoints of one open run, as its store lists them plus what this process queued.

    Args:
        store: the run's store.
        run_id, run_name: the run, for records and messages.
        folder: the run's folder; checkpoint files go in its ``checkpoints/``.
        segment: the run's session number; with the saves counted here, the save sequence.
        submit: queues records on the run's writer.
        flush: waits up to a number of seconds for the writer; True once everything queued is stored.
        writes_failing: whether the store is refusing writes now.
        job: the DDP job the run is recorded by, if any: then saving and loading are collectives.
            Every rank's ``extra`` and random states go to rank 0, which writes the one file; the
            others wait for its record, so none reads a file still being written. Rank 0 picks the
            file to load and every rank loads it, all failing together if one cannot.
    """

    def __init__(self, store: Store, run_id: str, run_name: str, folder: Path, segment: int, *,
                 submit: Callable[..., None], flush: Callable[[float], bool], writes_failing: Callable[[], bool],
                 job: Ranks | None = None):
        self.job = job
        self.store, self.run_id, self.run_name, self.folder, self.segment = store, run_id, run_name, folder, segment
        self._submit, self._flush, self._writes_failing = submit, flush, writes_failing
        self.saved: dict[str, Checkpoint] = {}  # path -> record, maybe still queued
        self.removed: set[str] = set()  # paths whose removal is queued
        self.doomed: list[str] = []  # files to delete once the store no longer lists them
        self.count = 0  # saves so far; with the segment, the save sequence
        self.unrecorded = False  # the store did not take the last records in time (warned once)

    def save(self, step: int, epoch: int, *, extra: Any = None, **arguments: Any) -> Checkpoint:
        """Write a checkpoint at ``step`` and ``epoch``, record it, then apply ``retention``.

        See :meth:`epochal.Run.save_checkpoint` for the arguments.
        """
        if self.job is None:
            return self._save(step, epoch, extra=extra, **arguments)
        ranks = self.job.gather_to_leader({"extra": checkpoint.on_cpu(extra), "rng": checkpoint.rng_state()})
        return self.job.leader_does(lambda: self._save(step, epoch, extra=extra, ranks=ranks, **arguments))

    def load(self, which: str | os.PathLike | Checkpoint, **arguments: Any) -> checkpoint.LoadedCheckpoint:
        """Load 'last', 'best', a record or a path; see :meth:`epochal.Run.load_checkpoint`."""
        def pick() -> tuple[Checkpoint | None, Path]:
            if isinstance(which, Checkpoint):
                return which, self.file_of(which)
            if isinstance(which, str) and which in ("last", "best"):
                return self.pick(which)
            return None, Path(which)

        rank, world_size = (0, 1) if self.job is None else (self.job.rank, self.job.world_size)

        def load() -> checkpoint.LoadedCheckpoint:
            return checkpoint.load(path, rank=rank, world_size=world_size, **arguments)

        if self.job is None:
            record, path = pick()
            loaded = load()
        else:
            record, path = self.job.leader_does(pick)
            loaded = self.job.all_succeed(load, f"loading checkpoint {path}")
        return dataclasses.replace(loaded, record=record)

    def listed(self) -> list[Checkpoint]:
        """The run's checkpoints as its store lists them (under DDP, rank 0's answer on every rank)."""
        if self.job is None:
            return self.store.checkpoints(self.run_id)
        return self.job.leader_does(lambda: self.store.checkpoints(self.run_id))

    def add(self, path: str | os.PathLike, step: int, epoch: int, *, metric: tuple[str, Any] | None = None,
            mode: str = "max") -> Checkpoint:
        """Record a checkpoint file or folder another framework wrote; see :meth:`epochal.Run.add_checkpoint`."""
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        key, value = checkpoint.checked_metric(metric)
        where = Path(path).absolute()
        size = 0
        if self.job is None or self.job.leader:  # the file may be on rank 0's disk alone
            if not where.exists():
                raise CheckpointError(f"no checkpoint at {where}: record a file or folder that was written")
            size = where.stat().st_size if where.is_file() else sum(
                f.stat().st_size for f in where.rglob("*") if f.is_file())
        inside = where.is_relative_to(self.folder.absolute())
        shown = where.relative_to(self.folder.absolute()).as_posix() if inside else str(where)
        storable_text(shown, "a checkpoint's path")
        self.count += 1
        record = Checkpoint(
            run_id=self.run_id, path=shown, step=step, epoch=epoch, size=size, sha256="", created=time.time(),
            metric_key=key, metric_value=value, mode=mode if key is not None else None, kind=EXTERNAL,
            seq=(self.segment << 32) + self.count,
        )
        self.saved[shown] = record
        self.removed.discard(shown)
        self._submit(record)
        self._settle(RECORD_TIMEOUT_S)
        return record

    def remove(self, path: str | os.PathLike) -> bool:
        """Drop the record of a checkpoint another framework deleted; see :meth:`epochal.Run.remove_checkpoint`."""
        where = Path(path).absolute()
        inside = where.is_relative_to(self.folder.absolute())
        shown = where.relative_to(self.folder.absolute()).as_posix() if inside else str(where)
        record = next((c for c in self.known() if c.path == shown), None)
        if record is None:
            return False
        if record.kind != EXTERNAL:
            raise ValueError(f"{shown} is a checkpoint epochal saved; its retention= decides when it goes")
        self._submit(removal(record))
        self.saved.pop(shown, None)
        self.removed.add(shown)
        self._settle(RECORD_TIMEOUT_S)
        return True

    def _save(self, step: int, epoch: int, *, models: Any = None, optimizers: Any = None, schedulers: Any = None,
              scaler: Any = None, extra: Any = None, metric: tuple[str, Any] | None = None, mode: str = "max",
              retention: Retention | None = None, kind: str = "resume", timeout: float | None = None,
              ranks: list | None = None) -> Checkpoint:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind == "weights" and (optimizers is not None or schedulers is not None or scaler is not None):
            raise ValueError("a 'weights' checkpoint holds models only; save optimizers and schedulers with kind='resume'")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        timeout = RECORD_TIMEOUT_S if timeout is None else timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise ValueError(f"timeout is a number of seconds, 0 or more, got {timeout!r}")
        if metric is not None and isinstance(metric, tuple) and len(metric) == 2 and isinstance(metric[0], str):
            storable_text(metric[0], "the metric's key")
        created = time.time()
        payload = checkpoint.payload(
            run_id=self.run_id, step=step, epoch=epoch, created=created, metric=metric, mode=mode, models=models,
            optimizers=optimizers, schedulers=schedulers, scaler=scaler, extra=extra, ranks=ranks,
        )
        known = self.known()
        prefix = "" if kind == "resume" else "weights-"
        relative = self._free_name(known, f"{prefix}step{step:09d}-epoch{epoch:05d}")
        size, digest = checkpoint.write_atomic(self.folder / relative, payload)
        self.count += 1
        saved_metric = payload["metric"]
        record = Checkpoint(
            run_id=self.run_id, path=relative, step=step, epoch=epoch, size=size, sha256=digest, created=created,
            metric_key=None if saved_metric is None else saved_metric["key"],
            metric_value=None if saved_metric is None else saved_metric["value"],
            mode=mode if saved_metric is not None else None, kind=kind,
            seq=(self.segment << 32) + self.count,  # later sessions (segments) sort after earlier ones
        )
        self.saved[relative] = record
        self._submit(record)
        self._apply_retention([*known, record], retention or Retention(), kind)
        self._settle(timeout)
        clean_stale_temporaries(self.folder / "checkpoints")
        return record

    def known(self) -> list[Checkpoint]:
        """The run's checkpoints as the store lists them, with what this process has queued, oldest first."""
        try:
            stored = self.store.checkpoints(self.run_id)
        except Exception as exc:  # a store that cannot even be read: go by what this process knows
            _warn(f"epochal: cannot read the checkpoints of run {self.run_name!r} ({self.run_id}) from the store "
                  f"({exc}); going by those saved in this process")
            stored = []
        known = {c.path: c for c in stored}
        known.update(self.saved)
        for path in self.removed:
            known.pop(path, None)
        return sorted(known.values(), key=newness)

    def pick(self, which: str) -> tuple[Checkpoint, Path]:
        """The record and file of 'last' (newest resumable whose file is sound) or 'best' (by its metric)."""
        checkpoints = self.known()
        where = f"run {self.run_name!r} ({self.run_id})"
        if not checkpoints:
            raise CheckpointError(
                f"{where} has no checkpoints to load. "
                "Start training from the beginning (with the Trainer: fit() without resume=True)"
            )
        if which == "best":
            scored = [c for c in checkpoints if c.metric_value is not None and c.mode and c.kind != EXTERNAL]
            if not scored:
                raise CheckpointError(f"{where} has no checkpoint saved with a metric, so none is 'best'")
            best = scored[0]
            for ckpt in scored[1:]:
                if ckpt.better_than(best):
                    best = ckpt
            problem = checkpoint.verify(self.folder, best.path, best.sha256)
            if problem is not None:
                raise CheckpointError(f"the best checkpoint of {where}, {best.path}, cannot be loaded: {problem}")
            return best, self.folder / best.path
        resumable = sorted((c for c in checkpoints if c.kind == "resume"), key=newness, reverse=True)
        if not resumable:
            raise CheckpointError(f"{where} has no resumable checkpoint, only model weights")
        skipped = []
        for ckpt in resumable:
            problem = checkpoint.verify(self.folder, ckpt.path, ckpt.sha256)
            if problem is None:
                if skipped:
                    _warn(f"epochal: {where}: loading {ckpt.path} (step {ckpt.step}, epoch {ckpt.epoch}); skipped "
                          f"newer checkpoints that cannot be loaded: {'; '.join(skipped)}")
                return ckpt, self.folder / ckpt.path
            skipped.append(f"{ckpt.path} ({problem})")
        raise CheckpointError(
            f"{where} has no usable checkpoint: {'; '.join(skipped)}. Load a checkpoint file by its path if you "
            "have a copy, or start training from the beginning (with the Trainer: fit() without resume=True)"
        )

    def file_of(self, record: Checkpoint) -> Path:
        """The file of ``record`` (of this run or another in the store), checked against its sha256."""
        folder = self.folder if record.run_id == self.run_id else Path(self.store.run(record.run_id).path)
        problem = checkpoint.verify(folder, record.path, record.sha256)
        if problem is not None:
            raise CheckpointError(f"checkpoint {record.path}: {problem}")
        return folder / record.path

    def _free_name(self, known: list[Checkpoint], stem: str) -> str:
        """``checkpoints/<stem>.pt``, or with a ``-N`` suffix when a checkpoint has (or had) that name."""
        taken = {c.path for c in known} | self.removed | set(self.doomed)
        for n in range(1_000_000):
            relative = f"checkpoints/{stem}{f'-{n}' if n else ''}.pt"
            if relative not in taken and not os.path.lexists(self.folder / relative):
                return relative
        raise CheckpointError(
            f"run {self.run_name!r} ({self.run_id}) has a million checkpoints named {stem}; clean its folder"
        )

    def _apply_retention(self, checkpoints: list[Checkpoint], retention: Retention, kind: str) -> None:
        """Queue the removal of the records retention drops; their files go once the store agrees."""
        same_kind = [c for c in checkpoints if c.kind == kind]
        kept = {c.path for c in retention.keep(same_kind)}
        doomed = [c for c in same_kind if c.path not in kept]
        if not doomed:
            return
        self._submit(*(removal(c) for c in doomed))
        for ckpt in doomed:
            self.saved.pop(ckpt.path, None)
            self.removed.add(ckpt.path)
            self.doomed.append(ckpt.path)

    def _settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the store to take what was queued, then delete dropped files.

        A dropped file is deleted only when the store holds every checkpoint saved since and no longer
        lists the dropped one: a crash at any point leaves the store naming files that are there.
        """
        # While the store is known to refuse writes, a save does not wait for it again: one wait per episode.
        if not self._flush(0.0 if self.unrecorded and self._writes_failing() else timeout):
            if not self.unrecorded:
                waiting = ", ".join(sorted(self.saved)) or "none"
                _warn(
                    f"epochal: run {self.run_name!r} ({self.run_id}): the store did not take the checkpoint records "
                    f"within {timeout} s (see the warnings above for why); the files are saved and this run loads "
                    f"them, their records are written when the store accepts writes again (waiting: {waiting}). "
                    "Files that retention drops are kept until then. Later saves do not wait while the store refuses."
                )
            self.unrecorded = True
            return
        self.unrecorded = False
        try:
            stored = {c.path for c in self.store.checkpoints(self.run_id)}
        except Exception:
            return  # not confirmed: delete nothing now; the next save tries again
        if any(path not in stored for path in self.saved) or any(path in stored for path in self.removed):
            return
        for path in self.doomed:
            (self.folder / path).unlink(missing_ok=True)
        self.saved.clear()
        self.removed.clear()
        self.doomed.clear()


def _warn(message: str) -> None:
    # Points at the caller of run.save_checkpoint / run.load_checkpoint.
    warnings.warn(message, EpochalWarning, stacklevel=5)
