"""PyTorch Lightning: a logger that records the run in epochal, and a callback for training dynamics.

Examples:
    >>> from epochal.integrations.lightning import EpochalDynamics, EpochalLogger
    >>> trainer = lightning.Trainer(max_epochs=10, logger=EpochalLogger(project="mnist", config={"lr": 1e-3}),
    ...                             callbacks=[EpochalDynamics((x_valid, y_valid))])
    >>> trainer.fit(model, train_loader, valid_loader)

What is recorded: every value Lightning hands its loggers (what ``self.log`` logs), at Lightning's
``global_step``, with Lightning's ``epoch`` as the points' epoch axis (not as a series of its own);
``save_hyperparameters()`` and ``log_hyperparams`` into the run's config (merged with ``config=``);
the files Lightning's ``ModelCheckpoint`` writes as the run's checkpoints (path, step, epoch, the
monitored value and mode), their records dropped when Lightning deletes them; the run's end as
'finished', 'failed' after an exception, or 'interrupted' after Ctrl-C or a cluster's requeue signal.
Under DDP only rank 0 records (Lightning calls loggers there alone). A value epochal cannot store (a
string, a tensor of several elements) is skipped with one warning naming its key.

Needs ``lightning`` 2.x (``pip install epochal[lightning]``).
"""

from __future__ import annotations

import os
import sys
import warnings
from argparse import Namespace
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import epochal
from epochal.errors import EpochalWarning

try:
    import lightning
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
except ImportError as exc:
    raise ImportError(f"epochal.integrations.lightning needs PyTorch Lightning 2.x: pip install "
                      f"epochal[lightning] ({exc})") from exc

SUPPORTED = "lightning>=2.0,<3"
if not lightning.__version__.startswith("2."):
    raise ImportError(f"epochal.integrations.lightning supports {SUPPORTED}; this is lightning "
                      f"{lightning.__version__}: pip install 'lightning>=2.0,<3'")

__all__ = ["EpochalDynamics", "EpochalLogger"]


