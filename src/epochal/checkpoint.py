"""Checkpoints: everything needed to resume a run exactly, written atomically.

A checkpoint holds model, optimizer and scheduler state dicts, the AMP scaler, the
Python, NumPy, torch CPU and CUDA random states, the run's step and epoch, an
optional metric and any ``extra`` state. It is written to a temporary file,
fsynced and renamed to a name no other checkpoint of the run has, so a crash never
leaves a half-written file under a real name and never touches an earlier
checkpoint. It loads with ``torch.load(weights_only=True)``: nothing in it needs
arbitrary unpickling.

The file is what a resume needs; its record in the store follows through the run's
writer. A save waits for that record only a bounded time, so a locked or full
database never stops training: until the store takes the record, the run itself
knows the checkpoint (for ``load_checkpoint`` and retention), and files that
retention drops are deleted only once the store no longer lists them.

Examples:
    >>> run.save_checkpoint(models=model, optimizers=opt, metric=("valid/acc", 0.91), mode="max")
    >>> run.load_checkpoint("best", models=model)
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from epochal.atomic import atomic_write, clean_stale_temporaries
from epochal.errors import CheckpointError, EpochalWarning, RunStateError
from epochal.store.records import Checkpoint
from epochal.store.store import storable_text
from epochal.store.writer import removal

if TYPE_CHECKING:
    from epochal.run import Run

# torch is imported inside the functions that need it, so that `import epochal` (and with it
# every `epochal ls`) does not pay for importing torch.

FORMAT = "epochal-checkpoint"
KINDS = ("resume", "weights")
VERSION = 1
#: Seconds a save waits for the store to record its checkpoint before it warns and goes on.
RECORD_TIMEOUT_S = 5.0
_SINGLE_NAMES = {"models": "model", "optimizers": "optimizer", "schedulers": "scheduler"}


def _newness(checkpoint: Checkpoint) -> tuple[int, int, int]:
    """Sort key, oldest first: the order of saving, never the clock (which can step back)."""
    return checkpoint.seq, checkpoint.step, checkpoint.epoch


@dataclass(frozen=True)
class Retention:
    """Which of a run's checkpoints to keep after each save; the rest are deleted.

    A checkpoint is kept if any rule keeps it. "Newest" means saved last.

    Examples:
        >>> Retention(last=3, best=1, every_n_epochs=10)
    """

    last: int = 1  # the newest `last` checkpoints
    best: int = 1  # the `best` best by their metric (only checkpoints saved with a metric)
    every_n_epochs: int | None = None  # also every checkpoint whose epoch is a multiple of this

    def __post_init__(self) -> None:
        if self.last < 1:
            raise ValueError(f"Retention.last must be at least 1 (the checkpoint to resume from), got {self.last}")
        if self.best < 0:
            raise ValueError(f"Retention.best must be 0 or more, got {self.best}")
        if self.every_n_epochs is not None and self.every_n_epochs < 1:
            raise ValueError(f"Retention.every_n_epochs must be None or at least 1, got {self.every_n_epochs}")

    def keep(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        """The checkpoints this policy keeps, in the order given."""
        newest_first = sorted(checkpoints, key=_newness, reverse=True)
        kept = set(c.path for c in newest_first[: self.last])
        ranked = sorted(
            (c for c in checkpoints if c.metric_value is not None and not math.isnan(c.metric_value) and c.mode),
            key=lambda c: (c.metric_value if c.mode == "min" else -c.metric_value, _newness(c)),
        )
        kept.update(c.path for c in ranked[: self.best])
        if self.every_n_epochs:
            kept.update(c.path for c in checkpoints if c.epoch % self.every_n_epochs == 0)
        return [c for c in checkpoints if c.path in kept]


@dataclass(frozen=True, eq=False)
class LoadedCheckpoint:
    """What :func:`load` restored."""

    path: Path
    step: int
    epoch: int
    metric: tuple[str, float] | None
    extra: Any  # as saved; NumPy arrays come back as tensors
    record: Checkpoint | None  # the store's record, when loaded from a run


@dataclass(eq=False)
class _Book:
    """What one Run object did to its checkpoints that the store may not show yet."""

    saved: dict[str, Checkpoint] = field(default_factory=dict)  # path -> record, maybe still queued
    removed: set[str] = field(default_factory=set)  # paths whose removal is queued
    doomed: list[str] = field(default_factory=list)  # files to delete once the store no longer lists them
    count: int = 0  # saves so far; with the run's segment, the save sequence
    unrecorded: bool = False  # the store did not take the last records in time (warned once)


_books: weakref.WeakKeyDictionary[Run, _Book] = weakref.WeakKeyDictionary()


def _book(run: Run) -> _Book:
    book = _books.get(run)
    if book is None:
        book = _books[run] = _Book()
    return book


def save(
    run: Run,
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
    """Save a checkpoint of ``run`` at its current step and epoch, then apply ``retention``.

    The file is written first, under a name of its own (a second save at the same step and
    epoch gets a ``-1``, ``-2``, ... suffix). Its record then goes to the store through the
    run's writer; if the store has not taken it within ``timeout`` seconds (locked, full), an
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
        timeout: seconds to wait for the store to record the checkpoint; default
            ``RECORD_TIMEOUT_S`` (5).

    Raises:
        CheckpointError: the file cannot be written (nothing is recorded then), or a value
            cannot be held safely.
        RunStateError: the run is finished.
    """
    if run._finished:
        raise RunStateError(f"run {run.name!r} ({run.id}) is finished; resume it to save checkpoints")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "weights" and (optimizers is not None or schedulers is not None or scaler is not None):
        raise ValueError("a 'weights' checkpoint holds models only; save optimizers and schedulers with kind='resume'")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    timeout = RECORD_TIMEOUT_S if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(f"timeout is a number of seconds, 0 or more, got {timeout!r}")
    metric_key, metric_value = _metric(metric)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run.id,
        "step": run.steps,
        "epoch": run.epochs,
        "created": time.time(),
        "metric": None if metric_key is None else {"key": metric_key, "value": metric_value, "mode": mode},
        "models": _states("models", models),
        "optimizers": _states("optimizers", optimizers),
        "schedulers": _states("schedulers", schedulers),
        "scaler": None if scaler is None else _safe(scaler.state_dict(), "scaler"),
        "extra": _safe(extra, "extra"),
        "rng": rng_state(),
    }
    book = _book(run)
    known = _known(run, book)
    prefix = "" if kind == "resume" else "weights-"
    relative = _free_name(run, book, known, f"{prefix}step{run.steps:09d}-epoch{run.epochs:05d}")
    size, digest = write_atomic(Path(run.path) / relative, payload)
    book.count += 1
    record = Checkpoint(
        run_id=run.id, path=relative, step=run.steps, epoch=run.epochs, size=size, sha256=digest,
        created=payload["created"], metric_key=metric_key, metric_value=metric_value,
        mode=mode if metric_key is not None else None, kind=kind,
        seq=(run.segment << 32) + book.count,  # later sessions (segments) sort after earlier ones
    )
    book.saved[relative] = record
    run._writer.submit(record)
    _apply_retention(run, book, [*known, record], retention or Retention(), kind)
    _settle(run, book, timeout)
    clean_stale_temporaries(Path(run.path) / "checkpoints")
    return record


def load(
    run: Run | None,
    which: str | os.PathLike | Checkpoint = "last",
    *,
    models: Any = None,
    optimizers: Any = None,
    schedulers: Any = None,
    scaler: Any = None,
    restore_rng: bool = True,
    strict: bool = True,
    map_location: Any = "cpu",
) -> LoadedCheckpoint:
    """Load a checkpoint into the objects given, restore random states and the run's counters.

    Every object is checked against the checkpoint (keys and shapes of each model, the
    parameter groups of each optimizer) before any is changed.

    Args:
        which: 'last', 'best' (by the metric it was saved with), a checkpoint record, or a path.
            'last' is the newest resumable checkpoint whose file is present and matches its
            recorded sha256; newer ones that do not are skipped with a warning.
        restore_rng: put the Python, NumPy and torch random generators back as they were.
        strict: models must match the saved state dicts key for key.

    Raises:
        CheckpointError: no usable checkpoint, a damaged file, or a checkpoint that does not
            fit the objects given (another architecture, other parameter groups).
    """
    record = None
    if isinstance(which, Checkpoint):
        record = which
        if run is None:
            raise CheckpointError("loading a checkpoint record needs its run; give a path to load without one")
        folder = Path(run.path if record.run_id == run.id else run.store.run(record.run_id).path)
        path = folder / record.path
        problem = _problem(folder, record)
        if problem is not None:
            raise CheckpointError(f"checkpoint {record.path}: {problem}")
    elif isinstance(which, str) and which in ("last", "best"):
        if run is None:
            raise CheckpointError(f"which={which!r} needs a run; give a path to load without one")
        record, path = _pick(run, which)
    else:
        path = Path(which)
    payload = read(path)
    step, epoch = _counter(payload, "step", path), _counter(payload, "epoch", path)
    pairs = [
        (kind, name, obj, state)
        for kind, given in (("models", models), ("optimizers", optimizers), ("schedulers", schedulers))
        for name, obj, state in _match(kind, given, payload.get(kind), path)
    ]
    misfits = [f"{kind}[{name!r}]: {problem}" for kind, name, obj, state in pairs
               if (problem := _misfit(kind, obj, state, strict)) is not None]
    if misfits:
        raise CheckpointError(
            f"checkpoint {path} does not fit the objects given (saved from another architecture or "
            f"optimizer set-up?); nothing was loaded. " + "; ".join(misfits)
        )
    if scaler is not None and payload.get("scaler") is None:
        raise CheckpointError(f"checkpoint {path} holds no scaler state")
    for kind, name, obj, state in pairs:
        _load_into(path, f"{kind}[{name!r}]", obj, state, strict if kind == "models" else None)
    if scaler is not None:
        _load_into(path, "scaler", scaler, payload["scaler"], None)
    if restore_rng:
        try:
            set_rng_state(payload["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise CheckpointError(f"checkpoint {path} holds random states that cannot be restored: {exc!r}") from exc
    if run is not None:
        run._restore_counters(step, epoch)
    metric = payload.get("metric")
    return LoadedCheckpoint(
        path=path, step=step, epoch=epoch,
        metric=None if not isinstance(metric, Mapping) else (metric.get("key"), metric.get("value")),
        extra=payload.get("extra"), record=record,
    )


# -- files ---------------------------------------------------------------------------------------

def write_atomic(target: Path, payload: Any) -> tuple[int, str]:
    """``torch.save`` ``payload`` to ``target`` with :func:`epochal.atomic.atomic_write`.

    Returns:
        The file's (size, sha256).

    Raises:
        CheckpointError: the file cannot be written (disk full, no permission, ...); ``target`` is unchanged.
    """
    import torch

    target = Path(target)
    try:
        atomic_write(target, lambda file: torch.save(payload, file))
        return target.stat().st_size, file_sha256(target)
    except OSError as exc:
        raise CheckpointError(f"cannot write {target}: {exc}") from exc


def read(path: str | os.PathLike) -> dict:
    """Load a checkpoint file with ``weights_only=True`` and check it is one of ours."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an epochal checkpoint")
    version = payload.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {version!r}; upgrade epochal to read it")
    return payload


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# -- random states --------------------------------------------------------------------------------


