"""ModelCheckpoint: the best model's weights and a resumable checkpoint after every epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from epochal.distributed import unwrapped
from epochal.errors import EpochalError
from epochal.keys import best_mode, is_better
from epochal.logs import logger
from epochal.retention import Retention
from epochal.train.callback import Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


class ModelCheckpoint(Callback):
    """Save checkpoints as a fit goes.

    After every epoch, and when Ctrl-C stops the fit, a resumable checkpoint (model, optimizer,
    scheduler, scaler, random states, data order, every callback's state) replaces the previous
    one, so ``fit(resume=True)`` always has one; ``every_n_epochs`` also keeps every n-th. When the
    monitored value improves, the model's weights alone are saved as the best (a small file).

    Args:
        monitor: the key ranking checkpoints; default the trainer's (``valid/loss``, ...).
        mode: 'min' or 'max'; default from the key's name.
        save_best: keep the best model's weights.
        every_n_epochs: also keep the resumable checkpoint of every n-th epoch.
        keep_last: how many of the newest resumable checkpoints to keep.

    Examples:
        >>> ModelCheckpoint("valid/accuracy", mode="max", every_n_epochs=5)
    """

    order = 100  # last: it saves the state the other callbacks left

    def __init__(
        self,
        monitor: str | None = None,
        mode: str | None = None,
        save_best: bool = True,
        every_n_epochs: int | None = None,
        keep_last: int = 1,
    ):
        self.monitor = monitor
        self.mode = mode
        self.save_best = save_best
        self.retention = Retention(last=keep_last, best=0, every_n_epochs=every_n_epochs)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        self.monitor = self.monitor or trainer.monitor
        self.mode = self.mode or (trainer.mode if self.monitor == trainer.monitor else best_mode(self.monitor))

    def on_epoch_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None:
        value = trainer.monitored_value(results, self.monitor, required=False)
        metric = None if value is None else (self.monitor, value)
        if self.save_best and is_better(value, self.best, self.mode):
            self.best, self.best_epoch = value, results["train"].epoch
            trainer.run.save_checkpoint(
                models={"model": unwrapped(trainer.model)}, metric=metric, mode=self.mode, kind="weights",
                retention=Retention(last=1, best=1),
            )
        # Saved last, so it holds this callback's updated best too.
        trainer.save_checkpoint(metric=metric, mode=self.mode, retention=self.retention)

    def on_keyboard_interrupt(self, trainer: TrainerView) -> None:
        # Ctrl-C: a checkpoint of the last well-defined point passed, to continue from it exactly.
        if trainer.run.world_size > 1:
            # Each rank stops at its own point, and saving is a collective: no checkpoint here.
            logger.warning("interrupted; under DDP no checkpoint is saved on Ctrl-C: fit(resume=True) continues "
                           "from the last one saved")
            return
        try:
            trainer.save_checkpoint(retention=self.retention, mid_epoch=True)
            logger.warning("interrupted; saved a checkpoint to resume from with fit(resume=True)")
        except EpochalError as exc:
            logger.warning(f"interrupted; could not save a checkpoint: {exc}")

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
