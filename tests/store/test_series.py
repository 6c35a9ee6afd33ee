import numpy as np
import pytest

from epochal.store.records import History
from epochal.store.series import downsample


def _history(values):
    n = len(values)
    steps = np.arange(n, dtype=np.int64)
    return History("k", steps, steps // 10, np.asarray(values, dtype=np.float64), steps.astype(np.float64))


def test_downsample_keeps_spikes_ends_and_nans():
    values = np.sin(np.linspace(0, 20, 100_000))
    values[12_345] = 50.0
    values[67_890] = -50.0
    values[99_000] = np.nan
    small = downsample(_history(values), 1000)
    assert len(small) <= 1000 + 50
    assert 50.0 in small.values and -50.0 in small.values
    assert np.isnan(small.values).sum() == 1
    assert small.steps[0] == 0 and small.steps[-1] == 99_999
    assert np.all(np.diff(small.steps) > 0)
    # every kept point is a real point of the series
    assert np.array_equal(small.values[~np.isnan(small.values)],
                          values[small.steps][~np.isnan(small.values)])


def test_short_series_is_returned_whole():
    h = _history([1.0, 2.0, 3.0])
    assert downsample(h, 10) is h


def test_max_points_must_be_positive():
    with pytest.raises(ValueError, match="max_points"):
        downsample(_history([1.0, 2.0]), 0)
