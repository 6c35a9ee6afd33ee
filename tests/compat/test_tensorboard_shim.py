"""``from epochal.compat.tensorboard import SummaryWriter``: SummaryWriter code records an epochal run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import epochal
from epochal.compat.tensorboard import SummaryWriter


def test_scalars_keep_their_step_and_wall_time(store_dir):
    writer = SummaryWriter("runs/baseline", store=store_dir)
    writer.add_scalar("train/loss", 0.5, global_step=3, walltime=1_600_000_000.5)
    writer.add_scalar("train/loss", torch.tensor(0.25), global_step=7)
    writer.add_scalar("lr", np.float32(0.1))  # no step: 0, as TensorBoard records it
    writer.add_scalars("acc", {"train": 0.8, "valid": 0.7}, global_step=7)
    writer.flush()
    writer.close()
    with epochal.Store(store_dir) as store:
        record = store.run(writer.run.id)
        loss = store.history(record, "train/loss")
        assert record.name == "baseline" and record.project == "tensorboard" and record.status == "finished"
        assert loss.steps.tolist() == [3, 7] and loss.values.tolist() == [0.5, 0.25]
        assert loss.times[0] == 1_600_000_000.5
        assert store.history(record, "lr").steps.tolist() == [0]
        assert store.keys(record) == ["acc/train", "acc/valid", "lr", "train/loss"]
        assert record.steps == 7


def test_hparams_and_text_go_into_the_config(store_dir):
    with SummaryWriter("runs/hp", store=store_dir) as writer:
        writer.add_hparams({"lr": 0.01, "batch": 64}, {"hparam/accuracy": 0.9})
        writer.add_text("notes", "first try")
    with epochal.Store(store_dir) as store:
        record = store.run(writer.run.id)
        assert record.config.to_dict() == {"lr": 0.01, "batch": 64, "text": {"notes": "first try"}}
        assert store.history(record, "hparam/accuracy").values.tolist() == [0.9]


def test_a_default_log_dir_names_the_run_as_tensorboard_would(store_dir):
    writer = SummaryWriter(comment="-wide", store=store_dir)
    assert writer.get_logdir().startswith("runs") and writer.run.name.endswith("-wide")
    writer.close()


def test_calls_without_a_counterpart_say_so_and_failures_mark_the_run(store_dir):
    with pytest.raises(RuntimeError), SummaryWriter("runs/x", store=store_dir) as writer:
        with pytest.raises(NotImplementedError, match="SummaryWriter.add_image"):
            writer.add_image("img", torch.zeros(3, 4, 4))
        raise RuntimeError("the training failed")
    with epochal.Store(store_dir) as store:
        assert store.run(writer.run.id).status == "failed"
