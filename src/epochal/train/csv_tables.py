"""CSVTables: a fit's numbers as CSV files in the run's folder, kept whole through crashes and resumes.

Layout, under ``<run folder>/tables``::

    epoch_details/epoch001_train.csv   one row per batch: batch, samples, loss, seconds
    epoch_details/epoch001_valid.csv
    train_summary_table.csv            one row per epoch: epoch, samples, batches, loss,
    valid_summary_table.csv            loss_std, each metric, seconds
    test_summary_table.csv
    summary_table.csv                  one row per epoch, every stage: train/loss, valid/accuracy, ...

Epochs and batches are counted from 1. The batch rows are written while the stage runs, at
least every ``flush_s`` seconds, so a crash keeps all but the last second of them. A run
resumed after a crash repeats epochs it had begun: their rows replace the old ones.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch

from epochal.atomic import atomic_write
from epochal.train.callback import STAGES, BatchResult, Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView

_clock = time.perf_counter  # module-level so that tests can drive the time
_DETAIL_COLUMNS = ["batch", "samples", "loss", "seconds"]
_DETAIL_NAME = re.compile(r"epoch(\d+)_(\w+)\.csv")


class CSVTables(Callback):
    """Writes per-batch and per-epoch CSV tables into ``<run folder>/tables``.

    Args:
        flush_s: the longest time batch rows wait in memory before they are written. Losses
            are read from the device together then, so that no batch waits for the device.
        folder: where the tables go; default the ``tables`` folder of the trainer's run.
        batch_columns: columns to add to a stage's batch file when the stage ends, from the
            trainer and the stage: name -> one value per batch of the pass, in batch order.

    Examples:
        >>> trainer = Trainer(model, optimizer, ..., callbacks=[CSVTables()], csv_tables=False)
        >>> pandas.read_csv(trainer.run.path / "tables" / "summary_table.csv")
        >>> CSVTables(folder="logs/exp1", batch_columns=lambda trainer, stage: {"accuracy": [0.5, 0.75]})
    """

    order = 20
    rank_zero_only = True

    def __init__(
        self,
        flush_s: float = 1.0,
        *,
        folder: str | os.PathLike | None = None,
        batch_columns: Callable[[TrainerView, str], Mapping[str, Sequence[float]]] | None = None,
    ):
        self.flush_s = flush_s
        self.folder = None if folder is None else Path(folder)
        self.batch_columns = batch_columns
        self._folder: Path | None = None
        self._tables: dict[str, _Table] = {}  # stage -> its summary table, read from disk on first use
        self._details: _Details | None = None  # the open per-batch file of the running stage
        self._pruned = True  # whether this fit has dropped what a resumed epoch replaces

    # -- hooks ---------------------------------------------------------------------------------

    def on_fit_start(self, trainer: TrainerView) -> None:
        self._use(trainer)
        self._pruned = False

    def on_epoch_start(self, trainer: TrainerView) -> None:
        if not self._pruned:
            self._pruned = True
            self._drop_from(trainer, trainer.epoch + 1)

    def on_stage_start(self, trainer: TrainerView, stage: str, batches: int | None) -> None:
        folder = self._use(trainer) / "epoch_details"
        folder.mkdir(parents=True, exist_ok=True)
        self._close_details()
        self._details = _Details(folder / f"epoch{trainer.epoch + 1:03d}_{stage}.csv", stage)

    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None:
        details = self._details
        if details is None or details.stage != batch.stage:
            return
        if details.previous is not None:
            details.keep_previous(batch.index)
        now = _clock()
        details.pending.append((batch.index + 1, batch.size, batch.loss, now - details.started))
        if now - details.flushed_at >= self.flush_s:
            details.write()
            details.flushed_at = now

    def on_stage_end(self, trainer: TrainerView, result: StageResult) -> None:
        if self._details is not None and self._details.stage == result.stage:
            self._close_details()
        if self.batch_columns is not None:
            path = self._use(trainer) / "epoch_details" / f"epoch{trainer.epoch + 1:03d}_{result.stage}.csv"
            _add_columns(path, self.batch_columns(trainer, result.stage))
        row = {
            "epoch": str(result.epoch + 1),
            "samples": str(result.samples),
            "batches": str(result.batches),
            "loss": repr(float(result.loss_mean)),
            "loss_std": repr(float(result.loss_std)),
            **{name: repr(float(value)) for name, value in result.metrics.items()},
            "seconds": f"{result.seconds:.4f}",
        }
        self._table(trainer, result.stage).put(row)

    def on_epoch_end(self, trainer: TrainerView, results: dict[str, StageResult]) -> None:
        self._write_merged(trainer)

    def on_test_end(self, trainer: TrainerView, result: StageResult) -> None:
        self._write_merged(trainer)

    def on_fit_end(self, trainer: TrainerView) -> None:
        self._close_details()

    def on_interrupt(self, trainer: TrainerView) -> None:
        self._close_details()

    # -- tables --------------------------------------------------------------------------------

    def _use(self, trainer: TrainerView) -> Path:
        """The tables folder (of the trainer's run by default); forgets what was read from another one."""
        folder = self.folder if self.folder is not None else Path(trainer.run.path) / "tables"
        if folder != self._folder:
            self._close_details()
            self._folder, self._tables = folder, {}
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _table(self, trainer: TrainerView, stage: str) -> _Table:
        folder = self._use(trainer)
        if stage not in self._tables:
            self._tables[stage] = _Table.read(folder / f"{stage}_summary_table.csv")
        return self._tables[stage]

    def _drop_from(self, trainer: TrainerView, epoch: int) -> None:
        """Forget the training and validation rows of ``epoch`` and later: a resumed fit redoes them.

        The batch files of ``epoch`` stay until its stages rewrite them (keeping the rows of
        batches that a fit resumed part-way through the epoch does not repeat)."""
        folder = self._use(trainer)
        for stage in ("train", "valid"):
            self._table(trainer, stage).drop_from(epoch)
        for path in (folder / "epoch_details").glob("epoch*_*.csv"):
            match = _DETAIL_NAME.fullmatch(path.name)
            if match and match.group(2) != "test" and int(match.group(1)) > epoch:
                path.unlink()

    def _write_merged(self, trainer: TrainerView) -> None:
        folder = self._use(trainer)
        for path in folder.glob("*_summary_table.csv"):  # stages this process has not seen yet
            self._table(trainer, path.name[: -len("_summary_table.csv")])
        stages = [s for s in STAGES if s in self._tables] + sorted(set(self._tables) - set(STAGES))
        columns = ["epoch"] + [f"{s}/{c}" for s in stages for c in self._tables[s].columns if c != "epoch"]
        merged: dict[int, dict[str, str]] = {}
        for stage in stages:
            for epoch, row in self._tables[stage].rows.items():
                target = merged.setdefault(epoch, {"epoch": str(epoch)})
                target.update({f"{stage}/{c}": v for c, v in row.items() if c != "epoch"})
        _write_atomic(folder / "summary_table.csv", columns, [merged[e] for e in sorted(merged)])

    def _close_details(self) -> None:
        if self._details is not None:
            self._details.close()
            self._details = None


class _Details:
    """The per-batch file of one stage, open while the stage runs. Rewritten if it exists.

    A fit resumed from a checkpoint taken part-way through an epoch (after Ctrl-C) goes on
    from the batch after the last one done: the rows of the batches before it are kept.
    """

    def __init__(self, path: Path, stage: str):
        self.stage = stage
        self.previous: list[list[str]] | None = None  # the rows of an earlier pass, until the first batch
        if path.exists():
            with open(path, newline="") as f:
                self.previous = list(csv.reader(f))[1:]
        self.file: TextIO = open(path, "w", newline="")  # noqa: SIM115 - open for the whole stage
        self.writer = csv.writer(self.file)
        self.writer.writerow(_DETAIL_COLUMNS)
        self.file.flush()
        self.started = self.flushed_at = _clock()
        self.pending: list[tuple[int, int, Any, float]] = []

    def keep_previous(self, first_index: int) -> None:
        """Copy the earlier pass's rows of the batches this pass skips (those before ``first_index``)."""
        for row in self.previous or []:
            if row and row[0].isdigit() and int(row[0]) <= first_index:
                self.writer.writerow(row)
        self.previous = None

    def write(self) -> None:
        if not self.pending:
            return
        losses = [row[2] for row in self.pending]
        if all(isinstance(loss, torch.Tensor) for loss in losses):
            # One read from the device for all the rows; float32 values printed as float32s.
            stacked = torch.stack([loss.detach().reshape(()).float() for loss in losses])
            values = [str(value) for value in stacked.cpu().numpy()]
        else:
            values = [repr(float(loss)) for loss in losses]
        for (batch, size, _, seconds), loss in zip(self.pending, values):
            self.writer.writerow([batch, size, loss, f"{seconds:.4f}"])
        self.pending.clear()
        self.file.flush()

    def close(self) -> None:
        try:
            self.write()
        finally:
            self.file.close()


class _Table:
    """One stage's summary table: a row per epoch, as text, in the order of the file."""

    def __init__(self, path: Path, columns: list[str], rows: dict[int, dict[str, str]]):
        self.path = path
        self.columns = columns
        self.rows = rows  # epoch -> column -> text

    @classmethod
    def read(cls, path: Path) -> _Table:
        if not path.exists():
            return cls(path, [], {})
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = {}
            for row in reader:  # a row cut short by a crash has None for its missing cells
                if (row.get("epoch") or "").isdigit():
                    rows[int(row["epoch"])] = {c: row.get(c) or "" for c in columns}
            return cls(path, columns, rows)

    def put(self, row: dict[str, str]) -> None:
        """Add an epoch's row; appended when it is the newest with the same columns, else a rewrite."""
        epoch = int(row["epoch"])
        appendable = self.columns and all(e < epoch for e in self.rows) and set(row) <= set(self.columns)
        self.rows = {e: r for e, r in self.rows.items() if e < epoch}
        self.rows[epoch] = row
        if appendable:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns, restval="").writerow(row)
            return
        self.columns += [c for c in row if c not in self.columns]
        self.rewrite()

    def drop_from(self, epoch: int) -> None:
        if any(e >= epoch for e in self.rows):
            self.rows = {e: r for e, r in self.rows.items() if e < epoch}
            self.rewrite()

    def rewrite(self) -> None:
        _write_atomic(self.path, self.columns, [self.rows[e] for e in sorted(self.rows)])


def _add_columns(path: Path, columns: Mapping[str, Sequence[float]]) -> None:
    """Add ``columns`` to the batch file at ``path``: each row gets the values at its batch number - 1."""
    if not columns or not path.exists():
        return
    lines = path.read_text().splitlines()
    out = [lines[0] + "," + ",".join(columns)]
    for line in lines[1:]:
        index = int(line.split(",", 1)[0]) - 1
        out.append(line + "," + ",".join(repr(float(values[index])) for values in columns.values()))
    atomic_write(path, "\n".join(out) + "\n")


def _write_atomic(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Write the whole table beside ``path``, then put it in place: readers see old or new, never half."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue())
