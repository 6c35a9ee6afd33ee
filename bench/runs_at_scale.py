"""Runs at scale: the runs API and ``start()`` in a store of 100,000 runs, beside an empty store.

    .venv/bin/python bench/runs_at_scale.py                      # 100,000 runs, in a temporary folder
    .venv/bin/python bench/runs_at_scale.py --runs 10000 --store /tmp/scale --keep

Targets (issue 17), with 100,000 runs:

- a sort or a filter of the runs table answered within 200 ms (``GET /api/runs`` over loopback, medians);
- ``start()`` + ``finish()`` of a run within 10 ms, the same as in an empty store;
- the first rows of the runs page visible in Chromium within 1 s of navigation (``--skip-browser`` leaves it out).

The store is a sweep: every run has a config (``lr``, ``batch``, ``optim.name``, ``seed``) and three keys
(``train/loss``, ``valid/loss``, ``valid/accuracy``) of 20 points each, written in batches through the
store's one write path (as ``epochal import`` does), so that making 100,000 runs takes a minute, not an hour.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from targets import Target, print_columns, print_targets

import epochal
from epochal import system
from epochal.store.records import Config, RunRecord, SeriesChunk, WriteBatch

KEYS = ("train/loss", "valid/loss", "valid/accuracy")
POINTS = 20
BATCH = 1000
QUERIES = {
    "first page (newest 100)": {"limit": 100},
    "sort by valid/loss:best": {"limit": 100, "sort": "valid/loss:best", "order": "asc", "metric": "valid/loss"},
    "sort by config lr": {"limit": 100, "sort": "lr"},
    "filter lr<0.001 and valid/loss:best<0.5": {"limit": 100, "where": ["lr<0.001", "valid/loss:best<0.5"]},
    "text search 'trial-4242'": {"limit": 100, "q": "trial-4242"},
    "page 500 (offset 50,000)": {"limit": 100, "offset": 50_000},
}


def build(store: epochal.Store, runs: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    now = time.time() - runs
    steps = np.arange(POINTS, dtype=np.int64)
    for first in range(0, runs, BATCH):
        records, chunks = [], []
        for i in range(first, min(first + BATCH, runs)):
            run_id = uuid.uuid4().hex[:12]
            lr = float(10 ** rng.uniform(-5, -1))
            config = {"lr": lr, "batch": int(rng.choice([32, 64, 128])),
                      "optim": {"name": str(rng.choice(["adam", "sgd"]))}, "seed": i}
            records.append(RunRecord(
                id=run_id, name=f"trial-{i}", project="sweep", status="finished", started=now + i, ended=now + i + 0.5,
                heartbeat=now + i + 0.5, host=system.host(), pid=os.getpid(), command="bench", git_commit=None,
                python=system.python_version(), torch=None, description="", tags=(), config=Config(config),
                steps=POINTS, epochs=1, segment=0, path="",
            ))
            base = 0.3 + abs(np.log10(lr) + 3) * 0.2
            curve = base + np.exp(-steps / 5) + rng.normal(0, 0.01, POINTS)
            times = ((now + i) * 1e6 + steps * 1000).astype(np.int64)
            epochs = np.zeros(POINTS, dtype=np.int64)
            for key, values in zip(KEYS, (curve, curve * 1.05, 1 - curve / 3)):
                chunks.append(SeriesChunk(run_id, key, 0, steps, epochs, values.astype(np.float64), times))
        store.write(WriteBatch(new_runs=tuple(records), chunks=tuple(chunks)))


def start_finish_ms(store: epochal.Store, times: int) -> float:
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        run = epochal.start("sweep", store=store, system_metrics=False)
        run.finish()
        taken.append(time.perf_counter() - started)
    return statistics.median(taken) * 1e3


def api_ms(store_dir: Path, reads: int) -> dict[str, tuple[float, float, int]]:
    """Per query: the first call's and the median warm call's milliseconds, and the total it answered."""
    import httpx

    server = subprocess.Popen([sys.executable, "-m", "epochal.cli", "ui", "--store", str(store_dir), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = server.stdout.readline().split("http://", 1)[1].split()[0].rstrip("/")
        figures = {}
        with httpx.Client(base_url=f"http://{url}", timeout=60) as client:
            for name, params in QUERIES.items():
                calls = []
                for _ in range(reads + 1):
                    started = time.perf_counter()
                    answer = client.get("/api/runs", params=params)
                    calls.append(time.perf_counter() - started)
                    answer.raise_for_status()
                figures[name] = (calls[0] * 1e3, statistics.median(calls[1:]) * 1e3, answer.json()["total"])
            browser = first_rows_ms(f"http://{url}") if not ARGS.skip_browser else None
        return figures, browser
    finally:
        server.terminate()
        server.wait(10)


def first_rows_ms(url: str) -> float | None:
    """Milliseconds from navigation until the runs table shows its first row, in headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        page.goto(url)  # warm: the script and styles cached, as for a user who has opened it before
        page.wait_for_selector("table tr[data-id]", timeout=120_000)
        taken = []
        for _ in range(3):
            started = time.perf_counter()
            page.goto("about:blank")
            page.goto(url)
            page.wait_for_selector("table tr[data-id]", timeout=120_000)
            taken.append(time.perf_counter() - started)
        browser.close()
    return statistics.median(taken) * 1e3


def main() -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the store (default 100,000)")
    parser.add_argument("--store", type=Path, help="where to build the store (default a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="reuse a store built earlier at --store")
    parser.add_argument("--reads", type=int, default=5, help="warm calls per query (default 5)")
    parser.add_argument("--skip-browser", action="store_true", help="leave out the Chromium measurement")
    ARGS = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = ARGS.store or Path(tmp) / "scale"
        began = time.perf_counter()
        with epochal.Store(folder) as store:
            if not (ARGS.keep and store.count_runs("sweep") >= ARGS.runs):
                build(store, ARGS.runs)
        print(f"store of {ARGS.runs:,} runs ready in {time.perf_counter() - began:.1f} s")
        with epochal.Store(Path(tmp) / "empty") as empty:
            empty_ms = start_finish_ms(empty, 20)
        with epochal.Store(folder) as store:
            full_ms = start_finish_ms(store, 20)
        figures, browser = api_ms(folder, ARGS.reads)
    print()
    print_columns(["GET /api/runs", "first (ms)", "warm (ms)", "total"],
                  [[name, f"{first:.0f}", f"{warm:.0f}", f"{total:,}"] for name, (first, warm, total) in figures.items()])
    print(f"\nstart() + finish(): {full_ms:.1f} ms with {ARGS.runs:,} runs, {empty_ms:.1f} ms in an empty store (medians of 20)")
    if browser is not None:
        print(f"runs page, navigation until its first row shows: {browser:.0f} ms (median of 3, Chromium)")
    slowest = max(warm for _, warm, _ in figures.values())
    print_targets([
        Target(f"a sort or filter of {ARGS.runs:,} runs (slowest warm query)", f"{slowest:.0f} ms", slowest <= 200),
        Target("start() + finish() in that store", f"{full_ms:.1f} ms", full_ms <= 10),
        Target("first rows of the runs page in Chromium", "-" if browser is None else f"{browser:.0f} ms",
               None if browser is None else browser <= 1000),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
