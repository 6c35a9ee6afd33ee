"""The ``epochal`` command: list, show, export, import, plot and delete the runs of a store, or serve them.

Run ``epochal --help`` or ``epochal COMMAND --help`` (``python -m epochal.cli`` works too).
Every command reads the store given by ``--store DIR``, by default ``$EPOCHAL_DIR``, else
``./epochal-runs``; only ``import`` and ``demo`` create a store, and a command that reads one
that is not there says so. An error (a missing store, a damaged or refused file, a store locked
by another process for longer than the command waits) prints one line, ``epochal: <message>``,
on stderr and exits with status 2; a traceback means a bug in epochal.

Examples:
    $ epochal ls --project mnist
    $ epochal show baseline
    $ epochal export baseline -o baseline.csv
    $ epochal export baseline --format tensorboard -o tb/baseline
    $ epochal import tensorboard runs/ --project mnist
    $ epochal import ttv training_dynamic/ --method DVI --trust
    $ epochal plot baseline -o baseline.png
    $ epochal rm 3f2a9c --yes
    $ epochal ui --port 8765
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from epochal import __version__, settings
from epochal.errors import EpochalError, RunStateError, StoreNotFoundError
from epochal.interop.export import export_csv, export_json
from epochal.store.records import RUN_STATUSES, Checkpoint, KeySummary, RunRecord
from epochal.store.store import Store

#: How many metric columns ``epochal ls`` shows when ``--keys`` is not given.
LS_METRICS = 3
#: Seconds a command waits while another process writes to the store (``epochal rm --wait`` sets it).
BUSY_TIMEOUT_S = 10.0

_EXPORT_FORMATS = ("csv", "json", "tensorboard")
_IMPORT_FORMATS = ("tensorboard", "ttv")
_EXAMPLES = """\
examples:
  epochal ls --project mnist                 runs of one project, newest first
  epochal show baseline                      a run's record, config, summary and checkpoints
  epochal export baseline -o baseline.csv    every series, losslessly (or .json, or -o - for stdout)
  epochal export baseline -o tb/baseline     TensorBoard event files in a directory
  epochal import tensorboard runs/           every TensorBoard run under runs/, into the store
  epochal import ttv td/ --trust             a Time-Travelling Visualizer folder; runs its model.py
  epochal plot baseline -o baseline.png      one panel per metric
  epochal rm 3f2a9c --yes                    delete a run and its files
  epochal demo                               train a small demo run into the store
  epochal ui                                 the web dashboard on http://127.0.0.1:8765/
  epochal dynamics samples baseline          hard, ambiguous, forgotten and likely mislabeled samples
  epochal dynamics fit baseline              the 2D projection of every recorded epoch, with backgrounds
  epochal dynamics quality baseline          its NPR, trustworthiness, PPR and temporal correlations
  epochal dynamics plot baseline             a PNG per epoch and an animated GIF

