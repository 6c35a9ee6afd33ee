"""Retention: which of a run's checkpoints to keep after each save, and what "newest" means."""

from __future__ import annotations

import math
from dataclasses import dataclass

from epochal.keys import best_first
from epochal.store.records import Checkpoint

__all__ = ["Retention", "newness"]


def newness(checkpoint: Checkpoint) -> tuple[int, int, int]:
    """Sort key, oldest first: the order of saving, never the clock (which can step back)."""
    return checkpoint.seq, checkpoint.step, checkpoint.epoch


@dataclass(frozen=True)
class Retention:
    """Which of a run's checkpoints to keep after each save; the rest are deleted.

    A checkpoint is kept if any rule keeps it. "Newest" means saved last.

    Examples:
        >>> Retention(last=3, best=1, every_n_epochs=10)
    """

    last: int = 1  # the newest `last` checkpoints
    best: int = 1  # the `best` best by their metric (only checkpoints saved with a metric)
    every_n_epochs: int | None = None  # also every checkpoint whose epoch is a multiple of this

    def __post_init__(self) -> None:
        if self.last < 1:
            raise ValueError(f"Retention.last must be at least 1 (the checkpoint to resume from), got {self.last}")
        if self.best < 0:
            raise ValueError(f"Retention.best must be 0 or more, got {self.best}")
        if self.every_n_epochs is not None and self.every_n_epochs < 1:
            raise ValueError(f"Retention.every_n_epochs must be None or at least 1, got {self.every_n_epochs}")

    def keep(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        """The checkpoints this policy keeps, in the order given."""
        newest_first = sorted(checkpoints, key=newness, reverse=True)
        kept = {c.path for c in newest_first[: self.last]}
        ranked = sorted(
            (c for c in checkpoints if c.metric_value is not None and not math.isnan(c.metric_value) and c.mode),
            key=lambda c: (best_first(c.metric_value, c.mode), newness(c)),
        )
        kept.update(c.path for c in ranked[: self.best])
        if self.every_n_epochs:
            kept.update(c.path for c in checkpoints if c.epoch % self.every_n_epochs == 0)
        return [c for c in checkpoints if c.path in kept]
