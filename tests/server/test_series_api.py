"""The series resource: downsampling that keeps spikes, x ranges for zooming, lossless CSV."""

import csv
import io
import math

import numpy as np
import pytest

import epochal


@pytest.fixture
def store(either_store):
    """Every test of this module on SQLite and on PostgreSQL."""
    return either_store


def test_a_short_series_comes_whole(client, ids):
    body = client.get(f"/api/runs/{ids['beta']}/series", params={"key": "train/loss"}).json()
    assert body["total"] == body["in_range"] == 300 and not body["downsampled"]
    assert body["x"] == list(range(300))
    assert body["y"][0] == pytest.approx(1.01) and body["nonfinite"] == 0


def test_nan_and_inf_come_as_null_and_are_counted(client, ids):
    body = client.get(f"/api/runs/{ids['alpha']}/series", params={"key": "odd"}).json()
    assert body["y"] == [None, None, 1.0] and body["nonfinite"] == 2


@pytest.fixture
def spiky(store):
    """A 100,000-point series with one spike that any honest downsampling keeps."""
    run = epochal.start("big", "spiky", store=store)
    values = np.sin(np.arange(100_000) / 500.0)
    values[54_321] = 40.0
    for step, value in enumerate(values.tolist()):
        run.log({"loss": value}, step=step, epoch=step // 10_000)
    run.finish()
    return run.id, values


@pytest.mark.parametrize("points", [2000, 500])  # 500: drawn from the chunks' overviews
def test_downsampling_keeps_about_the_asked_points_and_every_spike(client, spiky, points):
    run_id, values = spiky
    body = client.get(f"/api/runs/{run_id}/series", params={"key": "loss", "points": points}).json()
    assert body["downsampled"] and body["total"] == body["in_range"] == 100_000
    assert points / 2 <= len(body["x"]) <= points + 2
    assert max(body["y"]) == 40.0 and body["x"][body["y"].index(40.0)] == 54_321
    assert min(body["y"]) == pytest.approx(values.min())


def test_a_range_fetches_finer_points_with_one_neighbour_each_side(client, spiky):
    run_id, values = spiky
    body = client.get(f"/api/runs/{run_id}/series",
                      params={"key": "loss", "min": 54_000, "max": 55_000, "points": 2000}).json()
    assert body["in_range"] == 1003 and not body["downsampled"]
    assert body["x"][0] == 53_999 and body["x"][-1] == 55_001
    assert body["y"] == pytest.approx(values[53_999:55_002].tolist())


def test_x_by_epoch_and_wall_time(client, spiky):
    run_id, _ = spiky
    by_epoch = client.get(f"/api/runs/{run_id}/series", params={"key": "loss", "x": "epoch", "min": 3, "max": 3}).json()
    assert set(by_epoch["x"][1:-1]) == {3.0} and by_epoch["in_range"] == 10_002
    by_time = client.get(f"/api/runs/{run_id}/series", params={"key": "loss", "x": "time", "points": 100}).json()
    assert by_time["x"] == sorted(by_time["x"]) and by_time["x"][0] > 1.7e9


def test_an_empty_range_is_empty_not_an_error(client, ids):
    body = client.get(f"/api/runs/{ids['beta']}/series", params={"key": "train/loss", "min": 1e9}).json()
    assert body["x"] == [] and body["in_range"] == 0 and body["total"] == 300


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"key": "train/loss", "points": "many"}, "points"),
        ({"key": "train/loss", "points": 1}, "points"),
        ({"key": "train/loss", "x": "parsec"}, "x"),
        ({"key": "train/loss", "min": "nan"}, "min"),
        ({}, "key"),
    ],
)
def test_malformed_parameters_are_422_with_a_message(client, ids, params, word):
    response = client.get(f"/api/runs/{ids['beta']}/series", params=params)
    assert response.status_code == 422 and word in response.json()["detail"]


def test_an_unknown_key_is_404_naming_the_keys_there_are(client, ids):
    response = client.get(f"/api/runs/{ids['beta']}/series", params={"key": "nope"})
    assert response.status_code == 404 and "train/loss" in response.json()["detail"]


def test_csv_is_every_point_exactly_as_stored(client, store, ids):
    response = client.get("/api/series.csv", params={"key": "odd", "run": ids["alpha"]})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    history = store.history(ids["alpha"], "odd")
    assert [int(r["step"]) for r in rows] == history.steps.tolist()
    assert [float(r["time"]) for r in rows] == history.times.tolist()
    got = [float(r["value"]) for r in rows]
    assert math.isnan(got[0]) and got[1:] == [math.inf, 1.0]


