"""Logging overhead: epochal versus TensorBoard's ``SummaryWriter`` and MLflow, side by side.

Run it with ``make bench`` (which installs the ``bench`` extra first) or directly::

    .venv/bin/python bench/log_overhead.py
    .venv/bin/python bench/log_overhead.py --steps 20000 --keys 10 --repeat 5 --json bench/results/overhead.json
    .venv/bin/python bench/log_overhead.py --skip-mlflow --skip-tensorboard

For each tool it measures, in one process:

1. the cost per scalar on the calling thread (only the logging calls are timed; the values
   are made beforehand),
2. the sustained rate into the store: scalars divided by the time from the first logging call
   until everything is written (epochal: ``run.flush()`` returned; TensorBoard:
   ``writer.flush()`` returned; MLflow's calls are synchronous),
3. the bytes on disk per stored scalar,
4. the time to read back a 1,000,000-point series (TensorBoard and MLflow read a shorter
   series and their time is scaled to 1M points, which is said wherever it is shown).

Every figure is the median of ``--repeat`` repetitions, each in a fresh temporary directory.
TensorBoard and MLflow need ``pip install epochal[bench]``; without them they are skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from targets import Target, print_columns, print_targets  # bench/targets.py, beside this script

import epochal

MILLION = 1_000_000
READ_KEY = "train/loss"

TARGET_US_PER_SCALAR = 1.0
TARGET_TIMES_CHEAPER = 50.0
TARGET_RATE = 1_000_000.0
TARGET_BYTES = 24.0
TARGET_READ_MS = 100.0


@dataclass
class Row:
    """One line of the result table: medians over the repetitions."""

    tool: str
    scalars: int
    us_per_scalar: float | None = None
    scalars_per_s: float | None = None
    bytes_per_scalar: float | None = None
    read_1m_ms: float | None = None
    read_points: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def read_scaled(self) -> bool:
        return self.read_points is not None and self.read_points != MILLION


# -- values ------------------------------------------------------------------------------------


def _f32(x: np.ndarray) -> np.ndarray:
    """Values as a float32 computation produces them, widened to Python's float."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def metric_columns(steps: int, keys: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``keys`` plausible training metrics over ``steps`` steps, one column each."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps, dtype=np.float64)
    span = max(steps, 1)
    progress = t / span
    loss = 2.3 * np.exp(-5.0 * progress) + 0.08 + np.abs(rng.normal(0.0, 0.05, steps)) * np.exp(-2.0 * progress)
    accuracy = np.clip(0.1 + 0.88 * (1.0 - np.exp(-6.0 * progress)), 0.0, 1.0)
    loss_scale = 2.0 ** (16 - np.minimum(rng.poisson(0.0002, steps).cumsum(), 12))
    columns = {
        "train/loss": _f32(loss),
        "train/acc": rng.binomial(256, accuracy) / 256.0,
        "train/lr": 3e-4 * 0.5 * (1.0 + np.cos(np.pi * progress)),
        "train/grad_norm": _f32(rng.lognormal(0.0, 0.35, steps) * (1.0 + 4.0 * np.exp(-8.0 * progress))),
        "train/throughput": _f32(2400.0 + rng.normal(0.0, 60.0, steps)),
        "val/loss": _f32(loss * 1.08 + rng.normal(0.0, 0.01, steps)),
        "val/acc": rng.binomial(10_000, np.clip(accuracy - 0.02, 0.0, 1.0)) / 10_000.0,
        "train/weight_norm": _f32(41.0 + 6.0 * np.sqrt(progress) + rng.normal(0.0, 0.002, steps)),
        "train/loss_scale": loss_scale,
        "train/data_time": _f32(rng.exponential(0.004, steps) + 0.001),
    }
    for i in range(len(columns), keys):
        columns[f"train/extra_{i}"] = _f32(rng.normal(0.0, 1.0, steps) * np.exp(-progress))
    return dict(list(columns.items())[:keys])


