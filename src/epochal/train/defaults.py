"""The callbacks every Trainer has unless switched off, and how given callbacks replace them."""

from __future__ import annotations

from collections.abc import Sequence

from epochal.train.callback import Callback
from epochal.train.checkpointing import ModelCheckpoint
from epochal.train.csv_tables import CSVTables
from epochal.train.epoch_table import EpochTable
from epochal.train.logger import MetricLogger
from epochal.train.progress import ProgressBar

__all__ = ["with_defaults"]


def with_defaults(callbacks: Sequence[Callback], *, progress: bool = True, epoch_table: bool = True,
                  csv_tables: bool = True, checkpoint: bool = True) -> list[Callback]:
    """The callbacks given and the defaults switched on, in the order they run.

    A default is dropped when a callback of its class is given (the given one replaces it). The result
    is sorted by ``order``; callbacks of the same order keep the order given, defaults first.

    Raises:
        TypeError: something given is not a :class:`Callback`.
    """
    given = list(callbacks)
    for callback in given:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be epochal.Callback objects, got {callback!r}")
    switched_on = ((True, MetricLogger), (progress, ProgressBar), (epoch_table, EpochTable),
                   (csv_tables, CSVTables), (checkpoint, ModelCheckpoint))
    kinds = {type(c) for c in given}
    chosen = [kind() for on, kind in switched_on if on and kind not in kinds] + given
    return sorted(chosen, key=lambda c: c.order)  # stable: same order keeps the order given
