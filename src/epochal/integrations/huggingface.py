"""Record a Hugging Face ``transformers.Trainer`` in epochal: add ``EpochalCallback()`` to its callbacks.

Examples:
    >>> from epochal.integrations.huggingface import EpochalCallback
    >>> args = TrainingArguments("out", eval_strategy="epoch", report_to="none")
    >>> trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
    ...                   callbacks=[EpochalCallback(project="glue")])
    >>> trainer.train()                                 # a new run, finished at the end of training
    >>> trainer.train(resume_from_checkpoint=True)      # the same run again, from its last checkpoint

The Trainer's logs become points at its global step and the epochs completed (``loss`` is
``train/loss``, ``eval_loss`` is ``eval/loss``, as in its Weights & Biases callback); its arguments
and the model's config become the run's config; its checkpoint folders are recorded as the run's
checkpoints, and forgotten when the Trainer deletes them (``save_total_limit``). Each checkpoint folder
gets an ``epochal.json`` naming the run, which is how ``resume_from_checkpoint`` finds the run to continue.
"""

from __future__ import annotations

import json
import math
import re
import warnings
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from epochal import distributed
from epochal.atomic import atomic_write
from epochal.checks import to_config
from epochal.errors import CheckpointError, EpochalWarning, RunNotFoundError, RunStateError
from epochal.opening import resume, start
from epochal.run import Run
from epochal.run_checkpoints import EXTERNAL
from epochal.store.store import Store

#: The transformers versions this callback is written against (the callback API it uses is in all of them).
SUPPORTED_TRANSFORMERS = ">=4.40,<6"
#: The file in each checkpoint folder that names the run which recorded it.
SIDECAR = "epochal.json"

try:
    import transformers
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError as exc:
    raise ImportError(
        "epochal.integrations.huggingface needs transformers: pip install epochal[huggingface]"
    ) from exc

_release = tuple(int(part) for part in re.findall(r"\d+", transformers.__version__)[:2])
if not (4, 40) <= _release < (6, 0):
    raise ImportError(
        f"epochal.integrations.huggingface supports transformers {SUPPORTED_TRANSFORMERS}, found "
        f"{transformers.__version__}: pip install 'transformers{SUPPORTED_TRANSFORMERS}' (pip install epochal[huggingface])"
    )

__all__ = ["SIDECAR", "SUPPORTED_TRANSFORMERS", "EpochalCallback"]

# Runs a callback of this process opened and has not finished: a train() that raised leaves its run
# open, and a new callback resuming that run from a checkpoint closes it first (as 'failed').
_open_here: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()


