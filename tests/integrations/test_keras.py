"""epochal.integrations.keras: a real Keras 3 fit (torch backend) recorded into a real store."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")

import epochal
from epochal.integrations.keras import EpochalCallback

SAMPLES, BATCH = 64, 16
STEPS = SAMPLES // BATCH  # batches per epoch


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, 4)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, SAMPLES), 3)
    return x, y


def _model(metrics=("accuracy",), **compile_args):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")], name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy", metrics=list(metrics),
                  **compile_args)
    return model


def _fit(model, callback, epochs=2):
    x, y = _data()
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, validation_data=(x[:16], y[:16]), verbose=0,
                     callbacks=[callback])


def _only_run(path):
    with epochal.Store(path) as store:
        (record,) = store.runs()
        series = {key: store.history(record, key) for key in store.keys(record)}
    return record, series


def test_a_fit_records_batches_epochs_and_config_as_the_trainer_names_them(tmp_path):
    model = _model()
    callback = EpochalCallback(project="keras", name="tiny", config={"batch_size": BATCH}, store=tmp_path / "s")
    history = _fit(model, callback)

    record, series = _only_run(tmp_path / "s")
    assert (record.project, record.name, record.status) == ("keras", "tiny", "finished")
    assert (record.steps, record.epochs) == (2 * STEPS, 2)
    assert set(series) == {"train/loss", "train/accuracy", "train/epoch_loss", "valid/loss", "valid/accuracy", "lr"}
    # Each batch at its step, within its epoch; epoch values at the step after the epoch's last batch.
    batches = series["train/loss"]
    assert batches.steps.tolist() == list(range(2 * STEPS))
    assert batches.epochs.tolist() == [0] * STEPS + [1] * STEPS
    for key, keras_key in (("train/epoch_loss", "loss"), ("valid/loss", "val_loss"),
                           ("valid/accuracy", "val_accuracy")):
        assert series[key].steps.tolist() == [STEPS, 2 * STEPS]
        assert series[key].epochs.tolist() == [0, 1]
        np.testing.assert_allclose(series[key].values, history.history[keras_key], rtol=1e-6)
    # train/accuracy is logged per batch; each epoch's last batch holds the epoch's value.
    accuracy = series["train/accuracy"]
    assert accuracy.steps.tolist() == list(range(2 * STEPS))
    np.testing.assert_allclose(accuracy.values[STEPS - 1::STEPS], history.history["accuracy"], rtol=1e-6)
    assert series["lr"].steps.tolist() == [0, STEPS] and series["lr"].epochs.tolist() == [0, 1]
    np.testing.assert_allclose(series["lr"].values, [0.01, 0.01], rtol=1e-6)

    config = record.config
    assert config["batch_size"] == BATCH
    assert config["keras.epochs"] == 2 and config["keras.steps_per_epoch"] == STEPS
    assert config["keras.backend"] == "torch" and config["keras.version"] == keras.__version__
    assert config["keras.model"] == {"name": "tiny", "class": "Sequential", "parameters": model.count_params()}
    assert config["keras.loss"] == "categorical_crossentropy"
    assert config["keras.optimizer.name"] == "adam"
    assert config["keras.optimizer.learning_rate"] == pytest.approx(0.01)


def test_a_second_fit_with_the_same_callback_continues_the_run(tmp_path):
    model = _model()
    callback = EpochalCallback(store=tmp_path / "s")
    _fit(model, callback)
    first = callback.run
    assert first.finished
    history = _fit(model, callback, epochs=1)

    record, series = _only_run(tmp_path / "s")
    assert record.id == first.id and record.status == "finished"
    assert (record.steps, record.epochs) == (3 * STEPS, 3)
    assert series["train/loss"].steps.tolist() == list(range(3 * STEPS))
    assert series["train/epoch_loss"].steps.tolist() == [STEPS, 2 * STEPS, 3 * STEPS]
    assert series["train/epoch_loss"].epochs.tolist() == [0, 1, 2]
    assert series["train/epoch_loss"].values[-1] == pytest.approx(history.history["loss"][0], rel=1e-6)
    assert record.config["keras.epochs"] == 1  # the latest fit's settings


def test_a_run_given_stays_open_and_log_batches_false_logs_per_epoch(tmp_path):
    with epochal.start(project="mine", store=tmp_path / "s") as run:
        history = _fit(_model(), EpochalCallback(run=run, log_batches=False))
        assert not run.finished
        run.log({"after": 1.0})
    record, series = _only_run(tmp_path / "s")
    assert record.status == "finished" and record.project == "mine"
    assert set(series) == {"train/accuracy", "train/epoch_loss", "valid/loss", "valid/accuracy", "lr", "after"}
    assert series["train/accuracy"].steps.tolist() == [STEPS, 2 * STEPS]
    np.testing.assert_allclose(series["train/accuracy"].values, history.history["accuracy"], rtol=1e-6)


def test_steps_count_batches_when_keras_runs_several_per_call(tmp_path):
    # With steps_per_execution=2 (JAX and TensorFlow; torch refuses it) Keras reports every second batch.
    model = _model()
    callback = EpochalCallback(store=tmp_path / "s")
    callback.set_model(model)
    callback.set_params({"epochs": 1, "steps": STEPS, "verbose": 0})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_batch_end(1, {"loss": 1.0})
    callback.on_train_batch_end(3, {"loss": 0.5})
    callback.on_epoch_end(0, {"loss": 0.75})
    callback.on_train_end()
    record, series = _only_run(tmp_path / "s")
    assert record.steps == STEPS
    assert series["train/loss"].steps.tolist() == [1, 3]  # the last batch of each call
    assert series["train/epoch_loss"].steps.tolist() == [STEPS]


class _Words(keras.metrics.Metric):
    """A metric whose result is text, which Keras passes on as it is."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        pass

    def result(self):
        return "words"


