"""A recorded run, end to end: fit its projection, measure it, draw it, from Python and from the command line."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import epochal
from epochal import cli
from epochal.dynamics import DynamicsError, coordinates, evaluate, files, fit, load, plot

QUICK = {"layout_iterations": 150, "max_epochs": 4, "resolution": 40}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A store with one run of 3 epochs of digits recorded (1200 train, 300 test samples)."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x[:1500] / 16.0, dtype=torch.float32), torch.tensor(y[:1500])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:1200], y[:1200]), batch_size=64)
    directory = tmp_path_factory.mktemp("store")
    with epochal.Store(directory) as store:
        trainer = epochal.Trainer(
            model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loss_fn=torch.nn.CrossEntropyLoss(),
            train_data=loader, max_epochs=3, store=store, progress=False, name="digits",
            callbacks=[epochal.RecordDynamics({"train": (x[:1200], y[:1200]), "test": (x[1200:], y[1200:])})],
        )
        trainer.fit()
        record = store.run(trainer.run.id)
    return directory, record


@pytest.fixture(scope="module")
def fitted(recorded):
    directory, record = recorded
    stages = []
    projection = fit(record, progress=lambda stage, fraction, message: stages.append((stage, fraction)), **QUICK)
    return directory, record, projection, stages


def test_fit_writes_each_epochs_coordinates_and_background(fitted):
    _, record, projection, stages = fitted
    folder = Path(record.path) / files.FOLDER / files.PROJECTION_FOLDER
    meta = json.loads((folder / files.META_FILE).read_text())
    assert meta["epochs"] == projection.epochs_ == [0, 1, 2]  # the Trainer counts epochs from 0
    assert meta["classes"] == 10 and len(meta["colors"]) == 10 and meta["samples"] == 1500
    for epoch in meta["epochs"]:
        assert np.array_equal(coordinates(record, epoch), projection.embedding_[epoch])
        with Image.open(files.background_file(folder, epoch)) as image:
            assert image.size == (40, 40)
            assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 10  # shaded classes, not one flat colour
    progress = json.loads((folder / files.PROGRESS_FILE).read_text())
    assert progress["state"] == "done" and progress["fraction"] == 1.0
    assert [s for s, _ in stages][:2] == ["load", "graph"] and "train" in dict(stages)
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions)


def test_a_loaded_projection_is_the_fitted_one(fitted):
    _, record, projection, _ = fitted
    again = load(record)
    with np.load(files.epoch_file(Path(record.path) / files.FOLDER, 2)) as arrays:
        reps = arrays["representations"].astype(np.float32)
    assert np.allclose(again.transform(reps), projection.transform(reps), atol=1e-5)



def test_model_pt_holds_only_tensors_and_a_projection_saved_with_arrays_still_loads(fitted, tmp_path):
    _, record, projection, _ = fitted
    model_file = files.projection_folder(record.path) / files.MODEL_FILE
    state = torch.load(model_file, map_location="cpu", weights_only=True)  # torch's defaults: no NumPy, no objects
    assert isinstance(state["embedding"], torch.Tensor) and isinstance(state["heads"][0][0], torch.Tensor)
    # Projections fitted before kept NumPy arrays in model.pt; weights_only still reads those.
    older = {key: value.numpy() if isinstance(value, torch.Tensor) else value for key, value in state.items()}
    older["heads"] = [(w.numpy(), b.numpy()) for w, b in state["heads"]]
    older["boundary"] = tuple(a.numpy() for a in state["boundary"])
    folder = tmp_path / "older"
    files.projection_folder(folder).mkdir(parents=True)
    torch.save(older, files.projection_folder(folder) / files.MODEL_FILE)
    again = load(folder)
    assert np.array_equal(again.embedding_, projection.embedding_) and again.epochs_ == projection.epochs_
    assert all(np.array_equal(a, b) for a, b in zip(again.boundary_, projection.boundary_))
    assert np.array_equal(again.heads_[1][0], projection.heads_[1][0])

def test_quality_is_measured_per_epoch_and_split(fitted):
    _, record, _, _ = fitted
    report = evaluate(record)
    stored = json.loads((Path(record.path) / files.FOLDER / files.PROJECTION_FOLDER / files.QUALITY_FILE).read_text())
    assert stored["k"] == 15 and set(stored["epochs"]) == {"0", "1", "2"}
    assert set(stored["temporal"]) == {"0-1", "1-2"}
    assert "trajectory" not in stored  # it needs four epochs
    for split in ("train", "test"):
        last = report["epochs"]["2"][split]
        assert 0.35 < last["npr"] <= 1 and 0.8 < last["trustworthiness"] <= 1 and 0.8 < last["ppr"] <= 1
        assert -1 <= stored["temporal"]["1-2"][split]["movement"] <= 1
        assert stored["mean"][split]["npr"] == pytest.approx(np.mean([e[split]["npr"] for e in report["epochs"].values()]))


def test_plot_draws_a_png_per_epoch_and_a_gif(fitted, tmp_path):
    _, record, _, _ = fitted
    written = plot(record, out=tmp_path)
    assert [p.name for p in written] == ["epoch-0000.png", "epoch-0001.png", "epoch-0002.png", "dynamics.gif"]
    with Image.open(written[-1]) as gif:
        assert gif.n_frames == 3
    with Image.open(written[0]) as png:
        assert png.size == (600, 600)
    with pytest.raises(DynamicsError, match=r"epoch\(s\) \[9\] have no projection; fitted epochs: \[0, 1, 2\]"):
        plot(record, epochs=[9], out=tmp_path)


def test_the_command_line_fits_measures_and_plots(recorded, tmp_path, capsys):
    directory, record = recorded
    # This fits the module's run again: it comes after the tests that read the first fit.
    settings = ["--set", "layout_iterations=100", "--set", "max_epochs=2", "--set", "resolution=30"]
    store = ["--store", str(directory)]
    assert cli.main(["dynamics", "fit", "digits", *settings, "--quiet", *store]) == 0
    assert "fitted 3 epochs of 1,500 samples" in capsys.readouterr().out
    assert cli.main(["dynamics", "quality", "digits", *store]) == 0
    out = capsys.readouterr().out
    assert "NPR train" in out and "movement test" in out and "mean train: npr 0." in out
    assert cli.main(["dynamics", "plot", "digits", "--epoch", "2", "--no-gif", "-o", str(tmp_path), *store]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "epoch-0002.png")
    with Image.open(files.background_file(Path(record.path) / files.FOLDER / files.PROJECTION_FOLDER, 2)) as image:
        assert image.size == (30, 30)


def test_settings_from_fit_json_and_bad_ones(recorded, capsys):
    directory, record = recorded
    folder = Path(record.path) / files.FOLDER
    (folder / files.FIT_FILE).write_text(json.dumps({"perplexity": 30}))
    try:
        with pytest.raises(DynamicsError, match="unknown projection setting.*perplexity.*known: n_neighbors"):
            fit(record)
        (folder / files.FIT_FILE).write_text(json.dumps({"n_neighbors": 2000}))
        with pytest.raises(DynamicsError, match="n_neighbors=2000 needs at least 2000 samples, got 1500"):
            fit(record)
        progress = json.loads((folder / files.PROJECTION_FOLDER / files.PROGRESS_FILE).read_text())
        assert progress["state"] == "failed" and "n_neighbors=2000" in progress["message"]
    finally:
        (folder / files.FIT_FILE).unlink()
    with pytest.raises(SystemExit):
        cli.main(["dynamics", "fit", "digits", "--set", "n_neighbours=5", "--store", str(directory)])
    assert "'n_neighbours=5' is not NAME=VALUE with NAME one of: n_neighbors" in capsys.readouterr().err


def test_a_run_without_dynamics_says_how_to_record_them(store, capsys):
    with epochal.start("p", name="plain", store=store) as run:
        run.log({"loss": 1.0})
    for action in ("fit", "quality", "plot"):
        assert cli.main(["dynamics", action, "plain", "--store", str(store.path)]) == 2
        assert "has no recorded dynamics; record them while training with epochal.RecordDynamics" in capsys.readouterr().err
    with pytest.raises(DynamicsError, match="no recorded dynamics"):
        fit(run.path)
