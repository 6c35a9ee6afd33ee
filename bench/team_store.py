"""The team store on PostgreSQL: shipping rate, cost on the training thread, delay to the dashboard and a
1M-point read, with MLflow's tracking store on the same PostgreSQL server beside it.

Run it with ``make bench`` or directly (``--quick`` is a smoke run of under a minute)::

    .venv/bin/python bench/team_store.py
    .venv/bin/python bench/team_store.py --quick
    .venv/bin/python bench/team_store.py --skip-mlflow --json bench/results/team_store.json

It starts a throwaway PostgreSQL server of its own (``tests/postgres_server.py``: initdb into a temporary
folder, a free loopback port, fsync off as in the tests) and a temporary spool (``$EPOCHAL_SPOOL``), and
measures:

1. points/s shipped from 4 writers: 4 processes (spawned) each start a run with
   ``store="postgresql://..."`` and log ``--keys`` keys x ``--steps`` steps as fast as they can
   (``run.log({...}); run.step()``), then ``finish()``. Reported: all points / the wall time from the
   first ``log()`` until the last writer's points are all in PostgreSQL, and per writer the time from its
   last ``log()`` to its points being all in PostgreSQL (read back from the server, not assumed from
   ``finish()``). Peer: 4 processes logging the same points with MLflow's ``MlflowClient.log_batch`` in
   batches of 1000 into a database of the same server (SQLAlchemy with psycopg 3).
2. the training thread's cost per call: ``log({3 keys}) + step()`` on a team-store run, on a local
   (SQLite) run, and MLflow's ``log_batch`` amortized per point (and ``log_metric`` per call, the naive
   way, on a smaller count). epochal's calls are timed in blocks of 100; the median block / 100 is the
   typical call, the total / calls the mean with every flush and hiccup in it.
3. the delay from ``log()`` to visible: one run logs a point every 50 ms on the team store while two
   reader threads poll every ``--poll-ms`` ms, one with ``epochal.Store(url).history(run, key)``, one
   through the dashboard's HTTP API (``GET /api/runs/{run}/series`` via FastAPI's TestClient on
   ``epochal.server.create_app``); the delay of each step is from its ``log()`` to the end of the first
   poll that returned it.
4. a 1M-point series read from PostgreSQL: one key logged 1,000,000 times (log + step, shipped), then
   ``Store(url).history(run, key)`` in full and ``history(..., max_points=2000)``, medians of 5 reads on an
   open store after a first one. Peer: MLflow's ``get_metric_history`` of a metric loaded with
   ``log_batch``; where loading 1M points into MLflow would take more than ``--mlflow-load-budget`` s
   (judged on the first 100k) it stays at 100k points and its read is extrapolated to 1M, which is said.

MLflow needs ``pip install epochal[bench]`` (mlflow-skinny, SQLAlchemy, alembic) and psycopg 3; without it
the peer columns are left empty. Every figure is from one run of the measure on this machine (2 CPUs
in mind: the writers, their shippers and the server share them).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from postgres_server import PostgresMissing, PostgresServer  # tests/postgres_server.py
from targets import Target, print_columns, print_targets  # bench/targets.py

import epochal

MILLION = 1_000_000
WRITERS = 4
KEYS = ("train/loss", "train/acc", "train/lr", "train/grad_norm", "train/throughput", "val/loss")
READ_KEY = "train/loss"
BLOCK = 100  # calls timed together in measure 2
MLFLOW_BATCH = 1000
MLFLOW_PROBE = 100_000  # points loaded into MLflow before judging whether 1M fits the load budget

TARGET_DELAY_S = 2.0
TARGET_DOWNSAMPLED_MS = 300.0


# -- values ---------------------------------------------------------------------------------------------


def rows_of(steps: int, keys: int, seed: int) -> list[dict[str, float]]:
    """One ``{key: float}`` per step: a falling loss and its companions, float32 values widened."""
    rng = np.random.default_rng(seed)
    progress = np.arange(steps) / max(steps, 1)
    columns = []
    for i in range(keys):
        curve = (2.3 / (i + 1)) * np.exp(-5.0 * progress) + 0.05 + np.abs(rng.normal(0.0, 0.05, steps))
        columns.append(curve.astype(np.float32).astype(np.float64))
    names = KEYS[:keys] if keys <= len(KEYS) else [*KEYS, *(f"train/extra_{i}" for i in range(len(KEYS), keys))]
    table = np.column_stack(columns).tolist()
    return [dict(zip(names, row)) for row in table]


def series_of(points: int, seed: int) -> np.ndarray:
    return np.array([row[READ_KEY] for row in rows_of(points, 1, seed)])


# -- MLflow ---------------------------------------------------------------------------------------------


def load_mlflow() -> SimpleNamespace | None:
    """MLflow's client as bench/log_overhead.py loads it, with psycopg 3 for SQLAlchemy's postgresql+psycopg."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("psycopg is not importable; pip install epochal[postgres] to compare with MLflow. Skipping it.")
        return None
    from log_overhead import load_mlflow as load  # bench/ is on sys.path when a bench script runs

    return load()


