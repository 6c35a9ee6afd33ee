"""ProgressBar: tqdm bars on a terminal, timed plain lines elsewhere, few reads of the loss."""

import io
import re
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.train import Trainer, progress
from epochal.train.callback import BatchResult, StageResult
from epochal.train.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class CountingTensor(torch.Tensor):
    """A tensor that counts how often its value is read on the host (a device sync on CUDA)."""

    reads = 0

    def __float__(self):
        CountingTensor.reads += 1
        return super().__float__()

    def item(self):
        CountingTensor.reads += 1
        return super().item()


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress, "_clock", clock)
    return clock


@pytest.fixture
def trainer(store_dir):
    run = epochal.start(project="p", name="progress", store=store_dir)
    yield SimpleNamespace(run=run, epoch=2, max_epochs=15, model=None, optimizer=None, callbacks=[])
    run.finish()


def _result(stage, batches, samples, loss, seconds, epoch=2):
    return StageResult(stage, epoch, samples, batches, loss, 0.1, {"accuracy": 0.5}, seconds)


def test_plain_lines_every_every_s_and_one_at_the_end(trainer, clock):
    out = io.StringIO()
    bar = ProgressBar(every_s=10.0, file=out)
    bar.on_stage_start(trainer, "train", 500)
    for index in range(25):  # one batch a second
        clock.now += 1.0
        bar.on_batch_end(trainer, BatchResult("train", index, 32, torch.tensor(0.5 if index < 10 else 0.2)))
    lines = out.getvalue().splitlines()
    # At 10 s and at 20 s: 10 batches of 32 samples in 10 s; the mean loss over the batches so far.
    assert lines == [
        "train epoch 3/15  10/500 batches  32 samples/s  loss 0.5000",
        f"train epoch 3/15  20/500 batches  32 samples/s  loss {(10 * 0.5 + 10 * 0.2) / 20:.4f}",
    ]
    bar.on_stage_end(trainer, _result("train", 500, 16_000, 0.4312, seconds=5.0))
    last = out.getvalue().splitlines()[-1]
    assert last == "train epoch 3/15  500/500 batches  3,200 samples/s  loss 0.4312  done in 0:00:05"


def test_without_a_length_the_line_counts_batches_only(trainer, clock):
    out = io.StringIO()
    bar = ProgressBar(every_s=0.0, file=out)
    bar.on_stage_start(trainer, "valid", None)
    clock.now += 2.0
    bar.on_batch_end(trainer, BatchResult("valid", 0, 100, torch.tensor(1.25)))
    assert out.getvalue().splitlines() == ["valid epoch 3/15  1 batches  50 samples/s  loss 1.2500"]


def test_test_stage_has_no_epoch_in_its_title(trainer, clock):
    out = io.StringIO()
    bar = ProgressBar(file=out)
    bar.on_stage_start(trainer, "test", 4)
    for index in range(4):
        clock.now += 0.5
        bar.on_batch_end(trainer, BatchResult("test", index, 10, torch.tensor(2.0)))
    bar.on_stage_end(trainer, _result("test", 4, 40, 2.0, seconds=2.0))
    assert out.getvalue().splitlines() == ["test  4/4 batches  20 samples/s  loss 2.0000  done in 0:00:02"]