def test_csv_of_several_runs(client, store, ids):
    response = client.get("/api/series.csv", params={"key": "train/loss", "run": [ids["alpha"], ids["beta"]]})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 600 and {r["run"] for r in rows} == {ids["alpha"], ids["beta"]}
    beta = [float(r["value"]) for r in rows if r["run"] == ids["beta"]]
    assert beta == store.history(ids["beta"], "train/loss").values.tolist()


def test_live_points_show_up_in_the_next_request(client, store):
    run = epochal.start("live", "growing", store=store)
    try:
        run.log({"loss": 1.0}, step=0)
        run.flush()
        first = client.get(f"/api/runs/{run.id}/series", params={"key": "loss"}).json()
        run.log({"loss": 0.5}, step=1)
        run.flush()
        second = client.get(f"/api/runs/{run.id}/series", params={"key": "loss"}).json()
        assert first["y"] == [1.0] and second["y"] == [1.0, 0.5]
    finally:
        run.finish()


# Smoothing: over every stored point on the server, then taken at the points sent.

def _log(store, name, steps, values):
    run = epochal.start("smoothing", name, store=store)
    for step, value in zip(steps, values):
        run.log({"loss": value}, step=step)
    run.finish()
    return run.id


def _smoothed(client, run_id, **params):
    """The smoothed value sent for each point, by (step, value): a step may hold several points."""
    body = client.get(f"/api/runs/{run_id}/series", params={"key": "loss", **params}).json()
    return dict(zip(zip(body["x"], body["y"]), body["smoothed"]))


def _close(got, expected, rel=1e-12):
    """Equal to float precision, None (a non-finite point) where the other is None."""
    nan = [math.nan if v is None else v for v in expected]
    return [math.nan if v is None else v for v in got] == pytest.approx(nan, rel=rel, abs=rel, nan_ok=True)


def _reference_ema(values, w):
    """TensorBoard's debiased EMA, written out point by point."""
    out, last, n = [], 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(None)
            continue
        n += 1
        last = last * w + (1 - w) * v
        out.append(last / (1 - w**n))
    return out


def _reference_time_ema(steps, values, w):
    """The time-weighted EMA as epochal.smoothing defines it, written out one step at a time."""
    per_step = {}
    for s, v in zip(steps, values):
        if math.isfinite(v):
            per_step.setdefault(s, []).append(v)
    xs = sorted(per_step)
    gap = float(np.median(np.diff(xs)))
    smoothed, last, held, previous = {}, 0.0, 0.0, None
    for s in xs:
        d = w if previous is None else w ** ((s - previous) / gap)
        last = d * last + (1 - d) * (sum(per_step[s]) / len(per_step[s]))
        held = d * held + (1 - d)
        smoothed[s], previous = last / held, s
    return [smoothed[s] if math.isfinite(v) else None for s, v in zip(steps, values)]


@pytest.fixture
def noisy(store):
    """20,000 noisy points at uneven steps (gaps of 1 to 3, and a burst of steps logged twice)."""
    rng = np.random.default_rng(7)
    steps = np.cumsum(rng.integers(1, 4, 20_000))
    steps[10_000:10_100] = steps[10_000]  # a hundred points at one step
    steps = np.sort(steps)
    values = np.exp(-steps / 10_000) + rng.normal(0, 0.3, len(steps))
    values[[500, 12_345]] = [math.nan, math.inf]
    return _log(store, "noisy", steps.tolist(), values.tolist()), steps, values


@pytest.mark.parametrize("method", ["time_ema", "ema"])
def test_the_smoothed_curve_does_not_depend_on_the_points_sent_or_the_range(client, noisy, method):
    run_id, steps, values = noisy
    ask = {"smoothing": 0.9, "smoothing_method": method}
    coarse = _smoothed(client, run_id, points=200, **ask)
    fine = _smoothed(client, run_id, points=4000, **ask)
    zoomed = _smoothed(client, run_id, points=200, min=int(steps[9_000]), max=int(steps[11_000]), **ask)
    assert len(coarse) < 250 and len(fine) > 3000 and len(zoomed) < 250
    for other in (fine, zoomed):
        shared = sorted(set(coarse) & set(other))
        assert len(shared) >= 20
        assert _close([other[s] for s in shared], [coarse[s] for s in shared])
    # ... and it is the curve over every stored point, not over the points sent.
    points = list(zip(steps.tolist(), [v if math.isfinite(v) else None for v in values.tolist()]))
    if method == "ema":
        reference = dict(zip(points, _reference_ema(values.tolist(), 0.9)))
    else:
        reference = dict(zip(points, _reference_time_ema(steps.tolist(), values.tolist(), 0.9)))
    assert _close([fine[s] for s in sorted(fine)], [reference[s] for s in sorted(fine)], rel=1e-9)


