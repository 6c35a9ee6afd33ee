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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import torch

    from epochal.retention import Retention
    from epochal.run import Run

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
    output: Any = None  # the step's output (the model's logits), None when the step returned a loss alone
    target: Any = None  # the batch's target, None likewise


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


class TrainerView(Protocol):
    """What a callback may read and call on the trainer that fires it.

    Callbacks see this, not the concrete :class:`epochal.Trainer`, so a loop of another shape (a
    framework's, a seed tool's) can fire the same callbacks by offering these names.
    """

    model: torch.nn.Module  # under DDP, the DistributedDataParallel wrapper (epochal.distributed.unwrapped)
    optimizer: torch.optim.Optimizer | None
    run: Run  # the run being recorded into, open while a fit or test runs
    device: torch.device
    epoch: int  # index of the current epoch, from 0
    max_epochs: int
    monitor: str  # the key that decides the best model
    mode: str  # 'min' or 'max' for the monitored key
    best: tuple[float, int] | None  # (monitored value, epoch) of the best epoch so far
    fit_started: float | None  # time.time() when the fit started
    example_input: Any  # the input of a training batch, once one was seen (for model graphs)
    loaders: Mapping[str, Any]  # stage -> its data

    def stop(self, reason: str) -> None:
        """End the fit after the current epoch."""

    def monitored_value(self, results: Mapping[str, StageResult], key: str, required: bool = True) -> float | None:
        """The value of ``key`` in an epoch's results; None if that stage did not run."""

    def save_checkpoint(self, *, metric: tuple[str, float] | None = None, mode: str = "max",
                        retention: Retention | None = None, mid_epoch: bool = False) -> Any:
        """A resumable checkpoint of everything the fit needs to continue."""

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        """``(input, target)`` of a batch."""


class Callback:
    """Base class of Trainer callbacks: every hook does nothing unless overridden.

    Callbacks run in ascending ``order`` (then in the order given); checkpointing runs last so
    that it saves the state the others left. ``state_dict``/``load_state_dict`` carry a
    callback's state through checkpoints, so a resumed fit continues it.
    """

    order: int = 0
    #: Under DDP, run on rank 0 alone: a callback that prints or writes files of its own.
    rank_zero_only: bool = False

    def on_fit_start(self, trainer: TrainerView) -> None: ...
    def on_epoch_start(self, trainer: TrainerView) -> None: ...
    def on_stage_start(self, trainer: TrainerView, stage: str, batches: int | None) -> None: ...
    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None: ...
    def on_stage_end(self, trainer: TrainerView, result: StageResult) -> None: ...
    def on_eval_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None: ...
    def on_epoch_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None: ...
    def on_fit_end(self, trainer: TrainerView) -> None: ...
    def on_test_end(self, trainer: TrainerView, result: StageResult) -> None: ...
    def on_keyboard_interrupt(self, trainer: TrainerView) -> None:
        """Ctrl-C stopped the fit at a well-defined point; ``trainer.save_checkpoint(mid_epoch=True)``
        now saves what continues it exactly there (the checkpoint callback does). Runs before ``on_interrupt``."""

    def on_interrupt(self, trainer: TrainerView) -> None:
        """The fit ends early: Ctrl-C (after ``on_keyboard_interrupt``) or an error. Close files here."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
