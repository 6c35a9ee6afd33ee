"""Checkpoints: everything needed to resume a run exactly, written atomically.

A checkpoint holds model, optimizer and scheduler state dicts, the AMP scaler, the
Python, NumPy, torch CPU and CUDA random states, the run's step and epoch, an
optional metric and any ``extra`` state. It is written to a temporary file,
fsynced and renamed into place, so a crash never leaves a half-written file under
a real name, and it loads with ``torch.load(weights_only=True)``: nothing in it
needs arbitrary unpickling.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from epochal.errors import CheckpointError
from epochal.store.records import Checkpoint
from epochal.store.writer import removal

if TYPE_CHECKING:
    from epochal.run import Run

# torch is imported inside the functions that need it, so that `import epochal` (and with it
# every `epochal ls`) does not pay for importing torch.

FORMAT = "epochal-checkpoint"
KINDS = ("resume", "weights")
VERSION = 1
_SINGLE_NAMES = {"models": "model", "optimizers": "optimizer", "schedulers": "scheduler"}


@dataclass(frozen=True)
class Retention:
    """Which of a run's checkpoints to keep after each save; the rest are deleted.

    A checkpoint is kept if any rule keeps it.

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
        """The checkpoints this policy keeps, oldest first."""
        newest_first = sorted(checkpoints, key=lambda c: (c.created, c.step), reverse=True)
        kept = set(c.path for c in newest_first[: self.last])
        ranked = sorted(
            (c for c in checkpoints if c.metric_value is not None and not math.isnan(c.metric_value) and c.mode),
            key=lambda c: (c.metric_value if c.mode == "min" else -c.metric_value, c.created),
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
) -> Checkpoint:
    """Save a checkpoint of ``run`` at its current step and epoch, then apply ``retention``.

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
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "weights" and (optimizers is not None or schedulers is not None or scaler is not None):
        raise ValueError("a 'weights' checkpoint holds models only; save optimizers and schedulers with kind='resume'")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
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
    prefix = "" if kind == "resume" else "weights-"
    relative = f"checkpoints/{prefix}step{run.steps:09d}-epoch{run.epochs:05d}.pt"
    target = Path(run.path) / relative
    size, digest = write_atomic(target, payload)
    record = Checkpoint(
        run_id=run.id, path=relative, step=run.steps, epoch=run.epochs, size=size, sha256=digest,
        created=payload["created"], metric_key=metric_key, metric_value=metric_value,
        mode=mode if metric_key is not None else None, kind=kind,
    )
    run._writer.submit(record)
    run.flush()
    _apply_retention(run, retention or Retention(), kind)
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

    Args:
        which: 'last', 'best' (by the metric it was saved with), a checkpoint record, or a path.
        restore_rng: put the Python, NumPy and torch random generators back as they were.
        strict: models must match the saved state dicts key for key.
    """

    record = None
    if isinstance(which, Checkpoint):
        record = which
    elif which in ("last", "best"):
        if run is None:
            raise CheckpointError(f"which={which!r} needs a run; give a path to load without one")
        record = _pick(run, which)
    if record is not None:
        path = Path(run.store.run(record.run_id).path if run is not None else ".") / record.path
    else:
        path = Path(which)
    if record is not None and path.is_file() and file_sha256(path) != record.sha256:
        raise CheckpointError(f"checkpoint {path} does not match its recorded sha256: the file was changed or damaged")
    payload = read(path)
    for kind, given in (("models", models), ("optimizers", optimizers), ("schedulers", schedulers)):
        for obj, state in _match(kind, given, payload[kind], path):
            if kind == "models":
                obj.load_state_dict(state, strict=strict)
            else:
                obj.load_state_dict(state)
    if scaler is not None:
        if payload.get("scaler") is None:
            raise CheckpointError(f"checkpoint {path} holds no scaler state")
        scaler.load_state_dict(payload["scaler"])
    if restore_rng:
        set_rng_state(payload["rng"])
    if run is not None:
        run._restore_counters(payload["step"], payload["epoch"])
    metric = payload.get("metric")
    return LoadedCheckpoint(
        path=path, step=payload["step"], epoch=payload["epoch"],
        metric=None if metric is None else (metric["key"], metric["value"]),
        extra=payload.get("extra"), record=record,
    )


# -- files ---------------------------------------------------------------------------------------


def write_atomic(target: Path, payload: Any) -> tuple[int, str]:
    """torch.save to a temporary file beside ``target``, fsync, rename. Returns (size, sha256)."""
    import torch

    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        digest = file_sha256(temporary)
        size = temporary.stat().st_size
        os.replace(temporary, target)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot write {target}: {exc}") from exc
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return size, digest


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
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload['version']}; upgrade epochal to read it")
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
    if isinstance(value, torch.Tensor):
        value = value.item()
    try:
        return key, float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric value for {key!r} must be a number, got {value!r}") from None


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


def _match(kind: str, given: Any, saved: Mapping[str, Any], path: Path):
    objects = _named(kind, given)
    if len(objects) == 1 and len(saved) == 1 and not isinstance(given, (Mapping, list, tuple)):
        # One object given, one saved: they go together whatever their names.
        yield next(iter(objects.values())), next(iter(saved.values()))
        return
    for name, obj in objects.items():
        if name not in saved:
            raise CheckpointError(f"checkpoint {path} has no {kind}[{name!r}]; it holds {sorted(saved) or 'none'}")
        yield obj, saved[name]


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


def _pick(run: Run, which: str) -> Checkpoint:
    run.flush()
    checkpoints = run.store.checkpoints(run.id)
    if not checkpoints:
        raise CheckpointError(f"run {run.name!r} ({run.id}) has no checkpoints")
    if which == "last":
        resumable = [c for c in checkpoints if c.kind == "resume"]
        if not resumable:
            raise CheckpointError(f"run {run.name!r} ({run.id}) has no resumable checkpoint, only model weights")
        return max(resumable, key=lambda c: (c.created, c.step))
    scored = [c for c in checkpoints if c.metric_value is not None and c.mode]
    if not scored:
        raise CheckpointError(f"run {run.name!r} ({run.id}) has no checkpoint saved with a metric, so none is 'best'")
    best = scored[0]
    for ckpt in scored[1:]:
        if ckpt.better_than(best):
            best = ckpt
    return best


def _apply_retention(run: Run, retention: Retention, kind: str) -> None:
    checkpoints = [c for c in run.store.checkpoints(run.id) if c.kind == kind]
    kept = {c.path for c in retention.keep(checkpoints)}
    doomed = [c for c in checkpoints if c.path not in kept]
    if not doomed:
        return
    run._writer.submit(*(removal(c) for c in doomed))
    run.flush()
    for ckpt in doomed:
        (Path(run.path) / ckpt.path).unlink(missing_ok=True)
