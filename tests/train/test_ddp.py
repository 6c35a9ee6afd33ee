"""The Trainer under DDP: two CPU ranks started by torchrun (gloo), as a user starts a job.

The worker (tests/ddp_worker.py) trains a small model with dropout and Python/NumPy randomness in
its forward pass, so every rank's random states matter for exact resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ddp_launch import single, torchrun

import epochal
from epochal.dynamics.files import arrays, epoch_file


def _fit(folder: Path, name: str, *extra: str, check: bool = True) -> tuple[dict | None, object]:
    out = folder / f"{name}-{len(list(folder.glob(name + '*.json')))}.json"
    done = torchrun("fit", str(folder / "store"), str(out), "--name", name, *extra, check=check)
    return (json.loads(out.read_text()) if out.exists() else None), done


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """4 epochs in one job."""
    folder = tmp_path_factory.mktemp("ddp-fit")
    out, done = _fit(folder, "straight", "--epochs", "4")
    return folder, out, done


def test_trainer_wraps_the_model_and_records_one_run(straight):
    folder, out, _ = straight
    assert out["wrapped"] == "DistributedDataParallel"
    assert out["world_size"] == 2
    with epochal.Store(folder / "store") as store:
        (record,) = store.runs()
        assert record.world_size == 2 and record.status == "finished"
        # Rank 0 alone writes checkpoints and CSV tables.
        assert [c.kind for c in store.checkpoints(record.id)].count("resume") == 1
    assert (Path(record.path) / "tables").is_dir() or any(Path(record.path).glob("*.csv"))


def test_rank_0_alone_prints(straight):
    _, _, done = straight
    assert done.stdout.count("Trainable params:") == 1  # the summary
    assert done.stdout.count("loss mean") == 4  # an epoch table per epoch


def test_each_rank_trains_on_its_share_and_metrics_are_over_the_whole_data_set(straight):
    folder, out, _ = straight
    # 300 training samples in 2 shares of 150; 101 validation samples split 51 + 50, none repeated.
    assert out["train_samples"] == 300
    assert out["valid_samples"] == 101
    assert out["valid_accuracy"] == out["one_process_accuracy"]
    assert out["valid_loss"] == pytest.approx(out["one_process_loss"], rel=1e-6)


def test_recorded_dynamics_equal_a_single_process_recording(straight):
    folder, out, _ = straight
    with epochal.Store(folder / "store") as store:
        (record,) = store.runs()
    ddp = epoch_file(Path(record.path) / "dynamics", 3)
    with arrays(ddp) as got, arrays(Path(out["single_dynamics"])) as expected:
        for name in ("representations", "logits", "predictions", "losses"):
            assert got[name].shape == expected[name].shape, name
            assert np.allclose(got[name], expected[name], rtol=1e-5, atol=1e-6), name
        assert np.array_equal(got["predictions"], expected["predictions"])


def test_two_epochs_then_a_new_job_resuming_equals_four_straight(straight):
    folder, expected, _ = straight
    _fit(folder, "halves", "--epochs", "2")
    resumed, _ = _fit(folder, "halves", "--epochs", "4", "--resume")
    assert resumed["params"] == expected["params"]  # bit for bit
    assert resumed["history"] == expected["history"][2:]


def test_resume_after_kill_9_of_one_rank_equals_the_straight_run(straight):
    folder, expected, _ = straight
    out, done = _fit(folder, "killed", "--epochs", "4", "--die", "2", "3", check=False)
    assert done.returncode != 0 and out is None
    with epochal.Store(folder / "store") as store:
        record = store.run("killed")
        # Rank 0 saw rank 1 go and failed the run, naming it (or was stopped by torchrun first: crashed).
        assert record.status in ("failed", "crashed")
        assert record.epochs == 2
    if record.status == "failed":
        assert "rank 1 (pid" in done.stderr
    resumed, _ = _fit(folder, "killed", "--epochs", "4", "--resume")
    assert resumed["params"] == expected["params"]
    assert resumed["history"] == expected["history"][2:]


def test_resuming_under_another_number_of_ranks_is_refused(straight, tmp_path):
    folder, _, _ = straight
    out = tmp_path / "single.json"
    single("fit", str(folder / "store"), str(out), "--name", "straight", "--epochs", "6", "--resume")
    error = json.loads(out.read_text())["error"]
    assert error.startswith("CheckpointError")
    assert "saved by a job of 2 rank(s) and this one has 1" in error
    with epochal.Store(folder / "store") as store:
        assert store.run("straight").status == "finished"  # left as it was