class EpochalCallback(TrainerCallback):
    """Record a ``transformers.Trainer``'s training as an epochal run.

    The run starts when training begins (``on_train_begin``), not when the callback is made, and is
    finished when training ends. ``trainer.train(resume_from_checkpoint=...)`` continues the run that
    recorded the checkpoint (its ``epochal.json`` names it; the run is looked for in this callback's
    store): its steps go on from the checkpoint's, and what the lost attempt logged after the checkpoint
    is hidden, key by key, from the step where the continued training logs that key again. A checkpoint
    that names no run (saved without this callback) starts a new run at its step, with a warning.

    What is recorded:
        - every value of the Trainer's logs at ``state.global_step`` and the epochs completed
          (``int(state.epoch)``): ``eval_*`` keys as ``eval/*``, ``test_*`` as ``test/*``, the others as
          ``train/*`` (``train/loss``, ``train/grad_norm``, ``train/learning_rate``, and at the end
          ``train/train_runtime``, ``train/train_loss``, ``train/total_flos``...). The float ``epoch``
          is the points' epoch, not a series. A value that is not one number (text, None, a tensor of
          several elements) is skipped with one warning per key;
        - the config: ``{"args": TrainingArguments.to_dict(), "model": model.config.to_dict()}`` and ``config``;
        - each checkpoint folder the Trainer saves (``kind='external'``: epochal never loads or deletes it),
          at its step and epoch, with ``metric_for_best_model``'s value when an evaluation ran at that step;
          folders the Trainer deletes are dropped from the record at the next save and at the end.

    A ``train()`` that raises does not reach ``on_train_end``: an uncaught exception marks the run
    'failed' ('interrupted' for Ctrl-C) when the program exits. Where the exception is caught (a notebook),
    use the callback as a context manager, or call ``callback.run.finish("failed")``; a later
    ``train()`` of the same callback also closes it as 'failed' first.

    Under DDP (``torchrun``, ``accelerate launch``) every process opens and finishes the job's one run,
    as :func:`epochal.start` requires; rank 0 alone writes. Without a process group (TPU) only the
    Trainer's world process zero records.

    Args:
        project, name, config, tags, store: as :func:`epochal.start`; ``name`` and ``tags`` are not
            applied to a run that is resumed.
        run: a run you opened (:func:`epochal.start` or :func:`epochal.resume`) to record into instead;
            you finish it, the callback does not. Under DDP open it on every rank.

    Examples:
        >>> callback = EpochalCallback(project="glue", config={"dataset": "sst2"})
        >>> trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
        >>> with callback:
        ...     trainer.train()
        >>> callback.run.id
        '3f9c2a7b1d04'
    """

    def __init__(self, project: str = "default", name: str | None = None, *,
                 config: Mapping[str, Any] | None = None, tags: Iterable[str] = (),
                 store: str | Path | Store | None = None, run: Run | None = None):
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"EpochalCallback's config is a dict, got {type(config).__name__} ({config!r:.60})")
        self.project, self.name, self.config, self.tags, self.store = project, name, dict(config or {}), tags, store
        #: The run being recorded: None until training begins, and on processes that record nothing.
        self.run: Run | None = run
        self._owned = False  # whether this callback opened self.run, and so finishes it
        self._refused: set[str] = set()  # keys already warned about
        self._late_warned = False
        self._scored: tuple[int, str, Any] | None = None  # (step, key, value) of metric_for_best_model
        self._unscored: tuple[int, Path] | None = None  # (step, folder) of a checkpoint saved before its evaluation

    # -- opening -------------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self._owned and self.run is not None and not self.run.finished:
            self.run.finish("failed")  # the last train() raised before it ended
        config = _config(args, model, self.config)
        if self.run is not None and not self._owned:  # the user's run
            self.run.update_config(config)
        elif state.is_world_process_zero or distributed.launched():
            self.run, self._owned = self._open(args, state, config), True
            _open_here[self.run.id] = self.run
        else:
            self.run = None
            return
        self.run.set_counters(state.global_step, _epochs(state))
        self._scored = self._unscored = None

    def _open(self, args: Any, state: Any, config: dict[str, Any]) -> Run:
        """Resume the run that recorded the checkpoint training resumes from, else start one."""
        if state.global_step > 0:
            job = distributed.job()
            found = _recorded_by(args, state) if job is None else job.leader_does(lambda: _recorded_by(args, state))
            if found is None:
                _warn(f"EpochalCallback: training resumes from step {state.global_step}, but its checkpoint names no "
                      "epochal run; recording a new run from that step")
            else:
                stale = _open_here.get(found)
                if stale is not None and not stale.finished:
                    stale.finish("failed")  # an earlier train() of this process raised before it ended
                try:
                    run = resume(found, store=self.store)
                except (RunNotFoundError, RunStateError) as exc:
                    _warn(f"EpochalCallback: cannot continue run {found!r} ({exc}); recording a new run from step "
                          f"{state.global_step}")
                else:
                    run.update_config(config)
                    return run
        return start(self.project, self.name, config=config, tags=self.tags, store=self.store)

    # -- recording -----------------------------------------------------------------------------

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        run = self.run
        if run is None or run.rank != 0 or not logs:
            return
        if run.finished:
            if self._owned and not self._late_warned:
                self._late_warned = True
                _warn(f"EpochalCallback: run {run.name!r} finished when training ended; what the Trainer logs after "
                      f"train() ({', '.join(logs)}) is not recorded")
            return
        step, epochs = state.global_step, _epochs(state)
        values = {_name(key): value for key, value in logs.items() if key != "epoch"}
        if values:
            self._log(run, values, step, epochs)
        run.set_counters(step, epochs)
        best = args.metric_for_best_model
        key = best if not best or best.startswith("eval_") else f"eval_{best}"
        if key in logs:
            self._scored = (step, _name(key), logs[key])
            if self._unscored is not None and self._unscored[0] == step:  # saved just before this evaluation
                self._record(run, self._unscored[1], args, state)

    def _log(self, run: Run, values: dict[str, Any], step: int, epochs: int) -> None:
        try:
            run.log(values, step=step, epoch=epochs)
            return
        except (TypeError, ValueError):  # nothing of the call was recorded: again, key by key
            pass
        for key, value in values.items():
            try:
                run.log({key: value}, step=step, epoch=epochs)
            except (TypeError, ValueError) as exc:
                if key not in self._refused:
                    self._refused.add(key)
                    _warn(f"EpochalCallback: {key!r} is not recorded ({exc}); the other values are")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.run is not None and not self.run.finished:
            self.run.set_counters(state.global_step, _epochs(state))

    on_epoch_end = on_step_end

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self.run
        if run is None or run.finished or run.rank != 0:
            return
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if folder.is_dir():
            try:
                atomic_write(folder / SIDECAR, json.dumps({"run": run.id, "name": run.name, "project": run.project}))
            except OSError as exc:
                _warn(f"EpochalCallback: cannot write {folder / SIDECAR} ({exc}); resuming from this checkpoint "
                      "will record a new run")
            self._record(run, folder, args, state)
        self._forget_deleted(run, args)

    def _record(self, run: Run, folder: Path, args: Any, state: Any) -> None:
        """Record the Trainer's checkpoint ``folder``, with ``metric_for_best_model``'s value if evaluated at its step.

        The Trainer evaluates after saving when both fall on one step by different strategies (save every n
        steps, evaluate every epoch): the record is made again with the value when it comes.
        """
        step, metric = state.global_step, None
        if self._scored is not None and self._scored[0] == step:
            metric = self._scored[1:]
        self._unscored = (step, folder) if metric is None and args.metric_for_best_model else None
        mode = "max" if args.greater_is_better else "min"
        try:
            try:
                run.add_checkpoint(folder, step=step, epoch=_epochs(state), metric=metric, mode=mode)
            except (TypeError, ValueError):  # a metric that is not a number: the folder without it
                run.add_checkpoint(folder, step=step, epoch=_epochs(state))
        except CheckpointError as exc:
            _warn(f"EpochalCallback: checkpoint {folder} is not recorded: {exc}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self.run
        if run is None or run.finished:
            return
        if run.rank == 0:
            self._forget_deleted(run, args)  # the Trainer may delete checkpoints just before it ends
        if self._owned:
            run.set_counters(state.global_step, _epochs(state))
            run.finish()

    @staticmethod
    def _forget_deleted(run: Run, args: Any) -> None:
        """Drop the records of this run's Trainer checkpoint folders that are gone (``save_total_limit``)."""
        output = Path(args.output_dir).absolute()
        for ckpt in run.store.checkpoints(run.id):
            where = Path(ckpt.path)
            where = where if where.is_absolute() else run.path.absolute() / where
            if (ckpt.kind == EXTERNAL and where.parent == output
                    and where.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and not where.exists()):
                run.remove_checkpoint(where)

    # -- ending by hand ------------------------------------------------------------------------

    def __enter__(self) -> EpochalCallback:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """Finish a run that training left open: 'interrupted' after Ctrl-C, else 'failed' (it did not end)."""
        if self._owned and self.run is not None and not self.run.finished:
            self.run.finish("interrupted" if exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
                            else "failed")


def _name(key: str) -> str:
    """The Trainer's log key as a series name, as its Weights & Biases callback names it."""
    for prefix in ("eval", "test"):
        if key.startswith(f"{prefix}_"):
            return f"{prefix}/{key[len(prefix) + 1:]}"
    return f"train/{key}"


def _epochs(state: Any) -> int:
    """Epochs completed: the Trainer's fractional epoch, rounded down."""
    return max(0, math.floor((state.epoch or 0) + 1e-9))


def _config(args: Any, model: Any, user: Mapping[str, Any]) -> dict[str, Any]:
    """``{"args": ..., "model": ...}`` and the user's config, each part as the store holds it."""
    parts: dict[str, Any] = {"args": args.to_dict()}
    model_config = getattr(model, "config", None)
    if model_config is not None:
        parts["model"] = model_config.to_dict() if hasattr(model_config, "to_dict") else model_config
    config: dict[str, Any] = {}
    for name, part in [*parts.items(), *user.items()]:
        try:
            config.update(to_config({name: part}))
        except (TypeError, ValueError) as exc:
            _warn(f"EpochalCallback: the config's {name!r} is kept as text: {exc}")
            config[name] = repr(part)[:10_000]
    return config


def _recorded_by(args: Any, state: Any) -> str | None:
    """The id of the run that recorded the checkpoint at ``state.global_step`` in ``args.output_dir``."""
    sidecar = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}" / SIDECAR
    try:
        found = json.loads(sidecar.read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _warn(message: str) -> None:
    warnings.warn(message, EpochalWarning, stacklevel=3)
