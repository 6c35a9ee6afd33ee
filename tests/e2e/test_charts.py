"""The run and compare pages' charts in a real browser: a thousand keys, splits overlaid, the machine's
metrics apart, a key logged once, numbers for people, log axes in parallel coordinates."""

import time
from urllib.parse import parse_qs, urlparse

import pytest

import epochal

TIMEOUT_MS = 20_000


def drawn_keys(page) -> set[str]:
    """Every key drawn so far: a chart of splits overlaid draws several."""
    keys = page.eval_on_selector_all(".chart[data-points]", "els => els.map(e => e.dataset.keys)")
    return {key for joined in keys for key in joined.split(" ")}


def series_keys(urls: list[str]) -> list[str]:
    return [parse_qs(urlparse(url).query)["key"][0] for url in urls]


@pytest.fixture(scope="module")
def chart_store(tmp_path_factory):
    """Small runs, each made for one behaviour below."""
    folder = tmp_path_factory.mktemp("charts") / "epochal-runs"
    ids = {}
    with epochal.Store(folder) as store:
        with epochal.start("charts", "splits", store=store, config={"optim": {"lr": 0.07495866834877081}}) as run:
            for step in range(40):
                run.log({"train/loss": 1 / (step + 1), "train/lr": 0.1})
                if step % 10 == 9:
                    run.log({"valid/loss": 1.5 / (step + 1), "valid/accuracy": 0.123456789})
                run.step()
            run.log({"test/top5": 0.9})  # logged once
        ids["splits"] = run.id
        for lr in (1e-4, 1e-3, 1e-2, 1e-1):
            with epochal.start("sweep", f"lr={lr:g}", store=store, config={"lr": lr, "batch": 32}) as run:
                for step in range(5):
                    run.log({"train/loss": lr + 1 / (step + 1), "valid/loss": 2 * lr + 1 / (step + 1)})
                    run.step()
            ids[f"lr={lr:g}"] = run.id
    return folder, ids


def test_a_run_of_a_thousand_keys_draws_the_charts_in_view_first(page, tmp_path, serve):
    folder = tmp_path / "epochal-runs"
    with epochal.start("wide", "thousand", store=folder) as run:
        for step in range(3):
            run.log({f"block{b:02d}/metric{m:02d}": step + b + m / 100 for b in range(20) for m in range(50)})
            run.step()
    url = f"{serve(folder).url}#/run/{run.id}"
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url) if "/series?" in r.url else None)
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(".chart[data-points]", timeout=TIMEOUT_MS)
    first = time.perf_counter() - start
    page.wait_for_load_state("networkidle")
    print(f"\n1,000 keys: first chart drawn {1e3 * first:.0f} ms after goto; "
          f"{len(requested)} series fetched before scrolling")
    assert 0 < len(requested) < 60
    assert page.locator(".chart.placeholder").count() > 900
    assert page.locator(".chart").count() == 1000

    # Further down, a chart is fetched and drawn once it scrolls into view.
    last = page.locator('.chart[data-key="block19/metric49"]')
    assert "block19/metric49" not in series_keys(requested)
    last.scroll_into_view_if_needed()
    page.wait_for_selector('.chart[data-key="block19/metric49"][data-points="3"]', timeout=TIMEOUT_MS)
    assert "block19/metric49" in series_keys(requested)

    # The filter keeps the matching keys, says how many, and stays in the address.
    page.fill(".key-filter", "block03/metric4*")
    page.wait_for_function("document.querySelectorAll('.chart').length === 10", timeout=TIMEOUT_MS)
    shown = page.eval_on_selector_all(".chart", "els => els.map(e => e.dataset.key)")
    assert shown == [f"block03/metric{m}" for m in range(40, 50)]
    assert page.locator(".filter-count").inner_text() == "10 of 1,000 keys"
    assert page.locator('details.chart-group[data-group="block03"] .count').inner_text() == "10 of 50"
    assert "filter=block03%2Fmetric4*" in page.url or "filter=block03/metric4*" in page.url
    page.wait_for_function("document.querySelectorAll('.chart[data-points]').length === 10", timeout=TIMEOUT_MS)
    page.fill(".key-filter", "metric07")  # a part of the key
    page.wait_for_function("document.querySelectorAll('.chart').length === 20", timeout=TIMEOUT_MS)
    page.reload()  # the filter comes back from the address
    page.wait_for_function("document.querySelectorAll('.chart').length === 20", timeout=TIMEOUT_MS)
    assert page.locator(".key-filter").input_value() == "metric07"