@pytest.mark.parametrize("method", ["time_ema", "ema"])
def test_both_methods_match_a_direct_computation(client, store, method):
    steps = [0, 1, 2, 2, 5, 6, 9, 10, 10, 11, 20, 21]
    values = [3.0, 1.0, math.nan, 2.0, 4.0, math.inf, 0.5, 1.5, 2.5, -1.0, 6.0, 2.0]
    run_id = _log(store, "small", steps, values)
    body = client.get(f"/api/runs/{run_id}/series",
                      params={"key": "loss", "smoothing": 0.6, "smoothing_method": method}).json()
    expected = _reference_ema(values, 0.6) if method == "ema" else _reference_time_ema(steps, values, 0.6)
    assert body["x"] == steps and [v is None for v in body["smoothed"]] == [v is None for v in expected]
    assert _close(body["smoothed"], expected)
    assert body["y"][2] is None and body["smoothed"][2] is None  # non-finite: a gap, not in the average


def test_evenly_spaced_the_time_weighted_ema_is_the_plain_one(client, store):
    values = np.random.default_rng(1).normal(size=500)
    run_id = _log(store, "even", list(range(0, 5000, 10)), values.tolist())
    timed = _smoothed(client, run_id, smoothing=0.95, smoothing_method="time_ema")
    plain = _smoothed(client, run_id, smoothing=0.95, smoothing_method="ema")
    assert _close(list(timed.values()), list(plain.values()))
    assert list(plain.values()) == pytest.approx(_reference_ema(values.tolist(), 0.95), rel=1e-12)


def test_a_burst_of_points_in_one_place_does_not_drag_the_time_weighted_curve(client, store):
    # Logged every 100 steps at 0, and 49 more points at 10 in steps 5001-5049.
    steps = sorted([*range(0, 10_000, 100), *range(5001, 5050)])
    values = [10.0 if 5000 < s < 5050 else 0.0 for s in steps]
    run_id = _log(store, "burst", steps, values)
    timed = _smoothed(client, run_id, smoothing=0.9, smoothing_method="time_ema")
    plain = _smoothed(client, run_id, smoothing=0.9, smoothing_method="ema")
    assert max(plain.values()) > 9  # 49 points: the per-point average follows them
    # Half a logging interval's worth of weight: less than one ordinary point at 10 would pull (10 * 0.1).
    assert max(timed.values()) == pytest.approx(10 * (1 - 0.9**0.49), rel=0.01)  # 0.01: the debiasing
    assert max(timed.values()) < 10 * (1 - 0.9)


def test_without_smoothing_no_smoothed_values_and_at_zero_the_values_themselves(client, ids):
    plain = client.get(f"/api/runs/{ids['beta']}/series", params={"key": "train/loss"}).json()
    assert plain["smoothed"] is None
    zero = client.get(f"/api/runs/{ids['beta']}/series", params={"key": "train/loss", "smoothing": 0}).json()
    assert zero["smoothed"] == zero["y"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"smoothing": 1}, ["smoothing", "[0, 1)"]),
        ({"smoothing": -0.1}, ["smoothing", "[0, 1)"]),
        ({"smoothing": "nan"}, ["smoothing", "[0, 1)"]),
        ({"smoothing": "inf"}, ["smoothing", "[0, 1)"]),
        ({"smoothing": 0.5, "smoothing_method": "gaussian"}, ["smoothing_method", "time_ema", "ema", "gaussian"]),
    ],
)
def test_a_bad_smoothing_is_422_naming_what_is_accepted(client, ids, params, words):
    response = client.get(f"/api/runs/{ids['beta']}/series", params={"key": "train/loss", **params})
    assert response.status_code == 422
    assert all(word in response.json()["detail"] for word in words), response.json()


def test_the_smoothing_parameters_are_documented(client):
    parameters = client.get("/api/openapi.json").json()["paths"]["/api/runs/{run}/series"]["get"]["parameters"]
    described = {p["name"]: p for p in parameters}
    assert "time_ema" in described["smoothing_method"]["description"]
    assert "ema" in described["smoothing_method"]["schema"]["enum"]
    assert described["smoothing"]["schema"]["anyOf"][0] == {"type": "number", "minimum": 0, "exclusiveMaximum": 1}


def test_a_live_runs_smoothed_curve_takes_in_new_points(client, store):
    run = epochal.start("live", "smoothed", store=store)
    try:
        ask = {"key": "loss", "smoothing": 0.5}
        run.log({"loss": 1.0}, step=0)
        run.flush()
        first = client.get(f"/api/runs/{run.id}/series", params=ask).json()
        run.log({"loss": 3.0}, step=1)
        run.flush()
        second = client.get(f"/api/runs/{run.id}/series", params=ask).json()
        assert first["smoothed"] == [1.0] and second["smoothed"] == pytest.approx([1.0, (0.25 + 1.5) / 0.75])
    finally:
        run.finish()