A run is named by its id, an unambiguous id prefix, or its name (the newest run of that name).
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except EpochalError as exc:
        return _error(str(exc))
    except BrokenPipeError:  # the reader went away (`epochal export RUN -o - | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # the second file of a rename is the one the user named; the first, a temporary
        named = exc.filename2 or exc.filename
        return _error(f"{exc.strerror or exc}: '{named}'" if named else str(exc))
    except sqlite3.Error as exc:  # the store's database refused: locked too long, damaged, full
        return _error(_database_error(_location(args), exc))
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epochal",
        description="Look at the runs that epochal recorded: list, show, export, import, plot and delete them.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"epochal {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    # Each command is an `_add_<name>` that registers its parser and handler through `_command`.
    for add in (_add_ls, _add_show, _add_export, _add_import, _add_plot, _add_rm, _add_demo, _add_ui, _add_dynamics):
        add(commands)
    return parser


# -- commands --------------------------------------------------------------------------------------


def _add_ls(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "ls", _ls, "list runs with their last metric values",
        "List runs, newest first: id, name, project, status, start (local time), duration and the last\n"
        f"value of up to {LS_METRICS} main metrics. Without --keys the metrics are chosen among the listed\n"
        "runs' keys, valid/, val/ and test/ keys first, then train/ keys, losses and accuracies first.",
    )
    parser.add_argument("--project", metavar="P", help="only runs of project P")
    parser.add_argument(
        "--status", metavar="S", choices=RUN_STATUSES, help=f"only runs in status S: {', '.join(RUN_STATUSES)}"
    )
    parser.add_argument("--tag", metavar="T", help="only runs tagged T")
    parser.add_argument("--keys", metavar="KEY", nargs="+", help="show the last values of these keys instead")
    parser.add_argument("--limit", metavar="N", type=_positive_int, help="show at most the N newest runs")


def _ls(args: argparse.Namespace) -> int:
    location = _location(args)
    filters = ", ".join(f"{name}={value}" for name in ("project", "status", "tag") if (value := getattr(args, name)))
    with _open(location) as store:
        runs = store.runs(project=args.project, status=args.status, tag=args.tag)[: args.limit]
        summaries = [store.summary(run) for run in runs]
    if not runs:
        print(f"no runs in {location}" + (f" with {filters}" if filters else ""))
        return 0
    keys = args.keys or main_keys(summaries)
    header = ["id", "name", "project", "status", "start", "duration", *keys]
    rows = [
        [run.id, run.name, run.project, run.status, _when(run.started, seconds=False), _duration(run.duration),
         *(_number(summary[key].last) if key in summary else "-" for key in keys)]
        for run, summary in zip(runs, summaries)
    ]
    print(_table(header, rows, right=set(range(5, len(header)))))
    return 0


def _add_show(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "show", _show, "show a run's record, config, summary and checkpoints",
        "Show everything the store knows about one run: its record (status, times, host, command,\n"
        "git commit, versions, tags), its config as YAML, per key the count, last, min, max and best\n"
        "value, and its checkpoints.",
    )
    parser.add_argument("run", metavar="RUN", type=_run_ref, help="run id, id prefix or name")


def _show(args: argparse.Namespace) -> int:
    with _open(_location(args)) as store:
        record = store.run(args.run)
        summary = store.summary(record)
        checkpoints = store.checkpoints(record)
    print(_record_fields(record))
    config = record.config.to_dict()
    print("\nconfig:" + (" (none)" if not config else ""))
    if config:
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)
        print("\n".join("  " + line for line in text.splitlines()))
    print("\nsummary:" + (" (no values logged)" if not summary else ""))
    if summary:
        print(_indent(_summary_table(summary.values())))
    print("\ncheckpoints:" + (" (none)" if not checkpoints else ""))
    if checkpoints:
        print(_indent(_checkpoint_table(checkpoints)))
    return 0


def _add_export(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "export", _export, "write a run's series to CSV, JSON or TensorBoard event files",
        "Write every series of a run, every point, as CSV (long format: key,step,epoch,value,time)\n"
        "or JSON (the run's record and, per key, its steps, epochs, values and times). Floats are\n"
        "written so that they read back bit for bit; in JSON, NaN and infinities are the strings\n"
        '"nan", "inf" and "-inf".\n'
        "With --format tensorboard, PATH is a directory (created if missing) that gets one event\n"
        "file: each point as a scalar at its step and wall time, its value as float32 (TensorBoard's\n"
        "precision); epochs are not written.",
    )
    parser.add_argument("run", metavar="RUN", type=_run_ref, help="run id, id prefix or name")
    parser.add_argument(
        "-o", "--output", metavar="PATH", required=True,
        help="the file to write, - for stdout, or the directory for TensorBoard event files",
    )
    parser.add_argument(
        "--format", choices=_EXPORT_FORMATS,
        help="csv, json or tensorboard (default: from the extension of PATH; tensorboard when PATH is an "
        "existing directory or has no extension)",
    )
    parser.add_argument("--keys", metavar="KEY", nargs="+", help="only these keys (default: all)")
    parser.add_argument(
        "--include-superseded", action="store_true",
        help="also write points that a resumed run logged again at the same steps (by default the newest win)",
    )


