"""epochal.compat.butirecorder: buti-recorder's Recorder over epochal, against real files and a real store."""

import json
import os
import sys
import time
import types

import numpy as np
import pytest
import torch

import epochal
from epochal.compat.butirecorder import Recorder
from epochal.errors import CheckpointError


def _tiny_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _recorder(tmp_path, **kwargs):
    options = {"mode": "torch", "save_mode": "state_dict", "save_path": str(tmp_path / "out"), "recorder_name": "cnn"}
    return Recorder(**{**options, **kwargs})


def _read(path):
    with open(path) as file:
        return json.load(file)


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_readme_example(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "your_model", types.SimpleNamespace(your_model=_tiny_model))

    # The seed README's example; only its import line is changed, and "..." is filled in.
    from epochal.compat.butirecorder import Recorder  # noqa: I001 (the README's order)
    from your_model import your_model

    model_1 = your_model()
    model_2 = your_model()
    recorder = Recorder(
        mode="torch",
        save_mode="state_dict", save_path=str(tmp_path), recorder_name="readme",    # parameters
    )

    recorder.set_models({
        "CNN_1": model_1,
        "CNN_2": model_2,
    })

    for i in range(10) :
         recorder.checkpoint({
            "accuracy": 0.1 * i,
            "loss": 0.01,
            "QQ": True,
            "whatever you want to save": True
         })
         recorder.step()

    recorder.save_checkpoints()
    # -- end of the example

    saved = _read(tmp_path / "readme.json")
    assert saved["recorder_name"] == "readme" and saved["steps"] == 10 and saved["epochs"] == 0
    assert saved["model_names"] == ["CNN_1", "CNN_2"]
    assert saved["data"]["accuracy"] == [[i + 1, 0.1 * i] for i in range(10)]
    assert saved["data"]["accuracy"][:3] == [[1, 0.0], [2, 0.1], [3, 0.2]]
    assert saved["data"]["loss"] == [[i + 1, 0.01] for i in range(10)]
    assert saved["data"]["QQ"] == [[i + 1, True] for i in range(10)]
    assert saved["data"]["whatever you want to save"] == [[i + 1, True] for i in range(10)]

    recorder.close()
    store = epochal.Store()
    (record,) = store.runs(project="butirecorder")
    assert record.name == "readme" and record.status == "finished" and record.steps == 10
    assert record.id == saved["epochal_run"]
    assert record.config["models"] == ["CNN_1", "CNN_2"]
    history = store.history(record, "accuracy")
    assert history.steps.tolist() == list(range(1, 11))
    assert history.values.tolist() == [0.1 * i for i in range(10)]
    assert store.history(record, "QQ").values.tolist() == [1.0] * 10


def test_a_key_given_again_in_a_step_is_replaced_in_the_json_and_the_store(tmp_path):
    recorder = _recorder(tmp_path)
    recorder.checkpoint({"loss": 1.0})
    recorder.checkpoint({"loss": 0.5, "acc": 0.2})
    recorder.step()
    recorder.checkpoint({"loss": 0.25})
    recorder.epoch()
    recorder.step()
    path = recorder.save_checkpoints()
    recorder.close()
    saved = _read(path)
    assert saved["data"] == {"loss": [[1, 0.5], [2, 0.25]], "acc": [[1, 0.2]]}
    assert (saved["steps"], saved["epochs"]) == (2, 1)
    history = epochal.Store().history(saved["epochal_run"], "loss")
    assert history.steps.tolist() == [1, 2] and history.values.tolist() == [0.5, 0.25]
    assert history.epochs.tolist() == [0, 0]


def test_values_of_any_json_kind_numpy_and_tensors(tmp_path):
    recorder = _recorder(tmp_path)
    recorder.checkpoint({
        "np": np.float32(0.5), "int": np.int64(3), "t": torch.tensor(2.0), "vec": torch.tensor([1.0, 2.0]),
        "arr": np.arange(3), "note": "warm-up", "nothing": None, "cfg": {"a": [1, 2]},
    })
    recorder.step()
    path = recorder.save_checkpoints()
    recorder.close()
    data = _read(path)["data"]
    assert data == {
        "np": [[1, 0.5]], "int": [[1, 3]], "t": [[1, 2.0]], "vec": [[1, [1.0, 2.0]]], "arr": [[1, [0, 1, 2]]],
        "note": [[1, "warm-up"]], "nothing": [[1, None]], "cfg": [[1, {"a": [1, 2]}]],
    }
    store = epochal.Store()
    run = _read(path)["epochal_run"]
    assert sorted(store.keys(run)) == ["int", "np", "t"]  # only the numbers go to the store


