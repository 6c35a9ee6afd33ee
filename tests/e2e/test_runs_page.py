"""The runs page over 3,000 runs: the server pages, sorts and filters; the page keeps a window of rows
in the DOM, keeps a selection across pages, and announces runs started while it is open."""

import time
import uuid

import numpy as np
import pytest

import epochal
from epochal.store.records import Config, RunRecord, SeriesChunk, WriteBatch

TIMEOUT_MS = 20_000
RUNS = 3000
ROWS = "table.runs-table tbody tr[data-id]"


def _loss(i: int) -> float:
    """Run i's validation loss: a permutation of 1 + k/RUNS, so run 0 has the lowest, 1.0."""
    return 1 + (i * 37 % RUNS) / RUNS


def _record(i: int, started: float) -> RunRecord:
    return RunRecord(
        id=uuid.uuid4().hex[:12], name=f"r{i:04d}", project="sweep", status="finished", started=started,
        ended=started + 60, heartbeat=started + 60, host="test", pid=1, command="test", git_commit=None,
        python="3", torch=None, description="", tags=("sweep",), config=Config({"lr": 10.0 ** -(1 + i % 3), "seed": i}),
        steps=2, epochs=0, segment=0, path="",
    )


def _chunk(run_id: str, key: str, values: list[float]) -> SeriesChunk:
    n = len(values)
    return SeriesChunk(run_id, key, 0, np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                       np.array(values, dtype=np.float64), np.zeros(n, dtype=np.int64))


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    """RUNS finished runs written straight through the store's one write path (epochal.start per run
    takes ~25 ms each): r0000 the oldest, a minute apart, a train and a valid loss each."""
    folder = tmp_path_factory.mktemp("e2e-runs") / "epochal-runs"
    began = time.perf_counter()
    base = time.time() - RUNS * 60 - 3600
    ids: dict[str, str] = {}
    with epochal.Store(folder) as store:
        for first in range(0, RUNS, 500):
            records = [_record(i, base + 60 * i) for i in range(first, min(RUNS, first + 500))]
            chunks = [c for i, r in zip(range(first, RUNS), records) for c in (
                _chunk(r.id, "train/loss", [2.0, _loss(i) + 0.1]), _chunk(r.id, "valid/loss", [_loss(i) + 0.5, _loss(i)]))]
            store.write(WriteBatch(new_runs=tuple(records), chunks=tuple(chunks), refresh_summaries=tuple(r.id for r in records)))
            ids.update((r.name, r.id) for r in records)
    print(f"\n{RUNS} runs written in {time.perf_counter() - began:.1f} s")
    return folder, ids


@pytest.fixture(scope="module")
def big_dashboard(big_store, serve_for_module):
    return serve_for_module(big_store[0])


def _names(page) -> list[str]:
    return page.locator(f"{ROWS} td.name a").all_inner_texts()


def _first_name_is(page, name: str) -> None:
    page.wait_for_function(f"document.querySelector('{ROWS} td.name a')?.textContent === '{name}'", timeout=TIMEOUT_MS)


def _scroll(page, where: str) -> None:
    page.locator(".runs-scroll").evaluate(f"el => (el.scrollTop = {where})")


def test_the_first_rows_show_at_once_and_only_a_window_of_rows_is_built(page, big_dashboard):
    began = time.perf_counter()
    page.goto(big_dashboard.url)
    page.locator(ROWS).first.wait_for(timeout=TIMEOUT_MS)
    print(f"\nfirst row of {RUNS} runs after {1000 * (time.perf_counter() - began):.0f} ms")
    assert _names(page)[0] == f"r{RUNS - 1:04d}"  # the newest first
    assert page.locator("table.runs-table").get_attribute("data-total") == str(RUNS)
    assert page.locator(".count-note").inner_text() == "3,000 runs"
    assert page.locator(ROWS).count() < 100  # a window, not 3,000 rows


def test_scrolling_to_the_bottom_shows_the_oldest_run(page, big_dashboard):
    page.goto(big_dashboard.url)
    page.locator(ROWS).first.wait_for(timeout=TIMEOUT_MS)
    _scroll(page, "el.scrollHeight")
    page.locator(ROWS, has_text="r0000").wait_for(timeout=TIMEOUT_MS)
    assert _names(page)[-1] == "r0000"
    assert page.locator(ROWS).count() < 100
    # Every matching run selected: more than the compare page takes, and the page says so.
    page.locator(".select-all").click()
    page.locator(".compare-limit").wait_for(timeout=TIMEOUT_MS)
    assert "3,000 selected" in page.locator(".selection-note").inner_text()
    assert "disabled" in page.locator("a.btn", has_text="Compare").get_attribute("class")


def test_sorting_by_a_metric_shows_the_best_first(page, big_dashboard):
    page.goto(big_dashboard.url)
    header = page.locator('th[data-sort="valid/loss:best"]')
    header.wait_for(timeout=TIMEOUT_MS)
    header.click()
    _first_name_is(page, "r0000")  # the lowest loss
    assert page.locator(f"{ROWS} td.metric.best").first.inner_text().startswith("1")