def _export(args: argparse.Namespace) -> int:
    to_stdout = args.output == "-"
    fmt = args.format or (None if to_stdout else _export_format(Path(args.output)))
    if fmt not in _EXPORT_FORMATS:
        where = "stdout" if to_stdout else f"{args.output!r} from its extension"
        return _error(f"cannot tell the format of {where}; give --format csv, json or tensorboard")
    if fmt == "tensorboard" and to_stdout:
        return _error("TensorBoard event files go into a directory, not to stdout; give -o DIR")
    if fmt == "tensorboard":
        from epochal.interop.tensorboard import export_tensorboard as write
    else:
        write = export_csv if fmt == "csv" else export_json
    with _open(_location(args)) as store:
        record = store.run(args.run)
        if to_stdout:
            write(store, record, sys.stdout, keys=args.keys, superseded=args.include_superseded)
            sys.stdout.flush()
            return 0
        if problem := _unwritable(args.output):
            return _error(problem)
        points = write(store, record, args.output, keys=args.keys, superseded=args.include_superseded)
    print(f"wrote {points} points of run {record.name} ({record.id}) to {args.output}")
    return 0


def _export_format(path: Path) -> str:
    """The export format a path asks for: a directory, or a name without extension, means tensorboard."""
    return "tensorboard" if path.is_dir() or not path.suffix else path.suffix[1:].lower()


def _add_import(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "import", _import, "read TensorBoard runs or a Time-Travelling Visualizer folder into the store",
        "Read runs recorded by other tools into the store (created if missing).\n\n"
        "epochal import tensorboard LOGDIR: every directory at or below LOGDIR that holds event\n"
        "files (events.out.tfevents.*) becomes one finished run, named by its path below LOGDIR,\n"
        "with every scalar at its step and wall time and its value as stored. A damaged event file\n"
        "stops the import before anything is written.\n\n"
        "epochal import ttv FOLDER: a Time-Travelling Visualizer training_dynamic folder\n"
        "(Model/model.py, Model/Epoch_N/subject_model.pth, Training_data/, Testing_data/,\n"
        "sprites/, config.json) becomes one run (project ttv) with recorded training dynamics: for\n"
        "each epoch, the model's feature(x) and prediction(h) of every training and testing sample\n"
        "and each split's loss and accuracy; and the sprites, the class names and the visualization\n"
        "settings of the config.json section named by --method (needed when it has several).\n"
        "Missing parts are reported before the run is created. The import runs the folder's\n"
        "Model/model.py as Python and unpickles its weight and data files that hold more than\n"
        "tensors, so it needs --trust: without it nothing of the folder runs. Give --trust only for\n"
        "folders you trust.",
    )
    parser.add_argument("format", choices=_IMPORT_FORMATS, help="the kind of thing to read: tensorboard or ttv")
    parser.add_argument(
        "logdir", metavar="PATH", help="a TensorBoard log directory, such as runs/, or a TTV training_dynamic folder"
    )
    parser.add_argument(
        "--project", metavar="P", type=_project,
        help="the project of the imported runs (default: tensorboard, or ttv)",
    )
    parser.add_argument(
        "--method", metavar="NAME", help="ttv: the section of config.json to read (needed when it has several)"
    )
    parser.add_argument("--name", metavar="N", type=_run_name, help="ttv: the run's name (default: the folder's name)")
    parser.add_argument(
        "--device", metavar="D", help="ttv: where the model runs (default: cuda if there is one, else cpu)"
    )
    parser.add_argument(
        "--trust", action="store_true",
        help="ttv: run the folder's Model/model.py and unpickle its files (needed; only for folders you trust)",
    )


