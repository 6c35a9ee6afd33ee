"""Plotting a run: a real image file, one panel per metric with its splits together, gaps for NaN."""

from __future__ import annotations

import math

import matplotlib.image
import numpy as np
import pytest

import epochal
from epochal.plot import panel_of, plot_run, run_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_id(store):
    with epochal.start(project="mnist", name="baseline", store=store) as run:
        for step in range(3000):
            run.log({"train/loss": 1 / (step + 1), "train/acc": step / 3000, "lr": 0.1})
            if step % 100 == 0:
                run.log({"valid/loss": math.nan if step == 500 else 2 / (step + 1), "valid/acc": step / 4000})
            run.step()
        run.log({"test/acc": 0.75})
    return run.id


def panels(figure):
    return {axes.get_title(): axes for axes in figure.axes}


def test_panel_is_the_part_after_the_first_slash():
    assert panel_of("train/loss") == panel_of("valid/loss") == "loss"
    assert panel_of("valid/acc/top1") == "acc/top1"
    assert panel_of("lr") == "lr"
    assert panel_of("odd/") == "odd/"


def test_plot_writes_a_png_that_reads_back(store, run_id, tmp_path):
    path = tmp_path / "run.png"
    assert plot_run(store, run_id, path) == path
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(path)
    width, height = run_figure(store, run_id).get_size_inches() * 100
    assert pixels.shape == (round(height), round(width), 4)
    assert pixels.shape[1] > pixels.shape[0] > 300  # three panels side by side
    assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    assert {p.name for p in tmp_path.iterdir()} == {"store", "run.png"}  # no temporary file left


def test_splits_of_a_metric_share_a_panel_with_a_legend(store, run_id):
    figure = run_figure(store, run_id)
    assert figure.get_suptitle() == "baseline (mnist)"
    by_title = panels(figure)
    assert list(by_title) == ["acc", "loss", "lr"]
    acc, loss, lr = by_title["acc"], by_title["loss"], by_title["lr"]
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train/loss", "valid/loss"]
    assert [t.get_text() for t in acc.get_legend().get_texts()] == ["test/acc", "train/acc", "valid/acc"]
    assert lr.get_legend() is None  # the title already says it
    assert {axes.get_xlabel() for axes in figure.axes} == {"step"}
    valid = next(line for line in loss.get_lines() if line.get_label() == "valid/loss")
    np.testing.assert_array_equal(valid.get_xdata(), np.arange(0, 3000, 100))
    assert np.isnan(valid.get_ydata()[5])  # drawn as a gap
    assert np.isfinite(np.delete(valid.get_ydata(), 5)).all()


def test_long_series_are_downsampled(store, run_id):
    figure = run_figure(store, run_id, keys=["train/loss"], max_points=200)
    (line,) = figure.axes[0].get_lines()
    assert 50 <= len(line.get_xdata()) <= 200
    assert line.get_xdata()[0] == 0 and line.get_xdata()[-1] == 2999
    default = run_figure(store, run_id, keys=["train/loss"]).axes[0].get_lines()[0]
    np.testing.assert_array_equal(default.get_xdata(), store.history(run_id, "train/loss", max_points=2000).steps)
    assert len(default.get_xdata()) < 3000


def test_lone_points_get_a_marker(store, run_id):
    (axes,) = run_figure(store, run_id, keys=["test/acc"]).axes
    assert axes.get_title() == "acc"
    markers = [line for line in axes.get_lines() if line.get_marker() == "o"]
    assert len(markers) == 1 and list(markers[0].get_ydata()) == [0.75]


def test_epoch_only_runs_are_drawn_against_the_epoch(store):
    with epochal.start(project="p", name="epochs", store=store) as run:
        for _ in range(5):
            run.log({"valid/loss": 1.0})
            run.epoch()
    (axes,) = run_figure(store, run.id).axes
    assert axes.get_xlabel() == "epoch"
    np.testing.assert_array_equal(axes.get_lines()[0].get_xdata(), np.arange(5))


def test_unknown_key_or_run_raises_and_writes_nothing(store, run_id, tmp_path):
    with pytest.raises(epochal.SeriesNotFoundError):
        plot_run(store, run_id, tmp_path / "a.png", keys=["train/loss", "nope"])
    with pytest.raises(epochal.RunNotFoundError):
        plot_run(store, "nope", tmp_path / "b.png")
    with epochal.start(project="p", name="silent", store=store) as silent:
        pass
    with pytest.raises(epochal.SeriesNotFoundError, match="no values"):
        plot_run(store, silent.id, tmp_path / "c.png")
    assert [p.name for p in tmp_path.iterdir()] == ["store"]


def test_no_pyplot_figures_are_left_open(store, run_id, tmp_path):
    import matplotlib.pyplot as plt

    plot_run(store, run_id, tmp_path / "run.png")
    assert plt.get_fignums() == []
