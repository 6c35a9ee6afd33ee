"""The per-sample ledger: run.record_samples from a hand-written loop, Store.samples, and the CLI."""

import math
import threading
from collections import Counter

import numpy as np
import pytest
import torch

import epochal
from epochal.dynamics import ledger
from epochal.dynamics.ledger_measures import COLUMNS, ledger_stats
from epochal.errors import DynamicsError, RunStateError

# float16 keeps 11 significant bits: a stored loss or margin is off by at most 2**-11 of itself.
HALF = 2.0 ** -11


@pytest.fixture
def store(tmp_path):
    return epochal.Store(tmp_path / "store")


def start(store, name="r"):
    return epochal.start("ledger", name, store=store.path)


# -- (a) flipped labels sit at the bottom of the AUM ranking ------------------------------------------

def gaussian_data(n=2000, classes=10, dims=20, flip=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dims, generator=g) * 1.5
    y = torch.randint(0, classes, (n,), generator=g)
    x = means[y] + torch.randn(n, dims, generator=g)
    flipped = torch.randperm(n, generator=g)[: int(n * flip)]
    noisy = y.clone()
    noisy[flipped] = (y[flipped] + torch.randint(1, classes, (len(flipped),), generator=g)) % classes
    return x, noisy, flipped.numpy()


