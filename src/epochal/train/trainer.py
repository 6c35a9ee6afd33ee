"""Trainer: a training loop that only fires hooks; everything else is a callback.

Examples:
    >>> trainer = epochal.Trainer(model, optimizer, loss_fn=torch.nn.CrossEntropyLoss(),
    ...                           train_data=train_loader, valid_data=valid_loader, metrics=["accuracy"],
    ...                           max_epochs=20, callbacks=[epochal.EarlyStopping("valid/accuracy")],
    ...                           project="mnist")
    >>> trainer.fit()              # fit(resume=True) continues the run from its last checkpoint
    >>> trainer.test(test_loader)
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from epochal import checkpoint as checkpoints
from epochal.errors import CheckpointError, EpochalError, RunNotFoundError
from epochal.run import Run, resume, start
from epochal.store.records import best_mode
from epochal.store.store import Store
from epochal.train.callback import STAGES, BatchResult, Callback, StageResult, StopTraining
from epochal.train.metrics import MetricSet


class NonFiniteLossError(EpochalError, FloatingPointError):
    """The loss became NaN or infinite and the Trainer was told to stop (``on_nan="stop"``)."""


class Trainer:
    """Train, evaluate and test a model, recording everything in an epochal run.

    Args:
        model: the module to train.
        optimizer: its optimizer (None for ``test`` only).
        loss_fn: ``loss_fn(output, target)`` for the default steps.
        train_data, valid_data, test_data: iterables of batches, usually DataLoaders of
            ``(input, target)``; override :meth:`training_step` / :meth:`evaluation_step` for others.
        metrics: names (``accuracy``, ``top5``, ``mse``, ``mae``), functions ``fn(output, target)``
            returning ``(sum, count)``, or torchmetrics ``Metric`` objects; exact over each data set.
        max_epochs: epochs to train, counting those of a resumed run.
        scheduler: a learning-rate scheduler, stepped every epoch or every batch
            (``scheduler_interval``); ReduceLROnPlateau gets the monitored value.
        device: 'auto' (CUDA, then MPS, then CPU), or any torch device.
        callbacks: more callbacks; one of the same class as a default replaces that default.
        run: an epochal Run to record into; else one is started (``project``, ``name``, ``config``,
            ``tags``, ``store``) and finished when ``fit`` or ``test`` ends.
        monitor, mode: the key that decides the best model (default ``valid/loss``, or
            ``train/epoch_loss`` without validation data) and whether lower or higher is better.
        accumulate_grad_batches: batches whose gradients add up before an optimizer step.
        grad_clip_norm: clip the gradients' total norm to this.
        amp: mixed precision: bfloat16 autocast on CPU, float16 with a GradScaler on CUDA.
        eval_every: evaluate on ``valid_data`` every this many epochs (and after the last).
        on_nan: 'stop' (raise NonFiniteLossError naming the step, keep the last good checkpoint)
            or 'continue'.
        progress, epoch_table, csv_tables, checkpoint, summary: the default callbacks (progress
            bars, a table per epoch, CSV tables in the run folder, ModelCheckpoint) and the
            summary printed at the start; each can be switched off.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        loss_fn: Any = None,
        train_data: Iterable | None = None,
        valid_data: Iterable | None = None,
        test_data: Iterable | None = None,
        metrics: Sequence[Any] = (),
        max_epochs: int = 10,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        device: str | torch.device = "auto",
        callbacks: Sequence[Callback] = (),
        run: Run | None = None,
        project: str = "default",
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        store: str | Path | Store | None = None,
        monitor: str | None = None,
        mode: str | None = None,
        accumulate_grad_batches: int = 1,
        grad_clip_norm: float | None = None,
        amp: bool = False,
        eval_every: int = 1,
        on_nan: str = "stop",
        progress: bool = True,
        epoch_table: bool = True,
        csv_tables: bool = True,
        checkpoint: bool = True,
        summary: bool = True,
    ):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        if on_nan not in ("stop", "continue"):
            raise ValueError(f"on_nan must be 'stop' or 'continue', got {on_nan!r}")
        for label, number in (("max_epochs", max_epochs), ("accumulate_grad_batches", accumulate_grad_batches),
                              ("eval_every", eval_every)):
            if not isinstance(number, int) or number < 1:
                raise ValueError(f"{label} must be a whole number of at least 1, got {number!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.loaders = {s: d for s, d in zip(STAGES, (train_data, valid_data, test_data)) if d is not None}
        self.metrics = {stage: MetricSet(metrics) for stage in STAGES}
        self.max_epochs = max_epochs
        self.device = _device(device)
        self.monitor = monitor or ("valid/loss" if valid_data is not None else "train/epoch_loss")
        self.mode = mode or best_mode(self.monitor)
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.accumulate_grad_batches = accumulate_grad_batches
        self.grad_clip_norm = grad_clip_norm
        self.amp = amp
        self.scaler = torch.amp.GradScaler("cuda") if amp and self.device.type == "cuda" else None
        self.eval_every = eval_every
        self.on_nan = on_nan
        self.show_summary = summary
        self.callbacks = _with_defaults(callbacks, progress, epoch_table, csv_tables, checkpoint)
        self.run = run
        self._owns_run = run is None
        self._run_args = {"project": project, "name": name, "config": config, "tags": tags, "store": store}
        self.epoch = 0  # index of the current epoch
        self.best: tuple[float, int] | None = None  # (monitored value, epoch)
        self.should_stop = False
        self.stop_reason: str | None = None
        self.fit_started: float | None = None
        self.example_input: Any = None
        self.history: list[dict[str, StageResult]] = []
        self._pending_backward = False

    # -- the steps a subclass may override -------------------------------------------------------

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        """``(input, target)`` of a batch; batches of another shape need the steps overridden."""
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0], batch[1]
        raise TypeError(
            f"a batch is expected to be (input, target), got {_describe(batch)}; override "
            "Trainer.training_step(batch) and Trainer.evaluation_step(batch) to handle it"
        )

    def training_step(self, batch: Any) -> Any:
        """The loss of a training batch, or ``(loss, output, target)`` so metrics can be computed."""
        inputs, target = self.split_batch(batch)
        output = self.model(inputs)
        return self.loss_fn(output, target), output, target

    def evaluation_step(self, batch: Any) -> Any:
        """Like :meth:`training_step`, for validation and test batches (run without gradients)."""
        inputs, target = self.split_batch(batch)
        output = self.model(inputs)
        return self.loss_fn(output, target), output, target

    # -- fit and test ------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> Trainer:
        """Train until ``max_epochs`` or until a callback stops it.

        Args:
            resume: continue the run (this trainer's, or the newest of ``name``) from its last
                checkpoint: weights, optimizer, scheduler, random states, data order and callback
                state, so the continued run is the run it would have been.
        """
        if "train" not in self.loaders:
            raise ValueError("Trainer.fit needs train_data")
        if self.optimizer is None:
            raise ValueError("Trainer.fit needs an optimizer")
        resumed = self._open_run(resume)
        self.model.to(self.device)
        for metric_set in self.metrics.values():
            metric_set.to(self.device)
        partial = self._restore() if resumed else None
        if self.show_summary:
            self._print_summary()
        self.fit_started = time.time()
        self.should_stop, self.stop_reason = False, None
        status = "finished"
        try:
            self._fire("on_fit_start")
            while self.run.epochs < self.max_epochs and not self.should_stop:
                self._run_epoch(partial)
                partial = None
            self._fire("on_fit_end")
        except StopTraining as stop:  # raised by a step rather than a callback: stop right here
            self.stop_reason = str(stop) or "stopped by StopTraining"
            self._fire("on_fit_end")
        except KeyboardInterrupt:
            status = "interrupted"
            self._save_interrupted()
            self._fire_quietly("on_interrupt")
            raise
        except BaseException:
            status = "failed"
            self._fire_quietly("on_interrupt")
            raise
        finally:
            if self._owns_run:
                self.run.finish(status)
        if self.stop_reason:
            print(f"epochal: {self.stop_reason}", file=sys.stdout)
        return self

    def test(self, data: Iterable | None = None) -> StageResult:
        """Evaluate on ``data`` (default ``test_data``); logs ``test/loss`` and ``test/<metric>``."""
        loader = data if data is not None else self.loaders.get("test")
        if loader is None:
            raise ValueError("Trainer.test needs test data: give test_data to the Trainer or data to test()")
        self._open_run(resume=False)
        self.model.to(self.device)
        self.metrics["test"].to(self.device)
        try:
            result = self._run_stage("test", loader)
            self._fire("on_test_end", result)
        finally:
            if self._owns_run:
                self.run.finish()
        return result

    def stop(self, reason: str) -> None:
        """Ask the fit to end after the current epoch (callbacks call this)."""
        self.should_stop = True
        self.stop_reason = reason

    def monitored_value(self, results: Mapping[str, StageResult], key: str, required: bool = True) -> float | None:
        """The value of ``key`` in this epoch's results; None if that stage did not run."""
        values: dict[str, float] = {}
        for result in results.values():
            values.update(result.logged())
        if "train" in results:
            values["train/epoch_loss"] = results["train"].loss_mean
        if key in values:
            return values[key]
        stage = key.split("/", 1)[0]
        if required and (stage in results or stage not in STAGES):
            raise ValueError(f"the monitored key {key!r} was never logged; the epoch logged: {', '.join(values)}")
        return None

    def save_checkpoint(self, *, metric: tuple[str, float] | None = None, mode: str = "max",
                        retention: checkpoints.Retention | None = None, partial: dict | None = None):
        """A resumable checkpoint of everything: model, optimizer, scheduler, scaler, random
        states, data order and each callback's state."""
        extra = {
            "callbacks": {key: callback.state_dict() for key, callback in self._keyed_callbacks()},
            "loaders": _generator_states(self.loaders),
            "trainer": {"best": None if self.best is None else list(self.best), "partial": partial},
        }
        return self.run.save_checkpoint(
            models={"model": self.model}, optimizers=None if self.optimizer is None else {"optimizer": self.optimizer},
            schedulers=None if self.scheduler is None else {"scheduler": self.scheduler},
            scaler=self.scaler, extra=extra, metric=metric, mode=mode, retention=retention,
        )

    # -- the loop ----------------------------------------------------------------------------------

    def _run_epoch(self, partial: dict | None) -> None:
        self.epoch = self.run.epochs
        self._epoch_rng = checkpoints.rng_state()
        self._epoch_generators = _generator_states(self.loaders)
        self._train_result = None
        if partial is not None and partial["stage"] == "valid":  # interrupted after training this epoch
            results = {"train": StageResult(**partial["train"])}
            self._train_result = results["train"]
        else:
            if partial is None:  # a part-way epoch being continued has had its start
                self._fire("on_epoch_start")
            results = {"train": self._run_stage("train", self.loaders["train"], partial=partial)}
            self._train_result = results["train"]
        last = self.epoch + 1 == self.max_epochs
        if "valid" in self.loaders and ((self.epoch + 1) % self.eval_every == 0 or last):
            results["valid"] = self._run_stage("valid", self.loaders["valid"])
        if "valid" in results or "valid" not in self.loaders:
            self._note_best(results)
            self._fire("on_eval_end", results)
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                value = self.monitored_value(results, self.monitor, required=False)
                if value is not None:
                    self.scheduler.step(value)
            else:
                self.scheduler.step()
        self.run.epoch()
        self.history.append(results)
        self._fire("on_epoch_end", results)

    def _run_stage(self, stage: str, loader: Iterable, partial: dict | None = None) -> StageResult:
        training = stage == "train"
        batches = len(loader) if hasattr(loader, "__len__") else None
        if batches == 0:
            raise ValueError(f"{stage}_data is empty: it gives no batches")
        sampler = getattr(loader, "sampler", None)
        if training and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)  # a DistributedSampler shuffles by epoch
        self._fire("on_stage_start", stage, batches)
        metric_set = self.metrics[stage]
        metric_set.reset()
        self.model.train(training)
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        loss_sum, loss_squares, count, samples, skip = zero, zero.clone(), 0, 0, 0
        if partial is None:
            iterator = iter(loader)
        else:
            # An epoch interrupted part-way: draw its data order again from the states the epoch
            # started with (samplers draw it at the first batch), then go on from where it stopped.
            self._epoch_rng, self._epoch_generators = partial["epoch_rng"], partial["epoch_generators"]
            checkpoints.set_rng_state(partial["epoch_rng"])
            _set_generator_states(self.loaders, partial["epoch_generators"])
            replay = iter(loader)
            iterator = itertools.chain([next(replay)], replay)
            checkpoints.set_rng_state(partial["rng"])
            _set_generator_states(self.loaders, partial["generators"])
            skip, count, samples = partial["batches"], partial["count"], partial["samples"]
            loss_sum, loss_squares = (t.to(self.device) for t in (partial["loss_sum"], partial["loss_squares"]))
            metric_set.load_state_dict(partial["metrics"])
        started = time.perf_counter()
        self._stage = stage
        self._stage_progress = None  # the last batch whose optimizer step is done, and the sums with it
        self._stepped = -1
        # On the CPU reading the loss costs nothing; on an accelerator it would wait for the device,
        # so there the loss stays a tensor until the pass ends.
        on_host = self.device.type == "cpu"
        if on_host:
            loss_sum, loss_squares = float(loss_sum), float(loss_squares)
        step = self.training_step if training else self.evaluation_step
        stop_on_nan = self.on_nan == "stop"
        batch_hooks = [c for c in self.callbacks if type(c).on_batch_end is not Callback.on_batch_end]
        with torch.set_grad_enabled(training):
            for index, batch in enumerate(iterator):
                if index < skip:
                    continue
                if not on_host:
                    batch = _to_device(batch, self.device)
                if self.amp:
                    with self._autocast():
                        loss, output, target = _unpack(step(batch))
                else:
                    loss, output, target = _unpack(step(batch))
                value = loss.item() if on_host else loss.detach().to(torch.float64)
                if stop_on_nan and on_host and not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"the {stage} loss is {value} at step {self.run.steps} (epoch {self.epoch}, batch "
                        f"{index}); the fit stopped, the last checkpoint is from before it. Pass on_nan='continue' "
                        "to train on"
                    )
                if training:
                    if self.example_input is None:
                        self.example_input = _input_of(self, batch)
                    self._backward(loss, index, batches)
                if output is not None and metric_set.names:
                    metric_set.update(output, target)
                size = _batch_size(target, batch)
                loss_sum = loss_sum + value
                loss_squares = loss_squares + value * value
                count += 1
                samples += size
                # Past this point the batch counts as done (for a checkpoint taken on Ctrl-C).
                self._stage_progress = (index, count, samples, loss_sum, loss_squares)
                if batch_hooks:
                    self._fire("on_batch_end", BatchResult(stage, index, size, value if on_host else loss.detach()))
                if training:
                    self.run.step()
                    self._stepped = index
        if training and self._pending_backward:
            self._optimizer_step()
        if count == 0:
            raise ValueError(f"{stage}_data is empty: it gives no batches")
        mean = float(loss_sum) / count
        variance = max(float(loss_squares) / count - mean * mean, 0.0)
        if self.on_nan == "stop" and not math.isfinite(mean):
            raise NonFiniteLossError(f"the {stage} loss became {mean} in epoch {self.epoch}; the fit stopped")
        result = StageResult(
            stage=stage, epoch=self.epoch, samples=samples, batches=count, loss_mean=mean,
            loss_std=math.sqrt(variance * count / (count - 1)) if count > 1 else 0.0,
            metrics=metric_set.compute(), seconds=time.perf_counter() - started,
        )
        self._fire("on_stage_end", result)
        return result

    def _backward(self, loss: torch.Tensor, index: int, batches: int | None) -> None:
        scaled = loss if self.accumulate_grad_batches == 1 else loss / self.accumulate_grad_batches
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        self._pending_backward = True
        if (index + 1) % self.accumulate_grad_batches == 0 or (batches is not None and index + 1 == batches):
            self._optimizer_step()

    def _optimizer_step(self) -> None:
        if self.grad_clip_norm is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._pending_backward = False
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    # -- runs, state and hooks ---------------------------------------------------------------------

    def _open_run(self, resume: bool) -> bool:
        """Make ``self.run`` an open run; True if it continues a run that should load its checkpoint."""
        if self.run is not None and not self.run._finished:
            return resume
        if self.run is not None:  # finished by an earlier fit or test of this trainer: reopen it
            self.run = _resume(self.run.id, self.run.store)
            return resume
        args = self._run_args
        if resume and args["name"]:
            try:
                self.run = _resume(args["name"], args["store"])
                return True
            except RunNotFoundError:
                print(f"epochal: no run named {args['name']!r} to resume; starting a new one")
        self.run = start(args["project"], args["name"], config=args["config"], tags=args["tags"], store=args["store"])
        return False

    def _restore(self) -> dict | None:
        try:
            loaded = self.run.load_checkpoint(
                "last", models={"model": self.model},
                optimizers=None if self.optimizer is None else {"optimizer": self.optimizer},
                schedulers=None if self.scheduler is None else {"scheduler": self.scheduler}, scaler=self.scaler,
            )
        except CheckpointError as exc:
            raise CheckpointError(f"cannot resume: {exc}") from None
        extra = loaded.extra or {}
        saved = extra.get("callbacks", {})
        for key, callback in self._keyed_callbacks():
            if key in saved:
                callback.load_state_dict(saved[key])
        _set_generator_states(self.loaders, extra.get("loaders", {}))
        trainer_state = extra.get("trainer", {})
        self.best = None if trainer_state.get("best") is None else tuple(trainer_state["best"])
        self.epoch = self.run.epochs
        print(f"epochal: resumed run {self.run.name} ({self.run.id}) at epoch {self.run.epochs}, step {self.run.steps}")
        return trainer_state.get("partial")

    def _save_interrupted(self) -> None:
        """On Ctrl-C mid-epoch: a resumable checkpoint that replays the epoch's data order."""
        stage = getattr(self, "_stage", None)
        progress = getattr(self, "_stage_progress", None)
        partial = None
        if stage == "train":
            if progress is None:  # no batch done yet: the epoch starts again from its beginning
                checkpoints.set_rng_state(self._epoch_rng)
            else:
                index, count, samples, loss_sum, loss_squares = progress
                if self._stepped < index:  # its hooks ran (or were cut short); only the step count was left
                    self.run.step()
                partial = {"stage": "train", "epoch_rng": self._epoch_rng, "rng": checkpoints.rng_state(),
                           "epoch_generators": self._epoch_generators, "generators": _generator_states(self.loaders),
                           "batches": index + 1, "count": count, "samples": samples,
                           "loss_sum": torch.as_tensor(loss_sum, dtype=torch.float64).cpu(),
                           "loss_squares": torch.as_tensor(loss_squares, dtype=torch.float64).cpu(),
                           "metrics": self.metrics["train"].state_dict()}
        elif stage == "valid" and self._train_result is not None:
            partial = {"stage": "valid", "train": dataclasses.asdict(self._train_result)}
        try:
            from epochal.train.checkpointing import ModelCheckpoint

            keeper = next((c for c in self.callbacks if isinstance(c, ModelCheckpoint)), None)
            retention = keeper.retention if keeper is not None else checkpoints.Retention(last=1, best=0)
            self.save_checkpoint(partial=partial, retention=retention)
            print("epochal: interrupted; saved a checkpoint to resume from with fit(resume=True)", file=sys.stderr)
        except EpochalError as exc:
            print(f"epochal: interrupted; could not save a checkpoint: {exc}", file=sys.stderr)

    def _note_best(self, results: Mapping[str, StageResult]) -> None:
        value = self.monitored_value(results, self.monitor)
        if value is None or math.isnan(value):
            return
        if self.best is None or (value < self.best[0] if self.mode == "min" else value > self.best[0]):
            self.best = (value, self.epoch)

    def _keyed_callbacks(self) -> list[tuple[str, Callback]]:
        seen: dict[str, int] = {}
        keyed = []
        for callback in self.callbacks:
            name = type(callback).__name__
            seen[name] = seen.get(name, 0) + 1
            keyed.append((name if seen[name] == 1 else f"{name}-{seen[name]}", callback))
        return keyed

    def _fire(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            if getattr(type(callback), hook) is getattr(Callback, hook):
                continue  # not overridden: skip the call (this runs for every batch)
            try:
                getattr(callback, hook)(self, *args)
            except StopTraining as stop:  # the epoch still ends as usual, then the fit stops
                self.stop(str(stop) or f"stopped by {type(callback).__name__}")

    def _fire_quietly(self, hook: str) -> None:
        """Fire a hook while an error is on its way out: a failing callback must not hide it."""
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(self)
            except Exception as exc:
                print(f"epochal: {type(callback).__name__}.{hook} failed: {exc!r}", file=sys.stderr)

    def _print_summary(self) -> None:
        from epochal.train.summary import model_summary

        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        lines = [
            f"epochal: run {self.run.name} ({self.run.id}), project {self.run.project}, folder {self.run.path}",
            f"device: {self.device}" + (" | amp: " + ("float16" if self.device.type == "cuda" else "bfloat16")
                                          if self.amp else ""),
            f"parameters: {total:,} ({trainable:,} trainable)",
            model_summary(self.model),
            "data: " + " | ".join(f"{stage} {_data_size(loader)}" for stage, loader in self.loaders.items()),
            f"monitor: {self.monitor} ({self.mode}) | epochs: {self.run.epochs} done of {self.max_epochs}",
        ]
        print("\n".join(lines))


# -- helpers ---------------------------------------------------------------------------------------


def _resume(ref: str, store: Any) -> Run:
    if isinstance(store, Store) or store is None:
        return resume(ref, store=store)
    return resume(ref, store=Store(store))


def _with_defaults(callbacks: Sequence[Callback], progress: bool, table: bool, csv: bool,
                   checkpoint: bool) -> list[Callback]:
    from epochal.train.checkpointing import ModelCheckpoint
    from epochal.train.logger import MetricLogger

    given = list(callbacks)
    for callback in given:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be epochal.Callback objects, got {callback!r}")
    defaults: list[Callback] = [MetricLogger()]
    if progress:
        from epochal.train.progress import ProgressBar

        defaults.append(ProgressBar())
    if table:
        from epochal.train.epoch_table import EpochTable

        defaults.append(EpochTable())
    if csv:
        from epochal.train.csv_tables import CSVTables

        defaults.append(CSVTables())
    if checkpoint:
        defaults.append(ModelCheckpoint())
    kinds = {type(c) for c in given}
    chosen = [d for d in defaults if type(d) not in kinds] + given
    return sorted(chosen, key=lambda c: c.order)  # stable: same order keeps the order given


def _device(device: str | torch.device) -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)((k, _to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _unpack(step_output: Any) -> tuple[torch.Tensor, Any, Any]:
    if torch.is_tensor(step_output):
        return step_output, None, None
    if isinstance(step_output, Mapping) and "loss" in step_output:
        return step_output["loss"], step_output.get("output"), step_output.get("target")
    if isinstance(step_output, (tuple, list)) and len(step_output) == 3 and torch.is_tensor(step_output[0]):
        return step_output[0], step_output[1], step_output[2]
    raise TypeError(
        "training_step/evaluation_step must return the loss tensor, (loss, output, target) or "
        f"{{'loss': ..., 'output': ..., 'target': ...}}; got {_describe(step_output)}"
    )


def _input_of(trainer: Trainer, batch: Any) -> Any:
    try:
        return trainer.split_batch(batch)[0]
    except TypeError:
        return None


def _batch_size(target: Any, batch: Any) -> int:
    for candidate in (target, batch):
        found = _first_tensor(candidate)
        if found is not None:
            return int(found.shape[0]) if found.ndim else 1
    return 1


def _first_tensor(value: Any) -> torch.Tensor | None:
    if torch.is_tensor(value):
        return value
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _data_size(loader: Any) -> str:
    dataset = getattr(loader, "dataset", None)
    samples = f"{len(dataset):,} samples" if hasattr(dataset, "__len__") else "? samples"
    batches = f"{len(loader):,} batches" if hasattr(loader, "__len__") else "? batches"
    return f"{samples} ({batches})"


def _generators(loader: Any) -> list[torch.Generator]:
    found = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                  getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def _generator_states(loaders: Mapping[str, Any]) -> dict[str, list[torch.Tensor]]:
    return {stage: [g.get_state() for g in _generators(loader)] for stage, loader in loaders.items()}


def _set_generator_states(loaders: Mapping[str, Any], states: Mapping[str, list]) -> None:
    for stage, loader in loaders.items():
        for generator, state in zip(_generators(loader), states.get(stage, [])):
            generator.set_state(state)
