"""TensorBoard event files in and out: export a run's series, import a log directory's runs.

From the shell::

    epochal export baseline --format tensorboard -o tb/baseline   # then: tensorboard --logdir tb
    epochal import tensorboard runs/ --project mnist             # every run under runs/, into the store

**Export** writes one event file (``events.out.tfevents.<start>.<host>.epochal-<run id>``) into a
directory, with every point of every key as a scalar at its step and wall time, written through
TensorBoard's own record writer. TensorBoard stores scalars as float32 (``simple_value``, what
``SummaryWriter.add_scalar`` writes), so values are rounded to float32 (numbers beyond its range
become infinities); NaN and infinities are kept. TensorBoard has no epochs, so they are not
written. The file is written under a temporary name and renamed into place; a directory that
already holds other event files is refused, since TensorBoard would merge them into one run.

**Import** reads a TensorBoard log directory as the template tools leave it (``runs/`` with one
subdirectory per run), as Lightning's ``TensorBoardLogger`` leaves it (``lightning_logs/version_N/``
with an event file and ``hparams.yaml``) or a directory that holds event files itself. Every
directory with event files (names containing ``tfevents``) becomes one finished epochal run, named
by its path below the log directory (the log directory's own name for files directly in it). The
event files are read in name order (their names start with the time they were created), record by
record, every checksum checked and every record's length checked against the file before it is
read. Every scalar is kept as stored: its step (repeated steps too), its float value exactly
(float32 read as float64), its wall time to the microsecond (epochal's resolution). The run's
start and end are the wall times of its first and last event of any kind (the file-version and
hyperparameter events included), so its duration is the span of the logs. A directory with
neither scalars nor hyperparameters (only graphs or images, say) is skipped. Everything is read and
checked first and then written in one transaction, so a bad file leaves the store as it was.

- **Config.** The run's hyperparameters become its config. Lightning's ``hparams.yaml`` next to the
  event files wins when it is there: it keeps the nesting and types that the event files' copy
  (the hparams plugin data, flattened to ``"optim/lr"`` names, numbers as doubles, other values as
  text) loses; the plugin data is the config only where there is no ``hparams.yaml``. See
  :mod:`epochal.interop.tensorboard_hparams` for how each is read. A source that cannot be read is
  named in an :class:`~epochal.errors.EpochalWarning` and left out (a damaged ``hparams.yaml`` leaves
  the config empty); the scalars are imported all the same.
- **add_hparams.** ``SummaryWriter.add_hparams(hparam_dict, metric_dict)`` writes into a new
  subdirectory of the writer's directory (named by the time, or ``run_name``) holding the
  hyperparameters and the metrics as scalars. A user means them for the run they were training, so
  such a subdirectory (hyperparameters, and no scalars but the metrics they name) is read into the
  run of the directory above it: its hyperparameters are merged into that run's config (replacing
  the same names) and its metric values are points of that run. Where one writer made several (a
  sweep calling ``add_hparams`` once per trial), each is a run of its own, as TensorBoard's HParams
  view shows them.
- **Epochs.** A scalar named ``epoch`` of whole numbers (Lightning logs one beside every metric)
  is the run's epoch axis, not a key: each point gets the epoch logged at or most recently before
  its step, 0 before the first. Without one, or if it holds fractions or negative numbers (then it
  is a key like any other), every epoch is 0.
- **Lightning's placeholder.** ``TensorBoardLogger(default_hp_metric=True)`` writes ``hp_metric`` =
  -1 at step 0 so that TensorBoard's HParams view has a metric; that point is left out. Other
  ``hp_metric`` values are kept; when none remains there is no ``hp_metric`` key.

The import writes the points with their recorded wall times, which ``Run.log`` cannot do (it stamps
the time of the call), so it builds the run's record and its series chunks itself and hands them
to the store's one batched write path, ``store.write(WriteBatch(...))``.

Examples:
    >>> export_tensorboard(store, "baseline", "tb/baseline")
    1200
    >>> import_tensorboard(store, "runs")
    ['3f2a9c0d1e2b', '77aa01c3f9e0']
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from epochal import system
from epochal.atomic import atomic_file
from epochal.errors import EpochalError
from epochal.interop import tensorboard_hparams as hparams
from epochal.interop.export import chosen_keys
from epochal.store.records import Config, RunRecord, SeriesChunk, WriteBatch
from epochal.store.store import Store

#: The project of imported runs unless one is given.
DEFAULT_PROJECT = "tensorboard"


class EventFileError(EpochalError, ValueError):
    """A TensorBoard log directory or event file that cannot be read (missing, empty or damaged)."""


# -- export ----------------------------------------------------------------------------------------


def export_tensorboard(
    store: Store,
    ref: str | RunRecord,
    directory: str | os.PathLike,
    *,
    keys: Sequence[str] | None = None,
    superseded: bool = False,
) -> int:
    """Write a run's series as a TensorBoard event file in ``directory``; return the number of points.

    Args:
        ref: the run's id, id prefix, name or record.
        directory: the folder of the event file, created if missing (point ``tensorboard --logdir``
            at it or at its parent).
        keys: the keys to write; default every key of the run.
        superseded: also write points that a resumed run logged again (see ``Store.history``).

    Raises:
        RunNotFoundError: no run matches ``ref``.
        SeriesNotFoundError: the run has not logged one of ``keys``.
        EventFileError: ``directory`` is a file, or already holds other event files.
        ImportError: tensorboard is not installed.
    """
    tb = _tensorboard()
    record = store.run(ref)
    chosen = chosen_keys(store, record, keys)
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise EventFileError(f"cannot export to '{folder}': it is a file, not a directory")
    name = f"events.out.tfevents.{int(record.started):010d}.{record.host}.epochal-{record.id}"
    others = sorted(p.name for p in folder.glob("*tfevents*") if p.name != name) if folder.is_dir() else []
    if others:
        raise EventFileError(
            f"'{folder}' already holds the event file {others[0]!r}; TensorBoard would show both as one "
            "run: export into an empty directory"
        )
    points = 0
    # The temporary file's name starts with a dot and ends in .tmp: TensorBoard skips it.
    with atomic_file(folder / name, "wb") as file:
        writer = tb.RecordWriter(file)
        start = tb.Event(wall_time=record.started, file_version="brain.Event:2")
        start.source_metadata.writer = "epochal"
        writer.write(start.SerializeToString())
        for key in chosen:
            h = store.history(record, key, superseded=superseded)
            for step, value, when in zip(h.steps.tolist(), h.values.tolist(), h.times.tolist()):
                event = tb.Event(wall_time=when, step=step)
                event.summary.value.add(tag=key, simple_value=value)
                writer.write(event.SerializeToString())
            points += len(h)
    return points


# -- import ----------------------------------------------------------------------------------------

#: The scalar Lightning logs beside every metric: it becomes the epochs of the other keys' points.
EPOCH_KEY = "epoch"

#: The scalar Lightning's ``TensorBoardLogger(default_hp_metric=True)`` starts with -1 at step 0, a placeholder.
HP_METRIC_KEY = "hp_metric"


@dataclass(eq=False)
class _Directory:
    """What one directory's event files hold, read and checked."""

    path: Path
    columns: dict[str, tuple[list[int], list[float], list[float]]] = field(default_factory=dict)  # tag -> points
    first: float = math.inf  # the earliest and latest wall time of any event
    last: float = -math.inf
    config: dict[str, Any] = field(default_factory=dict)  # the hyperparameters, as the store keeps them
    metrics: set[str] = field(default_factory=set)  # the metric tags that an hparams experiment names
    sessions: int = 0  # how many hparams session_start_info values could be read
    folded: list[Path] = field(default_factory=list)  # the add_hparams subdirectories read into this one


