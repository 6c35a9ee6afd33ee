"""EarlyStopping: end a fit when the monitored metric has stopped improving."""

from __future__ import annotations

from typing import TYPE_CHECKING

from epochal.keys import best_mode, is_better
from epochal.train.callback import Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView


class EarlyStopping(Callback):
    """Stop after ``patience`` evaluations without an improvement of more than ``min_delta``.

    Args:
        monitor: a logged key such as ``"valid/accuracy"`` or ``"valid/loss"``.
        mode: 'max' or 'min'; by default 'min' for keys naming a loss or an error, else 'max'.
        patience: evaluations without improvement before the fit stops.
        min_delta: how much better a value must be to count as an improvement.

    Examples:
        >>> EarlyStopping("valid/accuracy", mode="max", patience=5)
    """

    def __init__(self, monitor: str, mode: str | None = None, patience: int = 5, min_delta: float = 0.0):
        self.monitor = monitor
        self.mode = mode or best_mode(monitor)
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'min' or 'max', got {mode!r}")
        if patience < 1:
            raise ValueError(f"EarlyStopping patience must be at least 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping min_delta must be 0 or more, got {min_delta}")
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.count = 0  # evaluations since the last improvement

    def on_eval_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None:
        value = trainer.monitored_value(results, self.monitor)
        if value is None:
            return
        if is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.count = value, 0
        else:
            self.count += 1
        if self.count >= self.patience:
            trainer.stop(f"early stopping: {self.monitor} did not improve for {self.count} evaluations")

    def state_dict(self) -> dict:
        return {"best": self.best, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.count = state["best"], state["count"]
