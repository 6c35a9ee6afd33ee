"""TensorBoard: real event files, read back with TensorBoard's own reader."""

import sys
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.errors import EpochalWarning
from epochal.train import Trainer
from epochal.train.callback import BatchResult, StageResult

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from epochal.train.tensorboard import TensorBoard


def _events(folder):
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def _scalars(accumulator, tag):
    return [(event.step, pytest.approx(event.value)) for event in accumulator.Scalars(tag)]


@pytest.fixture
def trainer(store_dir):
    run = epochal.start(project="p", name="tb", store=store_dir)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD([{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.01}])
    yield SimpleNamespace(run=run, model=model, optimizer=optimizer, device=torch.device("cpu"), epoch=0,
                          max_epochs=2, example_input=None, callbacks=[])
    run.finish()


def _fit(tb, trainer, epochs=2, batches=5):
    tb.on_fit_start(trainer)
    for epoch in range(epochs):
        trainer.epoch = epoch
        tb.on_epoch_start(trainer)
        for index in range(batches):
            trainer.example_input = torch.zeros(4, 3)
            tb.on_batch_end(trainer, BatchResult("train", index, 4, torch.tensor(float(10 * epoch + index))))
            trainer.run.step()
        tb.on_batch_end(trainer, BatchResult("valid", 0, 4, torch.tensor(99.0)))  # not logged
        results = {
            "train": StageResult("train", epoch, 20, batches, 1.0 / (epoch + 1), 0.1, {"accuracy": 0.5 + epoch / 10}),
            "valid": StageResult("valid", epoch, 8, 2, 2.0 / (epoch + 1), 0.2, {"accuracy": 0.4 + epoch / 10}),
        }
        for group in trainer.optimizer.param_groups:
            group["lr"] /= 2
        trainer.run.epoch()
        tb.on_epoch_end(trainer, results)
    tb.on_fit_end(trainer)


def test_epoch_results_lr_and_batch_loss_at_the_global_step(trainer):
    tb = TensorBoard(log_every_n_batches=2, log_graph=False)
    _fit(tb, trainer)
    events = _events(trainer.run.path / "tensorboard")
    assert _scalars(events, "valid/accuracy") == [(5, 0.4), (10, 0.5)]
    assert _scalars(events, "valid/loss") == [(5, 2.0), (10, 1.0)]
    assert _scalars(events, "valid/loss_std") == [(5, 0.2), (10, 0.2)]
    assert _scalars(events, "train/epoch_loss") == [(5, 1.0), (10, 0.5)]
    assert _scalars(events, "train/accuracy") == [(5, 0.5), (10, 0.6)]
    # Every 2nd training batch, counted over the fit: batches 0, 2, 4, 6, 8 at steps 0..9.
    assert _scalars(events, "train/loss") == [(0, 0.0), (2, 2.0), (4, 4.0), (6, 11.0), (8, 13.0)]
    # The rates at the start of each epoch (halved after each), the first group's as "lr".
    assert _scalars(events, "lr") == [(0, 0.1), (5, 0.05)]
    assert _scalars(events, "lr/group1") == [(0, 0.01), (5, 0.005)]
    assert "graph" not in events.Tags() or not events.Tags()["graph"]


def test_a_given_log_dir_and_the_test_pass(trainer, tmp_path):
    folder = tmp_path / "elsewhere"
    tb = TensorBoard(log_dir=folder, log_graph=False)
    trainer.run.step(7)
    tb.on_test_end(trainer, StageResult("test", 0, 10, 1, 0.75, 0.0, {"accuracy": 0.25}))
    events = _events(folder)
    assert _scalars(events, "test/loss") == [(7, 0.75)]
    assert _scalars(events, "test/accuracy") == [(7, 0.25)]
    assert not (trainer.run.path / "tensorboard").exists()


