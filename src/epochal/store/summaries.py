"""What every backend keeps beside a key's points: its running summary and each chunk's overview.

A backend folds each chunk it appends into the key's :class:`RunningSummary` with :func:`folded`,
stores the chunk as :func:`stored_chunk` encodes it, and recomputes an inexact summary from the
whole history with :func:`refreshed`, so every backend answers the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from epochal.errors import StoreError
from epochal.keys import best_mode
from epochal.store import encoding, series
from epochal.store.records import History, KeySummary, SeriesChunk

#: A chunk of more than OVERVIEW_FROM points also stores an overview of about OVERVIEW_POINTS of
#: them (its extremes), so that charts of long series are drawn without decoding every point.
OVERVIEW_FROM = 1024
OVERVIEW_POINTS = 128


@dataclass(frozen=True)
class RunningSummary:
    """A key's summary as stored: min/max ignore NaN (None when every value is NaN)."""

    count: int
    last: float | None
    last_step: int
    min: float | None
    max: float | None
    segment: int  # the newest segment that logged the key
    exact: bool = True  # False once a resume went back in steps: min/max include superseded points

    def key_summary(self, key: str) -> tuple[KeySummary, bool]:
        """The :class:`KeySummary` readers get, and whether it is exact."""
        last = math.nan if self.last is None else self.last
        return KeySummary(key, self.count, last, self.last_step, self.min, self.max, best_mode(key)), self.exact


def folded(old: RunningSummary | None, chunk: SeriesChunk) -> RunningSummary:
    """``old`` (None for a new key) with the chunk's points added."""
    values, steps = chunk.values, chunk.steps
    low, high = _extremes(values)
    last, last_step = float(values[-1]), int(steps[-1])
    if old is None:
        return RunningSummary(len(values), last, last_step, low, high, chunk.segment)
    # A newer segment that goes back in steps makes the running min/max inexact.
    rewound = chunk.segment > old.segment and int(steps.min()) <= old.last_step
    return RunningSummary(
        old.count + len(values), last, last_step, _fold(min, old.min, low), _fold(max, old.max, high),
        max(old.segment, chunk.segment), old.exact and not rewound,
    )


def is_new_chunk(chunk: SeriesChunk, held: int) -> bool:
    """Whether a backend that holds ``held`` chunks of the chunk's key appends it: a chunk copied from
    another store (its ``seq`` set) is appended at its place once, so a batch sent twice is stored once;
    one that would leave a gap means chunks were lost on the way, which must not pass silently."""
    if chunk.seq is None or chunk.seq == held:
        return True
    if chunk.seq < held:
        return False
    raise StoreError(
        f"chunk {chunk.seq} of key {chunk.key!r} of run {chunk.run_id} arrived while the store holds {held} of "
        "its chunks: the ones between are missing; copy the run again (epochal sync)"
    )


def refreshed(old: RunningSummary, history: History) -> RunningSummary:
    """The exact summary of the key's whole (assembled) history."""
    low, high = _extremes(history.values)
    return RunningSummary(
        len(history), float(history.values[-1]), int(history.steps[-1]), low, high, old.segment, True
    )


def stored_chunk(chunk: SeriesChunk) -> tuple[bytes, bytes | None]:
    """The chunk encoded, and its overview (None: the chunk is small enough to be its own)."""
    steps, values = chunk.steps, chunk.values
    overview = None
    if len(values) > OVERVIEW_FROM:
        keep = series.extremes(values, OVERVIEW_POINTS)
        overview = encoding.encode(steps[keep], chunk.epochs[keep], values[keep], chunk.times_us[keep])
    return encoding.encode(steps, chunk.epochs, values, chunk.times_us), overview


def _extremes(values: np.ndarray) -> tuple[float | None, float | None]:
    with np.errstate(invalid="ignore"):
        low, high = np.fmin.reduce(values), np.fmax.reduce(values)
    return _real_or_none(low), _real_or_none(high)


def _real_or_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _fold(pick: Callable[[float, float], float], old: float | None, new: float | None) -> float | None:
    if old is None:
        return new
    if new is None:
        return old
    return pick(old, new)
