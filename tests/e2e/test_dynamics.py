"""The training-dynamics page in a real browser: the WebGL projection over its background, epochs,
colours, hover, pinning, filters, the data map, and fitting a projection from the page."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import epochal
from epochal.dynamics import files, sample_stats

TIMEOUT_MS = 20_000
#: A fit started from the page runs the CLI with its default settings.
FIT_TIMEOUT_MS = 300_000


@pytest.fixture
def opened(page, dynamics_dashboard, dynamics_store):
    """The fitted run's dynamics page, drawn."""
    _, ids = dynamics_store
    page.goto(f"{dynamics_dashboard.url}#/run/{ids['fitted']}/dynamics")
    page.wait_for_selector(".projection-plot[data-points][data-background='1']", timeout=TIMEOUT_MS)
    return page


@pytest.fixture(scope="module")
def stats(dynamics_store):
    folder, ids = dynamics_store
    with epochal.Store(folder) as store:
        path = Path(store.run(ids["fitted"]).path)
    return sample_stats(path / files.FOLDER), files.read_json(files.projection_folder(path) / files.META_FILE)


def attribute(page, selector: str, name: str) -> str | None:
    return page.locator(selector).first.get_attribute(name)


def screen_position(page, index: int) -> tuple[float, float]:
    """Where sample ``index`` is drawn, in page pixels."""
    x, y = page.evaluate(f"document.querySelector('.projection-plot').screenPosition({index})")
    box = page.locator(".projection-plot").bounding_box()
    return box["x"] + x, box["y"] + y


def plot_pixels(page) -> np.ndarray:
    shot = page.locator(".projection-plot canvas").screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])


def dark_pixels(pixels: np.ndarray) -> int:
    return int((pixels < 70).all(axis=2).sum())


