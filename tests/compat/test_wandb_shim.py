"""``import epochal.compat.wandb as wandb``: code written for wandb records an epochal run."""

from __future__ import annotations

import numpy as np
import pytest

import epochal
import epochal.compat.wandb as wandb


@pytest.fixture(autouse=True)
def _no_current_run():
    yield
    wandb.finish()


def history(store_dir, run, key):
    with epochal.Store(store_dir) as store:
        h = store.history(run.id, key)
    return h.steps.tolist(), h.values.tolist(), h.epochs.tolist()


def test_log_follows_wandbs_step_rules(store_dir):
    run = wandb.init(project="p", name="steps", dir=str(store_dir))
    wandb.log({"loss": 1.0})                       # step 0, then 1
    wandb.log({"loss": 0.5, "acc": 0.1})           # step 1, then 2
    wandb.log({"extra": 7.0}, commit=False)        # joins step 2
    wandb.log({"loss": 0.25})                      # step 2, then 3
    wandb.log({"val": 0.9}, step=10)               # gathers at 10 ...
    wandb.log({"val2": 0.8}, step=10)
    wandb.log({"val": 0.95}, step=12)              # ... committed when a later step comes
    with pytest.warns(epochal.EpochalWarning, match="step 3 is before the current step 12"):
        wandb.log({"val": 0.1}, step=3)
    assert run.step == 12
    wandb.finish()
    assert history(store_dir, run, "loss")[:2] == ([0, 1, 2], [1.0, 0.5, 0.25])
    assert history(store_dir, run, "extra")[0] == [2]
    assert history(store_dir, run, "val")[:2] == ([10, 12], [0.9, 0.95])
    assert history(store_dir, run, "val2")[0] == [10]
    with epochal.Store(store_dir) as store:
        record = store.run(run.id)
    assert record.status == "finished" and record.project == "p" and record.name == "steps"


def test_epoch_is_the_points_axis_and_nested_dicts_become_paths(store_dir):
    run = wandb.init(project="p", dir=str(store_dir))
    wandb.log({"valid": {"acc": 0.5, "loss": 1.0}, "epoch": 0})
    wandb.log({"valid": {"acc": 0.7, "loss": 0.8}, "epoch": 1})
    wandb.finish()
    assert history(store_dir, run, "valid/acc") == ([0, 1], [0.5, 0.7], [0, 1])
    with epochal.Store(store_dir) as store:
        assert "epoch" not in store.keys(run.id)


def test_values_that_are_not_numbers_are_skipped_with_one_warning_per_key(store_dir):
    run = wandb.init(dir=str(store_dir))
    with pytest.warns(epochal.EpochalWarning, match="'caption' is not a number") as caught:
        wandb.log({"caption": "a cat", "loss": np.float32(0.5)})
        wandb.log({"caption": "a dog", "loss": 0.25})
    assert sum("caption" in str(w.message) for w in caught) == 1
    wandb.finish()
    assert history(store_dir, run, "loss")[1] == [0.5, 0.25]


def test_config_and_summary(store_dir):
    run = wandb.init(project="p", config={"lr": 0.1, "optim": {"name": "sgd"}}, dir=str(store_dir))
    assert wandb.config.lr == 0.1 and wandb.config["optim"] == {"name": "sgd"}
    wandb.config.update({"batch": 64})
    wandb.config.seed = 3
    wandb.log({"loss": 0.5})
    wandb.summary["best/acc"] = 0.93
    assert wandb.summary["loss"] == 0.5 and wandb.summary["best/acc"] == 0.93
    wandb.finish(exit_code=1)
    with epochal.Store(store_dir) as store:
        record = store.run(run.id)
    assert record.config.to_dict() == {"lr": 0.1, "optim": {"name": "sgd"}, "batch": 64, "seed": 3}
    assert record.status == "failed"
    assert wandb.run is None


def test_resume_by_id_continues_the_same_run(store_dir):
    first = wandb.init(project="p", name="again", dir=str(store_dir))
    wandb.log({"loss": 1.0})
    wandb.finish()
    again = wandb.init(id=first.id, resume="allow", dir=str(store_dir))
    assert again.id == first.id and again.step == 1
    wandb.log({"loss": 0.5})
    wandb.finish()
    assert history(store_dir, first, "loss")[:2] == ([0, 1], [1.0, 0.5])


def test_calls_without_a_counterpart_say_so(store_dir):
    wandb.init(dir=str(store_dir))
    with pytest.raises(NotImplementedError, match="wandb.watch"):
        wandb.watch(object())
    with pytest.raises(ValueError, match="'disabled'"):
        wandb.init(mode="cloud", dir=str(store_dir))
    wandb.finish()
    with pytest.raises(RuntimeError, match="wandb.init"):
        wandb.log({"loss": 1.0})


def test_disabled_records_nothing(store_dir):
    wandb.init(mode="disabled", dir=str(store_dir))
    wandb.log({"loss": 1.0})
    wandb.finish()
    assert not store_dir.exists() or epochal.Store(store_dir).runs() == []
