"""The samples that matter, from each epoch's recorded predictions.

For every sample: its prediction history, the epoch it was first learned and the epoch from which it
stayed learned, its forgetting events (right at one recorded epoch, wrong at the next), and where it
sits on a data map: mean confidence in its given label against that confidence's variability across
epochs (Swayamdipta et al., 2020). Hard-to-learn samples, those the model never grew confident in,
ranked by how confidently it predicted another class, are the likely mislabeled ones.

    >>> stats = sample_stats(Path(run.path) / "dynamics")
    >>> stats.likely_mislabeled(10)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epochal.dynamics.files import arrays
from epochal.dynamics.record import SAMPLES_FILE, DynamicsError, epoch_file, recorded_epochs

#: Data-map thresholds on the mean confidence in the given label: at or above EASY a sample is easy
#: to learn; below HARD, with a variability below STEADY (the model never wavered towards it), hard
#: to learn; anything between is ambiguous. Absolute, so that a well-learned data set has few
#: ambiguous samples instead of a fixed third of them.
EASY = 0.7
HARD = 0.3
STEADY = 0.2


@dataclass(frozen=True)
class SampleStats:
    """Per-sample statistics over the recorded epochs; arrays are indexed like the recorded samples."""

    epochs: np.ndarray  # the recorded epochs, ascending
    labels: np.ndarray
    split: np.ndarray  # 'train' or 'test'
    indices: np.ndarray  # each sample's index in its data set
    predictions: np.ndarray  # (epochs, samples)
    confidence: np.ndarray  # mean probability of the given label
    variability: np.ndarray  # its standard deviation over the epochs
    correctness: np.ndarray  # share of epochs predicted right
    forgetting: np.ndarray  # right -> wrong transitions between consecutive recorded epochs
    first_learned: np.ndarray  # first epoch predicted right; -1 if never
    learned_from: np.ndarray  # epoch from which it stays right to the end; -1 if wrong at the end

    @property
    def category(self) -> np.ndarray:
        """'easy', 'ambiguous' or 'hard' per sample, by the data-map thresholds."""
        out = np.full(len(self.labels), "ambiguous", dtype="<U9")
        out[self.confidence >= EASY] = "easy"
        out[(self.confidence < HARD) & (self.variability < STEADY)] = "hard"
        return out

    def likely_mislabeled(self, count: int = 20) -> np.ndarray:
        """Positions of up to ``count`` hard-to-learn samples, least confident in their label first."""
        hard = np.flatnonzero(self.category == "hard")
        return hard[np.argsort(self.confidence[hard], kind="stable")][:count]

    def usual_prediction(self) -> np.ndarray:
        """The class each sample was predicted most often."""
        classes = int(max(self.predictions.max(), self.labels.max())) + 1
        counts = np.apply_along_axis(np.bincount, 0, self.predictions, minlength=classes)
        return counts.argmax(0)


def sample_stats(folder: Path) -> SampleStats:
    """Statistics of the dynamics recorded in ``folder`` (a run's ``dynamics/``)."""
    epochs = recorded_epochs(folder)
    if not epochs:
        raise DynamicsError(
            f"no recorded dynamics in '{folder}': record them with epochal.RecordDynamics or run.record_dynamics"
        )
    with arrays(folder / SAMPLES_FILE) as samples:
        labels, split, indices = samples["labels"], samples["split"], samples["indices"]
    probabilities, predictions = [], []
    for epoch in epochs:
        with arrays(epoch_file(folder, epoch)) as recorded:
            logits = recorded["logits"].astype(np.float64)
            predictions.append(recorded["predictions"])
        shifted = np.exp(logits - logits.max(1, keepdims=True))
        probabilities.append(shifted[np.arange(len(labels)), labels] / shifted.sum(1))
    return stats_of(np.asarray(epochs), labels, split, indices, np.stack(predictions), np.stack(probabilities))


def stats_of(
    epochs: np.ndarray, labels: np.ndarray, split: np.ndarray, indices: np.ndarray,
    predictions: np.ndarray, probabilities: np.ndarray,
) -> SampleStats:
    """The statistics from (epochs, samples) arrays of predictions and of the given label's probability."""
    right = predictions == labels[None, :]
    forgetting = (right[:-1] & ~right[1:]).sum(0)
    ever = right.any(0)
    first = np.where(ever, epochs[right.argmax(0)], -1)
    # right_to_end[e]: right at e and at every recorded epoch after it.
    right_to_end = np.logical_and.accumulate(right[::-1], axis=0)[::-1]
    learned = np.where(right[-1], epochs[right_to_end.argmax(0)], -1)
    return SampleStats(
        epochs=epochs, labels=labels, split=split, indices=indices, predictions=predictions,
        confidence=probabilities.mean(0), variability=probabilities.std(0), correctness=right.mean(0),
        forgetting=forgetting, first_learned=first, learned_from=learned,
    )