def _import(args: argparse.Namespace) -> int:
    from epochal.interop.tensorboard import import_tensorboard

    if args.format == "ttv":
        return _import_ttv(args)
    options = ("method", "name", "device", "trust")
    if given := [f"--{option}" for option in options if getattr(args, option) not in (None, False)]:
        return _error(f"{' and '.join(given)} only apply to `epochal import ttv`")
    location = _location(args)
    ids = import_tensorboard(location, args.logdir, project=args.project)  # reads it all before creating anything
    with Store(location) as store:
        records = [store.run(run_id) for run_id in ids]
        rows = [
            [r.id, r.name, r.project, str(sum(s.count for s in store.summary(r).values())), str(len(store.keys(r)))]
            for r in records
        ]
    print(f"imported {len(records)} run{'s' * (len(records) != 1)} from {args.logdir} into {location}")
    print(_table(["id", "name", "project", "points", "keys"], rows, right={3, 4}))
    return 0


def _import_ttv(args: argparse.Namespace) -> int:
    from epochal.dynamics.files import SAMPLES_FILE, arrays, dynamics_folder, recorded_epochs
    from epochal.interop.ttv import import_ttv  # imports torch, which the other imports do without

    def progress(epoch: int, done: int, total: int) -> None:
        print(f"  epoch {epoch} recorded ({done}/{total})", file=sys.stderr, flush=True)

    location = _location(args)
    run_id = import_ttv(args.logdir, location, method=args.method, name=args.name, project=args.project,
                        device=args.device, progress=progress, trust=args.trust,
                        notes=lambda line: print(line, flush=True))  # config.json's keys used and not, the head
    with Store(location) as store:
        record = store.run(run_id)
    folder = dynamics_folder(record.path)
    epochs = recorded_epochs(folder)
    with arrays(folder / SAMPLES_FILE) as samples:
        counts = Counter(samples["split"].tolist())
    print(f"imported {args.logdir} into {location} as run {record.name} ({record.id}), project {record.project}: "
          f"{len(epochs)} epochs ({epochs[0]}..{epochs[-1]}), {counts['train']:,} training and {counts['test']:,} "
          f"testing samples")
    print(f"dynamics in {folder}")
    return 0


def _add_plot(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "plot", _plot, "draw a run's series into an image",
        "Draw a run's series against the step, one panel per metric: the part of a key after its\n"
        "first '/' names its panel, so train/loss and valid/loss are drawn together. NaN and\n"
        "infinite values show as gaps. PNG, or another format matplotlib writes (svg, pdf, ...)\n"
        "by the extension of FILE.",
    )
    parser.add_argument("run", metavar="RUN", type=_run_ref, help="run id, id prefix or name")
    parser.add_argument("-o", "--output", metavar="FILE", required=True, help="the image to write, such as run.png")
    parser.add_argument("--keys", metavar="KEY", nargs="+", help="only these keys (default: all)")
    parser.add_argument(
        "--max-points", metavar="N", type=_positive_int, default=2000,
        help="draw about N points per key, keeping spikes and NaNs (default: 2000)",
    )


def _plot(args: argparse.Namespace) -> int:
    from epochal.plot import plot_run  # matplotlib takes a while to import; only this command needs it

    if problem := _unwritable(args.output):
        return _error(problem)
    with _open(_location(args)) as store:
        record = store.run(args.run)
        try:
            path = plot_run(store, record, args.output, keys=args.keys, max_points=args.max_points)
        except ValueError as exc:  # a format matplotlib cannot write
            return _error(str(exc))
    print(f"wrote {path}")
    return 0


