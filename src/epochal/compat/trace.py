"""The ``trace`` tool's API (Xiangnan Zhang's training tracer) over epochal.

Move a script over by changing its import lines::

    import trace                        ->  from epochal.compat import trace
    from trace import Statistic         ->  from epochal.compat.trace import Statistic

Every value appended to a :class:`Statistic`'s four lists is also logged into an epochal run
(project ``"trace"``, named after the statistics folder unless a name is given) under
``train/loss``, ``train/accuracy``, ``test/loss`` and ``test/accuracy``, each at its index in
its list, so ``epochal ls`` and ``epochal plot`` show the curves.

What differs from the original, on purpose:

- Files are safe to load. The statistics go to ``PATH/statistic.json``; the model goes to
  ``model_path`` as an epochal checkpoint (weights, optimizer and random states; it loads with
  ``torch.load(weights_only=True)``) that is also recorded in the run. Nothing is pickled.
  A ``PATH/object.pkl`` written by the original tool is still read, by an unpickler that accepts
  only the ``Statistic`` class and lists of numbers.
- ``sys_load(model_path, statis_path)`` rebuilds the model from its class, which must be imported
  by the loading script (as the original's README has it), and the constructor arguments that
  :class:`Sys` recorded as plain values; then it loads the weights. Nothing named in the file is
  imported or called but that class. Give it the model and optimizer (``model=``,
  ``optimizer=``; the optimizer is also an argument of :class:`Sys`) and it puts the optimizer
  and the random generators back where they were, so the loss continues where it left off
  instead of jumping (the original's "Deficiency"). A whole pickled model written by the
  original tool loads only with ``trusted=True``.
- ``draw`` renders with matplotlib's Agg canvas: it opens no window and never blocks unless
  called with ``show=True``.

Examples:
    >>> statis = Statistic("runs/convm")
    >>> statis.train_loss.append(0.7)
    >>> trace.Sys(model, "runs/convm/model.pth", statis, optimizer=opt).sys_conclude("ConvM(4_categ)")
    >>> model, statis = trace.sys_load("runs/convm/model.pth", "runs/convm")  # ConvM imported
    >>> model, statis = trace.sys_load("runs/convm/model.pth", "runs/convm", model=ConvM(), optimizer=opt)
"""

from __future__ import annotations

import json
import numbers
import os
import pickle
import re
import shutil
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import epochal
from epochal import checkpoint
from epochal.atomic import atomic_write
from epochal.compat.model_description import DESCRIPTION_FORMAT, Refused, build, describe_model
from epochal.errors import CheckpointError, EpochalError

__all__ = ["ModelRebuildError", "Statistic", "StatisticError", "Sys", "describe_model", "load_statistic", "sys_load"]

PROJECT = "trace"
JSON_NAME = "statistic.json"  # what epochal writes
PICKLE_NAME = "object.pkl"  # what the original wrote; read only
CHART_NAME = "Train_monitor.png"
FORMAT = "epochal.compat.trace/statistic"
SERIES = {  # list attribute -> run key
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "test_loss": "test/loss",
    "test_accuracy": "test/accuracy",
}


class StatisticError(EpochalError, ValueError):
    """A statistics file is missing, damaged, or holds something other than a Statistic."""


class ModelRebuildError(CheckpointError):
    """``sys_load`` was given no model and cannot rebuild the one in the file safely; the message says why."""


class _Series(list):
    """A list of numbers whose every appended value is also logged into the Statistic's run."""

    def __init__(self, owner: Statistic, key: str, values: Iterable[Any] = ()):
        super().__init__(values)
        self._owner = owner
        self._key = key

    def append(self, value: Any) -> None:
        self._owner._log(self._key, len(self), value)  # refuses a non-number before anything is kept
        super().append(float(value))

    def extend(self, values: Iterable[Any]) -> None:
        for value in list(values):
            self.append(value)

    def __iadd__(self, values: Iterable[Any]) -> Self:
        self.extend(values)
        return self


