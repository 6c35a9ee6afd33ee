"""A real dashboard for the browser tests: `epochal ui` on a free loopback port over a store made
here, and Debian's Chromium driven headless by Playwright (no browser is ever downloaded)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import epochal

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STATIC = Path(epochal.__file__).parent / "server" / "static" / "index.html"
SERVER_DIR = Path(__file__).parents[1] / "server"
sys.path.insert(0, str(SERVER_DIR))

from sample_runs import make_dynamics_run, make_runs  # noqa: E402

#: The projection's settings for the browser tests' fitted run: quick, and good enough to look at.
DYNAMICS_FIT = {"max_epochs": 4}


def _require_browser_and_ui() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    if not STATIC.is_file():
        pytest.fail("the web UI is not built: run `make web` (npm ci && npm run build in web/)")


@pytest.fixture(scope="session")
def e2e_store(tmp_path_factory):
    """Three small runs and a short demo run, as a user's store would hold them."""
    # Run from the store's parent with a relative name, as a user would: the pictures made from
    # this store show `epochal-runs`, not a temporary folder.
    folder = tmp_path_factory.mktemp("e2e") / "epochal-runs"
    subprocess.run(
        [sys.executable, "-m", "epochal.demo", "--store", folder.name, "--epochs", "8"],
        check=True, capture_output=True, timeout=300, cwd=folder.parent,
    )
    with epochal.Store(folder) as store:
        ids = make_runs(store)
        ids["demo"] = next(r.id for r in store.runs(project="demo"))
    return folder, ids


class Dashboard:
    def __init__(self, store_dir: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "epochal.cli", "ui", "--store", store_dir.name, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=store_dir.parent,
        )
        line = self.process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"`epochal ui` printed no URL: {line!r} {self.process.stderr.read()}")
        self.url = found.group(1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def dynamics_store(tmp_path_factory):
    """Runs with recorded training dynamics: one with a fitted projection, one without, one too small
    to fit, and one that recorded none. A store of their own, so that the pictures of the other
    pages stay as they were."""
    from epochal.dynamics import evaluate, fit

    folder = tmp_path_factory.mktemp("e2e-dynamics") / "epochal-runs"
    with epochal.Store(folder) as store:
        fitted = make_dynamics_run(store, "digits", samples=600, epochs=5)
        fit(fitted.path, **DYNAMICS_FIT)
        evaluate(fitted.path)
        ids = {
            "fitted": fitted.id,
            "unfitted": make_dynamics_run(store, "digits-unfitted", samples=300, epochs=3).id,
            "tiny": make_dynamics_run(store, "tiny", samples=12, epochs=2, sprites=False).id,
        }
        plain = epochal.start("digits", "plain", store=store)
        plain.log({"loss": 1.0})
        plain.finish()
        ids["plain"] = plain.id
    return folder, ids


@pytest.fixture(scope="session")
def dynamics_dashboard(dynamics_store):
    _require_browser_and_ui()
    served = Dashboard(dynamics_store[0])
    yield served
    served.stop()


def _serving():
    """A function that serves a store with `epochal ui`, and the servers it started, to stop."""
    started: list[Dashboard] = []

    def start(store_dir: Path) -> Dashboard:
        _require_browser_and_ui()
        started.append(Dashboard(store_dir))
        return started[-1]

    return start, started


@pytest.fixture
def serve():
    """``serve(store_dir)``: `epochal ui` over a store a test made; stopped when the test ends."""
    start, started = _serving()
    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def serve_for_module():
    """``serve_for_module(store_dir)``: as ``serve``, for a store a module's fixture made once."""
    start, started = _serving()
    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="session")
def dashboard(e2e_store):
    _require_browser_and_ui()
    served = Dashboard(e2e_store[0])
    yield served
    served.stop()


@pytest.fixture(scope="session")
def browser():
    _require_browser_and_ui()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _expected_error(msg) -> bool:
    """Answers the pages show as they are, which Chromium logs as errors: the run page asks every run
    for its training dynamics and its sample ledger (a 404 means it recorded none); the runs page sends
    the conditions a user typed (a 422 names what is wrong, shown under them)."""
    url = msg.location.get("url", "")
    if "status of 404" in msg.text and re.search(r"/api/runs/[^/]+/(dynamics|ledger)$", url):
        return True
    return "status of 422" in msg.text and re.search(r"/api/run(s|-ids)\?", url) is not None


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda msg: errors.append(msg.text)
              if msg.type == "error" and not _expected_error(msg) else None)
    yield opened
    context.close()
    assert not errors, f"the page logged errors: {errors}"