def _add_rm(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "rm", _rm, "delete runs and their files",
        "Delete runs: their records, series and checkpoints, and each run's folder of files.\n"
        "Nothing is deleted without --yes, nor when one of the runs is still running.",
    )
    parser.add_argument("runs", metavar="RUN", nargs="+", type=_run_ref, help="run id, id prefix or name")
    parser.add_argument("--yes", action="store_true", help="really delete them")
    parser.add_argument(
        "--wait", metavar="S", type=_seconds, default=BUSY_TIMEOUT_S,
        help=f"seconds to wait while another process writes to the store (default: {BUSY_TIMEOUT_S:g})",
    )


def _rm(args: argparse.Namespace) -> int:
    with _open(_location(args), wait=args.wait) as store:
        records = list({record.id: record for record in map(store.run, args.runs)}.values())
        for record in records:
            if record.status == "running":
                raise RunStateError(
                    f"run {record.name!r} ({record.id}) is still running as pid {record.pid} on {record.host}; "
                    "nothing was deleted"
                )
        named = ", ".join(f"{record.name} ({record.id})" for record in records)
        if not args.yes:
            return _error(f"would delete {len(records)} run{'s' * (len(records) != 1)}: {named}; add --yes to delete")
        for record in records:
            store.delete(record)
            print(f"deleted {record.name} ({record.id})")
    return 0


def _add_demo(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "demo", _demo, "train a small CNN on the digits data, then report and plot it",
        "Train a small CNN on scikit-learn's digits data with the Trainer (progress bars, epoch\n"
        "tables, CSV tables, best and last checkpoints, early stopping, the training dynamics of the\n"
        "train and test images), test it, draw its curves into the run folder, fit, measure and draw\n"
        "the dynamics' 2D projection, and print where everything is, then `epochal ls`.",
    )
    parser.add_argument("--epochs", metavar="N", type=_positive_int, default=15, help="epochs to train (default: 15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the order (default: 0)")
    parser.add_argument("--no-dynamics", action="store_true",
                        help="do not record the training dynamics nor fit their 2D projection")


def _demo(args: argparse.Namespace) -> int:
    from epochal import demo  # imports torch, which the other commands do without

    return demo.main(["--store", _location(args), "--epochs", str(args.epochs), "--seed", str(args.seed),
                      *(["--no-dynamics"] if args.no_dynamics else [])])


def _add_ui(commands: argparse._SubParsersAction) -> None:
    parser = _command(
        commands, "ui", _ui, "serve the web dashboard",
        "Serve the dashboard over the store: runs table, run pages with charts, comparisons, live\n"
        "updates while runs train. It binds to 127.0.0.1 unless --host says otherwise; on any other\n"
        "address every API call needs a token (--token, or a new one printed in the URL). Changes\n"
        "(tags, notes, deleting runs) need the token or a request from the dashboard's own page.\n"
        "The JSON API and its OpenAPI schema are under /api (/api/docs).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8765, help="port to bind (default: 8765; 0 picks a free one)"
    )
    parser.add_argument("--token", metavar="T", help="the access token every API call must carry")
    parser.add_argument("--read-only", action="store_true", help="refuse every change (tags, notes, deletes)")


def _ui(args: argparse.Namespace) -> int:
    from epochal.server.serve import serve  # FastAPI and uvicorn load only for this command

    if args.token is not None and len(args.token) < 8:
        return _error(f"a --token needs at least 8 characters, got {len(args.token)}")
    with _open(_location(args)) as store:
        serve(store, host=args.host, port=args.port, token=args.token, read_only=args.read_only)
    return 0


