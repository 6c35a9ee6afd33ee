"""Quality measures of a projection: against scikit-learn, on cases with known answers, in any chunk size."""

import numpy as np
import pytest
import torch
from sklearn.manifold import trustworthiness as sklearn_trustworthiness
from sklearn.neighbors import NearestNeighbors

from epochal.dynamics.quality import (
    movement_correlation,
    nearest_neighbours,
    neighbour_preservation,
    neighbourhood_change_correlation,
    neighbourhood_quality,
    prediction_preservation,
    trustworthiness,
)
from epochal.errors import DynamicsError


def clusters(n=300, width=40, seed=0):
    """Points around five centres in ``width`` dimensions, and a noisy 2D view that keeps the clusters apart."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n)
    high = rng.normal(size=(5, width))[labels] * 4 + rng.normal(size=(n, width))
    low = np.stack([np.cos(labels * 1.2566), np.sin(labels * 1.2566)], 1) * 10 + high[:, :2] + rng.normal(size=(n, 2))
    return high, low


def flat_in_high_dimensions(n=1000, width=40, seed=0):
    """2D points, and the same points turned into ``width`` dimensions (distances kept) with a little noise."""
    rng = np.random.default_rng(seed)
    low = rng.normal(size=(n, 2))
    turn, _ = np.linalg.qr(rng.normal(size=(width, 2)))
    return low @ turn.T + rng.normal(scale=1e-4, size=(n, width)), low


@pytest.mark.parametrize("k", [1, 5, 15])
@pytest.mark.parametrize("view", ["clusters", "close", "random"])
def test_trustworthiness_is_sklearns(k, view):
    high, low = clusters()
    if view == "close":  # a view that keeps most neighbourhoods: few, near-miss penalties
        low = high[:, :2] * 100 + high[:, 2:4]
    elif view == "random":  # every row's neighbours far away: the rows are sorted instead
        low = np.random.default_rng(1).normal(size=low.shape)
    expected = sklearn_trustworthiness(high, low, n_neighbors=k)
    assert trustworthiness(high, low, k) == expected
    assert neighbourhood_quality(high, low, k).trustworthiness == expected


def test_trustworthiness_in_three_dimensions_or_fewer_is_sklearns():
    high, low = clusters(width=3)
    assert trustworthiness(high, low, 10) == sklearn_trustworthiness(high, low, n_neighbors=10)


def test_nearest_neighbours_are_sklearns():
    high, low = clusters()
    for points in (high, low):
        expected = NearestNeighbors(n_neighbors=15).fit(points).kneighbors(return_distance=False)
        assert np.array_equal(nearest_neighbours(points, 15), expected)
    # float32 distances: the same neighbours but for a few near ties.
    expected = NearestNeighbors(n_neighbors=15).fit(high).kneighbors(return_distance=False)
    single = nearest_neighbours(high.astype(np.float32), 15)
    assert (np.sort(single, 1) == np.sort(expected, 1)).mean() > 0.99


def test_tied_neighbours_go_by_position():
    # Points on a line, each at distance 1 from two others: the lower index wins the tie.
    line = np.arange(10, dtype=np.float64)[:, None] * [1.0, 0.0]
    assert nearest_neighbours(line, 1)[5].tolist() == [4]
    assert nearest_neighbours(line, 2)[0].tolist() == [1, 2]
    wide = np.concatenate([line, np.zeros((10, 6))], 1)  # the chunked path agrees
    assert np.array_equal(nearest_neighbours(wide, 3), nearest_neighbours(line, 3))
    # Duplicates: the copies are each other's nearest, in order of position.
    twice = np.repeat(np.eye(8), 3, axis=0)
    assert nearest_neighbours(twice, 2)[4].tolist() == [3, 5]
    assert nearest_neighbours(twice[:, :3], 2)[4].tolist() == [3, 5]


def test_any_chunk_size_gives_the_same_answer():
    high, low = clusters(n=203)
    whole = neighbourhood_quality(high, low, 10, chunk_size=1000)
    for chunk_size in (1, 7, 64):
        assert np.array_equal(nearest_neighbours(high, 10, chunk_size=chunk_size), whole.high_neighbours)
        assert trustworthiness(high, low, 10, chunk_size=chunk_size) == whole.trustworthiness
        part = neighbourhood_quality(high, low, 10, chunk_size=chunk_size)
        assert np.array_equal(part.npr, whole.npr) and part.trustworthiness == whole.trustworthiness
    assert np.array_equal(neighbour_preservation(high, low, 10, chunk_size=3), whole.npr)


def test_an_identity_embedding_keeps_every_neighbourhood():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 2))
    assert neighbour_preservation(points, points, 15).tolist() == [1.0] * 200
    assert trustworthiness(points, points, 15) == 1.0
    # The same for a representation whose first two dimensions are all that vary.
    high = np.concatenate([points * 3, np.full((200, 30), 0.5)], 1)
    quality = neighbourhood_quality(high, points, 15)
    assert quality.npr.mean() == 1.0 and quality.trustworthiness == 1.0


def test_shuffled_2d_points_keep_almost_no_neighbourhood():
    high, low = flat_in_high_dimensions()
    assert neighbour_preservation(high, low, 15).mean() > 0.99
    shuffled = low[np.random.default_rng(2).permutation(len(low))]
    assert neighbour_preservation(high, shuffled, 15).mean() < 0.05  # chance: 15 / 999
    assert trustworthiness(high, shuffled, 15) < 0.6


def test_float16_representations_and_tensors_are_read_as_float32():
    high, low = clusters()
    expected = neighbour_preservation(high.astype(np.float16).astype(np.float32), low)
    assert np.array_equal(neighbour_preservation(high.astype(np.float16), low), expected)
    assert np.array_equal(neighbour_preservation(torch.tensor(high, dtype=torch.float16), torch.tensor(low)), expected)


def test_too_few_samples_is_an_error_naming_the_counts():
    points = np.random.default_rng(0).normal(size=(10, 5))
    with pytest.raises(DynamicsError, match="15 neighbours need at least 16 samples, got 10"):
        nearest_neighbours(points, 15)
    with pytest.raises(DynamicsError, match="15 neighbours need at least 16 samples, got 10"):
        neighbour_preservation(points, points[:, :2], 15)
    with pytest.raises(DynamicsError, match="needs at least 11 samples .* got 10"):
        trustworthiness(points, points[:, :2], 5)
    with pytest.raises(DynamicsError, match="at least 1, got 0"):
        nearest_neighbours(points, 0)


def test_mismatched_and_non_finite_inputs_are_errors():
    points = np.random.default_rng(0).normal(size=(40, 5))
    with pytest.raises(DynamicsError, match="40 representations but 39 2D points"):
        neighbour_preservation(points, points[:39, :2])
    with pytest.raises(DynamicsError, match="NaN"):
        nearest_neighbours(np.where(points > 2, np.nan, points), 3)
    with pytest.raises(DynamicsError, match=r"\(samples, dimensions\)"):
        nearest_neighbours(points[:, 0], 3)
    with pytest.raises(DynamicsError, match="3 predictions but 2"):
        prediction_preservation([1, 2, 3], [1, 2])


def test_prediction_preservation_is_the_share_equal():
    assert prediction_preservation([0, 1, 2, 3], [0, 1, 2, 0]) == 0.75
    assert prediction_preservation(torch.tensor([4, 4]), np.array([4, 4])) == 1.0
    assert np.isnan(prediction_preservation([], []))


def test_movement_in_proportion_correlates_fully():
    rng = np.random.default_rng(0)
    before = rng.normal(size=(100, 20))
    speed = rng.uniform(0.1, 2.0, 100)
    direction = rng.normal(size=(100, 20))
    after = before + direction / np.linalg.norm(direction, axis=1, keepdims=True) * speed[:, None]
    low_before = rng.normal(size=(100, 2))
    turn = rng.normal(size=(100, 2))
    low_after = low_before + turn / np.linalg.norm(turn, axis=1, keepdims=True) * (3 * speed[:, None])
    assert movement_correlation(before, after, low_before, low_after) == pytest.approx(1.0)
    # Moving the most in 2D exactly those that moved the least: -1.
    backwards = low_before + (low_after - low_before) / (speed[:, None] ** 2)
    assert movement_correlation(before, after, low_before, backwards) == pytest.approx(-1.0)


def test_constant_movements_give_nan_not_an_error():
    rng = np.random.default_rng(0)
    high, low = rng.integers(-9, 9, size=(50, 8)).astype(np.float32), rng.normal(size=(50, 2))
    moved = low + rng.normal(size=(50, 2))
    assert np.isnan(movement_correlation(high, high, low, moved))  # no sample moved in the representation
    assert np.isnan(movement_correlation(high, high + 1, low, moved))  # all moved alike
    assert np.isnan(movement_correlation(high, high + rng.normal(size=(50, 8)), low, low))
    assert np.isnan(neighbourhood_change_correlation(high, high, low, moved, 5))  # no neighbourhood changed
    assert np.isnan(movement_correlation(high[:1], high[:1] + 1, low[:1], moved[:1]))


def test_neighbourhood_change_follows_2d_movement():
    # Ten tight groups of six, far apart: each sample's five nearest are the rest of its group. Then
    # groups 0 and 1 and groups 2 and 3 swap halves: their samples keep 2 of their 5 neighbours.
    rng = np.random.default_rng(0)
    group = np.repeat(np.arange(10), 6)
    centres = rng.normal(size=(12, 16)) * 100
    before = centres[group] + rng.normal(scale=0.01, size=(60, 16))
    mixed = group.copy()
    half = np.tile(np.arange(6) < 3, 10)
    swapped = (group < 4) & half
    mixed[swapped] = 10 + group[swapped] // 2  # halves of 0 and 1 to a new place, halves of 2 and 3 to another
    after = centres[mixed] + rng.normal(scale=0.01, size=(60, 16))
    low_before = rng.integers(-20, 20, size=(60, 2)).astype(np.float64)  # whole numbers: equal moves are equal
    changed = group < 4
    kept = [len(set(b) & set(a)) for b, a in zip(nearest_neighbours(before, 5), nearest_neighbours(after, 5))]
    assert kept == [2] * 24 + [5] * 36
    low_after = low_before + changed[:, None] * [7.0, 0.0]  # the mixed groups move in 2D, the others stay
    assert neighbourhood_change_correlation(before, after, low_before, low_after, k=5) == pytest.approx(1.0)
    assert neighbourhood_change_correlation(before, after, low_before, low_before + ~changed[:, None], 5) == pytest.approx(-1.0)
    known = (nearest_neighbours(before, 5), nearest_neighbours(after, 5))
    assert neighbourhood_change_correlation(before, after, low_before, low_after, 5, high_neighbours=known) == pytest.approx(1.0)
    with pytest.raises(DynamicsError, match=r"two \(60, 5\) arrays"):
        neighbourhood_change_correlation(before, after, low_before, low_after, 5, high_neighbours=(known[0][:30], known[1]))


def test_lower_memory_limits_split_the_work_but_not_the_answer(monkeypatch):
    from epochal.dynamics import quality

    high, low = clusters(n=600, width=24)
    expected = sklearn_trustworthiness(high, np.random.default_rng(3).normal(size=low.shape), n_neighbors=15)
    monkeypatch.setattr(quality, "CHUNK_BYTES", 600 * 4 * 5)  # five rows a chunk
    monkeypatch.setattr(quality, "MAX_RANKED", 64)  # halve the rows until at most 64 distances are ranked
    assert trustworthiness(high, np.random.default_rng(3).normal(size=low.shape), 15) == expected
    assert quality.trustworthiness(high, low, 15) == sklearn_trustworthiness(high, low, n_neighbors=15)


def test_trajectory_correlation_is_per_sample_over_epochs():
    from epochal.dynamics.quality import trajectory_correlation

    rng = np.random.default_rng(0)
    high = rng.random((6, 50))
    assert trajectory_correlation(high, 3 * high + 1) == pytest.approx(1.0)
    assert trajectory_correlation(high, -high) == pytest.approx(-1.0)
    # Scaling each sample's 2D moves differently keeps each trajectory's order: still 1.
    assert trajectory_correlation(high, high * rng.random(50)) == pytest.approx(1.0)
    # A sample whose 2D moves never vary is left out of the mean.
    low = high.copy()
    low[:, 0] = 1.0
    low[:, 1] = -high[:, 1]
    assert trajectory_correlation(high, low) == pytest.approx(47 / 49)
    with pytest.raises(DynamicsError, match="at least 3 pairs of consecutive epochs"):
        trajectory_correlation(high[:2], high[:2])
    with pytest.raises(DynamicsError, match=r"one shape, got \(6, 50\) and \(6, 49\)"):
        trajectory_correlation(high, high[:, 1:])