class Statistic:
    """Training and testing loss and accuracy, kept in four lists and recorded in an epochal run.

    Args:
        path: the folder that ``save`` writes ``statistic.json`` to and ``draw`` the chart.
        name: the run's name; default the folder's name.
        project: the run's project.
        store: the epochal store (a directory or a :class:`epochal.Store`); default ``$EPOCHAL_DIR``.

    Values appended with ``append``, ``extend`` or ``+=`` are logged; values put in otherwise
    (item assignment, a new list) are saved and drawn but not logged. The run starts with the
    first appended value and stays open until :meth:`close` (or the end
    of the process); :meth:`save` makes sure everything appended so far is in the store.

    Examples:
        >>> statis = Statistic("runs/convm")
        >>> statis.train_loss.append(loss.item())
        >>> statis.test_accuracy.append(correct / size)
        >>> statis.draw("ConvM")   # runs/convm/Train_monitor.png, and saves
    """

    def __init__(self, path: str | os.PathLike, name: str | None = None, *, project: str = PROJECT,
                 store: str | os.PathLike | epochal.Store | None = None):
        self.path = path
        self.name = name or Path(path).resolve().name or "trace"
        self.project = project
        self.run_id: str | None = None
        self._store_arg = store
        self._store: epochal.Store | None = None
        self._run: epochal.Run | None = None
        for attribute, key in SERIES.items():
            setattr(self, attribute, _Series(self, key))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{a}={len(getattr(self, a))}" for a in SERIES)
        return f"Statistic(path={str(self.path)!r}, run={self.run_id!r}, {sizes})"

    # -- the original's methods ----------------------------------------------------------------

    def save(self) -> Path:
        """Write the four lists to ``path/statistic.json`` (atomically) and flush the run."""
        target = Path(self.path) / JSON_NAME
        document = {"format": FORMAT, "version": 1, "run_id": self.run_id, "name": self.name,
                    "project": self.project, **{a: list(getattr(self, a)) for a in SERIES}}
        atomic_write(target, json.dumps(document, indent=1))
        if self._run is not None:
            self._run.flush(timeout=5.0)  # a locked store must not hold training up; the points stay buffered
        return target

    def draw(self, name: str = "", *, show: bool = False) -> Path:
        """Chart the four lists into ``path/Train_monitor.png``, then :meth:`save`, as the original did.

        Args:
            name: the model's name, in the chart's title.
            show: also open the chart in a pyplot window (blocks until it is closed).
        """
        if show:
            import matplotlib.pyplot as plt

            figure = plt.figure(figsize=(10, 7))
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            figure = Figure(figsize=(10, 7))
            FigureCanvasAgg(figure)
        panels = (("train_loss", "Train Loss", "Adjustment Times"), ("train_accuracy", "Train Accuracy", "Adjustment Times"),
                  ("test_loss", "Test Loss", "Batch Number"), ("test_accuracy", "Test Accuracy", "Batch Number"))
        for index, (attribute, title, xlabel) in enumerate(panels, start=1):
            axes = figure.add_subplot(2, 2, index)
            axes.plot(getattr(self, attribute))
            axes.set_title(title)
            axes.set_xlabel(xlabel)
        figure.suptitle(f"{name} Training Monitor".strip())
        figure.tight_layout()
        target = Path(self.path) / CHART_NAME
        atomic_write(target, lambda file: figure.savefig(file, format="png"))
        if show:
            plt.show()
        self.save()
        return target

    # -- the run -------------------------------------------------------------------------------

    @property
    def store(self) -> epochal.Store:
        if self._store is None:
            given = self._store_arg
            self._store = given if isinstance(given, epochal.Store) else epochal.Store(given)
        return self._store

    def open_run(self) -> epochal.Run:
        """The run this Statistic logs into: started, or resumed if it exists, on first use."""
        if self._run is not None:
            return self._run
        holder = _holders.get(self.run_id) if self.run_id else None
        if holder is not None and holder is not self:
            holder.close()  # another Statistic of this process has the run open: take it over
        if self.run_id is not None and _exists(self.store, self.run_id):
            self._run = epochal.resume(self.run_id, store=self.store)
        else:
            self._run = epochal.start(self.project, self.name, store=self.store)
            self.run_id = self._run.id
            for attribute, key in SERIES.items():  # values from a file that the store has not seen
                for index, value in enumerate(getattr(self, attribute)):
                    self._run.log({key: value}, step=index)
        _holders[self.run_id] = self
        return self._run

    def close(self) -> None:
        """Finish the run (a later append resumes it)."""
        if self._run is not None:
            run, self._run = self._run, None
            run.finish()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log(self, key: str, index: int, value: Any) -> None:
        self.open_run().log({key: value}, step=index)