def metric_rows(steps: int, keys: int, seed: int = 0) -> list[dict[str, float]]:
    """One ``{key: float}`` dict per step, as a training loop would log them."""
    columns = metric_columns(steps, keys, seed)
    names = list(columns)
    table = np.column_stack([columns[k] for k in names]).tolist()
    return [dict(zip(names, row)) for row in table]


# -- measuring -----------------------------------------------------------------------------------


def repeat(times: int, measure: Callable[[Path], dict[str, float]]) -> dict[str, float]:
    """Run ``measure`` in a fresh temporary directory ``times`` times; the median of each figure."""
    results = []
    for _ in range(times):
        with tempfile.TemporaryDirectory(prefix="epochal-bench-") as tmp:
            gc.collect()
            results.append(measure(Path(tmp)))
    return {name: statistics.median(r[name] for r in results) for name in results[0]}


def size_of(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def timed_reads(read: Callable[[], Any], times: int) -> tuple[float, float]:
    """(first, median of the following ``times``) in seconds."""
    durations = []
    for _ in range(times + 1):
        start = time.perf_counter()
        read()
        durations.append(time.perf_counter() - start)
    return durations[0], statistics.median(durations[1:])


# -- floor ----------------------------------------------------------------------------------------


def bench_floor(rows: list[dict[str, float]]) -> dict[str, float]:
    value_lists = [list(row.values()) for row in rows]
    scalars = sum(len(v) for v in value_lists)
    sink: list[float] = []
    append = sink.append
    gc.collect()
    start = time.perf_counter()
    for values in value_lists:
        for value in values:
            append(value)
    elapsed = time.perf_counter() - start
    return {"us_per_scalar": elapsed / scalars * 1e6, "scalars_per_s": scalars / elapsed}


# -- epochal ----------------------------------------------------------------------------------------


def epochal_store_bytes(directory: Path) -> int:
    """``epochal.db`` plus its WAL, after folding the WAL into the database."""
    db = directory / "epochal.db"
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return size_of(db, directory / "epochal.db-wal")


def epochal_log(rows: list[dict[str, float]], directory: Path, name: str) -> tuple[dict[str, float], str]:
    """Log ``rows`` (one dict per step) into a new run; caller cost, sustained rate and size."""
    scalars = sum(len(row) for row in rows)
    run = epochal.start(project="bench", name=name, store=directory)
    log, step = run.log, run.step
    gc.collect()
    start = time.perf_counter()
    for values in rows:
        log(values)
        step()
    called = time.perf_counter()
    if not run.flush(timeout=600):
        raise RuntimeError("epochal: run.flush() did not finish within 600 s")
    written = time.perf_counter()
    run.finish()
    run.store.close()
    figures = {
        "us_per_scalar": (called - start) / scalars * 1e6,
        "scalars_per_s": scalars / (written - start),
        "bytes_per_scalar": epochal_store_bytes(directory) / scalars,
        "flush_wait_ms": (written - called) * 1e3,
    }
    return figures, run.id


def bench_epochal(rows: list[dict[str, float]], name: str) -> Callable[[Path], dict[str, float]]:
    def measure(tmp: Path) -> dict[str, float]:
        figures, _ = epochal_log(rows, tmp / "store", name)
        return figures

    return measure


def bench_epochal_series(
    rows: list[dict[str, float]], expected: np.ndarray, reads: int, first_in_process: list[float]
) -> Callable[[Path], dict[str, float]]:
    """Log a long series, then read one key back: first read, and the median of ``reads`` more."""

    def measure(tmp: Path) -> dict[str, float]:
        directory = tmp / "store"
        figures, run_id = epochal_log(rows, directory, "read-series")

        def read() -> Any:
            with epochal.Store(directory) as store:
                return store.history(run_id, READ_KEY)

        first, median = timed_reads(read, reads)
        if not first_in_process:
            first_in_process.append(first * 1e3)
        history = read()
        if not (np.array_equal(history.values, expected) and np.array_equal(history.steps, np.arange(len(expected)))):
            raise RuntimeError(f"epochal: the series read back differs from what was logged ({len(history)} points)")
        return {**figures, "read_first_ms": first * 1e3, "read_ms": median * 1e3}

    return measure


# -- TensorBoard -----------------------------------------------------------------------------------


def load_tensorboard() -> SimpleNamespace | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        print(f"TensorBoard is not importable ({exc}); pip install epochal[bench] to compare with it. Skipping it.")
        return None
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    return SimpleNamespace(SummaryWriter=SummaryWriter, EventAccumulator=EventAccumulator)


def event_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("events.out.tfevents.*"))


