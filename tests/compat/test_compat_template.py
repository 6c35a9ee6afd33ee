"""epochal.compat.template: the seed's TemplateModel, recording into epochal and TensorBoard."""

import gc
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.compat.template import Mean, TemplateModel
from epochal.errors import CheckpointError

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

EXAMPLE = Path(__file__).with_name("template_example.py")


def _scalars(folder, tag):
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


class _Trainer(TemplateModel):
    def __init__(self, tmp_path, seed=0, test_size=10, dropout=0.0, writer=True):
        super().__init__()
        torch.manual_seed(seed)
        data = torch.Generator().manual_seed(1)
        x = torch.randn(24, 4, generator=data)
        y = (x[:, 0] > 0).long()
        self.writer = SummaryWriter(str(tmp_path / "runs")) if writer else None
        self.model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 2))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.criterion = nn.CrossEntropyLoss()
        self.train_loader = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True)
        self.test_loader = DataLoader(TensorDataset(x[:test_size], y[:test_size]), batch_size=4)
        self.device = "cpu"
        self.ckpt_dir = str(tmp_path / "ckpt")
        self.log_per_step = 2
        self.store = tmp_path / "store"


def test_the_readme_example_trains_resumes_and_records(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EPOCHAL_DIR", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)  # the example writes ./check_point and ./runs
    spec = importlib.util.spec_from_file_location("template_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.train()
    example.train(continue_training=True, continue_model="./check_point/epoch10.pth")
    gc.collect()
    out = capsys.readouterr().out
    assert "Total params" in out and "epoch:10\tACC" in out
    assert "load model from check_point/epoch10.pth" in out and "epoch:20\tACC" in out
    files = {"best.pth", "epoch5.pth", "epoch10.pth", "epoch15.pth", "epoch20.pth"}
    assert {p.name for p in (tmp_path / "check_point").iterdir()} == files
    assert len(list((tmp_path / "runs").glob("*/events.out.tfevents.*"))) == 2

    with epochal.Store(tmp_path / "store") as store:
        (record,) = store.runs(project="template")  # the continued training went on in the same run
        assert record.status == "finished" and record.epochs == 20
        acc = store.history(record.id, "acc")
        assert list(acc.epochs) == list(range(1, 21))
        tensorboard = {}  # one event folder per trainer: epochs 1 to 10, then 11 to 20
        for folder in (tmp_path / "runs").iterdir():
            tensorboard.update(_scalars(folder, "acc"))
        assert list(acc.values) == pytest.approx([tensorboard[epoch] for epoch in range(1, 21)])


def test_accuracy_is_correct_over_samples_not_a_mean_of_batches(tmp_path):
    trainer = _Trainer(tmp_path)
    trainer.check_init()
    # Batches of 4, 4 and 2: the batch means would weigh the last two samples double.
    x, y = trainer.test_loader.dataset.tensors
    correct = (trainer.model(x).argmax(1) == y).tolist()
    batches = [correct[0:4], correct[4:8], correct[8:10]]
    acc = trainer.eval()
    assert acc == sum(correct) / len(correct)
    assert sum(sum(b) / len(b) for b in batches) / 3 != acc  # the seed's way gives another number here
    assert trainer.best_acc == acc
    trainer.finish()


def test_plain_float_scores_are_weighted_by_batch_size(tmp_path):
    class Scored(_Trainer):
        def metric(self, pred, y):
            return {"acc": Mean(len(y), len(y)), "first": float(y[0])}

    trainer = Scored(tmp_path, writer=False)
    trainer.check_init()
    trainer.eval()
    trainer.finish()
    y = trainer.test_loader.dataset.tensors[1]
    expected = (4 * float(y[0]) + 4 * float(y[4]) + 2 * float(y[8])) / 10
    assert epochal.Store(tmp_path / "store").history(trainer.run.id, "first").values[0] == pytest.approx(expected)


def test_checkpoints_best_without_optimizer_epochs_with_it(tmp_path):
    trainer = _Trainer(tmp_path)
    trainer.check_init()
    for _ in range(2):
        trainer.train_loop()
        trainer.eval(save_per_epochs=2)
    trainer.finish()
    folder = tmp_path / "ckpt"
    assert sorted(p.name for p in folder.iterdir()) == ["best.pth", "epoch2.pth"]  # no temporary files left
    best = torch.load(folder / "best.pth", weights_only=True)
    last = torch.load(folder / "epoch2.pth", weights_only=True)
    assert "optimizer" not in best and "optimizer" in last
    assert last["global_step"] == 10 and last["epoch"] == 2 and last["best_acc"] == trainer.best_acc
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 2))
    model.load_state_dict(best["model"])  # the README's second way to use the best model