def test_a_resumed_fit_hides_what_the_lost_attempt_logged_after_its_checkpoint(trainer):
    folder = trainer.run.path / "tensorboard"
    tb = TensorBoard(log_every_n_batches=1, log_graph=False)
    _fit(tb, trainer, epochs=2, batches=5)  # steps 0..9; the second epoch's end is "lost"
    trainer.run.set_counters(5, 1)  # resumed from the checkpoint after the first epoch
    for group in trainer.optimizer.param_groups:
        group["lr"] *= 2
    tb = TensorBoard(log_every_n_batches=1, log_graph=False)
    tb.on_fit_start(trainer)
    trainer.epoch = 1
    tb.on_epoch_start(trainer)
    for index in range(5):
        tb.on_batch_end(trainer, BatchResult("train", index, 4, torch.tensor(100.0 + index)))
        trainer.run.step()
    tb.on_fit_end(trainer)
    events = _events(folder)
    losses = _scalars(events, "train/loss")
    assert losses[:5] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    assert losses[5:] == [(5, 10.0), (5, 100.0), (6, 101.0), (7, 102.0), (8, 103.0), (9, 104.0)]
    # The first epoch's results, logged at the checkpoint's step, stay; the second's are gone.
    assert _scalars(events, "valid/loss") == [(5, 2.0)]


def test_without_tensorboard_an_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install epochal\[tensorboard\]"):
        TensorBoard()


class Untraceable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, x):
        return {"out": self.dropout(self.linear(x)), "note": "a string cannot be traced"}


def test_a_model_that_cannot_be_traced_warns_and_goes_on(trainer):
    trainer.model = Untraceable()
    trainer.model.train()
    tb = TensorBoard(log_every_n_batches=1)
    tb.on_fit_start(trainer)
    trainer.example_input = torch.ones(4, 3)
    before = torch.random.get_rng_state()
    with pytest.warns(EpochalWarning, match="could not add the model's graph"):
        tb.on_batch_end(trainer, BatchResult("train", 0, 4, torch.tensor(0.5)))
    assert torch.equal(torch.random.get_rng_state(), before)  # the fit's random state is untouched
    assert trainer.model.training and trainer.model.dropout.training
    tb.on_batch_end(trainer, BatchResult("train", 1, 4, torch.tensor(0.25)))
    tb.on_fit_end(trainer)
    assert _scalars(_events(trainer.run.path / "tensorboard"), "train/loss") == [(0, 0.5), (0, 0.25)]


def _real_fit(store_dir, callbacks):
    torch.manual_seed(0)
    x = torch.randn(40, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(8, 2)
    )
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True),
        valid_data=DataLoader(TensorDataset(x[:20], y[:20]), batch_size=10),
        metrics=["accuracy"], max_epochs=2, store=store_dir, project="p", name="n",
        callbacks=callbacks, progress=False, epoch_table=False, csv_tables=False, summary=False,
    )
    return trainer.fit()


def test_a_real_fit_writes_its_results_and_graph(store_dir):
    trainer = _real_fit(store_dir, [TensorBoard(log_every_n_batches=2)])
    # Tracing the graph changed nothing: BatchNorm statistics, dropout masks, weights are as without it.
    plain = _real_fit(store_dir, [])
    for (name, value), (_, expected) in zip(trainer.model.state_dict().items(), plain.model.state_dict().items()):
        assert torch.equal(value, expected), name
    events = _events(trainer.run.path / "tensorboard")
    assert events.Tags()["graph"]
    graph = events.Graph()
    assert any("Linear" in node.name or "Linear" in node.op for node in graph.node)
    assert _scalars(events, "valid/accuracy") == [
        (4, trainer.history[0]["valid"].metrics["accuracy"]), (8, trainer.history[1]["valid"].metrics["accuracy"])
    ]
    assert _scalars(events, "train/epoch_loss") == [
        (4 * (e + 1), r["train"].loss_mean) for e, r in enumerate(trainer.history)
    ]
    assert [step for step, _ in _scalars(events, "train/loss")] == [0, 2, 4, 6]
    assert _scalars(events, "lr") == [(0, 0.1), (4, 0.1)]
    # The training curve matches the one epochal logged.
    logged = epochal.Store(store_dir).history(trainer.run.id, "train/loss")
    assert [v for s, v in zip(logged.steps, logged.values) if s % 2 == 0] == pytest.approx(
        [value for _, value in ((e.step, e.value) for e in events.Scalars("train/loss"))]
    )
