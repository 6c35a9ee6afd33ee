"""Smoothing in a real browser: the server smooths every stored point, so the curve drawn does not
change with the chart's size or zoom, and the toolbar's method is the one drawn."""

import json
import urllib.parse
import urllib.request

import numpy as np
import pytest

import epochal

TIMEOUT_MS = 20_000
CHART = '.chart[data-key="loss"]'


@pytest.fixture
def uneven(tmp_path, serve):
    """20,000 noisy points at uneven steps: more than a chart asks for, so it gets min/max buckets."""
    folder = tmp_path / "epochal-runs"
    rng = np.random.default_rng(3)
    steps = np.cumsum(rng.integers(1, 6, 20_000)).tolist()
    values = (np.exp(-np.arange(20_000) / 5000) + rng.normal(0, 0.5, 20_000)).tolist()
    with epochal.start("smoothing", "uneven", store=folder) as run:
        for step, value in zip(steps, values):
            run.log({"loss": value}, step=step)
    return serve(folder), run.id


def _draws(page) -> int:
    return int(page.locator(CHART).get_attribute("data-draws") or 0)


def _next_draw(page, after: int) -> None:
    page.wait_for_function(
        f"Number(document.querySelector('{CHART}')?.dataset.draws ?? 0) > {after}", timeout=TIMEOUT_MS
    )


def _smoothed_last(page) -> tuple[float, float]:
    x, value = page.locator(CHART).get_attribute("data-smoothed-last").split(",")
    return float(x), float(value)


def _api_smoothed_last(url: str, run_id: str, method: str) -> tuple[float, float]:
    query = urllib.parse.urlencode({"key": "loss", "points": 2, "smoothing": 0.9, "smoothing_method": method})
    with urllib.request.urlopen(f"{url}api/runs/{run_id}/series?{query}") as response:
        body = json.load(response)
    return body["x"][-1], body["smoothed"][-1]


def test_the_smoothed_curve_stays_put_across_sizes_zoom_and_reloads(page, uneven):
    dashboard, run_id = uneven
    page.goto(f"{dashboard.url}#/run/{run_id}")
    page.wait_for_selector(f"{CHART}[data-points]", timeout=TIMEOUT_MS)
    assert page.locator(CHART).get_attribute("data-smoothed-last") is None  # no smoothing yet

    before = _draws(page)
    page.locator(".toolbar .smoothing input[type=range]").fill("0.9")
    _next_draw(page, before)
    wide = _smoothed_last(page)
    assert wide == pytest.approx(_api_smoothed_last(dashboard.url, run_id, "time_ema"), rel=1e-12)
    wide_points = int(page.locator(CHART).get_attribute("data-points"))

    # Narrower: the chart asks for another number of points (other buckets), the curve is the same.
    page.set_viewport_size({"width": 640, "height": 900})
    page.reload()  # the smoothing setting is kept
    page.wait_for_selector(f"{CHART}[data-smoothed-last]", timeout=TIMEOUT_MS)
    assert int(page.locator(CHART).get_attribute("data-points")) != wide_points
    assert _smoothed_last(page) == pytest.approx(wide, rel=1e-12)

    # Zoomed into the last 40%: finer points, the same smoothed value at the last step.
    over = page.locator(f"{CHART} .u-over")
    box = over.bounding_box()
    before = _draws(page)
    # Positions in the plot, taken when the mouse moves: the page may still be laying out around it.
    over.hover(position={"x": box["width"] * 0.6, "y": box["height"] / 2})
    page.mouse.down()
    over.hover(position={"x": box["width"] * 0.8, "y": box["height"] / 2})
    over.hover(position={"x": box["width"] - 1, "y": box["height"] / 2})
    page.mouse.up()
    page.wait_for_selector(f"{CHART}[data-zoomed]", timeout=TIMEOUT_MS)
    _next_draw(page, before)
    assert _smoothed_last(page) == pytest.approx(wide, rel=1e-12)

    # The other method: TensorBoard's per-point EMA differs on uneven steps, and is what is drawn.
    before = _draws(page)
    page.locator(".toolbar select.smoothing-method").select_option("ema")
    _next_draw(page, before)
    per_point = _smoothed_last(page)
    assert per_point == pytest.approx(_api_smoothed_last(dashboard.url, run_id, "ema"), rel=1e-12)
    assert per_point[1] != pytest.approx(wide[1], rel=1e-6)
