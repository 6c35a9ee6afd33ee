"""CSVTables: per-batch and per-epoch CSV files, written as the fit goes and whole after a resume."""

import csv
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.train import Callback, Trainer, csv_tables
from epochal.train.callback import BatchResult, StageResult
from epochal.train.csv_tables import CSVTables


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(csv_tables, "_clock", clock)
    return clock


@pytest.fixture
def trainer(store_dir):
    run = epochal.start(project="p", name="tables", store=store_dir)
    yield SimpleNamespace(run=run, epoch=0, max_epochs=5, callbacks=[])
    run.finish()


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _epoch(tables, trainer, clock, epoch, losses, stages=("train", "valid"), shift=0.0):
    """One epoch through the hooks: 3 batches a stage, 0.5 s apart; returns the results."""
    trainer.epoch = epoch
    tables.on_epoch_start(trainer)
    results = {}
    for stage in stages:
        tables.on_stage_start(trainer, stage, 3)
        for index, loss in enumerate(losses):
            clock.now += 0.5
            tables.on_batch_end(trainer, BatchResult(stage, index, 10 - index, torch.tensor(loss + shift)))
        metrics = {"accuracy": 0.5 + epoch / 10}
        results[stage] = StageResult(stage, epoch, 27, 3, sum(losses) / 3 + shift, 0.125, metrics, 1.5)
        tables.on_stage_end(trainer, results[stage])
    tables.on_epoch_end(trainer, results)
    return results


def test_per_batch_rows_per_stage_and_epoch(trainer, clock):
    tables = CSVTables()
    tables.on_fit_start(trainer)
    _epoch(tables, trainer, clock, 0, [0.75, 0.5, 0.25])
    folder = trainer.run.path / "tables" / "epoch_details"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch001_train.csv", "epoch001_valid.csv"]
    rows = _read(folder / "epoch001_train.csv")
    assert rows == [
        {"batch": "1", "samples": "10", "loss": "0.75", "seconds": "0.5000"},
        {"batch": "2", "samples": "9", "loss": "0.5", "seconds": "1.0000"},
        {"batch": "3", "samples": "8", "loss": "0.25", "seconds": "1.5000"},
    ]


def test_a_folder_of_its_own_and_batch_columns_added_at_the_stage_end(trainer, clock, tmp_path):
    seen = []

    def columns(trainer, stage):
        seen.append(stage)
        return {"accuracy": [0.25, 0.5, 0.75]} if stage == "train" else {}

    tables = CSVTables(folder=tmp_path / "exp1", batch_columns=columns)
    tables.on_fit_start(trainer)
    _epoch(tables, trainer, clock, 0, [0.75, 0.5, 0.25])
    assert seen == ["train", "valid"]
    assert not (trainer.run.path / "tables").exists()
    assert (tmp_path / "exp1" / "summary_table.csv").is_file()
    rows = _read(tmp_path / "exp1" / "epoch_details" / "epoch001_train.csv")
    assert [(r["batch"], r["loss"], r["accuracy"]) for r in rows] == [("1", "0.75", "0.25"), ("2", "0.5", "0.5"),
                                                                    ("3", "0.25", "0.75")]
    assert list(_read(tmp_path / "exp1" / "epoch_details" / "epoch001_valid.csv")[0]) == [
        "batch", "samples", "loss", "seconds"]


def test_batch_rows_reach_the_disk_within_flush_s_while_the_stage_runs(trainer, clock):
    tables = CSVTables(flush_s=1.0)
    tables.on_fit_start(trainer)
    tables.on_epoch_start(trainer)
    tables.on_stage_start(trainer, "train", 100)
    path = trainer.run.path / "tables" / "epoch_details" / "epoch001_train.csv"
    for index in range(5):
        clock.now += 0.3
        tables.on_batch_end(trainer, BatchResult("train", index, 4, torch.tensor(float(index))))
    # No stage end, as after a crash: the rows of the first 1.2 s are there.
    assert [row["batch"] for row in _read(path)] == ["1", "2", "3", "4"]
    assert [row["loss"] for row in _read(path)] == ["0.0", "1.0", "2.0", "3.0"]


