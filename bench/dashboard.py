"""Dashboard speed: the runs API, a 1M-point series and a run page of 20 charts, beside TensorBoard.

Run it with ``make bench`` or directly::

    .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --points 20000 --runs 50            # a quick pass
    .venv/bin/python bench/dashboard.py --store bench-store --keep          # build the store once, reuse it
    .venv/bin/python bench/dashboard.py --skip-browser --skip-tensorboard --json bench/results/dashboard.json

It builds a store with ``--runs`` small runs spread over four projects and one big run of 20
keys (``train/``, ``valid/``, ``sys/``) of ``--points`` points each, all through ``epochal.start``
and ``Run.log``. Building takes a while at full size, so ``--store DIR`` keeps the store there, and
a directory that already holds this benchmark's runs of the same sizes is used as it is. Then,
against ``epochal ui`` serving the store in a subprocess, it measures over loopback:

1. ``GET /api/runs?metric=valid/loss&metric=valid/accuracy`` (every run, with two metrics): the
   first call in a fresh server process, and the median of 10 after one more;
2. ``GET /api/runs/<big>/series?key=train/loss&points=2000`` (1M points down to about 2,000): the
   first call in a fresh server process, which decodes the series from SQLite (the database file
   is in the OS page cache), the median of 10 warm calls (the server keeps decoded series), and the
   median of 10 zoomed calls (``min``/``max`` over 10% of the steps); then the same with
   ``smoothing=0.9`` (smoothed on the server over every point, then downsampled): the first call,
   which decodes every point, the median of 10 repeated calls, and the median of 10 calls each with
   another weight (the decoded series kept, the smoothing done again);
3. from a fresh server process's start until all 20 keys of the big run have been served, one
   request after the other: the figure to put beside TensorBoard's loading time;
4. in headless Chromium (Debian's ``/usr/bin/chromium`` driven by Playwright; never a downloaded
   browser), the time from ``page.goto`` of the big run's page until all 20 keys are drawn
   (every ``.chart`` has ``data-points`` > 0, and together they draw the 20 keys; ``train/loss``
   and ``valid/loss`` share a chart): once in a fresh browser context against a fresh server
   process (cold), then in new pages of that context (warm; median of 3). The window is tall
   enough to show every chart, as the page draws charts only once they come near the screen.

Beside it, TensorBoard: epochal's own exporter (``epochal export RUN --format tensorboard``) writes
the big run as an event file, and ``tensorboard --logdir`` is timed from process start until its
scalars route returns every one of the 20 tags complete (its last step there), first with its
default sampling (1,000 points kept per tag) and then keeping every point
(``--samples_per_plugin scalars=N``; ``scalars=0`` makes its data server return no points at all).
Also timed: one tag's request once loaded. The exporter writes about 50,000 points a second
(TensorBoard's record writer computes its checksums in Python), so when the big run has more
than ``--tb-points`` points per key, a run of the same 20 curves at every k-th step, ``--tb-points``
points per key, is exported instead; TensorBoard's loading times are then measured on it and
also shown scaled linearly to the full run, and the output says so wherever it applies.
TensorBoard is in the ``dev`` and ``bench`` extras, Playwright and httpx in ``dev``; without
TensorBoard, Playwright, ``/usr/bin/chromium`` or the built web UI the part that needs it is
skipped and says so. A store given with ``--store`` is never deleted; ``--keep`` also keeps the
temporary directory (event files, server logs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from dashboard_store import BIG_KEYS, SERIES_KEY, Built, build_store, log_big_run  # beside this script
from targets import Target, print_columns, print_targets  # bench/targets.py, beside this script

import epochal

MILLION = 1_000_000
RUNS_QUERY = [("metric", "valid/loss"), ("metric", "valid/accuracy")]
SERIES_POINTS = 2000  # what the dashboard asks for per chart
SMOOTHING = 0.9  # the smoothing weight of the smoothed series' figures
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

TARGET_RUNS_MS = 200.0
TARGET_SERIES_MS = 50.0
TARGET_CHARTS_S = 1.5

# -- processes ---------------------------------------------------------------------------------------


class Process:
    """A server in a subprocess of its own process group; its output goes to a file."""

    def __init__(self, argv: list[str], log: Path, *, ready: re.Pattern[str], stream: str = "stdout"):
        self.log = log
        self.started = time.perf_counter()
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        pipe = {"stdout": subprocess.PIPE, "stderr": self._out}
        if stream == "stderr":
            pipe = {"stdout": self._out, "stderr": subprocess.PIPE}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, text=True, start_new_session=True, env=env, **pipe)
        self._lines: queue.Queue[str | None] = queue.Queue()
        source = self.proc.stdout if stream == "stdout" else self.proc.stderr
        self._pump_thread = threading.Thread(target=self._pump, args=(source,), daemon=True)
        self._pump_thread.start()
        self._ready = ready
        self.ready_s = 0.0  # seconds from the start until the ready line

    def _pump(self, source: Any) -> None:
        for line in source:
            self._out.write(line)
            self._out.flush()
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = 120.0) -> tuple[str, float]:
        """The first match of the ready pattern in the output, and seconds since the start."""
        deadline = time.perf_counter() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.proc.args[:4]} did not start (exit {self.proc.returncode}):\n{tail}")
            found = self._ready.search(line)
            if found:
                self.ready_s = time.perf_counter() - self.started
                return found.group(0), self.ready_s

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group: TensorBoard's data server too
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self._pump_thread.join(5)
        self._out.close()


@contextmanager
def epochal_server(store: Path, logs: Path) -> Iterator[tuple[Process, str]]:
    """``epochal ui`` over the store on a free loopback port: (the process, its URL)."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"epochal-ui-{len(list(logs.glob('epochal-ui-*')))}.log"
    server = Process([sys.executable, "-m", "epochal.cli", "ui", "--store", str(store), "--port", "0"], log,
                     ready=re.compile(r"http://127\.0\.0\.1:\d+/"))
    try:
        url, _ = server.wait_ready()
        yield server, url
    finally:
        server.stop()


