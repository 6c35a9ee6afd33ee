"""``epochal plot``: draw a run's series into an image, one panel per metric."""

from __future__ import annotations

import argparse

from epochal.cli.common import command, error, location, open_store, positive_int, unwritable


def add_plot(commands: argparse._SubParsersAction) -> None:
    parser = command(commands, "plot", _plot, "draw a run's series into an image", run=True)
    parser.add_argument("-o", "--output", metavar="FILE", required=True, help="the image to write, such as run.png")
    parser.add_argument("--keys", metavar="KEY", nargs="+", help="only these keys (default: all)")
    parser.add_argument(
        "--max-points", metavar="N", type=positive_int, default=2000,
        help="draw about N points per key, keeping spikes and NaNs (default: 2000)",
    )


def _plot(args: argparse.Namespace) -> int:
    """Draw a run's series against the step, one panel per metric: the part of a key after its
    first '/' names its panel, so train/loss and valid/loss are drawn together. NaN and
    infinite values show as gaps. PNG, or another format matplotlib writes (svg, pdf, ...)
    by the extension of FILE.
    """
    from epochal.plot import plot_run  # matplotlib takes a while to import; only this command needs it

    if problem := unwritable(args.output):
        return error(problem)
    with open_store(location(args)) as store:
        record = store.run(args.run)
        try:
            path = plot_run(store, record, args.output, keys=args.keys, max_points=args.max_points)
        except ValueError as exc:  # a format matplotlib cannot write
            return error(str(exc))
    print(f"wrote {path}")
    return 0
