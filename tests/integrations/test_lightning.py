"""The Lightning integration, against a real lightning.Trainer: what EpochalLogger and EpochalDynamics record."""

import importlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

lightning = pytest.importorskip("lightning")

import epochal
from epochal.dynamics import sample_stats
from epochal.dynamics.record import FOLDER, recorded_epochs
from epochal.integrations.lightning import EpochalDynamics, EpochalLogger

pl = lightning.pytorch


class Classifier(pl.LightningModule):
    def __init__(self, lr=0.1, fail_at_epoch=None, hidden=8, activation=None, schedule=None):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at_epoch == self.current_epoch:
            raise RuntimeError("the data went bad")
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _data(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


def _loader(n=64, seed=0):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_data(n, seed)), batch_size=16)


def _trainer(tmp_path, logger, callbacks=(), epochs=3):
    return pl.Trainer(max_epochs=epochs, logger=logger, callbacks=list(callbacks), log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                      accelerator="cpu", devices=1)


def test_a_fit_records_metrics_on_lightnings_steps_and_epochs_config_checkpoints_and_the_end(tmp_path, store_dir):
    logger = EpochalLogger(project="lit", name="first", config={"data": "random"}, tags=["lightning"],
                           store=store_dir, system_metrics=False)
    checkpoints = pl.callbacks.ModelCheckpoint(monitor="val/loss", mode="min", save_top_k=1, save_last=True)
    trainer = _trainer(tmp_path, logger, [checkpoints])
    model = Classifier(lr=0.05, activation=torch.nn.ReLU, schedule={"kind": "step", "gamma": 0.5})
    trainer.fit(model, _loader(), _loader(32, seed=1))
    run = logger.experiment
    with epochal.Store(store_dir) as store:
        record = store.run(run.id)
        assert (record.project, record.name, record.tags, record.status) == ("lit", "first", ("lightning",), "finished")
        assert (record.steps, record.epochs) == (12, 3)  # 4 batches x 3 epochs, from the last checkpoint's step
        assert record.config["data"] == "random"
        assert record.config["lr"] == 0.05 and record.config["hidden"] == 8  # save_hyperparameters()
        assert record.config["activation"] == "torch.nn.modules.activation.ReLU"
        assert record.config["schedule"] == {"kind": "step", "gamma": 0.5}
        keys = set(store.summary(run.id))
        assert keys == {"train/loss_step", "train/loss_epoch", "val/loss"}  # 'epoch' is the axis, not a series
        steps = store.history(run.id, "train/loss_step")
        assert list(steps.steps) == list(range(12))  # Lightning logs at the step a batch starts from
        assert list(steps.epochs) == [0] * 4 + [1] * 4 + [2] * 4
        val = store.history(run.id, "val/loss")
        assert list(val.epochs) == [0, 1, 2] and list(val.steps) == [3, 7, 11]  # at the epoch's last batch
        recorded = {c.path: c for c in store.checkpoints(run.id)}
    # The files ModelCheckpoint keeps, no more: the best by val/loss and last.ckpt.
    on_disk = {str(p) for p in Path(checkpoints.dirpath).glob("*.ckpt")}
    assert set(recorded) == on_disk == {checkpoints.best_model_path, checkpoints.last_model_path}
    best = recorded[checkpoints.best_model_path]
    assert (best.metric_key, best.mode, best.kind) == ("val/loss", "min", "external")
    assert best.metric_value == pytest.approx(float(checkpoints.best_model_score))
    assert best.metric_value == pytest.approx(min(val.values), rel=1e-6)
    assert Path(checkpoints.dirpath) == tmp_path / "lit" / run.id / "checkpoints"
    assert logger.version == run.id and logger.name == "lit"


def test_test_after_fit_lands_in_the_same_run(tmp_path, store_dir):
    logger = EpochalLogger(project="lit", store=store_dir, system_metrics=False)
    trainer = _trainer(tmp_path, logger, epochs=1)
    model = Classifier()
    trainer.fit(model, _loader())
    first = logger.experiment.id
    trainer.test(model, _loader(32, seed=2))
    assert logger.experiment.id == first
    with epochal.Store(store_dir) as store:
        assert len(store.runs()) == 1
        assert store.run(first).status == "finished"
        assert "test/acc" in store.summary(first)


def test_an_exception_in_training_marks_the_run_failed_and_keeps_what_was_logged(tmp_path, store_dir):
    logger = EpochalLogger(store=store_dir, system_metrics=False)
    trainer = _trainer(tmp_path, logger, [pl.callbacks.ModelCheckpoint()])
    with pytest.raises(RuntimeError, match="the data went bad"):
        trainer.fit(Classifier(fail_at_epoch=1), _loader())
    with epochal.Store(store_dir) as store:
        record = store.run(logger.experiment.id)
        assert record.status == "failed"
        assert len(store.history(record.id, "train/loss_step").values) == 4
        assert [c.epoch for c in store.checkpoints(record.id)] == [0]