def _client(url: str) -> Any:
    import httpx

    return httpx.Client(base_url=url, trust_env=False, timeout=120.0)


def timed_get(client: Any, path: str, params: Any = None) -> tuple[float, Any]:
    """(seconds, response) of one GET, the body read; a non-200 answer is an error."""
    start = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response


# -- epochal's API -----------------------------------------------------------------------------------


@dataclass
class ApiFigures:
    startup_s: float = 0.0  # process start until the URL is printed
    all_keys_s: float = 0.0  # process start until the 20 keys are served
    runs_first_ms: float = 0.0
    runs_ms: float = 0.0
    runs_count: int = 0
    runs_bytes: int = 0
    series_first_ms: float = 0.0
    series_ms: float = 0.0
    series_points: int = 0
    series_total: int = 0
    series_bytes: int = 0
    zoom_ms: float = 0.0
    zoom_points: int = 0
    zoom_in_range: int = 0
    smooth_first_ms: float = 0.0
    smooth_ms: float = 0.0
    smooth_other_weight_ms: float = 0.0


def measure_api(store: Path, logs: Path, big_id: str, points: int, reads: int) -> ApiFigures:
    figures = ApiFigures()
    series_path = f"/api/runs/{big_id}/series"

    # A fresh process: from its start until every key of the big run has been served once.
    with epochal_server(store, logs) as (server, url), _client(url) as client:
        figures.startup_s = server.ready_s
        for key in BIG_KEYS:
            timed_get(client, series_path, {"key": key, "points": SERIES_POINTS})
        figures.all_keys_s = time.perf_counter() - server.started

    # Another fresh process: the runs API and train/loss, each first and then warm.
    with epochal_server(store, logs) as (_, url), _client(url) as client:
        first, response = timed_get(client, "/api/runs", RUNS_QUERY)
        body = response.json()
        figures.runs_first_ms, figures.runs_count = first * 1e3, len(body["runs"])
        figures.runs_bytes = len(response.content)
        timed_get(client, "/api/runs", RUNS_QUERY)
        figures.runs_ms = 1e3 * statistics.median(timed_get(client, "/api/runs", RUNS_QUERY)[0] for _ in range(reads))

        query = {"key": SERIES_KEY, "points": SERIES_POINTS}
        first, response = timed_get(client, series_path, query)
        body = response.json()
        figures.series_first_ms, figures.series_points = first * 1e3, len(body["x"])
        figures.series_total, figures.series_bytes = body["total"], len(response.content)
        figures.series_ms = 1e3 * statistics.median(timed_get(client, series_path, query)[0] for _ in range(reads))

        # Smoothed: over every point, so the first call decodes them all (the plain one read overviews).
        smoothed = {**query, "smoothing": SMOOTHING}
        figures.smooth_first_ms = 1e3 * timed_get(client, series_path, smoothed)[0]
        figures.smooth_ms = 1e3 * statistics.median(timed_get(client, series_path, smoothed)[0] for _ in range(reads))
        figures.smooth_other_weight_ms = 1e3 * statistics.median(
            timed_get(client, series_path, {**query, "smoothing": 0.5 + i / 100})[0] for i in range(reads)
        )

        low = int(0.45 * points)
        zoom = {**query, "min": low, "max": low + points // 10}
        durations = []
        for _ in range(reads):
            elapsed, response = timed_get(client, series_path, zoom)
            durations.append(elapsed)
        body = response.json()
        figures.zoom_ms = 1e3 * statistics.median(durations)
        figures.zoom_points, figures.zoom_in_range = len(body["x"]), body["in_range"]
    return figures


# -- Chromium ----------------------------------------------------------------------------------------

_CHARTS_DRAWN = """(n) => {
    const charts = document.querySelectorAll('.chart');
    const keys = new Set();
    for (const chart of charts) {
        if (!(Number(chart.dataset.points) > 0)) return false;
        chart.dataset.keys.split(' ').forEach((k) => keys.add(k));
    }
    return keys.size >= n && performance.now();
}"""
# Tall enough for every chart of the big run: the page draws a chart once it comes near the screen.
VIEWPORT = {"width": 1280, "height": 3200}


@dataclass
class BrowserFigures:
    chromium: str = ""
    viewport: str = ""
    cold_s: float = 0.0
    cold_page_ms: float = 0.0  # performance.now() when the last chart was drawn
    cold_api_requests: int = 0
    warm_s: list[float] = field(default_factory=list)
    warm_page_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: str | None = None  # why the charts were not all drawn


def open_run_page(context: Any, url: str, charts: int, figures: BrowserFigures) -> tuple[float, float, int]:
    """(seconds from goto until ``charts`` keys are drawn, the page's performance.now() then, API requests)."""
    page = context.new_page()
    api_requests = []
    page.on("request", lambda r: api_requests.append(r.url) if "/api/" in r.url else None)
    page.on("pageerror", lambda e: figures.errors.append(f"page error: {e}"))
    page.on("console", lambda m: figures.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    try:
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        handle = page.wait_for_function(_CHARTS_DRAWN, arg=charts, polling="raf", timeout=120_000)
        elapsed = time.perf_counter() - start
        return elapsed, float(handle.json_value()), len(api_requests)
    finally:
        page.close()


def measure_browser(store: Path, logs: Path, big_id: str, warm_pages: int) -> BrowserFigures:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    figures = BrowserFigures()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            figures.chromium = browser.version
            with epochal_server(store, logs) as (_, url):
                context = browser.new_context(viewport=VIEWPORT)
                blank = context.new_page()
                size = blank.viewport_size or {"width": 0, "height": 0}
                figures.viewport = f"{size['width']}x{size['height']}"
                blank.close()
                page_url = f"{url}#/run/{big_id}"
                figures.cold_s, figures.cold_page_ms, figures.cold_api_requests = open_run_page(
                    context, page_url, len(BIG_KEYS), figures)
                for _ in range(warm_pages):
                    elapsed, page_ms, _ = open_run_page(context, page_url, len(BIG_KEYS), figures)
                    figures.warm_s.append(elapsed)
                    figures.warm_page_ms.append(page_ms)
                context.close()
        except PlaywrightError as exc:  # a timeout too: the page never showed the 20 keys drawn
            figures.failed = str(exc).splitlines()[0][:300]
        finally:
            browser.close()
    return figures


# -- TensorBoard -------------------------------------------------------------------------------------


@dataclass
class ExportFigures:
    points_per_key: int  # what was exported
    stride: int  # 1: the big run itself; k: a run of the same curves at every k-th step
    seconds: float
    file_bytes: int

    @property
    def us_per_point(self) -> float:
        return self.seconds * 1e6 / (self.points_per_key * len(BIG_KEYS))


@dataclass
class TensorBoardFigures:
    mode: str  # "default sampling" or "every point"
    samples: int  # points kept per tag
    startup_s: float  # process start until the scalars API answers
    loaded_s: float  # process start until all 20 tags are complete
    tag_ms: float  # one tag's request once loaded, median
    tag_points: int
    tag_bytes: int


def export_for_tensorboard(
    store_path: Path, built: Built, points: int, limit: int, work: Path
) -> tuple[Path, ExportFigures]:
    """The event file's log directory; the big run itself, or a run of the same curves at ``limit`` points per key."""
    from epochal.interop.tensorboard import export_tensorboard

    logdir = work / "tensorboard"
    shutil.rmtree(logdir, ignore_errors=True)
    stride = 1 if points <= limit else -(-points // limit)
    if stride == 1:
        source, run_id, exported = store_path, built.big_id, points
    else:
        source = work / "tensorboard-store"
        shutil.rmtree(source, ignore_errors=True)
        exported = points // stride
        with epochal.Store(source) as subset:
            run_id = log_big_run(subset, built.big_name, exported, stride).id
    with epochal.Store(source) as store:
        start = time.perf_counter()
        export_tensorboard(store, run_id, logdir / built.big_name)
        seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in (logdir / built.big_name).iterdir())
    return logdir, ExportFigures(exported, stride, seconds, size)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_tensorboard(logdir: Path, logs: Path, run: str, points: int, last_step: int, samples: int | None,
                        reads: int) -> TensorBoardFigures:
    """TensorBoard from process start until every tag is complete; ``samples`` None is its default sampling."""
    import httpx

    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
            "--port", str(_free_port())]
    if samples is not None:
        argv += ["--samples_per_plugin", f"scalars={samples}"]
    expected = min(points, 1000 if samples is None else samples)
    log = logs / f"tensorboard-{'default' if samples is None else 'all'}.log"
    server = Process(argv, log, ready=re.compile(r"http://127\.0\.0\.1:\d+/"), stream="stderr")
    try:
        url, _ = server.wait_ready()
        with httpx.Client(base_url=url, trust_env=False, timeout=120.0) as client:
            startup = None
            waiting = list(BIG_KEYS)
            while waiting:
                tags = client.get("/data/plugin/scalars/tags")
                if tags.status_code == 200 and startup is None:
                    startup = time.perf_counter() - server.started
                known = tags.json().get(run, {}) if tags.status_code == 200 else {}
                while waiting and waiting[0] in known:
                    answer = client.get("/data/plugin/scalars/scalars", params={"run": run, "tag": waiting[0]})
                    data = answer.json() if answer.status_code == 200 else []
                    if len(data) == expected and data[-1][1] == last_step:
                        waiting.pop(0)
                    else:
                        break
                if waiting:
                    if server.proc.poll() is not None:
                        raise RuntimeError(f"TensorBoard exited:\n{log.read_text(errors='replace')[-2000:]}")
                    time.sleep(0.05)
            loaded = time.perf_counter() - server.started
            durations = []
            for _ in range(reads):
                elapsed, answer = timed_get(client, "/data/plugin/scalars/scalars", {"run": run, "tag": SERIES_KEY})
                durations.append(elapsed)
        mode = "default sampling" if samples is None else "every point"
        return TensorBoardFigures(mode, expected, startup or loaded, loaded, 1e3 * statistics.median(durations),
                                  len(answer.json()), len(answer.content))
    finally:
        server.stop()


# -- report ------------------------------------------------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def print_side_by_side(rows: list[tuple[str, str, str]], notes: list[str]) -> None:
    headers = ("", "epochal", "TensorBoard")
    print_columns(headers, rows)
    for note in notes:
        print(f"  {note}")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "epochal": epochal.__version__, "numpy": np.__version__}
    for name in ("tensorboard", "playwright"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


# -- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, metavar="DIR",
                        help="build the store here, or reuse the one this script built here before "
                             "(default: a temporary directory)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (store, event files, server logs) and print where")
    parser.add_argument("--runs", type=int, default=1000, help="small runs in the store (default 1,000)")
    parser.add_argument("--points", type=int, default=MILLION, help="points per key of the big run (default 1,000,000)")
    parser.add_argument("--reads", type=int, default=10, help="warm calls of which the median is shown (default 10)")
    parser.add_argument("--warm-pages", type=int, default=3, help="warm page loads in Chromium (default 3)")
    parser.add_argument("--tb-points", type=int, default=100_000,
                        help="export at most this many points per key for TensorBoard (default 100,000)")
    parser.add_argument("--skip-browser", action="store_true", help="leave out the Chromium measurement")
    parser.add_argument("--skip-tensorboard", action="store_true", help="leave out TensorBoard")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    for name in ("runs", "reads", "warm_pages"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("points", "tb_points"):
        if getattr(args, name) < 100:
            parser.error(f"--{name.replace('_', '-')} must be at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    tensorboard_missing = False
    if not args.skip_tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            tensorboard_missing = True
    if not args.skip_browser and not Path(CHROMIUM).is_file():
        print(f"no Chromium at {CHROMIUM}: the browser measurement is skipped (apt-get install chromium)")
        args.skip_browser = True
    if not args.skip_browser:
        try:
            import playwright  # noqa: F401
        except ImportError:
            print("playwright is not installed (pip install epochal[dev]): the browser measurement is skipped")
            args.skip_browser = True
    static = Path(epochal.__file__).with_name("server") / "static" / "index.html"
    if not args.skip_browser and not static.is_file():
        print("the web UI is not built (cd web && npm ci && npm run build): the browser measurement is skipped")
        args.skip_browser = True

    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="epochal-bench-dashboard-"))
        if not args.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        store = args.store if args.store is not None else work / "store"
        logs = work / "logs"

        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"Dashboard speed on {os.cpu_count()} CPUs, {platform.platform()}; load average before: {load}")
        print("  " + ", ".join(f"{k} {v}" for k, v in versions().items()))
        print(f"  store: {args.runs:,} small runs + one run of {len(BIG_KEYS)} keys x {args.points:,} points; "
              f"server: `epochal ui` in a subprocess, requests over loopback; medians of {args.reads} warm calls\n")

        print("  building the store" if args.store is None or find_empty(store) else "  checking the store", flush=True)
        built = build_store(store, args.runs, args.points)
        if built.seconds is None:
            print(f"  reusing the bench runs already in {store}")
        else:
            print(f"  store built in {built.seconds:.1f} s")
        print(f"  {SERIES_KEY} of the big run is stored in {built.chunks_per_key} chunk(s)", flush=True)

        api = measure_api(store, logs, built.big_id, args.points, args.reads)
        print(f"  API measured at {time.perf_counter() - began:6.1f} s", flush=True)

        browser = None
        if not args.skip_browser:
            browser = measure_browser(store, logs, built.big_id, args.warm_pages)
            print(f"  Chromium measured at {time.perf_counter() - began:6.1f} s", flush=True)

        exported, boards = None, []
        if not args.skip_tensorboard and not tensorboard_missing:
            logdir, exported = export_for_tensorboard(store, built, args.points, args.tb_points, work)
            print(f"  exported for TensorBoard at {time.perf_counter() - began:6.1f} s", flush=True)
            last_step = (exported.points_per_key - 1) * exported.stride
            for samples in (None, exported.points_per_key):
                boards.append(measure_tensorboard(logdir, logs, built.big_name, exported.points_per_key, last_step,
                                                  samples, args.reads))
            print(f"  TensorBoard measured at {time.perf_counter() - began:6.1f} s", flush=True)

        print()
        report(args, built, api, browser, exported, boards, tensorboard_missing, began, work)
        if args.keep:
            print(f"Kept {work}" + (f" (the store is in {store})" if args.store is not None else ""))
    return 0


