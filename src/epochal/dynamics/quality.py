"""How well a 2D projection keeps the representations' neighbourhoods, predictions and movements.

    >>> neighbour_preservation(representations, coords, k=15).mean()     # NPR@15
    >>> trustworthiness(representations, coords, k=15)                    # Venna & Kaski
    >>> movement_correlation(reps_1, reps_2, coords_1, coords_2)          # temporal, over samples
    >>> trajectory_correlation(high_moves, low_moves)                     # temporal, per sample

Every measure is exact: nearest neighbours come from all pairwise distances, never from an
approximate index. The distances of high-dimensional points are computed a chunk of rows at a time
(``chunk_size`` rows against all points, about 64 MB of float32 per chunk by default), so 20,000
samples need no 20,000 x 20,000 matrix; points of one to three dimensions go through a KD-tree.
Distances are float32 unless the points are float64. Where distances tie exactly, the neighbour
with the lower index comes first; trustworthiness ranks a neighbour as the nearest of those it ties
with.

The correlations are Spearman's, over samples (``trajectory_correlation``: over each sample's epochs). They are nan, not an error, when one side does not
vary (every sample moved as far as every other, or none moved) or when there are fewer than two
samples: no order means no correlation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from epochal.errors import DynamicsError

__all__ = [
    "NeighbourhoodQuality",
    "movement_correlation",
    "nearest_neighbours",
    "neighbour_preservation",
    "neighbourhood_change_correlation",
    "neighbourhood_quality",
    "prediction_preservation",
    "trajectory_correlation",
    "trustworthiness",
]

#: Bytes of one chunk's float32 distances (rows x all points) when no chunk_size is given.
CHUNK_BYTES = 64 * 2**20
#: Points of at most this many dimensions go through a KD-tree instead of chunked distances.
KD_TREE_DIMS = 3
#: Most distances ranked at once when computing trustworthiness (about 40 bytes each).
MAX_RANKED = 2**21


@dataclass(frozen=True)
class NeighbourhoodQuality:
    """The neighbourhood measures of one projection, from one pass over the high-dimensional distances.

    Examples:
        >>> quality = neighbourhood_quality(representations, coords, k=15)
        >>> quality.npr.mean(), quality.trustworthiness
    """

    npr: np.ndarray  # per sample, the share of its k nearest neighbours kept in 2D; its mean is NPR@k
    trustworthiness: float  # Venna & Kaski's, as sklearn.manifold.trustworthiness computes it
    high_neighbours: np.ndarray  # (samples, k): nearest first, in the representation
    low_neighbours: np.ndarray  # (samples, k): nearest first, in 2D


def nearest_neighbours(points: Any, k: int, *, chunk_size: int | None = None) -> np.ndarray:
    """The ``k`` nearest neighbours of every point by Euclidean distance, itself excluded, nearest first.

    Returns:
        (samples, k) int64 positions into ``points``.

    Raises:
        DynamicsError: when there are not more points than ``k``.
    """
    x = _points(points, "points")
    _check_k(k, len(x))
    if x.shape[1] <= KD_TREE_DIMS:
        return _tree_neighbours(x, k)
    neighbours = np.empty((len(x), k), dtype=np.int64)
    for rows, distances in _distance_chunks(x, chunk_size):
        neighbours[rows] = _smallest(distances, k)[0]
    return neighbours


def neighbourhood_quality(high: Any, low: Any, k: int = 15, *, chunk_size: int | None = None) -> NeighbourhoodQuality:
    """NPR per sample and trustworthiness together, computing the high-dimensional distances once.

    Raises:
        DynamicsError: when ``high`` and ``low`` hold different numbers of samples, or fewer than
            ``2 * k + 1`` (trustworthiness is defined for k < samples / 2).
    """
    x, y = _pair(high, low)
    _check_trust_k(k, len(x))
    low_nn = nearest_neighbours(y, k)
    if x.shape[1] <= KD_TREE_DIMS:
        high_nn = _tree_neighbours(x, k)
        penalty = sum(_penalty(d, low_nn[rows], k) for rows, d in _distance_chunks(x, chunk_size))
    else:
        high_nn = np.empty((len(x), k), dtype=np.int64)
        penalty = 0
        for rows, distances in _distance_chunks(x, chunk_size):
            high_nn[rows], kth = _smallest(distances, k)
            penalty += _penalty(distances, low_nn[rows], k, kth)
    return NeighbourhoodQuality(npr=_overlap(high_nn, low_nn) / k, trustworthiness=_trust(penalty, len(x), k),
                                high_neighbours=high_nn, low_neighbours=low_nn)


def neighbour_preservation(high: Any, low: Any, k: int = 15, *, chunk_size: int | None = None) -> np.ndarray:
    """Per sample, the share of its ``k`` nearest neighbours in ``high`` that are among its ``k`` nearest in ``low``.

    Its mean is NPR@k: 1 when the projection keeps every neighbourhood, about k / samples for a
    random one.
    """
    x, y = _pair(high, low)
    return _overlap(nearest_neighbours(x, k, chunk_size=chunk_size), nearest_neighbours(y, k)) / k


def trustworthiness(high: Any, low: Any, k: int = 15, *, chunk_size: int | None = None) -> float:
    """Venna & Kaski's trustworthiness: how far the 2D neighbours are from being true neighbours.

    1 minus the normalised sum, over every sample and each of its ``k`` nearest neighbours in
    ``low`` that is not among its ``k`` nearest in ``high``, of that neighbour's rank in ``high``
    beyond ``k``. Equal to ``sklearn.manifold.trustworthiness(high, low, n_neighbors=k)``, without
    its samples x samples matrix.

    Raises:
        DynamicsError: when there are fewer than ``2 * k + 1`` samples.
    """
    x, y = _pair(high, low)
    _check_trust_k(k, len(x))
    low_nn = nearest_neighbours(y, k)
    penalty = sum(_penalty(d, low_nn[rows], k) for rows, d in _distance_chunks(x, chunk_size))
    return _trust(penalty, len(x), k)


def prediction_preservation(predicted: Any, predicted_from_decoded: Any) -> float:
    """PPR: the share of samples whose decoded 2D point is classified as the sample was; nan for none."""
    a, b = np.asarray(predicted).ravel(), np.asarray(predicted_from_decoded).ravel()
    if a.shape != b.shape:
        raise DynamicsError(f"{len(a)} predictions but {len(b)} predictions from decoded points; give one each per sample")
    return float((a == b).mean()) if len(a) else float("nan")


def movement_correlation(high_before: Any, high_after: Any, low_before: Any, low_after: Any) -> float:
    """Spearman correlation over samples of how far each moved in the representation and how far in 2D.

    nan when either movement is the same for every sample (nothing moved, say).
    """
    hb, ha = _pair(high_before, high_after, "representations before", "representations after")
    lb, la = _pair(low_before, low_after, "2D points before", "2D points after")
    _pair(hb, lb, "representations", "2D points")
    return _spearman(_distance(hb, ha), _distance(lb, la))


def trajectory_correlation(high_moves: Any, low_moves: Any) -> float:
    """Per sample, the Spearman correlation over its epochs of how far it moved in the representation
    and how far in 2D; the mean over samples.

    Where :func:`movement_correlation` asks whether the samples that moved most between two epochs
    moved most in 2D, this asks whether each sample's 2D trajectory makes its big steps when its
    representation does. Both arguments are
    (pairs of consecutive epochs, samples) distances; it needs at least three pairs. Samples whose
    moves do not vary on one side are left out; nan when none is left.
    """
    from scipy.stats import rankdata

    high, low = np.asarray(high_moves, dtype=np.float64), np.asarray(low_moves, dtype=np.float64)
    if high.ndim != 2 or high.shape != low.shape:
        raise DynamicsError(f"high_moves and low_moves must be (pairs, samples) arrays of one shape, got {high.shape} and {low.shape}")
    if high.shape[0] < 3:
        raise DynamicsError(f"a trajectory correlation needs at least 3 pairs of consecutive epochs (4 epochs), got {high.shape[0]}")
    rh, rl = rankdata(high, axis=0), rankdata(low, axis=0)
    rh, rl = rh - rh.mean(0), rl - rl.mean(0)
    scale = np.sqrt((rh**2).sum(0) * (rl**2).sum(0))
    varies = scale > 0
    return float(((rh * rl).sum(0)[varies] / scale[varies]).mean()) if varies.any() else float("nan")


def neighbourhood_change_correlation(
    high_before: Any, high_after: Any, low_before: Any, low_after: Any, k: int = 15, *,
    chunk_size: int | None = None, high_neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Spearman correlation of each sample's neighbourhood change in the representation and its 2D movement.

    The change is the share of the sample's ``k`` nearest neighbours at the first epoch that are
    not among them at the second. nan when either side is the same for every sample.

    Args:
        high_neighbours: the ``(before, after)`` neighbours when already known (from
            :func:`neighbourhood_quality`), so they are not computed again.
    """
    hb, ha = _pair(high_before, high_after, "representations before", "representations after")
    lb, la = _pair(low_before, low_after, "2D points before", "2D points after")
    _pair(hb, lb, "representations", "2D points")
    if high_neighbours is None:
        before, after = (nearest_neighbours(h, k, chunk_size=chunk_size) for h in (hb, ha))
    else:
        before, after = (np.asarray(n)[:, :k] for n in high_neighbours)
        if before.shape != (len(hb), k) or after.shape != (len(hb), k):
            raise DynamicsError(f"high_neighbours must be two ({len(hb)}, {k}) arrays, got {before.shape} and {after.shape}")
    change = 1.0 - _overlap(before, after) / k
    return _spearman(change, _distance(lb, la))


