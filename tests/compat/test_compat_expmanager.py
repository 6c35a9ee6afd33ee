"""epochal.compat.expmanager: the seed README's examples, the logs/expN tree, exact metrics, early stop."""

import argparse
import re
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.compat.expmanager import (
    BaseDataLoaderWrapper,
    BaseModelWrapper,
    ClassificationModelWrapper,
    Config,
    TorchExpManager,
)

CONFIG = Path(__file__).with_name("expmanager_default.yaml")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory holding default.yaml, where logs/ is written."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(CONFIG, tmp_path / "default.yaml")
    return tmp_path


def _loaders(n=60, batch_size=16, drop_last=False, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=drop_last,
                        generator=torch.Generator().manual_seed(seed))
    return loader, DataLoader(TensorDataset(x, y), batch_size=batch_size), x, y


class MyModelWrapper(ClassificationModelWrapper):
    """The README's MyModelWrapper: defines the 'abc' and 'loss_xxx' metrics its kwargs name."""

    @torch.no_grad()
    def abc_func(self, out, y, metric_result):
        metric_result["abc"] = out.abs().mean()

    @torch.no_grad()
    def loss_xxx_func(self, out, y, metric_result):
        metric_result["loss_xxx"] = -self.criterion(out, y.to(out.device))


def _readme_example(argv):
    """Section 3 of the seed README, with only its import lines changed and the '...' filled in."""
    from epochal.compat.expmanager import Config, TorchExpManager

    parser = argparse.ArgumentParser()
    parser.add_argument("--test", action="store_true")
    parser.add_argument("--exp_name", default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    train_dataloader, test_dataloader, _, _ = _loaders()
    valid_dataloader = test_dataloader

    config = Config('default.yaml')
    train_dataloader = BaseDataLoaderWrapper(train_dataloader)
    valid_dataloader = BaseDataLoaderWrapper(valid_dataloader)
    test_dataloader = BaseDataLoaderWrapper(test_dataloader)
    device = torch.device("cpu")
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model_wrapper = MyModelWrapper(model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])

    kwargs = dict(  # noqa: C408 - as the README writes it
        model_wrapper=model_wrapper,
        train_dataloader=train_dataloader,
        valid_dataloader=valid_dataloader,
        test_dataloader=test_dataloader,
        config=config,
        optimizer=optimizer,
        train_metrics={'loss', 'abc'},  # 指定训练时计算loss abc这两个指标
        valid_metrics={'abc'},  # 同上
        test_metrics={'loss_xxx'},  # 同上
        only_test=args.test,
        save_metric='loss_xxx',
        save_check_op='>',
        exp_name=args.exp_name,
        early_stop_threshold=5,
    )
    exp_manager = TorchExpManager(**kwargs)
    exp_manager.run()
    return exp_manager


def test_readme_usage_example_writes_the_documented_tree_and_the_store(workdir, capsys):
    manager = _readme_example([])
    out = capsys.readouterr().out
    exp = workdir / "logs" / "exp1"
    assert manager.exp_dir == Path("logs/exp1")
    names = {p.relative_to(exp).as_posix() for p in exp.rglob("*") if p.is_file()}
    best = torch.load(exp / "saved_model" / "model_best.pt", weights_only=True)
    assert names == {
        *(f"epoch_details/epoch00{e}_{s}.csv" for e in (1, 2, 3) for s in ("train", "valid")),
        f"epoch_details/epoch00{best['epoch']}_test.csv", "saved_model/model_best.pt", "summary_table.csv",
        "train_summary_table.csv", "valid_summary_table.csv", "test_summary_table.csv",
    }
    assert sorted(p.name for p in (workdir / "logs").iterdir()) == ["exp1"]  # no temp folder
    assert best["metric_name"] == "loss_xxx" and set(best) == {"state_dict", "epoch", "metric_name", "metric"}
    # Per-batch rows carry the batch's metric values; summaries hold the stage's metrics.
    train_rows = (exp / "epoch_details" / "epoch001_train.csv").read_text().splitlines()
    assert train_rows[0] == "batch,samples,loss,seconds,abc" and len(train_rows) == 1 + 4
    assert "loss_xxx" in (exp / "valid_summary_table.csv").read_text().splitlines()[0]
    assert "test/loss_xxx" in (exp / "summary_table.csv").read_text().splitlines()[0]
    # The documented console output.
    assert "Sanity Check: save metric = 'loss_xxx'" in out
    assert "Sanity Check: save check op = '>' [current loss_xxx > best loss_xxx]" in out
    assert "Sanity Check: early stop threshold = 5" in out
    assert "Epoch 1/3 train: 100%" in out and "60/60" in out and "samples/s" in out
    # The bar ends as the original's does: tqdm's rate, then the stage's mean loss.
    assert re.search(r"60/60 \[[^\]]*samples/s, loss_mean=[0-9.]+\]", out), out[-600:]
    assert "model saved to logs/exp1/saved_model/model_best.pt" in out
    assert "Expected end time" in out and "Best valid/loss_xxx:" in out and "Early stop count: 0/5" in out
    # Everything is in the epochal store too.
    record = epochal.Store().runs(project="expmanager")[0]
    assert record.name == "exp1" and record.status == "finished" and record.config["num_epochs"] == 3
    history = epochal.Store().history("exp1", "valid/loss_xxx")
    assert list(history.epochs) == [0, 1, 2]
    assert "test/loss_xxx" in epochal.Store().keys("exp1")