_holders: weakref.WeakValueDictionary[str, Statistic] = weakref.WeakValueDictionary()


def _exists(store: epochal.Store, run_id: str) -> bool:
    try:
        store.run(run_id)
    except epochal.RunNotFoundError:
        return False
    return True


# -- loading -----------------------------------------------------------------------------------------


def load_statistic(path: str | os.PathLike, *, store: str | os.PathLike | epochal.Store | None = None) -> Statistic:
    """Load the Statistic saved in the folder ``path`` (or the file ``path``).

    Reads ``statistic.json``, or else an ``object.pkl`` written by the original tool (its lists are
    taken, and written to ``statistic.json`` beside it; its ``path`` attribute is ignored). Appending
    continues the same run when the store has it; otherwise a new run gets the loaded values.

    Raises:
        StatisticError: no statistics file is there, it is damaged, or a pickle holds anything but
            a Statistic of lists of numbers (nothing in it is executed).
    """
    given = Path(path)
    if given.is_file():
        folder, files = given.parent, [given]
    else:
        folder, files = given, [given / JSON_NAME, given / PICKLE_NAME]
    file = next((f for f in files if f.is_file()), None)
    if file is None:
        raise StatisticError(f"no statistics in {given}: found neither {' nor '.join(str(f) for f in files)}")
    document = _read_pickle(file) if file.suffix in (".pkl", ".pickle") else _read_json(file)
    statis = Statistic(folder, document.get("name"), project=document.get("project") or PROJECT, store=store)
    for attribute in SERIES:
        super(_Series, getattr(statis, attribute)).extend(float(v) for v in document[attribute])
    statis.run_id = document.get("run_id")
    if statis.run_id is None or not _exists(statis.store, statis.run_id):
        statis.run_id = None
        if any(document[a] for a in SERIES):
            statis.open_run()  # puts the loaded curves into the store
            statis.save()
    return statis