def rng_state() -> dict:
    """The Python, NumPy and torch (CPU and, if in use, CUDA) random states, in safe types."""
    import torch

    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    import torch

    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            torch.cuda.set_rng_state(state["cuda"][0])


# -- helpers ---------------------------------------------------------------------------------------


def _metric(metric: tuple[str, Any] | None) -> tuple[str | None, float | None]:
    import torch

    if metric is None:
        return None, None
    if not (isinstance(metric, tuple) and len(metric) == 2 and isinstance(metric[0], str)):
        raise TypeError(f"metric is a (key, value) pair such as ('valid/acc', 0.91), got {metric!r}")
    key, value = metric
    if not key:
        raise ValueError("the metric's key is empty; give the key it was logged under, such as 'valid/acc'")
    storable_text(key, "the metric's key")
    if isinstance(value, torch.Tensor):
        value = value.item()
    try:
        return key, float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric value for {key!r} must be a number, got {value!r}") from None
    except OverflowError:
        raise ValueError(f"metric value for {key!r} is {value!r:.60}, too large for a float64") from None


def _named(kind: str, objects: Any) -> dict[str, Any]:
    if objects is None:
        return {}
    if isinstance(objects, Mapping):
        return {str(name): obj for name, obj in objects.items()}
    if isinstance(objects, (list, tuple)):
        return {str(i): obj for i, obj in enumerate(objects)}
    return {_SINGLE_NAMES[kind]: objects}


