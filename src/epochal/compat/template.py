"""The Pytorch-training-template's ``TemplateModel``, recording into epochal as it trains.

Move a script over by changing its import line only::

    from utils.template import TemplateModel          # before
    from epochal.compat.template import TemplateModel  # after

Subclass it and set the same attributes in ``__init__`` (``writer``, ``global_step``, ``epoch``,
``best_acc``, ``model``, ``optimizer``, ``criterion``, ``train_loader``, ``test_loader``, ``device``,
``ckpt_dir``, ``log_per_step``), then call ``check_init()``, ``get_model_info(fake_inp)``,
``load_state(path)``, ``train_loop()`` and ``eval(save_per_epochs)`` as before.

What it keeps: TensorBoard event files from ``writer`` (a real ``SummaryWriter``), ``best.pth``
(model only) and ``epoch<N>.pth`` (model and optimizer) in ``ckpt_dir``, both holding
``state['model']``. What changes: every scalar given to ``writer.add_scalar`` / ``add_scalars``
also goes to an epochal run (project ``self.project``, default 'template'), at the template's
``global_step`` and ``epoch``; the run is finished when the trainer is dropped (when training
ends) or at exit. Checkpoints are written atomically, load with ``torch.load(weights_only=True)``
and carry the random states, so ``load_state`` continues exactly. ``eval`` computes accuracy over
the whole test set (correct / samples), not as a mean of per-batch accuracies.
"""

from __future__ import annotations

import copy
import gc
import os
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import epochal
from epochal.checkpoint import load_file, rng_state, set_rng_state, write_atomic
from epochal.errors import CheckpointError, EpochalWarning, RunNotFoundError, RunStateError
from epochal.train.batches import batch_size, to_device
from epochal.train.summary import model_summary

_REQUIRED = ("model", "optimizer", "criterion", "train_loader", "test_loader", "device", "ckpt_dir", "log_per_step")
_STATE_KEYS = ("model", "global_step", "epoch", "best_acc")


class Mean(float):
    """A score that is ``total / count``; ``eval`` adds totals and counts over batches, so it stays exact.

    Return it from ``metric`` for scores that are sums over samples. A plain float from ``metric``
    is taken as a mean over the batch and weighted by the batch's size.

    Examples:
        >>> Mean(3, 4), Mean(3, 4).total, Mean(3, 4).count
        (0.75, 3, 4)
    """

    total: float
    count: int

    def __new__(cls, total: float, count: int) -> Mean:
        score = super().__new__(cls, total / count if count else float("nan"))
        score.total, score.count = total, count
        return score


