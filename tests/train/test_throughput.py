"""samples/s and data_wait: what the Trainer logs to tell a slow data loader from a slow model."""

import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import epochal
from epochal.train.logger import MetricLogger


class SlowData(Dataset):
    """Random samples, each taking ``delay`` seconds to load."""

    def __init__(self, n, delay):
        self.n, self.delay = n, delay
        self.x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        time.sleep(self.delay)
        return self.x[index], int(self.x[index, 0] > 0)


class SlowModel(torch.nn.Module):
    def __init__(self, delay):
        super().__init__()
        self.delay, self.linear = delay, torch.nn.Linear(4, 2)

    def forward(self, x):
        time.sleep(self.delay)
        return self.linear(x)


def _fit(store_dir, data_delay, model_delay, n=40, batch_size=4):
    model = SlowModel(model_delay)
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
                              train_data=DataLoader(SlowData(n, data_delay), batch_size=batch_size), max_epochs=2,
                              store=store_dir, progress=False, epoch_table=False, csv_tables=False, summary=False)
    started = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - started
    with epochal.Store(store_dir) as store:
        return store.history(trainer.run.id, "samples/s"), store.history(trainer.run.id, "data_wait"), seconds


@pytest.fixture
def every_4_batches(monkeypatch):
    monkeypatch.setattr(MetricLogger, "THROUGHPUT_EVERY", 4)


def test_a_slow_loader_reads_as_waiting_for_data_and_a_slow_model_does_not(store_dir, every_4_batches):
    # Sleeps take no CPU, so a busy machine stretches the work around them but not the sleeps themselves.
    _, waiting, _ = _fit(store_dir / "a", data_delay=0.02, model_delay=0.0)
    assert np.median(waiting.values) > 0.7
    _, waiting, _ = _fit(store_dir / "b", data_delay=0.0, model_delay=0.08)
    assert np.median(waiting.values) < 0.3


def test_throughput_is_logged_every_n_batches_and_at_each_epochs_end(store_dir, every_4_batches):
    rate, waiting, seconds = _fit(store_dir, data_delay=0.0, model_delay=0.01, n=40, batch_size=4)
    # 10 batches an epoch: points after batches 4 and 8, then the epoch's last 2, at each window's last step.
    assert rate.steps.tolist() == waiting.steps.tolist() == [3, 7, 9, 13, 17, 19]
    assert rate.epochs.tolist() == [0, 0, 0, 1, 1, 1]
    # Each batch of 4 sleeps 10 ms in the model, so never more than 400 samples/s; a busy machine only slows it.
    assert all(0 < value < 400 for value in rate.values), rate.values
    assert 80 / seconds < max(rate.values)  # the fit as a whole, with its set-up, is slower than its windows