def wait_drawn(page, **attributes) -> None:
    """Until the projection card carries these data- attributes (and the points have moved there)."""
    condition = " && ".join(f"card.dataset.{k} === {v!r}" for k, v in attributes.items())
    page.wait_for_function(
        f"(() => {{ const card = document.querySelector('.projection-card'); return card && {condition}; }})()",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_timeout(900)  # the transition


def test_the_run_page_links_to_the_dynamics_only_of_runs_that_recorded_them(page, dynamics_dashboard, dynamics_store):
    _, ids = dynamics_store
    page.goto(f"{dynamics_dashboard.url}#/run/{ids['plain']}")
    page.wait_for_selector(".run-head h1", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)
    assert page.locator("a.dynamics-link").count() == 0
    page.goto(f"{dynamics_dashboard.url}#/run/{ids['fitted']}")
    page.locator("a.dynamics-link").click(timeout=TIMEOUT_MS)
    page.wait_for_url(f"**#/run/{ids['fitted']}/dynamics")
    page.wait_for_selector(".projection-plot[data-points]", timeout=TIMEOUT_MS)


def test_every_sample_is_drawn_in_its_class_colour_over_the_background(opened, stats):
    stats, meta = stats
    assert attribute(opened, ".projection-plot", "data-points") == str(len(stats.labels)) == "600"
    assert attribute(opened, ".projection-plot", "data-visible") == "600"
    assert attribute(opened, ".projection-card", "data-epoch") == str(meta["epochs"][-1])
    pixels = plot_pixels(opened)
    box = opened.locator(".projection-plot").bounding_box()
    matches = 0
    for index in range(0, 600, 12):
        x, y = screen_position(opened, index)
        px, py = round(x - box["x"]), round(y - box["y"])
        if 0 <= py < pixels.shape[0] and 0 <= px < pixels.shape[1]:
            matches += np.abs(pixels[py, px] - rgb(meta["colors"][stats.labels[index]])).max() <= 48
    assert matches >= 0.6 * 50, f"only {matches} of 50 samples show their class colour"
    # The background image fills the extent: few pure white pixels are left inside the plot.
    white = (pixels >= 250).all(axis=2).mean()
    assert white < 0.5, f"{white:.0%} of the plot is blank"


def test_the_slider_moves_the_points_to_another_epoch(opened, stats):
    _, meta = stats
    before = screen_position(opened, 10)
    opened.locator(".epoch-slider").fill("0")
    wait_drawn(opened, epoch=str(meta["epochs"][0]))
    assert opened.locator(".epoch-label").inner_text() == f"epoch {meta['epochs'][0]}"
    assert screen_position(opened, 10) != before
    opened.get_by_role("button", name="Next epoch").click()
    wait_drawn(opened, epoch=str(meta["epochs"][1]))


def test_play_steps_through_the_epochs(opened, stats):
    _, meta = stats
    opened.locator(".epoch-slider").fill("0")
    wait_drawn(opened, epoch=str(meta["epochs"][0]))
    opened.locator(".play-btn").click()
    wait_drawn(opened, epoch=str(meta["epochs"][2]))
    opened.locator(".play-btn").click()  # pause
    assert opened.locator(".projection-card").get_attribute("data-playing") is None


def test_colour_by_switches_to_predictions_and_to_right_or_wrong(opened, stats):
    stats, _ = stats
    last = len(stats.epochs) - 1
    opened.locator(".seg[data-mode=correctness]").click()
    wait_drawn(opened, colorBy="correctness")
    assert "right" in opened.locator(".class-legend").inner_text()
    pixels = plot_pixels(opened)
    box = opened.locator(".projection-plot").bounding_box()
    green, red = rgb("#16a34a"), rgb("#dc2626")
    matches = 0
    for index in range(0, 600, 12):
        x, y = screen_position(opened, index)
        right = stats.predictions[last][index] == stats.labels[index]
        pixel = pixels[round(y - box["y"]), round(x - box["x"])]
        matches += np.abs(pixel - (green if right else red)).max() <= 48
    assert matches >= 0.6 * 50
    opened.locator(".seg[data-mode=prediction]").click()
    wait_drawn(opened, colorBy="prediction")


def test_hovering_a_sample_shows_its_label_and_prediction_history(opened, stats):
    stats, _ = stats
    index = int(np.flatnonzero(stats.split == "test")[3])
    opened.mouse.move(*screen_position(opened, index))
    tip = opened.locator(".plot-tip")
    tip.wait_for(state="visible", timeout=TIMEOUT_MS)
    hovered = int(opened.locator(".projection-plot").get_attribute("data-hovered"))
    text = tip.inner_text()
    assert f"label {stats.labels[hovered]}" in text.replace("\n", " ")
    assert tip.locator(".hcell").count() == len(stats.epochs)
    assert tip.locator(".hcell").all_inner_texts() == [str(p) for p in stats.predictions[:, hovered]]
    assert tip.locator("img.sprite").count() == 1
    opened.mouse.move(5, 5)
    tip.wait_for(state="hidden", timeout=TIMEOUT_MS)


def test_a_click_pins_a_sample_and_draws_its_path_through_the_epochs(opened, stats):
    stats, meta = stats
    before = plot_pixels(opened)
    index = 42
    opened.mouse.click(*screen_position(opened, index))
    opened.wait_for_selector(".projection-plot[data-trajectory]", timeout=TIMEOUT_MS)
    pinned = int(opened.locator(".projection-card").get_attribute("data-pinned"))
    assert attribute(opened, ".projection-plot", "data-trajectory") == str(len(meta["epochs"]))
    card = opened.locator(".sample-card")
    assert card.get_attribute("data-index") == str(pinned)
    assert card.locator(".hcell").count() == len(stats.epochs)
    opened.wait_for_timeout(300)
    after = plot_pixels(opened)
    assert dark_pixels(after) > dark_pixels(before) + 50  # the path is drawn in near-black
    card.get_by_role("button", name="unpin").click()
    opened.wait_for_function("!document.querySelector('.projection-plot').dataset.trajectory", timeout=TIMEOUT_MS)


def test_filters_reduce_the_points_drawn(opened, stats):
    stats, _ = stats
    last = len(stats.epochs) - 1

    def visible() -> int:
        opened.wait_for_timeout(300)
        return int(attribute(opened, ".projection-plot", "data-visible"))

    opened.locator(".misclassified-filter").check()
    assert visible() == int((stats.predictions[last] != stats.labels).sum()) < 600
    opened.locator(".misclassified-filter").uncheck()
    opened.locator(".class-filter").select_option("3")
    assert visible() == int((stats.labels == 3).sum())
    opened.locator(".split-test").uncheck()
    assert visible() == int(((stats.labels == 3) & (stats.split == "train")).sum())
    opened.locator(".class-filter").select_option("")
    opened.locator(".split-test").check()
    opened.locator(".category-filter").select_option("ambiguous")
    assert visible() == int((stats.category == "ambiguous").sum())
    opened.locator(".category-filter").select_option("")
    opened.locator(".forgotten-filter").check()
    assert visible() == int((stats.forgetting > 0).sum())
    assert opened.locator(".shown-note").inner_text().startswith(f"{visible()} of 600")
    assert int(attribute(opened, ".datamap", "data-points")) == visible()


def test_a_likely_mislabeled_sample_pins_from_the_list(opened, stats):
    stats, _ = stats
    rows = opened.locator(".mislabeled tr.pickable")
    top = stats.likely_mislabeled(50)
    assert rows.count() == len(top) > 0
    rows.first.click()
    opened.wait_for_function(f"document.querySelector('.projection-card').dataset.pinned === '{top[0]}'",
                             timeout=TIMEOUT_MS)
    assert opened.locator(".datamap").get_attribute("data-points") == "600"


def test_the_quality_table_has_a_row_per_epoch_and_their_mean(opened, stats):
    _, meta = stats
    table = opened.locator(".quality-table[data-key=epoch]")
    rows = table.locator("tbody tr td:first-child").all_inner_texts()
    assert rows == [*map(str, meta["epochs"]), "mean"]
    assert table.locator("tr.current td").first.inner_text() == str(meta["epochs"][-1])
    opened.locator(".epoch-slider").fill("1")
    wait_drawn(opened, epoch=str(meta["epochs"][1]))
    assert table.locator("tr.current td").first.inner_text() == str(meta["epochs"][1])


def test_the_fit_button_fits_a_projection_and_the_page_fills_in(page, dynamics_dashboard, dynamics_store):
    _, ids = dynamics_store
    page.goto(f"{dynamics_dashboard.url}#/run/{ids['unfitted']}/dynamics")
    button = page.locator(".fit-btn")
    assert button.inner_text(timeout=TIMEOUT_MS) == "Fit projection"
    page.wait_for_selector(".datamap[data-points='300']", timeout=TIMEOUT_MS)  # no projection needed for it
    button.click()
    page.wait_for_selector(".fit-card[data-state=running] .fit-progress", timeout=TIMEOUT_MS)
    page.wait_for_selector(".projection-plot[data-points='300'][data-background='1']", timeout=FIT_TIMEOUT_MS)
    assert page.locator(".fit-card").is_hidden()
    assert page.locator(".quality-table tbody tr").count() >= 3
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded


def test_a_failed_fit_shows_its_message(page, dynamics_dashboard, dynamics_store):
    _, ids = dynamics_store
    page.goto(f"{dynamics_dashboard.url}#/run/{ids['tiny']}/dynamics")
    page.locator(".fit-btn").click(timeout=TIMEOUT_MS)
    page.wait_for_selector(".fit-card[data-state=failed] .fit-error", timeout=FIT_TIMEOUT_MS)
    assert "samples" in page.locator(".fit-error").inner_text()
    assert page.locator(".fit-btn").inner_text() == "Fit again"


def test_screenshot_for_the_readme_dynamics(page, dynamics_dashboard, dynamics_store, tmp_path):
    """The fitted run's page with a sample pinned; `make screenshots` puts it in docs/."""
    _, ids = dynamics_store
    page.set_viewport_size({"width": 1400, "height": 1050})
    page.goto(f"{dynamics_dashboard.url}#/run/{ids['fitted']}/dynamics")
    page.wait_for_selector(".projection-plot[data-points][data-background='1']", timeout=TIMEOUT_MS)
    page.locator(".mislabeled tr.pickable").first.click()
    page.wait_for_selector(".projection-plot[data-trajectory]", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)
    page.evaluate("window.scrollTo(0, 0)")
    folder = Path(os.environ.get("EPOCHAL_DOCS_DIR") or tmp_path)
    path = folder / "dynamics.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 50_000


# -- a run imported from a Time-Travelling Visualizer folder --------------------------------------

TTV_MODEL = """
import torch
from torch import nn


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.classifier = nn.Sequential(nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 10))

    def feature(self, x):
        return torch.relu(self.hidden(x.reshape(len(x), -1)))

    def prediction(self, h):
        return self.classifier(h)

    def forward(self, x):
        return self.prediction(self.feature(x))
"""
TTV_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A served store with one run imported from a training_dynamic folder written as the seed's workflow
    writes it (its SummaryWriter, model.py with a two-layer prediction head, config.json), then fitted."""
    import json
    import re
    import subprocess
    import sys

    import torch
    from sklearn.datasets import load_digits

    from epochal.compat.ttv import SummaryWriter
    from epochal.dynamics import fit
    from epochal.interop.ttv import import_ttv

    root = tmp_path_factory.mktemp("e2e-ttv")
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x[:600] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8), torch.tensor(y[:600])
    namespace = {"__name__": "ttv_model"}
    exec(TTV_MODEL, namespace)  # noqa: S102
    torch.manual_seed(0)
    model = namespace["DigitsNet"]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    folder = root / "training_dynamic"
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:480], y[:480]), batch_size=64)
    with SummaryWriter(folder, 64, 0, store=root / "writer-runs") as writer:
        writer.write_meta_data(loader, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[480:], y[480:])))
        for epoch in (1, 2, 3):
            for xb, yb in [batch for _ in range(8) for batch in loader]:  # a confident model: coloured backgrounds
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(xb), yb).backward()
                optimizer.step()
            writer.write_checkpoint(model.state_dict(), epoch, epoch - 1)
    (folder / "Model" / "model.py").write_text(TTV_MODEL)
    section = {"CLASSES": TTV_CLASSES, "TRAINING": {"NET": "DigitsNet"}, "VISUALIZATION": {"LAMBDA2": 0.3}}
    (folder / "config.json").write_text(json.dumps({"TimeVis": section, "DVI": section}))
    store_dir = root / "epochal-runs"
    run_id = import_ttv(folder, store_dir, method="TimeVis", trust=True)
    with epochal.Store(store_dir) as store:
        fit(store.run(run_id).path, max_epochs=4)
    process = subprocess.Popen([sys.executable, "-m", "epochal.cli", "ui", "--store", store_dir.name, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    line = process.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
    assert found, f"`epochal ui` printed no URL: {line!r}"
    yield found.group(1), run_id, store_dir
    process.terminate()
    process.wait(10)


def test_an_imported_run_shows_its_backgrounds_and_one_colour_per_class(page, imported):
    url, run_id, store_dir = imported
    with epochal.Store(store_dir) as store:
        path = Path(store.run(run_id).path)
    stats, meta = sample_stats(path / files.FOLDER), files.read_json(files.projection_folder(path) / files.META_FILE)
    assert meta["backgrounds"] and len(set(meta["colors"])) == 10
    page.goto(f"{url}#/run/{run_id}/dynamics")
    page.wait_for_selector(".projection-plot[data-points][data-background='1']", timeout=TIMEOUT_MS)
    legend = page.locator(".projection-card .legend-item").all_inner_texts()
    assert [text for text in legend if " · " in text] == [f"{c} · {n}" for c, n in enumerate(TTV_CLASSES)]
    pixels = plot_pixels(page)
    box = page.locator(".projection-plot").bounding_box()
    matches, shown = 0, set()
    for index in range(0, 600, 12):
        x, y = screen_position(page, index)
        px, py = round(x - box["x"]), round(y - box["y"])
        if 0 <= py < pixels.shape[0] and 0 <= px < pixels.shape[1]:
            colour = meta["colors"][stats.labels[index]]
            if np.abs(pixels[py, px] - rgb(colour)).max() <= 48:
                matches += 1
                shown.add(colour)
    assert matches >= 0.6 * 50 and len(shown) >= 8, f"{matches} of 50 samples in their class colour, {len(shown)} colours"
    white = (pixels >= 250).all(axis=2).mean()
    assert white < 0.5, f"{white:.0%} of the plot is blank: no background"
