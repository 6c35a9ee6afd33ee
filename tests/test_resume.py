"""Exact resume: N epochs in one go equal N/2 + resume + N/2, also after a kill -9."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import epochal
from toy_training import make_parts, train

SCRIPT = Path(__file__).with_name("toy_training.py")


def _train_straight(store_dir, epochs=4):
    model, optimizer, scheduler, loader = make_parts()
    with epochal.start(project="toy", name="straight", store=store_dir) as run:
        train(run, model, optimizer, scheduler, loader, epochs)
    return model, run


def test_resume_in_halves_gives_the_same_run(store_dir):
    straight_model, straight = _train_straight(store_dir)

    model, optimizer, scheduler, loader = make_parts()
    with epochal.start(project="toy", name="halves", store=store_dir) as run:
        train(run, model, optimizer, scheduler, loader, 2)
    # Disturb everything the checkpoint must restore: fresh objects, other random states.
    random.seed(123), np.random.seed(123), torch.manual_seed(123)
    model, optimizer, scheduler, loader = make_parts(seed=99)
    with epochal.resume("halves", store=store_dir) as run:
        restored = run.load_checkpoint("last", models=model, optimizers=optimizer, schedulers=scheduler)
        assert (restored.step, restored.epoch) == (12, 2) and (run.steps, run.epochs) == (12, 2)
        train(run, model, optimizer, scheduler, loader, 4)

    store = epochal.Store(store_dir)
    for key in ("train/loss", "train/lr"):
        a, b = store.history(straight.id, key), store.history("halves", key)
        assert a.steps.tolist() == b.steps.tolist() == list(range(24))
        assert a.values.tolist() == b.values.tolist()  # bit for bit, not approximately
    for p, q in zip(straight_model.parameters(), model.parameters()):
        assert torch.equal(p, q)
    assert store.run("halves").status == "finished" and store.run("halves").segment == 1


def test_resume_after_kill_continues_from_the_last_checkpoint(store_dir):
    _, straight = _train_straight(store_dir)
    # 6 steps per epoch: killed at step 16, i.e. 4 steps into the third epoch, after the checkpoint at step 12.
    killed = subprocess.run([sys.executable, str(SCRIPT), str(store_dir), "killed", "--die-after-step", "16"],
                            cwd=SCRIPT.parent)
    assert killed.returncode == -9
    store = epochal.Store(store_dir)
    assert store.run("killed").status == "crashed"
    assert len(store.history("killed", "train/loss")) == 16  # flushed before the kill

    resumed = subprocess.run([sys.executable, str(SCRIPT), str(store_dir), "killed", "--resume"], cwd=SCRIPT.parent)
    assert resumed.returncode == 0
    record = store.run("killed")
    assert record.status == "finished" and record.steps == 24 and record.epochs == 4
    a, b = store.history(straight.id, "train/loss"), store.history("killed", "train/loss")
    assert b.steps.tolist() == list(range(24))
    assert a.values.tolist() == b.values.tolist()
    # The abandoned steps 12..15 of the crashed session are kept in the store, not dropped.
    everything = store.history("killed", "train/loss", superseded=True)
    assert len(everything) == 28 and everything.steps.tolist().count(13) == 2
    # The summary follows the newest timeline.
    assert store.summary("killed")["train/loss"].count == 24


def test_resume_continues_counters_and_newest_wins(store_dir):
    with epochal.start(name="r", store=store_dir) as run:
        for i in range(5):
            run.log({"a": float(i)})
            run.step()
        run.epoch(2)
    with epochal.resume("r", store=store_dir) as run:
        assert (run.steps, run.epochs) == (5, 2)
        run.log({"a": 50.0}, step=3)  # a repeat of an earlier step
        run.log({"a": 60.0}, step=4)
        run.log({"a": 70.0})  # at the continued counter: step 5
    h = epochal.Store(store_dir).history("r", "a")
    assert h.steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert h.values.tolist() == [0.0, 1.0, 2.0, 50.0, 60.0, 70.0]
    s = epochal.Store(store_dir).summary("r")["a"]
    assert (s.count, s.max, s.last) == (6, 70.0, 70.0)


def test_a_running_run_cannot_be_resumed_twice(store_dir):
    run = epochal.start(name="live", store=store_dir)
    with pytest.raises(epochal.RunStateError, match="still running"):
        epochal.resume("live", store=store_dir)
    run.finish()


def test_resume_unknown_run(store_dir):
    with pytest.raises(epochal.RunNotFoundError, match="'ghost'"):
        epochal.resume("ghost", store=store_dir)


def _crashed_run(store_dir, name):
    """A run whose process was killed: its record still says running, for a pid that is gone."""
    code = (f"import epochal, os, signal; r = epochal.start(name={name!r}, store={str(store_dir)!r}); "
            "r.log({'a': 1.0}); r.flush(); os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    return epochal.Store(store_dir).run(name)


def test_two_resumes_of_one_run_at_the_same_instant_let_exactly_one_win(store_dir):
    import sqlite3
    import threading
    import time

    _crashed_run(store_dir, "twice")
    # Hold the write lock so that both resumes read the run as crashed before either can claim it.
    blocker = sqlite3.connect(store_dir / "epochal.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    outcomes: list = []

    def resume_it() -> None:
        try:
            outcomes.append(epochal.resume("twice", store=store_dir))
        except epochal.RunStateError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=resume_it) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    blocker.execute("ROLLBACK")
    for t in threads:
        t.join(timeout=30)
    runs = [o for o in outcomes if isinstance(o, epochal.Run)]
    errors = [o for o in outcomes if isinstance(o, epochal.RunStateError)]
    assert len(runs) == 1 and len(errors) == 1, outcomes
    assert "resumed by another process" in str(errors[0])
    runs[0].finish()
    assert epochal.Store(store_dir).run("twice").segment == 1


def test_a_crashed_run_whose_pid_this_process_reuses_can_be_resumed_at_once(store_dir):
    # A container restarted: training is PID 1 again, the same pid the crashed run recorded.
    import os
    import sqlite3

    record = _crashed_run(store_dir, "pid1")
    with sqlite3.connect(store_dir / "epochal.db") as conn:
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (os.getpid(), record.id))
    assert epochal.Store(store_dir).run("pid1").status == "crashed"
    with epochal.resume("pid1", store=store_dir) as run:
        assert epochal.Store(store_dir).run("pid1").status == "running"  # now it is this process's run
        with pytest.raises(epochal.RunStateError, match="still running"):
            epochal.resume("pid1", store=store_dir)
        run.log({"a": 2.0})
    assert epochal.Store(store_dir).run("pid1").status == "finished"


def test_abandon_gives_a_resumed_run_back_as_it_was(store_dir):
    with pytest.raises(KeyboardInterrupt):
        with epochal.start(name="paused", store=store_dir) as run:
            run.log({"a": 1.0})
            raise KeyboardInterrupt
    before = epochal.Store(store_dir).run("paused")
    assert before.status == "interrupted"
    again = epochal.resume("paused", store=store_dir)
    again.log({"a": 2.0}, step=1)
    again.abandon()
    after = epochal.Store(store_dir).run("paused")
    assert (after.status, after.ended, after.pid) == ("interrupted", before.ended, before.pid)
    assert epochal.Store(store_dir).history("paused", "a").values.tolist() == [1.0, 2.0]  # nothing lost
    with pytest.raises(epochal.RunStateError, match="finished"):
        again.log({"a": 3.0})
    with epochal.resume("paused", store=store_dir) as third:  # and it can be resumed as before
        assert third.segment == 2