def test_the_lowest_aum_samples_are_the_flipped_ones(store):
    x, noisy, flipped = gaussian_data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = torch.utils.data.TensorDataset(torch.arange(len(x)), x, noisy)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    with start(store) as run:
        for _ in range(15):
            for idx, xb, yb in loader:
                logits = model(xb)
                loss = torch.nn.functional.cross_entropy(logits, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                run.record_samples(idx, logits, yb)
                run.step()
            run.epoch()
    frame = store.samples(run.id)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(x)
    assert frame["sample"].tolist() == list(range(len(x)))
    assert (frame["presentations"] == 15).all() and (frame["label"].to_numpy() == noisy.numpy()).all()
    lowest = frame.nsmallest(200, "aum")["sample"].to_numpy()
    share = np.isin(lowest, flipped).mean()
    assert share >= 0.7, share
    by_score = frame.nlargest(200, "mislabeled_score")["sample"].to_numpy()
    assert np.isin(by_score, flipped).mean() >= 0.7
    assert frame.loc[flipped, "mislabeled_score"].median() > 3 > frame["mislabeled_score"].median()


# -- (b) the numbers against a plain reference ---------------------------------------------------------

def recorded_history(seed=1):
    """A small history: 12 samples, 4 classes, 5 epochs; some samples twice in an epoch, one missing from
    an epoch, one whose target changes once. Returns the presentations as (epoch, sample, logits, target)."""
    g = torch.Generator().manual_seed(seed)
    presentations = []
    for epoch in range(5):
        order = torch.randperm(12, generator=g).tolist()
        if epoch == 2:
            order.remove(5)  # sample 5 is not presented in epoch 2
        order += [0, 3, 3]  # samples 0 and 3 again (3 twice) in every epoch
        for sample in order:
            target = sample % 4 if not (sample == 7 and epoch == 3) else 2
            # confident towards the target for most, towards another class for samples 8..11
            logits = torch.randn(4, generator=g) * 2
            logits[(target + (sample >= 8)) % 4] += 1.5 + epoch * 0.5
            presentations.append((epoch, sample, logits.float(), target))
    return presentations


def reference(presentations):
    """Per sample, the measures by plain loops over its presentations in order."""
    per_sample: dict[int, list] = {}
    for epoch, sample, logits, target in presentations:
        values = logits.double().tolist()
        loss = math.log(sum(math.exp(v) for v in values)) - values[target]
        margin = values[target] - max(v for c, v in enumerate(values) if c != target)
        predicted = max(range(len(values)), key=lambda c: values[c])
        per_sample.setdefault(sample, []).append((epoch, target, loss, margin, predicted == target))
    out = {}
    for sample, rows in per_sample.items():
        right = [r[4] for r in rows]
        forgetting = sum(1 for a, b in zip(right, right[1:]) if a and not b)
        first = next((r[0] for r in rows if r[4]), -1)
        last = -1
        if right[-1]:
            k = len(rows) - 1
            while k > 0 and right[k - 1]:
                k -= 1
            last = rows[k][0]
        by_epoch: dict[int, list[float]] = {}
        for epoch, _, loss, _, _ in rows:
            by_epoch.setdefault(epoch, []).append(math.exp(-loss))
        means = [sum(p) / len(p) for p in by_epoch.values()]
        confidence = sum(means) / len(means)
        variability = math.sqrt(sum((m - confidence) ** 2 for m in means) / len(means))
        out[sample] = dict(
            label=Counter(r[1] for r in rows).most_common(1)[0][0], aum=sum(r[3] for r in rows) / len(rows),
            forgetting_events=forgetting, first_learned=first, last_learned=last, confidence=confidence,
            variability=variability, correctness=sum(right) / len(rows), presentations=len(rows),
            largest_margin=max(abs(r[3]) for r in rows),
        )
    return out


def test_the_measures_match_a_plain_reference(store):
    presentations = recorded_history()
    with start(store) as run:
        for epoch in range(5):
            batch = [p for p in presentations if p[0] == epoch]
            for first in range(0, len(batch), 4):  # batches of 4, in the order presented
                rows = batch[first:first + 4]
                run.record_samples([r[1] for r in rows], torch.stack([r[2] for r in rows]),
                                   np.array([r[3] for r in rows]))
                run.step()
            run.epoch()
    frame = store.samples(run).set_index("sample")
    expected = reference(presentations)
    assert sorted(frame.index) == sorted(expected)
    for sample, want in expected.items():
        got = frame.loc[sample]
        for name in ("label", "forgetting_events", "first_learned", "last_learned", "presentations"):
            assert got[name] == want[name], (sample, name)
        assert got["correctness"] == pytest.approx(want["correctness"], abs=1e-12)
        # A margin is stored with a relative error of at most 2**-11, so their mean is off by at most
        # 2**-11 of the largest; a probability exp(-loss) moves by at most p * loss * 2**-11 <= 2**-11 / e
        # (p * -log p peaks at 1/e), and so do a mean of them and their standard deviation (1-Lipschitz).
        assert got["aum"] == pytest.approx(want["aum"], abs=HALF * want["largest_margin"] + 1e-6), sample
        assert got["confidence"] == pytest.approx(want["confidence"], abs=HALF / math.e + 1e-6), sample
        assert got["variability"] == pytest.approx(want["variability"], abs=HALF / math.e + 1e-6), sample
    assert frame.loc[7, "label"] == 3 and frame.loc[5, "presentations"] == 4 and frame.loc[3, "presentations"] == 15
    assert frame["forgetting_events"].sum() > 0 and (frame["first_learned"] > 0).any()


# -- (c) bad input ------------------------------------------------------------------------------------

def test_bad_input_is_a_dynamics_error_naming_what_came_and_what_fits(store):
    logits = torch.randn(4, 3)
    with start(store) as run:
        run.record_samples(torch.arange(4), logits, torch.tensor([0, 1, 2, 0]))
        with pytest.raises(DynamicsError, match=r"5 classes .* recorded 3 classes"):
            run.record_samples(torch.arange(4), torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))
        with pytest.raises(DynamicsError, match=r"class indices in \[0, 3\).*float32 tensor of shape \(4,\)"):
            run.record_samples(torch.arange(4), logits, torch.tensor([0.0, 1.0, 2.0, 0.0]))
        with pytest.raises(DynamicsError, match=r"targets run from 0 to 3 .* 3 classes"):
            run.record_samples(torch.arange(4), logits, [0, 1, 3, 0])
        with pytest.raises(DynamicsError, match=r"-1"):
            run.record_samples(torch.arange(4), logits, np.array([0, -1, 2, 0]))
        with pytest.raises(DynamicsError, match=r"shape \(4, 3\).*one-hot"):
            run.record_samples(torch.arange(4), logits, torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3))
        with pytest.raises(DynamicsError, match=r"indices are 4 sample indices .* shape \(3,\)"):
            run.record_samples(torch.arange(3), logits, torch.tensor([0, 1, 2, 0]))
        with pytest.raises(DynamicsError, match=r"targets are 4 class indices .* shape \(5,\)"):
            run.record_samples(torch.arange(4), logits, torch.tensor([0, 1, 2, 0, 1]))
        with pytest.raises(DynamicsError, match=r"logits are an \(N, C\) floating tensor"):
            run.record_samples(torch.arange(4), torch.ones(4, 3, dtype=torch.int64), [0, 1, 2, 0])
        with pytest.raises(DynamicsError, match=r"indices are .*float"):
            run.record_samples([0.5, 1, 2, 3], logits, [0, 1, 2, 0])
    with pytest.raises(RunStateError, match="finished"):
        run.record_samples(torch.arange(4), logits, torch.tensor([0, 1, 2, 0]))
    assert store.samples(run)["presentations"].tolist() == [1, 1, 1, 1]  # only the good batch was recorded


