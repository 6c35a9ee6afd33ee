"""The Trainer's loop: exact metrics, steps, errors on bad input, stopping, checkpoints."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.train.trainer import NonFiniteLossError


def _data(n=100, features=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    return x, (x[:, 0] > 0).long()


def _trainer(store_dir, *, n_train=100, batch_size=16, model=None, **kwargs):
    x, y = _data(n_train)
    vx, vy = _data(40, seed=1)
    torch.manual_seed(0)
    model = model or torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    options = dict(loss_fn=torch.nn.CrossEntropyLoss(), metrics=["accuracy"], max_epochs=2, store=store_dir,
                   progress=False, epoch_table=False, csv_tables=False, summary=False,
                   train_data=DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True),
                   valid_data=DataLoader(TensorDataset(vx, vy), batch_size=batch_size))
    options.update(kwargs)
    optimizer = options.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1)
    return epochal.Trainer(model, optimizer, **options)


def test_epoch_metrics_are_exact_over_the_data_set_with_a_partial_last_batch(store_dir):
    trainer = _trainer(store_dir, max_epochs=1, batch_size=32)  # 40 validation samples: batches of 32 and 8
    trainer.fit()
    valid = trainer.history[0]["valid"]
    vx, vy = _data(40, seed=1)
    with torch.no_grad():
        expected = (trainer.model(vx).argmax(1) == vy).float().mean().item()
    assert valid.metrics["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert valid.samples == 40 and valid.batches == 2
    store = epochal.Store(store_dir)
    assert store.history(trainer.run.id, "valid/accuracy").values.tolist() == [valid.metrics["accuracy"]]


def test_steps_epochs_and_keys_logged(store_dir):
    trainer = _trainer(store_dir, max_epochs=3, name="keys")
    trainer.fit()
    store = epochal.Store(store_dir)
    record = store.run("keys")
    assert record.status == "finished" and record.epochs == 3 and record.steps == 3 * 7  # 100 samples / 16
    loss = store.history(record, "train/loss")
    assert loss.steps.tolist() == list(range(21)) and loss.epochs.tolist() == [0] * 7 + [1] * 7 + [2] * 7
    assert store.history(record, "valid/loss").epochs.tolist() == [0, 1, 2]
    assert store.history(record, "lr").values.tolist() == [0.1, 0.1, 0.1]
    epoch_loss = store.history(record, "train/epoch_loss").values
    # The epoch's loss is the mean over its samples: batches weighted by their size (6 of 16, one of 4).
    assert np.allclose(epoch_loss[0], np.average(loss.values[:7], weights=[16] * 6 + [4]))
    # The spread of the batch losses, weighted alike.
    weights = np.array([16] * 6 + [4])
    variance = np.average((loss.values[:7] - epoch_loss[0]) ** 2, weights=weights) * 7 / 6
    assert store.history(record, "train/loss_std").values[0] == pytest.approx(np.sqrt(variance))


def test_test_logs_test_metrics_and_returns_them(store_dir):
    trainer = _trainer(store_dir, name="t")
    trainer.fit()
    result = trainer.test(trainer.loaders["valid"])
    assert result.stage == "test" and result.samples == 40 and 0 <= result.metrics["accuracy"] <= 1
    store = epochal.Store(store_dir)
    assert store.history("t", "test/accuracy").values.tolist() == [result.metrics["accuracy"]]
    assert store.run("t").status == "finished"


def test_a_batch_that_is_not_a_pair_names_the_hook_to_override(store_dir):
    x, y = _data()
    batches = [{"x": x[i:i + 10], "y": y[i:i + 10]} for i in range(0, 100, 10)]
    trainer = _trainer(store_dir, train_data=batches, valid_data=None)
    with pytest.raises(TypeError, match=r"training_step\(batch\)"):
        trainer.fit()

    class DictTrainer(epochal.Trainer):
        def training_step(self, batch):
            output = self.model(batch["x"])
            return {"loss": self.loss_fn(output, batch["y"]), "output": output, "target": batch["y"]}

    model = torch.nn.Linear(4, 2)
    custom = DictTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
                         train_data=batches, metrics=["accuracy"], max_epochs=1, store=store_dir, progress=False,
                         epoch_table=False, csv_tables=False, summary=False)
    custom.fit()
    assert custom.history[0]["train"].samples == 100 and "accuracy" in custom.history[0]["train"].metrics


def test_unknown_metric_lists_the_known_ones(store_dir):
    with pytest.raises(ValueError, match=r"unknown metric 'f1'.*accuracy.*top5.*mse"):
        _trainer(store_dir, metrics=["f1"])


def test_a_monitored_key_never_logged_fails_at_the_first_evaluation(store_dir):
    trainer = _trainer(store_dir, monitor="valid/f1", max_epochs=5)
    with pytest.raises(ValueError, match=r"'valid/f1' was never logged.*valid/accuracy"):
        trainer.fit()
    assert epochal.Store(store_dir).run(trainer.run.id).epochs == 0


def test_an_empty_loader_is_named(store_dir):
    empty = DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0).long()), batch_size=4)
    with pytest.raises(ValueError, match="valid_data is empty"):
        _trainer(store_dir, valid_data=empty).fit()


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(store_dir):
    class NanAfter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            out = self.linear(x)
            return out * math.nan if self.calls > 10 else out

    trainer = _trainer(store_dir, model=NanAfter(), max_epochs=3)
    with pytest.raises(NonFiniteLossError, match=r"train loss is nan at step 7 \(epoch 1, batch 0\)"):
        trainer.fit()
    store = epochal.Store(store_dir)
    assert store.run(trainer.run.id).status == "failed"
    assert [c.epoch for c in store.checkpoints(trainer.run.id) if c.kind == "resume"] == [1]

    trainer = _trainer(store_dir, model=NanAfter(), max_epochs=2, on_nan="continue", monitor="valid/accuracy")
    trainer.fit()
    assert math.isnan(trainer.history[-1]["train"].loss_mean)


def test_early_stopping_fires_with_its_defaults(store_dir):
    trainer = _trainer(store_dir, max_epochs=50, optimizer=None,
                       callbacks=[epochal.EarlyStopping("valid/accuracy")])
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0  # nothing can improve after the first epoch
    trainer.fit()
    assert len(trainer.history) == 6  # the first evaluation, then patience=5 without improvement
    assert "valid/accuracy did not improve" in trainer.stop_reason


def test_stop_training_from_a_callback_ends_the_fit_cleanly(store_dir):
    class StopAtTwo(epochal.Callback):
        def on_epoch_end(self, trainer, results):
            if trainer.run.epochs == 2:
                raise epochal.StopTraining("enough")

    trainer = _trainer(store_dir, max_epochs=10, callbacks=[StopAtTwo()])
    trainer.fit()
    assert trainer.stop_reason == "enough" and epochal.Store(store_dir).run(trainer.run.id).status == "finished"
    assert epochal.Store(store_dir).run(trainer.run.id).epochs == 2


def test_scheduler_per_step_and_per_epoch(store_dir):
    for interval, expected in (("epoch", [0.1, 0.05, 0.025]), ("step", [0.1, 0.1 * 0.5**7, 0.1 * 0.5**14])):
        model = torch.nn.Linear(4, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        trainer = _trainer(store_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                           scheduler_interval=interval, max_epochs=3)
        trainer.fit()
        logged = epochal.Store(store_dir).history(trainer.run.id, "lr").values
        assert np.allclose(logged, expected)


def test_gradient_accumulation_equals_one_bigger_batch(store_dir):
    def weights_after(batch_size, accumulate):
        model = torch.nn.Linear(4, 2)
        torch.nn.init.zeros_(model.weight), torch.nn.init.zeros_(model.bias)
        x, y = _data(32)
        trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5),
                                  loss_fn=torch.nn.CrossEntropyLoss(), train_data=DataLoader(TensorDataset(x, y),
                                  batch_size=batch_size), max_epochs=1, accumulate_grad_batches=accumulate,
                                  store=store_dir, progress=False, epoch_table=False, csv_tables=False,
                                  summary=False, checkpoint=False)
        trainer.fit()
        return model.weight.detach().clone()

    assert torch.allclose(weights_after(16, 2), weights_after(32, 1), atol=1e-6)


def test_gradient_clipping_bounds_the_update(store_dir):
    model = torch.nn.Linear(4, 2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    x, y = _data(16)
    trainer = epochal.Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), loss_fn=torch.nn.CrossEntropyLoss(),
                              train_data=[(x * 1000, y)], max_epochs=1, grad_clip_norm=0.01, store=store_dir,
                              progress=False, epoch_table=False, csv_tables=False, summary=False, checkpoint=False)
    trainer.fit()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 0.01 + 1e-6


def test_amp_on_cpu_trains_in_bfloat16(store_dir):
    model, seen = _probe_dtypes()
    trainer = _trainer(store_dir, model=model, amp=True, max_epochs=1)
    trainer.fit()
    assert torch.bfloat16 in seen and math.isfinite(trainer.history[0]["train"].loss_mean)


def test_function_and_torchmetrics_metrics(store_dir):
    def errors_func(output, target):
        return (output.argmax(1) != target).sum(), target.numel()

    metrics = ["accuracy", "top1", errors_func]
    torchmetrics = pytest.importorskip("torchmetrics")
    metrics.append(torchmetrics.classification.MulticlassAccuracy(num_classes=2, average="micro"))
    trainer = _trainer(store_dir, metrics=metrics, max_epochs=1)
    trainer.fit()
    valid = trainer.history[0]["valid"].metrics
    assert valid["errors"] == pytest.approx(1 - valid["accuracy"]) and valid["top1"] == valid["accuracy"]
    assert valid["multiclassaccuracy"] == pytest.approx(valid["accuracy"])


def test_model_checkpoint_keeps_best_weights_and_a_resumable_last(store_dir):
    trainer = _trainer(store_dir, max_epochs=4, checkpoint=True,
                       callbacks=[epochal.ModelCheckpoint("valid/accuracy", every_n_epochs=2)])
    trainer.fit()
    kept = epochal.Store(store_dir).checkpoints(trainer.run.id)
    resumable = sorted(c.epoch for c in kept if c.kind == "resume")
    weights = [c for c in kept if c.kind == "weights"]
    assert resumable == [2, 4] and len(weights) == 1
    best = max((r["valid"].metrics["accuracy"], -e) for e, r in enumerate(trainer.history))
    assert weights[0].metric_value == best[0] and weights[0].epoch == -best[1] + 1
    payload = torch.load(trainer.run.path / weights[0].path, weights_only=True)
    assert payload["optimizers"] == {} and set(payload["models"]) == {"model"}
    assert [type(c).__name__ for c in trainer.callbacks].count("ModelCheckpoint") == 1  # the given one replaced the default


def test_resume_of_an_unknown_name_starts_a_new_run(store_dir, capsys):
    trainer = _trainer(store_dir, name="fresh", max_epochs=1)
    trainer.fit(resume=True)
    assert "no run named 'fresh' to resume" in capsys.readouterr().out
    assert epochal.Store(store_dir).run("fresh").epochs == 1


def test_bad_trainer_arguments(store_dir):
    with pytest.raises(ValueError, match="max_epochs"):
        _trainer(store_dir, max_epochs=0)
    with pytest.raises(ValueError, match="on_nan"):
        _trainer(store_dir, on_nan="ignore")
    with pytest.raises(TypeError, match="epochal.Callback"):
        _trainer(store_dir, callbacks=[object()])
    with pytest.raises(ValueError, match="needs train_data"):
        _trainer(store_dir, train_data=None).fit()


def test_evaluation_every_n_epochs_and_after_the_last(store_dir):
    trainer = _trainer(store_dir, max_epochs=5, eval_every=2)
    trainer.fit()
    assert [("valid" in results) for results in trainer.history] == [False, True, False, True, True]
    assert epochal.Store(store_dir).history(trainer.run.id, "valid/loss").epochs.tolist() == [1, 3, 4]


def _probe_dtypes():
    seen = []

    class Probe(torch.nn.Linear):
        def forward(self, x):
            out = super().forward(x)
            seen.append(out.dtype)
            return out

    return Probe(4, 2), seen


def test_amp_true_on_cpu_is_bfloat16_without_a_scaler_and_fp16_brings_one(store_dir):
    model, seen = _probe_dtypes()
    trainer = _trainer(store_dir, model=model, amp=True, max_epochs=1)
    assert trainer.amp_dtype == torch.bfloat16 and trainer.scaler is None
    model, seen = _probe_dtypes()
    trainer = _trainer(store_dir, model=model, amp="fp16", max_epochs=1)
    assert trainer.amp_dtype == torch.float16 and isinstance(trainer.scaler, torch.amp.GradScaler)
    trainer.fit()
    assert torch.float16 in seen and math.isfinite(trainer.history[0]["train"].loss_mean)
    # The scaler's state goes into the checkpoint, so a resume continues its scale.
    saved = epochal.checkpoint.read(trainer.run.path / trainer.run.store.checkpoints(trainer.run.id)[-1].path)
    assert saved["scaler"] is not None and saved["scaler"]["scale"] > 0


@pytest.mark.parametrize("amp", ["float16", "bfloat16", 1, "yes"])
def test_an_unknown_amp_is_refused_naming_the_choices(store_dir, amp):
    with pytest.raises(ValueError, match=r"amp must be True .*False, 'bf16' or 'fp16', got"):
        _trainer(store_dir, amp=amp)


def test_the_trainer_offers_everything_the_trainer_view_promises_callbacks(store_dir):
    promised = set(epochal.TrainerView.__annotations__) | {
        name for name, value in vars(epochal.TrainerView).items() if callable(value) and not name.startswith("_")}
    trainer = _trainer(store_dir, max_epochs=1)
    trainer.fit()  # `run` is there once a fit has opened one
    missing = sorted(name for name in promised if not hasattr(trainer, name))
    assert not missing and {"run", "model", "stop", "save_checkpoint"} <= promised
