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
    page.wait_for_selector('.chart[data-key="train/loss"][data-points]', timeout=TIMEOUT_MS)
    assert drawn_points(page, "train/loss") == 300
    with epochal.Store(e2e_store[0]) as store:
        keys = store.keys(ids["alpha"])
    page.wait_for_function(f"document.querySelectorAll('.chart[data-points]').length >= {len(keys)}",
                           timeout=TIMEOUT_MS)
    drawn = set(page.eval_on_selector_all(".chart[data-points]", "els => els.map(e => e.dataset.key)"))
    assert drawn == set(keys)
    assert page.locator("text=valid/accuracy").count() > 0


def test_selecting_two_runs_overlays_their_curves(page, dashboard, e2e_store):
    page.goto(dashboard.url)
    for name in ("alpha", "beta"):
        row = page.locator("table.runs-table tbody tr", has=page.locator("td.name a", has_text=name))
        row.locator("td.check input").check()
    page.locator("a.btn", has_text="Compare").click()
    page.wait_for_url("**#/compare**")
    chart = page.locator('.chart[data-key="train/loss"]').first
    chart.locator("xpath=self::*[@data-points]").wait_for(timeout=TIMEOUT_MS)
    assert int(chart.get_attribute("data-points")) == 600  # 300 points of each run
    legend = chart.inner_text()
    assert "alpha" in legend and "beta" in legend


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
    chart = page.locator('.chart[data-key="train/loss"]')
    chart.locator("xpath=self::*[@data-points]").wait_for(timeout=TIMEOUT_MS)
    with page.expect_download() as download_info:
        chart.locator("a", has_text="CSV").click()
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
        with epochal.Store(e2e_store[0]) as store:
            count = len(store.keys(ids["demo"]))
        page.wait_for_function(f"document.querySelectorAll('.chart[data-points]').length >= {count}",
                               timeout=TIMEOUT_MS)
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


def test_system_metrics_are_a_group_of_their_own_after_the_runs_metrics(page, tmp_path, serve):
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
    page.wait_for_selector('details.chart-group[data-group="system"]', timeout=TIMEOUT_MS)
    shown = page.eval_on_selector_all("details.chart-group", "els => els.map(e => e.dataset.group)")
    assert shown == ["train", "valid", "samples", "weights", "system"]  # the machine after every group of the run
