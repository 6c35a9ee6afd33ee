"""Runs a page at a time: filters, conditions on config and metrics, sorting by any column, the count.

Both backends answer the same query the same way (the SQLite one in SQL, the in-memory one in Python).
"""

import math

import pytest

import epochal
from epochal.store.query import Column, RunQuery, parse_column, parse_condition


@pytest.fixture
def sweep(location):
    """Twelve runs of a sweep over lr and optimizer, each with a validation loss; one without a config."""
    with epochal.Store(location) as store:
        made = []
        for i in range(12):
            lr = [1e-4, 1e-3, 1e-2, 1e-1][i % 4]
            config = {"lr": lr, "optim": {"name": "adam" if i % 2 else "sgd"}, "seed": i}
            with epochal.start("sweep", f"trial-{i:02d}", config=config, tags=["odd"] if i % 2 else [],
                               store=store, system_metrics=False) as run:
                run.log({"valid/loss": 1.0 / (i + 1)})
                run.step()
                run.log({"valid/loss": 2.0 + i, "valid/accuracy": i / 12})
            made.append(run.id)
        with epochal.start("other", "plain", store=store, system_metrics=False) as plain:
            plain.log({"valid/loss": math.nan})
        yield store, made, plain.id


def _names(store, **query):
    records, total = store.query_runs(RunQuery(**query))
    return [r.name for r in records], total


def test_newest_first_a_page_at_a_time_with_the_total(sweep):
    store, _, _ = sweep
    names, total = _names(store, project="sweep", limit=5)
    assert total == 12 and names == [f"trial-{i:02d}" for i in (11, 10, 9, 8, 7)]
    names, total = _names(store, project="sweep", limit=5, offset=10)
    assert total == 12 and names == ["trial-01", "trial-00"]
    assert _names(store, project="sweep", limit=5, offset=50) == ([], 12)  # past the end: an empty page
    assert _names(store)[1] == 13 and store.count_runs() == 13 and store.count_runs("sweep") == 12


def test_conditions_on_config_values_and_metrics(sweep):
    store, _, _ = sweep
    names, total = _names(store, conditions=(parse_condition("lr<0.005"),), sort=parse_column("name"),
                          descending=False)
    assert total == 6 and names == ["trial-00", "trial-01", "trial-04", "trial-05", "trial-08", "trial-09"]
    both = (parse_condition("lr>=0.01"), parse_condition("optim.name=adam"))
    assert _names(store, conditions=both, sort=parse_column("name"), descending=False)[0] == [
        "trial-03", "trial-07", "trial-11"]
    assert _names(store, conditions=(parse_condition("optim.name!=adam"),))[1] == 6  # not the plain run: no optim
    # best is the lowest for a loss: each trial's first point, 1 / (i + 1); last is 2 + i.
    assert _names(store, conditions=(parse_condition("valid/loss:best<0.1"),))[0] == ["trial-11", "trial-10"]
    assert _names(store, conditions=(parse_condition("valid/loss:last>=12"),))[0] == ["trial-11", "trial-10"]
    assert _names(store, conditions=(parse_condition("nothing.here=1"),)) == ([], 0)


def test_sorting_by_config_and_metric_values_puts_runs_without_one_last_either_way(sweep):
    store, _, _ = sweep
    ascending, _ = _names(store, sort=parse_column("valid/loss:last"), descending=False)
    assert ascending[:3] == ["trial-00", "trial-01", "trial-02"] and ascending[-1] == "plain"  # NaN: no value
    descending, _ = _names(store, sort=parse_column("valid/loss:last"))
    assert descending[:2] == ["trial-11", "trial-10"] and descending[-1] == "plain"
    by_lr, _ = _names(store, sort=parse_column("lr"), descending=False, limit=4)
    assert by_lr == ["trial-08", "trial-04", "trial-00", "trial-09"]  # lr 1e-4 newest first, then 1e-3
    assert _names(store, sort=parse_column("lr"))[0][-1] == "plain"
    assert _names(store, sort=parse_column("valid/accuracy:best"), limit=1)[0] == ["trial-11"]


