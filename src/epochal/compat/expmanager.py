"""TorchExpManager's API over epochal's Trainer: change one import line, keep the script.

    from TorchExpManager import TorchExpManager          # before
    from epochal.compat.expmanager import TorchExpManager, Config, BaseDataLoaderWrapper  # after

``TorchExpManager(**kwargs).run()`` trains, validates every ``eval_interval`` epochs, keeps the best
model by ``save_metric``, stops early and tests the best model. It writes the documented tree into
``logs/expN`` (N the next free number) as it goes, and records the run in the epochal store
(project ``expmanager``, run name ``expN``), so ``epochal ls`` shows it::

    logs/exp1/epoch_details/epoch001_train.csv   one row per batch (+ the batch's metric values)
    logs/exp1/saved_model/model_best.pt          {'state_dict', 'epoch', 'metric_name', 'metric'}
    logs/exp1/{train,valid,test}_summary_table.csv, summary_table.csv

Unlike the original: epoch metrics are exact over the data set (batch values weighted by their
samples, counts summed), the default save metric is the validation loss so early stopping fires,
nothing goes through a temporary folder, and progress totals count the samples a ``drop_last``
loader really yields.
"""

from __future__ import annotations

import datetime
import inspect
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from epochal.atomic import atomic_file, atomic_write
from epochal.opening import start
from epochal.train.callback import BatchResult, Callback, StageResult
from epochal.train.csv_tables import CSVTables
from epochal.train.early_stopping import EarlyStopping
from epochal.train.progress import ProgressBar
from epochal.train.trainer import Trainer

__all__ = ["BaseDataLoaderWrapper", "BaseModelWrapper", "ClassificationModelWrapper", "Config", "TorchExpManager"]

_SUMMARY_BASE = ("total_samples", "epoch_time", "loss_mean", "loss_std")  # StageResult has these already
_NOT_METRICS = {"loss", "num_samples", "iter", "iter_time", "epoch", "stage"}


# -- configuration -----------------------------------------------------------------------------------