def mlflow_uri(server: PostgresServer, database: str) -> str:
    """The server's URL as SQLAlchemy takes it with psycopg 3 as the driver."""
    return server.url(database).replace("postgresql://", "postgresql+psycopg://", 1)


def mlflow_batches(ml: SimpleNamespace, client: Any, run_id: str, rows: list[dict[str, float]]) -> None:
    """Log ``rows`` as a user would with ``log_batch``: Metric objects made per step, sent 1000 at a time."""
    batch: list[Any] = []
    for step, row in enumerate(rows):
        now = int(time.time() * 1000)
        for key, value in row.items():
            batch.append(ml.Metric(key, value, now, step))
        if len(batch) >= MLFLOW_BATCH:
            client.log_batch(run_id, metrics=batch[:MLFLOW_BATCH])
            batch = batch[MLFLOW_BATCH:]
    if batch:
        client.log_batch(run_id, metrics=batch)


# -- 1. writers (each in a spawned process) ------------------------------------------------------------


def epochal_writer(url: str, index: int, steps: int, keys: int, barrier: Any, results: Any) -> None:
    rows = rows_of(steps, keys, seed=10 + index)
    run = epochal.start(project="bench-ship", name=f"writer-{index}", store=url)
    log, step = run.log, run.step
    barrier.wait()
    began = time.monotonic()
    for row in rows:
        log(row)
        step()
    last_log = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.finish(timeout=600)
    finished = time.monotonic()
    # In PostgreSQL? Read back from the server: every key holds all its points (polled if finish() gave up).
    in_pg, counts = None, {}
    with epochal.Store(url) as store:
        deadline = finished + 600
        while time.monotonic() < deadline:
            summary = store.summary(run.id)
            counts = {k: (summary[k].count if k in summary else 0) for k in rows[0]}
            if all(n == steps for n in counts.values()):
                in_pg = time.monotonic()
                break
            time.sleep(0.05)
    results.put({"index": index, "began": began, "last_log": last_log, "finished": finished, "in_pg": in_pg,
                 "counts": counts, "warnings": [str(w.message)[:300] for w in caught]})


def mlflow_writer(uri: str, experiment_id: str, index: int, steps: int, keys: int, barrier: Any,
                  results: Any) -> None:
    ml = load_mlflow()
    rows = rows_of(steps, keys, seed=10 + index)
    client = ml.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(experiment_id, run_name=f"writer-{index}").info.run_id
    barrier.wait()
    began = time.monotonic()
    mlflow_batches(ml, client, run_id, rows)
    last_log = time.monotonic()
    client.set_terminated(run_id)
    finished = time.monotonic()
    results.put({"index": index, "began": began, "last_log": last_log, "finished": finished, "in_pg": finished,
                 "counts": {}, "warnings": []})