# -- (d) off the training thread; the last epoch without an epoch boundary --------------------------

def test_records_are_written_off_the_training_thread(store, monkeypatch):
    writers = []
    write = ledger.atomic_write

    def watched(target, data, **kwargs):
        writers.append(threading.current_thread())
        return write(target, data, **kwargs)

    monkeypatch.setattr(ledger, "atomic_write", watched)
    run = start(store)
    folder = run.path / ledger.FOLDER
    run.record_samples([0, 1], torch.tensor([[2.0, 0.0], [0.0, 2.0]]), [0, 1])
    assert not folder.exists()  # nothing written while the epoch goes on
    run.flush()  # writes the epoch so far
    assert [p.name for p in folder.iterdir()] == ["epoch-0-s0-r0.npz"]
    run.record_samples([2, 3], torch.tensor([[2.0, 0.0], [0.0, 2.0]]), [1, 1])
    run.finish()  # no run.epoch(): the last epoch is written all the same, whole
    assert writers and all(t is not threading.main_thread() for t in writers)
    assert {t.name for t in writers} == {"epochal-ledger-s0-r0"}
    with np.load(folder / "epoch-0-s0-r0.npz") as file:
        assert file["sample"].tolist() == [0, 1, 2, 3] and file["correct"].tolist() == [True, True, False, True]
        assert file["loss"].dtype == np.float16 and file["sample"].dtype == np.int32


# -- (e) a resumed run keeps appending epochs ----------------------------------------------------------

def test_a_resumed_run_appends_and_supersedes_what_it_records_again(store):
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 3.0]])
    run = start(store)
    for _ in range(2):
        run.record_samples([0, 1, 2, 3], logits, [0, 1, 0, 1])
        run.step()
        run.epoch()
    run.record_samples([0, 1], logits[:2], [0, 1])  # epoch 2, step 2
    run.step()
    run.record_samples([2, 3], logits[2:], [0, 1])  # epoch 2, step 3: redone after the resume
    run.step()
    run.finish("interrupted")
    resumed = epochal.resume(run.id, store=store.path)
    resumed.set_counters(3, 2)  # as a checkpoint saved at step 3 in epoch 2 would
    resumed.record_samples([2, 3], logits[2:], [1, 1])  # step 3 again, now sample 2 is wrong
    resumed.step()
    resumed.epoch()
    resumed.record_samples([0, 1, 2, 3], logits, [0, 1, 0, 1])  # epoch 3
    resumed.finish()
    stats = ledger_stats(run.path / ledger.FOLDER)
    assert stats.epochs.tolist() == [0, 1, 2, 3]
    assert stats.presentations.tolist() == [4, 4, 4, 4]  # step 3 of epoch 2 counted once, from the resumed session
    assert stats.forgetting_events.tolist() == [0, 0, 1, 0] and stats.last_learned.tolist() == [0, 0, 3, 0]
    assert sorted(p.name for p in (run.path / ledger.FOLDER).iterdir()) == [
        "epoch-0-s0-r0.npz", "epoch-1-s0-r0.npz", "epoch-2-s0-r0.npz", "epoch-2-s1-r0.npz", "epoch-3-s1-r0.npz"]


# -- reading: the CLI and a run without a ledger -------------------------------------------------------