def find_empty(store: Path) -> bool:
    return not (store / "epochal.db").is_file()


def report(args: argparse.Namespace, built: Built, api: ApiFigures, browser: BrowserFigures | None,
           exported: ExportFigures | None, boards: list[TensorBoardFigures], tensorboard_missing: bool,
           began: float, work: Path) -> None:
    pts = f"{args.points:,}"
    scale = 1.0
    if exported is not None and exported.stride > 1:
        scale = args.points / exported.points_per_key
    default = next((b for b in boards if b.mode == "default sampling"), None)
    every = next((b for b in boards if b.mode == "every point"), None)
    tb_none = "skipped" if args.skip_tensorboard else "not installed" if tensorboard_missing else "-"

    def tb(value: Callable[[TensorBoardFigures], str], board: TensorBoardFigures | None) -> str:
        return tb_none if board is None else value(board)

    def loaded(board: TensorBoardFigures) -> str:
        if scale == 1.0:
            return ms(board.loaded_s)
        estimate = board.startup_s + (board.loaded_s - board.startup_s) * scale
        return f"{ms(board.loaded_s)} (~{ms(estimate)} *)"

    def one_tag_every(board: TensorBoardFigures) -> str:
        measured = f"{ms(board.tag_ms / 1e3)} ({board.tag_points:,} pts)"
        return measured if scale == 1.0 else f"{measured} (~{ms(board.tag_ms * scale / 1e3)} *)"

    rows = [
        (f"runs API, {api.runs_count:,} runs: first call", ms(api.runs_first_ms / 1e3), "n/a"),
        (f"runs API, {api.runs_count:,} runs: median", ms(api.runs_ms / 1e3), "n/a"),
        (f"series of {pts} points -> {api.series_points:,}: first call", ms(api.series_first_ms / 1e3), "n/a"),
        (f"series of {pts} points: median warm", ms(api.series_ms / 1e3),
         tb(lambda b: f"{ms(b.tag_ms / 1e3)} ({b.tag_points:,} pts)", default)),
        (f"zoom to 10% ({api.zoom_in_range:,} -> {api.zoom_points:,} points)", ms(api.zoom_ms / 1e3), "n/a"),
        (f"smoothed series, smoothing={SMOOTHING}: first call", ms(api.smooth_first_ms / 1e3), "n/a"),
        ("smoothed series: median warm", ms(api.smooth_ms / 1e3), "n/a"),
        ("smoothed series: another weight each call, median", ms(api.smooth_other_weight_ms / 1e3), "n/a"),
        ("server start until it answers", ms(api.startup_s), tb(lambda b: ms(b.startup_s), default)),
        (f"server start until all {len(BIG_KEYS)} keys served", ms(api.all_keys_s), tb(loaded, default)),
        ("  same, TensorBoard keeping every point", "", tb(loaded, every)),
        ("  one tag once loaded, every point", "", tb(one_tag_every, every)),
    ]
    if browser is not None and browser.failed is None:
        rows += [
            (f"Chromium: goto until {len(BIG_KEYS)} keys drawn, cold", f"{browser.cold_s:.2f} s", "not measured"),
            (f"Chromium: same, warm (median of {len(browser.warm_s)})", f"{statistics.median(browser.warm_s):.2f} s",
             "not measured"),
        ]
    notes = [
        (f"series: GET /api/runs/<id>/series?key={SERIES_KEY}&points={SERIES_POINTS} "
         f"({api.series_bytes / 1e3:,.0f} kB of JSON); the big run's {SERIES_KEY} is stored in {built.chunks_per_key} "
         f"chunk{'s' if built.chunks_per_key != 1 else ''}"),
        f"runs API: GET /api/runs?metric=valid/loss&metric=valid/accuracy ({api.runs_bytes / 1e3:,.0f} kB of JSON)",
        (f"smoothed series: the same with smoothing={SMOOTHING} (time-weighted EMA over all {pts} points, then "
         "downsampled); its first call decodes every point, a warm one is an answer kept, another weight is smoothed "
         "again from the decoded points"),
        "first call: the first of its kind in a fresh `epochal ui` process (the database file in the OS page cache)",
        (f"all keys served: from starting `epochal ui` until GET .../series?points={SERIES_POINTS} has answered for "
         "each key, one after the other"),
    ]
    if browser is not None and browser.failed is not None:
        notes.append(f"Chromium: the {len(BIG_KEYS)} keys were not all drawn: {browser.failed}")
    elif browser is not None:
        warm = ", ".join(f"{s:.2f}" for s in browser.warm_s)
        page = ", ".join(f"{m:,.0f}" for m in browser.warm_page_ms)
        notes.append(
            f"Chromium {browser.chromium}, headless, viewport {browser.viewport}: from page.goto('#/run/<id>') until "
            f"every .chart has data-points > 0; cold = new browser context against a fresh server process "
            f"({browser.cold_api_requests} API requests; the page's performance.now() then: "
            f"{browser.cold_page_ms:,.0f} ms); warm = new pages in that context: {warm} s "
            f"(performance.now(): {page} ms)"
        )
    if browser is not None:
        for error in dict.fromkeys(browser.errors):
            notes.append(f"Chromium reported: {error[:300]}")
    if exported is not None:
        what = (f"the big run itself, {len(BIG_KEYS)} x {exported.points_per_key:,} points" if exported.stride == 1
                else f"the same {len(BIG_KEYS)} curves at every {_ordinal(exported.stride)} step, {len(BIG_KEYS)} x "
                     f"{exported.points_per_key:,} points")
        full = exported.us_per_point * len(BIG_KEYS) * args.points / 1e6
        notes.append(
            f"TensorBoard read an event file of {what} ({exported.file_bytes / 1e6:,.0f} MB), written by "
            f"epochal's exporter in {exported.seconds:.1f} s ({exported.us_per_point:.1f} us a point; all "
            f"{len(BIG_KEYS) * args.points:,} points would take ~{full:,.0f} s)"
        )
        notes.append("TensorBoard: from starting `tensorboard --logdir` until GET /data/plugin/scalars/scalars has "
                     "returned each tag complete (its last step; every point where all are kept), polled every 50 ms, "
                     "one tag after the other, so that keeping every point includes sending each tag's points once")
        if scale != 1.0:
            notes.append(f"* measured on {exported.points_per_key:,} points a tag; the part after the server answers "
                         f"scaled x{scale:.3g} to {pts} points a tag (its reader goes through every record, and keeping "
                         "every point, every point is sent)")
        if every is not None:
            notes.append(f"every point: --samples_per_plugin scalars={every.samples} (scalars=0 returns no points)")
    print_side_by_side(rows, notes)

    targets = [
        Target(f"runs API for {api.runs_count:,} runs < {TARGET_RUNS_MS:g} ms, median", f"{api.runs_ms:.1f} ms",
               api.runs_ms < TARGET_RUNS_MS),
        Target(f"runs API for {api.runs_count:,} runs < {TARGET_RUNS_MS:g} ms, first call",
               f"{api.runs_first_ms:.1f} ms", api.runs_first_ms < TARGET_RUNS_MS),
        Target(f"downsampled {pts}-point series < {TARGET_SERIES_MS:g} ms, median warm", f"{api.series_ms:.1f} ms",
               api.series_ms < TARGET_SERIES_MS),
        Target(f"downsampled {pts}-point series < {TARGET_SERIES_MS:g} ms, first call", f"{api.series_first_ms:.1f} ms",
               api.series_first_ms < TARGET_SERIES_MS),
    ]
    charts = f"{len(BIG_KEYS)} keys of {pts} points drawn < {TARGET_CHARTS_S:g} s"
    if browser is None:
        targets.append(Target(charts, "skipped", None))
    elif browser.failed is not None:
        targets.append(Target(charts, "not drawn", False))
    else:
        warm = statistics.median(browser.warm_s)
        targets += [Target(f"{charts}, cold", f"{browser.cold_s:.2f} s", browser.cold_s < TARGET_CHARTS_S),
                    Target(f"{charts}, warm", f"{warm:.2f} s", warm < TARGET_CHARTS_S)]
    print_targets(targets)
    total = time.perf_counter() - began
    building = "" if built.seconds is None else f" (building the store {built.seconds:.1f} s)"
    print(f"\nTotal time {total:.1f} s{building}")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "store"},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "versions": versions()},
            "store_build_s": built.seconds,
            "chunks_per_key": built.chunks_per_key,
            "api": asdict(api),
            "browser": None if browser is None else asdict(browser),
            "tensorboard_export": (None if exported is None
                                   else {**asdict(exported), "us_per_point": exported.us_per_point}),
            "tensorboard": [asdict(b) for b in boards],
            "targets": [asdict(t) for t in targets],
            "total_s": total,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"Results written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
