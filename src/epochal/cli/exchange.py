"""``epochal export`` and ``epochal import``: a run's series out to CSV, JSON or TensorBoard, and runs
of TensorBoard or a Time-Travelling Visualizer folder into the store."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from pathlib import Path

from epochal import display
from epochal.cli.common import command, error, location, open_store, project, run_name, unwritable
from epochal.errors import EpochalWarning
from epochal.interop.export import export_csv, export_json
from epochal.store.store import Store

_EXPORT_FORMATS = ("csv", "json", "parquet", "tensorboard")
_IMPORT_FORMATS = ("tensorboard", "ttv")


def add_export(commands: argparse._SubParsersAction) -> None:
    parser = command(
        commands, "export", _export, "write a run's series to CSV, JSON, Parquet or TensorBoard event files",
        run=True,
    )
    parser.add_argument(
        "-o", "--output", metavar="PATH", required=True,
        help="the file to write, - for stdout, or the directory for TensorBoard event files",
    )
    parser.add_argument(
        "--format", choices=_EXPORT_FORMATS,
        help="csv, json, parquet or tensorboard (default: from the extension of PATH; tensorboard when PATH is an "
        "existing directory or has no extension)",
    )
    parser.add_argument("--keys", metavar="KEY", nargs="+", help="only these keys (default: all)")
    parser.add_argument(
        "--include-superseded", action="store_true",
        help="also write points that a resumed run logged again at the same steps (by default the newest win)",
    )


def _export(args: argparse.Namespace) -> int:
    """Write every series of a run, every point, as CSV (long format: key,step,epoch,value,time)
    or JSON (the run's record and, per key, its steps, epochs, values and times). Floats are
    written so that they read back bit for bit; in JSON, NaN and infinities are the strings
    "nan", "inf" and "-inf".
    Parquet (needs pyarrow: pip install 'epochal[parquet]') holds the CSV's columns typed, bit for bit,
    with the run's record in the file's metadata.
    With --format tensorboard, PATH is a directory (created if missing) that gets one event
    file: each point as a scalar at its step and wall time, its value as float32 (TensorBoard's
    precision); epochs are not written.
    """
    to_stdout = args.output == "-"
    fmt = args.format or (None if to_stdout else _export_format(Path(args.output)))
    if fmt not in _EXPORT_FORMATS:
        where = "stdout" if to_stdout else f"{args.output!r} from its extension"
        return error(f"cannot tell the format of {where}; give --format csv, json, parquet or tensorboard")
    if fmt == "tensorboard" and to_stdout:
        return error("TensorBoard event files go into a directory, not to stdout; give -o DIR")
    if fmt == "parquet" and to_stdout:
        return error("a Parquet file is binary and goes to a file, not to stdout; give -o FILE.parquet")
    if fmt == "tensorboard":
        from epochal.interop.tensorboard import export_tensorboard as write
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401  (asked for here, so the error comes before the store is opened)
        except ImportError:
            return error("Parquet export needs pyarrow: pip install 'epochal[parquet]'")
        from epochal.interop.parquet import export_parquet as write
    else:
        write = export_csv if fmt == "csv" else export_json
    with open_store(location(args)) as store:
        record = store.run(args.run)
        if to_stdout:
            write(store, record, sys.stdout, keys=args.keys, superseded=args.include_superseded)
            sys.stdout.flush()
            return 0
        if problem := unwritable(args.output):
            return error(problem)
        points = write(store, record, args.output, keys=args.keys, superseded=args.include_superseded)
    print(f"wrote {points} points of run {record.name} ({record.id}) to {args.output}")
    return 0


def _export_format(path: Path) -> str:
    """The export format a path asks for: a directory, or a name without extension, means tensorboard."""
    return "tensorboard" if path.is_dir() or not path.suffix else path.suffix[1:].lower()


def add_import(commands: argparse._SubParsersAction) -> None:
    parser = command(
        commands, "import", _import, "read TensorBoard runs or a Time-Travelling Visualizer folder into the store",
    )
    parser.add_argument("format", choices=_IMPORT_FORMATS, help="the kind of thing to read: tensorboard or ttv")
    parser.add_argument(
        "logdir", metavar="PATH", help="a TensorBoard log directory, such as runs/, or a TTV training_dynamic folder"
    )
    parser.add_argument(
        "--project", metavar="P", type=project,
        help="the project of the imported runs (default: tensorboard, or ttv)",
    )
    parser.add_argument(
        "--method", metavar="NAME", help="ttv: the section of config.json to read (needed when it has several)"
    )
    parser.add_argument("--name", metavar="N", type=run_name, help="ttv: the run's name (default: the folder's name)")
    parser.add_argument(
        "--device", metavar="D", help="ttv: where the model runs (default: cuda if there is one, else cpu)"
    )
    parser.add_argument(
        "--trust", action="store_true",
        help="ttv: run the folder's Model/model.py and unpickle its files (needed; only for folders you trust)",
    )


def _import(args: argparse.Namespace) -> int:
    """Read runs recorded by other tools into the store (created if missing).

    epochal import tensorboard LOGDIR: every directory at or below LOGDIR that holds event
    files (events.out.tfevents.*) becomes one finished run, named by its path below LOGDIR,
    with every scalar at its step and wall time and its value as stored; its start and end are
    its first and last event's wall times. Hyperparameters go into the run's config: from
    Lightning's hparams.yaml beside the event files (nested and typed as written), else from
    the hparams plugin data in them. The subdirectory that SummaryWriter.add_hparams writes is
    read into its writer's run (unless the writer made several: then each is a run). A scalar
    named epoch (Lightning logs one) gives the other points their epoch and is not a key of its
    own; Lightning's hp_metric placeholder (-1 at step 0) is left out. A hparams.yaml or plugin
    data that cannot be read is named in a warning and the scalars are imported without it. A
    damaged event file stops the import before anything is written.

    epochal import ttv FOLDER: a Time-Travelling Visualizer training_dynamic folder
    (Model/model.py, Model/Epoch_N/subject_model.pth, Training_data/, Testing_data/,
    sprites/, config.json) becomes one run (project ttv) with recorded training dynamics: for
    each epoch, the model's feature(x) and prediction(h) of every training and testing sample
    and each split's loss and accuracy; and the sprites, the class names and the visualization
    settings of the config.json section named by --method (needed when it has several).
    Missing parts are reported before the run is created. The import runs the folder's
    Model/model.py as Python and unpickles its weight and data files that hold more than
    tensors, so it needs --trust: without it nothing of the folder runs. Give --trust only for
    folders you trust.
    """
    from epochal.interop.tensorboard import import_tensorboard

    if args.format == "ttv":
        return _import_ttv(args)
    options = ("method", "name", "device", "trust")
    if given := [f"--{option}" for option in options if getattr(args, option) not in (None, False)]:
        return error(f"{' and '.join(given)} only apply to `epochal import ttv`")
    where = location(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EpochalWarning)
        ids = import_tensorboard(where, args.logdir, project=args.project)  # reads it all before creating anything
    for warning in caught:  # a hyperparameter file left out: one line each
        if issubclass(warning.category, EpochalWarning):
            print(f"epochal: warning: {' '.join(str(warning.message).splitlines())}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    with Store(where) as store:
        records = [store.run(run_id) for run_id in ids]
        rows = [
            [r.id, r.name, r.project, str(sum(s.count for s in store.summary(r).values())), str(len(store.keys(r)))]
            for r in records
        ]
    print(f"imported {len(records)} run{'s' * (len(records) != 1)} from {args.logdir} into {where}")
    print(display.table(["id", "name", "project", "points", "keys"], rows, right={3, 4}))
    return 0


def _import_ttv(args: argparse.Namespace) -> int:
    from epochal.dynamics.files import SAMPLES_FILE, arrays, dynamics_folder, recorded_epochs
    from epochal.interop.ttv import import_ttv  # imports torch, which the other imports do without

    def progress(epoch: int, done: int, total: int) -> None:
        print(f"  epoch {epoch} recorded ({done}/{total})", file=sys.stderr, flush=True)

    where = location(args)
    run_id = import_ttv(args.logdir, where, method=args.method, name=args.name, project=args.project,
                        device=args.device, progress=progress, trust=args.trust,
                        notes=lambda line: print(line, flush=True))  # config.json's keys used and not, the head
    with Store(where) as store:
        record = store.run(run_id)
    folder = dynamics_folder(record.path)
    epochs = recorded_epochs(folder)
    with arrays(folder / SAMPLES_FILE) as samples:
        counts = Counter(samples["split"].tolist())
    print(f"imported {args.logdir} into {where} as run {record.name} ({record.id}), project {record.project}: "
          f"{len(epochs)} epochs ({epochs[0]}..{epochs[-1]}), {counts['train']:,} training and {counts['test']:,} "
          f"testing samples")
    print(f"dynamics in {folder}")
    return 0