def test_values_epochal_cannot_store_are_skipped_with_one_warning_per_key(tmp_path):
    metrics = ("accuracy", _Words(name="words"), keras.metrics.F1Score(average=None))  # a string, an array of 3
    callback = EpochalCallback(store=tmp_path / "s")
    with pytest.warns(epochal.EpochalWarning) as caught:
        _fit(_model(metrics=metrics), callback)
    warned = sorted(str(w.message).split("'")[1] for w in caught if issubclass(w.category, epochal.EpochalWarning))
    assert warned == ["train/f1_score", "train/words", "valid/f1_score", "valid/words"]
    assert "shape (3,)" in next(str(w.message) for w in caught if "train/f1_score" in str(w.message))

    record, series = _only_run(tmp_path / "s")
    assert record.status == "finished"
    assert set(series) == {"train/loss", "train/accuracy", "train/epoch_loss", "valid/loss", "valid/accuracy", "lr"}
    assert len(series["train/loss"]) == 2 * STEPS


def test_constructing_the_callback_touches_nothing(tmp_path):
    EpochalCallback(project="p", store=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_a_run_and_the_arguments_to_start_one_are_refused_together(tmp_path):
    with epochal.start(store=tmp_path / "s") as run, pytest.raises(ValueError, match="either run= or the arguments"):
        EpochalCallback(name="other", run=run)
    with pytest.raises(TypeError, match="takes an epochal Run"):
        EpochalCallback(run="swift-otter-3")


_FAILING_FIT = """
    import os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import keras, numpy as np
    from epochal.integrations.keras import EpochalCallback

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((64, 4), "float32")
    model.fit(x, np.zeros((64, 3), "float32"), batch_size=16, epochs=2, verbose=0,
              callbacks=[EpochalCallback(store=sys.argv[1]), Boom()])
"""


def test_a_fit_that_raises_leaves_the_run_failed_not_running(tmp_path):
    source = Path(epochal.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_FAILING_FIT), str(tmp_path / "s")], env=env,
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "RuntimeError: boom" in done.stderr
    with epochal.Store(tmp_path / "s") as store:
        (record,) = store.runs()
        assert store.stored_record(record.id).status == "failed"
        assert record.steps == STEPS and len(store.history(record, "train/loss")) == STEPS


def test_importing_without_keras_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "epochal.integrations.keras")
    monkeypatch.setitem(sys.modules, "keras", None)  # as if Keras were not installed
    with pytest.raises(ImportError, match=r"pip install epochal\[keras\]"):
        importlib.import_module("epochal.integrations.keras")


def test_importing_with_keras_2_names_the_supported_range(monkeypatch):
    monkeypatch.delitem(sys.modules, "epochal.integrations.keras")
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(__version__="2.15.0"))
    with pytest.raises(ImportError, match=r"keras>=3\.0, found Keras 2\.15\.0"):
        importlib.import_module("epochal.integrations.keras")
