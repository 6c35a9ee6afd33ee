"""Smoothing a series for a chart: exponential moving averages over every stored point.

The dashboard asks the server for a smoothed curve (``GET /api/runs/{run}/series?smoothing=0.6``)
instead of smoothing the few thousand min/max points it draws, so that the curve does not change
with zoom or window size. Both methods take a weight ``w`` in [0, 1): 0 leaves the values as they
are, and the closer to 1, the smoother. Non-finite values (NaN, ±inf) do not enter the average and
come back as NaN, so a chart shows them as gaps. ::

    import numpy as np
    from epochal.smoothing import smooth

    steps = np.arange(1_000_000)
    values = np.random.default_rng(0).normal(size=steps.size)
    curve = smooth(steps, values, 0.9, "time_ema")   # a few hundredths of a second

Methods:

- ``ema``: TensorBoard's debiased exponential moving average, per point in stored order:
  ``s_n = w * s_(n-1) + (1 - w) * v_n`` from ``s_0 = 0``, shown as ``s_n / (1 - w**n)`` where ``n``
  counts the finite values so far (the debiasing keeps the start from leaning towards 0).
- ``time_ema``: the same average with the decay set by the gap in x (the step) between points,
  so that logging more often in one place does not pull the curve there:
  ``d_n = w ** ((x_n - x_(n-1)) / g)``, ``s_n = d_n * s_(n-1) + (1 - d_n) * v_n``, shown as
  ``s_n / (1 - d_1 * d_2 * ... * d_n)``, with ``d_1 = w``. ``g``, the typical gap, is the median
  gap between consecutive steps that hold a finite value, so ``w`` means what it means in ``ema``
  per typical logging interval, and where a series is logged at evenly spaced steps the two
  methods give the same curve. Equivalently, the smoothed value at ``x`` is the average of the
  values before it weighted by ``(1 - d_j) * w ** ((x - x_j) / g)``. Values logged at the same step
  count as one value, their mean, and every point at that step gets the same smoothed value.

The x of ``time_ema`` is the step whatever a chart's x axis shows: steps order the stored series, an
epoch holds many points, and wall time would count a pause or a resume as a long gap. The
time-weighted recurrence has a coefficient per point, which ``scipy.signal.lfilter`` cannot take;
it runs as a prefix scan of log2(n) vectorised passes (about 0.2 s for 1,000,000 unevenly spaced
points), and as ``lfilter`` where the steps are evenly spaced.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.signal import lfilter

Method = Literal["time_ema", "ema"]
#: The methods, the default first.
METHODS: tuple[Method, ...] = ("time_ema", "ema")


def smooth(x: np.ndarray, values: np.ndarray, weight: float, method: Method = "time_ema") -> np.ndarray:
    """``values`` smoothed with ``weight`` in [0, 1) by ``method``; NaN where a value is not finite.

    ``x`` is the step of each value, in ascending order (``time_ema`` uses it; ``ema`` does not).
    """
    if not 0 <= weight < 1:
        raise ValueError(f"the smoothing weight must be at least 0 and below 1, got {weight}")
    if method == "ema":
        return ema(values, weight)
    if method == "time_ema":
        return time_ema(x, values, weight)
    raise ValueError(f"unknown smoothing method {method!r}; the methods are {', '.join(METHODS)}")


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average of the finite ``values``, point by point."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    seen = values[finite]
    if not len(seen):
        return out
    average = lfilter([1.0 - weight], [1.0, -weight], seen)
    out[finite] = average / -np.expm1(np.arange(1, len(seen) + 1) * np.log(weight)) if weight > 0 else seen
    return out


def time_ema(x: np.ndarray, values: np.ndarray, weight: float) -> np.ndarray:
    """The exponential moving average of the finite ``values`` with a decay per gap in ``x``
    (ascending), debiased; see the module's docstring for the definition."""
    x = np.asarray(x, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    at, seen = x[finite], values[finite]
    if not len(seen) or weight == 0:
        out[finite] = seen
        return out
    # One value per step: the mean of those logged there.
    first = np.concatenate(([True], at[1:] != at[:-1]))
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(seen)))
    distinct = at[starts]
    means = seen if len(starts) == len(seen) else np.add.reduceat(seen, starts) / counts
    gaps = np.diff(distinct)
    if not len(gaps):
        average = means
    elif gaps.min() == gaps.max():
        average = ema(means, weight)  # evenly spaced: the decay is w at every point
    else:
        exponent = np.concatenate(([1.0], gaps / np.median(gaps))) * np.log(weight)
        # 1 - d_1 * ... * d_n: the weight the values seen so far hold (the rest sits on s_0 = 0).
        held = -np.expm1(np.cumsum(exponent))
        average = _linear_scan(np.exp(exponent), -np.expm1(exponent) * means) / held
    out[finite] = average if len(starts) == len(seen) else np.repeat(average, counts)
    return out


def _linear_scan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``s`` with ``s[i] = a[i] * s[i-1] + b[i]`` and ``s[-1] = 0``, without a loop per element.

    Pairs ``(a, b)`` compose like affine maps, so a prefix scan (Hillis and Steele) of log2(n)
    vectorised passes gives every ``s[i]``. Only products of numbers in [0, 1] and sums of
    weighted values are formed, so nothing overflows whatever the weight and the gaps.
    """
    a, s = a.copy(), b.copy()
    shift = 1
    while shift < len(s):
        s[shift:] += a[shift:] * s[:-shift]
        a[shift:] *= a[:-shift]
        shift *= 2
    return s
