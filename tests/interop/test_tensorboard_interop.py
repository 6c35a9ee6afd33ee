"""TensorBoard event files in and out: read back with TensorBoard's own EventAccumulator, and imported."""

from __future__ import annotations

import math
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import epochal
from epochal.cli import main
from epochal.errors import EpochalWarning
from epochal.interop import EventFileError, export_tensorboard, import_tensorboard

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

WALL = float(int(time.time()) + 1000)  # later than the writers' own first event (file version, at creation)


def accumulate(directory):
    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture
def logged(store):
    """A finished run with a loss, an accuracy and NaN / inf values."""
    with epochal.start(project="p", name="alpha", store=store) as run:
        for step in range(30):
            run.log({"train/loss": 1 / (step + 1), "train/acc": step / 30})
            run.step()
        run.log({"valid/loss": math.nan, "valid/acc": math.inf}, step=30)
        run.log({"valid/loss": -math.inf, "valid/acc": 0.1234567891234}, step=31)
    return store.run("alpha")


@pytest.fixture
def template_runs(tmp_path):
    """A `runs/` folder as the template tool leaves it: two runs of SummaryWriter event files."""
    logdir = tmp_path / "runs"
    with SummaryWriter(logdir / "May27_21-31-59_host") as writer:
        for step in range(10):
            writer.add_scalar("Train/loss", 1 / (step + 1), step, walltime=WALL + step + 0.25)
        writer.add_scalar("Train/loss", math.nan, 10, walltime=WALL + 10.5)
        writer.add_scalar("Train/loss", 0.7, 3, walltime=WALL + 11)  # a step logged again
        writer.add_scalar("Test/acc", math.inf, 10, walltime=WALL + 12)
        writer.add_text("notes", "not a scalar", 0, walltime=WALL + 13)
    with SummaryWriter(logdir / "May28_09-00-00_host") as writer:
        writer.add_scalar("Test/acc", 0.5, 1, walltime=WALL + 100)
    return logdir


# -- export ----------------------------------------------------------------------------------------


def test_export_is_read_by_tensorboard_with_the_same_keys_steps_values_and_times(store, logged, tmp_path):
    points = export_tensorboard(store, logged, tmp_path / "tb")
    accumulator = accumulate(tmp_path / "tb")
    assert sorted(accumulator.Tags()["scalars"]) == sorted(store.keys(logged))
    total = 0
    for key in store.keys(logged):
        h = store.history(logged, key)
        events = accumulator.Scalars(key)
        assert [e.step for e in events] == h.steps.tolist()
        np.testing.assert_array_equal(np.array([e.value for e in events], np.float32), h.values.astype(np.float32))
        assert [e.wall_time for e in events] == h.times.tolist()
        total += len(events)
    assert points == total == 2 * 30 + 4
    acc = [e.value for e in accumulator.Scalars("valid/acc")]
    loss = [e.value for e in accumulator.Scalars("valid/loss")]
    assert math.isinf(acc[0]) and math.isnan(loss[0]) and loss[1] == -math.inf


def test_export_of_chosen_keys_refuses_a_directory_with_other_event_files(store, logged, tmp_path):
    assert export_tensorboard(store, logged, tmp_path / "tb", keys=["valid/acc"]) == 2
    assert accumulate(tmp_path / "tb").Tags()["scalars"] == ["valid/acc"]
    assert export_tensorboard(store, logged, tmp_path / "tb") == 64  # the same run again replaces its file
    assert len(list((tmp_path / "tb").iterdir())) == 1
    with SummaryWriter(tmp_path / "other") as writer:
        writer.add_scalar("x", 1.0, 0)
    before = sorted((tmp_path / "other").iterdir())
    with pytest.raises(EventFileError, match="already holds the event file"):
        export_tensorboard(store, logged, tmp_path / "other")
    assert sorted((tmp_path / "other").iterdir()) == before


# -- import ----------------------------------------------------------------------------------------


