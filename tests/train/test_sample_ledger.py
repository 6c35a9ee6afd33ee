"""SampleLedger: the Trainer records every training sample at every presentation from a plain DataLoader."""

import signal

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


def test_under_ddp_a_job_killed_mid_epoch_and_resumed_records_each_sample_once_per_epoch(ddp_ledger):
    from ddp_launch import torchrun

    from epochal.dynamics.ledger_measures import ledger_parts

    folder = ddp_ledger
    store, out = str(folder / "store"), str(folder / "killed.json")
    done = torchrun("ledger", store, out, "--name", "killed", "--epochs", "3", "--die", "1", "3", check=False)
    assert done.returncode != 0
    torchrun("ledger", store, out, "--name", "killed", "--epochs", "3", "--resume")
    run = next(r for r in epochal.Store(folder / "store").runs() if r.name == "killed")
    frame = epochal.Store(folder / "store").samples(run.id)
    assert frame["sample"].tolist() == list(range(301)) and (frame["presentations"] == 3).all()
    straight = next(r for r in epochal.Store(folder / "store").runs() if r.name == "straight")
    expected = epochal.Store(folder / "store").samples(straight.id)
    np.testing.assert_array_equal(frame["aum"].to_numpy(), expected["aum"].to_numpy())  # the same run
    sessions = {session for files in ledger_parts(folder / "store" / "runs" / run.id / "ledger").values()
                for session, _, _ in files}
    assert sessions == {0, 1}


def test_under_ddp_the_ranks_ledgers_are_gathered_into_the_runs_one_per_sample_and_epoch(ddp_ledger):
    from epochal.dynamics.ledger_measures import epoch_rows, ledger_parts, ledger_stats

    folder = ddp_ledger
    run = next(r for r in epochal.Store(folder / "store").runs() if r.name == "straight")
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


# -- resumed runs: one presentation per sample and epoch, none twice, none missing ------------------------


class _Cut(epochal.Callback):
    """Ctrl-C (a SIGINT, as the terminal sends) once at ``(epoch, hook)`` or ``(epoch, stage, batch)``; or an
    error there (``how='error'``: the process dies, the run resumes from its last epoch-end checkpoint)."""

    def __init__(self, point, how="sigint"):
        self.point, self.how, self.fired = point, how, False

    def _at(self, *where):
        if not self.fired and where == self.point:
            self.fired = True
            if self.how == "sigint":
                signal.raise_signal(signal.SIGINT)
            else:
                raise RuntimeError("the process dies here")

    def on_batch_end(self, trainer, batch):
        self._at(trainer.epoch, batch.stage, batch.index)

    def on_stage_end(self, trainer, result):
        self._at(trainer.epoch, "on_stage_end", result.stage)

    def on_epoch_end(self, trainer, results):
        self._at(trainer.epoch, "on_epoch_end")


def _ledger_fit(store, name, epochs=3, cut=None, resume=False):
    x, y, _ = _data(n=300)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 5))
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
    valid = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32)
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                              loss_fn=torch.nn.CrossEntropyLoss(), train_data=loader, valid_data=valid,
                              max_epochs=epochs, callbacks=[epochal.SampleLedger(), *([cut] if cut else [])],
                              name=name, store=store, progress=False, epoch_table=False, csv_tables=False,
                              summary=False)
    try:
        trainer.fit(resume=resume)
    except (KeyboardInterrupt, RuntimeError):
        assert cut is not None and cut.fired
    return trainer


@pytest.mark.parametrize("point, how", [
    ((1, "train", 4), "sigint"),  # mid-epoch: the resumed session records the epoch from batch 5 on
    ((1, "train", 9), "sigint"),  # the pass's last batch
    ((1, "valid", 0), "sigint"),  # the training pass done, validation part-way
    ((1, "on_stage_end", "train"), "sigint"),
    ((1, "on_epoch_end"), "sigint"),
    ((1, "train", 4), "error"),  # no checkpoint mid-epoch: epoch 1 is trained again, whole
    ((1, "on_epoch_end"), "error"),  # before epoch 1's checkpoint: epoch 1 again, whole
])
def test_a_fit_interrupted_and_resumed_records_each_sample_once_per_epoch(tmp_path, point, how):
    store = tmp_path / "store"
    straight = _ledger_fit(store, "straight")
    _ledger_fit(store, "cut", cut=_Cut(point, how))
    resumed = _ledger_fit(store, "cut", resume=True)
    samples = epochal.Store(store).samples
    expected, frame = samples(straight.run.id), samples(resumed.run.id)
    assert frame["sample"].tolist() == list(range(300))
    assert (frame["presentations"] == 3).all()
    # Exact resume: the same presentations with the same outcomes as the straight run.
    for column in ("label", "aum", "forgetting_events", "first_learned", "last_learned", "confidence"):
        np.testing.assert_array_equal(frame[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
