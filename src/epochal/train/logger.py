"""MetricLogger: the callback that records the Trainer's numbers in the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from epochal.train.callback import BatchResult, Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


class MetricLogger(Callback):
    """Logs the training loss of every batch, each pass's exact metrics and the learning rate.

    Keys: ``train/loss`` per batch (at the batch's step), then per pass ``{stage}/loss``,
    ``{stage}/loss_std`` and ``{stage}/{metric}`` (``train/loss`` per epoch is logged as
    ``train/epoch_loss``, so the per-batch curve stays one series), and ``lr`` once per epoch
    (``lr/group{i}`` as well when the optimizer has several parameter groups).
    """

    order = -100  # before anything that reads what was logged

    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None:
        if batch.stage == "train":
            trainer.run.log({"train/loss": batch.loss})

    def on_stage_end(self, trainer: TrainerView, result: StageResult) -> None:
        values = result.logged()
        if result.stage == "train":
            values["train/epoch_loss"] = values.pop("train/loss")
        trainer.run.log(values, epoch=result.epoch)

    def on_epoch_start(self, trainer: TrainerView) -> None:
        if trainer.optimizer is None:
            return
        groups = trainer.optimizer.param_groups
        rates = {"lr": float(groups[0]["lr"])}
        if len(groups) > 1:
            rates.update({f"lr/group{i}": float(group["lr"]) for i, group in enumerate(groups)})
        trainer.run.log(rates)