class _EventRun(NamedTuple):
    """One run and its points, read and checked, not yet written."""

    record: RunRecord  # as it is stored, but for its folder (``path``), which the store names
    series: dict[str, tuple[np.ndarray, ...]]  # key -> steps, epochs, values, wall times


def import_tensorboard(
    store_path_or_store: str | os.PathLike | Store | None,
    logdir: str | os.PathLike,
    *,
    project: str | None = None,
) -> list[str]:
    """Read every run's scalars and hyperparameters under a TensorBoard log directory into the store;
    return the new run ids.

    What becomes a run, its config, its epochs and which points are left out is described in this
    module's docstring. A hyperparameter source that cannot be read is left out with an
    :class:`~epochal.errors.EpochalWarning` naming its file; the scalars are imported all the same.

    Args:
        store_path_or_store: a :class:`Store`, or its directory (created if missing; None for the
            default, ``$EPOCHAL_DIR`` else ``./epochal-runs``).
        logdir: a directory with one subdirectory of event files per run, or with event files itself.
        project: the project of the imported runs; default ``'tensorboard'``.

    Raises:
        EventFileError: ``logdir`` is missing or holds no event files with scalars or hyperparameters,
            or an event file is damaged (the message names it). Nothing is imported then.
        ImportError: tensorboard is not installed.
    """
    project = DEFAULT_PROJECT if project is None else project
    if not isinstance(project, str) or not project.strip():
        raise ValueError(f"a run's project is a non-empty string, got {project!r}")
    root = Path(logdir)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise EventFileError(f"TensorBoard log directory '{root}' {what}")
    found = _event_directories(root)
    if not found:
        raise EventFileError(f"no TensorBoard event files (events.out.tfevents.*) in '{root}' or below it")
    directories = _fold_add_hparams(root, [_read_directory(directory, files) for directory, files in found])
    runs = [_run(root, read, project) for read in directories if read.columns or read.config]
    if not runs:
        raise EventFileError(
            f"the event files under '{root}' hold no scalars or hyperparameters "
            f"(read: {', '.join(str(d) for d, _ in found[:5])})"
        )
    if isinstance(store_path_or_store, Store):
        return _write(store_path_or_store, runs)
    with Store(store_path_or_store) as store:
        return _write(store, runs)


