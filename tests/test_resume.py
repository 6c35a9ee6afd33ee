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
