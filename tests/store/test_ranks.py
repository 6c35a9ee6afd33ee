"""A DDP job's ranks: each rank's (host, pid) kept with the run, and every rank on this host watched."""

import os
import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest

import epochal
from epochal import system
from epochal.store.records import RunUpdate, WriteBatch
from epochal.store.sqlite import DB_NAME, SCHEMA_VERSION

HERE = system.host()


def set_ranks(store, run_id, ranks):
    store.write(WriteBatch(run_updates=(RunUpdate(run_id, ranks=ranks),)))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_single_process_run_has_no_ranks_and_a_world_of_one(store):
    with epochal.start(store=store) as run:
        pass
    record = store.run(run.id)
    assert record.ranks == () and record.world_size == 1


def test_ranks_are_kept_on_insert_and_replaced_by_an_update(store):
    with epochal.start(store=store, name="first") as run:
        pass
    ranks = (("host-a", 123), ("host-a", 124), ("host-b", 7))
    copy = replace(store.stored_record(run.id), id="ddp-job", name="ddp", ranks=[list(pair) for pair in ranks])
    store.write(WriteBatch(new_runs=(copy,)))
    record = store.run("ddp-job")
    assert record.ranks == ranks and record.world_size == 3
    assert all(type(pair) is tuple for pair in record.ranks)  # as given or as JSON gave it back: tuples
    set_ranks(store, "ddp-job", (("host-c", 9), ("host-c", 10)))  # a resumed job's new processes
    assert store.run("ddp-job").ranks == (("host-c", 9), ("host-c", 10))
    store.write(WriteBatch(run_updates=(RunUpdate("ddp-job", steps=5),)))  # None leaves them
    assert store.run("ddp-job").ranks == (("host-c", 9), ("host-c", 10))
    assert store.run(run.id).ranks == ()


@pytest.mark.parametrize("bad", [[("h", "12")], [("h",)], [(1, 2)], "h:1", [("h", True)]])
def test_ranks_that_are_not_host_pid_pairs_are_refused_and_nothing_changes(store, bad):
    with epochal.start(store=store) as run:
        pass
    with pytest.raises(ValueError, match="host, pid"):
        store.write(WriteBatch(run_updates=(RunUpdate(run.id, ranks=bad, steps=99),)))
    assert store.run(run.id).ranks == () and store.run(run.id).steps == 0


def test_a_schema_4_store_gains_the_ranks_column_and_reads_its_runs_as_single_process(store_dir):
    with epochal.start(store=store_dir, name="old") as run:
        run.log({"loss": 1.0})
    with sqlite3.connect(store_dir / DB_NAME) as conn:  # as epochal with schema 4 wrote it
        conn.execute("ALTER TABLE runs DROP COLUMN ranks")
        conn.execute("PRAGMA user_version = 4")
    with epochal.Store(store_dir) as store:
        assert store._backend._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        record = store.run("old")
        assert record.ranks == () and record.world_size == 1 and record.status == "finished"
        set_ranks(store, run.id, (("h", 1), ("h", 2)))
        assert store.run("old").ranks == (("h", 1), ("h", 2))


def test_a_running_job_is_crashed_when_any_rank_on_this_host_is_gone(local_store):
    store = local_store  # the run writes to it directly
    run = epochal.start(store=store, name="ddp")
    try:
        alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            set_ranks(store, run.id, ((HERE, os.getpid()), (HERE, alive.pid)))
            assert store.run(run.id).status == "running"
            assert store.run(run.id).world_size == 2
        finally:
            alive.kill()
            alive.wait()
        set_ranks(store, run.id, ((HERE, os.getpid()), (HERE, dead_pid())))
        record = store.run(run.id)
        assert record.status == "crashed"
        assert (record.host, record.pid) == (HERE, os.getpid())  # the record's own process is rank 0's
        assert [r.id for r in store.runs(status="crashed")] == [run.id]
        assert store.runs(status="running") == []
        # A rank on another host is judged by the heartbeat, which is fresh: its pid means nothing here.
        set_ranks(store, run.id, ((HERE, os.getpid()), ("some-other-host", dead_pid())))
        assert store.run(run.id).status == "running"
    finally:
        run.finish()
    set_ranks(store, run.id, ((HERE, os.getpid()), (HERE, dead_pid())))
    assert store.run(run.id).status == "finished"  # only a running record can be crashed