def test_conditions_filter_on_the_server_and_a_bad_one_shows_its_message(page, big_dashboard):
    page.goto(big_dashboard.url)
    page.locator(ROWS).first.wait_for(timeout=TIMEOUT_MS)
    where = page.locator("input.where")
    where.fill("lr<0.005, valid/loss:best<1.1")
    where.press("Enter")
    expected = sum(1 for i in range(RUNS) if i % 3 == 2 and _loss(i) < 1.1)
    page.locator(".count-note", has_text=f"{expected} matching runs").wait_for(timeout=TIMEOUT_MS)
    assert 0 < page.locator(ROWS).count() <= expected
    where.fill("nosuch<1")
    where.press("Enter")
    error = page.locator(".query-error")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "no run has the config key 'nosuch'" in error.inner_text()
    assert page.locator(ROWS).count() == 0


def test_a_selection_over_pages_and_all_matching_runs_opens_in_compare(page, big_dashboard, big_store):
    _, ids = big_store
    page.goto(big_dashboard.url)
    page.locator(ROWS).first.wait_for(timeout=TIMEOUT_MS)
    page.locator(ROWS, has_text="r2999").locator("td.check input").check()
    _scroll(page, "el.scrollHeight")  # the last page
    page.locator(ROWS, has_text="r0010").locator("td.check input").check()
    _scroll(page, "0")
    assert page.locator(ROWS, has_text="r2999").locator("td.check input").is_checked()  # kept while scrolling
    where = page.locator("input.where")
    where.fill("seed<3")
    where.press("Enter")
    page.locator(".count-note", has_text="3 matching runs").wait_for(timeout=TIMEOUT_MS)
    page.locator(".select-all", has_text="select all 3 matching").click()
    compare = page.locator("a.btn", has_text="Compare 5")
    compare.wait_for(timeout=TIMEOUT_MS)
    compare.click()
    page.wait_for_url("**#/compare**")
    chosen = page.url.split("runs=")[1].split("&")[0].split(",")
    assert sorted(chosen) == sorted(ids[n] for n in ("r2999", "r0010", "r0000", "r0001", "r0002"))
    page.locator("h1", has_text="Comparing 5 runs").wait_for(timeout=TIMEOUT_MS)


def test_a_run_started_while_the_page_is_open_is_announced_then_shown(page, big_dashboard, big_store):
    """Last in the module: it adds a run to the store."""
    folder, _ = big_store
    page.goto(big_dashboard.url)
    page.locator(ROWS).first.wait_for(timeout=TIMEOUT_MS)
    with epochal.Store(folder) as store:
        store.write(WriteBatch(new_runs=(_record(RUNS, time.time()),)))
    announced = page.locator("button.new-runs")
    announced.wait_for(timeout=TIMEOUT_MS)
    assert announced.inner_text() == "1 new run — show"
    assert _names(page)[0] == f"r{RUNS - 1:04d}"  # the list did not move
    announced.click()
    _first_name_is(page, f"r{RUNS:04d}")
    assert page.locator(".count-note").inner_text() == "3,001 runs"
    assert announced.is_hidden()


def test_grouping_by_a_config_key_shows_each_groups_count_and_mean_and_std(page, big_dashboard, big_store):
    with epochal.Store(big_store[0]) as store:  # as the store holds them now (other tests add runs)
        best = {run_id: s["valid/loss"].min for run_id, s in store.key_summaries(["valid/loss"]).items()}
        by_lr: dict[float, list[str]] = {}  # lr -> its runs
        for record in store.runs():
            if "lr" in record.config.flat():
                by_lr.setdefault(record.config["lr"], []).append(record.id)
    page.goto(big_dashboard.url)
    page.wait_for_selector(ROWS, timeout=TIMEOUT_MS)
    page.locator("details.picker summary", has_text="Group by").click()
    page.locator("details.picker[open] label.picker-item", has_text="lr").locator("input").check()
    page.wait_for_function(f"document.querySelectorAll('table.groups-table tbody tr').length === {len(by_lr)}",
                           timeout=TIMEOUT_MS)
    header = page.locator("table.groups-table thead th").all_inner_texts()
    column = next(i for i, text in enumerate(header) if text.startswith("valid/loss"))
    for row in page.locator("table.groups-table tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        runs = by_lr[float(row.locator("td").first.get_attribute("title"))]
        members = [best[run_id] for run_id in runs if run_id in best]  # the runs that logged valid/loss
        assert cells[1] == f"{len(runs):,}" and len(members) >= 1000
        mean, std = cells[column].split(" ± ")
        assert float(mean) == pytest.approx(np.mean(members), rel=1e-3)  # shown to 4 significant digits
        assert float(std) == pytest.approx(np.std(members, ddof=1), rel=1e-3)


def test_config_values_in_the_table_read_for_people_and_exactly_on_hover(page, tmp_path, serve):
    folder = tmp_path / "epochal-runs"
    for lr in (0.07495866834877081, 0.003):
        with epochal.start("p", store=folder, config={"lr": lr, "seed": 1234567}, system_metrics=False) as run:
            run.log({"valid/loss": lr})
    page.goto(serve(folder).url)
    cell = page.locator(f"{ROWS} td.cfg", has_text="0.07496").first
    cell.wait_for(timeout=TIMEOUT_MS)
    assert cell.inner_text() == "0.07496" and cell.get_attribute("title") == "lr = 0.07495866834877081"