def test_import_reads_every_run_of_a_template_logdir_losslessly(store, template_runs):
    ids = import_tensorboard(store, template_runs)
    runs = {record.name: record for record in store.runs(project="tensorboard")}
    assert sorted(runs) == ["May27_21-31-59_host", "May28_09-00-00_host"]
    assert sorted(ids) == sorted(record.id for record in runs.values())
    first = runs["May27_21-31-59_host"]
    assert first.status == "finished" and first.started < WALL and first.ended == WALL + 13
    assert store.keys(first) == ["Test/acc", "Train/loss"]
    loss = store.history(first, "Train/loss")
    assert loss.steps.tolist() == [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10]
    expected = [1 / (s + 1) for s in range(4)] + [0.7] + [1 / (s + 1) for s in range(4, 10)] + [math.nan]
    np.testing.assert_array_equal(loss.values, np.array(expected, np.float32).astype(np.float64))
    assert loss.times[4] == WALL + 11 and loss.times[0] == WALL + 0.25 and not loss.epochs.any()
    assert store.history(first, "Test/acc").values.tolist() == [math.inf]
    second = runs["May28_09-00-00_host"]
    assert second.started < WALL and second.ended == WALL + 100 and second.steps == 1


def test_import_keeps_double_precision_scalars_and_reads_a_logdir_of_files(store, tmp_path):
    with SummaryWriter(tmp_path / "flat") as writer:
        writer.add_scalar("lr", 0.1234567891234, 5, walltime=WALL, new_style=True, double_precision=True)
    (run_id,) = import_tensorboard(store, tmp_path / "flat", project="mine")
    record = store.run(run_id)
    assert (record.name, record.project, record.steps) == ("flat", "mine", 5)
    assert store.history(record, "lr").values.tolist() == [0.1234567891234]


def test_export_then_import_round_trips_through_float32(store, logged, tmp_path):
    export_tensorboard(store, logged, tmp_path / "tb" / "alpha")
    (run_id,) = import_tensorboard(store, tmp_path / "tb")
    for key in store.keys(logged):
        original, back = store.history(logged, key), store.history(run_id, key)
        assert back.steps.tolist() == original.steps.tolist()
        np.testing.assert_array_equal(back.values, original.values.astype(np.float32).astype(np.float64))
        np.testing.assert_array_equal(back.times, original.times)


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[:-3]))
    else:
        data[-6] ^= 0xFF  # inside the last record's data: its checksum fails
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_a_damaged_event_file_is_named_and_nothing_is_imported(store_dir, template_runs, how):
    (bad,) = (template_runs / "May28_09-00-00_host").glob("events.out.tfevents.*")
    damage(bad, how)
    with pytest.raises(EventFileError, match="damaged") as info:
        import_tensorboard(store_dir, template_runs)
    assert str(bad) in str(info.value)
    assert not store_dir.exists()  # not even the store was created