def test_resume_continues_the_run_from_lightnings_last_checkpoint(tmp_path, store_dir):
    logger = EpochalLogger(store=store_dir, system_metrics=False)
    trainer = _trainer(tmp_path, logger, [pl.callbacks.ModelCheckpoint(save_last=True)])
    with pytest.raises(RuntimeError):
        trainer.fit(Classifier(fail_at_epoch=2), _loader())
    run_id = logger.experiment.id
    again = EpochalLogger(store=store_dir, resume=run_id, system_metrics=False)
    trainer = _trainer(tmp_path, again, [pl.callbacks.ModelCheckpoint(save_last=True)])
    trainer.fit(Classifier(), _loader(), ckpt_path="last")
    assert again.experiment.id == run_id
    with epochal.Store(store_dir) as store:
        record = store.run(run_id)
        assert (record.status, record.steps, record.epochs, record.segment) == ("finished", 12, 3, 1)
        assert list(store.history(run_id, "train/loss_step").steps) == list(range(12))


def test_values_epochal_cannot_store_are_skipped_with_one_warning_each(store_dir):
    logger = EpochalLogger(store=store_dir, system_metrics=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            logger.log_metrics({"ok": 1.0 + step, "note": "a string", "vector": torch.ones(3)}, step=step)
    logger.finalize("success")
    warned = [str(w.message) for w in caught if issubclass(w.category, epochal.EpochalWarning)]
    assert len(warned) == 2 and any("'note'" in w for w in warned) and any("'vector'" in w for w in warned)
    with epochal.Store(store_dir) as store:
        assert list(store.history(logger.experiment.id, "ok").values) == [1.0, 2.0, 3.0]
        assert set(store.summary(logger.experiment.id)) == {"ok"}


def test_epochal_dynamics_records_the_fixed_samples_every_epoch(tmp_path, store_dir):
    x, y = _data(48, seed=3)
    logger = EpochalLogger(store=store_dir, system_metrics=False)
    trainer = _trainer(tmp_path, logger, [EpochalDynamics((x, y), every_n_epochs=2)], epochs=3)
    model = Classifier()
    trainer.fit(model, _loader())
    folder = Path(logger.experiment.path) / FOLDER
    assert recorded_epochs(folder) == [1, 2]  # every 2nd epoch, and the last
    stats = sample_stats(folder)
    assert np.array_equal(stats.labels, y.numpy()[stats.indices]) and sorted(stats.indices) == list(range(48))
    with torch.no_grad():  # the last epoch's predictions are the trained model's
        assert np.array_equal(stats.predictions[-1], model(x[stats.indices]).argmax(1).numpy())


def test_epochal_dynamics_without_an_epochal_logger_says_what_to_add(tmp_path):
    x, y = _data(16)
    trainer = _trainer(tmp_path, False, [EpochalDynamics((x, y))], epochs=1)
    with pytest.raises(ValueError, match=r"logger=EpochalLogger\(...\)"):
        trainer.fit(Classifier(), _loader())


def test_without_lightning_the_import_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.delitem(sys.modules, "epochal.integrations.lightning")
    with pytest.raises(ImportError, match=r"pip install epochal\[lightning\]"):
        importlib.import_module("epochal.integrations.lightning")


def test_an_unsupported_lightning_version_names_the_range(monkeypatch):
    monkeypatch.setattr(lightning, "__version__", "1.9.5")
    monkeypatch.delitem(sys.modules, "epochal.integrations.lightning")
    with warnings.catch_warnings(), pytest.raises(ImportError, match=r"supports lightning>=2.0,<3; this is lightning 1.9.5"):
        importlib.import_module("epochal.integrations.lightning")


def test_under_ddp_rank_0_alone_records_the_one_run(tmp_path, store_dir):
    from ddp_launch import torchrun

    done = torchrun(str(store_dir), str(tmp_path), worker=Path(__file__).parent / "lightning_ddp_worker.py")
    assert "rank 1 version None" in done.stdout  # rank 1 opened no run
    with epochal.Store(store_dir) as store:
        (record,) = store.runs()
        assert (record.status, record.steps, record.epochs) == ("finished", 4, 2)  # 64 samples / 16 / 2 ranks
        assert record.world_size == 1 and record.config["lr"] == 0.1
        assert len(store.history(record.id, "train/loss").values) == 4
        assert [c.step for c in store.checkpoints(record.id)] == [4]
    assert f"rank 0 version {record.id}" in done.stdout


def test_epochal_dynamics_needs_a_forward_and_says_so(tmp_path, store_dir):
    class NoForward(Classifier):
        forward = pl.LightningModule.forward

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    x, y = _data(16)
    logger = EpochalLogger(store=store_dir, system_metrics=False)
    with pytest.raises(ValueError, match="give it a forward"):
        _trainer(tmp_path, logger, [EpochalDynamics((x, y))], epochs=1).fit(NoForward(), _loader())
    with epochal.Store(store_dir) as store:
        assert store.run(logger.experiment.id).status == "failed"


def test_the_logger_pickles_without_its_open_run_for_spawned_processes(store_dir):
    import pickle

    logger = EpochalLogger(project="spawned", store=store_dir, system_metrics=False)
    logger.log_metrics({"x": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))
    assert copy._run is None and copy.name == "spawned"
    logger.finalize("success")
