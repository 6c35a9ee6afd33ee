"""The demo: a small CNN learns scikit-learn's handwritten digits through ``epochal.Trainer``.

Run it with any of::

    epochal demo                                  # into the default store (./epochal-runs)
    make demo
    python -m epochal.demo --store runs --epochs 15 --seed 0

The data is ``sklearn.datasets.load_digits`` (1,797 grayscale 8x8 images of the digits 0-9,
shipped with scikit-learn: nothing is downloaded), split 70/15/15 into train, valid and test,
stratified by digit and seeded, and normalised with the training images' mean and standard
deviation. Adam's learning rate follows a cosine down to 0 over the epochs. The Trainer shows
progress bars and a table per epoch, writes CSV tables and the best and last checkpoints into
the run's folder, and stops early once ``valid/accuracy`` has not improved for 5 epochs. The
best weights are then tested (``test/accuracy``, 0.97-0.99 across seeds), the curves are drawn
into ``curves.png`` in the run's folder, and the demo prints where everything is, followed by
``epochal ls``. Training takes a few seconds on two CPU cores.

Every epoch, ``epochal.RecordDynamics`` keeps the train and test images' representations (the
input of the last Linear layer), predictions and thumbnails. After training the demo fits their
2D projection (``epochal dynamics fit``, under a minute), measures it (``epochal dynamics
quality``) and draws a PNG per epoch and ``dynamics.gif``; ``--no-dynamics`` leaves that out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import epochal
from epochal import checkpoint, display, settings
from epochal.plot import plot_run

DEFAULT_EPOCHS = 15
PATIENCE = 5  # epochs without a better valid/accuracy before the fit stops


def load_splits(seed: int) -> dict[str, TensorDataset]:
    """The digits as normalised ``(N, 1, 8, 8)`` images and labels: a stratified 70/15/15 split."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # a dependency of epochal; only a broken install lacks it
        raise ImportError("the demo needs scikit-learn: pip install epochal (or pip install scikit-learn)") from exc

    digits = load_digits()
    images, labels = digits.images.astype(np.float32), digits.target.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(
        images, labels, test_size=0.30, stratify=labels, random_state=seed
    )
    x_valid, x_test, y_valid, y_test = train_test_split(
        x_rest, y_rest, test_size=0.50, stratify=y_rest, random_state=seed
    )
    mean, std = float(x_train.mean()), float(x_train.std())

    def dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy((x - mean) / std).unsqueeze(1), torch.from_numpy(y))

    return {"train": dataset(x_train, y_train), "valid": dataset(x_valid, y_valid), "test": dataset(x_test, y_test)}


def make_model(channels: int = 16, hidden: int = 64, dropout: float = 0.25) -> torch.nn.Module:
    """Two 3x3 convolutions and a 2x2 max-pool (8x8 -> 4x4), then a two-layer classifier."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, channels, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(channels, 2 * channels, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(2 * channels * 4 * 4, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    )


def train(
    store: str | Path, epochs: int = DEFAULT_EPOCHS, seed: int = 0, dynamics: bool = True
) -> tuple[epochal.Trainer, float]:
    """Fit the demo model (recording its dynamics unless told not to), test its best weights; the trainer and the test accuracy."""
    config = {
        "data": {"name": "sklearn digits", "split": [0.70, 0.15, 0.15], "seed": seed},
        "model": {"name": "small cnn", "channels": 16, "hidden": 64, "dropout": 0.25},
        "optim": {"name": "adam", "lr": 3e-3, "schedule": "cosine over the epochs"},
        "batch_size": 32,
        "epochs": epochs,
        "early_stopping": {"monitor": "valid/accuracy", "patience": PATIENCE},
    }
    splits = load_splits(seed)
    torch.manual_seed(seed)
    model = make_model(**{k: v for k, v in config["model"].items() if k != "name"})
    optimizer = torch.optim.Adam(model.parameters(), lr=config["optim"]["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    shuffle = torch.Generator().manual_seed(seed)
    trainer = epochal.Trainer(
        model, optimizer, loss_fn=torch.nn.CrossEntropyLoss(),
        train_data=DataLoader(splits["train"], batch_size=config["batch_size"], shuffle=True, generator=shuffle),
        valid_data=DataLoader(splits["valid"], batch_size=256),
        test_data=DataLoader(splits["test"], batch_size=256),
        metrics=["accuracy"], max_epochs=epochs, scheduler=scheduler, device="cpu",
        callbacks=[
            epochal.EarlyStopping("valid/accuracy", mode="max", patience=PATIENCE),
            *([_record_dynamics(splits)] if dynamics else []),
        ],
        monitor="valid/accuracy", mode="max",
        project="demo", config=config, tags=["demo", "digits", "cnn"], store=store,
    )
    trainer.fit()
    best = _best_weights(trainer)
    if best is not None:
        checkpoint.load(Path(trainer.run.path) / best.path, models={"model": model}, restore_rng=False)
        print(f"\ntesting the best weights: epoch {best.epoch}, {best.metric_key} {best.metric_value:.4f}")
    result = trainer.test()
    return trainer, result.metrics["accuracy"]


def _record_dynamics(splits: dict[str, TensorDataset]) -> epochal.RecordDynamics:
    """Every epoch, the train and test images' representations, predictions and 8x8 thumbnails."""
    return epochal.RecordDynamics({name: tuple(splits[name].tensors) for name in ("train", "test")})


