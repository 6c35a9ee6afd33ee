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
