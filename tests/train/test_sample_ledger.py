"""SampleLedger: the Trainer records every training sample at every presentation from a plain DataLoader."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import epochal
from epochal.errors import DynamicsError


def _data(n=600, classes=5, dims=8, flip=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dims, generator=g) * 2.0
    y = torch.randint(0, classes, (n,), generator=g)
    x = means[y] + torch.randn(n, dims, generator=g)
    flipped = torch.randperm(n, generator=g)[: int(n * flip)]
    noisy = y.clone()
    noisy[flipped] = (y[flipped] + torch.randint(1, classes, (len(flipped),), generator=g)) % classes
    return x, noisy, flipped.numpy()


def test_each_batch_is_tied_to_its_own_samples(tmp_path):
    """With a learning rate of 0 the model never changes: every presentation of sample i has the loss the
    model gives sample i, which only holds if the ledger tied each batch to the indices it was drawn for."""
    x, y, _ = _data()
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 5)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn=torch.nn.CrossEntropyLoss(),
                              train_data=loader, max_epochs=3, callbacks=[epochal.SampleLedger()],
                              store=tmp_path / "store", progress=False, epoch_table=False, csv_tables=False,
                              checkpoint=False, summary=False)
    trainer.fit()
    frame = epochal.Store(tmp_path / "store").samples(trainer.run.id)
    assert frame["sample"].tolist() == list(range(len(x)))
    assert (frame["presentations"] == 3).all() and frame["label"].tolist() == y.tolist()
    with torch.no_grad():
        expected = torch.exp(-torch.nn.functional.cross_entropy(model(x), y, reduction="none")).numpy()
    # confidence is the mean probability of the label: exp(-loss), stored in float16
    np.testing.assert_allclose(frame["confidence"].to_numpy(), expected, rtol=2e-3, atol=1e-4)


def test_the_lowest_aum_samples_of_a_fit_are_the_flipped_ones(tmp_path):
    x, y, flipped = _data(n=1500)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5))
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                              loss_fn=torch.nn.CrossEntropyLoss(), train_data=loader, max_epochs=8,
                              callbacks=[epochal.SampleLedger()], store=tmp_path / "store",
                              progress=False, epoch_table=False, csv_tables=False, checkpoint=False, summary=False)
    trainer.fit()
    frame = epochal.Store(tmp_path / "store").samples(trainer.run.id)
    lowest = frame.nsmallest(len(flipped), "aum")["sample"].to_numpy()
    assert np.isin(lowest, flipped).mean() >= 0.7


class _Stream(IterableDataset):
    def __iter__(self):
        for i in range(64):
            yield torch.randn(8), i % 5


def test_a_loader_without_sample_indices_is_refused_at_the_start_saying_how(tmp_path):
    model = torch.nn.Linear(8, 5)
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
                              train_data=DataLoader(_Stream(), batch_size=16), max_epochs=1,
                              callbacks=[epochal.SampleLedger()], store=tmp_path / "store",
                              progress=False, epoch_table=False, csv_tables=False, checkpoint=False, summary=False)
    with pytest.raises(DynamicsError, match="record_samples") as refused:
        trainer.fit()
    assert "IterableDataset" in str(refused.value)
    assert not (tmp_path / "store" / "runs" / trainer.run.id / "ledger").exists()  # nothing keyed by wrong samples