def _add_dynamics(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dynamics", help="training dynamics recorded with RecordDynamics",
        description="Training dynamics: what a run's recorded epochs say about each sample.",
    )
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    samples = _command(
        actions, "samples", _dynamics_samples, "the samples that matter",
        "From each recorded epoch's predictions: how many samples are easy, ambiguous or hard to\n"
        "learn (mean confidence in the given label against its variability across epochs), how many\n"
        "were forgotten (right at one recorded epoch, wrong at the next), and the hard-to-learn ones,\n"
        "least confident first: the likely mislabeled samples.",
    )
    samples.add_argument("run", metavar="RUN", type=_run_ref, help="run id, id prefix or name")
    samples.add_argument("--top", metavar="N", type=_positive_int, default=20,
                         help="list this many likely mislabeled samples (default: 20)")

    fit = _command(
        actions, "fit", _dynamics_fit, "fit the 2D projection of every recorded epoch",
        "Lays out every recorded epoch in 2D at once (t-SNE's loss over each epoch's fuzzy k-NN graph,\n"
        "with temporal edges that keep a sample in place while its representation stays), trains an\n"
        "encoder to that layout and a decoder back, and writes each epoch's coordinates and background\n"
        "image into the run's folder (dynamics/projection/). Settings come from --set, then the run's\n"
        "dynamics/fit.json (from `epochal import ttv`), then the defaults:\n"
        + "".join(f"  {name} = {value}\n" for name, value in _projection_defaults()),
    )
    fit.add_argument("run", metavar="RUN", type=_run_ref, help="run id, id prefix or name")
    fit.add_argument("--set", metavar="NAME=VALUE", action="append", default=[], type=_setting,
                     help="a projection setting, e.g. --set n_neighbors=30 (repeatable)")
    fit.add_argument("--seed", type=int, default=0, help="random state of the fit (default: 0)")
    fit.add_argument("--device", metavar="DEVICE", help="torch device for the networks (default: cuda if available)")
    fit.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    quality = _command(
        actions, "quality", _dynamics_quality, "measure the fitted projection",
        "Per epoch, for train and test samples apart: NPR@k (the share of each sample's k nearest\n"
        "neighbours in the representation kept among its k nearest in 2D), trustworthiness, and PPR\n"
        "(the share of samples whose decoded 2D point the model classifies as it did the sample). Per\n"
        "pair of consecutive epochs: the Spearman correlation between each sample's movement in the\n"
        "representation and in 2D, and between its neighbourhood change and its 2D movement. With 4\n"
        "epochs or more, per sample over its epochs: the Spearman correlation of its moves in the\n"
        "representation and in 2D, averaged over samples. Written to dynamics/projection/quality.json\n"
        "and printed.",
    )
    quality.add_argument("run", metavar="RUN", type=_run_ref, help="run id, id prefix or name")
    quality.add_argument("-k", type=_positive_int, default=15, help="neighbours for NPR and trustworthiness (default: 15)")

    plot = _command(
        actions, "plot", _dynamics_plot, "PNG pictures and an animated GIF of the projection",
        "One PNG per epoch (the background with the samples on top, coloured by label; rings are test\n"
        "samples, a black edge marks a wrong prediction) and dynamics.gif over the epochs.",
    )
    plot.add_argument("run", metavar="RUN", type=_run_ref, help="run id, id prefix or name")
    plot.add_argument("--epoch", metavar="N", type=int, action="append", help="only this epoch (repeatable)")
    plot.add_argument("-o", "--out", metavar="DIR", help="where to write (default: the run's dynamics/projection/)")
    plot.add_argument("--no-gif", action="store_true", help="no animated GIF")


def _dynamics_samples(args: argparse.Namespace) -> int:
    from epochal.dynamics.record import FOLDER
    from epochal.dynamics.samples import sample_stats

    with _open(_location(args)) as store:
        record = store.run(args.run)
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
    top = stats.likely_mislabeled(args.top)
    if not len(top):
        print("no hard-to-learn samples: nothing looks mislabeled")
        return 0
    usual = stats.usual_prediction()
    header = ["split", "index", "label", "predicted", "confidence", "variability", "forgotten", "history"]
    rows = [
        [str(stats.split[i]), str(stats.indices[i]), str(stats.labels[i]), str(usual[i]), f"{stats.confidence[i]:.3f}",
         f"{stats.variability[i]:.3f}", str(stats.forgetting[i]), "".join(_mark(p, stats.labels[i]) for p in stats.predictions[:, i])]
        for i in top
    ]
    print("\nlikely mislabeled (hard to learn, least confident in the given label first; history per recorded "
          "epoch: + right, else the class predicted):")
    print(_table(header, rows, right={1, 2, 3, 4, 5, 6}))
    return 0