class Config:
    """A YAML file of settings; top-level mappings are sub-configs chosen with ``set_sub_config``.

    Examples:
        >>> config = Config("default.yaml")
        >>> config["num_epochs"], config.eval_interval
        (100, 2)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.base_config: dict[str, Any] = {}
        self.sub_config: dict[str, dict] = {}
        for key, value in self.read_config().items():
            (self.sub_config if isinstance(value, dict) else self.base_config)[key] = value
        self.current_sub_config_name: str | None = None
        self.current_config = dict(self.base_config)

    def read_config(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {self.path} does not exist") from None
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {self.path} is not valid YAML: {exc}") from None
        if config is None:
            return {}
        if not isinstance(config, dict):  # a bad file's content, reported like invalid YAML
            raise ValueError(  # noqa: TRY004
                f"config file {self.path} must hold a mapping of settings, got a {type(config).__name__}")
        return config

    def set_sub_config(self, name: str) -> None:
        if name not in self.sub_config:
            raise KeyError(f"no sub config {name!r} in {self.path}; it has {sorted(self.sub_config) or 'none'}")
        self.current_sub_config_name = name
        self.current_config = {**self.base_config, **self.sub_config[name]}

    @property
    def num_epochs(self) -> int:
        """Epochs to train (default 100)."""
        return self._positive("num_epochs", 100)

    @property
    def eval_interval(self) -> int:
        """Validate every this many epochs (default 2), and after the last."""
        return self._positive("eval_interval", 2)

    def _positive(self, key: str, default: int) -> int:
        value = self.current_config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} in {self.path} must be a whole number of at least 1, got {value!r}")
        return value

    def __getitem__(self, key: str) -> Any:
        return self.current_config[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.current_config[key] = value
        name = self.current_sub_config_name
        if name and key in self.sub_config[name]:
            self.sub_config[name][key] = value
        else:
            self.base_config[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.current_config

    def get(self, key: str, default: Any = None) -> Any:
        return self.current_config.get(key, default)

    def keys(self):
        return self.current_config.keys()

    def values(self):
        return self.current_config.values()

    def items(self):
        return self.current_config.items()

    def show_status(self) -> None:
        rows = [(str(k), str(v)) for k, v in self.current_config.items()]
        widths = [max([len(row[i]) for row in rows] + [1]) for i in (0, 1)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        print("\n".join([rule, *(f"| {k.center(widths[0])} | {v.center(widths[1])} |\n{rule}" for k, v in rows)]))

    def update_config(self) -> Config:
        """Write the settings (sub-configs included) back to the file, atomically."""
        with atomic_file(self.path, "w") as f:
            yaml.safe_dump({**self.base_config, **self.sub_config}, f, indent=2, default_flow_style=False)
        return self


# -- wrappers ----------------------------------------------------------------------------------------


class BaseDataLoaderWrapper:
    """Gives each batch as ``{'x': input, 'y': labels}``; override ``split_iter_data`` for other batches.

    Examples:
        >>> train = BaseDataLoaderWrapper(DataLoader(dataset, batch_size=32, shuffle=True))
    """

    def __init__(self, dataloader: Iterable):
        self.dataloader = dataloader
        self.iter_data: dict[str, Any] = {"x": None, "y": None}

    def split_iter_data(self, iter_data: Any) -> None:
        # 'x': what the model's forward gets; 'y': what the xxx_func metric functions get.
        self.iter_data["x"], self.iter_data["y"] = iter_data

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for iter_data in self.dataloader:
            self.split_iter_data(iter_data)
            yield self.iter_data

    def __len__(self) -> int:
        return len(self.dataloader)  # batches per pass

    @property
    def num_samples(self) -> int | None:
        """Samples one pass yields: a ``drop_last`` loader leaves its last partial batch out."""
        batch_size = getattr(self.dataloader, "batch_size", None)
        sampler = getattr(self.dataloader, "sampler", None)
        try:
            total = len(sampler) if sampler is not None else len(self.dataloader.dataset)
        except (TypeError, AttributeError):
            return None
        if getattr(self.dataloader, "drop_last", False) and batch_size:
            return total // batch_size * batch_size
        return total


class BaseModelWrapper:
    """The model with its metric functions: every method ``xxx_func(out, y, metric_result)`` puts
    metric ``xxx`` of a batch into ``metric_result``; ``collect`` turns the batches into the epoch.

    Each batch metric ``m`` goes into the epoch summary before ``collect`` runs, exact over the
    data set: ``num_m`` as the sum ``total_m``, any other as the mean over samples (batch values
    weighted by ``num_samples``), which is exact for per-sample means such as accuracy.

    Examples:
        >>> class MyModelWrapper(BaseModelWrapper):
        ...     def loss_func(self, out, y, metric_result):
        ...         metric_result["loss"] = nn.functional.cross_entropy(out, y.to(out.device))
    """

    def __init__(self, model: nn.Module, device: Any):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.metric2func: dict[str, Callable] = {
            name[: -len("_func")]: method
            for name, method in inspect.getmembers(self, predicate=inspect.ismethod)
            if name.endswith("_func")
        }

    def loss_func(self, out, y, metric_result) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define loss_func(out, y, metric_result)")

    @torch.no_grad()
    def num_samples_func(self, out, y, metric_result) -> None:
        metric_result["num_samples"] = y.size(0)

    def __call__(self, x):
        return self.model(x.to(self.device))

    def train(self) -> None:
        self.model.train()

    def eval(self) -> None:
        self.model.eval()

    def collect(self, epoch_information: Any, epoch_summary: dict[str, Any]) -> dict[str, Any]:
        """Adjust the epoch summary from the batches' table (a pandas DataFrame when pandas is
        installed, else a dict of NumPy columns); the default keeps it as it is."""
        return epoch_summary

    def base_collect(self, epoch_information: Any) -> dict[str, Any]:
        samples = np.asarray(epoch_information["num_samples"], dtype=np.float64)
        summary: dict[str, Any] = {"total_samples": int(samples.sum()),
                                   "epoch_time": float(np.sum(epoch_information["iter_time"]))}
        if "loss" in epoch_information:
            losses = np.asarray(epoch_information["loss"], dtype=np.float64)
            summary["loss_mean"] = float(losses.mean())
            summary["loss_std"] = float(losses.std(ddof=1)) if len(losses) > 1 else 0.0
        for name in epoch_information:
            if name in _NOT_METRICS:
                continue
            values = np.asarray(epoch_information[name], dtype=np.float64)
            if name.startswith("num_"):
                summary["total_" + name[len("num_"):]] = float(values.sum())
            else:
                summary[name] = float((values * samples).sum() / samples.sum())
        return self.collect(epoch_information, summary)


class ClassificationModelWrapper(BaseModelWrapper):
    """Cross-entropy loss, ``num_correct`` and ``accuracy`` (exact: total correct / total samples)."""

    def __init__(self, model: nn.Module, device: Any):
        super().__init__(model, device)
        self.criterion = nn.CrossEntropyLoss()

    def loss_func(self, out, y, metric_result) -> None:
        metric_result["loss"] = self.criterion(out, y.to(out.device))

    @torch.no_grad()
    def num_correct_func(self, out, y, metric_result) -> None:
        metric_result["num_correct"] = torch.eq(out.argmax(dim=1), y.to(out.device)).sum()

    @torch.no_grad()
    def accuracy_func(self, out, y, metric_result) -> None:
        if "num_correct" not in metric_result:
            self.num_correct_func(out, y, metric_result)
        if "num_samples" not in metric_result:
            self.num_samples_func(out, y, metric_result)
        metric_result["accuracy"] = metric_result["num_correct"] / metric_result["num_samples"]

    def collect(self, epoch_information: Any, epoch_summary: dict[str, Any]) -> dict[str, Any]:
        if "num_correct" in epoch_information:
            epoch_summary["total_correct"] = int(np.sum(epoch_information["num_correct"]))
            epoch_summary["accuracy"] = epoch_summary["total_correct"] / epoch_summary["total_samples"]
        return epoch_summary


# -- the manager -------------------------------------------------------------------------------------


class TorchExpManager:
    """Train, validate, keep the best model, stop early and test, as TorchExpManager did.

    Args:
        model_wrapper: a BaseModelWrapper subclass holding the model and its ``xxx_func`` metrics.
        train_dataloader, valid_dataloader, test_dataloader: BaseDataLoaderWrapper objects.
        config: a Config with ``num_epochs`` (default 100) and ``eval_interval`` (default 2).
        optimizer: the model's optimizer.
        train_metrics, valid_metrics, test_metrics: names of ``xxx_func`` metrics per stage;
            ``loss`` and ``num_samples`` are always computed, and ``save_metric`` on validation.
        save_metric: the validation metric that picks the best model (default ``loss``).
        save_check_op: '>' (higher is better) or '<'; default '<' for names with loss or error.
        verbose: print the sanity check, progress bars and epoch tables.
        iter_verbose: accepted for compatibility; the per-batch rows are in ``epoch_details``.
        log_dir: where the experiment folders go (default ``logs``).
        exp_name: the experiment folder; default ``expN`` with N the next free number.
        only_test: test ``log_dir/exp_name/saved_model/model_best.pt`` without training
            (a ``test`` key in the config overrides it).
        early_stop_threshold: evaluations without improvement before training stops (0: never).

    Examples:
        >>> TorchExpManager(model_wrapper=wrapper, train_dataloader=train, valid_dataloader=valid,
        ...                 test_dataloader=test, config=Config("default.yaml"), optimizer=optimizer,
        ...                 train_metrics={"accuracy"}, save_metric="accuracy", save_check_op=">").run()
    """

    def __init__(self, model_wrapper: BaseModelWrapper, train_dataloader: BaseDataLoaderWrapper | None,
                 valid_dataloader: BaseDataLoaderWrapper | None, test_dataloader: BaseDataLoaderWrapper | None,
                 config: Config, optimizer: torch.optim.Optimizer | None, train_metrics: Iterable[str] | None = None,
                 valid_metrics: Iterable[str] | None = None, test_metrics: Iterable[str] | None = None,
                 save_metric: str | None = None, save_check_op: str | None = None, verbose: bool = True,
                 iter_verbose: bool = False, log_dir: str | os.PathLike | None = None, exp_name: str | None = None,
                 only_test: bool = False, early_stop_threshold: int | None = 5):
        self.model_wrapper = model_wrapper
        self.loaders = {"train": train_dataloader, "valid": valid_dataloader, "test": test_dataloader}
        self.config = config
        self.optimizer = optimizer
        self.save_metric = save_metric or "loss"
        if self.save_metric in ("loss_mean", "epoch_loss"):
            self.save_metric = "loss"
        self.save_check_op = save_check_op or ("<" if "loss" in self.save_metric or "error" in self.save_metric
                                               else ">")
        if self.save_check_op not in ("<", ">"):
            raise ValueError(f"save_check_op must be '<' or '>', got {save_check_op!r}")
        self.train_metrics = set(train_metrics or ()) | {"loss", "num_samples"}
        self.valid_metrics = set(valid_metrics or ()) | {"loss", "num_samples", self.save_metric}
        self.test_metrics = set(test_metrics or ()) | {"loss", "num_samples"}
        for stage in ("train", "valid", "test"):
            missing = getattr(self, f"{stage}_metrics") - set(model_wrapper.metric2func)
            if missing:
                raise ValueError(f"{stage}_metrics {sorted(missing)} have no function in "
                                 f"{type(model_wrapper).__name__}; it implements {sorted(model_wrapper.metric2func)} (define xxx_func for metric xxx)")
        if early_stop_threshold is not None and (isinstance(early_stop_threshold, bool)
                                                 or not isinstance(early_stop_threshold, int)
                                                 or early_stop_threshold < 0):
            raise ValueError(f"early_stop_threshold must be a whole number of 0 or more, got {early_stop_threshold!r}")
        self.early_stop_threshold = early_stop_threshold or 0
        self.num_epochs, self.eval_interval = config.num_epochs, config.eval_interval  # checked here, not mid-run
        self.verbose = verbose
        self.iter_verbose = iter_verbose
        self.log_dir = Path(log_dir or "logs")
        self.only_test = bool(config["test"]) if "test" in config else only_test
        if self.only_test:
            if not exp_name:
                raise ValueError("only_test needs exp_name: the folder under log_dir whose saved_model/model_best.pt "
                                 "is tested")
            if test_dataloader is None:
                raise ValueError("only_test needs test_dataloader")
            self.exp_name = exp_name
            self.exp_dir = self.log_dir / exp_name
        else:
            if train_dataloader is None or optimizer is None:
                raise ValueError("training needs train_dataloader and optimizer (or only_test=True)")
            self.exp_dir = _make_exp_dir(self.log_dir, exp_name)
            self.exp_name = self.exp_dir.name
        self.best_epoch = 0
        if verbose:
            self.verbose_sanity_check()

    def verbose_sanity_check(self) -> None:
        print("Sanity Check: config")
        self.config.show_status()
        for stage in ("train", "valid", "test"):
            print(f"Sanity Check: {stage} metrics = {sorted(getattr(self, f'{stage}_metrics'))}")
        print(f"Sanity Check: save metric = '{self.save_metric}'")
        print(f"Sanity Check: save check op = '{self.save_check_op}'"
              f" [current {self.save_metric} {self.save_check_op} best {self.save_metric}]")
        print(f"Sanity Check: early stop threshold = {self.early_stop_threshold}")
        print(f"Sanity Check: log dir = {self.log_dir}")
        print(f"Sanity Check: only test = {self.only_test}")
        print(f"Sanity Check: experiment name = {self.exp_name}")

    @property
    def saved_model_path(self) -> Path:
        return self.exp_dir / "saved_model" / "model_best.pt"

    def run(self) -> StageResult | None:
        """Train (unless ``only_test``), then test the best model; returns the test result."""
        stage_key = "valid" if self.loaders["valid"] is not None else "train"
        name = "epoch_loss" if stage_key == "train" and self.save_metric == "loss" else self.save_metric
        monitor, mode = f"{stage_key}/{name}", "max" if self.save_check_op == ">" else "min"
        if self.only_test:
            checkpoint = _load_best(self.saved_model_path, self.model_wrapper)  # before a run is started
        callbacks: list[Callback] = [self._progress_bar()] if self.verbose else []
        if not self.only_test:
            callbacks += [CSVTables(folder=self.exp_dir, batch_columns=_batch_metrics), _SaveBest(self)]
            if self.early_stop_threshold:
                callbacks.append(EarlyStopping(monitor, mode=mode, patience=self.early_stop_threshold))
        tags = ["expmanager"] + (["only_test"] if self.only_test else [])
        with start("expmanager", self.exp_name, config=dict(self.config.items()), tags=tags) as run:
            trainer = _ExpTrainer(
                self, run=run, callbacks=callbacks, monitor=monitor, mode=mode, max_epochs=self.num_epochs,
                eval_every=self.eval_interval, progress=False, epoch_table=self.verbose, csv_tables=False,
                summary=False,
            )
            if not self.only_test:
                trainer.fit()
                if self.saved_model_path.exists():
                    checkpoint = _load_best(self.saved_model_path, self.model_wrapper)
                else:
                    checkpoint = {"epoch": trainer.epoch + 1}  # nothing was ever better: test the last model
            self.best_epoch = int(checkpoint.get("epoch", 0) or 0)
            if self.loaders["test"] is None:
                return None
            trainer.epoch = max(self.best_epoch - 1, 0)  # the test rows carry the best model's epoch
            return trainer.test()

    def _progress_bar(self) -> ProgressBar:
        """The original's bars: 'Epoch 024/100 train: ...| 60000/60000 [..., samples/s, loss_mean=, accuracy=]'."""
        width = len(str(self.num_epochs))

        def description(trainer: Trainer, stage: str) -> str:
            return f"Epoch {trainer.epoch + 1:0{width}d}/{self.num_epochs} {stage}"

        def total(trainer: Trainer, stage: str) -> int | None:
            return getattr(self.loaders[stage], "num_samples", None)

        return ProgressBar(unit="samples", description=description, total=total, terminal=True, ascii=True,
                           postfix=_bar_figures)