def test_text_tags_and_status(sweep):
    store, _, _ = sweep
    assert _names(store, text="TRIAL-1")[1] == 2  # case does not matter
    assert _names(store, text="odd")[1] == 6  # a tag
    assert _names(store, tag="odd", text="trial-0")[1] == 5
    assert _names(store, text="100%")[1] == 0  # LIKE's wildcards are plain characters here
    assert _names(store, status="finished")[1] == 13
    assert _names(store, status="crashed")[1] == 0


def test_parsing_names_what_is_accepted():
    assert parse_column("started") == Column("run", "started")
    assert parse_column("config.steps") == Column("config", "steps")
    assert parse_column("train/loss:last") == Column("metric", "train/loss", "last")
    assert parse_condition("optim.lr <= 1e-3").value == 0.001
    for bad in ("lr<<1", "lr<", "<1", "lr", "loss:best<x", "lr>adam"):
        with pytest.raises(ValueError, match="condition|compares|column"):
            parse_condition(bad)
    with pytest.raises(ValueError, match="':last' or ':best'"):
        parse_column("valid/loss:median")
    with pytest.raises(ValueError, match="filter 'status' with its own"):
        parse_condition("status=finished")


def test_a_page_can_span_the_runs_with_a_value_and_those_without(sweep):
    store, _, _ = sweep
    by_loss = parse_column("valid/loss:last")
    assert _names(store, sort=by_loss, descending=False, limit=5, offset=10) == (["trial-10", "trial-11", "plain"], 13)
    assert _names(store, sort=by_loss, descending=False, limit=5, offset=12) == (["plain"], 13)
    assert _names(store, sort=by_loss, conditions=(parse_condition("lr>=0.01"),), limit=2, offset=4) == (
        ["trial-03", "trial-02"], 6)
    by_name = parse_column("optim.name")  # text values sort after numbers, runs without the key last
    names, total = _names(store, sort=by_name, descending=False)
    assert total == 13 and names[-1] == "plain" and names[:6] == [f"trial-{i:02d}" for i in (11, 9, 7, 5, 3, 1)]


def test_the_keys_and_config_keys_listed_follow_the_store(sweep):
    store, _, _ = sweep
    assert store.key_counts() == {"valid/accuracy": 12, "valid/loss": 13}
    assert store.key_counts("other") == {"valid/loss": 1} and store.config_keys() == ["lr", "optim.name", "seed"]
    with epochal.start("other", store=store, config={"wd": 0.1}, system_metrics=False) as run:
        run.log({"train/loss": 1.0})
    assert store.key_counts()["train/loss"] == 1 and "wd" in store.config_keys()
    store.delete(run.id)
    assert "train/loss" not in store.key_counts() and "wd" not in store.config_keys()


def test_a_schema_5_store_gains_its_indexes_and_the_projects_run_counter(tmp_path):
    import sqlite3

    from epochal.store.sqlite import DB_NAME, SCHEMA_VERSION

    folder = tmp_path / "old"
    for _ in range(3):
        with epochal.start("p", store=folder, config={"lr": 0.1}, system_metrics=False) as run:
            run.log({"valid/loss": 0.5})
    with sqlite3.connect(folder / DB_NAME) as conn:  # as epochal with schema 5 wrote it
        for index in ("series_by_key_last", "series_by_key_min", "series_by_key_max", "config_by_key",
                      "runs_by_started"):
            conn.execute(f"DROP INDEX {index}")
        conn.execute("ALTER TABLE projects DROP COLUMN runs_made")
        conn.execute("PRAGMA user_version = 5")
    with epochal.Store(folder) as store:
        conn = store._backend._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"series_by_key_min", "config_by_key", "runs_by_started"} <= indexes
        assert store.runs_made("p") == 3
        with epochal.start("p", store=store, system_metrics=False) as fourth:
            pass
        assert fourth.name.endswith("-4") and store.runs_made("p") == 4
        assert _names(store, sort=parse_column("valid/loss:best"))[1] == 4
