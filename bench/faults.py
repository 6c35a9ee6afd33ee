"""Faults: what a kill -9 loses, and what a locked store costs the training loop, beside TensorBoard.

Run it with ``make bench`` or directly::

    .venv/bin/python bench/faults.py
    .venv/bin/python bench/faults.py --lock-seconds 30 --skip-tensorboard

It measures, each in fresh processes and temporary directories:

1. kill -9 while logging at a steady 2,000 scalars/s (200 steps of 10 keys): the points that never
   reached disk, and how many seconds of logging they were; epochal beside TensorBoard's
   ``SummaryWriter`` with its defaults (the same loop, ``add_scalar`` per key).
2. kill -9 while a tight loop logs far faster than the store writes (20 keys a call): epochal's loss
   in points (log() paces the loop once 100 x flush_points points are outstanding).
3. a store locked by another program for ``--lock-seconds`` while a tight loop logs 10 keys a call:
   the largest memory growth, the slowest single log() call, the points buffered and dropped.
4. a checkpoint saved every second while the store is locked: how long save_checkpoint takes (the
   first save of a lock waits up to 5 s for the store; later ones do not wait while it refuses).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from targets import Target, print_columns, print_targets  # bench/targets.py, beside this script

import epochal

STEADY_STEPS_PER_S = 200
STEADY_KEYS = 10
KILL_AFTER_S = 3.0


# -- the child processes -------------------------------------------------------------------------


def child_steady(tool: str, directory: str) -> None:
    """Log 200 steps/s of 10 keys for KILL_AFTER_S seconds, print the last step, then SIGKILL itself."""
    keys = [f"k{i}" for i in range(STEADY_KEYS)]
    if tool == "epochal":
        run = epochal.start(project="faults", name="steady", store=directory)
        log = lambda step: run.log({k: float(step) for k in keys}, step=step)  # noqa: E731
    else:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(directory)  # its defaults: flush_secs=120, max_queue=10
        log = lambda step: [writer.add_scalar(k, float(step), step) for k in keys]  # noqa: E731
    started = time.perf_counter()
    step = 0
    while time.perf_counter() - started < KILL_AFTER_S:
        log(step)
        print(step, flush=True)
        step += 1
        time.sleep(max(0.0, started + step / STEADY_STEPS_PER_S - time.perf_counter()))
    os.kill(os.getpid(), signal.SIGKILL)


def child_outrun(directory: str, seconds: float) -> None:
    run = epochal.start(project="faults", name="outrun", store=directory, flush_interval=30, flush_points=1000)
    values = {f"k{i:02d}": float(i) for i in range(20)}
    logged = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            run.log(values)
            run.step()
        logged += 20_000
    print(json.dumps({"logged": logged, "seconds": time.perf_counter() - started}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


# -- measurements ------------------------------------------------------------------------------------


def _child(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, timeout=300)


def stored_points_epochal(directory: Path, name: str) -> int:
    store = epochal.Store(directory)
    return sum(len(store.history(name, key)) for key in store.keys(name))


def stored_points_tensorboard(directory: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    accumulator.Reload()
    return sum(len(accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"])


def steady_kill(tool: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = _child("steady", tool, tmp)
        if result.returncode != -signal.SIGKILL:
            raise RuntimeError(f"{tool} child ended with {result.returncode}: {result.stderr[-2000:]}")
        logged = (int(result.stdout.split()[-1]) + 1) * STEADY_KEYS
        stored = stored_points_epochal(Path(tmp), "steady") if tool == "epochal" else stored_points_tensorboard(Path(tmp))
    lost = logged - stored
    return {"logged": logged, "lost": lost, "lost_s": lost / (STEADY_STEPS_PER_S * STEADY_KEYS)}


def outrun_kill(seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = _child("outrun", tmp, str(seconds))
        if result.returncode != -signal.SIGKILL:
            raise RuntimeError(f"outrun child ended with {result.returncode}: {result.stderr[-2000:]}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        stored = stored_points_epochal(Path(tmp), "outrun")
    lost = figures["logged"] - stored
    rate = figures["logged"] / figures["seconds"]
    return {"logged": figures["logged"], "lost": lost, "lost_s": lost / rate, "rate": rate}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hold_lock(database: Path, seconds: float, ready: threading.Event) -> None:
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    blocker.execute("ROLLBACK")
    blocker.close()


def locked_store(seconds: float) -> dict:
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        run = epochal.start(project="faults", name="locked", store=tmp)
        values = {f"k{i}": float(i) for i in range(10)}
        for _ in range(1000):  # warm up: the keys are known, the first flush is done
            run.log(values)
        run.flush()
        base = _rss_mb()
        ready = threading.Event()
        holder = threading.Thread(target=_hold_lock, args=(Path(tmp) / "epochal.db", seconds, ready))
        holder.start()
        ready.wait()
        peak, slowest, logged = base, 0.0, 0
        started = time.perf_counter()
        while holder.is_alive():
            for _ in range(1000):
                before = time.perf_counter()
                run.log(values)
                slowest = max(slowest, time.perf_counter() - before)
            logged += 10_000
            peak = max(peak, _rss_mb())
        took = time.perf_counter() - started
        dropped = run.dropped_points
        run.finish()
        stored = stored_points_epochal(Path(tmp), "locked") - 10_000
    return {"seconds": took, "logged": logged, "dropped": dropped, "stored": stored, "growth_mb": peak - base,
            "slowest_log_s": slowest}


def locked_checkpoints(seconds: float) -> dict:
    import torch

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        run = epochal.start(project="faults", name="ckpt", store=tmp)
        model = torch.nn.Linear(256, 256)
        run.save_checkpoint(models=model)
        ready = threading.Event()
        holder = threading.Thread(target=_hold_lock, args=(Path(tmp) / "epochal.db", seconds, ready))
        holder.start()
        ready.wait()
        took = []
        while holder.is_alive():
            run.step()
            before = time.perf_counter()
            run.save_checkpoint(models=model)
            took.append(time.perf_counter() - before)
            time.sleep(1.0)
        run.finish()
        recorded = len(epochal.Store(tmp).checkpoints(run.id))
    later = sorted(took[1:]) or [0.0]
    return {"saves": len(took), "first_save_s": took[0], "later_save_s": later[len(later) // 2],
            "slowest_later_s": later[-1], "recorded_after": recorded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock-seconds", type=float, default=30.0, help="how long the store stays locked (default 30)")
    parser.add_argument("--outrun-seconds", type=float, default=2.0, help="how long the tight loop logs (default 2)")
    parser.add_argument("--skip-tensorboard", action="store_true", help="leave TensorBoard out")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        child_steady(*rest) if kind == "steady" else child_outrun(rest[0], float(rest[1]))
        return 0

    rows, targets = [], []
    steady = {"epochal": steady_kill("epochal")}
    if not args.skip_tensorboard:
        steady["tensorboard (defaults)"] = steady_kill("tensorboard")
    for tool, f in steady.items():
        rows.append([f"kill -9, steady 2,000 scalars/s: {tool}", f"{f['logged']:,}", f"{f['lost']:,}",
                     f"{f['lost_s']:.2f} s"])
    outrun = outrun_kill(args.outrun_seconds)
    rows.append(["kill -9, tight loop (20 keys a call): epochal", f"{outrun['logged']:,}", f"{outrun['lost']:,}",
                 f"{outrun['lost_s']:.3f} s at {outrun['rate'] / 1e6:.2f} M/s"])
    print_columns(["measured", "points logged", "points lost", "logging time lost"], rows)

    locked = locked_store(args.lock_seconds)
    checkpoints = locked_checkpoints(args.lock_seconds)
    print()
    print_columns(["store locked by another program", "figure"], [
        ["seconds locked", f"{locked['seconds']:.1f}"],
        ["points logged meanwhile (10 keys a call, tight loop)", f"{locked['logged']:,}"],
        ["points buffered and stored after the lock", f"{locked['stored']:,}"],
        ["points dropped (buffer full)", f"{locked['dropped']:,}"],
        ["largest memory growth", f"{locked['growth_mb']:.0f} MB"],
        ["slowest single log() call", f"{locked['slowest_log_s'] * 1000:.0f} ms"],
        ["checkpoints saved meanwhile (one a second)", f"{checkpoints['saves']}"],
        ["first save_checkpoint call (waits for the store once)", f"{checkpoints['first_save_s']:.2f} s"],
        ["later save_checkpoint calls: median / slowest",
         f"{checkpoints['later_save_s'] * 1000:.0f} / {checkpoints['slowest_later_s'] * 1000:.0f} ms"],
        ["their records in the store after the lock", f"{checkpoints['recorded_after']}"],
    ])
    targets += [
        Target("kill -9 at a steady rate loses at most the last flush interval (0.5 s)",
               f"{steady['epochal']['lost_s']:.2f} s", steady["epochal"]["lost_s"] <= 0.5),
        Target("kill -9 of a loop outrunning the store loses at most 101,000 points (flush_points=1000)",
               f"{outrun['lost']:,}", outrun["lost"] <= 101_000),
        Target("a locked store: memory growth under 1 GB", f"{locked['growth_mb']:.0f} MB", locked["growth_mb"] < 1024),
        Target("a locked store: no log() call over 1 s", f"{locked['slowest_log_s'] * 1000:.0f} ms",
               locked["slowest_log_s"] < 1.0),
        Target("a locked store: no checkpoint save over 6 s",
               f"{max(checkpoints['first_save_s'], checkpoints['slowest_later_s']):.2f} s",
               max(checkpoints["first_save_s"], checkpoints["slowest_later_s"]) < 6.0),
    ]
    print_targets(targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