def _bar_figures(done: BatchResult | StageResult) -> dict[str, float]:
    """The original's figures: the batch's index and loss while a stage runs, its mean loss and accuracy at its end."""
    if isinstance(done, BatchResult):
        return {"iter": done.index, "loss": float(done.loss)}
    shown = {"loss_mean": done.loss_mean}
    if "accuracy" in done.metrics:
        shown["accuracy"] = done.metrics["accuracy"]
    return shown


# -- the Trainer and callbacks behind it --------------------------------------------------------------


class _ExpTrainer(Trainer):
    """Batches are the wrappers' ``{'x', 'y'}`` dicts; metrics come from the model wrapper's functions."""

    def __init__(self, manager: TorchExpManager, **kwargs: Any):
        wrapper = manager.model_wrapper
        loaders = manager.loaders
        super().__init__(wrapper.model, manager.optimizer, train_data=loaders["train"],
                         valid_data=loaders["valid"], test_data=loaders["test"], device=wrapper.device, **kwargs)
        self.wrapper = wrapper
        self.metrics = {stage: _EpochInformation(self, stage, getattr(manager, f"{stage}_metrics"))
                        for stage in ("train", "valid", "test")}
        self.information: _EpochInformation | None = None  # the running stage's

    def training_step(self, batch: Any) -> torch.Tensor:
        return self.information.step(self.wrapper, batch)

    evaluation_step = training_step


