import numpy as np
import pytest

from epochal.store.encoding import decode, encode


@pytest.mark.parametrize("n", [0, 1, 2, 1000])
def test_round_trip_is_bit_exact(n):
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.integers(0, 5, n))
    epochs = steps // 100
    values = rng.normal(size=n)
    if n > 3:
        values[:3] = [np.nan, np.inf, -np.inf]
    times = 1_700_000_000_000_000 + np.cumsum(rng.integers(0, 1000, n))
    s, e, v, t = decode(encode(steps, epochs, values, times))
    assert s.tolist() == steps.tolist()
    assert e.tolist() == epochs.tolist()
    assert t.tolist() == times.tolist()
    assert v.view(np.uint64).tolist() == values.view(np.uint64).tolist()  # NaN payloads too


def test_typical_training_series_is_compact():
    n = 10_000
    steps = np.arange(n)
    loss = (np.exp(-steps / 3000) + 0.05 * np.random.default_rng(1).random(n)).astype(np.float32).astype(np.float64)
    times = 1_700_000_000_000_000 + steps * 900
    blob = encode(steps, steps // 500, loss, times)
    assert len(blob) / n < 8  # far below the 32 bytes of four raw columns


def test_unknown_format_is_refused():
    blob = bytearray(encode(np.arange(3), np.zeros(3, np.int64), np.ones(3), np.arange(3)))
    blob[0] = 99
    with pytest.raises(ValueError, match="format 99"):
        decode(bytes(blob))
