"""The ledger resource: a run's epochs with their events, the samples behind an event, an epoch's confusion
matrix with its cells' samples, and one sample's history."""

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import epochal
from epochal.server import create_app

SAMPLES, CLASSES = 120, 3
LABELS = np.arange(SAMPLES) % CLASSES
BURST = np.flatnonzero((np.arange(SAMPLES) < 60) & (LABELS != 0))  # predicted 0 at epoch 2 only


def _predicted(epoch):
    predicted = LABELS.copy()
    if epoch == 2:
        predicted[BURST] = 0
    return predicted


@pytest.fixture
def ledger_run(store):
    with epochal.start("ledger", "events", store=store, system_metrics=False) as run:
        for epoch in range(5):
            logits = torch.zeros(SAMPLES, CLASSES)
            logits[torch.arange(SAMPLES), torch.as_tensor(_predicted(epoch))] = 5.0
            for batch in np.array_split(np.random.default_rng(epoch).permutation(SAMPLES), 4):
                run.record_samples(batch, logits[batch], torch.as_tensor(LABELS[batch]))
                run.step()
            run.epoch()
    return run


@pytest.fixture
def client(store):
    with TestClient(create_app(store, static_dir=None)) as c:
        yield c


def test_the_ledger_lists_each_epochs_events(client, ledger_run):
    body = client.get(f"/api/runs/{ledger_run.id}/ledger").json()
    assert body["classes"] == CLASSES and body["samples"] == SAMPLES and body["class_names"] is None
    epochs = body["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3, 4]
    assert [e["last_step"] for e in epochs] == [3, 7, 11, 15, 19]
    assert [e["forgotten"] for e in epochs] == [0, 0, len(BURST), 0, 0]
    assert [e["learned"] for e in epochs] == [0, 0, 0, len(BURST), 0]
    assert epochs[2]["class_changes"]["0"] == len(BURST)
    assert epochs[2]["flips"] == len(BURST) and epochs[2]["confidence_jumps"] == len(BURST)


def test_an_events_samples_and_an_epochs_confusion_cells(client, ledger_run):
    body = client.get(f"/api/runs/{ledger_run.id}/ledger/events/2", params={"kind": "forgotten"}).json()
    assert body["count"] == len(BURST) and sorted(s["sample"] for s in body["samples"]) == BURST.tolist()
    assert all(s["label"] == LABELS[s["sample"]] for s in body["samples"])
    limited = client.get(f"/api/runs/{ledger_run.id}/ledger/events/2", params={"limit": 5}).json()
    assert limited["count"] == len(BURST) and len(limited["samples"]) == 5

    confusion = client.get(f"/api/runs/{ledger_run.id}/ledger/confusion/2").json()
    expected = np.zeros((CLASSES, CLASSES), int)
    np.add.at(expected, (LABELS, _predicted(2)), 1)
    assert confusion["matrix"] == expected.tolist()
    wrong = [c for c in confusion["cells"] if c["label"] != c["predicted"]]
    assert sorted(s for c in wrong for s in c["samples"]) == BURST.tolist()

    history = client.get(f"/api/runs/{ledger_run.id}/ledger/samples/{BURST[0]}").json()
    assert [e["right"] for e in history["epochs"]] == [True, True, False, True, True]


def test_a_run_without_a_ledger_or_an_unknown_epoch_is_404_saying_what(client, ledger_run, store):
    with epochal.start("ledger", "plain", store=store, system_metrics=False) as plain:
        plain.log({"loss": 1.0})
    response = client.get(f"/api/runs/{plain.id}/ledger")
    assert response.status_code == 404 and "SampleLedger" in response.json()["detail"]
    response = client.get(f"/api/runs/{ledger_run.id}/ledger/confusion/9")
    assert response.status_code == 404 and "no epoch 9" in response.json()["detail"]
    assert client.get(f"/api/runs/{ledger_run.id}/ledger/samples/100000").status_code == 404
    assert client.get(f"/api/runs/{ledger_run.id}/ledger/events/2", params={"kind": "nope"}).status_code == 422


def test_a_confusion_cells_samples_are_listed_most_likely_mislabeled_first(client, ledger_run):
    body = client.get(f"/api/runs/{ledger_run.id}/ledger/confusion/2/cells/1/0").json()
    expected = BURST[LABELS[BURST] == 1]
    assert body["count"] == len(expected) and sorted(s["sample"] for s in body["samples"]) == expected.tolist()
    scores = [s["mislabeled_score"] for s in body["samples"]]
    assert scores == sorted(scores, reverse=True)
    assert all(s["position"] is None for s in body["samples"])  # no dynamics recorded
    empty = client.get(f"/api/runs/{ledger_run.id}/ledger/confusion/2/cells/0/1").json()
    assert empty["count"] == 0 and empty["samples"] == []
    response = client.get(f"/api/runs/{ledger_run.id}/ledger/confusion/2/cells/3/0")
    assert response.status_code == 404 and "3 classes" in response.json()["detail"]
    info = client.get(f"/api/runs/{ledger_run.id}/ledger").json()
    assert info["sprites"] is False and info["projection"] is False


def test_a_listed_sample_names_its_position_among_the_recorded_dynamics_samples(client, store):
    """Test samples first, then the training samples in reverse: a sample's position is not its index."""
    with epochal.start("ledger", "with dynamics", store=store, system_metrics=False) as run:
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, CLASSES))
        x, y = torch.randn(SAMPLES + 10, 4), torch.as_tensor(np.r_[LABELS, np.zeros(10, int)])
        for epoch in range(2):
            logits = torch.zeros(SAMPLES, CLASSES)
            logits[torch.arange(SAMPLES), torch.as_tensor(_predicted(2 if epoch else 0))] = 5.0
            run.record_samples(np.arange(SAMPLES), logits, torch.as_tensor(LABELS))
            run.step()
            order = np.r_[np.arange(SAMPLES, SAMPLES + 10), np.arange(SAMPLES)[::-1]]
            run.record_dynamics(model, x[order], y[order], split=["test"] * 10 + ["train"] * SAMPLES,
                                indices=np.r_[np.arange(10), np.arange(SAMPLES)[::-1]].tolist(), image_shape=(2, 2))
            run.epoch()
    body = client.get(f"/api/runs/{run.id}/ledger/events/1", params={"kind": "forgotten"}).json()
    assert body["count"] == len(BURST)
    assert all(s["position"] == 10 + SAMPLES - 1 - s["sample"] for s in body["samples"])
    info = client.get(f"/api/runs/{run.id}/ledger").json()
    assert info["sprites"] is True and info["projection"] is False