def fit_dynamics(trainer: epochal.Trainer, seed: int) -> list[Path]:
    """Fit, measure and draw the run's recorded dynamics; the pictures' paths."""
    from epochal import dynamics

    started = time.perf_counter()
    print(f"\nfitting the 2D projection of {trainer.run.epochs} recorded epochs (epochal dynamics fit)")
    dynamics.fit(trainer.run, random_state=seed)
    quality = dynamics.evaluate(trainer.run)["mean"]
    pictures = dynamics.plot(trainer.run)
    print(f"fitted and measured in {time.perf_counter() - started:.1f} s; mean over the epochs: "
          + "; ".join(f"{split} NPR@15 {m['npr']:.3f}, PPR {m['ppr']:.3f}" for split, m in quality.items()))
    return pictures


def _best_weights(trainer: epochal.Trainer) -> epochal.Checkpoint | None:
    """The checkpoint of the best weights by valid/accuracy (the earliest of equals); None if none was saved."""
    saved = trainer.run.store.checkpoints(trainer.run.id)
    scored = [c for c in saved if c.kind == "weights" and c.metric_value is not None]
    return max(scored, key=lambda c: (c.metric_value, -c.epoch), default=None)


def report(
    store: str | Path, trainer: epochal.Trainer, accuracy: float, seconds: float, pictures: list[Path] | None = None
) -> Path:
    """Draw the curves and print where everything is; the chart's path."""
    run = trainer.run
    folder = Path(run.path)
    with epochal.Store(store) as opened:
        chart = plot_run(opened, run.id, folder / "curves.png")
        checkpoints = opened.checkpoints(run.id)
    print(f"\ntest accuracy {accuracy:.4f} after {run.epochs} epochs ({run.steps} steps); data, training and "
          f"test took {seconds:.1f} s\n")
    print(f"run          {run.name} ({run.id}), project demo")
    print(f"store        {store}")
    print(f"run folder   {folder}")
    for ckpt in checkpoints:
        what = "best weights" if ckpt.kind == "weights" else "last (resumable)"
        metric = "" if ckpt.metric_value is None else f", {ckpt.metric_key} {ckpt.metric_value:.4f}"
        print(f"checkpoint   {folder / ckpt.path}  ({what}, epoch {ckpt.epoch}{metric})")
    print(f"CSV tables   {folder / 'tables'}")
    print(f"chart        {chart}")
    if pictures:
        print(f"dynamics     {pictures[-1]}  (and a PNG per epoch beside it)")
        print(f"dashboard    epochal ui --store {store}   (then open http://127.0.0.1:8765/#/run/{run.id}, "
              f"and #/run/{run.id}/dynamics)")
    else:
        print(f"dashboard    epochal ui --store {store}   (then open http://127.0.0.1:8765/#/run/{run.id})")
    return chart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epochal demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=str(settings.default_store_path()), help="store directory")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"most epochs to train; early stopping may end sooner (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the order (default 0)")
    parser.add_argument("--no-dynamics", action="store_true",
                        help="do not record the training dynamics nor fit their 2D projection")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    began = time.perf_counter()
    trainer, accuracy = train(args.store, args.epochs, args.seed, dynamics=not args.no_dynamics)
    seconds = time.perf_counter() - began
    pictures = None if args.no_dynamics else fit_dynamics(trainer, args.seed)
    report(args.store, trainer, accuracy, seconds, pictures)
    print("\n$ epochal ls")
    with epochal.Store(args.store) as store:
        runs = store.runs()
        print(display.runs_table(runs, [store.summary(run) for run in runs]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
