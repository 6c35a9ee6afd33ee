"""EpochalCallback in a real transformers.Trainer: what a run records, its checkpoints, resume, bad values, imports."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import epochal
from epochal.integrations.huggingface import SIDECAR, EpochalCallback

MODULE = "epochal.integrations.huggingface"


class Tokens(torch.utils.data.Dataset):
    """A few dozen random token sequences with labels."""

    def __init__(self, n: int = 32, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 50, (n, 8), generator=generator)
        self.labels = torch.randint(0, 2, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _trainer(out: Path, callbacks: list, **arguments) -> Trainer:
    """A tiny BERT: 32 samples in batches of 8 (4 steps an epoch), 2 epochs, evaluated each epoch."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    settings = {"output_dir": str(out), "num_train_epochs": 2, "per_device_train_batch_size": 8,
                "per_device_eval_batch_size": 16, "eval_strategy": "epoch", "save_strategy": "steps", "save_steps": 2,
                "logging_steps": 1, "report_to": "none", "use_cpu": True, "disable_tqdm": True, "seed": 0}
    settings.update(arguments)
    return Trainer(model=BertForSequenceClassification(config), args=TrainingArguments(**settings),
                   train_dataset=Tokens(), eval_dataset=Tokens(16, seed=1), callbacks=callbacks)


