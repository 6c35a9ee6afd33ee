"""epochal import ttv: a Time-Travelling Visualizer training_dynamic folder becomes a run with recorded dynamics."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import epochal
from epochal.cli import main
from epochal.dynamics import DynamicsError, sprites
from epochal.dynamics.files import CLASSES_FILE, FIT_FILE, FOLDER, SAMPLES_FILE, epoch_file, read_json, recorded_epochs
from epochal.interop.ttv import import_ttv

N_TRAIN = 1400
EPOCHS = (1, 2, 3)
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

MODEL = """
import torch
from torch import nn

from digits_widths import HIDDEN  # a sibling of model.py


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, HIDDEN)
        self.out = nn.Linear(HIDDEN, 10)

    def feature(self, x):
        return torch.relu(self.hidden(x.reshape(len(x), -1)))

    def prediction(self, h):
        return self.out(h)

    def forward(self, x):
        return self.prediction(self.feature(x))
"""

SECTION = {
    "SETTING": "normal",
    "CLASSES": CLASSES,
    "GPU": "0",
    "EPOCH_START": 1,
    "EPOCH_END": 3,
    "EPOCH_PERIOD": 1,
    "EPOCH_NAME": "Epoch",
    "TRAINING": {"NET": "DigitsNet", "train_num": N_TRAIN, "test_num": 397},
    "VISUALIZATION": {
        "BOUNDARY": {"B_N_EPOCHS": 1, "L_BOUND": 0.4},
        "BATCH_SIZE": 1000,
        "LAMBDA1": 1.0,
        "LAMBDA2": 0.3,
        "ENCODER_DIMS": [32, 64, 64, 2],
        "DECODER_DIMS": [2, 48, 64, 32],
        "N_NEIGHBORS": 15,
        "MAX_EPOCH": 20,
        "S_N_EPOCHS": 10,
        "PATIENT": 3,
        "RESOLUTION": 300,
        "VIS_MODEL_NAME": "vismodel",
    },
}


def load_model_class() -> type:
    """DigitsNet, built from the same source the folder gets."""
    namespace = {"__name__": "digits_model"}
    exec(MODEL.replace("from digits_widths import HIDDEN  # a sibling of model.py", "HIDDEN = 32"), namespace)  # noqa: S102
    return namespace["DigitsNet"]


@pytest.fixture(scope="module")
def trained():
    """Digits, 1400 training and 397 testing samples, and the state dicts of a 64-32-10 MLP after 3 epochs."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(0)
    model = load_model_class()()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), batch_size=64,
                                         shuffle=True, generator=torch.Generator().manual_seed(0))
    states = {}
    for epoch in EPOCHS:
        for xb, yb in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        states[epoch] = {key: value.clone() for key, value in model.state_dict().items()}
    return types.SimpleNamespace(x=x[:N_TRAIN], y=y[:N_TRAIN], xt=x[N_TRAIN:], yt=y[N_TRAIN:], states=states)


def write_folder(root: Path, trained, *, config=None, model=MODEL, sprites_for=None, image_inputs=False,
                 count=None) -> Path:
    """A training_dynamic folder as TTV's README lays it out (and TTV's tools write it)."""
    n_train, n_test = (N_TRAIN, len(trained.yt)) if count is None else count
    (root / "Model").mkdir(parents=True)
    (root / "Model" / "model.py").write_text(textwrap.dedent(model))
    (root / "Model" / "digits_widths.py").write_text("HIDDEN = 32\n")
    for epoch, state in trained.states.items():
        (root / "Model" / f"Epoch_{epoch}").mkdir()
        torch.save(state, root / "Model" / f"Epoch_{epoch}" / "subject_model.pth")
    for folder, prefix, x, y in (("Training_data", "training", trained.x[:n_train], trained.y[:n_train]),
                                 ("Testing_data", "testing", trained.xt[:n_test], trained.yt[:n_test])):
        (root / folder).mkdir()
        torch.save(x.reshape(-1, 1, 8, 8) if image_inputs else x, root / folder / f"{prefix}_dataset_data.pth")
        torch.save(y, root / folder / f"{prefix}_dataset_label.pth")
    if sprites_for is not None:
        pixels = digit_pixels(trained, n_train, n_test)
        (root / "sprites").mkdir()
        for i in sprites_for:
            Image.fromarray(pixels[i]).save(root / "sprites" / f"{i}.png")
    if config is not False:
        (root / "config.json").write_text(json.dumps(config or {"DVI": SECTION, "TimeVis": {**SECTION, "GPU": "1"}}))
    return root


