"""Callback: the plain object the Trainer's loop fires hooks on, and StopTraining.

Every built-in behaviour of the Trainer beyond the bare loop (logging, progress bars,
epoch tables, CSV tables, checkpoints, early stopping, TensorBoard) is a callback.
A callback overrides only the hooks it needs; the others do nothing.

Examples:
    >>> class PrintLoss(Callback):
    ...     def on_stage_end(self, trainer, result):
    ...         print(result.stage, result.loss_mean)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from epochal.train.trainer import Trainer

STAGES = ("train", "valid", "test")


class StopTraining(Exception):
    """Raise from a callback hook (or call ``trainer.stop(reason)``) to end ``fit`` cleanly once
    the current epoch has ended, checkpoint included."""


class BatchResult(NamedTuple):  # a tuple: made for every batch, so it must be cheap
    """One batch as the loop saw it."""

    stage: str
    index: int  # batch number within the stage, from 0
    size: int  # samples in the batch
    loss: Any  # a float on the CPU; on an accelerator a detached 0-d tensor (reading it would sync)


@dataclass(frozen=True)
class StageResult:
    """One pass over a data set: exact metrics over every sample, loss mean/std over batches."""

    stage: str
    epoch: int  # the epoch this pass belongs to, from 0
    samples: int
    batches: int
    loss_mean: float
    loss_std: float
    metrics: dict[str, float] = field(default_factory=dict)  # name -> value over the whole data set
    seconds: float = 0.0

    def logged(self) -> dict[str, float]:
        """The values as logged: ``{stage}/loss``, ``{stage}/loss_std`` and ``{stage}/{metric}``."""
        out = {f"{self.stage}/loss": self.loss_mean, f"{self.stage}/loss_std": self.loss_std}
        out.update({f"{self.stage}/{name}": value for name, value in self.metrics.items()})
        return out


class Callback:
    """Base class of Trainer callbacks: every hook does nothing unless overridden.

    Callbacks run in ascending ``order`` (then in the order given); checkpointing runs last so
    that it saves the state the others left. ``state_dict``/``load_state_dict`` carry a
    callback's state through checkpoints, so a resumed fit continues it.
    """

    order: int = 0

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_stage_start(self, trainer: Trainer, stage: str, batches: int | None) -> None: ...
    def on_batch_end(self, trainer: Trainer, batch: BatchResult) -> None: ...
    def on_stage_end(self, trainer: Trainer, result: StageResult) -> None: ...
    def on_eval_end(self, trainer: Trainer, results: dict[str, StageResult]) -> None: ...
    def on_epoch_end(self, trainer: Trainer, results: dict[str, StageResult]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_test_end(self, trainer: Trainer, result: StageResult) -> None: ...
    def on_interrupt(self, trainer: Trainer) -> None:
        """The fit ends early: Ctrl-C (after a resumable checkpoint was saved) or an error. Close files here."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
