"""Per-sample statistics on hand-made histories whose answers are known."""

import numpy as np
import pytest

from epochal.dynamics.samples import stats_of


@pytest.fixture
def stats():
    # Five samples of label 0 over four recorded epochs (2, 4, 6, 8).
    right = np.array([
        [1, 1, 1, 1],  # always right
        [0, 1, 0, 1],  # learned, forgotten, learned again
        [0, 0, 1, 1],  # learned late
        [1, 0, 0, 0],  # forgotten for good
        [0, 0, 0, 0],  # never learned: predicted 3 throughout
    ], dtype=bool).T
    predictions = np.where(right, 0, 3)
    probabilities = np.array([
        [0.95, 0.96, 0.97, 0.98],
        [0.10, 0.90, 0.10, 0.90],
        [0.20, 0.30, 0.60, 0.80],
        [0.90, 0.50, 0.20, 0.10],
        [0.05, 0.04, 0.03, 0.02],
    ]).T
    labels = np.zeros(5, dtype=np.int64)
    return stats_of(np.array([2, 4, 6, 8]), labels, np.array(["train"] * 5), np.arange(5), predictions, probabilities)


def test_forgetting_events_count_right_to_wrong(stats):
    assert stats.forgetting.tolist() == [0, 1, 0, 1, 0]


def test_first_learned_and_learned_from(stats):
    assert stats.first_learned.tolist() == [2, 4, 6, 2, -1]
    assert stats.learned_from.tolist() == [2, 8, 6, -1, -1]


def test_the_data_map(stats):
    assert stats.category.tolist() == ["easy", "ambiguous", "ambiguous", "ambiguous", "hard"]
    assert stats.correctness.tolist() == [1.0, 0.5, 0.5, 0.25, 0.0]
    assert stats.variability[1] == pytest.approx(0.4)
    assert stats.confidence[4] == pytest.approx(0.035)


def test_likely_mislabeled_and_what_they_look_like(stats):
    assert stats.likely_mislabeled().tolist() == [4]
    assert stats.usual_prediction().tolist() == [0, 0, 0, 3, 3]