# -- inside --------------------------------------------------------------------------------------


def _points(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    if x.ndim != 2:
        raise DynamicsError(f"{name} must be a (samples, dimensions) array, got shape {x.shape}")
    if x.dtype != np.float64:
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DynamicsError(f"{name} hold NaN or infinite values")
    return x


def _pair(a: Any, b: Any, name_a: str = "representations", name_b: str = "2D points") -> tuple[np.ndarray, np.ndarray]:
    x, y = _points(a, name_a), _points(b, name_b)
    if len(x) != len(y):
        raise DynamicsError(f"{len(x)} {name_a} but {len(y)} {name_b}; give one of each per sample")
    return x, y


def _check_k(k: int, n: int) -> None:
    if k < 1:
        raise DynamicsError(f"the number of neighbours must be at least 1, got {k}")
    if k >= n:
        raise DynamicsError(f"{k} neighbours need at least {k + 1} samples, got {n}")


def _check_trust_k(k: int, n: int) -> None:
    _check_k(k, n)
    if 2 * k >= n:
        raise DynamicsError(f"trustworthiness with {k} neighbours needs at least {2 * k + 1} samples (k < samples / 2), got {n}")


def _chunk_rows(n: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise DynamicsError(f"chunk_size must be at least 1, got {chunk_size}")
        return chunk_size
    return max(1, CHUNK_BYTES // (4 * n))


def _distance_chunks(x: np.ndarray, chunk_size: int | None) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, squared distances of those rows to every point, inf to themselves), a chunk at a time."""
    import torch

    n = len(x)
    direct = x.shape[1] <= KD_TREE_DIMS  # a few dimensions: the differences themselves, no cancellation
    step = _chunk_rows(n, chunk_size)
    if direct and chunk_size is None:
        step = max(1, step // (2 * x.shape[1]))  # the differences take (rows, n, dimensions) of float64
    points = torch.from_numpy(x - x.mean(0))  # centred: less cancellation in |a|^2 + |b|^2 - 2ab
    norms = points.pow(2).sum(1)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        if direct:
            chunk = (points[rows, None, :] - points[None, :, :]).pow_(2).sum(2)
        else:
            chunk = torch.addmm(norms[None, :], points[rows], points.T, alpha=-2).add_(norms[rows, None])
            chunk.clamp_min_(0)
        chunk[torch.arange(rows.stop - rows.start), torch.arange(rows.start, rows.stop)] = float("inf")
        yield rows, chunk.numpy()


def _smallest(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``k`` smallest of each row, smallest first, exact ties by position; and the k-th values."""
    import torch

    values, found = torch.topk(torch.from_numpy(distances), min(k + 1, distances.shape[1]), dim=1, largest=False)
    values, found = values.numpy(), found.numpy().astype(np.int64)
    found = _ordered(values, found, k)
    if values.shape[1] > k:  # where the k-th and the (k+1)-th tie, the tied ones go in by position
        for row in np.flatnonzero(values[:, k] == values[:, k - 1]):
            found[row] = _by_position(distances[row], k)
    return found, values[:, k - 1]


def _tree_neighbours(x: np.ndarray, k: int) -> np.ndarray:
    from scipy.spatial import cKDTree

    points = x.astype(np.float64)
    distances, found = cKDTree(points).query(points, min(k + 2, len(x)))
    found = found.astype(np.int64)
    own = found == np.arange(len(x))[:, None]
    lost = ~own.any(1)  # as many duplicates of it as were asked for: decided below
    own[lost, -1] = True
    kept = found[~own].reshape(len(x), -1)
    kept_distances = distances[~own].reshape(len(x), -1)
    result = _ordered(kept_distances, kept, k)
    tied = lost.copy()
    if kept.shape[1] > k:
        tied |= kept_distances[:, k] == kept_distances[:, k - 1]
    for row in np.flatnonzero(tied):
        row_distances = ((points - points[row]) ** 2).sum(1)
        row_distances[row] = np.inf
        result[row] = _by_position(row_distances, k)
    return result


def _ordered(values: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` of each row's ``positions`` by value and then by position."""
    by_position = np.argsort(positions, axis=1, kind="stable")
    by_value = np.argsort(np.take_along_axis(values, by_position, 1), axis=1, kind="stable")
    return np.take_along_axis(positions, np.take_along_axis(by_position, by_value, 1)[:, :k], 1)


def _by_position(row: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest of one row, ties by position."""
    return np.lexsort((np.arange(len(row)), row))[:k].astype(np.int64)


def _penalty(distances: np.ndarray, low_nn: np.ndarray, k: int, kth: np.ndarray | None = None) -> int:
    """Sum over each row's 2D neighbours of max(0, rank in the row - k), rank 1 the nearest.

    Only neighbours farther than the row's k-th nearest point have a rank beyond k, and their
    ranks are counted among the points nearer than the farthest of them, so a good projection
    costs little more than its distances.
    """
    wanted = np.take_along_axis(distances, low_nn, 1)
    if kth is None:
        kth = _kth(distances, k)
    far = wanted > kth[:, None]  # the others have rank <= k (ties: counted as the nearest of them)
    if not far.any():
        return 0
    thresholds = np.sort(np.where(far, wanted, -np.inf), axis=1)  # per row: -inf, ..., the far ones ascending
    return _rank_penalty(distances, distances < thresholds[:, -1:], thresholds, k)


def _rank_penalty(distances: np.ndarray, nearer: np.ndarray, thresholds: np.ndarray, k: int) -> int:
    """The penalty of ``thresholds``' finite values, each ranked among the ``nearer`` values of its row."""
    selected = nearer.sum()
    if selected * 4 > nearer.size:  # most of every row: sorting the rows is quicker
        below = _count_below(np.sort(distances, axis=1), thresholds)
        return int(np.where(np.isfinite(thresholds), below + 1 - k, 0).sum())
    if selected > MAX_RANKED and len(distances) > 1:  # bounded memory: half the rows at a time
        half = len(distances) // 2
        return sum(_rank_penalty(distances[part], nearer[part], thresholds[part], k)
                   for part in (slice(0, half), slice(half, None)))
    flat = np.flatnonzero(nearer)
    row = flat // distances.shape[1]
    values = distances.ravel()[flat]
    # Each value's bucket: how many of its row's thresholds are <= it (binary search, thresholds sorted).
    lo = np.zeros(len(flat), dtype=np.int64)
    hi = np.full(len(flat), k, dtype=np.int64)
    for _ in range(int(k).bit_length()):
        mid = (lo + hi) // 2
        up = (lo < hi) & (thresholds[row, np.minimum(mid, k - 1)] <= values)
        lo, hi = np.where(up, mid + 1, lo), np.where(up | (lo == hi), hi, mid)
    # A value is below the j-th threshold when its bucket is at most j.
    buckets = np.bincount(row * (k + 1) + lo, minlength=len(distances) * (k + 1)).reshape(-1, k + 1)
    below = np.cumsum(buckets, axis=1)[:, :k]
    return int(np.where(np.isfinite(thresholds), below + 1 - k, 0).sum())


def _count_below(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, how many entries of ``ordered``'s row (sorted) are below each of ``values``'s row."""
    rows = np.arange(len(ordered))[:, None]
    lo = np.zeros(values.shape, dtype=np.int64)
    hi = np.full(values.shape, ordered.shape[1], dtype=np.int64)
    for _ in range(int(ordered.shape[1]).bit_length()):
        mid = (lo + hi) // 2
        below = (lo < hi) & (ordered[rows, np.minimum(mid, ordered.shape[1] - 1)] < values)
        lo, hi = np.where(below, mid + 1, lo), np.where(below | (lo == hi), hi, mid)
    return lo


def _kth(distances: np.ndarray, k: int) -> np.ndarray:
    import torch

    return torch.topk(torch.from_numpy(distances), k, dim=1, largest=False).values[:, -1].numpy()


def _trust(penalty: int, n: int, k: int) -> float:
    return float(1.0 - penalty * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, how many of ``a``'s entries are among ``b``'s (entries unique within a row)."""
    n = np.int64(max(a.max(initial=0), b.max(initial=0)) + 1)
    rows = np.arange(len(a), dtype=np.int64)[:, None]
    return np.isin(rows * n + a, rows * n + b).sum(1)


def _distance(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.sqrt(((after.astype(np.float64) - before) ** 2).sum(1))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2
    scale = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / scale) if scale > 0 else float("nan")