def test_test_flag_tests_the_saved_model_without_training(workdir, capsys):
    trained = _readme_example([])
    best = torch.load(workdir / "logs" / "exp1" / "saved_model" / "model_best.pt", weights_only=True)
    before = sorted(p.name for p in (workdir / "logs" / "exp1").rglob("*"))
    capsys.readouterr()
    tester = _readme_example(["--test", "--exp_name", "exp1"])
    out = capsys.readouterr().out
    assert "model load from logs/exp1/saved_model/model_best.pt" in out
    assert "Sanity Check: only test = True" in out and " train: " not in out
    assert sorted(p.name for p in (workdir / "logs").iterdir()) == ["exp1"]
    assert sorted(p.name for p in (workdir / "logs" / "exp1").rglob("*")) == before
    for name, value in tester.model_wrapper.model.state_dict().items():
        assert torch.equal(value, best["state_dict"][name])
    assert tester.best_epoch == best["epoch"] == trained.best_epoch
    runs = epochal.Store().runs(project="expmanager", tag="only_test")
    assert len(runs) == 1 and "test/loss_xxx" in epochal.Store().keys(runs[0].id)


def test_experiments_go_to_the_next_free_number(workdir):
    (workdir / "logs" / "exp1").mkdir(parents=True)
    (workdir / "logs" / "exp7").mkdir()
    (workdir / "logs" / "expert").mkdir()
    manager = _manager(workdir, verbose=False)
    assert manager.exp_dir == Path("logs/exp8") and (workdir / "logs" / "exp8").is_dir()


def _manager(workdir, *, n=60, batch_size=16, drop_last=False, lr=0.5, wrapper=None, **kwargs):
    torch.manual_seed(0)
    train, valid, _, _ = _loaders(n, batch_size, drop_last)
    model = nn.Linear(4, 2)
    options = {"model_wrapper": wrapper or ClassificationModelWrapper(model, "cpu"),
               "train_dataloader": BaseDataLoaderWrapper(train), "valid_dataloader": BaseDataLoaderWrapper(valid),
               "test_dataloader": BaseDataLoaderWrapper(valid), "config": Config(workdir / "default.yaml"),
               "optimizer": torch.optim.SGD(model.parameters(), lr=lr)}
    options.update(kwargs)
    return TorchExpManager(**options)


def test_accuracy_is_exact_over_the_data_set_not_a_mean_of_batches(workdir):
    # 10 validation samples in batches of 3, 3, 3 and 1; lr=0 keeps the model fixed.
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    manager = _manager(workdir, n=10, batch_size=3, lr=0.0, wrapper=ClassificationModelWrapper(model, "cpu"),
                       valid_metrics={"accuracy"}, save_metric="accuracy", verbose=False)
    manager.run()
    _, _, x, y = _loaders(10)
    correct = (model(x).argmax(1) == y).float()
    exact = correct.mean().item()
    batch_mean = torch.stack([c.mean() for c in correct.split(3)]).mean().item()
    assert exact != pytest.approx(batch_mean)  # the data make the two differ
    rows = (workdir / "logs" / "exp1" / "valid_summary_table.csv").read_text().splitlines()
    header = rows[0].split(",")
    for row in rows[1:]:
        cells = dict(zip(header, row.split(",")))
        assert float(cells["accuracy"]) == pytest.approx(exact)
        assert float(cells["total_correct"]) == correct.sum().item() and cells["samples"] == "10"
    assert epochal.Store().history("exp1", "valid/accuracy").values[-1] == pytest.approx(exact)