def _states(kind: str, objects: Any) -> dict[str, Any]:
    states = {}
    for name, obj in _named(kind, objects).items():
        if not hasattr(obj, "state_dict"):
            raise TypeError(f"{kind}[{name!r}] is a {type(obj).__name__}, which has no state_dict()")
        states[name] = _safe(obj.state_dict(), f"{kind}[{name!r}]")
    return states


def _match(kind: str, given: Any, saved: Any, path: Path) -> Iterator[tuple[str, Any, Any]]:
    """(name, object, saved state) for each object given."""
    objects = _named(kind, given)
    if not objects:
        return
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"checkpoint {path} holds no {kind}")
    if len(objects) == 1 and len(saved) == 1 and not isinstance(given, (Mapping, list, tuple)):
        # One object given, one saved: they go together whatever their names.
        yield next(iter(objects)), next(iter(objects.values())), next(iter(saved.values()))
        return
    for name, obj in objects.items():
        if name not in saved:
            raise CheckpointError(f"checkpoint {path} has no {kind}[{name!r}]; it holds {sorted(saved) or 'none'}")
        yield name, obj, saved[name]


def _misfit(kind: str, obj: Any, state: Any, strict: bool) -> str | None:
    """What keeps ``state`` from loading into ``obj``, found without changing it; None if it fits."""
    import torch

    if kind == "models" and isinstance(obj, torch.nn.Module):
        if not isinstance(state, Mapping):
            return f"the checkpoint holds a {type(state).__name__}, not a state dict"
        own = obj.state_dict()
        problems = []
        if strict:
            missing = [k for k in own if k not in state]
            unexpected = [k for k in state if k not in own]
            if missing:
                problems.append(f"missing from the checkpoint: {_few(missing)}")
            if unexpected:
                problems.append(f"not in the model: {_few(unexpected)}")
        shapes = [
            f"{k} is {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in the model"
            for k, v in state.items()
            if k in own and isinstance(v, torch.Tensor) and isinstance(own[k], torch.Tensor)
            and not isinstance(own[k], torch.nn.parameter.UninitializedTensorMixin) and v.shape != own[k].shape
        ]
        if shapes:
            problems.append(f"{len(shapes)} shape{'s' if len(shapes) > 1 else ''} differ: {_few(shapes)}")
        return "; ".join(problems) or None
    if kind == "optimizers" and isinstance(obj, torch.optim.Optimizer):
        groups = state.get("param_groups") if isinstance(state, Mapping) else None
        if not isinstance(groups, list) or not all(isinstance(g, Mapping) and "params" in g for g in groups):
            return "the checkpoint holds no parameter groups"
        saved = [len(g["params"]) for g in groups]
        own = [len(g["params"]) for g in obj.param_groups]
        if saved != own:
            return f"parameters per group are {saved} in the checkpoint, {own} in the optimizer"
    return None