def digit_pixels(trained, n_train=N_TRAIN, n_test=None) -> np.ndarray:
    x = torch.cat([trained.x[:n_train], trained.xt[:n_test]])
    return np.rint(x.numpy().reshape(-1, 8, 8) * 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path, trained):
    """The whole folder: every sample has a sprite, config.json has two methods."""
    return write_folder(tmp_path / "training_dynamic", trained, sprites_for=range(N_TRAIN + len(trained.yt)))


@pytest.fixture
def small(tmp_path, trained):
    """30 training and 10 testing samples, no sprites: quick to import, for the errors."""
    return write_folder(tmp_path / "small", trained, config={"DVI": SECTION}, count=(30, 10))


def dynamics_of(store, run_id) -> Path:
    return Path(store.run(run_id).path) / FOLDER


def assert_recorded(folder: Path, trained, epochs=EPOCHS, n_train=N_TRAIN, n_test=None):
    """Each epoch's representations are DigitsNet.feature(x) with that epoch's weights, in float16."""
    x = torch.cat([trained.x[:n_train], trained.xt[:n_test]])
    y = torch.cat([trained.y[:n_train], trained.yt[:n_test]])
    assert recorded_epochs(folder) == list(epochs)
    with np.load(folder / SAMPLES_FILE) as samples:
        np.testing.assert_array_equal(samples["labels"], y.numpy())
        n_test = len(y) - n_train
        assert samples["split"].tolist() == ["train"] * n_train + ["test"] * n_test
        np.testing.assert_array_equal(samples["indices"], np.r_[np.arange(n_train), np.arange(n_test)])
    model = load_model_class()()
    for epoch in epochs:
        model.load_state_dict(trained.states[epoch])
        with torch.no_grad():
            features = model.feature(x)
            logits = model.prediction(features)
        with np.load(epoch_file(folder, epoch)) as recorded:
            assert recorded["representations"].dtype == np.float16
            np.testing.assert_allclose(recorded["representations"].astype(np.float32), features.numpy(),
                                       rtol=1e-3, atol=1e-3)
            np.testing.assert_allclose(recorded["logits"], logits.numpy(), rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(recorded["predictions"], logits.argmax(1).numpy())


# -- a whole folder --------------------------------------------------------------------------------


def test_import_records_every_epoch_with_sprites_classes_and_fit_settings(folder, trained, store):
    run_id = import_ttv(folder, store, method="DVI", trust=True)
    assert "digits_widths" not in sys.modules  # model.py's sibling, loaded for the import only
    record = store.run(run_id)
    assert (record.name, record.project, record.status, record.epochs) == ("training_dynamic", "ttv", "finished", 3)
    assert record.config.to_dict() == SECTION
    assert "DVI" in record.description
    dynamics = dynamics_of(store, run_id)
    assert_recorded(dynamics, trained)
    np.testing.assert_array_equal(sprites(dynamics), digit_pixels(trained))
    assert read_json(dynamics / CLASSES_FILE) == CLASSES
    assert read_json(dynamics / FIT_FILE) == {
        "encoder_dims": [64, 64], "decoder_dims": [48, 64], "n_neighbors": 15, "reconstruction_weight": 1.0,
        "max_epochs": 20, "patience": 3, "resolution": 300,
    }  # LAMBDA2, L_BOUND and BATCH_SIZE mean something else in epochal: not used
    accuracy = store.history(record, "test/accuracy")
    assert accuracy.steps.tolist() == [1, 2, 3] and accuracy.values[-1] > 0.85
    assert store.history(record, "train/loss").values[-1] < store.history(record, "train/loss").values[0]
    assert set(store.keys(record)) == {"train/loss", "train/accuracy", "test/loss", "test/accuracy"}


def test_the_cli_imports_a_folder(folder, trained, tmp_path):
    target = tmp_path / "cli-store"
    result = subprocess.run(
        [sys.executable, "-m", "epochal", "import", "ttv", str(folder), "--method", "TimeVis", "--name", "digits",
         "--project", "viz", "--store", str(target), "--device", "cpu", "--trust"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONWARNINGS": "error::UserWarning"},
    )
    assert result.returncode == 0, result.stderr
    assert "config.json's 'TimeVis': used CLASSES" in result.stdout
    assert "not used VISUALIZATION.LAMBDA2 (the seed's weight of the temporal loss" in result.stdout
    assert "prediction head: affine (one Linear)" in result.stdout
    assert "as run digits (" in result.stdout and "3 epochs (1..3), 1,400 training and 397 testing" in result.stdout
    assert result.stderr.count("recorded (") == 3
    with epochal.Store(target) as store:
        (record,) = store.runs()
        assert (record.name, record.project, record.status) == ("digits", "viz", "finished")
        assert record.config.to_dict()["GPU"] == "1"  # the TimeVis section
        dynamics = dynamics_of(store, record.id)
        assert_recorded(dynamics, trained)
        np.testing.assert_array_equal(sprites(dynamics), digit_pixels(trained))
        assert read_json(dynamics / CLASSES_FILE) == CLASSES


def test_the_cli_error_is_one_line_on_stderr_and_nothing_is_created(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "epochal", "import", "ttv", str(tmp_path / "nothing"), "--store", str(tmp_path / "s"),
         "--trust"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"epochal: TTV training_dynamic folder '{tmp_path / 'nothing'}' does not exist\n"
    assert not (tmp_path / "s").exists()


def test_ttv_options_are_refused_for_tensorboard(tmp_path, capsys):
    assert main(["import", "tensorboard", str(tmp_path), "--method", "DVI", "--store", str(tmp_path / "s")]) == 2
    assert "--method only apply to `epochal import ttv`" in capsys.readouterr().err


def test_import_has_help_for_both_forms(capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = capsys.readouterr().out
    assert "{tensorboard,ttv} PATH" in out and "epochal import ttv FOLDER" in out and "--method NAME" in out


# -- variants --------------------------------------------------------------------------------------


def test_without_config_every_epoch_folder_and_sprites_from_image_inputs(tmp_path, trained, store):
    root = write_folder(tmp_path / "bare", trained, config=False, image_inputs=True, count=(50, 20))
    shutil.rmtree(root / "Model" / "Epoch_2")
    run_id = import_ttv(root, store, name="bare run", project="other", trust=True)
    record = store.run(run_id)
    assert (record.name, record.project, record.config.to_dict()) == ("bare run", "other", {})
    dynamics = dynamics_of(store, run_id)
    assert_recorded(dynamics, trained, epochs=(1, 3), n_train=50, n_test=20)
    np.testing.assert_array_equal(sprites(dynamics), digit_pixels(trained, 50, 20))  # min 0, max 1: x * 255
    assert not (dynamics / CLASSES_FILE).exists() and not (dynamics / FIT_FILE).exists()


def test_a_flat_config_the_epoch_period_and_a_few_sprites(tmp_path, trained, store):
    section = {**SECTION, "EPOCH_START": 1, "EPOCH_END": 3, "EPOCH_PERIOD": 2, "VISUALIZATION": {"LAMBDA1": 2.0}}
    root = write_folder(tmp_path / "flat", trained, config=section, count=(30, 10), sprites_for=[0, 3, 39])
    with pytest.warns(epochal.EpochalWarning, match=r"no image for 37 of 40 samples \(such as 1.png\)"):
        run_id = import_ttv(root, store, trust=True)
    dynamics = dynamics_of(store, run_id)
    assert recorded_epochs(dynamics) == [1, 3]
    assert read_json(dynamics / FIT_FILE) == {"reconstruction_weight": 2.0}
    images, pixels = sprites(dynamics), digit_pixels(trained, 30, 10)
    np.testing.assert_array_equal(images[[0, 3, 39]], pixels[[0, 3, 39]])
    assert (np.delete(images, [0, 3, 39], axis=0) == 0).all()


def test_sprites_of_mixed_sizes_and_colours(tmp_path, trained, store):
    root = write_folder(tmp_path / "mixed", trained, config=False, count=(3, 1))
    (root / "Sprites").mkdir()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(root / "Sprites" / "0.png")
    Image.new("L", (64, 64), 128).save(root / "Sprites" / "1.png")
    Image.new("RGBA", (128, 128), (0, 0, 255, 255)).save(root / "Sprites" / "2.png")
    Image.new("L", (40, 20), 255).save(root / "Sprites" / "3.png")
    images = sprites(dynamics_of(store, import_ttv(root, store, trust=True)))
    assert images.shape == (4, 32, 32, 3)  # the common size; colour because some have it
    assert images[0].tolist()[5][5] == [255, 0, 0] and images[1].tolist()[5][5] == [128, 128, 128]
    assert images[2].tolist()[5][5] == [0, 0, 255] and (images[3] == 255).all()


def test_net_picks_a_factory_and_checkpoints_may_be_more_than_tensors(tmp_path, trained, store):
    model = MODEL + "\n\nclass Unused(DigitsNet):\n    pass\n\n\ndef build_digits():\n    return DigitsNet()\n"
    section = {**SECTION, "TRAINING": {"NET": "BUILD_DIGITS"}}  # TTV's configs do not mind the case
    root = write_folder(tmp_path / "factory", trained, config={"DVI": section}, model=model, count=(30, 10))
    state = trained.states[1]
    torch.save(collections.UserDict({f"module.{k}": v for k, v in state.items()}),  # a pickle, from DataParallel
               root / "Model" / "Epoch_1" / "subject_model.pth")
    run_id = import_ttv(root, store, trust=True)
    assert_recorded(dynamics_of(store, run_id), trained, n_train=30, n_test=10)


def test_the_only_class_with_feature_and_prediction_is_chosen(tmp_path, trained, store):
    model = MODEL + "\n\nclass Helper(nn.Module):\n    pass\n"
    section = {**SECTION, "TRAINING": {"NET": "resnet18"}}  # names nothing in model.py
    root = write_folder(tmp_path / "only", trained, config={"DVI": section}, model=model, count=(30, 10))
    assert_recorded(dynamics_of(store, import_ttv(root, store, trust=True)), trained, n_train=30, n_test=10)


def test_a_failure_mid_way_marks_the_run_failed_and_keeps_the_recorded_epochs(small, trained, store):
    bad = {**trained.states[3], "hidden.weight": torch.zeros(16, 64)}
    torch.save(bad, small / "Model" / "Epoch_3" / "subject_model.pth")
    with pytest.raises(DynamicsError, match=r"importing epoch 3 of .* failed: DynamicsError: the weights in "
                                            r"'.*Epoch_3.subject_model.pth' do not fit DigitsNet: .*size mismatch"
                                            r".*is marked failed, epochs 1, 2 are kept"):
        import_ttv(small, store, trust=True)
    (record,) = store.runs()
    assert record.status == "failed"
    assert_recorded(dynamics_of(store, record.id), trained, epochs=(1, 2), n_train=30, n_test=10)


# -- what is missing -------------------------------------------------------------------------------


def refused(root, match, store_dir, **kwargs):
    with pytest.raises(DynamicsError, match=match):
        import_ttv(root, store_dir, **{"trust": True, **kwargs})
    assert not store_dir.exists()  # checked before anything was created


def test_a_missing_folder(tmp_path, store_dir):
    refused(tmp_path / "nowhere", r"TTV training_dynamic folder '.*nowhere' does not exist", store_dir)
    (tmp_path / "file").write_text("")
    refused(tmp_path / "file", "is a file, not a folder", store_dir)


def test_a_missing_model_py(small, store_dir):
    (small / "Model" / "model.py").unlink()
    refused(small, r"no subject model in '.*small': '.*small.Model.model.py' is missing", store_dir)


def test_a_model_without_feature_and_prediction(small, store_dir):
    (small / "Model" / "model.py").write_text("from torch import nn\n\nclass Net(nn.Module):\n    pass\n")
    refused(small, r"'.*model.py' has no nn.Module class with feature\(x\) and prediction\(h\) methods "
                   r"\(TRAINING.NET 'DigitsNet' names nothing in it, and it has the nn.Module classes Net\)", store_dir)


def test_several_candidate_models_or_one_that_needs_arguments(small, store_dir):
    config = json.loads((small / "config.json").read_text())
    del config["DVI"]["TRAINING"]["NET"]
    (small / "config.json").write_text(json.dumps(config))
    model = (small / "Model" / "model.py").read_text()
    (small / "Model" / "model.py").write_text(model + "\n\nclass Other(nn.Module):\n"
                                              "    feature = prediction = lambda self, x: x\n")
    refused(small, r"several nn.Module classes with feature and prediction \(DigitsNet, Other\)", store_dir)
    (small / "Model" / "model.py").write_text(model.replace("def __init__(self):", "def __init__(self, width):"))
    refused(small, r"cannot build the subject model with DigitsNet\(\) from '.*model.py': TypeError: .*width", store_dir)


def test_a_model_py_that_fails_to_load(small, store_dir):
    (small / "Model" / "digits_widths.py").unlink()
    refused(small, r"cannot load '.*model.py': ModuleNotFoundError: No module named 'digits_widths'", store_dir)


def test_no_epoch_folders_or_a_missing_weights_file(small, store_dir):
    (small / "Model" / "Epoch_2" / "subject_model.pth").unlink()
    refused(small, r"the epochs to import \(1, 2, 3\) need weights that are missing: '.*Epoch_2.subject_model.pth' "
                   r"\(Epoch_N folders: 1, 2, 3\)", store_dir)
    for epoch in EPOCHS:
        shutil.rmtree(small / "Model" / f"Epoch_{epoch}")
    refused(small, r"no Epoch_N folders in '.*small.Model'", store_dir)


def test_missing_data_files_are_all_named(small, store_dir):
    (small / "Testing_data" / "testing_dataset_label.pth").unlink()
    (small / "Training_data" / "training_dataset_data.pth").unlink()
    refused(small, r"lacks '.*training_dataset_data.pth', '.*testing_dataset_label.pth'$", store_dir)


def test_labels_that_do_not_match_the_data(small, trained, store_dir):
    torch.save(trained.yt[:9], small / "Testing_data" / "testing_dataset_label.pth")
    refused(small, r"'.*testing_dataset_data.pth' holds 10 samples but '.*testing_dataset_label.pth' 9 labels",
            store_dir)


def test_the_config_must_have_the_method(folder, small, store_dir):
    refused(folder, r"config.json' has several visualization methods: DVI, TimeVis; name the one to import with "
                    r"--method", store_dir)
    refused(small, r"config.json' has no method 'Trustvis'; it has: DVI", store_dir, method="Trustvis")
    (small / "config.json").write_text("{\"DVI\": {,}")
    refused(small, r"cannot read '.*config.json' as JSON", store_dir)
    (small / "config.json").write_text("{\"DVI\": 1}")
    refused(small, r"config.json' has no method sections", store_dir)
    (small / "config.json").unlink()
    refused(small, r"method 'DVI' was asked for, but '.*config.json' does not exist", store_dir, method="DVI")


def test_bad_settings_are_named(small, store_dir):
    for section, match in [
        ({**SECTION, "EPOCH_PERIOD": 0}, "EPOCH_PERIOD is 0; expected a whole number from 1 to 1,000,000"),
        ({**SECTION, "EPOCH_START": 5, "EPOCH_END": 9, "EPOCH_PERIOD": None} | {}, "EPOCH_PERIOD is None"),
        ({**SECTION, "CLASSES": "digits"}, "CLASSES is 'digits'; expected a list of class names"),
        ({**SECTION, "VISUALIZATION": {"N_NEIGHBORS": "many"}},
         r"DVI.VISUALIZATION.N_NEIGHBORS is 'many'; expected a whole number above 0"),
        ({**SECTION, "VISUALIZATION": {"ENCODER_DIMS": 2}}, r"DVI.VISUALIZATION.ENCODER_DIMS is 2; expected the layer"),
    ]:
        (small / "config.json").write_text(json.dumps({"DVI": section}))
        refused(small, match, store_dir)
    section = {k: v for k, v in SECTION.items() if k != "EPOCH_PERIOD"} | {"EPOCH_START": 5, "EPOCH_END": 9}
    (small / "config.json").write_text(json.dumps({"DVI": section}))
    refused(small, "config.json asks for epochs 5 to 9 but '.*Model' has Epoch_N folders only for 1, 2, 3", store_dir)


def test_labels_beyond_the_model_classes(small, store_dir):
    torch.save(torch.full((10,), 12), small / "Testing_data" / "testing_dataset_label.pth")
    refused(small, r"labels in '.*small' run up to 12 but the model's prediction\(h\) gives 10 classes", store_dir)


def test_samples_the_model_cannot_take(small, trained, store_dir):
    for folder, prefix, x in (("Training_data", "training", trained.x[:30]), ("Testing_data", "testing", trained.xt[:10])):
        torch.save(x[:, :60], small / folder / f"{prefix}_dataset_data.pth")
    refused(small, r"the subject model of '.*model.py' fails on the samples of '.*small' \(shape \(60,\), "
                   r"torch.float32\): RuntimeError: .*", store_dir)


def test_a_damaged_weights_file(small, store_dir):
    (small / "Model" / "Epoch_1" / "subject_model.pth").write_bytes(b"not a checkpoint")
    refused(small, r"cannot load '.*Epoch_1.subject_model.pth': UnpicklingError: ", store_dir)


def test_model_py_siblings_come_from_its_folder_and_sys_modules_is_left_as_it_was(small, store, monkeypatch):
    stale = types.ModuleType("digits_widths")  # another folder's sibling of the same name, imported before
    stale.HIDDEN = 5
    monkeypatch.setitem(sys.modules, "digits_widths", stale)
    import_ttv(small, store, trust=True)  # a hidden width of 5 would not fit the weights
    assert sys.modules["digits_widths"] is stale


def test_a_folder_written_by_the_compat_summary_writer(tmp_path, trained, store):
    from epochal.compat.ttv import SummaryWriter

    x, y = trained.x[:40].reshape(-1, 1, 8, 8), trained.y[:40]
    xt, yt = trained.xt[:10].reshape(-1, 1, 8, 8), trained.yt[:10]
    root = tmp_path / "written"
    with SummaryWriter(root, 16, 0, store=store) as writer:
        writer.write_meta_data(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16),
                               torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=16))
        for epoch in EPOCHS:
            writer.write_checkpoint(trained.states[epoch], epoch, epoch - 1)
    (root / "Model" / "model.py").write_text(MODEL)
    (root / "Model" / "digits_widths.py").write_text("HIDDEN = 32\n")
    dynamics = dynamics_of(store, import_ttv(root, store, trust=True))
    assert_recorded(dynamics, trained, n_train=40, n_test=10)
    np.testing.assert_array_equal(sprites(dynamics), digit_pixels(trained, 40, 10))


# -- trust and crafted folders ---------------------------------------------------------------------


class _Payload:
    """Unpickled in full, this creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def crafted(small, tmp_path):
    """model.py and a weights file that each leave a file behind if they run."""
    ran, unpickled = tmp_path / "model-py-ran", tmp_path / "weights-unpickled"
    model = (small / "Model" / "model.py").read_text()
    (small / "Model" / "model.py").write_text(f"open({str(ran)!r}, 'w').close()\n" + model)
    torch.save({"state": _Payload(unpickled)}, small / "Model" / "Epoch_1" / "subject_model.pth")
    return ran, unpickled


def test_without_trust_nothing_of_the_folder_runs_and_nothing_is_created(small, tmp_path, store_dir, capsys):
    ran, unpickled = crafted(small, tmp_path)
    with pytest.raises(DynamicsError) as info:
        import_ttv(small, store_dir)
    model_file = small / "Model" / "model.py"
    assert str(info.value) == (
        f"importing '{small}' runs its '{model_file}' as Python and unpickles its weight and data files that hold "
        "more than tensors, with your rights; pass --trust (trust=True) if you trust this folder")
    assert main(["import", "ttv", str(small), "--store", str(store_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"epochal: {info.value}\n"
    assert not ran.exists() and not unpickled.exists() and not store_dir.exists()


def test_with_trust_model_py_runs_as_documented(small, tmp_path, store):
    ran, _ = crafted(small, tmp_path)
    (small / "Model" / "Epoch_1" / "subject_model.pth").unlink()
    with pytest.raises(DynamicsError, match="need weights that are missing"):
        import_ttv(small, store, trust=True)
    assert not ran.exists()  # the folder is checked before model.py runs
    torch.save({}, small / "Model" / "Epoch_1" / "subject_model.pth")
    with pytest.raises(DynamicsError, match="do not fit DigitsNet"):
        import_ttv(small, store, trust=True)
    assert ran.exists()


def test_trust_is_in_the_help_and_refused_for_tensorboard(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = capsys.readouterr().out
    assert "--trust" in out and "needs --trust: without it nothing of the folder runs" in out
    assert main(["import", "tensorboard", str(tmp_path), "--trust", "--store", str(tmp_path / "s")]) == 2
    assert "--trust only apply to `epochal import ttv`" in capsys.readouterr().err


@pytest.mark.parametrize("key, value, expected", [
    ("EPOCH_END", 10**10, r"EPOCH_END is 10000000000; expected a whole number from 0 to 1,000,000"),
    ("EPOCH_START", -1, r"EPOCH_START is -1; expected a whole number from 0 to 1,000,000"),
    ("EPOCH_PERIOD", 10**12, r"EPOCH_PERIOD is 1000000000000; expected a whole number from 1 to 1,000,000"),
    ("EPOCH_END", 1_000_000, r"the epochs to import \(1 to 1000000 \(1000000 epochs\)\) need weights that are "
                             r"missing: .*Epoch_4.* and 999992 more"),
    ("RESOLUTION", 10**9, r"DVI.VISUALIZATION.RESOLUTION is 1000000000; expected a whole number from 2 to 1,000"),
    ("ENCODER_DIMS", [64, 10**9, 2], r"DVI.VISUALIZATION.ENCODER_DIMS is \[64, 1000000000, 2\]; expected at most 16 "
                                     r"layer widths, each a whole number from 1 to 16,384"),
    ("N_NEIGHBORS", 10**9, r"N_NEIGHBORS is 1000000000; expected a whole number from 2 to 10,000"),
    ("LAMBDA1", 1e300, r"LAMBDA1 is 1e\+300; expected a number from 0 to 1e\+06"),
])
def test_settings_out_of_range_are_refused_quickly(small, store_dir, capsys, key, value, expected):
    section = json.loads((small / "config.json").read_text())["DVI"]
    if key.startswith("EPOCH"):
        section[key] = value
    else:
        section["VISUALIZATION"][key] = value
    (small / "config.json").write_text(json.dumps({"DVI": section}))
    refused(small, expected, store_dir)
    assert main(["import", "ttv", str(small), "--trust", "--store", str(store_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err and not store_dir.exists()


def test_a_fit_json_out_of_range_is_refused_by_the_fit(small, store):
    from epochal.dynamics import fit

    run_id = import_ttv(small, store, trust=True)
    (dynamics_of(store, run_id) / FIT_FILE).write_text(json.dumps({"resolution": 10**9}))
    with pytest.raises(DynamicsError, match=r"projection setting resolution is 1000000000; expected a whole number "
                                            r"from 2 to 1,000"):
        fit(store.run(run_id))


def test_an_epoch_folder_beyond_the_range(small, store_dir):
    (small / "Model" / "Epoch_99999999999").mkdir()
    refused(small, r"'.*Model' has the folder Epoch_99999999999; epochs run from 0 to 1,000,000", store_dir)


# -- the prediction head: backgrounds, class colours and PPR as for a native run ------------------

DEEP_MODEL = """
import torch
from torch import nn


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 10))

    def feature(self, x):
        return torch.relu(self.hidden(x.reshape(len(x), -1)))

    def prediction(self, h):
        return self.classifier(h)

    def forward(self, x):
        return self.prediction(self.feature(x))
