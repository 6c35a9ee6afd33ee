"""The series resource: downsampling that keeps spikes, x ranges for zooming, lossless CSV."""

import csv
import io
import math

import numpy as np
import pytest

import epochal


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
