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

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from epochal.errors import EpochalError, RunNotFoundError
from epochal.keys import best_mode, is_better
from epochal.logs import logger
from epochal.opening import resume, start
from epochal.retention import Retention
from epochal.run import Run
from epochal.store.store import Store
from epochal.train.batches import batch_size, describe, input_of, pick_device, timed, to_device, unpack_step
from epochal.train.callback import STAGES, BatchResult, Callback, StageResult, StopTraining
from epochal.train.defaults import with_defaults
from epochal.train.distributed import shard, shard_all, sum_over_ranks, unwrapped, wrap
from epochal.train.metrics import MetricSet
from epochal.train.precision import amp_dtype, autocast, grad_scaler
from epochal.train.resume import (
    Interrupts,
    Position,
    Progress,
    ResumeState,
    batch_rng,
)
from epochal.train.summary import fit_summary
from epochal.train.trainer_state import restore, saved_state


class NonFiniteLossError(EpochalError, FloatingPointError):
    """The loss became NaN or infinite and the Trainer was told to stop (``on_nan="stop"``)."""


class Trainer:
    """Train, evaluate and test a model, recording everything in an epochal run.

    Under ``torchrun`` (DDP) the same code trains one model on every rank's share of the data and
    records one run: see the README's "Several GPUs". The model is wrapped in DistributedDataParallel
    (``model`` is the wrapper during a fit, ``module`` the model itself), the training loader gets a
    DistributedSampler, metrics are summed over ranks, and rank 0 alone prints and writes files.

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
        amp: mixed precision. True: bfloat16 autocast where the device computes it (CPUs, CUDA from
            Ampere on), else float16 with a GradScaler; 'bf16' or 'fp16' to choose; False: float32.
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
        amp: bool | str = False,
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
        self.device = pick_device(device)
        self.monitor = monitor or ("valid/loss" if valid_data is not None else "train/epoch_loss")
        self.mode = mode or best_mode(self.monitor)
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.accumulate_grad_batches = accumulate_grad_batches
        self.grad_clip_norm = grad_clip_norm
        self.amp = amp
        self.amp_dtype = amp_dtype(amp, self.device)  # None: full precision
        self.scaler = grad_scaler(self.amp_dtype, self.device)
        self.eval_every = eval_every
        self.on_nan = on_nan
        self.show_summary = summary
        self.callbacks = with_defaults(callbacks, progress=progress, epoch_table=epoch_table, csv_tables=csv_tables,
                                       checkpoint=checkpoint)
        self.run = run
        self._owns_run = run is None
        self._run_args = {"project": project, "name": name, "config": config, "tags": tags, "store": store}
        self.epoch = 0  # index of the current epoch
        self.best: tuple[float, int] | None = None  # (monitored value, epoch)
        self.should_stop = False
        self.stop_reason: str | None = None
        self.fit_started: float | None = None
        #: Seconds the training passes so far spent waiting for their data loader's next batch.
        self.data_seconds = 0.0
        self.example_input: Any = None
        self.history: list[dict[str, StageResult]] = []
        self._interrupts = Interrupts()
        self.resume_state = ResumeState(model, self.loaders, self.device)
        self._placed_job: Any = None  # the DDP job the model was wrapped and the data sharded for
        self._opened: str | None = None  # 'started' or 'resumed' when this fit opened self.run
        self._status_before: str | None = None  # the status of the run this fit resumed, before it did

    @property
    def module(self) -> torch.nn.Module:
        """The model being trained, without the DistributedDataParallel wrapper ``model`` has under DDP."""
        return unwrapped(self.model)

    # -- the steps a subclass may override -------------------------------------------------------

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        """``(input, target)`` of a batch; batches of another shape need the steps overridden."""
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0], batch[1]
        raise TypeError(
            f"a batch is expected to be (input, target), got {describe(batch)}; override "
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

        Ctrl-C stops at the next well-defined point of the epoch (the end of a batch or of a
        hook) and saves a checkpoint from which ``fit(resume=True)`` continues exactly; a second
        Ctrl-C stops at once.

        Args:
            resume: continue the run (this trainer's, or the newest of ``name``) from its last
                checkpoint: weights, optimizer, scheduler, random states, data order and callback
                state, so the continued run is the run it would have been. A run stopped before its
                first checkpoint is trained again from epoch 0, its new points replacing the old.

        Raises:
            CheckpointError: the run cannot be resumed (its checkpoint does not fit this model,
                optimizer or callbacks, or is missing); the run is left as it was.
        """
        if "train" not in self.loaders:
            raise ValueError("Trainer.fit needs train_data")
        if self.optimizer is None:
            raise ValueError("Trainer.fit needs an optimizer")
        resumed = self._open_run(resume)
        self.should_stop, self.stop_reason = False, None
        try:
            self._place()
            start_at = self._restore() if resumed else None
            if self.show_summary and self.run.rank == 0:
                print(fit_summary(self))
        except BaseException:
            self._give_back_run()
            raise
        self.fit_started = time.time()
        self.resume_state.passed(start_at or Position("start", self.run.epochs))
        status = "finished"
        try:
            with self._interrupts:
                self._fire("on_fit_start")
                self._check()
                while start_at is not None or (self.run.epochs < self.max_epochs and not self.should_stop):
                    self._run_epoch(start_at)
                    start_at = None
                self._fire("on_fit_end")
        except StopTraining as stop:  # raised by a step rather than a callback: stop right here
            self.stop_reason = str(stop) or "stopped by StopTraining"
            self._fire("on_fit_end")
        except KeyboardInterrupt:
            status = "interrupted"
            self.resume_state.settle(self.run)
            self._fire_quietly("on_keyboard_interrupt")
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
            logger.info(self.stop_reason)
        if self._interrupts.requested:  # Ctrl-C while the fit was ending: it ended, and the program stops
            raise KeyboardInterrupt
        return self

    def test(self, data: Iterable | None = None) -> StageResult:
        """Evaluate on ``data`` (default ``test_data``); logs ``test/loss`` and ``test/<metric>``."""
        loader = data if data is not None else self.loaders.get("test")
        if loader is None:
            raise ValueError("Trainer.test needs test data: give test_data to the Trainer or data to test()")
        self._open_run(resume=False)
        self._place()
        if self.run.job is not None:
            loader = shard("test", loader, self.run.job)
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
                        retention: Retention | None = None, mid_epoch: bool = False):
        """A resumable checkpoint of everything: model, optimizer, scheduler, scaler, random
        states, data order and each callback's state.

        Args:
            metric, mode, retention: as :meth:`epochal.Run.save_checkpoint`.
            mid_epoch: continue from the last well-defined point the fit passed (what a Ctrl-C
                checkpoint keeps); otherwise from the start of the next epoch.
        """
        extra = saved_state(self, mid_epoch)
        return self.run.save_checkpoint(
            models={"model": self.module}, optimizers=None if self.optimizer is None else {"optimizer": self.optimizer},
            schedulers=None if self.scheduler is None else {"scheduler": self.scheduler},
            scaler=self.scaler, extra=extra, metric=metric, mode=mode, retention=retention,
        )

    # -- the loop ----------------------------------------------------------------------------------
    # Each epoch passes the points of resume.Position; _pass() records one and is where a Ctrl-C
    # asked for during the fit stops it.

    def _run_epoch(self, at: Position | None) -> None:
        at = at or Position("start", self.run.epochs)
        self.epoch = at.epoch
        results = dict(at.results)
        if at.phase == "start":
            self._fire("on_epoch_start")
            self._pass(Position("stages", self.epoch))
        if at.phase in ("start", "stages"):
            last = self.epoch + 1 == self.max_epochs
            evaluate = "valid" in self.loaders and ((self.epoch + 1) % self.eval_every == 0 or last)
            for stage in ("train", "valid") if evaluate else ("train",):
                if stage in results:
                    continue
                progress = at.progress if at.progress is not None and at.progress.stage == stage else None
                results[stage] = self._run_stage(stage, self.loaders[stage], progress)
                self._pass(Position("stages", self.epoch, dict(results)))
            if "valid" in results or "valid" not in self.loaders:
                self._note_best(results)
                self._fire("on_eval_end", results)
            self._pass(Position("evaluated", self.epoch, dict(results)))
        if at.phase != "ended":
            if self.scheduler is not None and self.scheduler_interval == "epoch":
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    value = self.monitored_value(results, self.monitor, required=False)
                    if value is not None:
                        self.scheduler.step(value)
                else:
                    self.scheduler.step()
            self.run.epoch()
            self.resume_state.passed(Position("ended", self.epoch, dict(results)))
        self.history.append(results)
        self._fire("on_epoch_end", results)
        self._pass(Position("start", self.run.epochs))

    def _pass(self, position: Position) -> None:
        self.resume_state.passed(position)
        self._check()

    def _check(self) -> None:
        if self._interrupts.requested:
            raise KeyboardInterrupt

    def _run_stage(self, stage: str, loader: Iterable, progress: Progress | None = None) -> StageResult:
        if stage == "train" or self.run.job is None:
            return self._run_pass(stage, loader, progress)
        # Under DDP ranks evaluate shards of different sizes: without the wrapper, which would wait
        # for the other ranks at every forward.
        wrapper, self.model = self.model, self.module
        try:
            return self._run_pass(stage, loader, progress)
        finally:
            self.model = wrapper

    def _run_pass(self, stage: str, loader: Iterable, progress: Progress | None = None) -> StageResult:
        training = stage == "train"
        batches = len(loader) if hasattr(loader, "__len__") else None
        if batches == 0 and self.run.job is None:  # under DDP a rank's share may be empty; the sum over ranks tells
            raise ValueError(f"{stage}_data is empty: it gives no batches")
        sampler = getattr(loader, "sampler", None)
        if training and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)  # a DistributedSampler shuffles by epoch
        self._fire("on_stage_start", stage, batches)
        metric_set = self.metrics[stage]
        metric_set.reset()
        self.model.train(training)
        state = self.resume_state
        iterator, count, samples, loss_sum, loss_squares = state.start_stage(stage, loader, metric_set, progress, self.run.steps)
        started = time.perf_counter()
        # On the CPU reading the loss costs nothing; on an accelerator it would wait for the device,
        # so there the loss stays a tensor until the pass ends.
        on_host = self.device.type == "cpu"
        if on_host:
            loss_sum, loss_squares = float(loss_sum), float(loss_squares)
        # What a Ctrl-C checkpoint needs, kept up to date for every batch: see ResumeState.
        state.done = (count, samples, loss_sum, loss_squares, self.run.steps)
        device, interrupts = self.device, self._interrupts
        self._check()
        step = self.training_step if training else self.evaluation_step
        stop_on_nan = self.on_nan == "stop"
        batch_hooks = [c for c in self.callbacks if type(c).on_batch_end is not Callback.on_batch_end]
        if training:
            iterator = timed(iterator, self)
        with torch.set_grad_enabled(training):
            for index, batch in enumerate(iterator, start=count):
                if not on_host:
                    batch = to_device(batch, self.device)
                if self.amp_dtype is not None:
                    with autocast(self.amp_dtype, self.device):
                        loss, output, target = unpack_step(step(batch))
                else:
                    loss, output, target = unpack_step(step(batch))
                # On the device the float64 sums below take the loss as it is: no conversion to launch.
                value = loss.item() if on_host else loss.detach()
                if stop_on_nan and on_host and not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"the {stage} loss is {value} at step {self.run.steps} (epoch {self.epoch}, batch "
                        f"{index}); the fit stopped, the last checkpoint is from before it. Pass on_nan='continue' "
                        "to train on"
                    )
                if training:
                    if self.example_input is None:
                        self.example_input = input_of(self, batch)
                    self._backward(loss, index, batches)
                if output is not None and metric_set.names:
                    metric_set.update(output, target)
                size = batch_size(target, batch)
                # Weighted by the batch's samples, so the mean is over samples however the data is
                # split into batches (and ranks).
                loss_sum = loss_sum + value * size if on_host else torch.add(loss_sum, value, alpha=size)
                loss_squares = (loss_squares + value * value * size if on_host
                                else torch.addcmul(loss_squares, value, value, value=size))
                count += 1
                samples += size
                # Past this point the batch counts as done; its step is counted after its hooks.
                state.done = (count, samples, loss_sum, loss_squares, self.run.steps + training)
                if batch_hooks:
                    self._fire("on_batch_end", BatchResult(stage, index, size, value, output, target))
                if training:
                    self.run.step()
                state.rewind = (count, batch_rng(device))
                if interrupts.requested:
                    raise KeyboardInterrupt
        if training and state.grads_pending:
            self._optimizer_step()
        if self.run.job is not None:  # exact over the whole data set: every rank's sums added up
            totals = sum_over_ranks([count, samples, loss_sum, loss_squares, *metric_set.totals()], self.run.job)
            count, samples, loss_sum, loss_squares = int(totals[0]), int(totals[1]), totals[2], totals[3]
            metric_set.set_totals(totals[4:])
        if count == 0:
            raise ValueError(f"{stage}_data is empty: it gives no batches")
        mean = float(loss_sum) / samples if samples else math.nan
        variance = max(float(loss_squares) / samples - mean * mean, 0.0) if samples else math.nan
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
        self.resume_state.grads_pending = True
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
        self.resume_state.grads_pending = False
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()

    # -- runs, state and hooks ---------------------------------------------------------------------

    def _open_run(self, resume: bool) -> bool:
        """Make ``self.run`` an open run; True if it continues a run that should load its checkpoint."""
        self._opened, self._status_before = None, None
        if self.run is not None and not self.run.finished:
            return resume
        if self.run is not None:  # finished by an earlier fit or test of this trainer: reopen it
            self.run, self._status_before = _resume(self.run.id, self.run.store)
            self._opened = "resumed"
            return resume
        args = self._run_args
        if resume and args["name"]:
            try:
                self.run, self._status_before = _resume(args["name"], args["store"])
                self._opened = "resumed"
                return True
            except RunNotFoundError:
                logger.info(f"no run named {args['name']!r} to resume; starting a new one")
        self.run = start(args["project"], args["name"], config=args["config"], tags=args["tags"], store=args["store"])
        self._opened = "started"
        return False

    def _place(self) -> None:
        """Move the model and metrics to the device; under DDP, the rank's device, the model wrapped in
        DistributedDataParallel and each loader sharded (once per job)."""
        job = self.run.job
        if job is not None and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", job.local_rank)
        self.model.to(self.device)
        for metric_set in self.metrics.values():
            metric_set.to(self.device)
        if job is None or job is self._placed_job:
            return
        self.model = wrap(self.model, self.device)
        self.loaders = shard_all(self.loaders, job)
        self.resume_state = ResumeState(self.module, self.loaders, self.device)
        self._placed_job = job

    def _give_back_run(self) -> None:
        """A fit that failed before training: a run it resumed goes back to how it was, one it started fails."""
        if self._opened == "resumed":
            self.run.abandon()
        elif self._opened == "started":
            self.run.finish("failed")

    def _restore(self) -> Position | None:
        """Load the run's last checkpoint into everything; the position to continue from, if mid-epoch."""
        return restore(self, self._status_before)

    def _note_best(self, results: Mapping[str, StageResult]) -> None:
        value = self.monitored_value(results, self.monitor)
        if value is None or math.isnan(value):
            return
        if is_better(value, None if self.best is None else self.best[0], self.mode):
            self.best = (value, self.epoch)

    def _fire(self, hook: str, *args: Any) -> None:
        follower = self.run is not None and self.run.rank != 0
        for callback in self.callbacks:
            if follower and callback.rank_zero_only:
                continue
            if getattr(type(callback), hook) is getattr(Callback, hook):
                continue  # not overridden: skip the call (this runs for every batch)
            try:
                getattr(callback, hook)(self, *args)
            except StopTraining as stop:  # the epoch still ends as usual, then the fit stops
                self.stop(str(stop) or f"stopped by {type(callback).__name__}")
            except KeyboardInterrupt:
                # During a fit, Ctrl-C in one callback lets the others finish this hook; the fit then
                # stops at the next well-defined point. A second Ctrl-C (forced) stops at once.
                if not self._interrupts.active or self._interrupts.forced:
                    raise
                self._interrupts.requested = True

    def _fire_quietly(self, hook: str) -> None:
        """Fire a hook while an error is on its way out: a failing callback must not hide it."""
        follower = self.run is not None and self.run.rank != 0
        for callback in self.callbacks:
            if follower and callback.rank_zero_only:
                continue
            try:
                getattr(callback, hook)(self)
            except Exception as exc:
                logger.warning(f"{type(callback).__name__}.{hook} failed: {exc!r}")


# -- helpers ---------------------------------------------------------------------------------------


def _resume(ref: str, store: Any) -> tuple[Run, str]:
    """The run reopened, and the status it had before."""
    run = resume(ref, store=store)
    return run, run.previous_status
