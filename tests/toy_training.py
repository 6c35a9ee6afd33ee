"""A small, seeded training loop used by the resume and crash tests.

Run as a script it trains (or resumes) a run in the store given on the command
line and can kill itself with SIGKILL after a chosen step, as a crash would.
"""

from __future__ import annotations

import argparse
import os
import random
import signal

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal


def make_parts(seed: int = 0):
    """The data is always the same; ``seed`` sets the model's initial weights and the random states."""
    x = torch.randn(96, 8, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler, loader


def train(run, model, optimizer, scheduler, loader, epochs: int, die_after_step: int | None = None):
    """Train until the run has completed ``epochs`` epochs, checkpointing after each."""
    while run.epochs < epochs:
        for x, y in loader:
            noise = random.random() + float(np.random.rand())  # Python and NumPy RNG in the loop too
            loss = torch.nn.functional.cross_entropy(model(x), y) * (1 + 1e-3 * noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"train/loss": loss, "train/lr": scheduler.get_last_lr()[0]})
            run.step()
            if die_after_step is not None and run.steps >= die_after_step:
                run.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        scheduler.step()
        run.epoch()
        run.save_checkpoint(models=model, optimizers=optimizer, schedulers=scheduler)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("name")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--die-after-step", type=int)
    args = parser.parse_args()
    model, optimizer, scheduler, loader = make_parts()
    if args.resume:
        run = epochal.resume(args.name, store=args.store)
        run.load_checkpoint("last", models=model, optimizers=optimizer, schedulers=scheduler)
    else:
        run = epochal.start(project="toy", name=args.name, store=args.store)
    with run:
        train(run, model, optimizer, scheduler, loader, args.epochs, args.die_after_step)


if __name__ == "__main__":
    main()