def _event_directories(root: Path) -> list[tuple[Path, list[Path]]]:
    """Each directory at or below ``root`` with event files, and those files in name order."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        files = sorted(Path(folder) / name for name in names if "tfevents" in name)
        files = [path for path in files if path.is_file()]
        if files:
            found.append((Path(folder), files))
    return found


def _read_directory(directory: Path, files: list[Path]) -> _Directory:
    read = _Directory(directory)
    initial_metadata: dict[str, Any] = {}  # per run, as TensorBoard keeps it: tag -> its first metadata
    plugin: dict[str, Any] = {}  # the hparams plugin's hyperparameters, in the order they were written
    plugin_file = files[0]
    for path in files:
        for event in _events(path):
            read.first, read.last = min(read.first, event.wall_time), max(read.last, event.wall_time)
            for held in _plugin_hparams(path, event):
                read.metrics.update(held.metrics)
                if held.session:
                    read.sessions += 1
                    plugin.update(held.hparams)
                    plugin_file = path
            for tag, step, value, wall_time in _scalars(path, event, initial_metadata):
                steps, values, times = read.columns.setdefault(tag, ([], [], []))
                steps.append(step)
                values.append(value)
                times.append(wall_time)
    yaml_file = directory / hparams.YAML_NAME
    if yaml_file.is_file():  # Lightning's: the same hyperparameters as its plugin data, nested and typed
        read.config = hparams.yaml_hparams(yaml_file) or {}
    elif plugin:
        read.config = hparams.storable(plugin, plugin_file) or {}
    return read


def _plugin_hparams(path: Path, event: Any) -> Iterator[hparams.PluginHParams]:
    if event.WhichOneof("what") != "summary":
        return
    for value in event.summary.value:
        plugin = value.metadata.plugin_data
        if plugin.plugin_name != hparams.PLUGIN_NAME:
            continue
        if (held := hparams.plugin_hparams(path, value.tag, plugin.content)) is not None:
            yield held


def _fold_add_hparams(root: Path, directories: list[_Directory]) -> list[_Directory]:
    """The directories, each subdirectory that ``SummaryWriter.add_hparams`` wrote read into its writer's
    directory when it is the only one there (several are a sweep's trials and stay runs of their own)."""
    by_path = {read.path: read for read in directories}
    children: dict[Path, list[_Directory]] = {}
    for read in directories:
        if read.path != root and read.path.parent in by_path and _written_by_add_hparams(read):
            children.setdefault(read.path.parent, []).append(read)
    folded = set()
    for parent_path in sorted(children, key=lambda path: len(path.parts), reverse=True):  # the deepest first
        if len(children[parent_path]) != 1:
            continue
        parent, (child,) = by_path[parent_path], children[parent_path]
        for tag, (steps, values, times) in child.columns.items():
            into = parent.columns.setdefault(tag, ([], [], []))
            into[0].extend(steps)
            into[1].extend(values)
            into[2].extend(times)
        parent.first, parent.last = min(parent.first, child.first), max(parent.last, child.last)
        parent.config = Config(parent.config).merged(child.config)
        parent.folded.extend([child.path, *child.folded])
        folded.add(child.path)
    return [read for read in directories if read.path not in folded]


def _written_by_add_hparams(read: _Directory) -> bool:
    """Whether a directory is what ``add_hparams`` writes: hyperparameters and the scalars of their metrics."""
    return read.sessions > 0 and set(read.columns) <= read.metrics and not (read.path / hparams.YAML_NAME).exists()


def _run(root: Path, read: _Directory, project: str) -> _EventRun:
    """The run of one directory: its points ordered by step, with their epochs; Lightning's placeholder left out."""
    series = {}
    for key, (steps, values, times) in read.columns.items():
        if not key or len(key) > 255:
            raise EventFileError(f"'{read.path}': the tag {key[:60]!r} is not 1 to 255 characters long")
        order = np.argsort(np.array(steps, np.int64), kind="stable")  # series are ordered by step
        columns_as_arrays = ((steps, np.int64), (values, np.float64), (times, np.float64))
        series[key] = tuple(np.array(column, dtype)[order] for column, dtype in columns_as_arrays)
    if HP_METRIC_KEY in series:
        steps, values, times = series[HP_METRIC_KEY]
        kept = ~((steps == 0) & (values == -1))
        series[HP_METRIC_KEY] = (steps[kept], values[kept], times[kept])
        if not kept.any():
            del series[HP_METRIC_KEY]
    epochs_at = _epoch_axis(series)
    if epochs_at is not None:
        del series[EPOCH_KEY]
    with_epochs = {
        key: (steps, epochs_at(steps) if epochs_at else np.zeros_like(steps), values, times)
        for key, (steps, values, times) in series.items()
    }
    name = read.path.relative_to(root).as_posix()
    sources = ", ".join(str(path.resolve()) for path in [read.path, *read.folded])
    record = RunRecord(
        id=uuid.uuid4().hex[:12], name=name if name != "." else root.resolve().name, project=project,
        status="finished", started=read.first, ended=read.last, heartbeat=read.last, host=system.host(),
        pid=os.getpid(), command=system.command_line(), git_commit=None, python=system.python_version(), torch=None,
        description=f"imported from the TensorBoard event files in {sources}", tags=(), config=Config(read.config),
        steps=max((int(s[-1]) for s, *_ in with_epochs.values()), default=0),
        epochs=max((int(e.max()) for _, e, *_ in with_epochs.values() if len(e)), default=0), segment=0, path="",
    )
    return _EventRun(record, with_epochs)


def _epoch_axis(series: dict[str, tuple[np.ndarray, ...]]) -> Callable[[np.ndarray], np.ndarray] | None:
    """The epochs of points at given steps, from an ``epoch`` series of whole numbers (0 or more): the
    value logged at or most recently before each step, 0 before the first. None when there is no such
    series; an ``epoch`` of other values is a series like any other."""
    if EPOCH_KEY not in series:
        return None
    at, epochs, _ = series[EPOCH_KEY]
    if not (np.isfinite(epochs).all() and (epochs >= 0).all() and (epochs < 2.0**63).all()
            and (epochs == np.floor(epochs)).all()):
        return None
    epochs = epochs.astype(np.int64)

    def epochs_at(steps: np.ndarray) -> np.ndarray:
        latest = np.searchsorted(at, steps, side="right") - 1  # the last epoch logged at or before each step
        return np.where(latest >= 0, epochs[np.maximum(latest, 0)], 0).astype(np.int64)

    return epochs_at


def _scalars(path: Path, event: Any, initial_metadata: dict[str, Any]) -> Iterator[tuple[str, int, float, float]]:
    """(tag, step, value, wall time) of an event's scalars, after TensorBoard's own read-time migrations."""
    if event.WhichOneof("what") != "summary":
        return
    tb = _tensorboard()
    for migrated in tb.dataclass_compat.migrate_event(tb.data_compat.migrate_event(event), initial_metadata):
        for value in migrated.summary.value:
            metadata = initial_metadata[value.tag]
            if metadata.data_class != tb.DATA_CLASS_SCALAR and metadata.plugin_data.plugin_name != "scalars":
                continue
            number = tb.make_ndarray(value.tensor)
            if number.size != 1:
                raise EventFileError(
                    f"'{path}': the scalar {value.tag!r} at step {event.step} holds {number.size} numbers"
                )
            yield value.tag, migrated.step, float(number.reshape(())), migrated.wall_time


def _events(path: Path) -> Iterator[Any]:
    """The events of one file, every checksum checked and every length against what the file holds."""
    tb = _tensorboard()
    for index, record in enumerate(_records(path)):
        try:
            yield tb.Event.FromString(record)
        except tb.DecodeError as exc:
            raise EventFileError(
                f"event file '{path}': record {index + 1} is not a TensorBoard event ({exc})"
            ) from None


def _records(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file: uint64 length, its masked crc32c, the data, the data's masked crc32c.

    TensorBoard's own reader allocates whatever a record's length says; here a length longer than
    the rest of the file is damage, reported before anything is allocated.
    """
    crc = _tensorboard().masked_crc32c
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        for index in itertools.count():
            header = file.read(12)
            if not header:
                return
            problem = None
            if len(header) < 12:
                problem = "truncated record header"
            elif crc(header[:8]) != int.from_bytes(header[8:], "little"):
                problem = "failed header crc32 check"
            else:
                length, room = int.from_bytes(header[:8], "little"), max(size - file.tell() - 4, 0)
                if length > room:
                    problem = f"its length says {length:,} bytes but {room:,} remain (truncated)"
                else:
                    data, footer = file.read(length), file.read(4)
                    if len(data) < length or len(footer) < 4:
                        problem = "truncated record data"
                    elif crc(data) != int.from_bytes(footer, "little"):
                        problem = "failed event crc32 check"
            if problem is not None:
                raise EventFileError(f"event file '{path}' is damaged at record {index + 1}: {problem}")
            yield data


def _write(store: Store, runs: list[_EventRun]) -> list[str]:
    """All runs and their points in one transaction."""
    records, chunks = [], []
    for run in runs:
        run_id = run.record.id
        records.append(replace(run.record, path=str(store.files_root / run_id)))
        for key, (steps, epochs, values, times) in run.series.items():
            times_us = np.rint(times * 1e6).astype(np.int64)
            chunks.append(SeriesChunk(run_id, key, 0, steps, epochs, values, times_us))
    store.write(WriteBatch(new_runs=tuple(records), chunks=tuple(chunks)))
    return [record.id for record in records]


@functools.cache
def _tensorboard() -> SimpleNamespace:
    """The few pieces of the tensorboard package this module uses, imported on first use."""
    try:
        from google.protobuf.message import DecodeError
        from tensorboard import data_compat, dataclass_compat
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import DATA_CLASS_SCALAR
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
        from tensorboard.summary.writer.record_writer import RecordWriter
        from tensorboard.util.tensor_util import make_ndarray
    except ImportError as exc:
        raise ImportError(
            "reading and writing TensorBoard event files needs the tensorboard package: "
            "pip install epochal[tensorboard]"
        ) from exc
    return SimpleNamespace(**locals())
