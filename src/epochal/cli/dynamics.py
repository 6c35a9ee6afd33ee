"""``epochal dynamics``: what a run's recorded training dynamics say about each sample, and their 2D
projection (fit, measure, draw)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from epochal import display
from epochal.cli.common import command, error, named_run, positive_int
from epochal.store.records import RunRecord


def add_dynamics(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dynamics", help="training dynamics recorded with RecordDynamics",
        description="Training dynamics: what a run's recorded epochs say about each sample.",
    )
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    samples = command(actions, "samples", _dynamics_samples, "the samples that matter", run=True)
    samples.add_argument("--top", metavar="N", type=positive_int, default=20,
                         help="list this many likely mislabeled samples (default: 20)")

    fit = command(
        actions, "fit", _dynamics_fit, "fit the 2D projection of every recorded epoch",
        "Lays out every recorded epoch in 2D at once (t-SNE's loss over each epoch's fuzzy k-NN graph,\n"
        "with temporal edges that keep a sample in place while its representation stays), trains an\n"
        "encoder to that layout and a decoder back, and writes each epoch's coordinates and background\n"
        "image into the run's folder (dynamics/projection/). Settings come from --set, then the run's\n"
        "dynamics/fit.json (from `epochal import ttv`), then the defaults:\n"
        + "".join(f"  {name} = {value}\n" for name, value in _projection_defaults()),
        run=True,
    )
    fit.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], type=_setting,
                     help="a projection setting, e.g. --set n_neighbors=30 (repeatable)")
    fit.add_argument("--seed", type=int, default=0, help="random state of the fit (default: 0)")
    fit.add_argument("--device", metavar="DEVICE", help="torch device of the neighbour graphs, layout and networks (default: cuda if available)")
    fit.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    quality = command(actions, "quality", _dynamics_quality, "measure the fitted projection", run=True)
    quality.add_argument("-k", type=positive_int, default=15, help="neighbours for NPR and trustworthiness (default: 15)")

    plot = command(actions, "plot", _dynamics_plot, "PNG pictures and an animated GIF of the projection", run=True)
    plot.add_argument("--epoch", metavar="N", type=int, action="append", help="only this epoch (repeatable)")
    plot.add_argument("-o", "--out", metavar="DIR", help="where to write (default: the run's dynamics/projection/)")
    plot.add_argument("--no-gif", action="store_true", help="no animated GIF")


def _dynamics_samples(args: argparse.Namespace) -> int:
    """From each recorded epoch's predictions: how many samples are easy, ambiguous or hard to
    learn (mean confidence in the given label against its variability across epochs), how many
    were forgotten (right at one recorded epoch, wrong at the next), and the hard-to-learn ones,
    least confident first: the likely mislabeled samples.

    From the run's sample ledger (run.record_samples: every training sample at every presentation),
    the 10 samples with the highest mislabeled_score (lowest area under the margin) and their measures.
    """
    from epochal.dynamics.ledger_measures import has_ledger
    from epochal.dynamics.record import FOLDER, recorded_epochs

    record = named_run(args)
    folder = Path(record.path)
    dynamics, ledger = bool(recorded_epochs(folder / FOLDER)), has_ledger(folder)
    if not dynamics and not ledger:
        return error(f"run {record.name} ({record.id}): no recorded dynamics (RecordDynamics, run.record_dynamics) "
                     "and no sample ledger (run.record_samples)")
    if dynamics:
        _recorded_samples(record, args.top)
    if ledger:
        _ledger_samples(record, newline=dynamics)
    return 0


def _ledger_samples(record: RunRecord, *, newline: bool) -> None:
    from epochal.dynamics.ledger import FOLDER
    from epochal.dynamics.ledger_measures import ledger_stats

    stats = ledger_stats(Path(record.path) / FOLDER)
    epochs = stats.epochs.tolist()
    if newline:
        print()
    print(f"run {record.name} ({record.id}) sample ledger: {len(stats.sample):,} samples, "
          f"{int(stats.presentations.sum()):,} presentations over {len(epochs)} epochs ({epochs[0]}..{epochs[-1]}); "
          f"{int((stats.first_learned < 0).sum()):,} never learned, {int((stats.forgetting_events > 0).sum()):,} "
          "forgotten at least once")
    header = ["sample", "label", "aum", "forgetting", "first", "last", "confidence", "variability", "correctness",
              "mislabeled"]
    rows = [
        [str(stats.sample[i]), str(stats.label[i]), f"{stats.aum[i]:.3f}", str(stats.forgetting_events[i]),
         str(stats.first_learned[i]), str(stats.last_learned[i]), f"{stats.confidence[i]:.3f}",
         f"{stats.variability[i]:.3f}", f"{stats.correctness[i]:.3f}", f"{stats.mislabeled_score[i]:.2f}"]
        for i in stats.likely_mislabeled(10)
    ]
    print("highest mislabeled_score (lowest area under the margin; first/last: the epoch first learned and the "
          "one it stayed learned from, -1 for never):")
    print(display.table(header, rows, right=set(range(len(header)))))


def _recorded_samples(record: RunRecord, top: int) -> None:
    from epochal.dynamics.record import FOLDER
    from epochal.dynamics.samples import sample_stats

    stats = sample_stats(Path(record.path) / FOLDER)
    epochs = stats.epochs.tolist()
    print(f"run {record.name} ({record.id}): {len(stats.labels):,} samples over {len(epochs)} recorded epochs "
          f"({epochs[0]}..{epochs[-1]})")
    for split in ("train", "test"):
        mine = stats.split == split
        if not mine.any():
            continue
        kinds = Counter(stats.category[mine].tolist())
        right = (stats.predictions[-1] == stats.labels)[mine].mean()
        print(f"  {split:5s} {mine.sum():6,} samples: {kinds['easy']:,} easy, {kinds['ambiguous']:,} ambiguous, "
              f"{kinds['hard']:,} hard to learn; {int((stats.forgetting[mine] > 0).sum()):,} forgotten at least once; "
              f"{right:.1%} right at the last epoch")
    top = stats.likely_mislabeled(top)
    if not len(top):
        print("no hard-to-learn samples: nothing looks mislabeled")
        return
    usual = stats.usual_prediction()
    header = ["split", "index", "label", "predicted", "confidence", "variability", "forgotten", "history"]
    rows = [
        [str(stats.split[i]), str(stats.indices[i]), str(stats.labels[i]), str(usual[i]), f"{stats.confidence[i]:.3f}",
         f"{stats.variability[i]:.3f}", str(stats.forgetting[i]), "".join(_mark(p, stats.labels[i]) for p in stats.predictions[:, i])]
        for i in top
    ]
    print("\nlikely mislabeled (hard to learn, least confident in the given label first; history per recorded "
          "epoch: + right, else the class predicted):")
    print(display.table(header, rows, right={1, 2, 3, 4, 5, 6}))


def _dynamics_fit(args: argparse.Namespace) -> int:
    from epochal.dynamics.fitting import fit

    record = named_run(args)

    def progress(stage: str, fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"{fraction:6.1%}  {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    projection = fit(record, random_state=args.seed, device=args.device, progress=progress, **dict(args.set))
    print(f"fitted {len(projection.epochs_)} epochs of {projection.embedding_.shape[1]:,} samples in "
          f"{time.perf_counter() - started:.1f} s; files in {Path(record.path) / 'dynamics' / 'projection'}")
    return 0


def _dynamics_quality(args: argparse.Namespace) -> int:
    """Per epoch, for train and test samples apart: NPR@k (the share of each sample's k nearest
    neighbours in the representation kept among its k nearest in 2D), trustworthiness, and PPR
    (the share of samples whose decoded 2D point the model classifies as it did the sample). Per
    pair of consecutive epochs: the Spearman correlation between each sample's movement in the
    representation and in 2D, and between its neighbourhood change and its 2D movement. With 4
    epochs or more, per sample over its epochs: the Spearman correlation of its moves in the
    representation and in 2D, averaged over samples. Written to dynamics/projection/quality.json
    and printed.
    """
    from epochal.dynamics.scoring import evaluate

    record = named_run(args)
    report = evaluate(record, k=args.k)
    splits = list(report["mean"])
    header = ["epoch"] + [f"{m} {s}" for s in splits for m in ("NPR", "trust", "PPR")]
    rows = []
    for epoch, per_split in report["epochs"].items():
        rows.append([epoch] + [display.number(per_split[s].get(m), 3) for s in splits for m in ("npr", "trustworthiness", "ppr")])
    print(f"run {record.name} ({record.id}), k = {args.k}")
    print(display.table(header, rows, right=set(range(len(header)))))
    if report["temporal"]:
        header = ["epochs"] + [f"{m} {s}" for s in splits for m in ("movement", "neighbourhood")]
        rows = [[pair] + [display.number(per_split[s][m], 3) for s in splits for m in ("movement", "neighbourhood")]
                for pair, per_split in report["temporal"].items()]
        print("\ntemporal (Spearman correlation with the 2D movement)")
        print(display.table(header, rows, right=set(range(len(header)))))
    if "trajectory" in report:
        print("per sample over its epochs (Spearman correlation of its moves in the representation and in 2D): "
              + ", ".join(f"{s} {display.number(v, 3)}" for s, v in report["trajectory"].items()))
    means = report["mean"]
    print("\nmean " + "; ".join(f"{s}: " + ", ".join(f"{m} {display.number(v, 3)}" for m, v in means[s].items()) for s in splits))
    return 0


def _dynamics_plot(args: argparse.Namespace) -> int:
    """One PNG per epoch (the background with the samples on top, coloured by label; rings are test
    samples, a black edge marks a wrong prediction) and dynamics.gif over the epochs.
    """
    from epochal.dynamics.pictures import plot

    record = named_run(args)
    for path in plot(record, epochs=args.epoch, out=args.out, gif=not args.no_gif):
        print(path)
    return 0


def _projection_defaults() -> list[tuple[str, object]]:
    from dataclasses import fields

    from epochal.dynamics.projection import Params

    return [(f.name, f.default) for f in fields(Params)]


def _setting(text: str) -> tuple[str, object]:
    from dataclasses import fields

    from epochal.dynamics.projection import Params

    name, _, value = text.partition("=")
    known = {f.name: f.default for f in fields(Params)}
    if name not in known or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE with NAME one of: {', '.join(known)}")
    default = known[name]
    try:
        if isinstance(default, tuple):
            return name, tuple(int(v) for v in value.split(","))
        return name, type(default)(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} takes a {type(default).__name__}"
                                         f"{' list like 256,256' if isinstance(default, tuple) else ''}, got {value!r}") from None


def _mark(predicted: int, label: int) -> str:
    return "+" if predicted == label else str(int(predicted)) if predicted < 10 else "x"
