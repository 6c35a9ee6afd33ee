"""Chunk overviews: long series are downsampled from each chunk's stored extremes, never hiding one."""

import sqlite3

import numpy as np
import pytest

import epochal
from epochal.store import series
from epochal.store.sqlite import DB_NAME, SCHEMA_VERSION


@pytest.fixture
def long_run(store):
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(size=200_000))
    values[123_457] = 1e6  # a spike
    values[7] = -1e6  # and a dip
    values[150_001] = np.nan
    run = epochal.start("p", "long", store=store, flush_points=20_000)
    for step, value in enumerate(values.tolist()):
        run.log({"loss": value}, step=step)
    run.finish()
    return run.id, values


def test_a_long_series_is_drawn_from_the_overviews(store, long_run):
    run_id, values = long_run
    coarse = series.assemble("loss", store._backend.overview_chunks(run_id, "loss"))
    assert len(coarse) < len(values) / 50  # far fewer points than the series to decode

    quick = store.history(run_id, "loss", max_points=500)
    full = series.downsample(store.history(run_id, "loss"), 500)
    assert len(quick) <= 502
    for shown in (quick, full):
        assert np.nanmax(shown.values) == 1e6 and shown.steps[np.nanargmax(shown.values)] == 123_457
        assert np.nanmin(shown.values) == -1e6 and shown.steps[0] == 0 and shown.steps[-1] == 199_999
        assert np.isnan(shown.values).any()
    # Every shown point is a real point of the series, at its step.
    assert np.array_equal(quick.values[~np.isnan(quick.values)],
                          values[quick.steps][~np.isnan(quick.values)])


def test_overviews_too_coarse_for_the_points_asked_fall_back_to_every_point(store, long_run):
    run_id, values = long_run
    shown = store.history(run_id, "loss", max_points=5000)
    assert 4000 < len(shown) <= 5002
    assert np.array_equal(np.sort(shown.steps), shown.steps)


def test_a_resumed_run_is_downsampled_from_its_newest_timeline(store):
    run = epochal.start("p", "resumed", store=store, flush_points=5_000)
    for step in range(20_000):
        run.log({"loss": 100.0 if step == 15_000 else 1.0}, step=step)
    run.finish()
    again = epochal.resume(run.id, store=store)
    for step in range(10_000, 20_000):  # back to step 10,000: the spike at 15,000 was abandoned
        again.log({"loss": 2.0}, step=step)
    again.finish()
    shown = store.history(run.id, "loss", max_points=200)
    assert shown.values.max() == 2.0 and len(shown) <= 202


def test_a_store_of_schema_1_gains_overviews_and_reads_as_before(store_dir):
    with epochal.Store(store_dir) as store:
        run = epochal.start("p", "old", store=store, flush_points=50_000)
        for step in range(30_000):
            run.log({"loss": float(step % 97)}, step=step)
        run.finish()
    with sqlite3.connect(store_dir / DB_NAME) as conn:  # as epochal 0.1 wrote it
        conn.execute("ALTER TABLE chunks DROP COLUMN overview")
        conn.execute("PRAGMA user_version = 1")
    with epochal.Store(store_dir) as store:
        assert store._backend._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        history = store.history(run.id, "loss")
        assert len(history) == 30_000 and history.values[96] == 96.0
        shown = store.history(run.id, "loss", max_points=100)
        assert shown.values.max() == 96.0 and shown.values.min() == 0.0
