"""EpochTable: after each evaluation, a table of the epoch's passes, the time left and the best value.

    +-------+-------+-----------+----------+---------+----------+---------+
    | epoch | stage | loss mean | loss std | samples | accuracy | seconds |
    +-------+-------+-----------+----------+---------+----------+---------+
    |     4 | train |    0.0677 |   0.0253 |  60,000 |   0.9750 |    31.8 |
    |     4 | valid |    0.3318 |   0.0847 |  10,000 |   0.9253 |     4.1 |
    +-------+-------+-----------+----------+---------+----------+---------+
    Time: 0:02:21 -> 0:56:24 / 0:58:45 | Expected end time: 19:42:15
    Best valid/accuracy: 0.9253 (epoch 4) | Early stop count: 0/5

Epochs are counted from 1, as everywhere a person reads them.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from epochal.train.callback import Callback, StageResult
from epochal.train.early_stopping import EarlyStopping

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView

_now = time.time  # module-level so that tests can drive the time


class EpochTable(Callback):
    """Prints the results of each evaluation as a table, with the expected end of the fit.

    Args:
        file: where to print; default ``sys.stdout`` (looked up at each print).

    Examples:
        >>> trainer = Trainer(model, optimizer, ..., callbacks=[EpochTable()], epoch_table=False)
    """

    order = 50  # after early stopping (0) has counted this evaluation, before checkpointing (100)
    rank_zero_only = True

    def __init__(self, file: TextIO | None = None):
        self.file = file
        self._first_epoch: int | None = None  # the first epoch this fit ran, to time epochs by

    def on_fit_start(self, trainer: TrainerView) -> None:
        self._first_epoch = None

    def on_epoch_start(self, trainer: TrainerView) -> None:
        if self._first_epoch is None:
            self._first_epoch = trainer.epoch

    def on_eval_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None:
        lines = [format_table(list(results.values()))]
        if getattr(trainer, "fit_started", None) is not None:
            lines.append(self._time_line(trainer))
        best = _best_line(trainer)
        if best:
            lines.append(best)
        self._print("\n".join(lines))

    def on_test_end(self, trainer: TrainerView, result: StageResult) -> None:
        self._print(format_table([result]))

    def _print(self, text: str) -> None:
        print(text, file=self.file if self.file is not None else sys.stdout, flush=True)

    def _time_line(self, trainer: TrainerView) -> str:
        now = _now()
        elapsed = max(0.0, now - trainer.fit_started)
        first = self._first_epoch if self._first_epoch is not None else 0
        epochs_done = max(1, trainer.epoch - first + 1)
        left = max(0, trainer.max_epochs - (trainer.epoch + 1)) if trainer.max_epochs else 0
        remaining = elapsed / epochs_done * left
        end = datetime.fromtimestamp(now + remaining)
        when = end.strftime("%H:%M:%S") if end.date() == datetime.fromtimestamp(now).date() else str(end)[:19]
        return f"Time: {_hms(elapsed)} -> {_hms(remaining)} / {_hms(elapsed + remaining)} | Expected end time: {when}"


def format_table(results: list[StageResult]) -> str:
    """The passes as a boxed table: epoch, stage, loss mean and std, samples, each metric, seconds."""
    names: list[str] = []
    for result in results:
        names += [name for name in result.metrics if name not in names]
    header = ["epoch", "stage", "loss mean", "loss std", "samples", *names, "seconds"]
    rows = [
        [
            str(r.epoch + 1),
            r.stage,
            _number(r.loss_mean),
            _number(r.loss_std),
            f"{r.samples:,}",
            *[_number(r.metrics[name]) if name in r.metrics else "-" for name in names],
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str], align_right: bool) -> str:
        # Names (and the stage column) left-aligned; numbers right-aligned.
        padded = [
            cell.rjust(w) if align_right and i != 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([rule, line(header, False), rule, *(line(row, True) for row in rows), rule])


def _best_line(trainer: TrainerView) -> str:
    parts = []
    monitor = getattr(trainer, "monitor", None)
    best = getattr(trainer, "best", None)
    if monitor:
        if best is None:
            parts.append(f"Best {monitor}: -")
        else:
            value, epoch = best
            parts.append(f"Best {monitor}: {_number(value)} (epoch {epoch + 1})")
    stopper = next((c for c in getattr(trainer, "callbacks", ()) if isinstance(c, EarlyStopping)), None)
    if stopper is not None:
        watched = "" if stopper.monitor == monitor else f" ({stopper.monitor})"
        parts.append(f"Early stop count{watched}: {stopper.count}/{stopper.patience}")
    return " | ".join(parts)


def _number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4f}"
    return f"{value:.4e}"


def _hms(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
