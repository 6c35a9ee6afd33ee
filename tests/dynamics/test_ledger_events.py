"""Events between epochs from the ledger: flips, forgetting bursts, confidence jumps, classes that gain or
lose samples, and each epoch's confusion matrix with its samples."""

import numpy as np
import pytest
import torch

import epochal
from epochal.dynamics.ledger_events import confusion, epoch_events
from epochal.errors import DynamicsError

SAMPLES, CLASSES, EPOCHS = 200, 4, 6
LABELS = np.arange(SAMPLES) % CLASSES
#: At epoch 3 these samples are suddenly predicted as class 0: a forgetting burst, and class 0 gains them.
FORGOTTEN_AT_3 = np.flatnonzero((np.arange(SAMPLES) < 80) & (LABELS != 0))


def _predicted(epoch):
    predicted = LABELS.copy()
    if epoch == 3:
        predicted[FORGOTTEN_AT_3] = 0
    if epoch >= 1:  # a slow trickle of single forgettings, so that the burst stands out against the others
        predicted[100 + epoch] = (LABELS[100 + epoch] + 2) % CLASSES
    return predicted


def _logits(predicted):
    logits = torch.zeros(SAMPLES, CLASSES)
    logits[torch.arange(SAMPLES), torch.as_tensor(predicted)] = 4.0
    return logits


@pytest.fixture
def ledger(tmp_path):
    with epochal.start("events", store=tmp_path / "store", system_metrics=False) as run:
        for epoch in range(EPOCHS):
            order = np.random.default_rng(epoch).permutation(SAMPLES)
            logits = _logits(_predicted(epoch))
            for batch in np.array_split(order, 5):  # shuffled batches, as a loader gives them
                run.record_samples(batch, logits[batch], torch.as_tensor(LABELS[batch]))
                run.step()
            run.epoch()
    return tmp_path / "store" / "runs" / run.id / "ledger"


def test_each_epoch_lists_its_flips_forgettings_learnings_and_jumps(ledger):
    events = epoch_events(ledger)
    assert [e.epoch for e in events] == list(range(EPOCHS))
    assert len(events[0].flips) == 0 and events[0].samples == SAMPLES
    for event in events[1:]:
        before, now = _predicted(event.epoch - 1), _predicted(event.epoch)
        right_before, right_now = before == LABELS, now == LABELS
        assert event.flips.tolist() == np.flatnonzero(before != now).tolist()
        assert event.forgotten.tolist() == np.flatnonzero(right_before & ~right_now).tolist()
        assert event.learned.tolist() == np.flatnonzero(~right_before & right_now).tolist()
        # the probability of the target moves from about 0.95 to 0.02 (or back) for each of them
        assert event.confidence_jumps.tolist() == np.flatnonzero(right_before != right_now).tolist()
    assert [e.epoch for e in events if e.burst] == [3]


def test_classes_that_gain_or_lose_samples_are_named(ledger):
    by_epoch = {e.epoch: e.class_changes for e in epoch_events(ledger)}
    moved = np.bincount(_predicted(3), minlength=CLASSES) - np.bincount(_predicted(2), minlength=CLASSES)
    old = np.bincount(_predicted(2), minlength=CLASSES)
    assert by_epoch[3] == {c: int(moved[c]) for c in range(CLASSES) if abs(moved[c]) >= max(5, 0.2 * old[c])}
    assert by_epoch[3][0] > 50 and len(by_epoch[3]) == 4  # class 0 took the 60 (less a trickle's one)
    assert by_epoch[2] == {}  # one sample moving is no class's change


def test_the_confusion_matrix_of_an_epoch_lists_the_samples_of_each_cell(ledger):
    matrix, cells = confusion(ledger, 3)
    predicted = _predicted(3)
    expected = np.zeros((CLASSES, CLASSES), np.int64)
    np.add.at(expected, (LABELS, predicted), 1)
    assert matrix.tolist() == expected.tolist()
    for (label, guess), samples in cells.items():
        assert samples.tolist() == np.flatnonzero((LABELS == label) & (predicted == guess)).tolist()
    assert sum(len(s) for s in cells.values()) == SAMPLES
    with pytest.raises(DynamicsError, match="no epoch 99"):
        confusion(ledger, 99)


def test_a_samples_history_gives_its_state_at_every_epoch(ledger):
    from epochal.dynamics.ledger_events import sample_history

    history = sample_history(ledger, 5)  # one of the samples forgotten at epoch 3
    assert [h[0] for h in history] == list(range(EPOCHS))
    assert [h[2] for h in history] == [int(_predicted(e)[5]) for e in range(EPOCHS)]
    assert [h[3] for h in history] == [True, True, True, False, True, True]
    assert history[3][4] < 0.1 < 0.9 < history[2][4]
    assert [e.last_step for e in epoch_events(ledger)] == [5 * (e + 1) - 1 for e in range(EPOCHS)]
    assert sample_history(ledger, 10**6) == []
