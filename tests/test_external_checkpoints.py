"""Checkpoints another framework wrote (Lightning, Hugging Face), recorded as the run's without epochal owning them."""

import pytest
import torch

import epochal
from epochal import CheckpointError


def test_a_file_and_a_folder_written_elsewhere_are_recorded_with_their_step_epoch_metric_and_size(tmp_path, store_dir):
    elsewhere = tmp_path / "lightning_logs" / "epoch=0-step=10.ckpt"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"x" * 1234)
    with epochal.start(store=store_dir) as run:
        run.step(10)
        inside = run.path / "hf" / "checkpoint-10"
        inside.mkdir(parents=True)
        (inside / "model.safetensors").write_bytes(b"y" * 100)
        (inside / "optimizer.pt").write_bytes(b"z" * 50)
        run.add_checkpoint(elsewhere, epoch=0, metric=("val/loss", torch.tensor(0.25)), mode="min")
        run.add_checkpoint(inside)
    with epochal.Store(store_dir) as store:
        recorded = {c.path: c for c in store.checkpoints(run.id)}
    assert set(recorded) == {str(elsewhere), "hf/checkpoint-10"}
    outside = recorded[str(elsewhere)]
    assert (outside.step, outside.epoch, outside.size, outside.kind) == (10, 0, 1234, "external")
    assert (outside.metric_key, outside.metric_value, outside.mode) == ("val/loss", 0.25, "min")
    assert recorded["hf/checkpoint-10"].size == 150
    assert elsewhere.exists() and inside.exists()  # epochal owns neither


def test_recording_a_path_again_replaces_its_record_and_removing_keeps_the_file(tmp_path, store_dir):
    last = tmp_path / "last.ckpt"
    last.write_bytes(b"1")
    with epochal.start(store=store_dir) as run:
        run.add_checkpoint(last, step=1)
        last.write_bytes(b"22")
        run.add_checkpoint(last, step=2)
        assert [(c.step, c.size) for c in run.checkpoints()] == [(2, 2)]
        assert run.remove_checkpoint(last) is True
        assert run.remove_checkpoint(tmp_path / "never.ckpt") is False
        run.flush()
        assert run.checkpoints() == []
    assert last.exists()


def test_load_checkpoint_never_picks_an_external_checkpoint(tmp_path, store_dir):
    model = torch.nn.Linear(2, 2)
    external = tmp_path / "best.ckpt"
    external.write_bytes(b"not epochal's format")
    with epochal.start(store=store_dir) as run:
        run.add_checkpoint(external, metric=("acc", 0.99))
        with pytest.raises(CheckpointError, match="no resumable checkpoint"):
            run.load_checkpoint("last", models=model)
        with pytest.raises(CheckpointError, match="no checkpoint saved with a metric"):
            run.load_checkpoint("best", models=model)
        saved = run.save_checkpoint(models=model, metric=("acc", 0.5))
        assert run.load_checkpoint("best", models=model).record.path == saved.path


def test_bad_input_names_the_value(tmp_path, store_dir):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(CheckpointError, match="no checkpoint at .*missing.ckpt"):
            run.add_checkpoint(tmp_path / "missing.ckpt")
        (tmp_path / "a.ckpt").write_bytes(b"")
        with pytest.raises(TypeError, match="metric is a \\(key, value\\) pair"):
            run.add_checkpoint(tmp_path / "a.ckpt", metric=0.5)
        with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'lowest'"):
            run.add_checkpoint(tmp_path / "a.ckpt", mode="lowest")
        own = run.save_checkpoint()
        with pytest.raises(ValueError, match="epochal saved"):
            run.remove_checkpoint(run.path / own.path)
        assert run.checkpoints() == [own]