def test_summary_tables_one_row_per_epoch_and_a_merged_table(trainer, clock):
    tables = CSVTables()
    tables.on_fit_start(trainer)
    first = _epoch(tables, trainer, clock, 0, [0.75, 0.5, 0.25])
    folder = trainer.run.path / "tables"
    # Appended as the stage ended, the merged table after the epoch.
    assert _read(folder / "train_summary_table.csv") == [
        {"epoch": "1", "samples": "27", "batches": "3", "loss": repr(first["train"].loss_mean),
         "loss_std": "0.125", "accuracy": "0.5", "seconds": "1.5000"},
    ]
    _epoch(tables, trainer, clock, 1, [0.5, 0.25, 0.125])
    train = _read(folder / "train_summary_table.csv")
    valid = _read(folder / "valid_summary_table.csv")
    assert [r["epoch"] for r in train] == ["1", "2"] and [r["epoch"] for r in valid] == ["1", "2"]
    assert float(train[1]["loss"]) == pytest.approx(0.875 / 3) and valid[1]["accuracy"] == "0.6"
    merged = _read(folder / "summary_table.csv")
    assert list(merged[0]) == [
        "epoch", "train/samples", "train/batches", "train/loss", "train/loss_std", "train/accuracy", "train/seconds",
        "valid/samples", "valid/batches", "valid/loss", "valid/loss_std", "valid/accuracy", "valid/seconds",
    ]
    assert [r["epoch"] for r in merged] == ["1", "2"]
    assert merged[1]["valid/loss"] == valid[1]["loss"] and merged[0]["train/accuracy"] == "0.5"
    assert not list(folder.glob("*.tmp"))

    # A test pass after the fit: its own table, and its columns in the merged one.
    tables.on_stage_start(trainer, "test", 3)
    tables.on_stage_end(trainer, StageResult("test", 1, 30, 3, 0.3, 0.0, {"accuracy": 0.9}, 0.25))
    tables.on_test_end(trainer, StageResult("test", 1, 30, 3, 0.3, 0.0, {"accuracy": 0.9}, 0.25))
    merged = _read(folder / "summary_table.csv")
    assert merged[0]["test/loss"] == "" and merged[1]["test/loss"] == "0.3"
    assert (folder / "epoch_details" / "epoch002_test.csv").exists()


def test_a_resume_rewrites_the_repeated_epochs_instead_of_duplicating_them(trainer, clock):
    tables = CSVTables()
    tables.on_fit_start(trainer)
    for epoch in range(4):
        _epoch(tables, trainer, clock, epoch, [1.0, 0.5, 0.25])
    folder = trainer.run.path / "tables"
    assert [r["epoch"] for r in _read(folder / "train_summary_table.csv")] == ["1", "2", "3", "4"]

    # A new process resumes from the checkpoint of epoch 2: epochs 3 and 4 are done again.
    tables = CSVTables()
    tables.on_fit_start(trainer)
    _epoch(tables, trainer, clock, 2, [1.0, 0.5, 0.25], shift=10.0)
    train = _read(folder / "train_summary_table.csv")
    assert [r["epoch"] for r in train] == ["1", "2", "3"]  # epoch 4 of the lost attempt is gone
    assert float(train[2]["loss"]) == pytest.approx(1.75 / 3 + 10)  # the newest pass's value
    assert [r["epoch"] for r in _read(folder / "summary_table.csv")] == ["1", "2", "3"]
    details = folder / "epoch_details"
    assert sorted(p.name for p in details.iterdir()) == [
        f"epoch00{e}_{s}.csv" for e in (1, 2, 3) for s in ("train", "valid")
    ]
    assert [r["loss"] for r in _read(details / "epoch003_train.csv")] == ["11.0", "10.5", "10.25"]

    _epoch(tables, trainer, clock, 3, [1.0, 0.5, 0.25], shift=20.0)
    merged = _read(folder / "summary_table.csv")
    assert [r["epoch"] for r in merged] == ["1", "2", "3", "4"]
    assert float(merged[3]["valid/loss"]) == pytest.approx(1.75 / 3 + 20)


