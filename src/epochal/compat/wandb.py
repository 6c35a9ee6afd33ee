"""A one-import shim for code written against ``wandb``: ``import epochal.compat.wandb as wandb``.

    >>> import epochal.compat.wandb as wandb
    >>> run = wandb.init(project="mnist", config={"lr": 1e-3})
    >>> wandb.config.update({"batch": 64})
    >>> wandb.log({"train/loss": 0.5})             # at step 0, then the step moves to 1
    >>> wandb.log({"valid/acc": 0.9, "epoch": 0})  # 'epoch' is the point's epoch, not a series
    >>> wandb.summary["best/acc"] = 0.93
    >>> wandb.finish()

Everything goes into an epochal run through its public API. ``log`` follows wandb's step rules:
without ``step`` each call is committed at the current step, which then moves on by one;
``commit=False`` adds to the current step without moving on; with ``step=`` values gather at that
step until a call names a later one (or commits), and a step before the current one is dropped with a
warning, as wandb drops it. Values that are not numbers (media, tables, strings) are skipped with one
warning per key; nested dicts become ``outer/inner`` keys. Setting ``summary[key]`` logs the value at the
current step, so it is the key's last value. What epochal has no counterpart for (``watch``, artifacts,
sweeps) raises ``NotImplementedError`` naming the call.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import epochal
from epochal.checks import to_float
from epochal.errors import EpochalWarning

__all__ = ["Config", "Run", "Summary", "config", "finish", "init", "log", "run", "summary", "watch"]

#: The current run, its config and summary, as ``wandb.run`` etc.; None before ``init``.
run: Run | None = None
config: Config | None = None
summary: Summary | None = None


def init(project: str | None = None, name: str | None = None, *, config: Mapping[str, Any] | None = None,
         tags: Iterable[str] | None = None, notes: str | None = None, id: str | None = None,  # noqa: A002
         resume: bool | str | None = None, dir: str | None = None, mode: str | None = None,  # noqa: A002
         **ignored: Any) -> Run:
    """Start a run (or, with ``id`` and ``resume``, continue that epochal run) and make it current.

    ``dir`` is the epochal store directory (default ``$EPOCHAL_DIR``, else ``./epochal-runs``);
    ``mode="disabled"`` gives a run that records nothing. Other wandb arguments (``entity``, ``group``,
    ``job_type``, ``settings``, ...) have no counterpart and are ignored.
    """
    if run is not None:
        run.finish()
    if mode not in (None, "online", "offline", "disabled"):
        raise ValueError(f"mode must be 'online', 'offline' or 'disabled', got {mode!r}")
    if mode == "disabled":
        recorder = None
    elif id is not None and resume:
        recorder = epochal.resume(id, store=dir)
        if config:
            recorder.update_config(dict(config))
    else:
        recorder = epochal.start(project or "wandb", name, config=dict(config or {}), tags=tags or (),
                                 description=notes or "", store=dir)
    return _make_current(Run(recorder))


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``run.log`` of the current run."""
    _current().log(data, step=step, commit=commit)


def finish(exit_code: int | None = None) -> None:
    """End the current run: 'finished', or 'failed' for a non-zero ``exit_code``."""
    if run is not None:
        run.finish(exit_code)
    _make_current(None)


def watch(*args: Any, **kwargs: Any) -> None:
    raise NotImplementedError("wandb.watch (gradient and parameter histograms) has no counterpart in epochal; "
                              "log the values you want with wandb.log")


