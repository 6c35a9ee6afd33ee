"""Turning stored chunks into a History: supersede rewound steps, order, downsample."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from epochal.errors import StoreError
from epochal.store import encoding
from epochal.store.records import History


def assemble(key: str, chunks: Sequence[tuple[int, bytes]], *, superseded: bool = False) -> History:
    """Build a key's history from its ``(segment, blob)`` chunks in write order.

    A resumed run writes a new segment. Where a newer segment logged this key,
    the older segments' points at or after its first step belong to a future
    that was abandoned (the run went back to a checkpoint), so the newest
    timeline wins for those steps. ``superseded=True`` keeps every point.
    """
    if not chunks:
        empty_i, empty_f = np.empty(0, np.int64), np.empty(0, np.float64)
        return History(key, empty_i, empty_i.copy(), empty_f, empty_f.copy())
    try:
        sizes = [encoding.count(blob) for _, blob in chunks]
        total = sum(sizes)
        steps, epochs = np.empty(total, np.int64), np.empty(total, np.int64)
        values, times = np.empty(total, np.float64), np.empty(total, np.float64)
        start = 0
        for (_, blob), size in zip(chunks, sizes):
            end = start + size
            encoding.decode_into(blob, steps[start:end], epochs[start:end], values[start:end], times[start:end])
            start = end
    except encoding.DamagedChunkError as exc:
        raise StoreError(f"the series of key {key!r} cannot be read: {exc}") from None
    segments = [segment for segment, _ in chunks]
    if not superseded and min(segments) != max(segments):
        keep = _newest_timeline(steps, segments, sizes)
        steps, epochs, values, times = steps[keep], epochs[keep], values[keep], times[keep]
    if len(steps) > 1 and not np.all(steps[1:] >= steps[:-1]):
        order = np.argsort(steps, kind="stable")
        steps, epochs, values, times = steps[order], epochs[order], values[order], times[order]
    return History(key, steps, epochs, values, times)


def _newest_timeline(steps: np.ndarray, segments: list[int], sizes: list[int]) -> np.ndarray:
    point_segment = np.repeat(np.asarray(segments), sizes)
    first_step = {s: int(steps[point_segment == s].min()) for s in sorted(set(segments))}
    # cutoff[s]: the lowest first step of any segment newer than s.
    cutoff, lowest = {}, np.iinfo(np.int64).max
    for s in sorted(first_step, reverse=True):
        cutoff[s] = lowest
        lowest = min(lowest, first_step[s])
    limits = np.array([cutoff[s] for s in segments], dtype=np.int64)
    return steps < np.repeat(limits, sizes)


def downsample(history: History, max_points: int) -> History:
    """Keep about ``max_points`` points: each bucket's lowest and highest value.

    Buckets are equal runs of consecutive points. The first and last point and
    the first non-finite value of each bucket are kept too, so neither spikes
    nor NaNs disappear from a chart.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if len(history) <= max_points:
        return history
    keep = extremes(history.values, max_points)
    return History(
        history.key, history.steps[keep], history.epochs[keep], history.values[keep], history.times[keep]
    )


def extremes(values: np.ndarray, max_points: int) -> np.ndarray:
    """Sorted indices of about ``max_points`` of ``values``: first, last, and per bucket of equal
    runs its lowest, its highest and its first non-finite value."""
    n = len(values)
    buckets = max(1, (max_points - 2) // 2)
    bounds = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts, counts = bounds[:-1], np.diff(bounds)
    bucket_of = np.repeat(np.arange(buckets), counts)
    picks = [np.array([0, n - 1])]
    with np.errstate(invalid="ignore"):
        for reduce in (np.fmin, np.fmax):
            extreme = reduce.reduceat(values, starts)
            hit = np.flatnonzero(values == extreme[bucket_of])
            _, first = np.unique(bucket_of[hit], return_index=True)
            picks.append(hit[first])
    odd = np.flatnonzero(~np.isfinite(values))
    if len(odd):
        _, first = np.unique(bucket_of[odd], return_index=True)
        picks.append(odd[first])
    return np.unique(np.concatenate(picks))


def from_overviews(key: str, overview_chunks: Sequence[tuple[int, bytes]], max_points: int) -> History | None:
    """A key's series downsampled to about ``max_points`` from its chunks' overviews (each chunk's
    own extremes), without decoding every point; None where the overviews cannot stand in for the
    points: several segments (a resume hides older points, maybe extremes) or too few of them."""
    if not overview_chunks or len({segment for segment, _ in overview_chunks}) > 1:
        return None
    coarse = assemble(key, overview_chunks)
    if len(coarse) < max_points:
        return None
    return downsample(coarse, max_points)
