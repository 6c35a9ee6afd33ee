"""Series: a key's points for a chart (downsampled, optionally within an x range, optionally
smoothed over every stored point) and as CSV."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, WithJsonSchema

from epochal import smoothing as smoothing_ops
from epochal.server.models import Problem, Series, XAxis
from epochal.server.runs import RunRef, store_of
from epochal.store import series as series_ops
from epochal.store.records import History
from epochal.store.store import Store

router = APIRouter()

#: Decoded series kept in memory for zooming and live refreshes, up to this many bytes in all.
CACHE_BYTES = 512 * 2**20
#: Answers kept for repeated requests (every chart's full view, polled while a run is live).
VIEWS = 512
#: Smoothed series kept for zooming a smoothed chart, up to this many bytes in all.
SMOOTHED_BYTES = 128 * 2**20


def _weight(value: float) -> float:
    if not 0 <= value < 1:  # NaN too
        raise ValueError("the smoothing weight is a number in [0, 1): 0 for none, nearer to 1 for smoother")
    return value


#: A smoothing weight; the message of a bad one names the range (pydantic's would name one bound).
Weight = Annotated[
    float, AfterValidator(_weight), WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 1})
]


class HistoryCache:
    """Decoded histories by (run, key), dropped least recently used; stale once the key gains a chunk."""

    def __init__(self, budget: int = CACHE_BYTES):
        self.budget = budget
        self._items: OrderedDict[tuple[str, str], tuple[int | None, History]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.views: dict[tuple, Series] = {}
        self._smoothed: OrderedDict[tuple[str, str, float, str], tuple[int | None, np.ndarray]] = OrderedDict()
        self._smoothed_bytes = 0

    def get(self, store: Store, run_id: str, key: str, version: int | None) -> History:
        """The key's history as of ``version`` (from ``series_state``), decoded once per version."""
        with self._lock:
            hit = self._items.get((run_id, key))
            if hit is not None and hit[0] == version:
                self._items.move_to_end((run_id, key))
                return hit[1]
        history = store.history(run_id, key)
        size = _nbytes(history)
        with self._lock:
            old = self._items.pop((run_id, key), None)
            if old is not None:
                self._bytes -= _nbytes(old[1])
            if size <= self.budget:
                self._items[(run_id, key)] = (version, history)
                self._bytes += size
                while self._bytes > self.budget:
                    _, (_, dropped) = self._items.popitem(last=False)
                    self._bytes -= _nbytes(dropped)
        return history

    def smoothed(self, run_id: str, history: History, version: int | None, weight: float, method: str) -> np.ndarray:
        """``history``'s values smoothed over every point (see :mod:`epochal.smoothing`), once per version."""
        item = (run_id, history.key, weight, method)
        with self._lock:
            hit = self._smoothed.get(item)
            if hit is not None and hit[0] == version:
                self._smoothed.move_to_end(item)
                return hit[1]
        curve = smoothing_ops.smooth(history.steps, history.values, weight, method)  # type: ignore[arg-type]
        with self._lock:
            old = self._smoothed.pop(item, None)
            if old is not None:
                self._smoothed_bytes -= old[1].nbytes
            if curve.nbytes <= SMOOTHED_BYTES // 4:
                self._smoothed[item] = (version, curve)
                self._smoothed_bytes += curve.nbytes
                while self._smoothed_bytes > SMOOTHED_BYTES:
                    _, (_, dropped) = self._smoothed.popitem(last=False)
                    self._smoothed_bytes -= dropped.nbytes
        return curve

    def remember(self, view: tuple, answer: Series) -> None:
        with self._lock:
            self.views[view] = answer
            while len(self.views) > VIEWS:
                self.views.pop(next(iter(self.views)))


def _nbytes(history: History) -> int:
    return sum(a.nbytes for a in (history.steps, history.epochs, history.values, history.times))


