"""Runs under DDP: two CPU ranks started by torchrun (gloo) log into one run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ddp_launch import torchrun

import epochal


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp-log")
    done = torchrun("log", str(folder / "store"), str(folder / "out.json"), "--names-differ", "--mismatch")
    return folder, json.loads((folder / "out.json").read_text()), done


def test_one_run_per_job_with_every_rank_recorded(logged):
    folder, out, done = logged
    with epochal.Store(folder / "store") as store:
        runs = store.runs()
        assert [r.id for r in runs] == [out["id"]]
        record = runs[0]
    assert out["world_size"] == 2 and out["rank"] == 0
    assert record.world_size == 2 and len(record.ranks) == 2
    assert len({pid for _, pid in record.ranks}) == 2
    assert record.ranks[0][1] == record.pid
    assert record.status == "finished"


def test_ranks_disagreeing_on_the_name_take_rank_0s(logged):
    folder, out, done = logged
    assert out["name"] == "job-0"
    assert "rank 1 was given project 'ddp', name 'job-1'" in done.stderr
    assert "rank 0 was given" not in done.stderr


def test_reduced_values_are_one_point_per_step_over_the_ranks(logged):
    folder, out, done = logged
    with epochal.Store(folder / "store") as store:
        history = {key: store.history(out["id"], key) for key in ("x/mean", "x/sum", "x/min", "x/max", "rank/own")}
    steps = np.arange(250)
    for key, expected in (("x/mean", steps + 5.0), ("x/sum", 2 * steps + 10.0), ("x/min", steps + 0.0),
                          ("x/max", steps + 10.0)):
        assert np.array_equal(history[key].steps, steps), key
        assert np.array_equal(history[key].values, expected), key
    # Without reduce=, rank 0's values alone are recorded.
    assert np.array_equal(history["rank/own"].values, np.zeros(250))


def test_unknown_reduction_is_refused_naming_the_accepted_ones(logged):
    folder, out, done = logged
    assert "'median'" in out["bad_reduce"]
    assert "'mean', 'sum', 'min', 'max'" in out["bad_reduce"]


def test_a_key_reduced_on_one_rank_only_is_an_error_not_a_hang(logged):
    folder, out, done = logged
    assert out["mismatch"].startswith("RankError")
    assert "'only/one'" in out["mismatch"] and "rank(s) 1 but not from rank(s) 0" in out["mismatch"]


def test_reduce_in_one_process_logs_the_value(store_dir):
    with epochal.start(store=store_dir) as run:
        run.log({"a": 2.0}, reduce="mean")
        run.step()
        with pytest.raises(ValueError, match="'mean', 'sum', 'min', 'max'"):
            run.log({"a": 1.0}, reduce="avg")
        assert run.rank == 0 and run.world_size == 1
    with epochal.Store(store_dir) as store:
        assert store.history(run.id, "a").values.tolist() == [2.0]