class Run:
    """What ``wandb.init`` returns: ``log``, ``config``, ``summary``, ``finish``, ``id``, ``name``."""

    def __init__(self, recorder: epochal.Run | None):
        self._run = recorder
        self._step = 0 if recorder is None else recorder.steps
        self._pending: dict[str, float] = {}
        self._pending_epoch: int | None = None
        self._skipped: set[str] = set()
        self.config = Config(self)
        self.summary = Summary(self)

    @property
    def id(self) -> str:
        return "" if self._run is None else self._run.id

    @property
    def name(self) -> str:
        return "" if self._run is None else self._run.name

    @property
    def project(self) -> str:
        return "" if self._run is None else self._run.project

    @property
    def step(self) -> int:
        return self._step

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"wandb.log takes a dict of key -> value, got {type(data).__name__}")
        if step is not None:
            if step < self._step:
                warnings.warn(f"epochal.compat.wandb: step {step} is before the current step {self._step}; its "
                              f"values ({', '.join(map(str, data))}) are dropped, as wandb drops them",
                              EpochalWarning, stacklevel=3)
                return
            if step > self._step:
                self._commit()
                self._step = step
        for key, value in _flat(data):
            if key == "epoch" and isinstance(value, numbers.Integral) and value >= 0:
                self._pending_epoch = int(value)
            elif (number := self._number(key, value)) is not None:
                self._pending[key] = number
        if commit or (commit is None and step is None):
            self._commit()
            self._step += 1
            if self._run is not None:
                self._run.set_counters(self._step, self._run.epochs)

    def finish(self, exit_code: int | None = None) -> None:
        self._commit()
        if self._run is not None and not self._run.finished:
            self._run.finish("failed" if exit_code else "finished")

    def _commit(self) -> None:
        if self._pending and self._run is not None:
            self._run.log(self._pending, step=self._step, epoch=self._pending_epoch)
        if self._pending_epoch is not None and self._run is not None and self._pending_epoch > self._run.epochs:
            self._run.set_counters(self._run.steps, self._pending_epoch)
        self._pending, self._pending_epoch = {}, None

    def _number(self, key: str, value: Any) -> float | None:
        try:
            number = to_float(key, value)
        except (TypeError, ValueError):
            number = None
        if number is None and key not in self._skipped:  # a string, an image, a table, a tensor of several values
            self._skipped.add(key)
            warnings.warn(f"epochal.compat.wandb: {key!r} is not a number ({type(value).__name__}); it is skipped",
                          EpochalWarning, stacklevel=4)
        return number


class Config:
    """``wandb.config``: read as attributes or items, changed with ``update`` or assignment."""

    def __init__(self, owner: Run):
        object.__setattr__(self, "_owner", owner)

    def _data(self) -> Mapping[str, Any]:
        recorder = self._owner._run
        return {} if recorder is None else recorder.config.to_dict()

    def update(self, values: Mapping[str, Any] | Any = None, allow_val_change: bool = True, **more: Any) -> None:
        values = dict(vars(values) if values is not None and not isinstance(values, Mapping) else values or {}, **more)
        if self._owner._run is not None and values:
            self._owner._run.update_config(values)

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data()[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    __setattr__ = __setitem__

    def __contains__(self, key: object) -> bool:
        return key in self._data()

    def keys(self) -> Any:
        return self._data().keys()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data())


class Summary:
    """``wandb.summary``: each key's last value; setting one logs it at the current step."""

    def __init__(self, owner: Run):
        self._owner = owner

    def __getitem__(self, key: str) -> float:
        recorder = self._owner._run
        if recorder is None:
            raise KeyError(key)
        self._owner._commit()
        return recorder.summary[key].last

    def __setitem__(self, key: str, value: Any) -> None:
        number = self._owner._number(key, value)
        if number is not None and self._owner._run is not None:
            self._owner._run.log({key: number}, step=self._owner._step)

    def update(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self[key] = value


def _make_current(new: Run | None) -> Run | None:
    """``wandb.run``, ``wandb.config`` and ``wandb.summary`` become ``new``'s."""
    global run, config, summary
    run, config, summary = new, None if new is None else new.config, None if new is None else new.summary
    return new


def _current() -> Run:
    if run is None:
        raise RuntimeError("call wandb.init() before wandb.log()")
    return run


def _flat(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from _flat(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value