def test_a_resume_part_way_through_an_epoch_keeps_the_rows_it_skips(trainer, clock):
    tables = CSVTables()
    tables.on_fit_start(trainer)
    tables.on_epoch_start(trainer)
    tables.on_stage_start(trainer, "train", 6)
    for index in range(3):
        clock.now += 0.5
        tables.on_batch_end(trainer, BatchResult("train", index, 8, torch.tensor(float(index))))
    tables.on_interrupt(trainer)  # Ctrl-C after batch 3: the checkpoint resumes at batch 4

    tables = CSVTables()
    tables.on_fit_start(trainer)
    tables.on_epoch_start(trainer)
    tables.on_stage_start(trainer, "train", 6)
    for index in range(3, 6):
        clock.now += 0.5
        tables.on_batch_end(trainer, BatchResult("train", index, 8, torch.tensor(float(index))))
    tables.on_stage_end(trainer, StageResult("train", 0, 48, 6, 2.5, 1.0, {}, 3.0))
    rows = _read(trainer.run.path / "tables" / "epoch_details" / "epoch001_train.csv")
    assert [(r["batch"], r["loss"]) for r in rows] == [(str(i + 1), f"{float(i)}") for i in range(6)]


class CrashInEpoch(Callback):
    """Fails the fit in the given epoch, after its training pass was written."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_stage_end(self, trainer, result):
        if result.stage == "valid" and result.epoch == self.epoch:
            raise RuntimeError("crash")


def _trainer(store_dir, callbacks, max_epochs):
    torch.manual_seed(0)
    x = torch.randn(48, 4, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    return Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=DataLoader(TensorDataset(x, y), batch_size=16),
        valid_data=DataLoader(TensorDataset(x[:20], y[:20]), batch_size=8),
        metrics=["accuracy"], max_epochs=max_epochs, store=store_dir, project="p", name="csv",
        callbacks=callbacks, progress=False, epoch_table=False, summary=False,
    )


def test_a_real_fit_crashed_and_resumed_has_each_epoch_once(store_dir):
    trainer = _trainer(store_dir, [CrashInEpoch(2)], max_epochs=4)
    with pytest.raises(RuntimeError, match="crash"):
        trainer.fit()
    folder = trainer.run.path / "tables"
    assert [r["epoch"] for r in _read(folder / "train_summary_table.csv")] == ["1", "2", "3"]
    assert [r["epoch"] for r in _read(folder / "valid_summary_table.csv")] == ["1", "2"]

    resumed = _trainer(store_dir, [], max_epochs=4)
    resumed.fit(resume=True)
    assert resumed.run.path == trainer.run.path
    assert [results["train"].epoch for results in resumed.history] == [2, 3]  # epoch 3 was done again
    train = _read(folder / "train_summary_table.csv")
    valid = _read(folder / "valid_summary_table.csv")
    assert [r["epoch"] for r in train] == ["1", "2", "3", "4"]
    assert [r["epoch"] for r in valid] == ["1", "2", "3", "4"]
    for results in resumed.history:  # epochs 3 and 4, from the resumed fit
        row = train[results["train"].epoch]
        assert float(row["loss"]) == results["train"].loss_mean
        assert float(row["accuracy"]) == results["train"].metrics["accuracy"]
        assert int(row["samples"]) == 48 and int(row["batches"]) == 3
    merged = _read(folder / "summary_table.csv")
    assert [r["epoch"] for r in merged] == ["1", "2", "3", "4"]
    assert float(merged[3]["valid/loss"]) == resumed.history[-1]["valid"].loss_mean
    details = _read(folder / "epoch_details" / "epoch004_train.csv")
    assert [int(r["batch"]) for r in details] == [1, 2, 3]
    assert [int(r["samples"]) for r in details] == [16, 16, 16]
    batch_mean = sum(float(r["loss"]) for r in details) / 3
    assert batch_mean == pytest.approx(resumed.history[-1]["train"].loss_mean, rel=1e-6)
