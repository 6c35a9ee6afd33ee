"""Checkpoints under faults: a locked store, a clock that steps back, kill -9 mid-save, damaged files,
another architecture. Every test is bounded to seconds."""

import importlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

import epochal
from epochal import Retention, atomic, run_checkpoints
from epochal.checkpoint import file_sha256

WORKER = Path(__file__).with_name("checkpoint_worker.py")
run_module = importlib.import_module("epochal.run")


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _within(seconds, call):
    """call() on another thread; fails the test if it has not returned after ``seconds``."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _lock(store_dir):
    blocker = sqlite3.connect(Path(store_dir) / "epochal.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    return blocker


def _epochal_warnings(caught):
    return [str(w.message) for w in caught if issubclass(w.category, epochal.EpochalWarning)]


def _stored(store_dir, run):
    with epochal.Store(store_dir) as store:
        return store.checkpoints(run.id)


# -- item 4: a locked or full store never holds training up ------------------------------------------


def test_a_locked_store_delays_the_record_not_the_training(store_dir, monkeypatch):
    monkeypatch.setattr(run_checkpoints, "RECORD_TIMEOUT_S", 0.3, raising=False)
    run = epochal.start(store=epochal.Store(store_dir, busy_timeout=0.05), flush_interval=0.05)
    model = _model()
    keep_one = Retention(last=1, best=0)
    first = run.save_checkpoint(models=model, retention=keep_one)
    blocker = _lock(store_dir)
    try:
        run.step()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = time.perf_counter()
            second = _within(5, lambda: run.save_checkpoint(models=model, retention=keep_one))
            took = time.perf_counter() - started
        assert took < 3
        assert any("did not take the checkpoint records" in m for m in _epochal_warnings(caught))
        # The file is in place and whole; the store still lists only the first checkpoint, whose file stays.
        assert file_sha256(run.path / second.path) == second.sha256
        assert [c.path for c in _stored(store_dir, run)] == [first.path]
        assert (run.path / first.path).is_file()
        # This run resumes from the new checkpoint already.
        assert run.load_checkpoint("last", models=_model(seed=1)).step == 1
    finally:
        blocker.execute("ROLLBACK")
    assert run.flush(timeout=10)
    assert [c.path for c in _stored(store_dir, run)] == [second.path]
    run.step()
    third = run.save_checkpoint(models=model, retention=keep_one)
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == [Path(third.path).name]
    run.finish()


def test_a_store_that_stays_locked_never_stops_training(store_dir, monkeypatch):
    monkeypatch.setattr(run_checkpoints, "RECORD_TIMEOUT_S", 0.2, raising=False)
    monkeypatch.setattr(run_module, "SUMMARY_WAIT_S", 0.2, raising=False)
    run = epochal.start(store=epochal.Store(store_dir, busy_timeout=0.05), flush_interval=0.05)
    model = _model()
    run.log({"train/loss": 1.0})
    assert run.flush(timeout=10)
    blocker = _lock(store_dir)
    try:
        saved = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = time.perf_counter()
            for epoch in range(4):
                for _ in range(50):
                    run.log({"train/loss": 0.5})
                    run.step()
                run.epoch()
                saved.append(_within(5, lambda: run.save_checkpoint(models=model, retention=Retention(last=1, best=0))))
                summary = _within(5, lambda: run.summary)
            took = time.perf_counter() - started
        assert took < 10  # four saves and four summaries, each waiting a fraction of a second
        messages = _epochal_warnings(caught)
        # Said once: while the store keeps refusing, later saves neither wait nor warn again.
        assert sum("did not take the checkpoint records" in m for m in messages) == 1
        assert any("summary leaves them out" in m for m in messages)
        assert summary["train/loss"].count == 1  # what the store holds
        # Every file is kept while the store cannot be told which ones are dropped; the newest is loaded.
        assert all(file_sha256(run.path / c.path) == c.sha256 for c in saved)
        assert run.load_checkpoint("last", models=_model(seed=1)).epoch == 4
        assert _stored(store_dir, run) == []
    finally:
        blocker.execute("ROLLBACK")
    assert run.flush(timeout=10)
    assert [c.path for c in _stored(store_dir, run)] == [saved[-1].path]
    assert run.summary["train/loss"].count == 201
    run.finish()


# -- item 5: order by save sequence, never by the clock ----------------------------------------------


def test_retention_keeps_the_newest_when_the_clock_steps_back(store_dir, monkeypatch):
    keep_one = Retention(last=1, best=0)
    real_time = time.time
    with epochal.start(store=store_dir) as run:
        run.step()
        run.save_checkpoint(retention=keep_one)
        monkeypatch.setattr(run_checkpoints.time, "time", lambda: real_time() - 3600)  # NTP stepped back an hour
        run.step()
        newest = run.save_checkpoint(retention=keep_one)
        assert [c.path for c in _stored(store_dir, run)] == [newest.path]
        assert run.load_checkpoint("last").step == 2
    monkeypatch.undo()
    # Across a resume too: the resumed session saves at the same step with the clock an hour back.
    with epochal.resume(run.id, store=store_dir) as again:
        monkeypatch.setattr(run_checkpoints.time, "time", lambda: real_time() - 7200)
        again_newest = again.save_checkpoint(retention=keep_one)
        monkeypatch.undo()
        assert [c.path for c in _stored(store_dir, run)] == [again_newest.path]
        assert again_newest.path != newest.path


# -- item 6: never overwrite a checkpoint file --------------------------------------------------------


def test_a_second_save_at_the_same_step_gets_its_own_file(store_dir):
    model = _model()
    with epochal.start(store=store_dir) as run:
        run.step(5)
        first = run.save_checkpoint(models=model, retention=Retention(last=2, best=0))
        first_bytes = (run.path / first.path).read_bytes()
        with torch.no_grad():
            model[0].weight.add_(1.0)
        second = run.save_checkpoint(models=model, retention=Retention(last=2, best=0))
        assert first.path != second.path and (first.step, first.epoch) == (second.step, second.epoch)
        assert (run.path / first.path).read_bytes() == first_bytes
        assert [c.path for c in _stored(store_dir, run)] == [first.path, second.path]
        fresh = _model(seed=1)
        assert run.load_checkpoint("last", models=fresh).record.path == second.path
        assert torch.equal(fresh[0].weight, model[0].weight)


def test_kill_between_the_file_and_its_record_keeps_the_previous_checkpoint(store_dir):
    result = subprocess.run([sys.executable, str(WORKER), str(store_dir), "victim", "kill-before-record"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL and "saved" in result.stdout, result.stderr
    with epochal.Store(store_dir) as store:
        record = store.run("victim")
        (previous,) = store.checkpoints(record)
    assert file_sha256(Path(record.path) / previous.path) == previous.sha256
    fresh = torch.nn.Linear(4, 2)
    with epochal.resume("victim", store=store_dir) as run:
        loaded = run.load_checkpoint("last", models=fresh)
    torch.manual_seed(0)
    assert loaded.record.path == previous.path and torch.equal(fresh.weight, torch.nn.Linear(4, 2).weight)


# -- item 7: temporaries of killed writers are cleaned up --------------------------------------------


def _temporaries(folder):
    return sorted(p.name for p in Path(folder).rglob("*.tmp"))


def test_kill_9_mid_save_leaves_a_temporary_that_resume_and_retention_remove(store_dir):
    result = subprocess.run([sys.executable, str(WORKER), str(store_dir), "victim", "kill-mid-write"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL and "saved" in result.stdout, result.stderr
    folder = Path(epochal.Store(store_dir).run("victim").path)
    (left,) = _temporaries(folder)
    assert [p.name for p in atomic.clean_stale_temporaries(folder)] == [left]
    assert _temporaries(folder) == []

    # The same cut-short save is cleaned up when the run is resumed...
    result = subprocess.run([sys.executable, str(WORKER), str(store_dir), "again", "kill-mid-write"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert len(_temporaries(epochal.Store(store_dir).run("again").path)) == 1
    with epochal.resume("again", store=store_dir) as run:
        assert _temporaries(run.path) == []
        # ... and by retention, after each save: here another writer killed while the run goes on.
        writer = subprocess.Popen([sys.executable, str(WORKER), str(run.path / "checkpoints"), "-", "writing"],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "writing"
        writer.kill()
        writer.wait(timeout=30)
        assert len(_temporaries(run.path)) == 1
        run.save_checkpoint(models=torch.nn.Linear(4, 2))
        assert _temporaries(run.path) == []


def test_temporaries_of_live_writers_are_left_alone(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    # Another process in the middle of a write: its temporary stays while it lives.
    writer = subprocess.Popen([sys.executable, str(WORKER), str(folder), "-", "writing"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        (theirs,) = _temporaries(folder)
        assert atomic.clean_stale_temporaries(folder) == []
        assert _temporaries(folder) == [theirs]
    finally:
        writer.kill()
        writer.wait(timeout=30)
    # A file of an earlier process that had this process's pid (a restarted container's PID 1).
    earlier = theirs.replace(f"-{writer.pid}-", f"-{os.getpid()}-")
    (folder / earlier).write_bytes(b"left by a process that had our pid")

    # This process's own write in progress survives a clean-up run meanwhile.
    def write(file):
        file.write(b"data")
        removed = sorted(p.name for p in atomic.clean_stale_temporaries(folder))
        assert removed == sorted([earlier, theirs])  # the dead writer's and the earlier process's
        assert len(_temporaries(folder)) == 1  # ours, still being written

    atomic.atomic_write(folder / "ours.bin", write)
    assert (folder / "ours.bin").read_bytes() == b"data"
    assert _temporaries(folder) == []


# -- item 12: loading what does not fit, and falling back ---------------------------------------------


def test_a_checkpoint_of_another_architecture_is_a_checkpoint_error_and_changes_nothing(store_dir):
    with epochal.start(store=store_dir) as run:
        encoder, head = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)
        optimizer = torch.optim.SGD([*encoder.parameters(), *head.parameters()], lr=0.1)
        record = run.save_checkpoint(models={"encoder": encoder, "head": head}, optimizers=optimizer)
        run.step(9)

        fresh_encoder, wider_head = torch.nn.Linear(4, 8), torch.nn.Linear(8, 3)
        before = {k: v.clone() for k, v in fresh_encoder.state_dict().items()}
        with pytest.raises(epochal.CheckpointError) as raised:
            run.load_checkpoint("last", models={"encoder": fresh_encoder, "head": wider_head})
        message = str(raised.value)
        assert record.path in message and "models['head']" in message
        assert "weight is (2, 8) in the checkpoint, (3, 8) in the model" in message
        assert all(torch.equal(before[k], v) for k, v in fresh_encoder.state_dict().items())  # not half loaded
        assert run.steps == 9  # counters untouched

        deeper = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        with pytest.raises(epochal.CheckpointError, match=r"missing from the checkpoint: 0\.weight.*not in the model: weight"):
            run.load_checkpoint("last", models={"encoder": deeper, "head": torch.nn.Linear(8, 2)})

        split = torch.optim.SGD([{"params": fresh_encoder.parameters()}, {"params": head.parameters()}], lr=0.1)
        with pytest.raises(epochal.CheckpointError, match=r"optimizers\['optimizer'\].*parameters per group"):
            run.load_checkpoint("last", models={"encoder": fresh_encoder, "head": torch.nn.Linear(8, 2)},
                                optimizers={"optimizer": split})


def test_a_failed_load_by_torch_is_a_checkpoint_error(store_dir):
    class Picky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

        def load_state_dict(self, state, strict=True):
            raise RuntimeError("Error(s) in loading state_dict for Picky: something torch did not like")

    with epochal.start(store=store_dir) as run:
        run.save_checkpoint(models=Picky())
        with pytest.raises(epochal.CheckpointError, match="does not fit models.*something torch did not like"):
            run.load_checkpoint("last", models=Picky())


def test_last_falls_back_to_the_newest_checkpoint_that_loads(store_dir):
    model = _model()
    with epochal.start(store=store_dir) as run:
        for _ in range(3):
            run.step()
            run.save_checkpoint(models=model, retention=Retention(last=3, best=0))
        oldest, middle, newest = _stored(store_dir, run)
        (run.path / newest.path).unlink()
        damaged = bytearray((run.path / middle.path).read_bytes())
        damaged[-50] ^= 0xFF
        (run.path / middle.path).write_bytes(bytes(damaged))
        with pytest.warns(epochal.EpochalWarning) as caught:
            loaded = run.load_checkpoint("last", models=_model(seed=1))
        assert loaded.step == 1 and loaded.record.path == oldest.path
        (message,) = _epochal_warnings(caught)
        assert f"{newest.path} (its file is missing)" in message and f"{middle.path} (its file does not match" in message

        (run.path / oldest.path).unlink()
        with pytest.raises(epochal.CheckpointError, match="no usable checkpoint.*start training from the beginning"):
            run.load_checkpoint("last", models=_model(seed=1))


def test_a_run_without_checkpoints_says_what_to_do(store_dir):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(epochal.CheckpointError, match="has no checkpoints.*fit\\(\\) without resume=True"):
            run.load_checkpoint("last")


# -- the store's record of the save sequence ----------------------------------------------------------


def test_checkpoints_of_an_older_store_keep_their_order(store_dir):
    with epochal.start(store=store_dir) as run:
        for _ in range(3):
            run.step()
            run.save_checkpoint(retention=Retention(last=3, best=0))
    db = sqlite3.connect(store_dir / "epochal.db", isolation_level=None)
    order = [path for (path,) in db.execute("SELECT path FROM checkpoints ORDER BY seq")]
    # An older store: no sequence, and the clock had stepped back between the saves.
    db.execute("ALTER TABLE checkpoints DROP COLUMN seq")
    db.execute("UPDATE checkpoints SET created = 1000 - step")
    db.execute("PRAGMA user_version = 2")
    db.close()
    with epochal.resume(run.id, store=store_dir) as again:
        assert [c.path for c in again.store.checkpoints(run.id)] == order
        assert again.load_checkpoint("last").step == 3