def test_a_missing_or_empty_logdir_is_refused(store, tmp_path):
    with pytest.raises(EventFileError, match="does not exist"):
        import_tensorboard(store, tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(EventFileError, match="no TensorBoard event files"):
        import_tensorboard(store, tmp_path / "empty")
    (tmp_path / "empty" / "sub" / "events.out.tfevents.1.host").write_bytes(b"not an event file at all")
    with pytest.raises(EventFileError, match="damaged"):
        import_tensorboard(store, tmp_path / "empty")
    assert store.runs() == []


# -- command line ----------------------------------------------------------------------------------


def test_cli_exports_to_a_directory_and_imports_a_logdir(store, logged, store_dir, template_runs, tmp_path, capsys):
    assert main(["export", "alpha", "--store", str(store_dir), "-o", str(tmp_path / "tb")]) == 0
    assert "wrote 64 points" in capsys.readouterr().out
    assert len(accumulate(tmp_path / "tb").Scalars("train/loss")) == 30
    target = tmp_path / "elsewhere"
    assert main(["import", "tensorboard", str(template_runs), "--project", "imp", "--store", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported 2 runs") and "May27_21-31-59_host" in out and "imp" in out
    assert main(["ls", "--store", str(target)]) == 0
    assert "May28_09-00-00_host" in capsys.readouterr().out


def test_cli_import_of_bad_input_exits_with_status_2(template_runs, tmp_path, capsys):
    (bad,) = (template_runs / "May27_21-31-59_host").glob("events.out.tfevents.*")
    damage(bad, "flipped")
    for logdir in (template_runs, tmp_path / "missing"):
        assert main(["import", "tensorboard", str(logdir), "--store", str(tmp_path / "s")]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("epochal: ")
    assert not (tmp_path / "s").exists()
    assert main(["export", "x", "--format", "tensorboard", "-o", "-"]) == 2


def test_import_has_help_and_a_store_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: epochal import") and "--store DIR" in out and "LOGDIR" in out


def record(data, length=None):
    """One TFRecord: uint64 length, its masked crc32c, the data, the data's masked crc32c."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    header = (len(data) if length is None else length).to_bytes(8, "little")
    return header + masked_crc32c(header).to_bytes(4, "little") + data + masked_crc32c(data).to_bytes(4, "little")


@pytest.mark.parametrize("length", [2**64 - 1, 2**63, 2**40, 10**9, 100])
@pytest.mark.parametrize("where", ["appended", "alone"])
def test_a_record_longer_than_its_file_is_damage_not_an_allocation(template_runs, tmp_path, capsys, length, where):
    (good,) = (template_runs / "May27_21-31-59_host").glob("events.out.tfevents.*")
    crafted = record(b"x" * 20, length)[:40]  # a valid header crc, then less data than the length says
    good.write_bytes((good.read_bytes() if where == "appended" else b"") + crafted)
    started = time.monotonic()
    with pytest.raises(EventFileError, match="is damaged at record") as info:
        import_tensorboard(tmp_path / "s", template_runs)
    assert f"its length says {length:,} bytes" in str(info.value) and str(good) in str(info.value)
    assert main(["import", "tensorboard", str(template_runs), "--store", str(tmp_path / "s")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"epochal: event file '{good}' is damaged")
    assert time.monotonic() - started < 10 and not (tmp_path / "s").exists()


def test_records_written_by_hand_are_read_like_tensorboards(tmp_path, store):
    from tensorboard.compat.proto.event_pb2 import Event

    events = [Event(wall_time=WALL, file_version="brain.Event:2")]
    for step in range(3):
        event = Event(wall_time=WALL + step, step=step)
        event.summary.value.add(tag="loss", simple_value=step / 2)
        events.append(event)
    (tmp_path / "logs").mkdir()
    file = tmp_path / "logs" / "events.out.tfevents.1.host"
    file.write_bytes(b"".join(record(e.SerializeToString()) for e in events))
    (run_id,) = import_tensorboard(store, tmp_path / "logs")
    assert store.history(run_id, "loss").values.tolist() == [0.0, 0.5, 1.0]
    assert accumulate(tmp_path / "logs").Scalars("loss")[2].value == 1.0


# -- what Lightning and add_hparams leave ----------------------------------------------------------


@pytest.fixture(scope="module")
def lightning_logs(tmp_path_factory):
    """The log directory Lightning's TensorBoardLogger writes during a real two-epoch Trainer.fit."""
    pl = pytest.importorskip("lightning.pytorch")
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.1, optim=None, betas=(0.9, 0.999)):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, index):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train/loss", loss, on_step=True, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=4)  # 4 steps an epoch
    logdir = tmp_path_factory.mktemp("lightning")
    trainer = pl.Trainer(
        max_epochs=2, logger=pl.loggers.TensorBoardLogger(logdir), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1, accelerator="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and loggers
        trainer.fit(Tiny(optim={"name": "sgd", "momentum": 0.9}), data)
    return logdir


def events_of(directory):
    """Every event below ``directory``, read by TensorBoard's own loader."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [event for path in sorted(directory.rglob("*tfevents*")) for event in EventFileLoader(str(path)).Load()]


def copy_of(logdir, tmp_path):
    shutil.copytree(logdir, tmp_path / "copy")
    return tmp_path / "copy", tmp_path / "copy" / "lightning_logs" / "version_0"


def test_a_lightning_logdir_imports_with_its_duration_config_and_epochs(lightning_logs, store_dir, capsys):
    assert main(["import", "tensorboard", str(lightning_logs), "--store", str(store_dir)]) == 0
    assert "lightning_logs/version_0" in capsys.readouterr().out
    with epochal.Store(store_dir) as store:
        (record,) = store.runs()
        times = [event.wall_time for event in events_of(lightning_logs)]
        assert (record.name, record.started, record.ended) == ("lightning_logs/version_0", min(times), max(times))
        assert record.duration == max(times) - min(times) > 0
        assert record.config.to_dict() == {"lr": 0.1, "optim": {"name": "sgd", "momentum": 0.9}, "betas": [0.9, 0.999]}
        assert store.keys(record) == ["train/loss_epoch", "train/loss_step"]  # no epoch, no hp_metric placeholder
        steps = store.history(record, "train/loss_step")
        assert steps.steps.tolist() == list(range(8)) and steps.epochs.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
        ends = store.history(record, "train/loss_epoch")
        assert ends.steps.tolist() == [3, 7] and ends.epochs.tolist() == [0, 1]
        assert (record.steps, record.epochs) == (7, 1)
    logged = accumulate(lightning_logs / "lightning_logs" / "version_0")
    assert [e.value for e in logged.Scalars("hp_metric")] == [-1]  # what was left out: the placeholder
    np.testing.assert_array_equal(steps.values, [e.value for e in logged.Scalars("train/loss_step")])


def test_without_hparams_yaml_the_config_is_lightnings_plugin_data(lightning_logs, tmp_path, store):
    logdir, version = copy_of(lightning_logs, tmp_path)
    (version / "hparams.yaml").unlink()
    (run_id,) = import_tensorboard(store, logdir)
    # Lightning flattens nested names and writes what the plugin cannot hold as text
    expected = {"betas": "(0.9, 0.999)", "lr": 0.1, "optim/momentum": 0.9, "optim/name": "sgd"}
    assert store.run(run_id).config.to_dict() == expected


@pytest.mark.parametrize("text", ["lr: [0.1\noptim: {", "- just\n- a list\n"])
def test_an_unreadable_hparams_yaml_is_named_and_the_scalars_still_come_in(lightning_logs, tmp_path, store, text):
    logdir, version = copy_of(lightning_logs, tmp_path)
    (version / "hparams.yaml").write_text(text)
    with pytest.warns(EpochalWarning, match=re.escape(str(version / "hparams.yaml"))):
        (run_id,) = import_tensorboard(store, logdir)
    record = store.run(run_id)
    assert record.config.to_dict() == {}
    assert store.keys(record) == ["train/loss_epoch", "train/loss_step"]
    assert len(store.history(record, "train/loss_step")) == 8


def test_python_tags_in_hparams_yaml_are_read_as_text_and_never_run(lightning_logs, tmp_path, store):
    logdir, version = copy_of(lightning_logs, tmp_path)
    (version / "hparams.yaml").write_text(
        "cmd: !!python/object/apply:os.system [touch pwned]\nact: !!python/name:torch.nn.ReLU ''\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", EpochalWarning)
        (run_id,) = import_tensorboard(store, logdir)
    assert store.run(run_id).config.to_dict() == {
        "cmd": "!!python/object/apply:os.system ['touch pwned']", "act": "torch.nn.ReLU",
    }
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_add_hparams_goes_into_the_config_of_its_writers_run(store, tmp_path):
    with SummaryWriter(tmp_path / "runs" / "baseline") as writer:
        for step in range(3):
            writer.add_scalar("loss", 1 / (step + 1), step)
        writer.add_hparams({"lr": 0.01, "batch": 32, "optim": "adam"}, {"hparam/acc": 0.75, "hparam/loss": 0.5})
    with SummaryWriter(tmp_path / "runs" / "sweep") as writer:  # several add_hparams: one run per trial
        for trial in range(2):
            writer.add_hparams({"lr": 0.1 * (trial + 1)}, {"hparam/acc": 0.5 + trial / 4}, run_name=f"trial{trial}")
    import_tensorboard(store, tmp_path / "runs")
    runs = {record.name: record for record in store.runs()}
    assert sorted(runs) == ["baseline", "sweep/trial0", "sweep/trial1"]  # sweep itself holds nothing
    baseline = runs["baseline"]
    assert baseline.config.to_dict() == {"batch": 32.0, "lr": 0.01, "optim": "adam"}  # the plugin keeps doubles
    assert store.keys(baseline) == ["hparam/acc", "hparam/loss", "loss"]
    assert store.history(baseline, "hparam/acc").values.tolist() == [0.75]
    times = [event.wall_time for event in events_of(tmp_path / "runs" / "baseline")]  # its subdirectory's too
    assert (baseline.started, baseline.ended) == (min(times), max(times))
    (written,) = [path for path in (tmp_path / "runs" / "baseline").iterdir() if path.is_dir()]  # a time's name
    assert baseline.ended == max(event.wall_time for event in events_of(written))
    assert runs["sweep/trial1"].config.to_dict() == {"lr": 0.2}
    assert store.history(runs["sweep/trial1"], "hparam/acc").values.tolist() == [0.75]


def test_an_epoch_scalar_becomes_the_epochs_and_a_real_hp_metric_stays(store, tmp_path):
    with SummaryWriter(tmp_path / "mine") as writer:
        writer.add_scalar("hp_metric", -1, 0, walltime=WALL)
        for step in range(12):
            writer.add_scalar("loss", 1 / (step + 1), step, walltime=WALL + step)
        writer.add_scalar("epoch", 1, 5, walltime=WALL + 5)
        writer.add_scalar("epoch", 2, 9, walltime=WALL + 9)
        writer.add_scalar("hp_metric", 0.8, 11, walltime=WALL + 11)
    (run_id,) = import_tensorboard(store, tmp_path / "mine")
    assert store.keys(run_id) == ["hp_metric", "loss"]
    assert store.history(run_id, "loss").epochs.tolist() == [0] * 5 + [1] * 4 + [2] * 3
    hp_metric = store.history(run_id, "hp_metric")
    assert (hp_metric.steps.tolist(), hp_metric.epochs.tolist()) == ([11], [2])  # the placeholder left out
    assert hp_metric.values.tolist() == [np.float32(0.8)]
    assert store.run(run_id).epochs == 2


def test_an_epoch_of_fractions_is_a_series_like_any_other(store, tmp_path):
    with SummaryWriter(tmp_path / "hf") as writer:
        for step in range(4):
            writer.add_scalar("epoch", step / 4, step, walltime=WALL + step)
            writer.add_scalar("loss", 1.0, step, walltime=WALL + step)
    (run_id,) = import_tensorboard(store, tmp_path / "hf")
    assert store.keys(run_id) == ["epoch", "loss"] and store.history(run_id, "epoch").values.tolist()[1] == 0.25
    assert not store.history(run_id, "loss").epochs.any()


def test_damaged_hparams_plugin_data_is_named_and_the_scalars_still_come_in(store_dir, tmp_path, capsys):
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    experiment, start, end = hparams_summaries({"lr": 0.1}, {"acc": 0.5})
    start.value[0].metadata.plugin_data.content = b"\x12\x05ab"  # a field longer than what follows
    with SummaryWriter(tmp_path / "logs") as writer:
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)
        writer.add_scalar("acc", 0.5, 3, walltime=WALL)
    (path,) = (tmp_path / "logs").glob("events.out.tfevents.*")
    assert main(["import", "tensorboard", str(tmp_path / "logs"), "--store", str(store_dir)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"epochal: warning: event file '{path}'") and err.count("\n") == 1
    assert out.startswith("imported 1 run")
    with epochal.Store(store_dir) as store:
        (record,) = store.runs()
        assert record.config.to_dict() == {} and store.history(record, "acc").values.tolist() == [0.5]