def bench_tensorboard(
    tb: SimpleNamespace, rows: list[dict[str, float]], read_values: list[float]
) -> Callable[[Path], dict[str, float]]:
    step_pairs = [list(row.items()) for row in rows]
    scalars = sum(len(p) for p in step_pairs)

    def measure(tmp: Path) -> dict[str, float]:
        writer = tb.SummaryWriter(log_dir=str(tmp / "loop"))
        add_scalar = writer.add_scalar
        gc.collect()
        start = time.perf_counter()
        for step, pairs in enumerate(step_pairs):
            for key, value in pairs:
                add_scalar(key, value, step)
        called = time.perf_counter()
        writer.flush()
        written = time.perf_counter()
        writer.close()
        figures = {
            "us_per_scalar": (called - start) / scalars * 1e6,
            "scalars_per_s": scalars / (written - start),
            "bytes_per_scalar": size_of(*event_files(tmp / "loop")) / scalars,
        }

        series_dir = tmp / "series"
        writer = tb.SummaryWriter(log_dir=str(series_dir))
        for step, value in enumerate(read_values):
            writer.add_scalar(READ_KEY, value, step)
        writer.close()

        def read() -> list:
            accumulator = tb.EventAccumulator(str(series_dir), size_guidance={"scalars": 0})
            accumulator.Reload()
            return accumulator.Scalars(READ_KEY)

        start = time.perf_counter()
        points = read()
        elapsed = time.perf_counter() - start
        if len(points) != len(read_values):
            raise RuntimeError(f"TensorBoard read back {len(points)} of {len(read_values)} points")
        return {**figures, "read_ms": elapsed * 1e3, "read_1m_ms": elapsed * 1e3 * MILLION / len(read_values)}

    return measure


# -- MLflow ------------------------------------------------------------------------------------------


def load_mlflow() -> SimpleNamespace | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow
            from mlflow import MlflowClient
            from mlflow.entities import Metric
    except ImportError as exc:
        print(f"MLflow is not importable ({exc}); pip install epochal[bench] to compare with it. Skipping it.")
        return None
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return SimpleNamespace(mlflow=mlflow, MlflowClient=MlflowClient, Metric=Metric)


