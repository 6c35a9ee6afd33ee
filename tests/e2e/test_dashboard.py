"""The dashboard in a real browser: runs table, run page charts, compare, live updates, CSV."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import epochal
from epochal.store.records import RunUpdate, WriteBatch

TIMEOUT_MS = 20_000


def drawn_points(page, key: str) -> int:
    value = page.locator(f'.chart[data-key="{key}"]').first.get_attribute("data-points")
    return int(value or 0)


def drawn_keys(page) -> set[str]:
    """Every key drawn so far: a chart of splits overlaid draws several."""
    keys = page.eval_on_selector_all(".chart[data-points]", "els => els.map(e => e.dataset.keys)")
    return {key for joined in keys for key in joined.split(" ")}


# Charts are drawn once they come near the screen: wait for those in the window's first screen.
FIRST_SCREEN_DRAWN = """() => {
    const charts = [...document.querySelectorAll('.chart')].filter(c => c.getBoundingClientRect().top < innerHeight);
    return charts.length > 0 && charts.every(c => Number(c.dataset.points) > 0);
}"""


def test_the_runs_table_lists_every_run(page, dashboard, e2e_store):
    page.goto(dashboard.url)
    rows = page.locator("table.runs-table tbody tr")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    names = rows.locator("td.name a").all_inner_texts()
    with epochal.Store(e2e_store[0]) as store:
        assert sorted(names) == sorted(r.name for r in store.runs())
    assert "alpha" in names and "gamma" in names


def test_a_click_opens_the_run_and_its_charts_draw(page, dashboard, e2e_store):
    _, ids = e2e_store
    page.goto(dashboard.url)
    page.locator("table.runs-table td.name a", has_text="alpha").click()
    page.wait_for_url(f"**#/run/{ids['alpha']}")
    # train/loss and valid/loss are one metric on two splits: one chart.
    page.wait_for_selector('.chart[data-key="{train,valid}/loss"][data-points]', timeout=TIMEOUT_MS)
    assert drawn_points(page, "{train,valid}/loss") == 301  # 300 training points, one validation point
    with epochal.Store(e2e_store[0]) as store:
        keys = store.keys(ids["alpha"])
    page.wait_for_function("document.querySelectorAll('.chart:not([data-points])').length === 0", timeout=TIMEOUT_MS)
    assert drawn_keys(page) == set(keys)
    assert page.locator("text=valid/accuracy").count() > 0


def test_selecting_two_runs_overlays_their_curves(page, dashboard, e2e_store):
    page.goto(dashboard.url)
    for name in ("alpha", "beta"):
        row = page.locator("table.runs-table tbody tr", has=page.locator("td.name a", has_text=name))
        row.locator("td.check input").check()
    page.locator("a.btn", has_text="Compare").click()
    page.wait_for_url("**#/compare**")
    chart = page.locator('.chart[data-key="{train,valid}/loss"]').first
    chart.locator("xpath=self::*[@data-points]").wait_for(timeout=TIMEOUT_MS)
    assert int(chart.get_attribute("data-points")) == 602  # 300 training points and 1 validation point of each run
    legend = chart.inner_text()
    assert "alpha train" in legend and "beta valid" in legend


def test_a_run_written_by_another_process_gains_points_without_a_reload(page, dashboard, e2e_store):
    writer = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("slow_writer.py")), str(e2e_store[0]), "live-e2e"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        run_id = writer.stdout.readline().strip()
        page.goto(f"{dashboard.url}#/run/{run_id}")
        page.wait_for_selector('.chart[data-key="train/loss"][data-points]', timeout=TIMEOUT_MS)
        first = drawn_points(page, "train/loss")
        page.wait_for_function(
            f"""() => {{
                const chart = document.querySelector('.chart[data-key="train/loss"]');
                return chart && Number(chart.dataset.points) >= {first} + 10;
            }}""",
            timeout=TIMEOUT_MS,
        )
        assert drawn_points(page, "train/loss") >= first + 10
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
    finally:
        writer.kill()
        writer.wait()


def test_a_charts_csv_download_matches_the_store(page, dashboard, e2e_store):
    _, ids = e2e_store
    page.goto(f"{dashboard.url}#/run/{ids['demo']}")
    chart = page.locator('.chart[data-keys~="train/loss"]')  # with valid/loss, and the demo's test/loss
    chart.locator("xpath=self::*[@data-points]").wait_for(timeout=TIMEOUT_MS)
    with page.expect_download() as download_info:
        chart.locator(".csv-menu summary").click()  # a CSV holds one key: a menu of the chart's keys
        chart.locator("a", has_text="train/loss").click()
    text = Path(download_info.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    with epochal.Store(e2e_store[0]) as store:
        history = store.history(ids["demo"], "train/loss")
    assert [int(r["step"]) for r in rows] == history.steps.tolist()
    assert [float(r["value"]) for r in rows] == history.values.tolist()


@pytest.mark.parametrize("which", ["runs", "run"])
def test_screenshot_for_the_readme(page, dashboard, e2e_store, tmp_path, which):
    """Pictures of the runs page and of the demo run's page; `make screenshots` puts them in docs/."""
    _, ids = e2e_store
    target = f"{dashboard.url}#/" if which == "runs" else f"{dashboard.url}#/run/{ids['demo']}"
    page.set_viewport_size({"width": 1400, "height": 560 if which == "runs" else 1100})
    page.goto(target)
    if which == "runs":
        page.locator("table.runs-table tbody tr").first.wait_for(timeout=TIMEOUT_MS)
    else:
        page.wait_for_function(FIRST_SCREEN_DRAWN, timeout=TIMEOUT_MS)
    folder = Path(os.environ.get("EPOCHAL_DOCS_DIR") or tmp_path)
    path = folder / f"dashboard-{which}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 20_000  # a drawn page, not a blank one


