"""The team store end to end: runs shipped from the spool to a real PostgreSQL server, through outages,
kill -9, wrong passwords and `epochal sync`, with checkpoint files on S3 (a moto server)."""

import math
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import team_worker  # tests/, beside the root conftest

import epochal
from epochal.checkpoint import file_sha256, load_file
from epochal.cli import main
from epochal.redaction import redacted

WORKER = Path(team_worker.__file__)
PASSWORD = "s3cret-pw"  # the session server's, in every postgres_url


def _worker(*argv, **kwargs):
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _epochal(*argv):
    return subprocess.run([sys.executable, "-m", "epochal", *map(str, argv)], capture_output=True, text=True,
                          timeout=120)


def _bits(array):
    """An array's bytes, so that NaN equals NaN and -0.0 differs from 0.0."""
    return np.ascontiguousarray(array).tobytes()


def _assert_same_history(a, b):
    assert a.key == b.key
    for column in ("steps", "epochs", "values", "times"):
        assert getattr(a, column).dtype == getattr(b, column).dtype, column
        assert _bits(getattr(a, column)) == _bits(getattr(b, column)), column


def _assert_same_run(source, destination, run_id):
    """``destination`` holds exactly what ``source`` holds of the run: every key's points bit for bit, the
    same chunks, summaries and checkpoint records."""
    keys = source.keys(run_id)
    assert keys and destination.keys(run_id) == keys
    assert destination.chunk_counts(run_id) == source.chunk_counts(run_id)
    for key in keys:
        _assert_same_history(source.history(run_id, key, superseded=True),
                             destination.history(run_id, key, superseded=True))
        _assert_same_history(source.history(run_id, key), destination.history(run_id, key))
    # repr: a summary's NaN last value equals itself
    assert repr(destination.summary(run_id)) == repr(source.summary(run_id))
    assert destination.checkpoints(run_id) == source.checkpoints(run_id)


def _points(store, run_id):
    return sum(len(store.history(run_id, key, superseded=True)) for key in store.keys(run_id))


def _epochal_warnings(caught):
    return [str(w.message) for w in caught if issubclass(w.category, epochal.EpochalWarning)]


def _spool():
    from epochal import settings

    return settings.spool_path()


# -- what arrives -----------------------------------------------------------------------------------

ODD_VALUES = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e-300, 5e-324, 1.7976931348623157e308, 2**62, 10**18,
              2**53 + 1, -(2**63), 0.1, 1 / 3, math.nan]


