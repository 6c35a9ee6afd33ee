"""Sprites: a thumbnail per recorded sample, from image inputs or flat inputs and an image_shape."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import epochal
from epochal.dynamics import DynamicsError, sprites
from epochal.dynamics.files import FOLDER, SAMPLES_FILE, SPRITES_FILE


class Flat(torch.nn.Module):
    """Any input shape: flattened, then a hidden layer and a head."""

    def __init__(self, width: int, classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = torch.nn.Linear(width, 8), torch.nn.Linear(8, classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x.flatten(1).float())))


def recorded(run) -> Path:
    return Path(run.path) / FOLDER


def test_the_trainer_keeps_digit_sprites_in_the_recorded_order(store):
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:1000], y[:1000]), batch_size=100)
    callback = epochal.RecordDynamics({"train": (x[:1000], y[:1000]), "test": (x[1000:], y[1000:])},
                                      max_samples=300, image_shape=(8, 8))
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), loss_fn=torch.nn.CrossEntropyLoss(),
                              train_data=loader, max_epochs=2, callbacks=[callback], store=store, progress=False)
    trainer.fit()
    images = sprites(recorded(trainer.run))
    assert images.dtype == np.uint8 and images.shape == (len(callback.labels), 8, 8)
    with np.load(recorded(trainer.run) / SAMPLES_FILE) as samples:
        offset = np.where(samples["split"] == "test", 1000, 0)
        chosen = x[torch.as_tensor(samples["indices"] + offset)]
    # digits' pixels run from 0 to 16 over the set: 0 -> 0, 16 -> 255
    expected = np.rint(chosen.numpy().reshape(-1, 8, 8) * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(images, expected)


@pytest.mark.parametrize(
    ("shape", "sprite"),
    [
        ((6, 12, 10), (12, 10)),  # (n, h, w)
        ((6, 1, 12, 10), (12, 10)),  # (n, 1, h, w)
        ((6, 3, 12, 10), (12, 10, 3)),  # (n, 3, h, w): channels last in the sprite
        ((6, 12, 10, 3), (12, 10, 3)),  # (n, h, w, 3)
        ((6, 1, 64, 48), (32, 24)),  # longer side shrunk to 32, the aspect kept
        ((6, 100, 20, 3), (32, 6, 3)),
        ((6, 32, 32), (32, 32)),  # at the limit: kept
    ],
)
def test_image_inputs_get_sprites_without_being_told(store, shape, sprite):
    inputs = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    with epochal.start("p", store=store) as run:
        run.record_dynamics(Flat(int(np.prod(shape[1:]))), inputs, torch.arange(6) % 3)
    images = sprites(recorded(run))
    assert images.shape == (6, *sprite) and images.dtype == np.uint8
    if sprite[:2] == shape[-2:] or sprite[:2] == shape[1:3]:  # not shrunk: exactly the pixels, scaled over the set
        pixels = inputs.numpy()
        pixels = np.moveaxis(pixels, 1, -1) if shape[1] == 3 else pixels.reshape(6, *sprite)
        scaled = np.rint((pixels - pixels.min()) * 255 / (pixels.max() - pixels.min())).astype(np.uint8)
        np.testing.assert_array_equal(images, scaled)


def test_shrinking_averages_the_pixels(store):
    inputs = torch.zeros(2, 64, 64)
    inputs[0, :, :32] = 1.0  # left half white
    with epochal.start("p", store=store) as run:
        run.record_dynamics(Flat(64 * 64), inputs, [0, 1])
    images = sprites(recorded(run)).astype(int)
    assert images.shape == (2, 32, 32)
    assert (images[0, :, :15] == 255).all() and (images[0, :, 17:] == 0).all() and (images[1] == 0).all()


def test_the_scale_is_over_the_whole_set_not_per_image(store):
    inputs = torch.stack([torch.full((4, 4), 0.1), torch.full((4, 4), 0.2), torch.linspace(0, 1, 16).reshape(4, 4)])
    with epochal.start("p", store=store) as run:
        run.record_dynamics(Flat(16), inputs, [0, 1, 2])
    images = sprites(recorded(run))
    assert (images[0] == 26).all() and (images[1] == 51).all()  # dark stays dark
    assert images[2].min() == 0 and images[2].max() == 255


def test_constant_and_non_finite_inputs_still_give_sprites(store):
    inputs = torch.ones(3, 5, 5)
    inputs[1, 0, 0] = float("nan")
    with epochal.start("p", store=store) as run:
        run.record_dynamics(Flat(25), inputs, [0, 1, 2])
    assert (sprites(recorded(run)) == 0).all()


@pytest.mark.parametrize(
    ("image_shape", "expected"),
    [((4, 6), (4, 6)), ((4, 2, 3), (4, 2, 3)), ((3, 4, 2), (4, 2, 3)), ((1, 4, 6), (4, 6))],
)
def test_image_shape_folds_flat_inputs(store, image_shape, expected):
    flat = torch.arange(5 * 24, dtype=torch.float32).reshape(5, 24)
    with epochal.start("p", store=store) as run:
        run.record_dynamics(Flat(24), flat, [0, 1, 2, 0, 1], image_shape=image_shape)
    images = sprites(recorded(run))
    assert images.shape == (5, *expected)
    folded = flat.numpy().reshape(5, *image_shape)
    if image_shape[0] in (1, 3) and image_shape[-1] != 3:  # channels first
        folded = folded[:, 0] if image_shape[0] == 1 else np.moveaxis(folded, 1, -1)
    np.testing.assert_array_equal(images, np.rint(folded * 255 / folded.max()).astype(np.uint8))


def test_inputs_that_are_not_images_get_no_sprites(store):
    with epochal.start("p", store=store) as run:
        run.record_dynamics(Flat(64), torch.rand(10, 64), torch.arange(10) % 3)
        run.record_dynamics(Flat(64), torch.rand(10, 2, 4, 8), torch.arange(10) % 3, epoch=1)  # 2 channels
    assert sprites(recorded(run)) is None
    assert not (recorded(run) / SPRITES_FILE).exists()
    assert sprites(Path(run.path) / "nowhere") is None


def test_sprites_are_written_once_with_the_samples(store, monkeypatch):
    import sys

    record_module = sys.modules["epochal.dynamics.record"]  # the package's `record` is the function
    saved = []
    original = record_module.save_sprites
    monkeypatch.setattr(record_module, "save_sprites", lambda *a: saved.append(original(*a)))
    inputs = torch.rand(4, 1, 8, 8)
    with epochal.start("p", store=store) as run:
        for epoch in range(3):
            run.record_dynamics(Flat(64), inputs * (epoch + 1), [0, 1, 2, 0], epoch=epoch)
    assert saved == [recorded(run) / SPRITES_FILE]
    assert sorted(p.name for p in recorded(run).iterdir() if p.name.startswith(".")) == []  # no temporary files left
    np.testing.assert_array_equal(sprites(recorded(run)).max(), 255)


def test_a_wrong_image_shape_names_the_shapes(store):
    flat = torch.rand(10, 64)
    with epochal.start("p", store=store) as run:
        with pytest.raises(DynamicsError, match=r"image_shape \(8, 9\) holds 72 values but each input has shape "
                                                r"\(64,\) \(64 values; inputs \(10, 64\)\)"):
            run.record_dynamics(Flat(64), flat, torch.arange(10) % 3, image_shape=(8, 9))
        with pytest.raises(DynamicsError, match=r"image_shape is \(h, w\), \(h, w, 3\).*got \(8, 4, 2\)"):
            run.record_dynamics(Flat(64), flat, torch.arange(10) % 3, image_shape=(8, 4, 2))
        with pytest.raises(DynamicsError, match="got 64"):
            run.record_dynamics(Flat(64), flat, torch.arange(10) % 3, image_shape=64)
    assert not recorded(run).exists()  # refused before anything was written
    with pytest.raises(DynamicsError, match=r"image_shape \(7, 7\) holds 49 values"):
        epochal.RecordDynamics((flat, torch.arange(10) % 3), image_shape=(7, 7))