def test_a_refused_value_records_nothing(tmp_path):
    recorder = _recorder(tmp_path)
    with pytest.raises(TypeError, match="'model'.*JSON"):
        recorder.checkpoint({"loss": 1.0, "model": object()})
    with pytest.raises(TypeError, match="keys are strings"):
        recorder.checkpoint({"loss": 1.0, 3: 1.0})
    with pytest.raises(ValueError, match="1 to 255"):
        recorder.checkpoint({"": 1.0})
    assert recorder.data == {}
    recorder.step()
    assert recorder._run is None  # nothing was logged, so no run was started


def test_state_dict_models_save_load_and_the_run_continues(tmp_path):
    model = _tiny_model()
    recorder = _recorder(tmp_path, models={"net": model}, desp="digits, v1")
    for i in range(3):
        recorder.checkpoint({"loss": 1.0 / (i + 1)})
        recorder.step()
    recorder.epoch()
    json_path = recorder.save_checkpoints()
    (model_path,) = recorder.save_models()
    assert model_path == tmp_path / "out" / "cnn_net.pkl"
    assert set(torch.load(model_path, weights_only=True)) == set(model.state_dict())
    recorder.close()
    store = epochal.Store()
    (checkpoint,) = store.checkpoints("cnn")
    assert checkpoint.kind == "weights" and checkpoint.step == 3 and checkpoint.epoch == 1

    fresh = _tiny_model()
    assert not _same_weights(fresh, model)
    again = Recorder(mode="torch", save_mode="state_dict", models={"net": fresh})
    models = again.load(str(json_path))
    assert models["net"] is fresh and _same_weights(fresh, model)
    assert (again.steps, again.epochs, again.recorder_name, again.desp) == (3, 1, "cnn", "digits, v1")
    assert again.save_path == str(tmp_path / "out")
    again.checkpoint({"loss": 0.1})
    again.step()
    again.save_checkpoints()
    again.close()

    assert _read(json_path)["data"]["loss"] == [[1, 1.0], [2, 0.5], [3, 1 / 3], [4, 0.1]]
    (record,) = store.runs(project="butirecorder")  # the same run, resumed
    assert record.steps == 4 and record.epochs == 1
    assert store.history(record, "loss").steps.tolist() == [1, 2, 3, 4]


def test_whole_models_save_and_load(tmp_path):
    model = _tiny_model()
    recorder = _recorder(tmp_path, save_mode="model", models={"net": model})
    recorder.save_checkpoints()
    recorder.save_models()
    recorder.close()
    again = Recorder(mode="torch", save_mode="model", models={"net": None})
    loaded = again.load(tmp_path / "out" / "cnn.json")["net"]
    assert isinstance(loaded, torch.nn.Sequential) and loaded is not model and _same_weights(loaded, model)
    with pytest.raises(CheckpointError, match="save_mode='model'"):
        Recorder(mode="torch", save_mode="state_dict", models={"net": _tiny_model()}).load(tmp_path / "out" / "cnn.json")


def test_loads_what_the_original_tool_wrote(tmp_path):
    """The original json.dump-ed a JSON string and torch.save-d state dicts to <name>_<model>.pkl."""
    model = _tiny_model()
    folder = tmp_path / "old"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "gan_generator.pkl")
    original = {
        "id": "abc", "recorder_name": "gan", "save_path": str(folder), "mode": "torch",
        "model_names": ["generator"], "desp": "old run", "steps": 3, "epochs": 1,
        "data": {"accuracy": [[0, 0.0], [1, 0.5], [2, 0.75]], "note": [[2, "done"]]},
    }
    torch.save(model.state_dict(), folder / "gan_generator.pkl")
    with open(folder / "gan.json", "w") as file:
        json.dump(json.dumps(original), file)

    fresh = _tiny_model()
    recorder = Recorder(mode="torch", save_mode="state_dict", models={"generator": fresh})
    recorder.load(folder / "gan.json")
    assert _same_weights(fresh, model) and recorder.data == original["data"] and recorder.steps == 3
    recorder.checkpoint({"accuracy": 0.8})
    recorder.step()
    recorder.close()
    (record,) = epochal.Store().runs(project="butirecorder")  # a new run, holding the loaded points too
    assert record.name == "gan" and record.steps == 4
    assert epochal.Store().history(record, "accuracy").values.tolist() == [0.0, 0.5, 0.75, 0.8]