def _load_into(path: Path, what: str, obj: Any, state: Any, strict: bool | None) -> None:
    try:
        if strict is None:
            obj.load_state_dict(state)
        else:
            obj.load_state_dict(state, strict=strict)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit {what}: {exc}") from exc


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown if len(items) <= n else f"{shown} and {len(items) - n} more"


def _counter(payload: Mapping, name: str, path: Path) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise CheckpointError(f"checkpoint {path} holds {name} {value!r}; expected an integer from 0 to 2**63 - 1")
    return value


_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes)


def _safe(value: Any, where: str) -> Any:
    """The value with NumPy data as tensors; an error for anything weights_only cannot load."""
    import torch

    if isinstance(value, (*_PLAIN_LEAVES, torch.Tensor, torch.dtype, torch.device, torch.Size)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        items = {k: _safe(v, f"{where}[{k!r}]") for k, v in value.items()}
        # Hand back the original when nothing changed: a state_dict keeps its _metadata.
        return value if all(items[k] is v for k, v in value.items()) else items
    if isinstance(value, (list, tuple)):
        converted = [_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if all(a is b for a, b in zip(converted, value)):
            return value
        return converted if isinstance(value, list) else tuple(converted)
    raise CheckpointError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a checkpoint cannot hold "
        "safely; store its state_dict() or plain values, tensors and arrays instead"
    )


# -- which checkpoints a run has ----------------------------------------------------------------------


def _known(run: Run, book: _Book) -> list[Checkpoint]:
    """The run's checkpoints as the store lists them, with what this Run object has queued."""
    try:
        stored = run.store.checkpoints(run.id)
    except Exception as exc:  # a store that cannot even be read: go by what this process knows
        _warn(f"epochal: cannot read the checkpoints of run {run.name!r} ({run.id}) from the store ({exc}); "
              "going by those saved in this process")
        stored = []
    known = {c.path: c for c in stored}
    known.update(book.saved)
    for path in book.removed:
        known.pop(path, None)
    return sorted(known.values(), key=_newness)


def _free_name(run: Run, book: _Book, known: list[Checkpoint], stem: str) -> str:
    """``checkpoints/<stem>.pt``, or with a ``-N`` suffix when a checkpoint has (or had) that name."""
    taken = {c.path for c in known} | book.removed | set(book.doomed)
    for n in range(1_000_000):
        relative = f"checkpoints/{stem}{f'-{n}' if n else ''}.pt"
        if relative not in taken and not os.path.lexists(Path(run.path) / relative):
            return relative
    raise CheckpointError(f"run {run.name!r} ({run.id}) has a million checkpoints named {stem}; clean its folder")


def _problem(folder: Path, record: Checkpoint) -> str | None:
    """Why the file of ``record`` in the run folder ``folder`` cannot be loaded; None if it is there
    and matches its recorded sha256."""
    path = folder / record.path
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        return "its path leads outside the run's folder"
    if not path.is_file():
        return "its file is missing"
    try:
        if file_sha256(path) != record.sha256:
            return "its file does not match its recorded sha256 (changed or damaged)"
    except OSError as exc:
        return f"its file cannot be read ({exc})"
    return None


def _pick(run: Run, which: str) -> tuple[Checkpoint, Path]:
    checkpoints = _known(run, _book(run))
    if not checkpoints:
        raise CheckpointError(
            f"run {run.name!r} ({run.id}) has no checkpoints to load. "
            "Start training from the beginning (with the Trainer: fit() without resume=True)"
        )
    if which == "best":
        scored = [c for c in checkpoints if c.metric_value is not None and c.mode]
        if not scored:
            raise CheckpointError(
                f"run {run.name!r} ({run.id}) has no checkpoint saved with a metric, so none is 'best'"
            )
        best = scored[0]
        for ckpt in scored[1:]:
            if ckpt.better_than(best):
                best = ckpt
        path = Path(run.path) / best.path
        problem = _problem(Path(run.path), best)
        if problem is not None:
            raise CheckpointError(
                f"the best checkpoint of run {run.name!r} ({run.id}), {best.path}, cannot be loaded: {problem}"
            )
        return best, path
    resumable = sorted((c for c in checkpoints if c.kind == "resume"), key=_newness, reverse=True)
    if not resumable:
        raise CheckpointError(f"run {run.name!r} ({run.id}) has no resumable checkpoint, only model weights")
    skipped = []
    for ckpt in resumable:
        path = Path(run.path) / ckpt.path
        problem = _problem(Path(run.path), ckpt)
        if problem is None:
            if skipped:
                _warn(f"epochal: run {run.name!r} ({run.id}): loading {ckpt.path} (step {ckpt.step}, epoch "
                      f"{ckpt.epoch}); skipped newer checkpoints that cannot be loaded: {'; '.join(skipped)}")
            return ckpt, path
        skipped.append(f"{ckpt.path} ({problem})")
    raise CheckpointError(
        f"run {run.name!r} ({run.id}) has no usable checkpoint: {'; '.join(skipped)}. Load a checkpoint file "
        "by its path if you have a copy, or start training from the beginning (with the Trainer: fit() "
        "without resume=True)"
    )


def _apply_retention(run: Run, book: _Book, checkpoints: list[Checkpoint], retention: Retention, kind: str) -> None:
    """Queue the removal of the records retention drops; their files go once the store agrees."""
    same_kind = [c for c in checkpoints if c.kind == kind]
    kept = {c.path for c in retention.keep(same_kind)}
    doomed = [c for c in same_kind if c.path not in kept]
    if not doomed:
        return
    run._writer.submit(*(removal(c) for c in doomed))
    for ckpt in doomed:
        book.saved.pop(ckpt.path, None)
        book.removed.add(ckpt.path)
        book.doomed.append(ckpt.path)


def _settle(run: Run, book: _Book, timeout: float) -> None:
    """Wait up to ``timeout`` for the store to take what this run queued, then delete dropped files.

    A dropped file is deleted only when the store holds every checkpoint saved since and no longer
    lists the dropped one: a crash at any point leaves the store naming files that are there.
    """
    # While the store is known to refuse writes, a save does not wait for it again: one wait per episode.
    if not run.flush(0.0 if book.unrecorded and run.writes_failing else timeout):
        if not book.unrecorded:
            waiting = ", ".join(sorted(book.saved)) or "none"
            _warn(
                f"epochal: run {run.name!r} ({run.id}): the store did not take the checkpoint records within "
                f"{timeout} s (see the warnings above for why); the files are saved and this run loads them, "
                f"their records are written when the store accepts writes again (waiting: {waiting}). Files "
                "that retention drops are kept until then. Later saves do not wait while the store refuses."
            )
        book.unrecorded = True
        return
    book.unrecorded = False
    try:
        stored = {c.path for c in run.store.checkpoints(run.id)}
    except Exception:
        return  # not confirmed: delete nothing now; the next save tries again
    if any(path not in stored for path in book.saved) or any(path in stored for path in book.removed):
        return
    for path in book.doomed:
        (Path(run.path) / path).unlink(missing_ok=True)
    book.saved.clear()
    book.removed.clear()
    book.doomed.clear()


def _warn(message: str) -> None:
    # Points at the caller of run.save_checkpoint / run.load_checkpoint.
    warnings.warn(message, EpochalWarning, stacklevel=5)