class EpochalLogger(Logger):
    """A Lightning logger that records the run in an epochal store.

    Args:
        project, name, config, tags, store: as :func:`epochal.start`.
        resume: the id or name of a run to continue instead of starting one (for
            ``trainer.fit(ckpt_path=...)`` after a crash): its steps go on and its checkpoints stay.
        **start_options: more of :func:`epochal.start`'s options (``system_metrics=``, ``description=``).

    The run starts when Lightning first asks for it (``logger.experiment``, the :class:`epochal.Run`).
    ``version`` is the run's id and ``name`` its project, so ``ModelCheckpoint`` writes to
    ``<default_root_dir>/<project>/<run id>/checkpoints`` unless given a ``dirpath``. After
    ``trainer.fit`` finishes the run, a ``trainer.test`` with the same logger resumes it, so test
    metrics land in the same run.
    """

    def __init__(self, project: str = "default", name: str | None = None, *, config: Mapping[str, Any] | None = None,
                 tags: Sequence[str] = (), store: Any = None, resume: str | None = None, **start_options: Any):
        super().__init__()
        self._project, self._name, self._config, self._tags = project, name, config, tags
        self._store, self._resume, self._options = store, resume, start_options
        self._run: epochal.Run | None = None
        self._refused: set[str] = set()  # keys whose values cannot be stored, warned about once
        self._checkpoint_callback: Any = None
        self._recorded: dict[str, float] = {}  # checkpoint path -> modification time when recorded
        self._epoch_seen = False  # whether Lightning handed over an epoch: the run's count is then epochs begun

    def __getstate__(self) -> dict[str, Any]:
        # Lightning pickles its loggers into spawned processes (ddp_spawn): an open run stays with its process.
        state = self.__dict__.copy()
        state["_run"], state["_checkpoint_callback"] = None, None
        return state

    @property
    @rank_zero_experiment
    def experiment(self) -> epochal.Run:
        """The epochal run: started (or resumed) on first use, on rank 0 alone."""
        if self._run is None:
            if self._resume is not None:
                self._run = epochal.resume(self._resume, store=self._store, job=False, **self._options)
            else:
                self._run = epochal.start(self._project, self._name, config=self._config, tags=self._tags,
                                          store=self._store, job=False, **self._options)
        return self._run

    def _open_run(self) -> epochal.Run:
        """The run to record into: after a fit finished it, the same run again (``trainer.test`` after ``fit``)."""
        run = self.experiment
        if run.finished:
            self._run = run = epochal.resume(run.id, store=run.store, job=False, **self._options)
            self._epoch_seen = False
        return run

    @property
    def name(self) -> str:
        return self._project

    @property
    def version(self) -> str | None:
        """The run's id (None on ranks other than 0, which record nothing)."""
        if self._run is not None:
            return self._run.id
        return self.experiment.id if rank_zero_only.rank == 0 else None

    @property
    def save_dir(self) -> str | None:
        return None

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Merge ``params`` into the run's config (values that are not JSON are kept as text)."""
        params = _plain(vars(params) if isinstance(params, Namespace) else dict(params or {}))
        if params:
            self._open_run().update_config(params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record ``metrics`` at ``step`` (Lightning's global step); their ``epoch`` is the points' epoch."""
        run = self._open_run()
        values = dict(metrics)
        epoch = values.pop("epoch", None)
        epoch = int(epoch) if isinstance(epoch, (int, float)) and epoch >= 0 else None
        if step is not None and step > run.steps:
            run.step(step - run.steps)
        if epoch is not None:
            self._epoch_seen = True
            if epoch > run.epochs:
                run.epoch(epoch - run.epochs)
        try:
            run.log(values, step=step, epoch=epoch)
        except (TypeError, ValueError):  # one bad value must not cost the others, nor stop training
            for key, value in values.items():
                if key in self._refused:
                    continue
                try:
                    run.log({key: value}, step=step, epoch=epoch)
                except (TypeError, ValueError) as exc:
                    self._refused.add(key)
                    warnings.warn(f"EpochalLogger: {key!r} is not recorded: {exc}", EpochalWarning, stacklevel=2)

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: the run's writer thread stores points in the background."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End the run: Lightning's 'success' as 'finished', 'failed' as 'failed' ('interrupted' after
        Ctrl-C), 'finished' (a cluster's requeue signal) as 'interrupted'."""
        if self._run is None or self._run.finished:
            return
        steps = self._run.steps
        if self._checkpoint_callback is not None:
            # Lightning logs at the step a batch started from; its last checkpoint knows the steps taken.
            steps = max(steps, self._record_checkpoints(self._checkpoint_callback))
        if status == "failed":
            status = "interrupted" if isinstance(sys.exc_info()[1], KeyboardInterrupt) else "failed"
        elif status == "success":  # the epoch in progress at the end was gone through
            self._run.set_counters(steps, self._run.epochs + self._epoch_seen)
        self._run.finish({"success": "finished", "finished": "interrupted"}.get(status, status))

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Record the files ``checkpoint_callback`` keeps; drop the records of those it deleted."""
        self._checkpoint_callback = checkpoint_callback
        self._record_checkpoints(checkpoint_callback)

    def _record_checkpoints(self, callback: Any) -> int:
        """Bring the run's checkpoint records in line with the files ``callback`` keeps; the step it last saved at."""
        try:
            kept = {str(p): s for p, s in getattr(callback, "best_k_models", {}).items()}
            best, best_score = getattr(callback, "best_model_path", ""), getattr(callback, "best_model_score", None)
            last = getattr(callback, "last_model_path", "")
            monitor, mode = getattr(callback, "monitor", None), getattr(callback, "mode", "min")
        except ReferenceError:  # Lightning hands a weak proxy; its callback is gone
            return 0
        for path, score in ((best, best_score), (last, None)):  # without a monitor, best_k_models stays empty
            if path:
                kept.setdefault(str(path), score)
        run = self._open_run()
        # The step the callback saved at (the run's counters may lag when Lightning logs every n steps).
        step = getattr(callback, "_last_global_step_saved", None)
        step = step if isinstance(step, int) and step >= 0 else run.steps
        for path, score in kept.items():
            try:
                modified = os.stat(path).st_mtime
            except OSError:
                continue
            if self._recorded.get(path) == modified:
                continue
            metric = None if monitor is None or score is None else (monitor, float(score))
            run.add_checkpoint(path, step=step, metric=metric, mode=mode if mode in ("min", "max") else "min")
            self._recorded[path] = modified
        for path in [p for p in self._recorded if not Path(p).exists()]:
            run.remove_checkpoint(path)
            del self._recorded[path]
        return step


def _plain(params: Any) -> Any:
    """Hyperparameters with classes and functions as their names (a ``loss_fn=nn.MSELoss`` reads as
    ``torch.nn.modules.loss.MSELoss``), nested dicts kept."""
    if isinstance(params, Mapping):
        return {key: _plain(value) for key, value in params.items()}
    if isinstance(params, type) or callable(params) and hasattr(params, "__qualname__"):
        return f"{getattr(params, '__module__', '')}.{params.__qualname__}".lstrip(".")
    return params


class EpochalDynamics(Callback):
    """Record the training dynamics of fixed samples every few epochs, as
    :class:`epochal.train.RecordDynamics` does in epochal's own Trainer: their representations,
    logits, predictions and losses, for ``epochal dynamics`` and the dashboard.

    Needs an :class:`EpochalLogger` among the Trainer's loggers. Records on rank 0 alone, at the
    end of each training epoch (after its validation).

    Args:
        samples, layer, every_n_epochs, max_samples, image_shape: as :class:`epochal.train.RecordDynamics`.
    """

    def __init__(self, samples: Any, layer: str | None = None, every_n_epochs: int = 1,
                 max_samples: int | None = None, image_shape: Sequence[int] | None = None, **options: Any):
        from epochal.train.dynamics import RecordDynamics

        self._recorder = RecordDynamics(samples, layer=layer, every_n_epochs=every_n_epochs, max_samples=max_samples,
                                        image_shape=image_shape, **options)

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        from epochal.dynamics.record import record

        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch + 1 >= trainer.max_epochs
        if (epoch + 1) % self._recorder.every_n_epochs and not last:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, EpochalLogger)]
        if not loggers:
            raise ValueError("EpochalDynamics records into an EpochalLogger's run: give the Trainer "
                             "logger=EpochalLogger(...)")
        if type(pl_module).forward is pl.LightningModule.forward:
            raise ValueError(f"EpochalDynamics runs {type(pl_module).__name__} on the samples to record them: give it "
                             "a forward(x) that returns the logits")
        r = self._recorder
        record(loggers[0].experiment, pl_module, r.inputs, r.labels, layer=r.layer, split=r.split, epoch=epoch,
               indices=r.indices, dtype=r.dtype, image_shape=r.image_shape)
