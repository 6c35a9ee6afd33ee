"""A short demo: train a small classifier, record it with epochal, list and plot the runs.

    python -m epochal.demo [--store DIR] [--epochs N]

It trains a two-layer network on a synthetic two-moons-like data set, logs the
loss and accuracy per step and per epoch, keeps checkpoints, then prints
``epochal ls`` and ``epochal show`` and writes a PNG chart of the run.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

import epochal
from epochal import cli, settings


def _data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    angle = torch.rand(n, generator=generator) * math.pi
    label = torch.randint(0, 2, (n,), generator=generator)
    x = torch.stack([torch.cos(angle) + label, torch.sin(angle) * (1 - 2 * label) + 0.5 * label], dim=1)
    return x + 0.15 * torch.randn(n, 2, generator=generator), label


def train(store: str | Path, epochs: int = 8, seed: int = 0) -> epochal.Run:
    """Train the demo model for ``epochs`` epochs and return the finished run."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = _data(2048, generator)
    x_valid, y_valid = _data(512, generator)
    config = {"model": {"hidden": 32}, "optim": {"name": "adam", "lr": 0.01}, "batch_size": 64, "epochs": epochs}
    model = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["optim"]["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    with epochal.start(project="demo", config=config, tags=["toy", "moons"], store=store) as run:
        for _ in range(epochs):
            order = torch.randperm(len(x_train))
            for batch in order.split(config["batch_size"]):
                logits = model(x_train[batch])
                loss = loss_fn(logits, y_train[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                acc = (logits.argmax(1) == y_train[batch]).float().mean()
                run.log({"train/loss": loss, "train/acc": acc})
                run.step()
            with torch.no_grad():
                logits = model(x_valid)
                valid = {"valid/loss": loss_fn(logits, y_valid), "valid/acc": (logits.argmax(1) == y_valid).float().mean()}
            run.log(valid)
            run.epoch()
            run.save_checkpoint(models=model, optimizers=optimizer, metric=("valid/acc", valid["valid/acc"]))
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epochal demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=str(settings.default_store_path()), help="store directory")
    parser.add_argument("--epochs", type=int, default=8, help="epochs to train (default 8)")
    args = parser.parse_args(argv)
    run = train(args.store, args.epochs)
    print(f"trained run {run.name!r} ({run.id}) in the store '{args.store}'\n")
    print("$ epochal ls")
    cli.main(["ls", "--store", args.store])
    print(f"\n$ epochal show {run.name}")
    cli.main(["show", run.name, "--store", args.store])
    chart = Path(args.store) / f"{run.name}.png"
    cli.main(["plot", run.name, "--store", args.store, "-o", str(chart)])
    print(f"\nchart of the run: {chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