def run_writers(target: Any, args: tuple, steps: int) -> list[dict[str, Any]]:
    """``WRITERS`` spawned processes running ``target(*args, index, steps, keys, barrier, results)``; their
    reports. The clock starts when all of them have their run open (the barrier)."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
    processes = [ctx.Process(target=target, args=(*args, i, steps, ARGS.keys, barrier, results))
                 for i in range(WRITERS)]
    for p in processes:
        p.start()
    reports = [results.get(timeout=1800) for _ in processes]
    for p in processes:
        p.join(60)
        if p.exitcode != 0:
            raise RuntimeError(f"a writer process ended with exit code {p.exitcode}")
    return sorted(reports, key=lambda r: r["index"])


def measure_shipping(server: PostgresServer, ml: SimpleNamespace | None) -> dict[str, Any]:
    steps = ARGS.steps
    points = WRITERS * steps * ARGS.keys
    server.create_database("epochal_ship")
    url = server.url("epochal_ship")
    epochal.Store(url).close()  # the schema, made once before the writers race for it
    out: dict[str, Any] = {"points": points}

    reports = run_writers(epochal_writer, (url,), steps)
    began = min(r["began"] for r in reports)
    missing = [r for r in reports if r["in_pg"] is None]
    if missing:
        raise RuntimeError(f"epochal: writers' points never all reached PostgreSQL: {[r['counts'] for r in missing]}")
    out["epochal"] = {
        "wall_s": max(r["in_pg"] for r in reports) - began,
        "finish_s": max(r["finished"] for r in reports) - began,
        "loop_s": statistics.median(r["last_log"] - r["began"] for r in reports),
        "tail_s": [r["in_pg"] - r["last_log"] for r in reports],
        "finish_tail_s": [r["finished"] - r["last_log"] for r in reports],
        "warnings": sorted({w for r in reports for w in r["warnings"]}),
    }
    out["epochal"]["rate"] = points / out["epochal"]["wall_s"]
    print(f"  1. shipping, epochal: {out['epochal']['wall_s']:.1f} s", flush=True)

    if ml is not None:
        server.create_database("mlflow_ship")
        uri = mlflow_uri(server, "mlflow_ship")
        experiment = ml.MlflowClient(tracking_uri=uri).create_experiment("bench-ship")  # migrations, once
        reports = run_writers(mlflow_writer, (uri, experiment), steps)
        began = min(r["began"] for r in reports)
        out["mlflow"] = {
            "wall_s": max(r["in_pg"] for r in reports) - began,
            "loop_s": statistics.median(r["last_log"] - r["began"] for r in reports),
            "tail_s": [r["in_pg"] - r["last_log"] for r in reports],
        }
        out["mlflow"]["rate"] = points / out["mlflow"]["wall_s"]
        client = ml.MlflowClient(tracking_uri=uri)
        stored = len(client.get_metric_history(client.search_runs([experiment])[0].info.run_id, READ_KEY))
        if stored != steps:
            raise RuntimeError(f"MLflow stored {stored} of {steps} points of a writer's {READ_KEY}")
        print(f"  1. shipping, MLflow: {out['mlflow']['wall_s']:.1f} s", flush=True)
    return out


# -- 2. cost on the training thread -----------------------------------------------------------------------


def timed_blocks(rows: list[dict[str, float]], log: Any, step: Any) -> tuple[float, float, float]:
    """(median ns per call over blocks of BLOCK calls, p99 of the blocks per call, mean ns per call)."""
    blocks = []
    clock = time.perf_counter_ns
    began = clock()
    for first in range(0, len(rows) - BLOCK + 1, BLOCK):
        t = clock()
        for row in rows[first:first + BLOCK]:
            log(row)
            step()
        blocks.append((clock() - t) / BLOCK)
    total = clock() - began
    return statistics.median(blocks), float(np.percentile(blocks, 99)), total / (len(blocks) * BLOCK)


def measure_cost(server: PostgresServer, ml: SimpleNamespace | None, tmp: Path) -> dict[str, Any]:
    calls = ARGS.cost_calls
    rows = rows_of(calls + 1000, 3, seed=20)
    server.create_database("epochal_cost")
    url = server.url("epochal_cost")
    out: dict[str, Any] = {"calls": calls}
    for name, where in (("team", url), ("local", tmp / "local-store")):
        run = epochal.start(project="bench-cost", name=name, store=where)
        for row in rows[:1000]:  # warm up
            run.log(row)
            run.step()
        median, p99, mean = timed_blocks(rows[1000:], run.log, run.step)
        run.finish(timeout=600)
        out[name] = {"median_ns": median, "p99_block_ns": p99, "mean_ns": mean}
    print("  2. cost per call, epochal: done", flush=True)

    if ml is not None:
        server.create_database("mlflow_cost")
        uri = mlflow_uri(server, "mlflow_cost")
        client = ml.MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("bench-cost")
        run_id = client.create_run(experiment).info.run_id
        mlflow_batches(ml, client, run_id, rows[:400])  # warm up
        batch_rows = rows[:ARGS.mlflow_cost_steps]
        run_id = client.create_run(experiment).info.run_id
        t = time.perf_counter_ns()
        mlflow_batches(ml, client, run_id, batch_rows)
        elapsed = time.perf_counter_ns() - t
        out["mlflow_batch"] = {"steps": len(batch_rows), "mean_ns": elapsed / len(batch_rows)}

        run_id = client.create_run(experiment).info.run_id
        each = []
        for step, row in enumerate(rows[:ARGS.mlflow_metric_steps]):
            for key, value in row.items():
                t = time.perf_counter_ns()
                client.log_metric(run_id, key, value, step=step)
                each.append(time.perf_counter_ns() - t)
        out["mlflow_metric"] = {"calls": len(each), "median_call_ns": statistics.median(each),
                                "mean_call_ns": statistics.fmean(each)}
        print("  2. cost per call, MLflow: done", flush=True)
    return out


# -- 3. delay from log() to visible ---------------------------------------------------------------------------


def measure_delay(server: PostgresServer) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from epochal.server import create_app

    server.create_database("epochal_delay")
    url = server.url("epochal_delay")
    points, key = ARGS.delay_points, "train/loss"
    run = epochal.start(project="bench-delay", name="live", store=url)
    logged: dict[int, float] = {}
    seen: dict[str, dict[int, float]] = {"Store.history": {}, "HTTP /api/runs/{run}/series": {}}
    polls = {name: 0 for name in seen}
    stop = threading.Event()

    def poll(name: str, read: Any) -> None:
        found = seen[name]
        while not stop.is_set():
            began = time.monotonic()
            try:
                steps = read()
            except Exception:  # noqa: BLE001 (not shipped yet: the run or the key is not there)
                steps = []
            now = time.monotonic()
            polls[name] += 1
            for s in steps[len(found):] if len(steps) > len(found) else ():
                found.setdefault(int(s), now)
            stop.wait(max(ARGS.poll_ms / 1000 - (now - began), 0))

    store = epochal.Store(url)
    client = TestClient(create_app(epochal.Store(url), static_dir=None))

    def via_store() -> Any:
        return store.history(run.id, key).steps

    def via_http() -> Any:
        answer = client.get(f"/api/runs/{run.id}/series", params={"key": key, "points": 100_000})
        return answer.json()["x"] if answer.status_code == 200 else []

    readers = [threading.Thread(target=poll, args=(name, read), daemon=True)
               for name, read in zip(seen, (via_store, via_http))]
    for reader in readers:
        reader.start()
    values = series_of(points, seed=30)
    tick = time.monotonic()
    for i in range(points):
        logged[i] = time.monotonic()
        run.log({key: float(values[i])})
        run.step()
        tick += 0.05
        time.sleep(max(tick - time.monotonic(), 0))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(found) < points for found in seen.values()):
        time.sleep(0.05)
    stop.set()
    for reader in readers:
        reader.join(10)
    run.finish(timeout=60)
    client.close()
    store.close()
    out: dict[str, Any] = {"points": points}
    for name, found in seen.items():
        delays = [found[s] - logged[s] for s in range(points) if s in found]
        if not delays:
            out[name] = {"seen": 0, "polls": polls[name]}
            continue
        out[name] = {"seen": len(delays), "polls": polls[name], "median_s": statistics.median(delays),
                     "p95_s": float(np.percentile(delays, 95)), "max_s": max(delays)}
    print("  3. delay to visible: done", flush=True)
    return out


# -- 4. a 1M-point series -----------------------------------------------------------------------------------


def timed(read: Any, times: int) -> tuple[float, float, Any]:
    """(first, median of the ``times`` after it) in ms, and the last answer."""
    durations, answer = [], None
    for _ in range(times + 1):
        t = time.perf_counter()
        answer = read()
        durations.append((time.perf_counter() - t) * 1e3)
    return durations[0], statistics.median(durations[1:]), answer


def measure_read(server: PostgresServer, ml: SimpleNamespace | None) -> dict[str, Any]:
    points = ARGS.read_points
    values = series_of(points, seed=40)
    server.create_database("epochal_read")
    url = server.url("epochal_read")
    out: dict[str, Any] = {"points": points}

    run = epochal.start(project="bench-read", name="long", store=url)
    began = time.monotonic()
    for value in values.tolist():
        run.log({READ_KEY: value})
        run.step()
    logged = time.monotonic()
    run.finish(timeout=600)
    finished = time.monotonic()
    with epochal.Store(url) as store:
        while store.summary(run.id)[READ_KEY].count < points:
            if time.monotonic() > finished + 600:
                raise RuntimeError("epochal: the 1M-point series did not reach PostgreSQL within 10 min of finish()")
            time.sleep(0.05)
        in_pg = time.monotonic()
        t = time.perf_counter()
        store.run(run.id)
        first_ms, full_ms, history = timed(lambda: store.history(run.id, READ_KEY), ARGS.reads)
        first_down_ms, down_ms, down = timed(lambda: store.history(run.id, READ_KEY, max_points=2000), ARGS.reads)
    if not (np.array_equal(history.values, values) and np.array_equal(history.steps, np.arange(points))):
        raise RuntimeError(f"epochal: the series read back differs from what was logged ({len(history)} points)")
    t = time.perf_counter()
    with epochal.Store(url) as fresh:
        fresh.history(run.id, READ_KEY, max_points=2000)
    cold_down_ms = (time.perf_counter() - t) * 1e3
    out["epochal"] = {"loop_s": logged - began, "finish_s": finished - logged, "in_pg_s": in_pg - began,
                      "first_ms": first_ms, "full_ms": full_ms, "first_down_ms": first_down_ms,
                      "down_ms": down_ms, "down_points": len(down), "cold_down_ms": cold_down_ms}
    print(f"  4. 1M read, epochal: loaded in {in_pg - began:.1f} s", flush=True)

    if ml is not None:
        server.create_database("mlflow_read")
        uri = mlflow_uri(server, "mlflow_read")
        client = ml.MlflowClient(tracking_uri=uri)
        run_id = client.create_run(client.create_experiment("bench-read")).info.run_id
        rows = [{READ_KEY: v} for v in values.tolist()]
        probe = min(MLFLOW_PROBE, points)
        t = time.monotonic()
        mlflow_batches(ml, client, run_id, rows[:probe])
        probe_s = time.monotonic() - t
        loaded = probe
        projected = probe_s * points / probe
        if probe < points and projected <= ARGS.mlflow_load_budget:
            mlflow_batches_from(ml, client, run_id, rows, probe)
            loaded = points
        load_s = time.monotonic() - t
        reads = ARGS.reads
        first_ml, median_ml, metrics = timed(lambda: client.get_metric_history(run_id, READ_KEY), reads)
        if len(metrics) != loaded:
            raise RuntimeError(f"MLflow read back {len(metrics)} of {loaded} points")
        out["mlflow"] = {"points": loaded, "load_s": load_s, "projected_load_s": projected, "first_ms": first_ml,
                         "read_ms": median_ml, "read_scaled_ms": median_ml * points / loaded}
        print(f"  4. 1M read, MLflow: loaded {loaded:,} points in {load_s:.1f} s", flush=True)
    return out


def mlflow_batches_from(ml: SimpleNamespace, client: Any, run_id: str, rows: list[dict[str, float]],
                        first: int) -> None:
    """``mlflow_batches`` of ``rows[first:]``, their steps counted from ``first``."""
    for start in range(first, len(rows), MLFLOW_BATCH):
        now = int(time.time() * 1000)
        batch = [ml.Metric(k, v, now, start + i) for i, row in enumerate(rows[start:start + MLFLOW_BATCH])
                 for k, v in row.items()]
        client.log_batch(run_id, metrics=batch)


# -- report ------------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f} ms"


def ns(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.0f}"


def report(results: dict[str, Any]) -> list[Target]:
    targets: list[Target] = []

    ship = results.get("shipping")
    if ship:
        e, m = ship["epochal"], ship.get("mlflow")
        print(f"\n1. Points/s into PostgreSQL from {WRITERS} writer processes, {ship['points']:,} points in all "
              f"({WRITERS} x {ARGS.keys} keys x {ARGS.steps:,} steps)")
        lines = [("epochal (spool + shipper)", f"{e['rate']:,.0f}", f"{e['wall_s']:.2f}", f"{e['loop_s']:.2f}",
                  f"{statistics.median(e['tail_s']):.2f}", f"{max(e['tail_s']):.2f}")]
        if m:
            lines.append(("MLflow log_batch x1000", f"{m['rate']:,.0f}", f"{m['wall_s']:.2f}", f"{m['loop_s']:.2f}",
                          f"{statistics.median(m['tail_s']):.2f}", f"{max(m['tail_s']):.2f}"))
        print_columns(("tool", "points/s", "wall s", "logging loop s (median)", "last log -> all in PG s (median)",
                       "(max)"), lines)
        print("  wall s: from the first log() of any writer until the last writer's points are all in PostgreSQL "
              "(read back by each writer)")
        print(f"  epochal: finish() returned after its last log() in "
              f"{', '.join(f'{s:.2f}' for s in e['finish_tail_s'])} s (per writer); all {WRITERS} finished "
              f"{e['finish_s']:.2f} s after the first log()")
        if m:
            print("  MLflow: log_batch is synchronous: its points are in PostgreSQL when the call returns; "
                  "'last log -> all in PG' is set_terminated()")
        for w in e["warnings"]:
            print(f"  epochal warned: {w}")

    cost = results.get("cost")
    if cost:
        print(f"\n2. Cost on the training thread of log({{3 keys}}) + step(), {cost['calls']:,} calls timed in "
              f"blocks of {BLOCK}")
        lines = []
        for name, label in (("team", "epochal, team store (PostgreSQL)"), ("local", "epochal, local store (SQLite)")):
            c = cost[name]
            lines.append((label, ns(c["median_ns"]), ns(c["p99_block_ns"]), ns(c["mean_ns"]), ns(c["mean_ns"] / 3)))
        if "mlflow_batch" in cost:
            c = cost["mlflow_batch"]
            lines.append((f"MLflow log_batch x1000, amortized ({c['steps']:,} steps)", "-", "-", ns(c["mean_ns"]),
                          ns(c["mean_ns"] / 3)))
            c = cost["mlflow_metric"]
            lines.append((f"MLflow log_metric per key ({c['calls']:,} calls)", ns(3 * c["median_call_ns"]), "-",
                          ns(3 * c["mean_call_ns"]), ns(c["mean_call_ns"])))
        print_columns(("tool", "median ns/step", "p99 ns/step", "mean ns/step", "mean ns/point"), lines)
        print(f"  median and p99: over the blocks of {BLOCK} calls, per call; mean: all the loop's time / calls "
              "(flushes, GC, the shipper's share of the GIL included)")
        if "mlflow_metric" in cost:
            c = cost["mlflow_metric"]
            print(f"  MLflow log_metric: one call per key, {ns(c['median_call_ns'])} ns median per call; its "
                  "'step' is 3 calls. log_batch: the Metric objects made per step and the batch sent every 1000 "
                  "points, all timed")
        ratio = cost["team"]["median_ns"] / cost["local"]["median_ns"]
        print(f"  team store / local store, median: {ratio:.2f}x")

    delay = results.get("delay")
    if delay:
        print(f"\n3. Delay from log() to visible, {delay['points']} points logged 50 ms apart; readers poll every "
              f"{ARGS.poll_ms} ms")
        lines = []
        for name in ("Store.history", "HTTP /api/runs/{run}/series"):
            d = delay[name]
            if d["seen"]:
                lines.append((name, f"{d['seen']}/{delay['points']}", ms(d["median_s"]), ms(d["p95_s"]),
                              ms(d["max_s"]), str(d["polls"])))
            else:
                lines.append((name, f"0/{delay['points']}", "-", "-", "-", str(d["polls"])))
        print_columns(("reader", "steps seen", "median", "p95", "max", "polls"), lines)
        print("  MLflow: no peer here; its log_metric/log_batch are synchronous (visible when the call returns) "
              "at the cost shown in 2")
        for name in ("Store.history", "HTTP /api/runs/{run}/series"):
            d = delay[name]
            met = d["seen"] == delay["points"] and d["p95_s"] < TARGET_DELAY_S
            figure = f"p95 {ms(d['p95_s'])}" if d["seen"] else "never seen"
            targets.append(Target(f"3. log() -> visible via {name} < {TARGET_DELAY_S:g} s (p95)", figure, met))

    read = results.get("read")
    if read:
        e, m = read["epochal"], read.get("mlflow")
        n = read["points"]
        print(f"\n4. Reading a {n:,}-point series from PostgreSQL (median of {ARGS.reads} reads after the first, "
              "on an open store / client)")
        lines = [("epochal history(run, key)", f"{n:,}", f"{e['full_ms']:,.1f}", f"{e['first_ms']:,.1f}"),
                 ("epochal history(..., max_points=2000)", f"{e['down_points']:,} of {n:,}", f"{e['down_ms']:,.1f}",
                  f"{e['first_down_ms']:,.1f}")]
        if m:
            scaled = m["points"] != n
            label = "MLflow get_metric_history" + (f" (of {m['points']:,}, x{n // m['points']} *)" if scaled else "")
            lines.append((label, f"{n:,}" if not scaled else f"{m['points']:,} -> {n:,} *",
                          f"{m['read_scaled_ms']:,.1f}", f"{m['first_ms'] * n / m['points']:,.1f}"))
        print_columns(("read", "points", "ms (median)", "ms (first)"), lines)
        print(f"  epochal: logging the {n:,} points took {e['loop_s']:.2f} s on the training thread, finish() "
              f"{e['finish_s']:.2f} s more; all in PostgreSQL {e['in_pg_s']:.2f} s after the first log()")
        print(f"  epochal: a fresh Store(url) (connect + schema check) + the downsampled read: {e['cold_down_ms']:.1f} ms")
        if m:
            if m["points"] != n:
                print(f"  * MLflow: loading its first {m['points']:,} points with log_batch took {m['load_s']:.1f} s, "
                      f"so 1M would take ~{m['projected_load_s']:.0f} s (> {ARGS.mlflow_load_budget:g} s): it read "
                      f"{m['points']:,} points in {m['read_ms']:,.1f} ms (median), EXTRAPOLATED linearly to "
                      f"{n:,} above")
            else:
                print(f"  MLflow: loading the {n:,} points with log_batch x1000 took {m['load_s']:.1f} s")
            print("  MLflow has no downsampled read: a chart of the series reads every point")
        targets.append(Target(f"4. {n:,}-point history(max_points=2000) < {TARGET_DOWNSAMPLED_MS:g} ms (median)",
                              f"{e['down_ms']:.1f} ms", e["down_ms"] < TARGET_DOWNSAMPLED_MS))
        targets.append(Target(f"4. ... the first read on a fresh store < {TARGET_DOWNSAMPLED_MS:g} ms",
                              f"{e['cold_down_ms']:.1f} ms", e["cold_down_ms"] < TARGET_DOWNSAMPLED_MS))
    return targets


# -- main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (under a minute)")
    parser.add_argument("--steps", type=int, help="steps per writer in 1 (default 100,000; quick 1,000)")
    parser.add_argument("--keys", type=int, default=3, help="keys per step in 1 (default 3)")
    parser.add_argument("--cost-calls", type=int, help="log+step calls timed in 2 (default 200,000; quick 20,000)")
    parser.add_argument("--mlflow-cost-steps", type=int,
                        help="steps of 3 keys MLflow log_batch logs in 2 (default 30,000; quick 500)")
    parser.add_argument("--mlflow-metric-steps", type=int,
                        help="steps of 3 log_metric calls in 2 (default 300; quick 30)")
    parser.add_argument("--delay-points", type=int, help="points logged 50 ms apart in 3 (default 200; quick 40)")
    parser.add_argument("--poll-ms", type=int, default=50, help="readers' poll interval in 3 (default 50)")
    parser.add_argument("--read-points", type=int, help="length of the series read in 4 (default 1,000,000; "
                        "quick 20,000)")
    parser.add_argument("--reads", type=int, default=5, help="reads after the first in 4 (default 5)")
    parser.add_argument("--mlflow-load-budget", type=float, default=60.0,
                        help="seconds MLflow may take to load 4's series; else 100k points, extrapolated (default 60)")
    parser.add_argument("--only", type=str, default="1234", help="which measures to run, e.g. 34 (default 1234)")
    parser.add_argument("--skip-mlflow", action="store_true", help="leave MLflow out")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    defaults = {"steps": (100_000, 1_000), "cost_calls": (200_000, 20_000), "mlflow_cost_steps": (30_000, 500),
                "mlflow_metric_steps": (300, 30), "delay_points": (200, 40), "read_points": (MILLION, 20_000)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in (*defaults, "keys", "poll_ms", "reads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.cost_calls < BLOCK:
        parser.error(f"--cost-calls must be at least {BLOCK}")
    return args


ARGS: argparse.Namespace  # set by main(); the writer processes get what they need as arguments


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "epochal": epochal.__version__}
    for name in ("psycopg", "mlflow", "sqlalchemy"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


def main(argv: list[str] | None = None) -> int:
    global ARGS
    ARGS = args = parse_args(argv)
    began = time.perf_counter()
    ml = None if args.skip_mlflow else load_mlflow()
    # As root the server runs as the postgres user, who must reach its folder: one in the system temp folder.
    folder = Path(tempfile.mkdtemp(prefix="epochal-bench-pg-"))
    tmp = Path(tempfile.mkdtemp(prefix="epochal-bench-"))
    os.environ["EPOCHAL_SPOOL"] = str(tmp / "spool")  # the writer processes inherit it
    try:
        server = PostgresServer(folder)
    except PostgresMissing as missing:
        print(f"{missing}; skipping the team-store benchmark")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    results: dict[str, Any] = {}
    try:
        server.start()
        with __import__("psycopg").connect(server.url(), autocommit=True) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"Team store on {os.cpu_count()} CPUs, {platform.platform()}, PostgreSQL {pg_version} "
              f"(throwaway, fsync off), spool {os.environ['EPOCHAL_SPOOL']}")
        print("  " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ("  [quick]" if args.quick else ""))
        if "1" in args.only:
            results["shipping"] = measure_shipping(server, ml)
        if "2" in args.only:
            results["cost"] = measure_cost(server, ml, tmp)
        if "3" in args.only:
            results["delay"] = measure_delay(server)
        if "4" in args.only:
            results["read"] = measure_read(server, ml)
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)

    targets = report(results)
    if targets:
        print_targets(targets)
    total = time.perf_counter() - began
    print(f"\nTotal time {total:.1f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "versions": versions()},
                   "results": results, "targets": [asdict(t) for t in targets], "total_s": total}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
