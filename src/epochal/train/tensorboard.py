"""TensorBoard: a fit's numbers as TensorBoard event files, beside epochal's own record.

    trainer = Trainer(model, optimizer, ..., callbacks=[TensorBoard()])
    trainer.fit()
    # then: tensorboard --logdir <run folder>/tensorboard

Needs the tensorboard package: ``pip install epochal[tensorboard]``. The tags are the keys
epochal logs: ``train/loss`` per batch (every ``log_every_n_batches``), ``train/epoch_loss``,
``valid/loss``, ``valid/accuracy``, ... per epoch and ``lr`` (``lr/group{i}`` too with several
parameter groups), all at the run's global step.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from epochal.distributed import unwrapped
from epochal.errors import EpochalWarning
from epochal.train.callback import BatchResult, Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


class TensorBoard(Callback):
    """Writes TensorBoard event files: each pass's results, the learning rate, the batch loss, the graph.

    Args:
        log_dir: the folder of the event files; default ``<run folder>/tensorboard``.
        log_every_n_batches: write the training loss of every n-th batch (reading it from the
            device waits for the device, so not of every batch).
        log_graph: trace the model on the first training batch's input and add its graph.

    Raises:
        ImportError: tensorboard is not installed.

    Examples:
        >>> trainer = Trainer(model, optimizer, ..., callbacks=[TensorBoard(log_every_n_batches=10)])
    """

    order = 30
    rank_zero_only = True

    def __init__(self, log_dir: str | Path | None = None, log_every_n_batches: int = 50, log_graph: bool = True):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(
                "the TensorBoard callback needs the tensorboard package: pip install epochal[tensorboard]"
            ) from exc
        if type(log_every_n_batches) is not int or log_every_n_batches < 1:
            raise ValueError(f"log_every_n_batches must be a whole number of at least 1, got {log_every_n_batches!r}")
        self._writer_class = SummaryWriter
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.log_every_n_batches = log_every_n_batches
        self.log_graph = log_graph
        self._writer: Any = None
        self._graph_done = False
        self._train_batches = 0  # training batches seen this fit, to pick every n-th

    # -- hooks ---------------------------------------------------------------------------------

    def on_fit_start(self, trainer: TrainerView) -> None:
        # A resumed run repeats the steps after its checkpoint: hide what the last attempt logged
        # after it. (At the checkpoint's step itself it logged the last epoch's results: they stay.)
        steps = trainer.run.steps
        self._open(trainer, purge_step=steps + 1 if steps > 0 else None)
        self._train_batches = 0

    def on_epoch_start(self, trainer: TrainerView) -> None:
        if trainer.optimizer is None:
            return
        writer = self._open(trainer)
        groups = trainer.optimizer.param_groups
        step = trainer.run.steps
        writer.add_scalar("lr", float(groups[0]["lr"]), step)
        if len(groups) > 1:
            for i, group in enumerate(groups):
                writer.add_scalar(f"lr/group{i}", float(group["lr"]), step)

    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None:
        if batch.stage != "train":
            return
        if self.log_graph and not self._graph_done:
            self._graph_done = True
            self._add_graph(trainer)
        if self._train_batches % self.log_every_n_batches == 0:
            self._open(trainer).add_scalar("train/loss", float(batch.loss), trainer.run.steps)
        self._train_batches += 1

    def on_epoch_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None:
        writer = self._open(trainer)
        for result in results.values():
            self._add_result(writer, result, trainer.run.steps)
        writer.flush()

    def on_fit_end(self, trainer: TrainerView) -> None:
        self._close()

    def on_test_end(self, trainer: TrainerView, result: StageResult) -> None:
        self._add_result(self._open(trainer), result, trainer.run.steps)
        self._close()

    def on_interrupt(self, trainer: TrainerView) -> None:
        self._close()

    # -- writing -------------------------------------------------------------------------------

    def _open(self, trainer: TrainerView, purge_step: int | None = None) -> Any:
        if self._writer is None:
            folder = self.log_dir if self.log_dir is not None else Path(trainer.run.path) / "tensorboard"
            self._writer = self._writer_class(log_dir=str(folder), purge_step=purge_step)
        return self._writer

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @staticmethod
    def _add_result(writer: Any, result: StageResult, step: int) -> None:
        values = result.logged()
        if result.stage == "train":  # as epochal logs it: train/loss is the per-batch series
            values["train/epoch_loss"] = values.pop("train/loss")
        for key, value in values.items():
            writer.add_scalar(key, value, step)

    def _add_graph(self, trainer: TrainerView) -> None:
        example = getattr(trainer, "example_input", None)
        if example is None:
            return
        model = unwrapped(trainer.model)
        modes = [(m, m.training) for m in model.modules()]
        devices = [trainer.device.index or 0] if trainer.device.type == "cuda" else []
        try:
            # Traced in eval mode without touching the random state: the fit goes on as if it had not happened.
            with torch.random.fork_rng(devices=devices), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace's, nothing to act on
                self._open(trainer).add_graph(model, example)
        except Exception as exc:  # noqa: BLE001 - tracing fails on data-dependent control flow, dict inputs, ...
            warnings.warn(f"TensorBoard: could not add the model's graph: {exc}", EpochalWarning, stacklevel=2)
        finally:
            for module, training in modes:
                module.training = training