class _EpochInformation:
    """Stands in for the Trainer's MetricSet: keeps each batch's ``metric_result`` and makes the
    epoch summary with the wrapper's ``base_collect`` / ``collect``."""

    def __init__(self, trainer: _ExpTrainer, stage: str, names: set[str]):
        self.trainer = trainer
        self.stage = stage
        self.order = ["loss", *sorted(names - {"loss"})]  # the loss first: other metrics may read it
        self.names: list[str] = []  # the Trainer calls update() only if this has names; step() does it
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self._last = time.perf_counter()

    def step(self, wrapper: BaseModelWrapper, batch: dict[str, Any]) -> torch.Tensor:
        out = wrapper(batch["x"])
        metric_result: dict[str, Any] = {}
        for name in self.order:
            if name not in metric_result:
                wrapper.metric2func[name](out, batch["y"], metric_result)
        now = time.perf_counter()
        row = {k: v.detach() if torch.is_tensor(v) else v for k, v in metric_result.items()}
        row["iter_time"], self._last = now - self._last, now
        self.rows.append(row)
        return metric_result["loss"]

    def reset(self) -> None:  # the Trainer calls it as the stage starts
        self.rows, self.summary, self._last = [], {}, time.perf_counter()
        self.trainer.information = self

    def to(self, device: torch.device) -> _EpochInformation:
        return self

    def compute(self) -> dict[str, float]:
        self.summary = self.trainer.wrapper.base_collect(_table(self.columns()))
        if not isinstance(self.summary, dict):
            raise TypeError(f"{type(self.trainer.wrapper).__name__}.collect must return the epoch summary dict, "
                            f"got {self.summary!r}")
        metrics = {}
        for key, value in self.summary.items():
            if key in _SUMMARY_BASE:
                continue
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"the epoch summary's {key!r} must be a number, got {value!r}") from None
        return metrics

    def columns(self) -> dict[str, np.ndarray]:
        names = list(dict.fromkeys(k for row in self.rows for k in row))
        return {name: np.array([_number(row.get(name, float("nan"))) for row in self.rows]) for name in names}

    def state_dict(self) -> dict:
        return {"rows": [{k: _number(v) for k, v in row.items()} for row in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


class _SaveBest(Callback):
    """``saved_model/model_best.pt`` whenever the save metric improves, in the original's format."""

    order = 40  # before the epoch table prints

    def __init__(self, manager: TorchExpManager):
        self.manager = manager

    def on_eval_end(self, trainer: Trainer, results: dict[str, StageResult]) -> None:
        if trainer.best is None or trainer.best[1] != trainer.epoch:
            return
        value, epoch = trainer.best
        path = self.manager.saved_model_path
        best = {"state_dict": trainer.model.state_dict(), "epoch": epoch + 1,
                "metric_name": self.manager.save_metric, "metric": value}
        atomic_write(path, lambda file: torch.save(best, file))
        if self.manager.verbose:
            print(f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S} model saved to {path}", flush=True)


# -- helpers -----------------------------------------------------------------------------------------


def _make_exp_dir(log_dir: Path, exp_name: str | None) -> Path:
    """Create ``log_dir/exp_name``, or ``log_dir/expN`` with N one past the highest taken."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if exp_name:
        folder = log_dir / exp_name
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"experiment folder {folder} already holds an experiment; choose another exp_name")
        folder.mkdir(exist_ok=True)
        return folder
    taken = [int(p.name[3:]) for p in log_dir.iterdir() if p.name.startswith("exp") and p.name[3:].isdigit()]
    number = max(taken, default=0) + 1
    while True:
        try:
            (log_dir / f"exp{number}").mkdir()
            return log_dir / f"exp{number}"
        except FileExistsError:  # another process took it first
            number += 1


def _load_best(path: Path, wrapper: BaseModelWrapper) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {path}: train the experiment first (only_test=False)")
    try:
        checkpoint = torch.load(path, map_location=wrapper.device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"cannot read the saved model {path}: {exc}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"the saved model {path} holds no 'state_dict'; it is not a TorchExpManager model file")
    try:
        wrapper.model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"the saved model {path} does not fit {type(wrapper.model).__name__}: {exc}") from None
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S} model load from {path}")
    return checkpoint


def _batch_metrics(trainer: _ExpTrainer, stage: str) -> dict[str, np.ndarray]:
    """Each batch's metric values, for the stage's batch file."""
    return {name: values for name, values in trainer.metrics[stage].columns().items() if name not in _NOT_METRICS}


def _number(value: Any) -> float:
    return float(value.item() if torch.is_tensor(value) else value)


def _table(columns: dict[str, np.ndarray]) -> Any:
    """The batches' table for ``collect``: a pandas DataFrame if pandas is installed."""
    try:
        import pandas
    except ImportError:
        return columns
    return pandas.DataFrame(columns)