"""
#: prediction(h) with a layer epochal cannot keep as data.
SOFTPLUS_MODEL = DEEP_MODEL.replace("nn.ReLU()", "nn.Softplus()")
QUICK_FIT = {"layout_iterations": 120, "max_epochs": 3, "resolution": 32}


def trained_states(source: str, x, y) -> dict[int, dict]:
    namespace = {"__name__": "digits_model"}
    exec(source, namespace)  # noqa: S102
    torch.manual_seed(0)
    model = namespace["DigitsNet"]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    states = {}
    for epoch in EPOCHS:
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[start:start + 64]), y[start:start + 64]).backward()
            optimizer.step()
        states[epoch] = {key: value.clone() for key, value in model.state_dict().items()}
    return states


@pytest.fixture(scope="module")
def heads(trained):
    """The same digits with three subject models: a Linear head, a two-layer head, a head with Softplus."""
    return {"linear": (MODEL, trained.states),
            "two-layer": (DEEP_MODEL, trained_states(DEEP_MODEL, trained.x, trained.y)),
            "softplus": (SOFTPLUS_MODEL, trained_states(SOFTPLUS_MODEL, trained.x, trained.y))}


def head_folder(tmp_path, trained, heads, kind) -> Path:
    model, states = heads[kind]
    subject = types.SimpleNamespace(**{**vars(trained), "states": states})
    return write_folder(tmp_path / kind, subject, model=model, count=(400, 100))


@pytest.mark.parametrize("kind", ["linear", "two-layer"])
def test_an_imported_head_gives_backgrounds_one_colour_per_class_and_ppr(tmp_path, trained, heads, store, kind):
    from epochal.dynamics import evaluate, fit

    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a head it can keep: no warning
        run_id = import_ttv(head_folder(tmp_path, trained, heads, kind), store, method="TimeVis", trust=True,
                            notes=notes.append)
    expected = "affine (one Linear), kept as its weight and bias" if kind == "linear" else \
        "Dropout, Linear, ReLU, Linear, kept as these layers and their tensors"
    assert f"prediction head: {expected} at each epoch" in notes
    record = store.run(run_id)
    projection = fit(record, **QUICK_FIT)
    assert projection.heads_ is not None
    folder = Path(record.path) / FOLDER / "projection"
    meta = read_json(folder / "projection.json")
    assert meta["backgrounds"] and meta["classes"] == 10 and len(set(meta["colors"])) == 10
    assert len(list(folder.glob("background-*.png"))) == 3
    report = evaluate(record)
    assert all(report["epochs"][str(e)][s]["ppr"] > 0.5 for e in EPOCHS for s in ("train", "test"))


def test_the_import_says_which_config_keys_it_used_and_which_not(folder, store):
    notes = []
    import_ttv(folder, store, method="DVI", trust=True, notes=notes.append)
    used, ignored = notes[0], notes[1]
    assert used.startswith("config.json's 'DVI': used CLASSES -> the class names")
    assert "VISUALIZATION.N_NEIGHBORS -> n_neighbors 15" in used and "LAMBDA2" not in used
    assert "VISUALIZATION.LAMBDA2 (the seed's weight of the temporal loss" in ignored
    assert "VISUALIZATION.BOUNDARY.L_BOUND (bounds the mixing ratio" in ignored
    assert "VISUALIZATION.S_N_EPOCHS (edge-sampling epochs" in ignored and "GPU (" in ignored


def test_a_head_it_cannot_keep_still_imports_warns_once_and_the_fit_says_backgrounds_need_it(
        tmp_path, trained, heads, store):
    from epochal.dynamics import evaluate, fit

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_id = import_ttv(head_folder(tmp_path, trained, heads, "softplus"), store, method="DVI", trust=True)
    warned = [str(w.message) for w in caught if "prediction head" in str(w.message)]
    assert len(warned) == 1 and "classifier.2 (Softplus)" in warned[0] and "backgrounds and PPR need the head" in warned[0]
    record = store.run(run_id)
    assert record.status == "finished"
    dynamics = dynamics_of(store, run_id)
    assert recorded_epochs(dynamics) == list(EPOCHS)
    with np.load(epoch_file(dynamics, 3)) as recorded:
        assert {"representations", "predictions", "logits"} <= set(recorded.files)
    assert not [p for p in Path(record.path).rglob("*") if p.name.endswith(".tmp")]  # nothing half-written
    with pytest.warns(epochal.EpochalWarning, match=r"no decision-boundary backgrounds and no PPR: .*Softplus"):
        fit(record, **QUICK_FIT)
    meta = read_json(dynamics / "projection" / "projection.json")
    assert not meta["backgrounds"] and meta["classes"] == 10 and len(set(meta["colors"])) == 10
    assert "ppr" not in evaluate(record)["epochs"]["3"]["train"]


def test_deep_network_dims_keep_two_hidden_layers_and_batch_size_is_not_used(folder, store):
    # The seed's own config: four hidden layers each way and 1000 edges a batch, which would double
    # the fit's time for a layout that two hidden layers learn as well.
    config = json.loads((folder / "config.json").read_text())
    config["DVI"]["VISUALIZATION"].update(ENCODER_DIMS=[128, 256, 192, 256, 256, 2], DECODER_DIMS=[2, 96, 256, 256, 256, 128])
    (folder / "config.json").write_text(json.dumps(config))
    notes = []
    run_id = import_ttv(folder, store, method="DVI", trust=True, notes=notes.append)
    fit_json = read_json(dynamics_of(store, run_id) / FIT_FILE)
    assert (fit_json["encoder_dims"], fit_json["decoder_dims"]) == ([256, 192], [96, 256]) and "batch_size" not in fit_json
    used, ignored = notes[0], notes[1]
    assert "encoder_dims [256, 192] (the first 2 of its 4 hidden layers" in used and "BATCH_SIZE" not in used
    assert "VISUALIZATION.BATCH_SIZE (edges of the seed's graph per step" in ignored