def test_a_ddp_runs_page_lists_each_ranks_process(page, dashboard, e2e_store):
    folder, ids = e2e_store
    with epochal.Store(folder) as store:
        store.write(WriteBatch(run_updates=(RunUpdate(ids["gamma"], ranks=(("node-a", 101), ("node-b", 202))),)))
    page.goto(f"{dashboard.url}#/run/{ids['gamma']}")
    ranks = page.locator("dl.kv dt", has_text="Ranks")
    ranks.wait_for(timeout=TIMEOUT_MS)
    assert page.locator("dl.kv dd").nth(page.locator("dl.kv dt").all_inner_texts().index("Ranks")).inner_text() \
        == "2: node-a / 101, node-b / 202"
    page.goto(f"{dashboard.url}#/run/{ids['beta']}")  # a single process: no such row
    page.locator("dl.kv dt", has_text="Host / pid").wait_for(timeout=TIMEOUT_MS)
    assert "Ranks" not in page.locator("dl.kv dt").all_inner_texts()


def test_system_metrics_are_a_section_of_their_own_after_the_runs_metrics(page, tmp_path, serve):
    import time

    folder = tmp_path / "epochal-runs"
    with epochal.start("machine", "sampled", store=folder, system_metrics=0.1) as run:
        for step in range(30):
            run.log({"train/loss": 1 / (step + 1), "valid/loss": 2 / (step + 1), "samples/s": 100.0, "weights/norm": 1.0})
            run.step()
            time.sleep(0.02)
    with epochal.Store(folder) as store:
        assert "system/cpu_percent" in store.keys(run.id)
    page.goto(f"{serve(folder).url}#/run/{run.id}")
    system = page.locator('details.chart-group[data-group="system"]')
    system.wait_for(state="attached", timeout=TIMEOUT_MS)
    shown = page.eval_on_selector_all("details.chart-group", "els => els.map(e => e.dataset.group)")
    assert shown == ["splits", "samples", "weights", "system"]  # the machine after every group of the run
    assert system.locator("summary .group-name").inner_text() == "System"
    # Closed at first: its charts wait, unfetched, until it is opened.
    page.wait_for_selector('.chart[data-key="weights/norm"][data-points]', timeout=TIMEOUT_MS)
    assert not system.evaluate("d => d.open")
    assert system.locator(".chart[data-points]").count() == 0
    system.locator("summary").click()
    page.wait_for_selector('.chart[data-key="system/cpu_percent"][data-points]', timeout=TIMEOUT_MS)
    page.reload()  # opened once, it stays open
    page.wait_for_selector('.chart[data-key="system/cpu_percent"][data-points]', timeout=TIMEOUT_MS)