def test_early_stop_fires_with_the_defaults(workdir, capsys):
    (workdir / "default.yaml").write_text("num_epochs: 30\neval_interval: 1\n")
    manager = _manager(workdir, lr=0.0)  # nothing improves after the first evaluation
    manager.run()
    out = capsys.readouterr().out
    assert manager.save_metric == "loss" and manager.save_check_op == "<"
    assert "Early stop count: 5/5" in out and "early stopping" in out
    rows = (workdir / "logs" / "exp1" / "train_summary_table.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # the first evaluation, then five without improvement
    assert manager.best_epoch == 1


def test_progress_total_counts_the_samples_a_drop_last_loader_yields(workdir, capsys):
    manager = _manager(workdir, n=10, batch_size=4, drop_last=True)
    assert manager.loaders["train"].num_samples == 8 and len(manager.loaders["train"]) == 2
    manager.run()
    out = capsys.readouterr().out
    assert "Epoch 1/3 train: 100%|##########| 8/8" in out
    assert "Epoch 1/3 valid: 100%|##########| 10/10" in out


def test_tables_are_written_into_the_experiment_folder_as_training_goes(workdir):
    seen = []

    class Watching(ClassificationModelWrapper):
        def num_samples_func(self, out, y, metric_result):
            seen.append(sorted(p.name for p in Path("logs/exp1").rglob("*.csv")))
            super().num_samples_func(out, y, metric_result)

    torch.manual_seed(0)
    _manager(workdir, wrapper=Watching(nn.Linear(4, 2), "cpu"), verbose=False).run()
    assert "epoch001_train.csv" in seen[0]  # open from the first batch on
    second_epoch = seen[4 + 4]  # the first batch of epoch 2 (4 train and 4 valid batches before it)
    assert {"train_summary_table.csv", "valid_summary_table.csv", "summary_table.csv"} <= set(second_epoch)


def test_bad_settings_fail_before_anything_is_written(workdir):
    with pytest.raises(ValueError, match=r"valid_metrics \['nope'\] have no function in ClassificationModelWrapper"):
        _manager(workdir, valid_metrics={"nope"})
    with pytest.raises(ValueError, match="save_check_op must be"):
        _manager(workdir, save_check_op="=")
    (workdir / "default.yaml").write_text("num_epochs: 0\n")
    with pytest.raises(ValueError, match=r"num_epochs in .*default.yaml must be a whole number"):
        _manager(workdir)
    assert not (workdir / "logs").exists() or not any((workdir / "logs").iterdir())


def test_only_test_without_a_saved_model_names_the_file(workdir):
    with pytest.raises(FileNotFoundError, match=r"no saved model at logs/exp3/saved_model/model_best.pt"):
        _manager(workdir, only_test=True, exp_name="exp3", verbose=False).run()
    broken = workdir / "logs" / "exp4" / "saved_model" / "model_best.pt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"cannot read the saved model logs/exp4/saved_model/model_best.pt"):
        _manager(workdir, only_test=True, exp_name="exp4", verbose=False).run()
    assert not Path(os.environ["EPOCHAL_DIR"]).exists()  # no run was started for either


def test_config_reads_yaml_and_names_the_file_when_it_cannot(tmp_path):
    config = Config(CONFIG)
    assert config.num_epochs == 3 and config.eval_interval == 1 and config["lr"] == 0.5 and "seed" in config
    (tmp_path / "sub.yaml").write_text("num_epochs: 4\nfast: {num_epochs: 1}\n")
    sub = Config(tmp_path / "sub.yaml")
    assert sub.num_epochs == 4 and Config(tmp_path / "sub.yaml").eval_interval == 2
    sub.set_sub_config("fast")
    assert sub.num_epochs == 1
    with pytest.raises(FileNotFoundError, match="missing.yaml does not exist"):
        Config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("num_epochs: [1\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        Config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml must hold a mapping"):
        Config(tmp_path / "list.yaml")


def test_readme_model_wrapper_runs_as_written(workdir):
    pytest.importorskip("pandas")
    # Section 1 of the seed README, verbatim but for the import line.
    from typing import Any, Dict  # noqa: UP035 - as the README writes it

    import pandas as pd

    class ClassificationModelWrapper(BaseModelWrapper):
        def __init__(self, model, device):
            super().__init__(model, device)
            self.criterion = nn.CrossEntropyLoss()

        def loss_func(self, out, y, metric_result):
            y = y.to(out.device)
            metric_result['loss'] = self.criterion(out, y)

        @torch.no_grad()
        def num_correct_func(self, out, y, metric_result):
            y = y.to(out.device)
            metric_result['num_correct'] = torch.eq(out.argmax(dim=1), y).sum()

        @torch.no_grad()
        def accuracy_func(self, out, y, metric_result):
            if 'num_correct' not in metric_result:
                self.num_correct_func(out, y, metric_result)
            if 'num_samples' not in metric_result:
                self.num_samples_func(out, y, metric_result)
            metric_result['accuracy'] = metric_result['num_correct'] / metric_result['num_samples']

        def collect(self, epoch_information: pd.DataFrame, epoch_summary: Dict[str, Any]) -> Dict[str, Any]:  # noqa: UP006
            if 'num_correct' in epoch_information:
                epoch_summary['total_correct'] = epoch_information['num_correct'].sum()
                epoch_summary['accuracy'] = epoch_summary['total_correct'] / epoch_summary['total_samples']
            return epoch_summary

    torch.manual_seed(0)
    wrapper = ClassificationModelWrapper(nn.Linear(4, 2), "cpu")
    result = _manager(workdir, wrapper=wrapper, valid_metrics={"accuracy"}, test_metrics={"accuracy"},
                      save_metric="accuracy", verbose=False).run()
    assert result.metrics["accuracy"] == result.metrics["total_correct"] / result.samples


def test_collect_gets_numpy_columns_without_pandas(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    seen = {}

    class Recording(ClassificationModelWrapper):
        def collect(self, epoch_information, epoch_summary):
            seen["type"] = type(epoch_information)
            return super().collect(epoch_information, epoch_summary)

    torch.manual_seed(0)
    result = _manager(workdir, wrapper=Recording(nn.Linear(4, 2), "cpu"), test_metrics={"accuracy"},
                      verbose=False).run()
    assert seen["type"] is dict and 0 <= result.metrics["accuracy"] <= 1
