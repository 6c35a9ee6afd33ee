"""MetricLogger: the callback that records the Trainer's numbers in the run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from epochal.train.callback import BatchResult, Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


#: Keys whose values measure time, not training: a resumed fit logs the same numbers as a straight one
#: for every other key, never for these.
TIMING_KEYS = ("samples/s", "data_wait")


class MetricLogger(Callback):
    """Logs the training loss of every batch, each pass's exact metrics and the learning rate.

    Keys: ``train/loss`` per batch (at the batch's step), then per pass ``{stage}/loss``,
    ``{stage}/loss_std`` and ``{stage}/{metric}`` (``train/loss`` per epoch is logged as
    ``train/epoch_loss``, so the per-batch curve stays one series), and ``lr`` once per epoch
    (``lr/group{i}`` as well when the optimizer has several parameter groups).

    Every ``THROUGHPUT_EVERY`` training batches, and at the end of each training pass, over the
    batches since the last time: ``samples/s``, the training samples per second (of every rank
    under DDP), and ``data_wait``, the share of that time the training loop waited for its data
    loader's next batch (near 1: the loader is the bottleneck; near 0: the model is).
    """

    order = -100  # before anything that reads what was logged
    #: Training batches between two points of ``samples/s`` and ``data_wait``.
    THROUGHPUT_EVERY = 100

    def __init__(self) -> None:
        self._window: tuple[float, float] | None = None  # (clock, trainer's data seconds) at the window's start
        self._samples = 0  # this rank's training samples in the window
        self._batches = 0

    def on_stage_start(self, trainer: TrainerView, stage: str, batches: int | None) -> None:
        if stage == "train":
            self._window = (time.perf_counter(), getattr(trainer, "data_seconds", 0.0))
            self._samples = self._batches = 0

    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None:
        if batch.stage == "train":
            trainer.run.log({"train/loss": batch.loss})
            self._samples += batch.size
            self._batches += 1
            if self._batches >= self.THROUGHPUT_EVERY:
                self._log_throughput(trainer, trainer.run.steps)

    def on_stage_end(self, trainer: TrainerView, result: StageResult) -> None:
        values = result.logged()
        if result.stage == "train":
            values["train/epoch_loss"] = values.pop("train/loss")
            if self._batches:  # the pass's last batch was counted: it is at the step before
                self._log_throughput(trainer, max(trainer.run.steps - 1, 0))
        trainer.run.log(values, epoch=result.epoch)

    def _log_throughput(self, trainer: TrainerView, step: int) -> None:
        now, waited = time.perf_counter(), getattr(trainer, "data_seconds", None)
        if self._window is not None and now > self._window[0]:
            seconds = now - self._window[0]
            values = {"samples/s": self._samples * trainer.run.world_size / seconds}
            if waited is not None:
                values["data_wait"] = min(max((waited - self._window[1]) / seconds, 0.0), 1.0)
            trainer.run.log(values, step=step)  # at the step of the window's last batch
        self._window = (now, 0.0 if waited is None else waited)
        self._samples = self._batches = 0

    def on_epoch_start(self, trainer: TrainerView) -> None:
        if trainer.optimizer is None:
            return
        groups = trainer.optimizer.param_groups
        rates = {"lr": float(groups[0]["lr"])}
        if len(groups) > 1:
            rates.update({f"lr/group{i}": float(group["lr"]) for i, group in enumerate(groups)})
        trainer.run.log(rates)
