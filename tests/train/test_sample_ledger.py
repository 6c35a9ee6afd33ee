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


# -- under DDP: two CPU ranks started by torchrun (gloo), as tests/train/test_ddp.py does ----------------


def _reference(folder, name):
    """What the ranks computed, as one process computes the ledger's columns from their logits: per epoch,
    every sample once (rank 1's repeat of rank 0's first sample, DistributedSampler's padding, left out)."""
    rows = []
    for rank in (0, 1):
        seen = np.load(folder / f"{name}-seen-{rank}.npz")
        rows.append({key: seen[key] for key in ("index", "epoch", "logits", "target")})
    out = {}
    for epoch in np.unique(rows[0]["epoch"]):
        first, second = ({k: v[r["epoch"] == epoch] for k, v in r.items()} for r in rows)
        assert second["index"][-1] == first["index"][0]  # the padding: the first of the shuffled order again
        second = {k: v[:-1] for k, v in second.items()}
        merged = {k: np.concatenate([first[k], second[k]]) for k in first}
        logits, target = torch.from_numpy(merged["logits"]), torch.from_numpy(merged["target"])
        others = logits.clone()
        others[torch.arange(len(target)), target] = -torch.inf
        out[int(epoch)] = {
            "sample": merged["index"], "target": merged["target"], "predicted": logits.argmax(1).numpy(),
            "loss": torch.nn.functional.cross_entropy(logits, target, reduction="none").numpy(),
            "margin": (logits.gather(1, target[:, None])[:, 0] - others.max(1).values).numpy(),
        }
    return out


@pytest.fixture(scope="module")
def ddp_ledger(tmp_path_factory):
    from ddp_launch import torchrun

    folder = tmp_path_factory.mktemp("ddp-ledger")
    torchrun("ledger", str(folder / "store"), str(folder / "out.json"), "--name", "straight", "--epochs", "3")
    return folder


def test_under_ddp_the_ranks_ledgers_are_gathered_into_the_runs_one_per_sample_and_epoch(ddp_ledger):
    from epochal.dynamics.ledger_measures import epoch_rows, ledger_parts, ledger_stats

    folder = ddp_ledger
    (run,) = epochal.Store(folder / "store").runs()
    ledger = folder / "store" / "runs" / run.id / "ledger"
    parts = ledger_parts(ledger)
    assert sorted(parts) == [0, 1, 2]
    assert all(sorted(rank for _, rank, _ in files) == [0, 1] for files in parts.values())  # rank 0 wrote both
    reference = _reference(folder, "straight")
    for epoch, files in parts.items():
        rows = epoch_rows(files, ("sample", "target", "predicted", "loss", "margin"))
        assert sorted(rows["sample"].tolist()) == list(range(301))  # each sample once: padding left out
        order, expected = np.argsort(rows["sample"]), reference[epoch]
        wanted = np.argsort(expected["sample"])
        for column in ("sample", "target", "predicted"):
            np.testing.assert_array_equal(rows[column][order], expected[column][wanted])
        for column in ("loss", "margin"):  # float16 in the files
            np.testing.assert_allclose(rows[column][order].astype(np.float32), expected[column][wanted],
                                       rtol=2e-3, atol=2e-3)
    stats = ledger_stats(ledger)
    assert stats.sample.tolist() == list(range(301)) and (stats.presentations == 3).all()
    aum = np.mean([np.asarray(reference[e]["margin"])[np.argsort(reference[e]["sample"])] for e in range(3)], 0)
    np.testing.assert_allclose(stats.aum, aum, rtol=2e-3, atol=2e-3)
    frame = epochal.Store(folder / "store").samples(run.id)
    assert len(frame) == 301 and (frame["presentations"] == 3).all()