def test_the_loss_is_read_from_the_device_at_most_every_refresh_s(trainer, clock):
    out = io.StringIO()
    bar = ProgressBar(every_s=0.0, file=out, refresh_s=0.5)
    bar.on_stage_start(trainer, "train", 100)
    CountingTensor.reads = 0
    for index in range(100):  # 10 batches a second for 10 s
        clock.now += 0.1
        loss = torch.tensor(float(index)).as_subclass(CountingTensor)
        bar.on_batch_end(trainer, BatchResult("train", index, 8, loss))
    assert 15 <= CountingTensor.reads <= 21  # every 0.5 s, not 100 times
    shown = [line.rsplit(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert len(shown) == 100  # a line per batch (every_s=0) ...
    assert shown[:4] == ["-"] * 4  # ... with no loss before the first read at 0.5 s ...
    shown = [float(text) for text in shown[4:]]
    assert len(set(shown)) <= 21  # ... and one that changes only when read again
    assert shown[-1] == pytest.approx(sum(range(100)) / 100, abs=1.0)


def test_on_a_terminal_a_tqdm_bar_with_samples_per_second_and_loss(trainer, clock):
    out = Terminal()
    bar = ProgressBar(file=out)
    bar.on_stage_start(trainer, "valid", 5)
    for index in range(5):
        clock.now += 1.0
        bar.on_batch_end(trainer, BatchResult("valid", index, 64, torch.tensor(0.25)))
    bar.on_stage_end(trainer, _result("valid", 5, 320, 0.25, seconds=4.0))
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    final = text.split("\r")[-1]
    assert final.startswith("valid epoch 3/15: 100%")
    assert "5/5" in final and "80 samples/s, loss=0.2500" in final
    assert bar._bar is None  # closed at the end of the stage


def test_a_bar_of_samples_with_its_own_title_and_total_also_off_a_terminal(trainer, clock):
    out = io.StringIO()  # not a terminal: terminal=True draws the bar all the same
    bar = ProgressBar(file=out, unit="samples", description=lambda t, stage: f"Epoch {t.epoch + 1:02d} {stage}",
                      total=lambda t, stage: 192, terminal=True, ascii=True)
    bar.on_stage_start(trainer, "train", 3)
    for index in range(3):
        clock.now += 1.0
        bar.on_batch_end(trainer, BatchResult("train", index, 64, torch.tensor(0.5)))
    bar.on_stage_end(trainer, _result("train", 3, 192, 0.5, seconds=3.0))
    final = out.getvalue().split("\r")[-1]
    assert final.startswith("Epoch 03 train: 100%|##########| 192/192")
    assert "samples/s" in final


def test_a_terminal_can_be_told_to_get_lines(trainer, clock):
    out = Terminal()
    bar = ProgressBar(file=out, terminal=False, every_s=0)
    bar.on_stage_start(trainer, "train", 2)
    bar.on_batch_end(trainer, BatchResult("train", 0, 64, torch.tensor(0.5)))
    assert bar._bar is None and out.getvalue().startswith("train epoch 3/15  1/2 batches")


def test_unit_is_batch_or_samples():
    with pytest.raises(ValueError, match="'batch' or 'samples'"):
        ProgressBar(unit="images")


def test_a_resumed_partial_epoch_counts_from_the_first_batch_index(trainer, clock):
    out = io.StringIO()
    bar = ProgressBar(every_s=0.0, file=out)
    bar.on_stage_start(trainer, "train", 10)
    clock.now += 1.0
    bar.on_batch_end(trainer, BatchResult("train", 6, 16, torch.tensor(0.3)))
    assert out.getvalue().splitlines()[0].startswith("train epoch 3/15  7/10 batches  16 samples/s")


def test_a_real_fit_prints_a_line_per_stage_with_its_results(store_dir):
    torch.manual_seed(0)
    x = torch.randn(90, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    out = io.StringIO()
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=DataLoader(TensorDataset(x, y), batch_size=20, drop_last=True),
        valid_data=DataLoader(TensorDataset(x[:30], y[:30]), batch_size=8),
        metrics=["accuracy"], max_epochs=2, store=store_dir, project="p", name="n",
        callbacks=[ProgressBar(file=out)], epoch_table=False, csv_tables=False, summary=False,
    )
    trainer.fit()
    lines = out.getvalue().splitlines()
    pattern = re.compile(
        r"(train|valid) epoch (\d)/2  (\d)/(\d) batches  [\d,]+ samples/s  loss (\S+)  done in 0:00:\d\d"
    )
    matches = [pattern.fullmatch(line) for line in lines]
    assert all(matches), lines
    expected = [
        (stage, str(epoch + 1), str(n), str(n), f"{trainer.history[epoch][stage].loss_mean:.4f}")
        for epoch in range(2)
        for stage, n in (("train", 4), ("valid", 4))  # drop_last: 4 batches of 20; valid: 4 batches, 8+8+8+6
    ]
    assert [m.groups() for m in matches] == expected
