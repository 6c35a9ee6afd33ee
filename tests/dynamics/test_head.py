"""Prediction heads: captured as data from a model, recorded with each epoch, and used by the fit for
backgrounds and PPR whether the head is one Linear layer or several."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import epochal
from epochal.dynamics import evaluate, files, fit, load
from epochal.dynamics.head import Head, HeadError, capture, from_arrays

QUICK = {"layout_iterations": 120, "max_epochs": 3, "resolution": 32}


def digits(n=600):
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x[:n] / 16.0, dtype=torch.float32), torch.tensor(y[:n])


def train(model, x, y, steps=60):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        rows = slice((step * 50) % (len(x) - 50), (step * 50) % (len(x) - 50) + 50)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
        optimizer.step()
    return model.eval()


def deep_model():
    """64 -> 48 -> [32 -> LayerNorm -> GELU -> Dropout -> 10]: a head of several layers after layer '2'."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 48), torch.nn.ReLU(),
        torch.nn.Linear(48, 32), torch.nn.LayerNorm(32), torch.nn.GELU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10),
    )


# -- capture ---------------------------------------------------------------------------------------


def test_an_affine_head_is_its_weight_and_bias_and_a_deeper_one_its_layers():
    x, y = digits(200)
    model = train(deep_model(), x, y, steps=10)
    head = capture(model, model, x[:8], start=model[2])
    assert [layer["type"] for layer in head.layers] == ["Linear", "LayerNorm", "GELU", "Dropout", "Linear"]
    assert head.affine() is None and head.classes == 10
    with torch.no_grad():
        hidden, expected = model[:2](x), model(x)
    np.testing.assert_allclose(head.logits(hidden.numpy()), expected.numpy(), rtol=1e-5, atol=1e-5)
    again = from_arrays(head.arrays())  # as an epoch file keeps it: JSON text and arrays, nothing pickled
    assert isinstance(again, Head) and all(a.dtype != object for a in head.arrays().values())
    np.testing.assert_allclose(again.logits(hidden.numpy()), expected.numpy(), rtol=1e-5, atol=1e-5)

    last = capture(model, model, x[:8], start=model[6])  # only the last Linear: affine
    weight, _ = last.affine()
    np.testing.assert_array_equal(weight, model[6].weight.detach().numpy())
    assert set(last.arrays()) == {"head_weight", "head_bias"}


@pytest.mark.parametrize(("head", "reason"), [
    (torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Softplus(), torch.nn.Linear(8, 3)),
     r"uses 1 \(Softplus\), which epochal cannot keep as data; supported layers: Linear, ReLU"),
    (torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8, track_running_stats=False),
                         torch.nn.Linear(8, 3)),
     r"1 \(BatchNorm1d\) keeps no running statistics"),
])
def test_a_head_with_a_layer_it_cannot_keep_names_it(head, reason):
    with pytest.raises(HeadError, match=reason):
        capture(head.eval(), head, torch.randn(4, 8))


def test_a_functional_call_between_the_layers_is_refused_not_mis_kept():
    class Functional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)

        def forward(self, h):
            return self.b(torch.relu(self.a(h)))

    model = Functional()
    with pytest.raises(HeadError, match=r"not its layers run one after another \(a \(Linear\), b \(Linear\)\).*"
                                        r"write it as a module"):
        capture(model, model, torch.randn(16, 8))


# -- native recording ------------------------------------------------------------------------------


def fitted_colours_and_backgrounds(run_path: Path) -> tuple[dict, list[Path]]:
    folder = files.projection_folder(run_path)
    return json.loads((folder / files.META_FILE).read_text()), sorted(folder.glob("background-*.png"))


def test_a_native_run_recorded_before_a_deeper_head_gets_backgrounds_colours_and_ppr(store):
    x, y = digits()
    model = deep_model()
    with epochal.start("p", store=store) as run:
        for _ in range(3):
            train(model.train(), x, y, steps=12)
            run.epoch()
            path = run.record_dynamics(model, x, y, layer="2", split=["train"] * 450 + ["test"] * 150)
    with np.load(path) as recorded:
        assert "head_layers" in recorded.files and "head_weight" not in recorded.files
    projection = fit(run, **QUICK)
    assert isinstance(projection.heads_[0], Head)
    meta, backgrounds = fitted_colours_and_backgrounds(run.path)
    assert meta["backgrounds"] and meta["classes"] == 10 and len(set(meta["colors"])) == 10
    assert len(backgrounds) == 3
    with Image.open(backgrounds[-1]) as image:
        assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 10
    report = evaluate(run)
    for split in ("train", "test"):
        assert report["mean"][split]["ppr"] > 0.5
    # The decoded points are classified by the deep head itself, as the model would.
    again = load(run)
    with np.load(path) as recorded:
        reps = recorded["representations"].astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(model[2:](torch.from_numpy(reps)), 1).numpy()
    np.testing.assert_allclose(again.predict_proba(reps, again.epochs_[-1]), expected, atol=1e-4)


def test_the_trainer_records_a_deeper_head_at_an_earlier_layer(store):
    x, y = digits()
    model = deep_model()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
                              train_data=loader, max_epochs=2, store=store, progress=False,
                              callbacks=[epochal.RecordDynamics((x, y), layer="2")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a head it can keep: no warning
        trainer.fit()
    folder = files.dynamics_folder(trainer.run.path)
    assert isinstance(from_arrays(np.load(files.epoch_file(folder, 1))), Head)


def test_a_native_head_it_cannot_keep_is_warned_once_and_the_fit_says_so(store):
    x, y = digits(300)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Softplus(), torch.nn.Linear(32, 10))
    with epochal.start("p", store=store) as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            run.epoch()
            run.record_dynamics(model, x, y, layer="0")
    heads = [w for w in caught if "no prediction head recorded" in str(w.message)]
    assert len(heads) == 1 and "1 (Softplus)" in str(heads[0].message)
    with pytest.warns(epochal.EpochalWarning, match=r"no decision-boundary backgrounds and no PPR: no epoch has a "
                                                    r"recorded prediction head: .*Softplus.*need the head"):
        fit(run, **QUICK)
    meta, backgrounds = fitted_colours_and_backgrounds(run.path)
    assert not meta["backgrounds"] and backgrounds == [] and "Softplus" in meta["no_backgrounds"]
    assert meta["classes"] == 10 and len(set(meta["colors"])) == 10  # colours come from the labels, not the head
    progress = json.loads((files.projection_folder(run.path) / files.PROGRESS_FILE).read_text())
    assert progress["state"] == "done" and "backgrounds and PPR need the head" in progress["message"]