def test_a_run_arrives_in_the_team_store_bit_for_bit(postgres_url):
    import torch

    config = {"optim": {"lr": 3e-4, "betas": [0.9, 0.999], "schedule": {"warmup": 100, "kind": "cosine"}},
              "layers": 4, "name": "gpt-tiny", "dropout": None, "amp": True}
    run = epochal.start(project="round-trip", name="exact", config=config, tags=["baseline", "ünïcode"],
                        description="every odd value\nand a second line", store=postgres_url,
                        flush_interval=0.05, system_metrics=False)
    for i, odd in enumerate(ODD_VALUES):
        run.log({"odd": odd, "train/loss": 1.0 / (i + 1)}, step=10 * i, epoch=i // 5)
    for step in range(150, 400):
        run.log({"train/loss": 1.0 / (step + 1), "valid/acc": step / 1000}, step=step, epoch=step // 100)
    model = torch.nn.Linear(4, 3)
    run.save_checkpoint(models=model, metric=("valid/acc", 0.399), mode="max")
    run.save_checkpoint(models=model, kind="weights")
    run.finish()

    with epochal.Store(_spool()) as spool, epochal.Store(postgres_url) as team:
        _assert_same_run(spool, team, run.id)
        # every field: config, tags, description, times, counters (records compare by identity)
        assert vars(team.stored_record(run.id)) == vars(spool.stored_record(run.id))
        odd = team.history(run.id, "odd")
        assert _bits(odd.values) == _bits(np.array([float(v) for v in ODD_VALUES]))
        assert odd.steps.tolist() == [10 * i for i in range(len(ODD_VALUES))]
        assert odd.epochs.tolist() == [i // 5 for i in range(len(ODD_VALUES))]
        record = team.run(run.id)
        assert record.status == "finished" and record.config == config
        assert record.config["optim.schedule.kind"] == "cosine"
        assert record.tags == ("baseline", "ünïcode") and record.description == "every odd value\nand a second line"
        summary = team.summary(run.id)["odd"]
        assert math.isnan(summary.last) and summary.min == -math.inf and summary.max == math.inf
        assert [(c.kind, c.metric_key, c.metric_value) for c in team.checkpoints(run.id)] == [
            ("resume", "valid/acc", 0.399), ("weights", None, None)]


def test_eight_processes_log_into_one_team_store_at_once(postgres_url):
    steps = 2000
    workers = [_worker("steady", postgres_url, f"w{i}", steps) for i in range(8)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0] * 8, outputs
    assert all("EpochalWarning" not in err for _, err in outputs), outputs
    ids = [out.split()[0] for out, _ in outputs]
    assert len(set(ids)) == 8
    with epochal.Store(postgres_url) as team:
        assert team.count_runs("team") == 8
        assert sorted(r.name for r in team.runs("team")) == [f"w{i}" for i in range(8)]
        for run_id in ids:
            assert team.run(run_id).status == "finished"
            for key in team_worker.KEYS:
                history = team.history(run_id, key)
                assert history.steps.tolist() == list(range(steps))
                assert history.values.tolist() == [team_worker.value(key, s) for s in range(steps)]


# -- when the server is down -------------------------------------------------------------------------

def test_training_goes_on_while_the_server_is_down_and_every_point_arrives(postgres_server, postgres_url, capsys):
    outage_s = 3.5
    stopped, restarted = threading.Event(), threading.Event()

    def outage():
        try:
            postgres_server.stop("immediate")
            stopped.set()
            time.sleep(outage_s)
        finally:
            postgres_server.start()
            restarted.set()

    longest, step = 0.0, 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = epochal.start(project="outage", store=postgres_url, flush_interval=0.05, system_metrics=False)
        thread = threading.Thread(target=outage)
        try:
            for _ in range(300):
                run.log({"a": float(step), "b": -1.0 - step})
                step = run.step()
                time.sleep(0.002)
            assert run.flush(timeout=10)  # shipped before the outage
            thread.start()
            stopped.wait(30)
            down_since = time.monotonic()
            while not restarted.is_set():
                started = time.perf_counter()
                run.log({"a": float(step), "b": -1.0 - step})
                longest = max(longest, time.perf_counter() - started)
                step = run.step()
                time.sleep(0.002)
            down_for = time.monotonic() - down_since
            for _ in range(300):
                run.log({"a": float(step), "b": -1.0 - step})
                step = run.step()
            run.finish()
        finally:
            thread.join(60)
            postgres_server.start()
    out, err = capsys.readouterr()

    assert down_for >= 3.0
    assert longest < 0.5, f"a log() call took {longest:.3f} s while the server was down"
    messages = _epochal_warnings(caught)
    assert len(messages) == 1, messages
    assert redacted(postgres_url) in messages[0] and "cannot take its points now" in messages[0]
    assert "works again" in out  # the shipper said so once the server was back
    assert PASSWORD not in " ".join(messages) + out + err
    with epochal.Store(_spool()) as spool, epochal.Store(postgres_url) as team:
        for key, expected in (("a", lambda s: float(s)), ("b", lambda s: -1.0 - s)):
            history = team.history(run.id, key)
            assert history.steps.tolist() == list(range(step))
            assert history.values.tolist() == [expected(s) for s in range(step)]
        _assert_same_run(spool, team, run.id)
        record = team.run(run.id)
        assert record.status == "finished"
        assert all(PASSWORD not in str(field) for field in vars(record).values())


def test_sync_ships_what_a_killed_process_left_in_its_spool(postgres_url):
    steps = 1000
    worker = _worker("kill", postgres_url, "doomed", steps)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == -9 and "shipped" in out and "spooled" in out, (out, err)
    run_id = out.split()[0]
    with epochal.Store(_spool()) as spool, epochal.Store(postgres_url) as team:
        assert all(len(spool.history(run_id, key)) == 2 * steps for key in team_worker.KEYS)
        shipped = _points(team, run_id)
        assert 3 * steps <= shipped < _points(spool, run_id)  # killed before the shipper caught up

    synced = _epochal("sync", _spool(), postgres_url)
    assert synced.returncode == 0, synced.stderr
    assert "synced 1 runs" in synced.stdout and PASSWORD not in synced.stdout + synced.stderr

    with epochal.Store(_spool()) as spool, epochal.Store(postgres_url) as team:
        _assert_same_run(spool, team, run_id)
        assert vars(team.stored_record(run_id)) == vars(spool.stored_record(run_id))
        assert team.run(run_id).status == "crashed"  # its process is gone
        for key in team_worker.KEYS:
            assert team.history(run_id, key).values.tolist() == [team_worker.value(key, s) for s in range(2 * steps)]


def test_sync_twice_stores_nothing_twice_and_copies_back_with_files(postgres_url, tmp_path, capsys):
    import torch

    local = tmp_path / "local"
    model = torch.nn.Linear(3, 2)
    with epochal.start(project="p", store=local, flush_interval=0.05, system_metrics=False) as run:
        for step in range(500):
            run.log({"loss": 1.0 / (step + 1), "acc": math.nan if step % 7 == 0 else step / 500})
            run.step()
            if step % 100 == 99:
                run.flush()  # several chunks per key
        checkpoint = run.save_checkpoint(models=model, metric=("acc", 0.9), mode="max")

    def counts():
        with epochal.Store(postgres_url) as team:
            return team.chunk_counts(run.id), _points(team, run.id), team.checkpoints(run.id)

    assert main(["sync", str(local), postgres_url]) == 0
    first_out = capsys.readouterr().out
    first = counts()
    assert main(["sync", str(local), postgres_url]) == 0
    second_out = capsys.readouterr().out
    assert counts() == first
    assert "synced 1 runs" in first_out and " 0 new chunks" not in first_out and "1 checkpoint records" in first_out
    assert "0 new chunks (0 points), 0 checkpoint records" in second_out
    assert first[1] == 1000 and sum(first[0].values()) > 2 and len(first[2]) == 1

    back = tmp_path / "back"
    assert main(["sync", postgres_url, str(back)]) == 0
    capsys.readouterr()
    with epochal.Store(local) as source, epochal.Store(back) as copy:
        _assert_same_run(source, copy, run.id)
        folder = Path(copy.run(run.id).path)
        assert folder == copy.files_root / run.id
        copied = folder / checkpoint.path
        assert file_sha256(copied) == checkpoint.sha256
        state = load_file(copied)["models"]["model"]
        assert all(torch.equal(state[name], tensor) for name, tensor in model.state_dict().items())


@pytest.fixture(params=["wrong password", "unknown host"])
def bad_url(request, postgres_server, postgres_url):
    if request.param == "wrong password":
        return postgres_server.url(postgres_url.rsplit("/", 1)[1], password="wr0ng-pw")
    return f"postgresql://epochal:{PASSWORD}@no-such-host.invalid:5432/epochal"


def test_an_unreachable_team_store_keeps_the_run_in_the_spool_until_sync(bad_url, postgres_url, capsys):
    password = "wr0ng-pw" if "wr0ng-pw" in bad_url else PASSWORD
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = epochal.start(project="offline", store=bad_url, flush_interval=0.05, system_metrics=False)
        for step in range(200):
            run.log({"loss": 1.0 / (step + 1)})
            run.step()
        assert run.summary["loss"].count == 200  # logging works: the spool has every point
        assert not run.flush(timeout=5)  # not shipped, and no waiting for a store that is down
        began = time.monotonic()
        run.finish()  # one more try, not the 30 s a reachable store gets for its last batches
        assert time.monotonic() - began < 10
    out, err = capsys.readouterr()
    messages = _epochal_warnings(caught)
    where = redacted(bad_url)
    assert "***" in where and password not in where
    assert len(messages) == 2, messages
    assert where in messages[0] and "cannot be reached" in messages[0]
    assert "still only in the spool" in messages[1] and f"epochal sync {_spool()} {where} --run {run.id}" in messages[1]
    assert password not in " ".join(messages) + out + err

    assert main(["sync", str(_spool()), postgres_url]) == 0
    capsys.readouterr()
    with epochal.Store(_spool()) as spool, epochal.Store(postgres_url) as team:
        _assert_same_run(spool, team, run.id)
        assert team.run(run.id).status == "finished"
        assert team.history(run.id, "loss").steps.tolist() == list(range(200))

    assert main(["ls", "--store", bad_url]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert where in err and password not in err


# -- files, resuming, records --------------------------------------------------------------------------

def test_checkpoints_of_a_team_run_are_shipped_to_s3(postgres_url, s3_bucket):
    import s3fs
    import torch

    run = epochal.start(project="s3", store=postgres_url, artifacts=s3_bucket, system_metrics=False)
    run.log({"loss": 0.5})
    checkpoint = run.save_checkpoint(models=torch.nn.Linear(2, 2))
    run.finish()

    with epochal.Store(postgres_url) as team:
        record = team.run(run.id)
        assert record.path == f"{s3_bucket}/{run.id}"
        (stored,) = team.checkpoints(run.id)
    assert stored == checkpoint
    s3 = s3fs.S3FileSystem()
    data = s3.cat_file(f"{record.path}/{stored.path}")
    import hashlib

    assert len(data) == stored.size and hashlib.sha256(data).hexdigest() == stored.sha256


@pytest.mark.parametrize("artifacts_again", [True, False], ids=["artifacts-given-again", "artifacts-from-the-record"])
def test_resume_on_a_machine_whose_spool_lacks_the_run(postgres_url, s3_bucket, tmp_path, monkeypatch,
                                                       artifacts_again):
    import shutil

    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    run = epochal.start(project="moving", store=postgres_url, artifacts=s3_bucket, flush_interval=0.05,
                        system_metrics=False)
    for step in range(100):
        run.log({"loss": 1.0 / (step + 1)})
        run.step()
    run.save_checkpoint(models=model)
    run.finish()
    shutil.rmtree(_spool())  # the first machine is gone
    monkeypatch.setenv("EPOCHAL_SPOOL", str(tmp_path / "another-machine-spool"))

    resumed = epochal.resume(run.id, store=postgres_url, artifacts=s3_bucket if artifacts_again else None,
                             flush_interval=0.05, system_metrics=False)
    assert resumed.segment == 1 and resumed.id == run.id
    fresh = torch.nn.Linear(3, 3)
    loaded = resumed.load_checkpoint("last", models=fresh)
    assert loaded.step == 100 and torch.equal(fresh.weight, model.weight)
    for step in range(100, 160):
        resumed.log({"loss": 1.0 / (step + 1)})
        resumed.step()
    later = resumed.save_checkpoint(models=model)
    resumed.finish()
    import s3fs

    # The resumed run's files go where the run's record says, the bucket, whether or not artifacts= is repeated.
    assert s3fs.S3FileSystem().exists(f"{s3_bucket}/{run.id}/{later.path}")

    with epochal.Store(postgres_url) as team:
        history = team.history(run.id, "loss")
        assert history.steps.tolist() == list(range(160))
        assert history.values.tolist() == [1.0 / (s + 1) for s in range(160)]
        assert team.run(run.id).segment == 1 and team.run(run.id).status == "finished"
        assert team.run(run.id).path == f"{s3_bucket}/{run.id}" and later in team.checkpoints(run.id)
        with epochal.Store(_spool()) as spool:
            _assert_same_run(spool, team, run.id)


def test_the_recorded_command_line_holds_no_password(postgres_url):
    worker = _worker("steady", postgres_url, "cmd", 10, "--store", postgres_url)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    run_id = out.split()[0]
    with epochal.Store(postgres_url) as team, epochal.Store(_spool()) as spool:
        for record in (team.run(run_id), spool.run(run_id)):
            assert PASSWORD not in record.command
            assert f"--store '{redacted(postgres_url)}'" in record.command and "team_worker.py steady" in record.command
    assert PASSWORD not in out + err


def test_epochal_dir_and_every_commands_store_take_a_postgresql_url(postgres_url, monkeypatch, capsys):
    monkeypatch.setenv("EPOCHAL_DIR", postgres_url)
    with epochal.start(project="by-env", name="from-the-environment", system_metrics=False) as run:
        run.log({"loss": 0.25})
    assert main(["ls"]) == 0  # the store of $EPOCHAL_DIR
    assert "from-the-environment" in capsys.readouterr().out
    monkeypatch.delenv("EPOCHAL_DIR")
    assert main(["show", run.id, "--store", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "from-the-environment" in out and "0.25" in out and PASSWORD not in out
