"""Recording dynamics: from the Trainer and from a hand-written loop, and the errors of bad input."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import epochal
from epochal.dynamics import DynamicsError, sample_stats
from epochal.dynamics.record import FOLDER, epoch_file, recorded_epochs


def digits(flip: int = 0):
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    flipped = np.arange(flip) * 37  # spread over the set
    y[flipped] = (y[flipped] + 5) % 10
    return x[:1400], y[:1400], x[1400:], y[1400:], flipped


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 10))


def fit(store, callbacks, epochs=4, flip=0):
    x, y, xt, yt, flipped = digits(flip)
    model = mlp()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                              loss_fn=torch.nn.CrossEntropyLoss(), train_data=loader, max_epochs=epochs,
                              callbacks=callbacks(x, y, xt, yt), store=store, progress=False)
    trainer.fit()
    return trainer, model, (x, y, xt, yt, flipped)


def test_the_trainer_records_every_epoch_at_the_last_linear_input(store):
    trainer, model, (x, y, xt, yt, _) = fit(
        store, lambda x, y, xt, yt: [epochal.RecordDynamics({"train": (x, y), "test": (xt, yt)})], epochs=3)
    folder = f"{trainer.run.path}/{FOLDER}"
    from pathlib import Path

    assert recorded_epochs(Path(folder)) == [0, 1, 2]
    with np.load(epoch_file(Path(folder), 2)) as last:
        assert last["representations"].shape == (len(x) + len(xt), 32)
        assert last["representations"].dtype == np.float16
        logits = model(torch.cat([x, xt])).detach().numpy()
        assert np.allclose(last["logits"], logits, atol=1e-5)
        assert np.array_equal(last["predictions"], logits.argmax(1))
        losses = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.cat([y, yt]), reduction="none")
        assert np.allclose(last["losses"], losses.numpy(), atol=1e-5)
        assert np.allclose(last["head_weight"], model[4].weight.detach().numpy())
    stats = sample_stats(Path(folder))
    assert (stats.split == "test").sum() == len(xt)
    assert (stats.predictions[-1] == stats.labels)[stats.split == "train"].mean() > 0.8


def test_max_samples_keeps_every_class_and_split(store):
    trainer, _, _ = fit(store, lambda x, y, xt, yt: [
        epochal.RecordDynamics({"train": (x, y), "test": (xt, yt)}, max_samples=200, every_n_epochs=2)], epochs=3)
    from pathlib import Path

    stats = sample_stats(Path(trainer.run.path) / FOLDER)
    assert list(stats.epochs) == [1, 2]  # every 2nd epoch, and the last
    assert 180 <= len(stats.labels) <= 200
    for split in ("train", "test"):
        assert set(stats.labels[stats.split == split].tolist()) == set(range(10))


def test_flipped_labels_are_ranked_as_likely_mislabeled(store):
    trainer, _, (x, y, *_, flipped) = fit(
        store, lambda x, y, xt, yt: [epochal.RecordDynamics((x, y))], epochs=6, flip=20)
    from pathlib import Path

    stats = sample_stats(Path(trainer.run.path) / FOLDER)
    top = set(stats.indices[stats.likely_mislabeled(20)].tolist())
    assert len(top & set(flipped.tolist())) >= 15


def test_a_hand_written_loop_with_a_feature_prediction_model(store):
    class Split(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = torch.nn.Linear(64, 16), torch.nn.Linear(16, 10)

        def feature(self, x):
            return torch.relu(self.body(x))

        def prediction(self, h):
            return self.head(h)

        def forward(self, x):
            return self.prediction(self.feature(x))

    x, y, *_ = digits()
    model = Split()
    with epochal.start("p", store=store) as run:
        for epoch in range(2):
            path = run.record_dynamics(model, x[:100], y[:100], dtype=np.float32)
            run.epoch()
        with np.load(path) as recorded:
            assert recorded["representations"].shape == (100, 16)
            assert np.allclose(recorded["representations"], model.feature(x[:100]).detach().numpy())
    assert model.training  # put back as it was


def test_an_unknown_layer_names_the_layers_there_are(store):
    x, y, *_ = digits()
    with epochal.start("p", store=store) as run:
        with pytest.raises(DynamicsError, match=r"no layer 'fc9'.*0, 1, 2, 3, 4"):
            run.record_dynamics(mlp(), x[:10], y[:10], layer="fc9")


def test_a_different_width_or_other_samples_are_refused(store):
    x, y, *_ = digits()
    model = mlp()
    with epochal.start("p", store=store) as run:
        run.record_dynamics(model, x[:50], y[:50], epoch=0)
        with pytest.raises(DynamicsError, match="64 wide at epoch 1 but were 32 wide at epoch 0"):
            run.record_dynamics(model, x[:50], y[:50], layer="2", epoch=1)
        with pytest.raises(DynamicsError, match="samples differ"):
            run.record_dynamics(model, x[:40], y[:40], epoch=1)
        with pytest.raises(DynamicsError, match="41 labels"):
            run.record_dynamics(model, x[:40], y[:41], epoch=1)


def test_no_recorded_dynamics_is_a_clear_error(tmp_path):
    with pytest.raises(DynamicsError, match="no recorded dynamics"):
        sample_stats(tmp_path)


def test_the_cli_lists_the_flipped_samples_first(store, capsys):
    from epochal import cli

    trainer, _, (x, y, *_, flipped) = fit(
        store, lambda x, y, xt, yt: [epochal.RecordDynamics((x, y))], epochs=6, flip=20)
    capsys.readouterr()
    assert cli.main(["dynamics", "samples", trainer.run.id, "--store", str(store.path), "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "1,400 samples over 6 recorded epochs" in out and "hard to learn" in out
    listed = [int(line.split()[1]) for line in out.splitlines() if line.startswith("train ")]
    assert len(listed) == 5 and set(listed) <= set(flipped.tolist())


def test_the_cli_on_a_run_without_dynamics_says_so(store, capsys):
    from epochal import cli

    with epochal.start("p", "plain", store=store) as run:
        run.log({"x": 1.0})
    assert cli.main(["dynamics", "samples", "plain", "--store", str(store.path)]) == 2
    assert "no recorded dynamics" in capsys.readouterr().err