class StopAt(TrainerCallback):
    """Raises at a step, as a crash in the middle of training would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"stopped at step {self.step}")


def _folders(out: Path) -> set[str]:
    return {str(p.absolute()) for p in out.glob("checkpoint-*")}


def test_a_trainer_run_is_recorded(tmp_path):
    out, store_dir = tmp_path / "out", tmp_path / "store"
    callback = EpochalCallback(project="bert", name="tiny", config={"dataset": "random"}, tags=["hf"], store=store_dir)
    trainer = _trainer(out, [callback], save_total_limit=2, metric_for_best_model="loss")
    trainer.train()
    with pytest.warns(epochal.EpochalWarning, match="finished when training ended"):
        trainer.evaluate()  # after the run: not recorded, and training code goes on

    with epochal.Store(store_dir) as store:
        record = store.run(callback.run.id)
        assert (record.name, record.project, record.tags) == ("tiny", "bert", ("hf",))
        assert (record.status, record.steps, record.epochs) == ("finished", 8, 2)
        keys = store.keys(record)
        for key in ("train/loss", "train/grad_norm", "train/learning_rate", "eval/loss", "eval/runtime",
                    "train/train_runtime", "train/train_loss", "train/total_flos"):
            assert key in keys
        assert not [k for k in keys if k.endswith("epoch")]  # the float epoch is the points' axis, not a series
        loss = store.history(record, "train/loss")
        assert loss.steps.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
        assert loss.epochs.tolist() == [0, 0, 0, 1, 1, 1, 1, 2]  # epochs completed at each step
        evaluated = store.history(record, "eval/loss")
        assert (evaluated.steps.tolist(), evaluated.epochs.tolist()) == ([4, 8], [1, 2])
        assert store.history(record, "train/train_runtime").steps.tolist() == [8]

        config = record.config
        assert config["dataset"] == "random"
        assert config["args"]["learning_rate"] == 5e-5 and config["args"]["output_dir"] == str(out)
        assert config["args"]["eval_strategy"] == "epoch"
        assert config["model"]["hidden_size"] == 16 and config["model"]["vocab_size"] == 50

        # Saved at steps 2, 4, 6, 8; the Trainer keeps 2 (and the best): the records follow its folders.
        checkpoints = store.checkpoints(record.id)
        assert {c.path for c in checkpoints} == _folders(out)
        assert {c.kind for c in checkpoints} == {"external"}
        last = next(c for c in checkpoints if c.step == 8)
        # Saved every 2 steps, evaluated every epoch: the value evaluated at its step comes to the record.
        assert (last.epoch, last.metric_key, last.mode) == (2, "eval/loss", "min")
        assert last.metric_value == pytest.approx(evaluated.values[-1])
    assert json.loads((out / "checkpoint-8" / SIDECAR).read_text())["run"] == callback.run.id


def test_resuming_from_a_checkpoint_continues_the_same_run(tmp_path):
    out, store_dir = tmp_path / "out", tmp_path / "store"
    first = EpochalCallback(project="bert", store=store_dir)
    with pytest.raises(RuntimeError, match="stopped at step 6"):
        _trainer(out, [first, StopAt(6)]).train()
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-2", "checkpoint-4"}

    # A new Trainer and callback in the same process; the first run is still open here.
    second = EpochalCallback(project="bert", store=store_dir)
    _trainer(out, [second]).train(resume_from_checkpoint=True)

    assert second.run.id == first.run.id and first.run.finished
    with epochal.Store(store_dir) as store:
        (record,) = store.runs("bert")
        assert (record.status, record.steps, record.epochs, record.segment) == ("finished", 8, 2, 1)
        loss = store.history(record, "train/loss")
        assert loss.steps.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # step 5 of the lost attempt is superseded
        assert loss.epochs.tolist() == [0, 0, 0, 1, 1, 1, 1, 2]
        assert len(store.history(record, "train/loss", superseded=True)) == 9
        assert store.history(record, "eval/loss").steps.tolist() == [4, 8]
        assert {c.path for c in store.checkpoints(record.id)} == _folders(out)
        assert {c.step for c in store.checkpoints(record.id)} == {2, 4, 6, 8}


def test_resuming_from_a_checkpoint_of_no_run_starts_a_new_run_at_its_step(tmp_path):
    out = tmp_path / "out"
    _trainer(out, [], num_train_epochs=1, eval_strategy="no", save_steps=4).train()  # no callback
    callback = EpochalCallback(store=tmp_path / "store")
    with pytest.warns(epochal.EpochalWarning, match="names no epochal run"):
        _trainer(out, [callback], eval_strategy="no", save_steps=4).train(resume_from_checkpoint=True)
    with epochal.Store(tmp_path / "store") as store:
        record = store.run(callback.run.id)
        assert (record.status, record.steps, record.epochs, record.segment) == ("finished", 8, 2, 0)
        assert store.history(record, "train/loss").steps.tolist() == [5, 6, 7, 8]


def test_a_run_given_to_the_callback_is_recorded_into_and_left_open(tmp_path):
    run = epochal.start(project="mine", store=tmp_path / "store", config={"owner": "me"})
    _trainer(tmp_path / "out", [EpochalCallback(run=run)], num_train_epochs=1, save_strategy="no").train()
    assert not run.finished
    run.log({"test/accuracy": 0.5})
    run.finish()
    with epochal.Store(tmp_path / "store") as store:
        record = store.run(run.id)
        assert (record.status, record.steps, record.epochs) == ("finished", 4, 1)
        assert record.config["owner"] == "me" and record.config["model"]["hidden_size"] == 16
        assert store.history(record, "train/loss").steps.tolist() == [1, 2, 3, 4]
        assert store.history(record, "test/accuracy").steps.tolist() == [4]


def test_the_callback_as_a_context_manager_marks_a_run_that_raised_failed(tmp_path):
    callback = EpochalCallback(store=tmp_path / "store")
    with pytest.raises(RuntimeError), callback:
        _trainer(tmp_path / "out", [callback, StopAt(1)], num_train_epochs=1, eval_strategy="no",
                 save_strategy="no").train()
    with epochal.Store(tmp_path / "store") as store:
        assert store.run(callback.run.id).status == "failed"


def test_a_value_epochal_cannot_store_is_skipped_with_one_warning(tmp_path):
    class Odd(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs.update(note="text", vector=torch.ones(3), nothing=None)

    callback = EpochalCallback(store=tmp_path / "store")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(tmp_path / "out", [Odd(), callback], save_strategy="no").train()
    messages = [str(w.message) for w in caught if issubclass(w.category, epochal.EpochalWarning)]
    for key in ("train/note", "train/vector", "train/nothing"):
        assert sum(repr(key) in m for m in messages) == 1, messages
    with epochal.Store(tmp_path / "store") as store:
        record = store.run(callback.run.id)
        assert record.status == "finished"
        assert len(store.history(record, "train/loss")) == 8
        assert not {"train/note", "train/vector", "train/nothing"} & set(store.keys(record))


def test_a_process_other_than_zero_records_nothing(tmp_path):
    callback = EpochalCallback(store=tmp_path / "store")
    state = SimpleNamespace(is_world_process_zero=False, global_step=0, epoch=0.0)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    callback.on_train_begin(args, state, None, model=None)
    callback.on_log(args, state, None, logs={"loss": 1.0})
    callback.on_save(args, state, None)
    callback.on_train_end(args, state, None)
    assert callback.run is None
    with epochal.Store(tmp_path / "store") as store:
        assert store.runs() == []


def test_without_transformers_the_import_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, MODULE)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install epochal\[huggingface\]"):
        importlib.import_module(MODULE)


@pytest.mark.parametrize("version", ["4.39.3", "6.0.0"])
def test_a_transformers_outside_the_supported_range_is_refused(monkeypatch, version):
    monkeypatch.delitem(sys.modules, MODULE)
    monkeypatch.setattr(sys.modules["transformers"], "__version__", version)  # the module as imported now
    with pytest.raises(ImportError, match=rf">=4\.40,<6, found {version}"):
        importlib.import_module(MODULE)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")
def test_under_ddp_every_rank_records_one_run_that_rank_0_writes(tmp_path):
    out, store_dir = tmp_path / "out", tmp_path / "store"
    worker = Path(__file__).parent / "hf_ddp_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
         str(out), str(store_dir)],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("recorded:"))
    with epochal.Store(store_dir) as store:
        (record,) = store.runs()
        assert lines == [f"recorded: first {record.id} second {record.id} rank {rank}" for rank in (0, 1)]
        assert (record.status, record.steps, record.epochs, len(record.ranks)) == ("finished", 8, 2, 2)
        assert store.history(record, "train/loss").steps.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
        # Rank 0's points alone: steps 1-3, then 3-8 again after resuming from step 2.
        assert len(store.history(record, "train/loss", superseded=True)) == 9
        assert {c.path for c in store.checkpoints(record.id)} == _folders(out)