def test_the_cli_prints_the_ledger_head(store, capsys):
    from epochal import cli

    g = torch.Generator().manual_seed(0)
    with start(store, "noisy") as run:
        for _ in range(3):
            run.record_samples(torch.arange(30), torch.randn(30, 3, generator=g), torch.arange(30) % 3)
            run.epoch()
    assert cli.main(["dynamics", "samples", "noisy", "--store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "sample ledger: 30 samples, 90 presentations over 3 epochs (0..2)" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["sample", "label"])
    table = lines[header + 1:]
    expected = store.samples(run).nlargest(10, "mislabeled_score")["sample"].tolist()
    assert [int(line.split()[0]) for line in table if line.strip()] == expected


def test_no_ledger_is_a_clear_error(store, capsys):
    from epochal import cli

    with start(store, "plain") as run:
        run.log({"x": 1.0})
    with pytest.raises(DynamicsError, match=r"no sample ledger .*run.record_samples"):
        store.samples(run)
    assert cli.main(["dynamics", "samples", "plain", "--store", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "no recorded dynamics" in err and "no sample ledger" in err


@pytest.mark.parametrize("classes", [7, 100])
def test_the_accelerator_path_computes_what_the_host_path_does(classes):
    # The kernels run on an accelerator's logits, here on CPU tensors; the host path is NumPy's (which
    # works on the transpose for few classes).
    g = torch.Generator().manual_seed(3)
    logits, targets = torch.randn(64, classes, generator=g) * 4, torch.randint(0, classes, (64,), generator=g)
    indices = torch.arange(64)
    floats, ints, rest = ledger._device_outcomes(logits, targets, indices)
    predicted, target, index, loss, margin = ledger._outcomes(logits.numpy(), targets.numpy(), indices.numpy())
    assert rest is None and ints.tolist() == [predicted.tolist(), target.tolist(), index.tolist()]
    np.testing.assert_allclose(floats[:, 0].numpy(), loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(floats[:, 1].numpy(), margin, rtol=1e-5, atol=1e-5)
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="none").numpy()
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)
    half, _, _ = ledger._device_outcomes(logits.half(), targets, indices)  # half logits: float32 results
    assert half.dtype == torch.float32 and torch.allclose(half, floats, atol=0.05)


# -- (f) the quick way for CPU tensors: copies, checks, the same numbers ---------------------------------

def test_cpu_tensors_are_copied_on_the_quick_way_and_checked_by_the_writer(store):
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]], requires_grad=True)
    with start(store) as run:
        run.record_samples(torch.tensor([0, 1]), torch.randn(2, 3), torch.tensor([0, 1]))  # the class count
        targets, indices = torch.tensor([0, 2]), torch.tensor([5, 6])
        run.record_samples(indices, logits * 1, targets)
        run.record_samples(np.array([7, 8]), logits * 1, targets)  # an index array, as SampleLedger gives
        with torch.no_grad():
            logits.add_(100.0)
        targets.fill_(1)  # a loader that reuses its buffers
        indices.fill_(0)
        run.flush()
        # Tensors are checked by the writer thread: the error comes with a later call, here flush().
        for indices, targets, message in ((torch.arange(2), torch.tensor([0, 3]), r"targets run from 0 to 3 .* 3 classes"),
                                          (torch.arange(2), torch.tensor([-1, 0]), r"targets run from -1 to 0"),
                                          (np.array([-1, 0]), torch.tensor([0, 0]), r"indices hold -1")):
            run.record_samples(indices, logits, targets)
            with pytest.raises(DynamicsError, match=message + ".* the batch at step 0 was not recorded"):
                run.flush()
        (path,) = (run.path / ledger.FOLDER).iterdir()
    with np.load(path) as file:
        assert file["sample"].tolist() == [0, 1, 5, 6, 7, 8]
        assert file["target"][2:].tolist() == [0, 2, 0, 2] and file["predicted"][2:].tolist() == [0, 1, 0, 1]
        expected = torch.nn.functional.cross_entropy(torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]]),
                                                     torch.tensor([0, 2]), reduction="none")
        np.testing.assert_allclose(file["loss"][2:4].astype(np.float32), expected.numpy(), rtol=HALF)
        assert file["margin"][2:4].tolist() == [1.0, -2.0]


def test_host_predictions_are_argmax_ties_and_nans_included():
    rng = np.random.default_rng(0)
    for classes in (2, 10, 64, 65):
        logits = rng.integers(-2, 3, (500, classes)).astype(np.float32)  # many ties
        logits[3, classes // 2] = np.nan
        logits[4, :] = np.nan
        logits[5, :] = -np.inf
        predicted, *_ = ledger._outcomes(logits, rng.integers(0, classes, 500), np.arange(500))
        assert predicted.tolist() == logits.argmax(1).tolist()