def test_resuming_from_an_epoch_checkpoint_continues_exactly(tmp_path):
    straight = _Trainer(tmp_path / "a", dropout=0.3)
    straight.check_init()
    for _ in range(4):
        straight.train_loop()
        straight.eval(save_per_epochs=2)
    straight.finish()

    first = _Trainer(tmp_path / "b", dropout=0.3)
    first.check_init()
    for _ in range(2):
        first.train_loop()
        first.eval(save_per_epochs=2)
    first.finish()
    torch.manual_seed(1234)  # whatever the random state is now, load_state puts it back
    resumed = _Trainer(tmp_path / "b", seed=99, dropout=0.3)
    resumed.check_init()
    resumed.load_state(tmp_path / "b" / "ckpt" / "epoch2.pth")
    assert resumed.run.id == first.run.id  # the same epochal run goes on
    for _ in range(2):
        resumed.train_loop()
        resumed.eval(save_per_epochs=2)
    resumed.finish()

    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    counters = ("global_step", "epoch", "best_acc")
    assert [getattr(resumed, name) for name in counters] == [getattr(straight, name) for name in counters]
    a = epochal.Store(tmp_path / "a" / "store").history(straight.run.id, "loss")
    b = epochal.Store(tmp_path / "b" / "store").history(resumed.run.id, "loss")
    assert list(a.steps) == list(b.steps) and list(a.values) == list(b.values)


def test_scalars_go_to_tensorboard_and_to_a_run_finished_when_the_trainer_goes(tmp_path):
    trainer = _Trainer(tmp_path)
    trainer.project = "mine"
    trainer.check_init()
    trainer.train_loop()
    trainer.eval()
    trainer.writer.add_scalars("extra", {"a": 1.5}, 7)  # the user's own calls are recorded too
    run_id = trainer.run.id
    assert isinstance(trainer.writer, SummaryWriter)
    del trainer
    gc.collect()
    with epochal.Store(tmp_path / "store") as store:
        record = store.run(run_id)
        assert record.project == "mine" and record.status == "finished"
        assert set(store.keys(run_id)) == {"loss", "acc", "extra/a"}
        loss = store.history(run_id, "loss")
        # The first batch, then the mean of batches 1 and 2, then of 3 and 4 (log_per_step=2).
        assert list(loss.steps) == [1, 3, 5]
        assert list(loss.values) == pytest.approx([v for _, v in _scalars(tmp_path / "runs", "loss")])
        assert store.history(run_id, "acc").values[0] == pytest.approx(_scalars(tmp_path / "runs", "acc")[0][1])


def test_model_info_works_for_a_transformer(tmp_path, capsys):
    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=1)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.encoder(x).mean(dim=1))

    trainer = _Trainer(tmp_path)
    trainer.model = Classifier()
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.1)
    trainer.check_init()
    summary = trainer.get_model_info(fake_inp=torch.randn(2, 5, 8))
    assert "TransformerEncoder" in summary and "[2, 2]" in summary
    assert "Total params" in capsys.readouterr().out
    trainer.finish()


def test_check_init_names_what_is_missing(tmp_path):
    trainer = _Trainer(tmp_path)
    trainer.optimizer = None
    trainer.ckpt_dir = None
    with pytest.raises(ValueError, match="optimizer, ckpt_dir"):
        trainer.check_init()


def test_a_metric_without_acc_is_refused(tmp_path):
    class NoAcc(_Trainer):
        def metric(self, pred, y):
            return {"f1": 0.5}

    trainer = NoAcc(tmp_path)
    trainer.check_init()
    with pytest.raises(KeyError, match="'acc'"):
        trainer.eval()
    assert not (tmp_path / "ckpt" / "best.pth").exists()
    trainer.finish()


@pytest.mark.parametrize("content, message", [
    (None, "no checkpoint file"),
    (b"not a checkpoint", "cannot load checkpoint"),
    ({"model": {}}, "no global_step, epoch, best_acc"),
    ({"model": {"weight": torch.zeros(1)}, "global_step": 3, "epoch": 1, "best_acc": 0.0}, "does not fit"),
])
def test_bad_checkpoints_are_refused_by_name_and_change_nothing(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    trainer = _Trainer(tmp_path)
    trainer.check_init()
    before = [p.clone() for p in trainer.model.parameters()]
    with pytest.raises(CheckpointError, match=message) as error:
        trainer.load_state(path)
    assert str(path) in str(error.value)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert trainer.global_step == 0
