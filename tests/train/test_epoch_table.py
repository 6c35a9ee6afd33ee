"""EpochTable: the table after each evaluation, the time line and the best/early-stop line."""

import io
from datetime import datetime
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, TensorDataset

from epochal.train import EarlyStopping, Trainer, epoch_table
from epochal.train.callback import StageResult
from epochal.train.epoch_table import EpochTable

NOON = datetime(2024, 5, 1, 12, 0, 0).timestamp()  # local time, far from midnight


def _trainer(**overrides):
    values = {"epoch": 1, "max_epochs": 5, "fit_started": NOON - 62, "monitor": "valid/accuracy", "mode": "max",
              "best": (0.9712, 3), "callbacks": [], "run": None}
    values.update(overrides)
    return SimpleNamespace(**values)


def _results(epoch=1):
    return {
        "train": StageResult("train", epoch, 60_000, 469, 0.0677369, 0.0252625, {"accuracy": 0.975}, 31.7553),
        "valid": StageResult("valid", epoch, 10_000, 79, 0.331805, 0.0846502, {"accuracy": 0.9253}, 4.12765),
    }


def _cells(line):
    return [cell.strip() for cell in line.strip("|").split("|")]


def _print_epoch(table, trainer, monkeypatch, now=NOON):
    monkeypatch.setattr(epoch_table, "_now", lambda: now)
    out = io.StringIO()
    table.file = out
    table.on_fit_start(trainer)
    first = trainer.epoch
    trainer.epoch = 0
    table.on_epoch_start(trainer)  # the fit began at epoch 0 ...
    trainer.epoch = first  # ... and is now in its second epoch
    table.on_eval_end(trainer, _results(trainer.epoch))
    return out.getvalue().splitlines()


def test_the_table_has_a_row_per_stage_with_every_column(monkeypatch):
    lines = _print_epoch(EpochTable(), _trainer(), monkeypatch)
    rule = lines[0]
    assert rule.startswith("+-") and set(rule) == {"+", "-"}
    assert _cells(lines[1]) == ["epoch", "stage", "loss mean", "loss std", "samples", "accuracy", "seconds"]
    assert lines[2] == rule and lines[5] == rule
    assert _cells(lines[3]) == ["2", "train", "0.0677", "0.0253", "60,000", "0.9750", "31.8"]
    assert _cells(lines[4]) == ["2", "valid", "0.3318", "0.0847", "10,000", "0.9253", "4.1"]
    assert len({len(line) for line in lines[:6]}) == 1  # the columns line up


def test_time_line_from_the_mean_epoch_time_and_the_epochs_left(monkeypatch):
    lines = _print_epoch(EpochTable(), _trainer(), monkeypatch)
    # 62 s for 2 epochs: 31 s each; 3 epochs of 5 left: 93 s more; 155 s in all.
    end = datetime.fromtimestamp(NOON + 93).strftime("%H:%M:%S")
    assert lines[6] == f"Time: 0:01:02 -> 0:01:33 / 0:02:35 | Expected end time: {end}"


def test_an_end_on_another_day_shows_the_date(monkeypatch):
    late = datetime(2024, 5, 1, 23, 59, 0).timestamp()
    trainer = _trainer(fit_started=late - 3600, max_epochs=10)  # 30 min an epoch, 8 epochs left
    lines = _print_epoch(EpochTable(), trainer, monkeypatch, now=late)
    assert lines[6] == "Time: 1:00:00 -> 4:00:00 / 5:00:00 | Expected end time: 2024-05-02 03:59:00"


def test_best_and_early_stop_count(monkeypatch):
    stopper = EarlyStopping("valid/accuracy", patience=5)
    stopper.count = 1
    lines = _print_epoch(EpochTable(), _trainer(callbacks=[stopper]), monkeypatch)
    assert lines[7] == "Best valid/accuracy: 0.9712 (epoch 4) | Early stop count: 1/5"
    assert len(lines) == 8


def test_without_early_stopping_only_the_best(monkeypatch):
    lines = _print_epoch(EpochTable(), _trainer(), monkeypatch)
    assert lines[7] == "Best valid/accuracy: 0.9712 (epoch 4)"
    lines = _print_epoch(EpochTable(), _trainer(best=None), monkeypatch)
    assert lines[7] == "Best valid/accuracy: -"


def test_early_stopping_on_another_key_names_it(monkeypatch):
    stopper = EarlyStopping("valid/loss", patience=3)
    stopper.count = 2
    lines = _print_epoch(EpochTable(), _trainer(callbacks=[stopper]), monkeypatch)
    assert lines[7] == "Best valid/accuracy: 0.9712 (epoch 4) | Early stop count (valid/loss): 2/3"


def test_a_test_pass_prints_its_own_table():
    out = io.StringIO()
    EpochTable(file=out).on_test_end(_trainer(), StageResult("test", 4, 500, 8, 1.5e-5, 0.0, {"mse": 12345678.0}, 2.0))
    lines = out.getvalue().splitlines()
    assert _cells(lines[1]) == ["epoch", "stage", "loss mean", "loss std", "samples", "mse", "seconds"]
    assert _cells(lines[3]) == ["5", "test", "1.5000e-05", "0.0000", "500", "1.2346e+07", "2.0"]
    assert len(lines) == 5


def test_a_real_fit_prints_a_table_per_epoch_with_its_results(store_dir, capsys):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    stopper = EarlyStopping("valid/accuracy", patience=4)
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.5), loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=DataLoader(TensorDataset(x, y), batch_size=16),
        valid_data=DataLoader(TensorDataset(x[:32], y[:32]), batch_size=16),
        metrics=["accuracy"], max_epochs=3, store=store_dir, project="p", name="n",
        monitor="valid/accuracy", callbacks=[stopper], progress=False, csv_tables=False, summary=False,
    )
    trainer.fit()
    lines = capsys.readouterr().out.splitlines()
    rows = [_cells(line) for line in lines if line.startswith("| ") and not line.startswith("| epoch")]
    expected = [
        [str(epoch + 1), stage, f"{r.loss_mean:.4f}", f"{r.loss_std:.4f}", f"{r.samples:,}",
         f"{r.metrics['accuracy']:.4f}", f"{r.seconds:.1f}"]
        for epoch, results in enumerate(trainer.history) for stage, r in results.items()
    ]
    assert rows == expected and len(rows) == 6
    assert sum(line.startswith("Time: ") and "| Expected end time: " in line for line in lines) == 3
    best_lines = [line for line in lines if line.startswith("Best ")]
    value, epoch = trainer.best
    assert best_lines[-1] == (
        f"Best valid/accuracy: {value:.4f} (epoch {epoch + 1}) | Early stop count: {stopper.count}/4"
    )
