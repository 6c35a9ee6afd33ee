"""The checkpoint file format: write, read, verify, and the random states it carries.

A checkpoint holds model, optimizer and scheduler state dicts, the AMP scaler, the Python,
NumPy, torch CPU and CUDA random states, the run's step and epoch, an optional metric and any
``extra`` state. It is written atomically (a temporary file, fsynced, renamed into place) and
loads with ``torch.load(weights_only=True)``: nothing in it needs arbitrary unpickling.

This module knows files, not runs: :mod:`epochal.run_checkpoints` names, records and retains a
run's checkpoints, and :meth:`epochal.Run.save_checkpoint` / :meth:`~epochal.Run.load_checkpoint`
are how a user reaches both.

Examples:
    >>> run.save_checkpoint(models=model, optimizers=opt, metric=("valid/acc", 0.91), mode="max")
    >>> run.load_checkpoint("best", models=model)
    >>> epochal.checkpoint.load("model.pt", models=model)      # a file, without its run
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.errors import CheckpointError
from epochal.store.records import Checkpoint

# torch is imported inside the functions that need it, so that `import epochal` (and with it
# every `epochal ls`) does not pay for importing torch.

FORMAT = "epochal-checkpoint"
VERSION = 1
_SINGLE_NAMES = {"models": "model", "optimizers": "optimizer", "schedulers": "scheduler"}


@dataclass(frozen=True, eq=False)
class LoadedCheckpoint:
    """What :func:`load` restored."""

    path: Path
    step: int
    epoch: int
    metric: tuple[str, float] | None
    extra: Any  # as saved; NumPy arrays come back as tensors
    record: Checkpoint | None  # the store's record, when loaded from a run


def payload(*, run_id: str, step: int, epoch: int, created: float, metric: tuple[str, Any] | None = None,
            mode: str = "max", models: Any = None, optimizers: Any = None, schedulers: Any = None,
            scaler: Any = None, extra: Any = None, ranks: list | None = None) -> dict:
    """What a checkpoint file holds, every value in a type ``weights_only`` loading accepts.

    Under DDP, ``ranks`` holds each rank's ``{"extra": ..., "rng": ...}`` (rank 0's are also the
    file's own ``extra`` and ``rng``), and ``world_size`` says how many ranks saved it.

    Raises:
        CheckpointError: a value cannot be held safely (an arbitrary object rather than its state).
        TypeError, ValueError: ``metric`` is not a ``(key, number)`` pair.
    """
    metric_key, metric_value = checked_metric(metric)
    return {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run_id,
        "step": step,
        "epoch": epoch,
        "created": created,
        "metric": None if metric_key is None else {"key": metric_key, "value": metric_value, "mode": mode},
        "models": _states("models", models),
        "optimizers": _states("optimizers", optimizers),
        "schedulers": _states("schedulers", schedulers),
        "scaler": None if scaler is None else _safe(scaler.state_dict(), "scaler"),
        "extra": _safe(extra, "extra"),
        "rng": rng_state(),
        "world_size": 1 if ranks is None else len(ranks),
        "ranks": None if ranks is None else _safe(ranks, "ranks"),
    }


def load(
    path: str | os.PathLike,
    *,
    models: Any = None,
    optimizers: Any = None,
    schedulers: Any = None,
    scaler: Any = None,
    restore_rng: bool = True,
    strict: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> LoadedCheckpoint:
    """Load the checkpoint file at ``path`` into the objects given and restore the random states.

    Every object is checked against the checkpoint (keys and shapes of each model, the
    parameter groups of each optimizer) before any is changed.

    Args:
        models, optimizers, schedulers: one object, a list, or a dict name -> object, as saved.
        scaler: a ``torch.amp.GradScaler`` to restore.
        restore_rng: put the Python, NumPy and torch random generators back as they were.
        strict: models must match the saved state dicts key for key.
        rank, world_size: this process's place in a DDP job: a checkpoint saved by several ranks
            gives each rank its own ``extra`` and random states back. Restoring the random states
            of a checkpoint saved by another number of ranks is refused.

    Raises:
        CheckpointError: a missing or damaged file, or a checkpoint that does not fit the objects
            given (another architecture, other parameter groups); nothing is changed then.
    """
    path = Path(path)
    payload = read(path)
    step, epoch = _counter(payload, "step", path), _counter(payload, "epoch", path)
    own = _own_state(payload, path, rank, world_size, restore_rng)
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
            set_rng_state(own["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise CheckpointError(f"checkpoint {path} holds random states that cannot be restored: {exc!r}") from exc
    metric = payload.get("metric")
    return LoadedCheckpoint(
        path=path, step=step, epoch=epoch,
        metric=None if not isinstance(metric, Mapping) else (metric.get("key"), metric.get("value")),
        extra=own.get("extra"), record=None,
    )


def _own_state(payload: Mapping, path: Path, rank: int, world_size: int, restore_rng: bool) -> Mapping:
    """This rank's ``extra`` and random states in ``payload``."""
    saved = payload.get("world_size", 1)
    if saved != world_size and restore_rng:
        raise CheckpointError(
            f"checkpoint {path} was saved by a job of {saved} rank(s) and this one has {world_size}: each rank's "
            f"random states and data position are in it, so it resumes with {saved} (torchrun --nproc_per_node="
            f"{saved}, or a single process for 1); load it with restore_rng=False to take its weights alone"
        )
    ranks = payload.get("ranks")
    if ranks and saved == world_size:
        return ranks[rank]
    return {"extra": payload.get("extra"), "rng": payload.get("rng")}


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


def load_file(path: str | os.PathLike) -> Any:
    """``torch.load`` a file onto the CPU with ``weights_only=True``, in any format.

    Raises:
        CheckpointError: the file is missing or cannot be loaded (damaged, or holds more than tensors).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from exc


def read(path: str | os.PathLike) -> dict:
    """Load a checkpoint file with ``weights_only=True`` and check it is one of ours."""
    path = Path(path)
    payload = load_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an epochal checkpoint")
    version = payload.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {version!r}; upgrade epochal to read it")
    return payload


def verify(folder: Path, relative: str, sha256: str) -> str | None:
    """Why the checkpoint file ``relative`` in the run folder ``folder`` cannot be loaded; None if it
    is there, inside the folder, and matches ``sha256``."""
    path = folder / relative
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        return "its path leads outside the run's folder"
    if not path.is_file():
        return "its file is missing"
    try:
        if file_sha256(path) != sha256:
            return "its file does not match its recorded sha256 (changed or damaged)"
    except OSError as exc:
        return f"its file cannot be read ({exc})"
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# -- random states --------------------------------------------------------------------------------


def on_cpu(value: Any) -> Any:
    """``value`` with every tensor in it copied to the CPU (to send it to another rank)."""
    import torch

    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(v) for v in value)
    return value


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


def checked_metric(metric: tuple[str, Any] | None) -> tuple[str | None, float | None]:
    """``(key, value)`` checked: a non-empty key and a number (a one-element tensor too); (None, None) for None."""
    import torch

    if metric is None:
        return None, None
    if not (isinstance(metric, tuple) and len(metric) == 2 and isinstance(metric[0], str)):
        raise TypeError(f"metric is a (key, value) pair such as ('valid/acc', 0.91), got {metric!r}")
    key, value = metric
    if not key:
        raise ValueError("the metric's key is empty; give the key it was logged under, such as 'valid/acc'")
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