def _dynamics_fit(args: argparse.Namespace) -> int:
    from epochal.dynamics.fitting import fit

    with _open(_location(args)) as store:
        record = store.run(args.run)

    def progress(stage: str, fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"{fraction:6.1%}  {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    projection = fit(record, random_state=args.seed, device=args.device, progress=progress, **dict(args.set))
    print(f"fitted {len(projection.epochs_)} epochs of {projection.embedding_.shape[1]:,} samples in "
          f"{time.perf_counter() - started:.1f} s; files in {Path(record.path) / 'dynamics' / 'projection'}")
    return 0


def _dynamics_quality(args: argparse.Namespace) -> int:
    from epochal.dynamics.scoring import evaluate

    with _open(_location(args)) as store:
        record = store.run(args.run)
    report = evaluate(record, k=args.k)
    splits = list(report["mean"])
    header = ["epoch"] + [f"{m} {s}" for s in splits for m in ("NPR", "trust", "PPR")]
    rows = []
    for epoch, per_split in report["epochs"].items():
        rows.append([epoch] + [_number(per_split[s].get(m), 3) for s in splits for m in ("npr", "trustworthiness", "ppr")])
    print(f"run {record.name} ({record.id}), k = {args.k}")
    print(_table(header, rows, right=set(range(len(header)))))
    if report["temporal"]:
        header = ["epochs"] + [f"{m} {s}" for s in splits for m in ("movement", "neighbourhood")]
        rows = [[pair] + [_number(per_split[s][m], 3) for s in splits for m in ("movement", "neighbourhood")]
                for pair, per_split in report["temporal"].items()]
        print("\ntemporal (Spearman correlation with the 2D movement)")
        print(_table(header, rows, right=set(range(len(header)))))
    if "trajectory" in report:
        print("per sample over its epochs (Spearman correlation of its moves in the representation and in 2D): "
              + ", ".join(f"{s} {_number(v, 3)}" for s, v in report["trajectory"].items()))
    means = report["mean"]
    print("\nmean " + "; ".join(f"{s}: " + ", ".join(f"{m} {_number(v, 3)}" for m, v in means[s].items()) for s in splits))
    return 0


def _dynamics_plot(args: argparse.Namespace) -> int:
    from epochal.dynamics.pictures import plot

    with _open(_location(args)) as store:
        record = store.run(args.run)
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


# -- shared pieces ---------------------------------------------------------------------------------


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store", metavar="DIR",
        help=f"the store's directory (default: ${settings.STORE_DIR_ENV}, else ./{settings.DEFAULT_STORE_DIR})",
    )
    parser.set_defaults(handler=handler)
    return parser


def _location(args: argparse.Namespace) -> str:
    return str(getattr(args, "store", None) or settings.default_store_path())


def _open(location: str, *, wait: float = BUSY_TIMEOUT_S) -> Store:
    """The store at ``location``, waiting up to ``wait`` seconds for another process's write.

    No command that reads creates a store: a directory given by mistake stays as it was.
    """
    try:
        return Store(location, create=False, busy_timeout=wait)
    except StoreNotFoundError as exc:
        raise StoreNotFoundError(f"{exc}; give --store DIR or set {settings.STORE_DIR_ENV}") from None


def _database_error(location: str, exc: sqlite3.Error) -> str:
    if "locked" in str(exc) or "busy" in str(exc):
        return (f"the store in '{location}' is locked by another process ({exc}) for longer than this command "
                "waits; try again when it is done")
    return f"the store in '{location}' cannot be read or written: {type(exc).__name__}: {exc}"