def _read_json(file: Path) -> dict:
    try:
        document = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StatisticError(f"cannot read statistics file {file}: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StatisticError(f"{file} is not a statistics file written by epochal.compat.trace")
    _check_series(file, document)
    return document


class _LegacyStatistic:
    """What the original's pickled Statistic unpickles into: attributes only, no code."""


class _Unpickler(pickle.Unpickler):
    """Accepts the original's ``Statistic`` class (from whatever module) and nothing else."""

    def __init__(self, file: Any, name: Path):
        super().__init__(file)
        self._name = name

    def find_class(self, module: str, name: str) -> type:
        if name == "Statistic":
            return _LegacyStatistic
        raise StatisticError(
            f"{self._name}: refused to load the global {module}.{name}; a trace statistics pickle may hold only "
            "a Statistic with lists of numbers (nothing in the file was executed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise StatisticError(f"{self._name}: refused a persistent id; a trace statistics pickle has none")


def _read_pickle(file: Path) -> dict:
    try:
        with open(file, "rb") as handle:
            loaded = _Unpickler(handle, file).load()
    except StatisticError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, a crafted call of our class, ...
        raise StatisticError(f"cannot read statistics pickle {file}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(loaded, _LegacyStatistic):
        raise StatisticError(f"{file} holds a {type(loaded).__name__}, not a Statistic")
    document = dict(vars(loaded))
    _check_series(file, document)
    return {a: document[a] for a in SERIES}


def _check_series(file: Path, document: dict) -> None:
    for attribute in SERIES:
        values = document.get(attribute)
        if not isinstance(values, list):
            raise StatisticError(f"{file}: {attribute} should be a list of numbers, got {type(values).__name__}")
        for index, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise StatisticError(f"{file}: {attribute}[{index}] should be a number, got {value!r:.60}")


# -- model and statistics together ---------------------------------------------------------------------


class Sys:
    """A model and its Statistic, saved together.

    Args:
        model: the model; its weights are saved, with what :func:`describe_model` records so that
            ``sys_load`` can rebuild it.
        model_path: where the checkpoint goes (an epochal checkpoint, whatever the suffix).
        statis: the Statistic.
        optimizer: also saved (with the random states, always), so that a resume continues exactly.
        scheduler: a learning-rate scheduler to save too.

    Examples:
        >>> syst = trace.Sys(model, "runs/convm/model.pth", statis, optimizer=opt)
        >>> syst.sys_conclude("ConvM(4_categ)")
        Model and statis saved. Adjustment times: 120
    """

    def __init__(self, model: Any, model_path: str | os.PathLike, statis: Statistic, optimizer: Any = None,
                 *, scheduler: Any = None):
        self.model = model
        self.model_path = model_path
        self.statis = statis
        self.optimizer = optimizer
        self.scheduler = scheduler

    def sys_conclude(self, name: str) -> None:
        """Save the checkpoint (in the run and at ``model_path``), the statistics and the chart."""
        run = self.statis.open_run()
        # The run's counters name the checkpoint file: adjustment times and test passes so far.
        run.step(max(0, len(self.statis.train_loss) - run.steps))
        run.epoch(max(0, len(self.statis.test_loss) - run.epochs))
        record = run.save_checkpoint(models=self.model, optimizers=self.optimizer, schedulers=self.scheduler,
                                     extra={"name": name, "model": describe_model(self.model)})
        _place(Path(run.path) / record.path, Path(self.model_path))
        self.statis.draw(name)
        print(f"Model and statis saved. Adjustment times: {len(self.statis.train_loss)}")


def _place(source: Path, target: Path) -> None:
    """Copy the checkpoint file to ``target`` atomically (a copy, not a link: writing to one must not change the other)."""
    with open(source, "rb") as reader:
        atomic_write(target, lambda writer: shutil.copyfileobj(reader, writer))


# -- what rebuilds a model ----------------------------------------------------------------------------

def _rebuild(path: Path, payload: dict) -> Any:
    """The model described in the checkpoint's extra["model"], built from plain values; Refused saying why not."""
    if payload.get("format") != checkpoint.FORMAT:
        raise Refused("it holds a plain state dict, which does not say what model the weights belong to")
    extra = payload.get("extra")
    description = extra.get("model") if isinstance(extra, dict) else None
    if not isinstance(description, dict) or description.get("format") != DESCRIPTION_FORMAT:
        raise Refused("it does not say what model it holds (saved other than by trace.Sys, or by an earlier "
                      "epochal)")
    models = payload.get("models")
    weights = models.get("model") if isinstance(models, dict) else None
    if not isinstance(weights, dict):
        raise Refused("it holds no weights under models['model']")
    return build(description, weights)


# -- loading the model -------------------------------------------------------------------------------------


def sys_load(model_path: str | os.PathLike, statis_path: str | os.PathLike, model: Any = None,
             optimizer: Any = None, *, scheduler: Any = None,
             store: str | os.PathLike | epochal.Store | None = None, trusted: bool = False) -> tuple[Any, Statistic]:
    """Load the model saved by :meth:`Sys.sys_conclude`, and the Statistic.

    Without ``model``, the model is rebuilt as :func:`describe_model` recorded it: its class must
    already be imported in this process (import your model code first, as the saving script did)
    and be a subclass of ``torch.nn.Module``; it is called with the recorded plain values only, and
    the weights are loaded with ``torch.load(weights_only=True)``; it comes back on the CPU, in the
    train or eval mode it was saved in. A file is data someone else may have written, so no module
    it names is imported and nothing else it names is called.

    With ``model`` (and ``optimizer``, ``scheduler``), the weights go into the objects given and the
    optimizer, scheduler and the Python, NumPy and torch random states are put back as they were
    saved, so training continues as if it had not stopped. ``model_path`` may also hold a plain
    ``torch.save(model.state_dict())``.

    Args:
        trusted: also load a whole model pickled with ``torch.save(model)``, as the original trace
            tool wrote it. Unpickling imports and calls whatever the file names, so it runs code from
            the file: pass ``True`` only for a file you or someone you trust wrote.

    Returns:
        ``(model, statis)``, as the original did.

    Raises:
        ModelRebuildError: no model was given and the file's cannot be rebuilt as above (its class
            is not imported or not an nn.Module, its arguments were not captured as plain values,
            or the weights do not fit); the message says which, and to pass ``model=``.
        TypeError: an optimizer or scheduler was given without its model.
        StatisticError: see :func:`load_statistic`.
        CheckpointError: the checkpoint is missing or damaged, holds a pickled model and ``trusted``
            is not set, or does not fit the objects given.
    """
    path = Path(model_path)
    if model is None and (optimizer is not None or scheduler is not None):
        raise TypeError("sys_load got an optimizer or scheduler but no model: they hold the model's parameters, "
                        "so build the model, then them, and pass all of them (model=..., optimizer=...)")
    payload = _read_model_file(path, trusted)
    if not isinstance(payload, dict):  # a whole model, unpickled on trust
        if optimizer is not None or scheduler is not None:
            raise CheckpointError(f"{path} holds a whole model and no optimizer or scheduler state")
        if model is None:
            model = payload
        else:
            _load_state(model, payload.state_dict(), path)
        return model, load_statistic(statis_path, store=store)
    if model is None:
        try:
            model = _rebuild(path, payload)
        except Refused as exc:
            raise ModelRebuildError(
                f"cannot rebuild the model saved in {path}: {exc}. Build it and pass it: "
                f"sys_load({str(model_path)!r}, {str(statis_path)!r}, model=YourModel(...))"
            ) from exc
    statis = load_statistic(statis_path, store=store)
    if payload.get("format") == checkpoint.FORMAT:
        checkpoint.load(path, models=model, optimizers=optimizer, schedulers=scheduler)
    elif optimizer is not None or scheduler is not None:
        raise CheckpointError(f"{path} is not an epochal checkpoint: it holds weights only, no optimizer or "
                              "scheduler state")
    else:
        _load_state(model, payload, path)
    return model, statis


def _read_model_file(path: Path, trusted: bool) -> Any:
    """The file's contents: a dict loaded with weights_only, or (trusted only) a whole pickled model."""
    import torch

    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch refused a global the file names: not weights only
        if "weights only load failed" not in str(exc).lower():
            raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from exc
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        pickled = f"pickled objects ({named[1]})" if named else "pickled objects"
    except Exception as exc:
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from exc
    else:
        if not isinstance(payload, dict):
            raise CheckpointError(f"{path} holds a {type(payload).__name__}, neither an epochal checkpoint "
                                  "nor a state dict")
        return payload
    if not trusted:
        raise CheckpointError(
            f"{path} holds {pickled}, not only weights: a whole model saved with torch.save(model), as the "
            "original trace tool did? Loading it runs code the file names, so it needs trusted=True, for a "
            "file from a source you trust; or build the model and load a state dict"
        )
    try:
        whole = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot load {path} (trusted): {type(exc).__name__}: {exc}") from exc
    if not isinstance(whole, torch.nn.Module):
        raise CheckpointError(f"{path} holds a {type(whole).__name__}, not a whole model (torch.nn.Module)")
    return whole


def _load_state(model: Any, state: dict, path: Path) -> None:
    """Load a plain state dict into ``model``."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"the weights in {path} do not fit the model: {exc}") from exc
