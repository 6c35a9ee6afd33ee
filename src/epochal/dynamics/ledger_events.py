"""What happened to the samples from one epoch to the next, read from a run's ledger: the events that explain
a curve's jump, and each epoch's confusion matrix with the samples in every cell.

Each sample's state at an epoch is its last presentation in that epoch (predicted class, right or wrong)
and its mean probability of the target over the epoch's presentations. Between two consecutive epochs:

- ``flips``: samples whose predicted class changed;
- ``forgotten``: right at the end of the epoch before, wrong at the end of this one (a forgetting event,
  Toneva et al., 2019), and ``learned`` the other way round;
- ``confidence_jumps``: samples whose probability of their target moved by at least ``JUMP``;
- ``class_changes``: classes that gained or lost at least ``CLASS_SHARE`` of the samples predicted as them
  (and at least ``CLASS_MINIMUM``);
- ``burst``: the epoch forgot unusually many samples: more than the median over the run's epochs plus
  three robust standard deviations, and at least ``BURST_SHARE`` of the samples.

    >>> for event in epoch_events(Path(run.path) / "ledger"):
    ...     print(event.epoch, len(event.forgotten), event.burst)
    >>> matrix, cells = confusion(Path(run.path) / "ledger", epoch=3)   # cells[(label, predicted)] -> samples
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from epochal.dynamics.ledger_measures import MAD_TO_STD, epoch_rows, ledger_parts
from epochal.errors import DynamicsError

#: A change of the probability of a sample's target, from one epoch to the next, that counts as a jump.
JUMP = 0.5
#: A class gained or lost this share of the samples predicted as it (and at least CLASS_MINIMUM samples).
CLASS_SHARE = 0.2
CLASS_MINIMUM = 5
#: A forgetting burst forgets at least this share of the epoch's samples.
BURST_SHARE = 0.01


@dataclass(frozen=True)
class EpochEvents:
    """The events of one epoch against the epoch before it (the first epoch has none). Sample arrays hold
    sample indices, ascending."""

    epoch: int
    samples: int  # samples presented in this epoch
    last_step: int  # the step of the epoch's last recorded batch: where a chart by step marks the epoch's events
    flips: np.ndarray
    forgotten: np.ndarray
    learned: np.ndarray
    confidence_jumps: np.ndarray
    class_changes: dict[int, int] = field(default_factory=dict)  # class -> samples predicted as it, gained (+) or lost
    burst: bool = False


@dataclass(frozen=True)
class _State:
    sample: np.ndarray  # ascending
    target: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    probability: np.ndarray
    classes: int
    last_step: int


def _states(folder: Path) -> dict[int, _State]:
    parts = ledger_parts(Path(folder))
    if not parts:
        raise DynamicsError(f"no sample ledger in '{folder}': record one with run.record_samples or SampleLedger")
    states = {}
    for epoch, files in parts.items():
        rows = epoch_rows(files, ("sample", "target", "predicted", "correct", "loss"))
        sample, inverse = np.unique(rows["sample"], return_inverse=True)
        last = np.zeros(len(sample), np.int64)
        last[inverse] = np.arange(len(inverse))  # the last presentation's row wins (rows are in order)
        counts = np.bincount(inverse, minlength=len(sample))
        probability = np.bincount(inverse, np.exp(-rows["loss"].astype(np.float64)), len(sample)) / counts
        states[epoch] = _State(sample, rows["target"][last].astype(np.int64), rows["predicted"][last].astype(np.int64),
                               rows["correct"][last].astype(bool), probability, int(rows["classes"]),
                               int(rows["step"].max()) if len(rows["step"]) else 0)
    return states


def epoch_events(folder: str | Path) -> list[EpochEvents]:
    """The events of every epoch of the ledger in ``folder`` (a run's ``ledger/``), in epoch order."""
    states = _states(Path(folder))
    out: list[EpochEvents] = []
    before: _State | None = None
    for epoch, now in states.items():
        if before is None:
            empty = np.empty(0, np.int64)
            out.append(EpochEvents(epoch, len(now.sample), now.last_step, empty, empty, empty, empty))
        else:
            both, here, there = np.intersect1d(now.sample, before.sample, assume_unique=True, return_indices=True)
            right_now, right_before = now.correct[here], before.correct[there]
            jump = np.abs(now.probability[here] - before.probability[there]) >= JUMP
            out.append(EpochEvents(
                epoch, len(now.sample), now.last_step, both[now.predicted[here] != before.predicted[there]],
                both[right_before & ~right_now], both[~right_before & right_now], both[jump],
                _class_changes(before.predicted, now.predicted, now.classes),
            ))
        before = now
    forgotten = np.array([len(e.forgotten) for e in out[1:]], dtype=np.float64)
    if len(forgotten) >= 3:
        # Robust standard deviations above the median, one sample at least (a steady trickle has no spread).
        centre = np.median(forgotten)
        spread = max(MAD_TO_STD * float(np.median(np.abs(forgotten - centre))), 1.0)
        unusual = forgotten > centre + 3 * spread
        out[1:] = [
            replace(e, burst=bool(flag) and len(e.forgotten) >= BURST_SHARE * e.samples)
            for e, flag in zip(out[1:], unusual)
        ]
    return out


def _class_changes(before: np.ndarray, now: np.ndarray, classes: int) -> dict[int, int]:
    old, new = np.bincount(before, minlength=classes), np.bincount(now, minlength=classes)
    change = new - old
    large = (np.abs(change) >= CLASS_MINIMUM) & (np.abs(change) >= CLASS_SHARE * np.maximum(old, 1))
    return {int(c): int(change[c]) for c in np.flatnonzero(large)}


def sample_history(folder: str | Path, sample: int) -> list[tuple[int, int, int, bool, float]]:
    """One sample's state at every epoch it was presented in: (epoch, target, predicted, right, probability of
    the target), at its last presentation of the epoch (the probability: the epoch's mean)."""
    out = []
    for epoch, state in _states(Path(folder)).items():
        at = np.searchsorted(state.sample, sample)
        if at < len(state.sample) and state.sample[at] == sample:
            out.append((epoch, int(state.target[at]), int(state.predicted[at]), bool(state.correct[at]),
                        float(state.probability[at])))
    return out


def confusion(folder: str | Path, epoch: int) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """The confusion matrix of ``epoch`` (rows: the target, columns: the predicted class, at each sample's last
    presentation in the epoch) and the samples of every cell that has any, by (target, predicted)."""
    states = _states(Path(folder))
    if epoch not in states:
        raise DynamicsError(f"the ledger has no epoch {epoch}; it has epochs {sorted(states)}")
    state = states[epoch]
    cell = state.target * state.classes + state.predicted
    matrix = np.bincount(cell, minlength=state.classes ** 2).reshape(state.classes, state.classes)
    order = np.argsort(cell, kind="stable")
    keys, starts = np.unique(cell[order], return_index=True)
    groups = np.split(state.sample[order], starts[1:])
    return matrix, {(int(k // state.classes), int(k % state.classes)): g for k, g in zip(keys, groups)}