def _error(message: str, *, status: int = 2) -> int:
    print(f"epochal: {' '.join(message.splitlines())}", file=sys.stderr)
    return status


def _unwritable(path: str) -> str | None:
    folder = Path(path).parent
    return None if folder.is_dir() else f"cannot write {path!r}: the folder '{folder}' does not exist"


def _run_ref(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a run is named by its id, an id prefix or its name, got ''")
    return text


def _run_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a run's name is a non-empty string, got ''")
    return text


def _project(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a project is a non-empty name, got ''")
    return text


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 3600, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def main_keys(summaries: Sequence[dict[str, KeySummary]], limit: int = LS_METRICS) -> list[str]:
    """The keys worth a column: valid/val/test before train before the rest; then losses, accuracies,
    the rest, spreads (``*_std``) last; then the keys most runs have; then by name."""
    counts = Counter(key for summary in summaries for key in summary)

    def rank(key: str) -> tuple:
        lower = key.lower()
        split = 0 if lower.startswith(("valid/", "val/", "test/")) else 1 if lower.startswith("train/") else 2
        kind = 3 if lower.endswith("_std") else 0 if "loss" in lower else 1 if "acc" in lower else 2
        return split, kind, -counts[key], key

    return sorted(counts, key=rank)[:limit]


def _record_fields(record: RunRecord) -> str:
    fields = [
        ("id", record.id),
        ("name", record.name),
        ("project", record.project),
        ("status", record.status),
        ("started", _when(record.started)),
        ("ended", "-" if record.ended is None else _when(record.ended)),
    ]
    if record.status in ("running", "crashed") and record.heartbeat is not None:
        fields.append(("last heartbeat", _when(record.heartbeat)))
    fields += [
        ("duration", _duration(record.duration)),
        ("host", record.host),
        ("pid", str(record.pid)),
        ("command", record.command),
        ("git commit", record.git_commit or "-"),
        ("python", record.python),
        ("torch", record.torch or "-"),
        ("tags", ", ".join(record.tags) or "-"),
        ("description", record.description or "-"),
        ("steps", str(record.steps)),
        ("epochs", str(record.epochs)),
    ]
    if record.segment:
        fields.append(("resumed", f"{record.segment} time{'s' * (record.segment != 1)}"))
    fields.append(("folder", record.path))
    width = max(len(name) for name, _ in fields) + 2
    return "\n".join(
        name.ljust(width) + value.replace("\n", "\n" + " " * width) for name, value in fields
    )


def _summary_table(summaries: Sequence[KeySummary]) -> str:
    rows = [
        [s.key, str(s.count), _number(s.last, 6), _number(s.min, 6), _number(s.max, 6),
         f"{_number(s.best, 6)} ({s.mode})"]
        for s in summaries
    ]
    return _table(["key", "count", "last", "min", "max", "best"], rows, right={1, 2, 3, 4, 5})


def _checkpoint_table(checkpoints: Sequence[Checkpoint]) -> str:
    rows = [
        [c.path, str(c.step), str(c.epoch),
         "-" if c.metric_key is None else f"{c.metric_key}={_number(c.metric_value, 6)}",
         _size(c.size), c.sha256[:12]]
        for c in checkpoints
    ]
    return _table(["file", "step", "epoch", "metric", "size", "sha256"], rows, right={1, 2, 4})


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] = frozenset()) -> str:
    """Columns two spaces apart, those in ``right`` aligned right."""
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(line, widths))
        ).rstrip()
        for line in (header, *rows)
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _when(timestamp: float, *, seconds: bool = True) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(timestamp))


def _duration(seconds: float) -> str:
    """1m05s, 2h03m, 3d04h: the two largest units."""
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _size(size: float) -> str:
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            break
    return f"{size:.1f} {unit}"


if __name__ == "__main__":
    raise SystemExit(main())