@contextmanager
def mlflow_run(ml: SimpleNamespace, tmp: Path, name: str) -> Iterator[Any]:
    """An MLflow run in a local SQLite store inside ``tmp`` (MLflow 3 refuses a plain file store)."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    ml.mlflow.set_tracking_uri(uri)
    ml.mlflow.set_experiment("bench")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ml.mlflow.start_run(run_name=name)
    try:
        yield run
    finally:
        ml.mlflow.end_run()


def mlflow_store_bytes(tmp: Path) -> int:
    db = tmp / "mlflow.db"
    return size_of(db, Path(f"{db}-wal"), Path(f"{db}-journal"))


def bench_mlflow(
    ml: SimpleNamespace, rows: list[dict[str, float]], read_values: list[float]
) -> Callable[[Path], dict[str, float]]:
    step_pairs = [list(row.items()) for row in rows]
    scalars = sum(len(p) for p in step_pairs)

    def measure(tmp: Path) -> dict[str, float]:
        with mlflow_run(ml, tmp, "loop"):
            empty = mlflow_store_bytes(tmp)
            log_metric = ml.mlflow.log_metric
            gc.collect()
            start = time.perf_counter()
            for step, pairs in enumerate(step_pairs):
                for key, value in pairs:
                    log_metric(key, value, step=step)
            elapsed = time.perf_counter() - start
        figures = {
            "us_per_scalar": elapsed / scalars * 1e6,
            "scalars_per_s": scalars / elapsed,
            "bytes_per_scalar": (mlflow_store_bytes(tmp) - empty) / scalars,
            "empty_kb": empty / 1024,
        }

        with mlflow_run(ml, tmp, "series") as run:
            now = int(time.time() * 1000)
            metrics = [ml.Metric(READ_KEY, value, now, step) for step, value in enumerate(read_values)]
            client = ml.MlflowClient()
            for i in range(0, len(metrics), 1000):
                client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
        start = time.perf_counter()
        points = ml.MlflowClient().get_metric_history(run.info.run_id, READ_KEY)
        elapsed = time.perf_counter() - start
        if len(points) != len(read_values):
            raise RuntimeError(f"MLflow read back {len(points)} of {len(read_values)} points")
        return {**figures, "read_ms": elapsed * 1e3, "read_1m_ms": elapsed * 1e3 * MILLION / len(read_values)}

    return measure


# -- report ----------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def print_table(rows: list[Row]) -> None:
    headers = ("tool", "scalars/rep", "us/scalar (caller)", "scalars/s sustained", "bytes/scalar", "1M read (ms)")
    lines = []
    for row in rows:
        read = fmt(row.read_1m_ms, 1)
        if row.read_scaled:
            read += " *"
        lines.append((row.tool, f"{row.scalars:,}", fmt(row.us_per_scalar, 3), fmt(row.scalars_per_s, 0),
                      fmt(row.bytes_per_scalar, 2), read))
    print_columns(headers, lines)
    for row in rows:
        if row.read_scaled:
            print(f"  * {row.tool}: measured on {row.read_points:,} points and scaled linearly to 1M")
    for row in rows:
        for note in row.notes:
            print(f"  {row.tool}: {note}")


def check_targets(rows: dict[str, Row], epochal_rows: list[str], first_read_ms: float | None) -> list[Target]:
    """Each target with its figure; ``first_read_ms`` is epochal's first read in the process, per 1M points."""
    targets = []
    for name in epochal_rows:
        row = rows[name]
        targets.append(Target(f"{name}: <= {TARGET_US_PER_SCALAR:g} us per scalar on the calling thread",
                              f"{row.us_per_scalar:.3f} us", row.us_per_scalar <= TARGET_US_PER_SCALAR))
    tensorboard = rows.get("tensorboard add_scalar")
    main = rows[epochal_rows[0]]
    cheaper = f"{main.tool}: >= {TARGET_TIMES_CHEAPER:g}x cheaper than add_scalar (same run)"
    if tensorboard is None:
        targets.append(Target(cheaper, "TensorBoard skipped", None))
    else:
        times = tensorboard.us_per_scalar / main.us_per_scalar
        targets.append(Target(cheaper, f"{times:.0f}x", times >= TARGET_TIMES_CHEAPER))
    for name in epochal_rows:
        row = rows[name]
        targets.append(Target(f"{name}: >= {TARGET_RATE:,.0f} scalars/s sustained",
                              f"{row.scalars_per_s:,.0f}/s", row.scalars_per_s >= TARGET_RATE))
    for name in epochal_rows:
        row = rows[name]
        targets.append(Target(f"{name}: <= {TARGET_BYTES:g} bytes on disk per scalar",
                              f"{row.bytes_per_scalar:.2f} B", row.bytes_per_scalar <= TARGET_BYTES))
    for row in rows.values():
        if row.tool.startswith("epochal") and row.read_1m_ms is not None:
            read = "1M-point read" + (f" (scaled from {row.read_points:,})" if row.read_scaled else "")
            targets.append(Target(f"{row.tool}: {read} < {TARGET_READ_MS:g} ms, median",
                                  f"{row.read_1m_ms:.1f} ms", row.read_1m_ms < TARGET_READ_MS))
            if first_read_ms is not None:
                targets.append(Target(f"{row.tool}: {read} < {TARGET_READ_MS:g} ms, first read in the process",
                                      f"{first_read_ms:.1f} ms", first_read_ms < TARGET_READ_MS))
    return targets


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "epochal": epochal.__version__, "numpy": np.__version__}
    for name in ("torch", "tensorboard", "mlflow"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="steps of the logging loop (default 100,000)")
    parser.add_argument("--keys", type=int, default=10, help="scalars logged per step (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; figures are medians (default 3)")
    parser.add_argument("--read-points", type=int, default=MILLION,
                        help="length of epochal's read-back series, logged as that many steps of 2 keys "
                             "(default 1,000,000)")
    parser.add_argument("--reads", type=int, default=5, help="epochal reads per repetition after the first (default 5)")
    parser.add_argument("--tb-steps", type=int, default=20_000,
                        help="TensorBoard logs at most this many steps of the loop, at ~100 us a scalar "
                             "(default 20,000)")
    parser.add_argument("--tb-read-points", type=int, default=50_000,
                        help="length of TensorBoard's read-back series, scaled to 1M (default 50,000)")
    parser.add_argument("--mlflow-scalars", type=int, default=2_000,
                        help="scalars MLflow logs in its loop, at several ms each (default 2,000)")
    parser.add_argument("--mlflow-read-points", type=int, default=20_000,
                        help="length of MLflow's read-back series, scaled to 1M (default 20,000)")
    parser.add_argument("--skip-mlflow", action="store_true", help="leave MLflow out")
    parser.add_argument("--skip-tensorboard", action="store_true", help="leave TensorBoard out")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    for name in ("steps", "keys", "repeat", "read_points", "reads", "tb_steps", "tb_read_points", "mlflow_scalars",
                 "mlflow_read_points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def flush_note(figures: dict[str, float]) -> str:
    return f"run.flush() after the loop waited {figures['flush_wait_ms']:.0f} ms for the writer"


def run_floor(args: argparse.Namespace, rows_k: list[dict[str, float]]) -> Row:
    figures = repeat(args.repeat, lambda _tmp: bench_floor(rows_k))
    return Row("python list.append (floor)", len(rows_k) * args.keys, figures["us_per_scalar"],
               figures["scalars_per_s"])


def run_epochal(args: argparse.Namespace, rows_k: list[dict[str, float]]) -> Row:
    figures = repeat(args.repeat, bench_epochal(rows_k, f"k{args.keys}"))
    return Row(f"epochal K={args.keys}", len(rows_k) * args.keys, figures["us_per_scalar"], figures["scalars_per_s"],
               figures["bytes_per_scalar"], notes=[flush_note(figures)])


def run_epochal_single(args: argparse.Namespace) -> Row:
    """As many scalars as the main loop, one per call."""
    rows = metric_rows(args.steps * args.keys, 1, seed=1)
    figures = repeat(args.repeat, bench_epochal(rows, "k1"))
    return Row("epochal K=1", len(rows), figures["us_per_scalar"], figures["scalars_per_s"],
               figures["bytes_per_scalar"], notes=[flush_note(figures)])


def run_epochal_series(args: argparse.Namespace) -> tuple[Row, float]:
    """The long series read back; also returns its first read in this process, in ms."""
    n = args.read_points
    rows = metric_rows(n, 2, seed=2)
    expected = np.array([row[READ_KEY] for row in rows])
    first_in_process: list[float] = []
    figures = repeat(args.repeat, bench_epochal_series(rows, expected, args.reads, first_in_process))
    read_note = (
        f"read = epochal.Store(dir).history(run_id, key) of {n:,} points: {figures['read_ms']:.1f} ms, median of "
        f"{args.reads} reads after the first; first read of each repetition {figures['read_first_ms']:.1f} ms "
        f"(median); first read in the process {first_in_process[0]:.1f} ms"
    )
    row = Row(
        f"epochal K=2 x {n:,} steps", 2 * n, figures["us_per_scalar"], figures["scalars_per_s"],
        figures["bytes_per_scalar"], figures["read_ms"] * MILLION / n, n, notes=[read_note, flush_note(figures)],
    )
    return row, first_in_process[0]


def run_tensorboard(args: argparse.Namespace, tb: SimpleNamespace, rows_k: list[dict[str, float]]) -> Row:
    rows = rows_k[: args.tb_steps]
    read_values = metric_columns(args.tb_read_points, 1, seed=3)[READ_KEY].tolist()
    figures = repeat(args.repeat, bench_tensorboard(tb, rows, read_values))
    read_note = (
        f"read = EventAccumulator(path, size_guidance={{'scalars': 0}}).Reload() + .Scalars(tag): "
        f"{figures['read_ms']:.0f} ms for {args.tb_read_points:,} points"
    )
    notes = [read_note]
    if len(rows) < len(rows_k):
        notes.insert(0, f"logs the first {len(rows):,} of the {len(rows_k):,} steps (--tb-steps) to keep the run short")
    return Row("tensorboard add_scalar", len(rows) * args.keys, figures["us_per_scalar"], figures["scalars_per_s"],
               figures["bytes_per_scalar"], figures["read_1m_ms"], args.tb_read_points, notes=notes)


def run_mlflow(args: argparse.Namespace, ml: SimpleNamespace, rows_k: list[dict[str, float]]) -> Row:
    rows = rows_k[: max(1, args.mlflow_scalars // args.keys)]
    scalars = len(rows) * args.keys
    read_values = metric_columns(args.mlflow_read_points, 1, seed=4)[READ_KEY].tolist()
    figures = repeat(args.repeat, bench_mlflow(ml, rows, read_values))
    size_note = (
        f"bytes/scalar = growth of mlflow.db during the loop / scalars (the store with one empty run already "
        f"takes {figures['empty_kb']:,.0f} kB)"
    )
    read_note = (
        f"read = MlflowClient().get_metric_history(): {figures['read_ms']:.0f} ms for "
        f"{args.mlflow_read_points:,} points logged with log_batch"
    )
    notes = [
        f"logs only {scalars:,} scalars per repetition: each log_metric call is a synchronous database transaction",
        size_note,
        read_note,
    ]
    return Row("mlflow log_metric (sqlite)", scalars, figures["us_per_scalar"], figures["scalars_per_s"],
               figures["bytes_per_scalar"], figures["read_1m_ms"], args.mlflow_read_points, notes=notes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    tb = None if args.skip_tensorboard else load_tensorboard()
    ml = None if args.skip_mlflow else load_mlflow()

    print(f"Logging overhead on {os.cpu_count()} CPUs, {platform.platform()}")
    print("  " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"  loop: {args.steps:,} steps x {args.keys} scalars = {args.steps * args.keys:,} scalars; "
          f"figures are medians over {args.repeat} repetition(s), each in a fresh temporary directory\n")

    rows_k = metric_rows(args.steps, args.keys)
    results: dict[str, Row] = {}

    def record(row: Row) -> Row:
        results[row.tool] = row
        print(f"  {row.tool:<34} done at {time.perf_counter() - began:6.1f} s", flush=True)
        return row

    record(run_floor(args, rows_k))
    main_row = record(run_epochal(args, rows_k))
    epochal_rows = [main_row]
    if args.keys > 1:
        epochal_rows.append(record(run_epochal_single(args)))
    series_row, first_read_ms = run_epochal_series(args)
    epochal_rows.append(record(series_row))
    if tb is not None:
        record(run_tensorboard(args, tb, rows_k))
    if ml is not None:
        record(run_mlflow(args, ml, rows_k))

    print()
    print_table(list(results.values()))
    targets = check_targets(results, [r.tool for r in epochal_rows], first_read_ms * MILLION / args.read_points)
    print_targets(targets)
    total = time.perf_counter() - began
    print(f"\nTotal time {total:.1f} s")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "versions": versions()},
            "rows": [{**asdict(r), "read_scaled": r.read_scaled} for r in results.values()],
            "epochal_first_read_in_process_ms": first_read_ms,
            "targets": [asdict(t) for t in targets],
            "total_s": total,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
