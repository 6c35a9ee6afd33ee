"""Ctrl-C at any point of an epoch, then fit(resume=True) in fresh objects: the run is the run it
would have been. Every logged key (values bit for bit, steps, epochs) and the final weights are
compared with a straight run, for a SIGINT (what Ctrl-C sends) and for a KeyboardInterrupt raised
right there, at every training and validation batch, in every hook and inside the epoch-end save."""

import signal

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.train.logger import TIMING_KEYS

EPOCHS = 3
TRAIN_BATCHES, VALID_BATCHES = 4, 2


@pytest.fixture(autouse=True)
def python_handles_ctrl_c():
    """Python's own Ctrl-C handling, as in a user's script: the Trainer takes Ctrl-C over only from
    Python's default handler (it leaves a handler someone else installed alone), and a test run earlier
    in the same process may have left its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class Cut(epochal.Callback):
    """Sends SIGINT (``how='sigint'``; ``'twice'`` to press twice) or raises KeyboardInterrupt
    (``how='raise'``) once, at ``point``:
    ``(epoch, hook)``, ``(epoch, hook, stage)``, ``(epoch, 'on_batch_end' or 'forward', stage, batch)``,
    ``(epoch, 'save-extra')`` (this callback's state, read by the epoch-end checkpoint save) or
    ``(epoch, 'save-model')`` (the model's state dict, read by that save right after)."""

    def __init__(self, point: tuple, how: str):
        self.point, self.how = point, how
        self.fired = False
        self.epoch, self.hook, self.stage, self.batch = 0, None, None, 0
        self.in_save = False

    def _at(self, *where) -> None:
        if not self.fired and where == self.point:
            self.fired = True
            if self.how == "sigint":
                signal.raise_signal(signal.SIGINT)
            elif self.how == "twice":  # the second press stops at once, right here
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
            else:
                raise KeyboardInterrupt

    def on_epoch_start(self, trainer):
        self.epoch, self.hook, self.in_save = trainer.epoch, "on_epoch_start", False
        self._at(trainer.epoch, "on_epoch_start")

    def on_stage_start(self, trainer, stage, batches):
        self.stage, self.batch, self.hook = stage, 0, "on_stage_start"
        self._at(trainer.epoch, "on_stage_start", stage)

    def on_batch_end(self, trainer, batch):
        self.batch = batch.index + 1
        self._at(trainer.epoch, "on_batch_end", batch.stage, batch.index)

    def on_stage_end(self, trainer, result):
        self.hook = "on_stage_end"
        self._at(trainer.epoch, "on_stage_end", result.stage)

    def on_eval_end(self, trainer, results):
        self._at(trainer.epoch, "on_eval_end")

    def on_epoch_end(self, trainer, results):
        self.hook = "on_epoch_end"
        self._at(trainer.epoch, "on_epoch_end")

    def state_dict(self):
        if self.hook == "on_epoch_end":
            self.in_save = True
            self._at(self.epoch, "save-extra")
        return {}

    def in_forward(self):
        if self.in_save:
            self._at(self.epoch, "save-model")
        elif self.hook != "on_epoch_end":
            self._at(self.epoch, "forward", self.stage, self.batch)


class Tripwire(torch.nn.Module):
    """A layer without weights that gives the Cut a point inside the forward (after the dropout
    has drawn its mask) and inside the model's state dict (read by every checkpoint save)."""

    def __init__(self):
        super().__init__()
        self.cut = None

    def forward(self, x):
        if self.cut is not None:
            self.cut.in_forward()
        return x

    def state_dict(self, *args, **kwargs):
        if self.cut is not None and self.cut.in_save:
            self.cut.in_forward()
        return super().state_dict(*args, **kwargs)


def _trainer(store, name, cut=None, seed=0, accumulate=1, width=8):
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(60, 5, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(seed)  # the initial weights and the dropout masks that follow; a resume replaces both
    wire = Tripwire()
    model = torch.nn.Sequential(torch.nn.Linear(5, width), torch.nn.ReLU(), torch.nn.Dropout(0.3), wire,
                                torch.nn.Linear(width, 2))
    wire.cut = cut
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.8)
    train = DataLoader(TensorDataset(x[:40], y[:40]), batch_size=10, shuffle=True,
                       generator=torch.Generator().manual_seed(7))
    valid = DataLoader(TensorDataset(x[40:], y[40:]), batch_size=10)  # unshuffled: it still draws a seed
    callbacks = [epochal.EarlyStopping("valid/loss", patience=50)] + ([cut] if cut is not None else [])
    return epochal.Trainer(
        model, optimizer, loss_fn=torch.nn.CrossEntropyLoss(), train_data=train, valid_data=valid,
        metrics=["accuracy"], max_epochs=EPOCHS, scheduler=scheduler, store=store, project="cut", name=name,
        accumulate_grad_batches=accumulate, callbacks=callbacks, progress=False, epoch_table=False, summary=False,
    )


def _same_run(store_dir, a, b):
    store = epochal.Store(store_dir)
    keys = store.keys(a)
    assert keys == store.keys(b)
    assert {"train/loss", "train/epoch_loss", "valid/loss", "valid/accuracy", "lr", *TIMING_KEYS} <= set(keys)
    for key in set(keys) - set(TIMING_KEYS):
        ha, hb = store.history(a, key), store.history(b, key)
        assert ha.steps.tolist() == hb.steps.tolist(), key
        assert ha.epochs.tolist() == hb.epochs.tolist(), key
        assert ha.values.tolist() == hb.values.tolist(), key  # bit for bit
    ra, rb = store.run(a), store.run(b)
    assert (ra.steps, ra.epochs, rb.status) == (rb.steps, rb.epochs, "finished")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    store = tmp_path_factory.mktemp("cut-store")
    finished = {}
    for accumulate in (1, 2):
        trainer = _trainer(store, f"straight-{accumulate}", accumulate=accumulate)
        trainer.fit()
        finished[accumulate] = [p.detach().clone() for p in trainer.model.parameters()]
    return store, finished


def _points():
    points = [(0, "on_epoch_start"), (0, "forward", "train", 0), (0, "on_batch_end", "train", 0)]
    e = 1
    points += [(e, "on_epoch_start"), (e, "on_stage_start", "train"), (e, "on_stage_start", "valid")]
    for stage, batches in (("train", TRAIN_BATCHES), ("valid", VALID_BATCHES)):
        points += [(e, "forward", stage, i) for i in range(batches)]
        points += [(e, "on_batch_end", stage, i) for i in range(batches)]
        points.append((e, "on_stage_end", stage))
    points += [(e, "on_eval_end"), (e, "on_epoch_end"), (e, "save-extra"), (e, "save-model")]
    points += [(EPOCHS - 1, "on_epoch_end"), (EPOCHS - 1, "save-model")]
    return points


def _cut_and_resume(store, name, point, how, accumulate=1):
    cut = Cut(point, how)
    trainer = _trainer(store, name, cut, accumulate=accumulate)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert cut.fired, f"the fit never reached {point}"
    assert epochal.Store(store).run(name).status == "interrupted"
    resumed = _trainer(store, name, seed=99, accumulate=accumulate)  # fresh objects, other weights
    resumed.fit(resume=True)
    return resumed


@pytest.mark.parametrize("how", ["sigint", "raise"])
@pytest.mark.parametrize("point", _points(), ids=lambda p: "-".join(map(str, p)))
def test_ctrl_c_anywhere_then_resume_is_the_straight_run(straight, point, how):
    store, finished = straight
    name = f"cut-{how}-" + "-".join(map(str, point))
    resumed = _cut_and_resume(store, name, point, how)
    _same_run(store, "straight-1", name)
    for p, q in zip(finished[1], resumed.model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("point", [(1, "forward", "train", 2), (1, "on_batch_end", "train", 2),
                                   (1, "forward", "valid", 1), (1, "on_stage_end", "valid"), (1, "save-model")],
                         ids=lambda p: "-".join(map(str, p)))
def test_a_second_ctrl_c_stops_at_once_and_the_resume_is_still_exact(straight, point):
    """The second press raises where it lands: the batch it cut is done again from its start."""
    store, finished = straight
    name = "cut-twice-" + "-".join(map(str, point))
    resumed = _cut_and_resume(store, name, point, "twice")
    _same_run(store, "straight-1", name)
    for p, q in zip(finished[1], resumed.model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("point", [(1, "on_batch_end", "train", 0), (1, "forward", "train", 1)],
                         ids=["after-a-half-accumulated-step", "inside-the-stepping-batch"])
def test_ctrl_c_between_accumulated_batches_keeps_their_gradients(straight, point):
    store, finished = straight
    name = "cut-accumulate-" + "-".join(map(str, point))
    resumed = _cut_and_resume(store, name, point, "raise", accumulate=2)
    _same_run(store, "straight-2", name)
    for p, q in zip(finished[2], resumed.model.parameters()):
        assert torch.equal(p, q)


def test_sigint_lets_the_epoch_end_save_finish_and_the_epoch_count(straight, capfd):
    """Ctrl-C during the epoch-end checkpoint: the epoch is done, its checkpoint is written, and the
    resume starts the next epoch (it once trained one epoch fewer than it said)."""
    store, _ = straight
    cut = Cut((1, "save-model"), "sigint")
    trainer = _trainer(store, "epoch-end", cut)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert "press Ctrl-C again to stop at once" in capfd.readouterr().err
    record = epochal.Store(store).run("epoch-end")
    assert (record.status, record.epochs, record.steps) == ("interrupted", 2, 2 * TRAIN_BATCHES)
    resumed = _trainer(store, "epoch-end", seed=5)
    resumed.fit(resume=True)
    assert [results["train"].epoch for results in resumed.history] == [2]
    assert epochal.Store(store).run("epoch-end").epochs == EPOCHS
