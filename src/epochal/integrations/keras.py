"""EpochalCallback: record a Keras 3 ``model.fit`` as an epochal run, on any Keras backend.

    from epochal.integrations.keras import EpochalCallback

    model.fit(x, y, epochs=5, validation_data=(x_val, y_val), callbacks=[EpochalCallback(project="mnist")])

Keys are those of epochal's Trainer, so that a Keras run and a Trainer run compare in the dashboard:

- per training batch, at the batch's step: ``train/<key>`` for each of Keras's batch logs
  (``train/loss``, ``train/accuracy``, ...). Keras reports the mean over the epoch so far, as its
  progress bar shows it, not the batch's own value.
- per epoch, at the step after its last batch: ``train/epoch_loss`` (Keras's ``loss``),
  ``valid/<key>`` (Keras's ``val_<key>``), and ``train/<key>`` for a key the batches did not log
  (with ``log_batches=False``, every key; otherwise the last batch already holds the epoch's value).
- ``lr``, the optimizer's learning rate, at each epoch's start.

Steps count training batches and epochs count epochs, from the run's own counters: a second ``fit`` with
the same callback continues the run where the first left it. Keras's ``learning_rate`` log (which its
learning-rate callbacks add) is left out: ``lr`` records the same number.

Needs Keras 3: ``pip install epochal[keras]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from epochal import EpochalWarning, Run, Store, resume, start

try:
    import keras
except ImportError as exc:
    raise ImportError("epochal.integrations.keras needs Keras 3: pip install epochal[keras]") from exc

_VERSION = getattr(keras, "__version__", "0")
if not _VERSION.split(".")[0].isdigit() or int(_VERSION.split(".")[0]) < 3:
    raise ImportError(
        f"epochal.integrations.keras supports keras>=3.0, found Keras {_VERSION}: pip install -U 'epochal[keras]'"
    )

__all__ = ["EpochalCallback"]


class EpochalCallback(keras.callbacks.Callback):
    """Records ``fit``: Keras's logs per batch and per epoch, the fit's settings in the run's config.

    The run starts when training does (constructing the callback does nothing) and is marked finished
    when ``fit`` returns. A later ``fit`` with the same callback reopens it and counts on. When ``fit``
    raises, Keras calls no callback: the run stays open, and is finished when the program exits, as
    'failed' if the exception ended it ('interrupted' after Ctrl-C). An exception that is caught (in a
    notebook, say) leaves the run open until then, and 'finished' after; to have it recorded as a failure,
    open the run yourself, ``with epochal.start(...) as run:``, and pass ``run=run``.

    Args:
        project, name, config, tags, store: as :func:`epochal.start`, for the run the callback starts.
        run: a run already started (or resumed) to record into instead; the callback never finishes it.
        log_batches: log every training batch's values; False logs per epoch only.

    Values epochal cannot store (a string, an array of several numbers, such as ``F1Score(average=None)``)
    are skipped, with one EpochalWarning per key.

    The run's config gains ``keras``: the Keras version and backend, ``epochs`` and ``steps_per_epoch``
    of the latest fit, the model's name, class and parameter count, the loss, and the optimizer's class
    and config (its ``name``, ``learning_rate``, ...).

    Examples:
        >>> callback = EpochalCallback(project="mnist", config={"batch_size": 32})
        >>> model.fit(x, y, batch_size=32, epochs=3, validation_data=(x_val, y_val), callbacks=[callback])
        >>> callback.run.id
        '3f2a9c0d41b7'
    """

    def __init__(self, project: str = "default", name: str | None = None, *, config: Mapping[str, Any] | None = None,
                 tags: Iterable[str] = (), store: str | Path | Store | None = None, run: Run | None = None,
                 log_batches: bool = True):
        super().__init__()
        if run is not None:
            if not isinstance(run, Run):
                raise TypeError(f"EpochalCallback(run=...) takes an epochal Run, got {type(run).__name__}")
            if project != "default" or name is not None or config is not None or tags or store is not None:
                raise ValueError(
                    "EpochalCallback: pass either run= or the arguments to start one (project, name, config, tags, "
                    "store), not both; add to a run's config with run.update_config"
                )
        #: The run being recorded: the one given, else None until the first fit starts one.
        self.run = run
        self.log_batches = log_batches
        self._owns_run = run is None
        self._start_args = {"project": project, "name": name, "config": config, "tags": tags, "store": store}
        self._refused: set[str] = set()  # keys warned about: their values could not be stored
        self._batch_logs: Mapping[str, Any] = {}  # the epoch's latest batch logs, as Keras gave them
        self._next_batch = 0  # Keras's index of the epoch's next batch

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.run is None:
            self.run = start(**self._start_args)
        elif self._owns_run and self.run.finished:  # finished by an earlier fit: this one continues it
            self.run = resume(self.run.id, store=self.run.store)
        self.run.update_config({"keras": _facts(self.model, self.params or {})})

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._batch_logs, self._next_batch = {}, 0
        rate = _learning_rate(self.model)
        if rate is not None:
            self.run.log({"lr": rate})

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        # With steps_per_execution > 1, Keras calls this once for several batches: `batch` is the last.
        taken = max(batch + 1 - self._next_batch, 1)
        self._next_batch = batch + 1
        if self.log_batches and logs:
            step = None if taken == 1 else self.run.steps + taken - 1
            self._record({"train/" + key: value for key, value in logs.items()}, step)
            self._batch_logs = logs
        self.run.step(taken)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        values = {}
        for key, value in (logs or {}).items():
            if key == "loss":
                values["train/epoch_loss"] = value
            elif key.startswith("val_"):
                values["valid/" + key[4:]] = value
            elif key != "learning_rate" and key not in self._batch_logs:
                values["train/" + key] = value
        if values:
            self._record(values)
        self.run.epoch()

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._owns_run:
            self.run.finish()

    def _record(self, values: dict[str, Any], step: int | None = None) -> None:
        """``run.log(values)``; a value it refuses is left out, with one warning per key, never an error."""
        if self._refused.isdisjoint(values):
            try:
                self.run.log(values, step=step)
                return
            except (TypeError, ValueError):
                pass  # nothing of the call was recorded: log the values one by one below
        for key, value in values.items():
            try:
                self.run.log({key: value}, step=step)
            except (TypeError, ValueError) as exc:
                if key not in self._refused:
                    self._refused.add(key)
                    warnings.warn(f"EpochalCallback: {key!r} is not recorded: {exc}", EpochalWarning, stacklevel=2)


def _facts(model: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """What the run's config keeps of a fit: what Keras knows without any computation."""
    facts: dict[str, Any] = {
        "version": _VERSION, "backend": keras.backend.backend(),
        "epochs": params.get("epochs"), "steps_per_epoch": params.get("steps"),
        "model": {"name": model.name, "class": type(model).__name__},
    }
    try:
        facts["model"]["parameters"] = model.count_params()
    except ValueError:  # not built
        pass
    loss = getattr(model, "loss", None)
    loss_name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", None)
    if isinstance(loss_name, str):
        facts["loss"] = loss_name
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        facts["optimizer"] = {"class": type(optimizer).__name__}
        try:
            facts["optimizer"].update(optimizer.get_config())
        except (NotImplementedError, AttributeError, TypeError, ValueError):
            pass  # a custom optimizer without a working get_config: its class is recorded all the same
    return facts


def _learning_rate(model: Any) -> float | None:
    """The optimizer's current learning rate (a schedule's value at this step); None if it has none."""
    try:
        return float(model.optimizer.learning_rate)  # a variable, or a schedule's tensor: one number
    except (AttributeError, TypeError, ValueError):
        return None
