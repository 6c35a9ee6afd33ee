import math
import os

import numpy as np
import pytest
import torch

import epochal
from epochal import Retention


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))


def test_checkpoint_holds_everything_and_loads_with_weights_only(store_dir):
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    with epochal.start(store=store_dir) as run:
        run.step(7)
        run.epoch(2)
        record = run.save_checkpoint(models=model, optimizers=optimizer, schedulers=scheduler, scaler=scaler,
                                     extra={"sampler": {"order": np.arange(5)}, "best": 0.5},
                                     metric=("valid/acc", torch.tensor(0.75)), mode="max")
    path = run.path / record.path
    assert path.is_file() and record.size == path.stat().st_size and len(record.sha256) == 64
    payload = torch.load(path, weights_only=True)  # no pickled objects of ours
    assert payload["step"] == 7 and payload["epoch"] == 2
    assert set(payload["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert payload["metric"] == {"key": "valid/acc", "value": 0.75, "mode": "max"}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left

    fresh, fresh_opt = _model(seed=1), torch.optim.Adam(_model(seed=1).parameters(), lr=0.5)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.5)
    fresh_sched = torch.optim.lr_scheduler.CosineAnnealingLR(fresh_opt, T_max=99)
    fresh_scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    with epochal.resume(run.id, store=store_dir) as again:
        loaded = again.load_checkpoint("last", models=fresh, optimizers=fresh_opt, schedulers=fresh_sched,
                                       scaler=fresh_scaler)
        assert (again.steps, again.epochs) == (7, 2)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_opt.state_dict()["param_groups"][0]["lr"] == optimizer.state_dict()["param_groups"][0]["lr"]
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert fresh_sched.T_max == 10 and fresh_scaler.get_scale() == 1024.0
    assert loaded.metric == ("valid/acc", 0.75) and loaded.extra["best"] == 0.5
    assert loaded.extra["sampler"]["order"].tolist() == [0, 1, 2, 3, 4]


def test_random_states_are_restored(store_dir):
    import random

    with epochal.start(store=store_dir) as run:
        run.save_checkpoint()
        expected = (random.random(), np.random.rand(), torch.rand(1).item())
        random.random(), np.random.rand(), torch.rand(3)
        run.load_checkpoint("last")
        assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_retention_keeps_last_best_and_every_nth_and_removes_the_rest(store_dir):
    accs = [0.5, 0.9, 0.6, 0.7, 0.8, 0.65, 0.55]
    with epochal.start(store=store_dir) as run:
        for acc in accs:
            run.epoch()
            run.step(10)
            run.save_checkpoint(metric=("valid/acc", acc), mode="max",
                                retention=Retention(last=2, best=2, every_n_epochs=3))
        kept = epochal.Store(store_dir).checkpoints(run.id)
        # last two: epochs 6, 7; best two: 0.9 (2), 0.8 (5); every 3rd: 3, 6
        assert sorted(c.epoch for c in kept) == [2, 3, 5, 6, 7]
        on_disk = sorted(p.name for p in (run.path / "checkpoints").iterdir())
        assert on_disk == sorted(os.path.basename(c.path) for c in kept)
        assert run.load_checkpoint("best").epoch == 2
        assert run.load_checkpoint("last").epoch == 7


def test_best_by_lowest_metric_and_nan_is_never_best(store_dir):
    with epochal.start(store=store_dir) as run:
        for loss in (0.4, math.nan, 0.2, 0.3):
            run.step()
            run.save_checkpoint(metric=("valid/loss", loss), mode="min", retention=Retention(last=10))
        best = run.load_checkpoint("best")
        assert best.metric == ("valid/loss", 0.2) and best.step == 3


def test_default_retention_keeps_one_last_and_one_best(store_dir):
    with epochal.start(store=store_dir) as run:
        for acc in (0.9, 0.1, 0.2):
            run.step()
            run.save_checkpoint(metric=("acc", acc))
        assert sorted(c.step for c in epochal.Store(store_dir).checkpoints(run.id)) == [1, 3]


def test_failed_write_leaves_no_file_and_keeps_the_previous_checkpoint(store_dir, monkeypatch):
    model = _model()
    with epochal.start(store=store_dir) as run:
        first = run.save_checkpoint(models=model)
        run.step()

        def disk_full(obj, file, *args, **kwargs):
            file.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(torch, "save", disk_full)
        with pytest.raises(epochal.CheckpointError, match="No space left"):
            run.save_checkpoint(models=model)
        monkeypatch.undo()
        assert [p.name for p in (run.path / "checkpoints").iterdir()] == [os.path.basename(first.path)]
        assert epochal.Store(store_dir).checkpoints(run.id) == [first]
        assert run.load_checkpoint("last", models=_model(seed=3)).step == 0


def test_damaged_checkpoint_is_detected(store_dir):
    with epochal.start(store=store_dir) as run:
        record = run.save_checkpoint(models=_model())
        path = run.path / record.path
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(epochal.CheckpointError):
            run.load_checkpoint("last", models=_model())


def test_unsafe_extra_is_refused_before_writing(store_dir):
    class Sampler:
        pass

    with epochal.start(store=store_dir) as run:
        with pytest.raises(epochal.CheckpointError, match=r"extra\['sampler'\].*Sampler.*state_dict"):
            run.save_checkpoint(extra={"sampler": Sampler()})
        assert epochal.Store(store_dir).checkpoints(run.id) == []


def test_loading_into_objects_the_checkpoint_lacks_is_a_clear_error(store_dir):
    with epochal.start(store=store_dir) as run:
        run.save_checkpoint(models={"encoder": _model()})
        with pytest.raises(epochal.CheckpointError, match=r"no models\['decoder'\].*encoder"):
            run.load_checkpoint("last", models={"decoder": _model()})
        with pytest.raises(epochal.CheckpointError, match="no checkpoint saved with a metric"):
            run.load_checkpoint("best")


def test_load_by_path_without_a_run(store_dir):
    model = _model()
    with epochal.start(store=store_dir) as run:
        record = run.save_checkpoint(models=model)
    fresh = _model(seed=5)
    from epochal.checkpoint import load

    loaded = load(run.path / record.path, models=fresh, restore_rng=False)
    assert loaded.record is None and torch.equal(fresh[0].weight, model[0].weight)


def test_bad_checkpoint_arguments(store_dir):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(ValueError, match="'min' or 'max'"):
            run.save_checkpoint(mode="up")
        with pytest.raises(TypeError, match="metric is a"):
            run.save_checkpoint(metric=0.5)
        with pytest.raises(ValueError, match="Retention.last"):
            Retention(last=0)
        with pytest.raises(epochal.CheckpointError, match="has no checkpoints"):
            run.load_checkpoint("last")


def test_a_metric_key_the_store_cannot_hold_is_refused_before_the_file_is_written(store_dir):
    model = torch.nn.Linear(2, 2)
    with epochal.start(store=store_dir) as run:
        with pytest.raises(ValueError, match="not valid Unicode"):
            run.save_checkpoint(models=model, metric=("valid/\udcff", 0.5))
        assert list(run.path.glob("checkpoints/*.pt")) == []
        run.save_checkpoint(models=model, metric=("valid/acc", 0.5))
    assert [c.metric_key for c in epochal.Store(store_dir).checkpoints(run.id)] == ["valid/acc"]
