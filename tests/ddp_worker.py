"""What each rank runs in the DDP tests, started by ``torchrun --standalone --nproc_per_node=2`` (gloo).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py log STORE OUT
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py fit STORE OUT --name a
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py ledger STORE OUT

Rank 0 writes what the test checks as JSON to OUT. ``fit`` also runs in a single process (plain
``python``), which is how the tests compare a DDP job with one process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import types

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal.errors import EpochalError


def log_scenario(args: argparse.Namespace) -> dict:
    rank = int(os.environ.get("RANK", "0"))
    run = epochal.start("ddp", name=f"job-{rank}" if args.names_differ else "job", store=args.store,
                        config={"rank": rank})
    for step in range(250):
        value = 10.0 * rank + step
        run.log({"x/mean": value}, reduce="mean")
        run.log({"x/sum": torch.tensor(value)}, reduce="sum")
        run.log({"x/min": value}, reduce="min")
        run.log({"x/max": value}, reduce="max")
        run.log({"rank/own": float(rank)})  # recorded from rank 0 alone
        run.step()
    run.epoch()
    out = {"id": run.id, "name": run.name, "rank": run.rank, "world_size": run.world_size}
    try:
        run.log({"x/mean": 1.0}, reduce="median")
    except ValueError as exc:
        out["bad_reduce"] = str(exc)
    if args.mismatch:
        if rank == 1:
            run.log({"only/one": 1.0}, reduce="mean")
        try:
            run.flush()
        except EpochalError as exc:
            out["mismatch"] = f"{type(exc).__name__}: {exc}"
    run.finish()
    return out


class _Die(epochal.Callback):
    """Kill this process (as kill -9 would) at a batch of an epoch, on one rank."""

    def __init__(self, rank: int, epoch: int, batch: int):
        self.where = (rank, epoch, batch)

    def on_batch_end(self, trainer, batch) -> None:
        if (trainer.run.rank, trainer.epoch, batch.index) == self.where and batch.stage == "train":
            os.kill(os.getpid(), signal.SIGKILL)


def _data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] > 0).long()
    xv = torch.randn(101, 8, generator=generator)  # odd: the ranks' shares differ in size
    yv = (xv[:, 0] + 0.5 * xv[:, 1] - 0.3 * xv[:, 2] > 0).long()
    return x, y, xv, yv


class _Noisy(torch.nn.Module):
    """Dropout and Python/NumPy randomness in the forward pass: each rank's random states matter."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3))
        self.head = torch.nn.Linear(16, 2)

    def forward(self, x):
        if self.training:
            x = x * (1 + 1e-3 * (random.random() + float(np.random.rand())))
        return self.head(self.body(x))


def fit_scenario(args: argparse.Namespace) -> dict:
    x, y, xv, yv = _data()
    rank = int(os.environ.get("RANK", "0"))
    random.seed(rank)
    np.random.seed(rank)
    torch.manual_seed(0)
    model = _Noisy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    callbacks: list = [epochal.RecordDynamics({"train": (x[:40], y[:40]), "test": (xv[:21], yv[:21])})]
    if args.die is not None:
        callbacks.append(_Die(1, *args.die))
    trainer = epochal.Trainer(
        model, optimizer, loss_fn=torch.nn.CrossEntropyLoss(), scheduler=scheduler,
        train_data=DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                              generator=torch.Generator().manual_seed(1)),
        valid_data=DataLoader(TensorDataset(xv, yv), batch_size=20), metrics=["accuracy"],
        max_epochs=args.epochs, name=args.name, store=args.store, callbacks=callbacks, progress=False,
    )
    out: dict = {}
    try:
        trainer.fit(resume=args.resume)
    except EpochalError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    module = trainer.module
    # What one process computes with the same weights on the whole validation set.
    module.eval()
    with torch.no_grad():
        logits = module(xv)
        loss = torch.nn.functional.cross_entropy(logits, yv, reduction="sum").item() / len(yv)
        correct = (logits.argmax(1) == yv).sum().item()
    last = trainer.history[-1]
    out.update(
        id=trainer.run.id, rank=trainer.run.rank, world_size=trainer.run.world_size,
        wrapped=type(trainer.model).__name__,
        params={name: p.detach().tolist() for name, p in module.state_dict().items()},
        valid_accuracy=last["valid"].metrics["accuracy"], valid_loss=last["valid"].loss_mean,
        valid_samples=last["valid"].samples, train_samples=last["train"].samples,
        one_process_accuracy=correct / len(yv), one_process_loss=loss,
        history=[{stage: [r.loss_mean, r.metrics.get("accuracy")] for stage, r in epoch.items()}
                 for epoch in trainer.history],
    )
    if trainer.run.rank == 0:  # the same samples recorded by one process, beside the DDP job's recording
        from epochal.dynamics.record import record

        inputs, labels = callbacks[0].inputs, callbacks[0].labels
        folder = os.path.join(os.path.dirname(args.out), f"single-{args.name}")
        single = record(types.SimpleNamespace(path=folder, epochs=trainer.epoch, job=None), module, inputs, labels,
                        split=callbacks[0].split, epoch=trainer.epoch, indices=callbacks[0].indices)
        out["single_dynamics"] = str(single)
    return out


class _Indexed(epochal.Trainer):
    """Inputs carry each sample's dataset index in their last column, which the model never sees: each
    rank keeps (index, epoch, logits, target) of every training batch, the test's reference."""

    seen: list

    def training_step(self, batch):
        x, y = batch
        logits = self.model(x[:, :-1])
        self.seen.append((x[:, -1].long(), torch.full_like(y, self.epoch), logits.detach().clone(), y))
        return torch.nn.functional.cross_entropy(logits, y), logits, y


def ledger_scenario(args: argparse.Namespace) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(301, 8, generator=generator)  # odd: the DistributedSampler repeats a sample for rank 1
    y = ((x[:, 0] > 0).long() + (x[:, 1] > 0.5).long())
    x = torch.cat([x, torch.arange(301, dtype=torch.float32)[:, None]], 1)
    rank = int(os.environ.get("RANK", "0"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    callbacks: list = [epochal.SampleLedger()]
    if args.die is not None:
        callbacks.append(_Die(1, *args.die))
    trainer = _Indexed(
        model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                              generator=torch.Generator().manual_seed(1)),
        max_epochs=args.epochs, name=args.name, store=args.store, callbacks=callbacks, progress=False,
        epoch_table=False, csv_tables=False, summary=False,
    )
    trainer.seen = []
    trainer.fit(resume=args.resume)
    seen = [torch.cat(column).numpy() for column in zip(*trainer.seen)]
    np.savez(os.path.join(os.path.dirname(args.out), f"{args.name}-seen-{rank}.npz"),
             index=seen[0], epoch=seen[1], logits=seen[2], target=seen[3])
    return {"id": trainer.run.id, "path": str(trainer.run.path)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["log", "fit", "ledger"])
    parser.add_argument("store")
    parser.add_argument("out")
    parser.add_argument("--name", default="ddp-fit")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--die", type=int, nargs=2, metavar=("EPOCH", "BATCH"))
    parser.add_argument("--names-differ", action="store_true")
    parser.add_argument("--mismatch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = {"log": log_scenario, "fit": fit_scenario, "ledger": ledger_scenario}[args.scenario](args)
    if int(os.environ.get("RANK", "0")) == 0:
        with open(args.out, "w") as file:
            json.dump(out, file)


if __name__ == "__main__":
    main()