class TemplateModel:
    """The training template to subclass: set the attributes in ``__init__``, then train.

    Examples:
        >>> class Trainer(TemplateModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.writer = SummaryWriter()
        ...         self.model, self.optimizer, self.criterion = model, optimizer, nn.CrossEntropyLoss()
        ...         self.train_loader, self.test_loader = train_loader, test_loader
        ...         self.device, self.ckpt_dir, self.log_per_step = "cpu", "./check_point", 100
        >>> trainer = Trainer(); trainer.check_init()
        >>> for _ in range(10):
        ...     trainer.train_loop(); trainer.eval(save_per_epochs=5)
    """

    def __init__(self) -> None:
        self._session = _Session(self)
        weakref.finalize(self, self._session.finish).atexit = False  # at exit epochal finishes its open runs
        self.writer = None
        self.global_step = 0
        self.epoch = 0
        self.best_acc = 0.0
        for name in _REQUIRED:  # the subclass's __init__ sets each of these; check_init says which it missed
            setattr(self, name, None)
        # epochal's side: which run the numbers go to.
        self.project = "template"
        self.run_name = None
        self.config: dict[str, Any] = {}
        self.store = None  # the store directory; default $EPOCHAL_DIR, else ./epochal-runs

    # -- the writer and the run -------------------------------------------------------------------

    @property
    def writer(self) -> Any:
        return self._session.writer

    @writer.setter
    def writer(self, writer: Any) -> None:
        if writer is not None:
            _tee(writer, self._session)
        self._session.writer = writer

    @property
    def run(self) -> epochal.Run:
        """The epochal run the scalars go to; started on first use."""
        return self._session.open()

    def finish(self) -> None:
        """Flush the TensorBoard files and finish the epochal run (done for you when the trainer is dropped)."""
        self._session.finish()

    # -- set-up ----------------------------------------------------------------------------------

    def check_init(self) -> None:
        """Check that the attributes are set, move the model to ``device`` and create ``ckpt_dir``."""
        missing = [name for name in _REQUIRED if getattr(self, name, None) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} has no {', '.join(missing)}: set them in __init__")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.model.to(self.device)
        Path(self.ckpt_dir).mkdir(parents=True, exist_ok=True)

    def get_model_info(self, fake_inp: Any) -> str:
        """Print the model's summary table (Transformers too) and add its graph to TensorBoard."""
        example = to_device(fake_inp, self.device)
        summary = model_summary(self.model, example)
        print(summary)
        if self.writer is not None:
            modes = [(m, m.training) for m in self.model.modules()]
            devices = [torch.device(self.device).index or 0] if torch.device(self.device).type == "cuda" else []
            try:
                with torch.random.fork_rng(devices=devices), torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.writer.add_graph(self.model, example)
            except Exception as exc:  # noqa: BLE001 - tracing fails on data-dependent control flow
                warnings.warn(f"TensorBoard: could not add the model's graph: {exc}", EpochalWarning, stacklevel=2)
            finally:
                for module, training in modes:
                    module.training = training
        return summary

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- checkpoints -----------------------------------------------------------------------------

    def save_state(self, fname: str | os.PathLike, optim: bool = True) -> Path:
        """Write the model (and with ``optim`` the optimizer and random states) to ``fname``, atomically."""
        state: dict[str, Any] = {"model": _bare(self.model).state_dict()}
        if optim:
            state["optimizer"] = self.optimizer.state_dict()
            state["rng"] = rng_state()
        state.update(global_step=self.global_step, epoch=self.epoch, best_acc=float(self.best_acc))
        state["run_id"] = self.run.id
        path = Path(fname)
        write_atomic(path, state)
        print(f"save model at {path}")
        return path

    def load_state(self, fname: str | os.PathLike, optim: bool = True) -> None:
        """Load a checkpoint; with ``optim`` also the optimizer and random states, to continue training.

        Continuing a checkpoint that this store's run wrote reopens that run, so its curves go on.

        Raises:
            CheckpointError: the file is missing, is not a checkpoint, or does not fit the model;
                nothing is changed then.
        """
        path = Path(fname)
        state = load_file(path)
        missing = [key for key in _STATE_KEYS if not isinstance(state, Mapping) or key not in state]
        if missing:
            raise CheckpointError(f"{path} is not a template checkpoint: it has no {', '.join(missing)}")
        model = _bare(self.model)
        backup = copy.deepcopy(model.state_dict()), copy.deepcopy(self.optimizer.state_dict())
        try:
            model.load_state_dict(state["model"])
            if optim and "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
        except Exception as exc:
            model.load_state_dict(backup[0])
            self.optimizer.load_state_dict(backup[1])
            raise CheckpointError(f"checkpoint {path} does not fit this model or optimizer: {exc}") from exc
        self.global_step, self.epoch, self.best_acc = state["global_step"], state["epoch"], state["best_acc"]
        if optim and "rng" in state:
            set_rng_state(state["rng"])
        if optim and state.get("run_id"):
            self._session.reopen(state["run_id"])
        print(f"load model from {path}")

    # -- training and evaluation -----------------------------------------------------------------

    def train_loop(self) -> None:
        """Train one epoch; log the mean loss every ``log_per_step`` batches (and the very first one)."""
        self.model.train()
        self.epoch += 1
        running_loss, batches, seen = 0.0, 0, 0
        for step, batch in enumerate(self.train_loader):
            self.global_step += 1
            self.optimizer.zero_grad()
            batch_loss = self.train_loss_per_batch(batch)
            batch_loss.backward()
            self.optimizer.step()
            running_loss += batch_loss.item()
            batches += 1
            seen += batch_size(None, batch)
            if self.global_step == 1:
                self._log_loss(batch_loss.item(), seen)
            elif step % self.log_per_step == 0 and step != 0:
                self._log_loss(running_loss / batches, seen)
                self._log_histograms()
                running_loss, batches = 0.0, 0

    def _log_loss(self, loss: float, seen: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar("loss", loss, self.global_step)
        else:
            self._session.log({"loss": loss})
        print(f"loss:{loss: .5f}\tcur:[{seen}]/[{len(self.train_loader.dataset)}]")

    def _log_histograms(self) -> None:
        if self.writer is None:
            return
        for tag, value in self.model.named_parameters():
            tag = tag.replace(".", "/")
            self.writer.add_histogram("weights/" + tag, value.detach().cpu().numpy(), self.global_step)
            if value.grad is not None:  # frozen parameters have none
                self.writer.add_histogram("grads/" + tag, value.grad.detach().cpu().numpy(), self.global_step)

    def train_loss_per_batch(self, batch: Any) -> torch.Tensor:
        """The loss of one training batch ``(x, y)``; ``y`` is long for CrossEntropyLoss, else float."""
        x, y = batch
        x = x.to(self.device, dtype=torch.float)
        classes = isinstance(self.criterion, torch.nn.CrossEntropyLoss)
        y = y.to(self.device, dtype=torch.long if classes else torch.float)
        pred = self.model(x)
        if not classes and y.dim() == 1 and pred.dim() == 2 and pred.shape[1] == 1:
            y = y.unsqueeze(1)  # a column of targets for a column of predictions
        return self.criterion(pred, y)

    def eval(self, save_per_epochs: int = 1) -> float:
        """Score the whole test set, save ``best.pth`` on a new best ``acc`` and ``epoch<N>.pth`` every n epochs.

        Each score is exact over the data set: a :class:`Mean` from ``metric`` adds its totals and
        counts, a plain number counts as the batch's mean, weighted by the batch's size.

        Returns:
            The test set's ``acc``.
        """
        self.model.eval()
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        with torch.no_grad():
            for batch in self.test_loader:
                size = batch_size(None, batch)
                for key, value in self.eval_scores_per_batch(batch).items():
                    if isinstance(value, Mean):
                        total, count = value.total, value.count
                    else:
                        total, count = float(value) * size, size
                    totals[key] = totals.get(key, 0) + total
                    counts[key] = counts.get(key, 0) + count
        scores = {key: totals[key] / counts[key] if counts[key] else float("nan") for key in totals}
        if "acc" not in scores:
            raise KeyError(f"metric() must return a dict with 'acc' (it picks the best model), got {sorted(scores)}")
        for key, value in scores.items():
            if self.writer is not None:
                self.writer.add_scalar(key, value, self.epoch)
            else:
                self._session.log({key: value})
        if scores["acc"] >= self.best_acc:
            self.best_acc = scores["acc"]
            self.save_state(Path(self.ckpt_dir) / "best.pth", False)
        if self.epoch % save_per_epochs == 0:
            self.save_state(Path(self.ckpt_dir) / f"epoch{self.epoch}.pth")
        if self.writer is not None:
            self.writer.flush()
        print(f"epoch:{self.epoch}\tACC {scores['acc']:.5f}")
        return scores["acc"]

    def eval_scores_per_batch(self, batch: Any) -> dict[str, Any]:
        x, y = batch
        pred = self.model(x.to(self.device))
        return self.metric(pred, y.to(self.device))

    def metric(self, pred: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """Scores of one batch; must hold ``acc``. Here: multi-class accuracy, as correct / samples."""
        correct = (torch.argmax(pred, dim=1) == y.reshape(len(pred))).sum().item()
        return {"acc": Mean(correct, len(pred))}

    def inference(self, x: Any) -> Any:
        self.model.eval()
        with torch.no_grad():
            return self.model(to_device(x, self.device))


class _Session:
    """The writer and the epochal run of one trainer; finishing needs no reference to the trainer."""

    def __init__(self, owner: TemplateModel):
        self._owner = weakref.ref(owner)
        self.writer: Any = None
        self.run: epochal.Run | None = None

    def open(self) -> epochal.Run:
        if self.run is None:
            owner = self._owner()
            self.run = epochal.start(
                project=getattr(owner, "project", None) or "template", name=getattr(owner, "run_name", None),
                config=_config(owner), store=getattr(owner, "store", None),
            )
        return self.run

    def reopen(self, run_id: str) -> None:
        """Continue the run that wrote a checkpoint, when this trainer has not logged anything yet."""
        if self.run is not None:
            return
        owner = self._owner()
        for attempt in range(2):
            try:
                self.run = epochal.resume(run_id, store=getattr(owner, "store", None))
                return
            except RunNotFoundError:
                return  # another store: this trainer starts a run of its own
            except RunStateError:
                if attempt:
                    return  # still open elsewhere: this trainer starts a run of its own
                # An earlier trainer of this process may hold the run until the collector frees it
                # (its finalizer finishes the run); collect, then try once more.
                gc.collect()

    def log(self, values: Mapping[str, Any]) -> None:
        run = self.open()
        owner = self._owner()
        step, epoch = (owner.global_step, owner.epoch) if owner is not None else (run.steps, run.epochs)
        # Keep the run's own counters (shown by `epochal ls`) with the template's.
        if step > run.steps:
            run.step(step - run.steps)
        if epoch > run.epochs:
            run.epoch(epoch - run.epochs)
        run.log(values, step=step, epoch=epoch)

    def finish(self) -> None:
        if self.writer is not None:
            self.writer.flush()
        if self.run is not None:
            self.run.finish()


def _tee(writer: Any, session: _Session) -> None:
    """Make ``writer``'s scalar calls also log to the session's run; the writer stays a SummaryWriter."""
    if getattr(writer, "_epochal_session", None) is not None:
        writer._epochal_session = session
        return
    writer._epochal_session = session
    add_scalar, add_scalars = writer.add_scalar, writer.add_scalars

    def tee_scalar(tag: str, scalar_value: Any, global_step: Any = None, *args: Any, **kwargs: Any) -> None:
        add_scalar(tag, scalar_value, global_step, *args, **kwargs)
        writer._epochal_session.log({tag: scalar_value})

    def tee_scalars(main_tag: str, tag_scalar_dict: Mapping[str, Any], global_step: Any = None,
                    *args: Any, **kwargs: Any) -> None:
        add_scalars(main_tag, tag_scalar_dict, global_step, *args, **kwargs)
        writer._epochal_session.log({f"{main_tag}/{tag}": value for tag, value in tag_scalar_dict.items()})

    writer.add_scalar, writer.add_scalars = tee_scalar, tee_scalars


def _config(owner: TemplateModel | None) -> dict[str, Any]:
    if owner is None:
        return {}
    config: dict[str, Any] = {
        "model": type(owner.model).__name__,
        "optimizer": type(owner.optimizer).__name__,
        "criterion": type(owner.criterion).__name__,
        "device": str(owner.device),
        "ckpt_dir": str(owner.ckpt_dir),
        "log_per_step": owner.log_per_step,
    }
    if owner.optimizer is not None:
        config["lr"] = owner.optimizer.param_groups[0].get("lr")
    for name in ("train_loader", "test_loader"):
        config[f"{name}.batch_size"] = getattr(getattr(owner, name), "batch_size", None)
    config.update(getattr(owner, "config", None) or {})
    return config


def _bare(model: torch.nn.Module) -> torch.nn.Module:
    wrapped = isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel))
    return model.module if wrapped else model


__all__ = ["Mean", "TemplateModel"]