def test_bad_files_are_named_and_change_nothing(tmp_path):
    model = _tiny_model()
    recorder = _recorder(tmp_path, models={"net": model})
    json_path = recorder.save_checkpoints()
    recorder.save_models()
    recorder.close()
    fresh = _tiny_model()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}

    def load(path, models=None):
        again = Recorder(mode="torch", save_mode="state_dict", models=models or {"net": fresh})
        again.load(path)

    with pytest.raises(CheckpointError, match="missing.json: no such"):
        load(tmp_path / "missing.json")
    (tmp_path / "corrupt.json").write_text('{"steps": 3, ')
    with pytest.raises(CheckpointError, match="corrupt.json: not valid JSON"):
        load(tmp_path / "corrupt.json")
    (tmp_path / "other.json").write_text('{"steps": 3}')
    with pytest.raises(CheckpointError, match="other.json: not a recorder file, it lacks 'recorder_name'"):
        load(tmp_path / "other.json")
    with pytest.raises(CheckpointError, match="no model named 'gen'"):
        load(json_path, {"gen": fresh})

    weights = tmp_path / "out" / "cnn_net.pkl"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cnn_net.pkl: cannot load model 'net'"):
        load(json_path)
    torch.save({"0.weight": torch.zeros(3, 3)}, weights)
    with pytest.raises(CheckpointError, match="cnn_net.pkl: does not fit model 'net'"):
        load(json_path)
    weights.unlink()
    with pytest.raises(CheckpointError, match="cnn_net.pkl, does not exist"):
        load(json_path)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())


def test_json_writes_are_atomic(tmp_path, monkeypatch):
    recorder = _recorder(tmp_path)
    recorder.checkpoint({"loss": 1.0})
    path = recorder.save_checkpoints()
    recorder.step()
    recorder.checkpoint({"loss": 0.5})

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        recorder.save_checkpoints()
    monkeypatch.undo()
    assert _read(path)["data"]["loss"] == [[1, 1.0]]
    assert os.listdir(path.parent) == ["cnn.json"]
    recorder.close()


def test_bad_arguments(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="TensorFlow is not supported"):
        Recorder(mode="tf", save_mode="state_dict")
    with pytest.raises(ValueError, match="mode is one of 'torch', 'keras', 'tf', got 'jax'"):
        Recorder(mode="jax", save_mode="state_dict")
    with pytest.raises(ValueError, match="save_mode is one of 'state_dict', 'model', got 'weights'"):
        Recorder(mode="torch", save_mode="weights")
    with pytest.raises(ValueError, match="needs save_path"):
        Recorder(mode="torch", save_mode="model", recorder_name="x").save_checkpoints()
    with pytest.raises(ValueError, match="no models to save"):
        _recorder(tmp_path).save_models()
    with pytest.raises(ValueError, match="set the models to load into first"):
        Recorder(mode="torch", save_mode="model").load(tmp_path / "x.json")
    monkeypatch.setitem(sys.modules, "keras", None)  # as if Keras were not installed
    with pytest.raises(ImportError, match=r"pip install epochal\[keras\]"):
        Recorder(mode="keras", save_mode="state_dict")


def test_checkpoint_is_cheap(tmp_path):
    recorder = _recorder(tmp_path)
    begin = time.perf_counter()
    for i in range(20_000):
        recorder.checkpoint({"loss": 1.0 / (i + 1), "acc": 0.5})
        recorder.step()
    elapsed = time.perf_counter() - begin
    recorder.close()
    assert elapsed < 2.0  # about 10 µs a step here; writing the JSON every step took the original seconds
    assert not (tmp_path / "out").exists()  # nothing is written until save_checkpoints()
    assert epochal.Store().summary("cnn")["loss"].count == 20_000


@pytest.fixture
def keras(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _keras_model(keras):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])


@pytest.mark.parametrize("save_mode, suffix", [("state_dict", ".weights.h5"), ("model", ".keras")])
def test_keras_models_save_and_load(tmp_path, keras, save_mode, suffix):
    model = _keras_model(keras)
    recorder = _recorder(tmp_path, mode="keras", save_mode=save_mode, models={"dense": model})
    recorder.checkpoint({"loss": 0.5})
    recorder.step()
    recorder.save_checkpoints()
    (path,) = recorder.save_models()
    recorder.close()
    assert path == tmp_path / "out" / f"cnn_dense{suffix}"
    assert sorted(os.listdir(path.parent)) == ["cnn.json", path.name]

    fresh = _keras_model(keras)
    again = Recorder(mode="keras", save_mode=save_mode, models={"dense": fresh})
    loaded = again.load(tmp_path / "out" / "cnn.json")["dense"]
    assert (loaded is fresh) == (save_mode == "state_dict")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="mode='keras'"):
        Recorder(mode="torch", save_mode=save_mode, models={"dense": _tiny_model()}).load(tmp_path / "out" / "cnn.json")
