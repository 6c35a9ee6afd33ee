"""``epochal demo``: train the small demo CNN into the store, then report and plot it."""

from __future__ import annotations

import argparse

from epochal.cli.common import command, location, positive_int


def add_demo(commands: argparse._SubParsersAction) -> None:
    parser = command(commands, "demo", _demo, "train a small CNN on the digits data, then report and plot it")
    parser.add_argument("--epochs", metavar="N", type=positive_int, default=15, help="epochs to train (default: 15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the order (default: 0)")
    parser.add_argument("--no-dynamics", action="store_true",
                        help="do not record the training dynamics nor fit their 2D projection")


def _demo(args: argparse.Namespace) -> int:
    """Train a small CNN on scikit-learn's digits data with the Trainer (progress bars, epoch
    tables, CSV tables, best and last checkpoints, early stopping, the training dynamics of the
    train and test images), test it, draw its curves into the run folder, fit, measure and draw
    the dynamics' 2D projection, and print where everything is, then `epochal ls`.
    """
    from epochal import demo  # imports torch, which the other commands do without

    return demo.main(["--store", location(args), "--epochs", str(args.epochs), "--seed", str(args.seed),
                      *(["--no-dynamics"] if args.no_dynamics else [])])
