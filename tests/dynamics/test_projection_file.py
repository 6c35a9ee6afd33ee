"""The fitted projection's model.pt is read with weights_only=True: a crafted or damaged one is one clear error."""

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import epochal
from epochal import cli
from epochal.dynamics import DynamicsError, files, load


class _Payload:
    """Unpickled in full, this creates ``marker``: what a crafted model.pt would do to its reader."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def recorded_run(store):
    """A run with one recorded epoch of 40 samples and a projection folder, but no fit."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with epochal.start("p", name="dyn", store=store) as run:
        run.record_dynamics(model, torch.randn(40, 6), torch.arange(40) % 3)
    folder = files.projection_folder(run.path)
    folder.mkdir(parents=True)
    return store, store.run(run.id), folder / files.MODEL_FILE


def quality(store, capsys):
    status = cli.main(["dynamics", "quality", "dyn", "--store", str(store.path)])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_pickle_payload_in_model_pt_never_runs(recorded_run, tmp_path, capsys):
    store, record, model_file = recorded_run
    marker = tmp_path / "payload-ran"
    torch.save({"params": _Payload(marker)}, model_file)
    status, out, err = quality(store, capsys)
    assert not marker.exists()
    assert status == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"epochal: refused to load the fitted projection '{model_file}'")
    assert "which epochal never unpickles; fit it again with `epochal dynamics fit RUN`" in err
    with pytest.raises(DynamicsError, match="never unpickles"):
        load(record)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "a zip without data", "a list"])
def test_a_damaged_model_pt_is_one_line_and_exit_2(recorded_run, capsys, damage):
    store, _, model_file = recorded_run
    saved = io.BytesIO()
    torch.save({"encoder": {"w": torch.zeros(3)}}, saved)
    if damage == "truncated":
        model_file.write_bytes(saved.getvalue()[: len(saved.getvalue()) // 2])
    elif damage == "random bytes":
        model_file.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage == "empty":
        model_file.write_bytes(b"")
    elif damage == "a zip without data":
        with zipfile.ZipFile(model_file, "w") as archive:
            archive.writestr("archive/version", "3")
    else:  # loads, but is not a projection's state
        torch.save([1, 2, 3], model_file)
    status, out, err = quality(store, capsys)
    assert status == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert f"'{model_file}'" in err and err.rstrip().endswith("fit it again with `epochal dynamics fit RUN`")


def test_the_installed_command_prints_no_traceback_for_a_crafted_model(recorded_run, tmp_path):
    store, _, model_file = recorded_run
    marker = tmp_path / "payload-ran"
    torch.save({"params": _Payload(marker)}, model_file)
    done = subprocess.run(
        [sys.executable, "-m", "epochal", "dynamics", "quality", "dyn", "--store", str(store.path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("epochal: refused to load") and done.stderr.count("\n") == 1
    assert not marker.exists()


def damage_npz(path, how, marker):
    if how == "random bytes":
        path.write_bytes(np.random.default_rng(1).bytes(3000))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "an array missing":
        np.savez(path, nothing=np.zeros(3))
    else:  # an object array, which only unpickling could read
        with open(path, "wb") as file:
            np.savez(file, labels=np.array([_Payload(marker)], dtype=object), split=np.array([_Payload(marker)]))


@pytest.mark.parametrize("how", ["random bytes", "truncated", "an array missing", "pickled objects"])
@pytest.mark.parametrize("action, which", [  # the fit reads no samples.npz: it would fit, not fail
    ("samples", "samples.npz"), ("samples", "epoch-0000.npz"), ("fit", "epoch-0000.npz"),
    ("plot", "samples.npz"), ("plot", "epoch-0000.npz"),
])
def test_damaged_recorded_arrays_are_one_line_and_never_unpickled(recorded_run, tmp_path, capsys, how, which, action):
    store, record, _ = recorded_run
    target = files.dynamics_folder(record.path) / which
    marker = tmp_path / "payload-ran"
    damage_npz(target, how, marker)
    if action == "plot":  # reading the samples comes after the fitted projection's files
        files.write_json(files.projection_folder(record.path) / files.META_FILE,
                         {"epochs": [0], "extent": [0, 1, 0, 1], "colors": [[0, 0, 0]] * 3, "resolution": 2})
        with open(files.epoch_file(files.projection_folder(record.path), 0), "wb") as file:
            np.savez(file, coords=np.zeros((40, 2), np.float32))
    quiet = ["--quiet"] if action == "fit" else []
    status = cli.main(["dynamics", action, "dyn", "--store", str(store.path), *quiet])
    out, err = capsys.readouterr()
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"epochal: cannot read '{target}' (damaged, or not written by epochal)")
    assert not marker.exists()


def test_a_damaged_json_file_is_one_line(recorded_run, capsys):
    store, record, _ = recorded_run
    (files.dynamics_folder(record.path) / files.FIT_FILE).write_text("{not json")
    assert cli.main(["dynamics", "fit", "dyn", "--quiet", "--store", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("epochal: cannot read '") and "fit.json' as JSON" in err and err.count("\n") == 1
