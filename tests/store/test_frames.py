"""Runs and series as pandas DataFrames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import epochal


@pytest.fixture
def two_runs(store_dir):
    with epochal.start("p", "a", config={"optim": {"lr": 0.1}, "seed": 1}, tags=["x"], store=store_dir) as run:
        for step in range(4):
            run.log({"train/loss": 1.0 / (step + 1)})
            if step % 2:
                run.log({"valid/accuracy": step / 10})
            run.step()
        run.log({"odd": math.inf})
        run.epoch()
    with epochal.start("p", "b", config={"optim": {"lr": 0.01}}, store=store_dir) as other:
        other.log({"train/loss": 0.5})
    return run, other


def test_a_runs_series_side_by_side_one_row_per_step(store_dir, two_runs):
    run, _ = two_runs
    with epochal.Store(store_dir) as store:
        frame = store.frame(run.id)
    assert list(frame.columns) == ["epoch", "time", "odd", "train/loss", "valid/accuracy"]
    assert frame.index.name == "step" and frame.index.tolist() == [0, 1, 2, 3, 4]
    assert frame["train/loss"].tolist()[:4] == [1.0, 0.5, 1 / 3, 0.25]  # exactly as stored
    assert np.isnan(frame["train/loss"].iloc[4]) and frame["odd"].iloc[4] == math.inf
    assert frame["valid/accuracy"].dropna().to_dict() == {1: 0.1, 3: 0.3}
    assert frame["epoch"].tolist() == [0, 0, 0, 0, 0]
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"


def test_chosen_keys_and_another_index(store_dir, two_runs):
    run, _ = two_runs
    with epochal.Store(store_dir) as store:
        frame = store.frame(run.id, ["valid/accuracy"], x="time")
        assert list(frame.columns) == ["step", "epoch", "valid/accuracy"] and frame.index.name == "time"
        with pytest.raises(ValueError, match="'step', 'epoch', 'time'"):
            store.frame(run.id, x="wall")
        with pytest.raises(epochal.SeriesNotFoundError, match="nope"):
            store.frame(run.id, ["nope"])


def test_one_row_per_run_with_config_and_last_and_best(store_dir, two_runs):
    run, other = two_runs
    with epochal.Store(store_dir) as store:
        frame = store.runs_frame("p")
    assert frame.index.tolist() == [other.id, run.id]  # newest first
    a = frame.loc[run.id]
    assert a["name"] == "a" and a["status"] == "finished" and a["tags"] == "x" and a["world_size"] == 1
    assert a["config.optim.lr"] == 0.1 and a["config.seed"] == 1
    assert a["train/loss:last"] == 0.25 and a["train/loss:best"] == 0.25
    assert a["valid/accuracy:best"] == 0.3
    assert pd.isna(frame.loc[other.id, "config.seed"])
    with epochal.Store(store_dir) as store:
        assert store.runs_frame("no such project").empty


def test_without_pandas_the_error_names_the_extra(store_dir, two_runs, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)  # as if it were not installed
    with epochal.Store(store_dir) as store, pytest.raises(ImportError, match=r"epochal\[pandas\]"):
        store.frame(two_runs[0].id)
