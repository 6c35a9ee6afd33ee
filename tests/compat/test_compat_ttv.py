"""epochal.compat.ttv: the Time-Travelling Visualizer's SummaryWriter writes its training_dynamic folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.cli import main
from epochal.compat.ttv import SummaryWriter
from epochal.errors import CheckpointError, RunStateError

N_TRAIN, N_TEST = 24, 10


def _loaders(shape=(1, 8, 8), seed=0, shuffle=True):
    generator = torch.Generator().manual_seed(seed)
    train = TensorDataset(torch.rand(N_TRAIN, *shape, generator=generator), torch.arange(N_TRAIN) % 3)
    test = TensorDataset(torch.rand(N_TEST, *shape, generator=generator), torch.arange(N_TEST) % 3)
    return (DataLoader(train, batch_size=8, shuffle=shuffle, generator=generator),
            DataLoader(test, batch_size=8))


def _model():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_readme_example(tmp_path, capsys):
    """README step 1, import line changed: a shuffled loader, a checkpoint after each of 2 epochs."""
    torch.manual_seed(0)
    batch_size, num_worker = 8, 0
    train_loader, test_loader = _loaders()
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    # Added code to write into training dynamic
    from epochal.compat.ttv import SummaryWriter
    save_dir = str(tmp_path / "training_dynamic")
    summary_writer = SummaryWriter(save_dir, batch_size, num_worker)
    summary_writer.write_meta_data(train_loader, test_loader)

    writer = summary_writer  # the README's second snippet calls it `writer`
    prev_epoch = 0
    for curr_epoch in range(1, 3):
        for x, y in train_loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        # After training model
        writer.write_checkpoint(model.state_dict(),curr_epoch, prev_epoch)
        prev_epoch = curr_epoch
    summary_writer.close()

    root = Path(save_dir)
    sprites = {f"sprites/{i}.png" for i in range(N_TRAIN + N_TEST)}
    assert _files(root) == sprites | {
        "Model/Epoch_1/subject_model.pth", "Model/Epoch_2/subject_model.pth",
        "Training_data/training_dataset_data.pth", "Training_data/training_dataset_label.pth",
        "Testing_data/testing_dataset_data.pth", "Testing_data/testing_dataset_label.pth",
        "iteration_structure.json",
    }

    def load(relative: str):
        return torch.load(root / relative, weights_only=True)

    train_x, train_y = load("Training_data/training_dataset_data.pth"), load("Training_data/training_dataset_label.pth")
    test_x, test_y = load("Testing_data/testing_dataset_data.pth"), load("Testing_data/testing_dataset_label.pth")
    assert train_x.shape == (N_TRAIN, 1, 8, 8) and train_y.shape == (N_TRAIN,)
    assert torch.equal(test_x, test_loader.dataset.tensors[0]) and torch.equal(test_y, test_loader.dataset.tensors[1])
    # The shuffled training set is the same samples, in an order that its sprites share.
    order = [next(i for i, row in enumerate(train_loader.dataset.tensors[0]) if torch.equal(row, x)) for x in train_x]
    assert sorted(order) == list(range(N_TRAIN))
    assert torch.equal(train_y, train_loader.dataset.tensors[1][order])
    for i, image in [(0, train_x[0]), (N_TRAIN - 1, train_x[-1]), (N_TRAIN, test_x[0])]:
        png = np.asarray(Image.open(root / f"sprites/{i}.png"))
        assert png.shape == (8, 8)
        np.testing.assert_array_equal(png, (image[0] * 255).round().to(torch.uint8).numpy())

    restored = _model()
    restored.load_state_dict(load("Model/Epoch_2/subject_model.pth"))
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), model.state_dict().values()))
    assert json.loads((root / "iteration_structure.json").read_text()) == [
        {"value": 1, "name": "Epoch", "pid": ""}, {"value": 2, "name": "Epoch", "pid": "1"}]

    with epochal.Store() as store:
        record = store.run(summary_writer.run.id)
        assert record.status == "finished" and record.project == "ttv" and record.epochs == 2
        assert record.config.to_dict() == {"save_dir": str(root.resolve()), "batch_size": 8, "num_worker": 0}
        assert store.history(record.id, "epoch").values.tolist() == [1.0, 2.0]
    capsys.readouterr()
    assert main(["ls"]) == 0
    listing = capsys.readouterr().out
    assert record.id in listing and "epoch" in listing.splitlines()[0]


def test_every_k_epochs_and_a_wrong_prev_epoch(tmp_path):
    model = _model()
    with SummaryWriter(tmp_path / "td", 8, 0) as writer:
        for epoch in (2, 4, 6):
            writer.write_checkpoint(model.state_dict(), epoch, epoch - 2)
        before = _files(tmp_path / "td")
        with pytest.raises(CheckpointError, match=r"prev_epoch=5 was never saved.*\[2, 4, 6\]"):
            writer.write_checkpoint(model.state_dict(), 7, 5)
        with pytest.raises(ValueError, match="must come before"):
            writer.write_checkpoint(model.state_dict(), 7, 7)
        assert _files(tmp_path / "td") == before
        writer.write_checkpoint(model.state_dict(), 6, 4)  # saving an epoch again replaces its entry
    structure = json.loads((tmp_path / "td" / "iteration_structure.json").read_text())
    assert [(e["value"], e["pid"]) for e in structure] == [(2, ""), (4, "2"), (6, "4")]


def test_a_corrupt_iteration_structure_is_named_and_nothing_is_written(tmp_path):
    model = _model()
    with SummaryWriter(tmp_path / "td", 8, 0) as writer:
        with pytest.raises(CheckpointError, match="iteration_structure.json does not exist"):
            writer.write_checkpoint(model.state_dict(), 2, 1)
        writer.write_checkpoint(model.state_dict(), 1, 0)
        (tmp_path / "td" / "iteration_structure.json").write_text("{not json")
        with pytest.raises(CheckpointError, match=r"iteration_structure\.json is not a list of epochs"):
            writer.write_checkpoint(model.state_dict(), 2, 1)
    assert not (tmp_path / "td" / "Model" / "Epoch_2").exists()


def test_bad_batches_and_state_dicts_leave_nothing_behind(tmp_path):
    root = tmp_path / "td"
    train_loader, test_loader = _loaders()
    with SummaryWriter(root, 8, 0) as writer:
        with pytest.raises(TypeError, match="test_loader batch 0 is a dict"):
            writer.write_meta_data(train_loader, [{"x": torch.zeros(2, 1, 8, 8)}])
        with pytest.raises(ValueError, match="train_loader yielded no batches"):
            writer.write_meta_data([], test_loader)
        with pytest.raises(TypeError, match=r"state_dict\['opt'\] is a SGD"):
            writer.write_checkpoint({"opt": torch.optim.SGD(_model().parameters(), lr=1)}, 1, 0)
        assert _files(root) == set()
    with pytest.raises(RunStateError, match="closed"):
        writer.write_checkpoint(_model().state_dict(), 1, 0)


def test_sprites_for_normalized_and_rgb_images_none_for_vectors(tmp_path):
    ramp = torch.linspace(-3, 3, 100).expand(4, 3, 40, 100)  # normalized images: not in [0, 1]
    train = [(ramp, torch.zeros(4, dtype=torch.long))]
    with SummaryWriter(tmp_path / "rgb", 4, 0) as writer:
        writer.write_meta_data(train, train)
    png = np.asarray(Image.open(tmp_path / "rgb" / "sprites" / "7.png"))
    assert png.shape == (26, 64, 3) and png.min() < 10 and png.max() > 245  # shrunk, stretched per image

    vectors = [(torch.randn(4, 16), torch.zeros(4))]
    with SummaryWriter(tmp_path / "vec", 4, 0) as writer:
        writer.write_meta_data(vectors, vectors)
    assert not (tmp_path / "vec" / "sprites").exists()
    assert torch.load(tmp_path / "vec" / "Testing_data" / "testing_dataset_data.pth", weights_only=True).shape == (4, 16)


def test_writing_meta_data_again_replaces_the_sprites(tmp_path):
    root = tmp_path / "td"
    with SummaryWriter(root, 8, 0) as writer:
        writer.write_meta_data(*_loaders())
        small = [(torch.rand(3, 1, 8, 8), torch.zeros(3, dtype=torch.long))]
        writer.write_meta_data(small, small)
    assert sorted(p.name for p in (root / "sprites").iterdir()) == [f"{i}.png" for i in range(6)]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
