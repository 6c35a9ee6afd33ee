"""Crashes, full disks, locked databases and concurrent writers lose nothing they shouldn't."""

import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import epochal

WORKER = Path(__file__).with_name("logging_worker.py")


def _worker(store_dir, name, mode, count=1000, **kwargs):
    return subprocess.run([sys.executable, str(WORKER), str(store_dir), name, mode, str(count)],
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_kill_9_loses_at_most_the_last_flush_interval_and_shows_crashed(store_dir):
    result = _worker(store_dir, "doomed", "kill", 2000)
    assert result.returncode == -9 and "flushed" in result.stdout
    store = epochal.Store(store_dir)
    assert sqlite3.connect(store_dir / "epochal.db").execute("PRAGMA integrity_check").fetchone() == ("ok",)
    record = store.run("doomed")
    assert record.status == "crashed"
    loss = store.history(record, "train/loss")
    assert 2000 <= len(loss) <= 2010 and loss.steps[:2000].tolist() == list(range(2000))
    assert [r.name for r in store.runs(status="crashed")] == ["doomed"]
    assert store.runs(status="running") == []
    # the store takes new runs as usual
    with epochal.start(store=store_dir) as run:
        run.log({"a": 1.0})
    assert store.run(run.id).status == "finished"


def test_two_processes_logging_at_once_both_complete(store_dir):
    epochal.Store(store_dir)  # create the schema first, as any first use would
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(store_dir), f"p{i}", "steady", "20000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("EpochalWarning" not in err for _, err in outputs)
    store = epochal.Store(store_dir)
    for name in ("p0", "p1"):
        assert store.run(name).status == "finished"
        for key in ("train/loss", "train/noise"):
            h = store.history(name, key)
            assert h.steps.tolist() == list(range(20000))
        assert store.history(name, "train/loss").values[-1] == 1.0 / 20000


def test_locked_database_warns_retries_and_loses_nothing(store_dir):
    store = epochal.Store(store_dir, busy_timeout=0.05)
    run = epochal.start(store=store, flush_interval=0.05)
    blocker = sqlite3.connect(store_dir / "epochal.db", isolation_level=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocker.execute("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        for i in range(5000):
            run.log({"a": float(i)})
            run.step()
        logging_took = time.perf_counter() - started
        assert not run.flush(timeout=0.5)  # the store is locked: not written yet
        blocker.execute("ROLLBACK")
        assert run.flush(timeout=10)
    messages = [str(w.message) for w in caught if issubclass(w.category, epochal.EpochalWarning)]
    assert any("could not write" in m and "locked" in m for m in messages), messages
    assert any("nothing was lost" in m for m in messages), messages
    assert logging_took < 5  # the training thread was never held up by the lock
    run.finish()
    assert epochal.Store(store_dir).history(run.id, "a").values.tolist() == [float(i) for i in range(5000)]


def test_full_disk_warns_keeps_points_and_writes_them_later(store_dir):
    result = _worker(store_dir, "full", "disk-full", 3000)
    assert result.returncode == 0, result.stderr
    assert "written while full: False" in result.stdout and "finished" in result.stdout
    assert "could not write" in result.stderr and "nothing was lost" in result.stderr
    store = epochal.Store(store_dir)
    h = store.history("full", "train/loss")
    assert h.steps.tolist() == list(range(9000))
    assert np.array_equal(h.values, 1.0 / (np.arange(9000) + 1))
    assert store.run("full").status == "finished"


def test_a_reader_works_while_another_process_writes(store_dir):
    epochal.Store(store_dir)
    writer = subprocess.Popen([sys.executable, str(WORKER), str(store_dir), "live", "steady", "600000"])
    store = epochal.Store(store_dir)
    seen = []
    deadline = time.time() + 120
    while writer.poll() is None and time.time() < deadline:
        try:
            seen.append(len(store.history("live", "train/loss")))
        except (epochal.RunNotFoundError, epochal.SeriesNotFoundError):
            pass
        time.sleep(0.01)
    assert writer.wait(timeout=60) == 0
    assert len(set(seen)) >= 3 and seen == sorted(seen)  # growing while being written
    assert len(store.history("live", "train/loss")) == 600000


def test_a_loop_that_outruns_the_store_is_paced_so_kill_9_loses_a_bounded_number_of_points(store_dir):
    # flush_points=1000: log() waits for the writer once 100 x 1000 points are outstanding, so a kill
    # loses at most those and the points since the last wake-up, however far the loop outruns the disk.
    result = _worker(store_dir, "outrun", "outrun", 100_000)
    assert result.returncode == -9 and "logged 2000000" in result.stdout, result.stderr
    store = epochal.Store(store_dir)
    stored = sum(len(store.history("outrun", f"k{i:02d}")) for i in range(20))
    assert 2_000_000 - stored <= 100 * 1000 + 1000, stored
    assert store.run("outrun").status == "crashed"


def test_a_locked_store_fills_a_bounded_buffer_then_drops_new_points_without_blocking(store_dir):
    store = epochal.Store(store_dir, busy_timeout=0.05)
    run = epochal.start(store=store, flush_interval=0.05, flush_points=100, max_buffered_points=2000)
    blocker = sqlite3.connect(store_dir / "epochal.db", isolation_level=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocker.execute("BEGIN EXCLUSIVE")
        time.sleep(0.2)  # the writer has met the lock
        started = time.perf_counter()
        for i in range(20_000):
            run.log({"a": float(i)}, step=i)
            if i % 1000 == 0:
                time.sleep(0.06)  # let the writer try (and fail) again
        logging_took = time.perf_counter() - started
        assert run.dropped_points > 10_000  # the buffer held at most 2,000 of them
        blocker.execute("ROLLBACK")
        assert run.flush(timeout=10)
        for i in range(20_000, 20_100):  # accepted again once the store writes
            run.log({"a": float(i)}, step=i)
        run.finish()
    messages = [str(w.message) for w in caught if issubclass(w.category, epochal.EpochalWarning)]
    assert logging_took < 5  # no log() waited for the locked store
    assert any("% of max_buffered_points" in m for m in messages), messages
    assert any("points logged while the buffer was full were dropped" in m for m in messages), messages
    assert any("finished without" in m for m in messages), messages
    steps = epochal.Store(store_dir).history(run.id, "a").steps
    assert 1000 <= len(steps) - 100 <= 2000 + 100  # what was buffered, and nothing logged while full
    assert steps[:1000].tolist() == list(range(1000)) and steps[-100:].tolist() == list(range(20_000, 20_100))


def test_pacing_never_waits_out_a_lock_held_by_another_program(store_dir):
    # The default busy timeout (10 s) keeps the writer inside one write while the lock is held; a
    # loop that logs more than the pace allows must not wait for that write.
    store = epochal.Store(store_dir)
    run = epochal.start(store=store, flush_interval=0.05, flush_points=100)  # paced at 10,000 points
    blocker = sqlite3.connect(store_dir / "epochal.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    time.sleep(0.2)
    started = time.perf_counter()
    for i in range(50_000):
        run.log({"a": float(i)})
        run.step()
    logging_took = time.perf_counter() - started
    time.sleep(max(0.0, 4.0 - logging_took))
    blocker.execute("ROLLBACK")
    assert logging_took < 3.0  # the lock was held for 4 s: the loop did not wait for it
    run.finish()
    assert len(epochal.Store(store_dir).history(run.id, "a")) == 50_000 and run.dropped_points == 0
