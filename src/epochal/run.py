"""Run: start or resume a run, log scalars against step and epoch, save checkpoints, finish.

Examples:
    >>> import epochal
    >>> with epochal.start(project="mnist", config={"lr": 1e-3}) as run:
    ...     run.log({"train/loss": 0.5})
    ...     run.step()
"""

from __future__ import annotations

import atexit
import math
import numbers
import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from epochal import names, system
from epochal.errors import EpochalError, RunStateError, StoreError
from epochal.store.records import Config, KeySummary, RunRecord, RunUpdate, WriteBatch
from epochal.store.store import Store
from epochal.store.writer import REFRESH_SUMMARIES, Deferred, Writer

MAX_KEY_LENGTH = 255
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

    def __init__(self, store: Store, record: RunRecord, *, flush_interval: float, flush_points: int):
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
        self._admitted: set[str] = set()
        self._finished = False
        self._writer = Writer(
            store.backend, record.id, record.segment, lambda: (self._steps, self._epochs),
            interval=flush_interval, max_points=flush_points,
        )
        self._queue = self._writer.queue
        self._wake = self._writer.wake
        self._flush_points = flush_points
        self._pending = 0
        _open_runs.add(self)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, project={self.project!r}, steps={self._steps})"

    # -- counters ------------------------------------------------------------------------------

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
        self._steps += n if type(n) is int and n >= 0 else _index("n", n)
        return self._steps

    def epoch(self, n: int = 1) -> int:
        """Advance the epoch counter by ``n`` and return it."""
        self._epochs += n if type(n) is int and n >= 0 else _index("n", n)
        return self._epochs

    # -- logging -------------------------------------------------------------------------------

    def log(self, values: Mapping[str, Any], *, step: int | None = None, epoch: int | None = None) -> None:
        """Record scalars at the current (or given) step and epoch. Never waits for disk.

        Args:
            values: key -> float, int, bool, NumPy scalar or single-element tensor. NaN and
                inf are kept. A tensor on an accelerator is copied there and read by the
                writer thread, so logging never synchronizes the device.
            step: record at this step instead of the run's counter.
            epoch: record at this epoch instead of the run's counter.

        Raises:
            TypeError: a value is not a single number (a string, None, a tensor with several
                elements), or a key is not a string. Nothing of the call is recorded then.
            ValueError: a key is empty or longer than 255 characters.
        """
        # The fast path: known keys, plain numbers. Everything else goes the slow way.
        admitted = self._admitted
        for key, value in values.items():
            if key not in admitted or type(value) not in _PLAIN:
                return self._log_checked(values, step, epoch)
        if not values:
            return self._log_checked(values, step, epoch)
        # Tuples of strings and floats, unlike dicts, drop out of the garbage collector's
        # sight, so a long queue costs the collector (and so the caller) nothing.
        self._queue.append((
            self._steps if step is None else _index("step", step),
            self._epochs if epoch is None else _index("epoch", epoch),
            _now(),
            tuple(values),
            tuple(values.values()),
        ))
        self._pending += len(values)
        if self._pending >= self._flush_points:
            self._pending = 0
            self._wake.set()

    def _log_checked(self, values: Mapping[str, Any], step: int | None, epoch: int | None) -> None:
        """``log`` for new keys, values that need converting, and finished runs."""
        if self._finished:
            raise RunStateError(f"run {self.name!r} ({self.id}) is finished; resume it to log more")
        converted = dict(values)
        tensor_keys = []
        for key, value in values.items():
            _admit(key)
            if type(value) not in _PLAIN:
                number = _number(key, value)
                if number is None:  # a device tensor: read later, on the writer thread
                    tensor_keys.append(key)
                    number = math.nan
                converted[key] = number
        s = self._steps if step is None else _index("step", step)
        e = self._epochs if epoch is None else _index("epoch", epoch)
        self._admitted.update(values)
        if not tensor_keys:
            self._queue.append((s, e, _now(), tuple(converted), tuple(converted.values())))
        else:
            import torch

            with torch.no_grad():
                stacked = torch.stack([values[k].detach().reshape(()) for k in tensor_keys])
            self._queue.append(
                Deferred(s, e, _now(), tuple(converted), tuple(converted.values()), tuple(tensor_keys), stacked)
            )
        self._pending += len(values)
        if self._pending >= self._flush_points:
            self._pending = 0
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the store. False if not done by ``timeout``."""
        return self._writer.flush(timeout)

    @property
    def summary(self) -> dict[str, KeySummary]:
        """Per key: count, last value, min, max and best. Waits for pending points first."""
        self.flush()
        return self.store.summary(self.id)

    # -- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, **kwargs: Any):
        """Save models, optimizers and everything needed to resume. See :func:`epochal.checkpoint.save`."""
        from epochal import checkpoint

        return checkpoint.save(self, **kwargs)

    def record_dynamics(self, model: Any, inputs: Any, labels: Any, *, image_shape: tuple[int, ...] | None = None,
                        **kwargs: Any):
        """Record this epoch's representations and predictions of ``inputs``. See :func:`epochal.dynamics.record.record`.

        ``image_shape=(h, w)`` or ``(h, w, 3)`` folds flat inputs into images to keep a sprite of each sample.
        """
        from epochal.dynamics.record import record

        return record(self, model, inputs, labels, image_shape=image_shape, **kwargs)

    def load_checkpoint(self, which: Any = "last", **kwargs: Any):
        """Load a checkpoint into the given objects. See :func:`epochal.checkpoint.load`."""
        from epochal import checkpoint

        return checkpoint.load(self, which, **kwargs)

    def _restore_counters(self, steps: int, epochs: int) -> None:
        self._steps, self._epochs = steps, epochs

    # -- ending --------------------------------------------------------------------------------

    def finish(self, status: str = "finished", *, timeout: float = 60.0) -> None:
        """Write everything still buffered and mark the run ``status``.

        Raises:
            StoreError: the store refused the buffered points for ``timeout`` seconds (a full
                disk, say); the points are lost with the process unless the store recovers.
        """
        if self._finished:
            return
        if status not in ("finished", "failed", "interrupted"):
            raise ValueError(f"a run finishes as 'finished', 'failed' or 'interrupted', not {status!r}")
        self._finished = True
        self._admitted = frozenset()  # sends every later log() down the checked path, which refuses it
        _open_runs.discard(self)
        self._writer.submit(
            RunUpdate(self.id, status=status, ended=time.time(), steps=self._steps, epochs=self._epochs),
            REFRESH_SUMMARIES,
        )
        if not self._writer.close(timeout):
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
) -> Run:
    """Start a new run and return it.

    Args:
        project: group of runs this one belongs to.
        name: human-readable name; a name like 'swift-otter-3' is made up when not given.
            Names need not be unique: where a run is named, the newest of that name is meant.
        config: hyperparameters and settings, a nested dict kept as given (values that are
            not JSON, such as paths, are stored as text).
        tags: labels to filter runs by.
        store: the store directory (or a :class:`Store`); default ``$EPOCHAL_DIR``, else
            ``./epochal-runs``.
        flush_interval: seconds between writes of buffered points.
        flush_points: write sooner once this many points are buffered.

    Raises:
        StoreError: the store directory cannot be created or written.
    """
    _text("project", project)
    _flush_settings(flush_interval, flush_points)
    if name is not None:
        _text("name", name)
    the_store = store if isinstance(store, Store) else Store(store)
    tag_tuple = tuple(_text("tag", t) for t in ([tags] if isinstance(tags, str) else tags))
    existing = len(the_store.backend.find_runs(project=project))
    now = time.time()
    record = RunRecord(
        id=uuid.uuid4().hex[:12], name=name or names.random_name(existing + 1), project=project,
        status="running", started=now, ended=None, heartbeat=now, host=system.host(), pid=os.getpid(),
        command=system.command_line(), git_commit=system.git_commit(), python=system.python_version(),
        torch=system.torch_version(), description=description, tags=tag_tuple,
        config=Config(_jsonable(dict(config or {}))), steps=0, epochs=0, segment=0,
        path=str(Path(the_store.backend.files_root) / "pending"),
    )
    try:
        the_store.backend.write(WriteBatch(new_runs=(record,)))
        record = the_store.backend.get_run(record.id)
        Path(record.path).mkdir(parents=True, exist_ok=True)
        probe = Path(record.path) / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except EpochalError:
        raise
    except Exception as exc:  # OSError, sqlite3.Error: the store is not writable
        raise StoreError(f"cannot write to the store in '{the_store.path}': {exc}") from exc
    return Run(the_store, record, flush_interval=flush_interval, flush_points=flush_points)


def resume(
    run: str | RunRecord,
    *,
    store: str | Path | Store | None = None,
    flush_interval: float = 0.5,
    flush_points: int = 10_000,
) -> Run:
    """Reopen a run that is not running any more; its step and epoch counters continue.

    Points logged after a resume at steps the run had already logged are kept; when
    reading, the newest wins for those steps. Load a checkpoint afterwards
    (``run.load_checkpoint("last", ...)``) to go back to where it was saved.

    Raises:
        RunNotFoundError: no run has that id or name.
        RunStateError: the run is still running in a live process.
    """
    _flush_settings(flush_interval, flush_points)
    the_store = store if isinstance(store, Store) else Store(store)
    record = the_store.run(run)
    if record.status == "running":
        raise RunStateError(
            f"run {record.name!r} ({record.id}) is still running as pid {record.pid} on {record.host}; "
            "finish it there first"
        )
    segment = record.segment + 1
    the_store.backend.write(
        WriteBatch(run_updates=(
            RunUpdate(record.id, status="running", reopen=True, heartbeat=time.time(), pid=os.getpid(),
                      host=system.host(), command=system.command_line(), segment=segment),
        ))
    )
    return Run(the_store, the_store.run(record.id), flush_interval=flush_interval, flush_points=flush_points)


# -- checks on the caller's thread ---------------------------------------------------------------


def _admit(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"run.log: keys are strings, got {key!r} ({type(key).__name__})")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"run.log: a key has 1 to {MAX_KEY_LENGTH} characters, got {len(key)}: {key[:60]!r}")


def _number(key: str, value: object) -> float | None:
    """The value as a float; None for a tensor on a device, which the writer reads later."""
    if isinstance(value, numbers.Real) and not isinstance(value, (str, bytes)):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"run.log: value for {key!r} is {value!r:.60}, too large for a float64") from None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            raise TypeError(
                f"run.log: value for {key!r} is a tensor of shape {tuple(value.shape)} and dtype {value.dtype}; "
                "expected a single real number (a 0-d or one-element tensor)"
            )
        if value.device.type == "cpu":
            return float(value.item())
        if value.is_meta:
            raise TypeError(f"run.log: value for {key!r} is a meta tensor, which has no value")
        return None
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
        return float(value)
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.size == 1 and value.dtype.kind in "biuf":
            return float(value.reshape(()))
        raise TypeError(
            f"run.log: value for {key!r} is an array of shape {value.shape} and dtype {value.dtype}; "
            "expected a single real number"
        )
    raise TypeError(
        f"run.log: value for {key!r} is {type(value).__name__} ({value!r:.60}); expected a float, int, "
        "NumPy scalar or single-element tensor"
    )


def _index(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return int(value)


def _flush_settings(interval: object, points: object) -> None:
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or not interval > 0:
        raise ValueError(f"flush interval must be a positive number of seconds, got {interval!r}")
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise ValueError(f"flush size must be at least 1 point, got {points!r}")


def _text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a run's {what} is a non-empty string, got {value!r}")
    return value


def _jsonable(value: Any) -> Any:
    """Config values as JSON can hold them: tuples become lists, other objects their text."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


# -- runs still open when the interpreter exits ----------------------------------------------------

_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_uncaught: list[type] = []
_previous_hook = sys.excepthook


def _remember_uncaught(exc_type, exc, tb):  # type: ignore[no-untyped-def]
    _uncaught.append(exc_type)
    _previous_hook(exc_type, exc, tb)


def _finish_open_runs() -> None:
    if not _open_runs:
        return
    status = "finished"
    if _uncaught:
        status = "interrupted" if issubclass(_uncaught[-1], KeyboardInterrupt) else "failed"
    for run in list(_open_runs):
        try:
            run.finish(status, timeout=10.0)
        except EpochalError as exc:
            print(f"epochal: {exc}", file=sys.stderr)


if threading.current_thread() is threading.main_thread():
    sys.excepthook = _remember_uncaught
atexit.register(_finish_open_runs)
