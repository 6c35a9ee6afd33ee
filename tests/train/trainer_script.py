"""A seeded Trainer run used by the exact-resume tests, in-process or as a script.

    python trainer_script.py STORE NAME EPOCHS [--resume] [--kill-at-step N] [--interrupt-at-step N]
"""

from __future__ import annotations

import argparse
import os
import signal

import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal


class _Die(epochal.Callback):
    """Ends the process abruptly (SIGKILL) or as Ctrl-C would, at a chosen training step."""

    def __init__(self, at_step: int, how: str):
        self.at_step, self.how = at_step, how

    def on_batch_end(self, trainer, batch):
        if batch.stage == "train" and trainer.run.steps + 1 == self.at_step:
            if self.how == "kill":
                trainer.run.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            raise KeyboardInterrupt


def make_trainer(store, name: str, epochs: int, extra_callbacks=(), seed: int = 0, hidden: int = 16,
                 amp: bool | str = False) -> epochal.Trainer:
    generator = torch.Generator().manual_seed(1234)  # the data is the same in every process
    x = torch.randn(200, 6, generator=generator)
    y = (x[:, 0] - x[:, 1] > 0).long()
    torch.manual_seed(seed)  # the model's initial weights; a resume replaces them
    model = torch.nn.Sequential(torch.nn.Linear(6, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                torch.nn.Linear(hidden, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.7)
    train = DataLoader(TensorDataset(x[:150], y[:150]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(7))
    valid = DataLoader(TensorDataset(x[150:], y[150:]), batch_size=25)
    return epochal.Trainer(
        model, optimizer, loss_fn=torch.nn.CrossEntropyLoss(), train_data=train, valid_data=valid,
        metrics=["accuracy"], max_epochs=epochs, scheduler=scheduler, store=store, project="resume", name=name,
        callbacks=[epochal.EarlyStopping("valid/accuracy", patience=50), *extra_callbacks],
        progress=False, epoch_table=False, summary=False, amp=amp,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("name")
    parser.add_argument("epochs", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-at-step", type=int)
    parser.add_argument("--interrupt-at-step", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    extra = []
    if args.kill_at_step:
        extra.append(_Die(args.kill_at_step, "kill"))
    if args.interrupt_at_step:
        extra.append(_Die(args.interrupt_at_step, "interrupt"))
    make_trainer(args.store, args.name, args.epochs, extra, seed=args.seed).fit(resume=args.resume)


if __name__ == "__main__":
    main()