@router.get(
    "/runs/{run}/series",
    response_model=Series,
    responses={404: {"model": Problem}, 422: {"model": Problem}},
)
def get_series(
    request: Request,
    run: RunRef,
    key: Annotated[str, Query(min_length=1, max_length=500)],
    x: XAxis = "step",
    min: Annotated[float | None, Query(description="lowest x to include", allow_inf_nan=False)] = None,
    max: Annotated[float | None, Query(description="highest x to include", allow_inf_nan=False)] = None,
    points: Annotated[int, Query(ge=2, le=100_000, description="about how many points to send")] = 2000,
    smoothing: Annotated[
        Weight | None,
        Query(description="also send `smoothed`: the values smoothed with this weight in [0, 1) over every stored "
                          "point in step order, then taken at the points sent (0: none; nearer to 1: smoother)"),
    ] = None,
    smoothing_method: Annotated[
        smoothing_ops.Method,
        Query(description="`time_ema`: an exponential moving average whose decay follows the gap in steps between "
                          "points (the weight applies per typical gap), so that points logged more often in one place "
                          "do not pull the curve; the same as `ema` where steps are evenly spaced. `ema`: "
                          "TensorBoard's debiased exponential moving average, per point"),
    ] = "time_ema",
) -> Series:
    store = store_of(request)
    record = store.run(run)
    cache: HistoryCache = request.app.state.histories
    state = store.series_state(record.id, key)
    method = None if smoothing is None else smoothing_method
    view = (record.id, key, state, x, min, max, points, smoothing, method)
    answer = cache.views.get(view)
    if answer is not None:
        return answer
    if smoothing is None and min is None and max is None and state is not None and state[1] > points:
        # The whole of a long series: from the store's chunk overviews, not every point decoded.
        shown = store.history(record.id, key, max_points=points)
        answer = _answer(shown, None, key, x, total=state[1], in_range=state[1])
    else:
        version = None if state is None else state[0]
        history = cache.get(store, record.id, key, version)
        first, end = _within(history, x, min, max)
        keep = np.arange(first, end)
        if len(keep) > points:
            keep = first + series_ops.extremes(history.values[first:end], points)
        shown = _take(history, keep)
        # Smoothed over every point, then taken at the points sent: the same curve at any zoom and size.
        smoothed = None
        if smoothing is not None:
            smoothed = cache.smoothed(record.id, history, version, smoothing, smoothing_method)[keep]
        answer = _answer(shown, smoothed, key, x, total=len(history), in_range=end - first)
    cache.remember(view, answer)
    return answer


def _answer(shown: History, smoothed: np.ndarray | None, key: str, x: str, *, total: int, in_range: int) -> Series:
    finite = np.isfinite(shown.values)
    return Series(
        key=key, x_axis=x, total=total, in_range=in_range, downsampled=len(shown) < in_range,
        x=_axis(shown, x).tolist(), y=_nulls(shown.values), nonfinite=int(len(finite) - finite.sum()),
        smoothed=None if smoothed is None else _nulls(smoothed),
    )


def _nulls(values: np.ndarray) -> list[float | None]:
    """``values`` as a list, with None for NaN and ±inf (JSON has neither)."""
    out: list[float | None] = values.tolist()
    for i in np.flatnonzero(~np.isfinite(values)):
        out[i] = None
    return out


@router.get(
    "/series.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "run,step,epoch,time,value"},
        404: {"model": Problem},
        422: {"model": Problem},
    },
)
def series_csv(
    request: Request,
    key: Annotated[str, Query(min_length=1, max_length=500)],
    run: Annotated[list[str], Query(min_length=1, max_length=50, description="one or more run ids")],
) -> StreamingResponse:
    """Every point of a key for one or more runs, at full resolution, values exactly as stored."""
    store = store_of(request)
    records = [store.run(ref) for ref in run]
    cache: HistoryCache = request.app.state.histories
    histories = [(r.id, cache.get(store, r.id, key, _version(store, r.id, key))) for r in records]
    filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in key) + ".csv"
    return StreamingResponse(
        _csv_lines(histories),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _version(store: Store, run_id: str, key: str) -> int | None:
    state = store.series_state(run_id, key)
    return None if state is None else state[0]


def _csv_lines(histories: list[tuple[str, History]]) -> Iterator[str]:
    yield "run,step,epoch,time,value\n"
    for run_id, h in histories:
        for start in range(0, len(h), 50_000):
            part = slice(start, start + 50_000)
            # repr() of a float reads back to the same float: the CSV is lossless.
            yield "".join(
                f"{run_id},{s},{e},{t!r},{v!r}\n"
                for s, e, t, v in zip(
                    h.steps[part].tolist(), h.epochs[part].tolist(), h.times[part].tolist(), h.values[part].tolist()
                )
            )


def _axis(history: History, x: str) -> np.ndarray:
    if x == "epoch":
        return history.epochs
    if x == "time":
        return history.times
    return history.steps


def _within(history: History, x: str, low: float | None, high: float | None) -> tuple[int, int]:
    """``(first, end)``: the indices of the points with low <= x <= high, plus one on each side so
    the line reaches the edges."""
    if low is None and high is None:
        return 0, len(history)
    axis = _axis(history, x)
    inside = np.ones(len(axis), dtype=bool)
    if low is not None:
        inside &= axis >= low
    if high is not None:
        inside &= axis <= high
    hits = np.flatnonzero(inside)
    if not len(hits):
        return 0, 0
    return int(max(hits[0] - 1, 0)), int(min(hits[-1] + 1, len(axis) - 1)) + 1


def _take(history: History, index: np.ndarray) -> History:
    h = history
    return History(h.key, h.steps[index], h.epochs[index], h.values[index], h.times[index])