def test_splits_share_a_chart_until_separated(page, chart_store, serve):
    folder, ids = chart_store
    page.goto(f"{serve(folder).url}#/run/{ids['splits']}")
    loss = page.locator('.chart[data-key="{train,valid}/loss"]')
    loss.locator("xpath=self::*[@data-points]").wait_for(timeout=TIMEOUT_MS)
    assert loss.get_attribute("data-keys") == "train/loss valid/loss"
    assert loss.get_attribute("data-points") == "44"  # 40 training points and 4 validation ones
    legend = loss.locator(".chart-legend").inner_text()
    assert "train" in legend and "valid" in legend
    page.wait_for_selector('.chart[data-key="train/lr"][data-points]', timeout=TIMEOUT_MS)
    with epochal.Store(folder) as store:
        keys = set(store.keys(ids["splits"]))
    page.wait_for_function("document.querySelectorAll('.chart[data-points]').length === "
                           "document.querySelectorAll('.chart').length", timeout=TIMEOUT_MS)
    assert drawn_keys(page) == keys  # every key somewhere
    groups = page.eval_on_selector_all("details.chart-group", "els => els.map(e => e.dataset.group)")
    assert groups == ["splits", "train", "valid", "test"]

    page.locator(".overlay-toggle").uncheck()
    page.wait_for_selector('.chart[data-key="train/loss"][data-points="40"]', timeout=TIMEOUT_MS)
    page.wait_for_selector('.chart[data-key="valid/loss"][data-points="4"]', timeout=TIMEOUT_MS)
    assert loss.count() == 0
    groups = page.eval_on_selector_all("details.chart-group", "els => els.map(e => e.dataset.group)")
    assert groups == ["train", "valid", "test"]
    page.reload()  # the choice is remembered
    page.wait_for_selector('.chart[data-key="valid/loss"][data-points]', timeout=TIMEOUT_MS)
    assert not page.locator(".overlay-toggle").is_checked()


def test_a_key_logged_once_draws_its_x_axis_around_the_point(page, chart_store, serve):
    folder, ids = chart_store
    page.goto(f"{serve(folder).url}#/run/{ids['splits']}")
    chart = page.locator('.chart[data-key="test/top5"]')
    chart.locator("xpath=self::*[@data-points='1']").wait_for(timeout=TIMEOUT_MS)
    low, high = map(float, chart.get_attribute("data-x-range").split(","))
    assert low < 40 < high and high - low <= 10 and abs((low + high) / 2 - 40) < 1e-9
    page.locator(".seg", has_text="Wall time").click()
    page.wait_for_function(
        """() => { const c = document.querySelector('.chart[data-key="test/top5"]');
                   const [lo, hi] = c.dataset.xRange.split(',').map(Number); return Math.abs(hi - lo - 120) < 1e-3; }""",
        timeout=TIMEOUT_MS)


def test_numbers_read_at_four_significant_digits_with_the_exact_value_on_hover(page, chart_store, serve):
    folder, ids = chart_store
    url = serve(folder).url
    page.goto(f"{url}#/run/{ids['splits']}")
    row = page.locator("table.data-table tr", has=page.locator("button", has_text="valid/accuracy"))
    row.wait_for(timeout=TIMEOUT_MS)
    last = row.locator("td").nth(1)
    assert last.inner_text() == "0.1235" and last.get_attribute("title") == "0.123456789"
    lr = page.locator(".tree li.leaf", has=page.locator(".tree-key", has_text="lr")).locator(".tree-val")
    assert lr.inner_text() == "0.07496" and lr.get_attribute("title") == "0.07495866834877081"

    sweep = [ids[f"lr={lr:g}"] for lr in (1e-4, 1e-3)]
    page.goto(f"{url}#/compare?runs={ids['splits']},{','.join(sweep)}")
    cell = page.locator("table.config-diff tr", has=page.locator("code", has_text="optim.lr")).locator("td").nth(1)
    cell.wait_for(timeout=TIMEOUT_MS)
    assert cell.inner_text() == "0.07496" and cell.get_attribute("title") == "0.07495866834877081"


def test_a_learning_rate_over_decades_gets_a_log_axis_that_a_click_makes_linear(page, chart_store, serve):
    folder, ids = chart_store
    runs = ",".join(ids[f"lr={lr:g}"] for lr in (1e-4, 1e-3, 1e-2, 1e-1))
    page.goto(f"{serve(folder).url}#/compare?runs={runs}")
    axis = page.locator('.pc-axis[data-key="lr"]')
    axis.wait_for(timeout=TIMEOUT_MS)
    assert axis.get_attribute("data-scale") == "log"
    # On a log axis the four runs sit a third apart; on a linear one three of them crowd the bottom.
    assert axis.locator(".pc-tick").all_text_contents() == ["0.1", "0.01", "0.001", "0.0001"]
    axis.locator(".pc-label").click()
    page.wait_for_selector('.pc-axis[data-key="lr"][data-scale="linear"]', timeout=TIMEOUT_MS)
    page.locator('.pc-axis[data-key="lr"] .pc-sub').click()
    page.wait_for_selector('.pc-axis[data-key="lr"][data-scale="log"]', timeout=TIMEOUT_MS)
    # The compare page's charts: each run in its colour, the splits in one chart, dashed apart.
    chart = page.locator('.chart[data-key="{train,valid}/loss"]')
    chart.locator("xpath=self::*[@data-points='40']").wait_for(timeout=TIMEOUT_MS)
    assert "lr=0.0001 valid" in chart.locator(".chart-legend").inner_text()
