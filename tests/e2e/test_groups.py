"""Runs grouped by config keys on the compare page: a line per group (the mean of its runs at each
step) with a band, min-max or ±1 std."""

import json
import statistics

import pytest

import epochal

TIMEOUT_MS = 20_000
LRS = (0.01, 0.1)
SEEDS = (0, 1, 2)


def loss(lr: float, seed: int, step: int) -> float:
    return lr * 10 + seed * 0.5 + 1 / (step + 1)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """2 learning rates × 3 seeds, each logging train/loss at steps 0..4."""
    folder = tmp_path_factory.mktemp("groups") / "epochal-runs"
    ids = []
    with epochal.Store(folder) as store:
        for lr in LRS:
            for seed in SEEDS:
                with epochal.start("sweep", f"lr={lr} seed={seed}", store=store, config={"lr": lr, "seed": seed}) as run:
                    for step in range(5):
                        run.log({"train/loss": loss(lr, seed, step)})
                        run.step()
                ids.append(run.id)
    return folder, ids


def groups_of(page) -> list[dict]:
    sel = '.chart[data-key="train/loss"][data-groups]'
    page.wait_for_selector(sel, timeout=TIMEOUT_MS)
    return json.loads(page.get_attribute(sel, "data-groups"))


def test_grouping_by_lr_draws_each_groups_mean_and_band(page, sweep, serve):
    folder, ids = sweep
    page.goto(f"{serve(folder).url}#/compare?runs={','.join(ids)}&key=train/loss")
    page.wait_for_selector('.chart[data-key="train/loss"][data-points="30"]', timeout=TIMEOUT_MS)
    assert page.get_attribute('.chart[data-key="train/loss"]', "data-groups") is None

    page.click(".group-by > summary")
    keys = page.eval_on_selector_all(".group-key input", "els => els.map(e => e.value)")
    assert keys == ["lr", "seed"]
    page.click(".group-all-but")  # every differing key but seed: lr
    assert "group=lr" in page.url

    groups = groups_of(page)
    assert [g["name"] for g in groups] == ["lr=0.01 (3 runs)", "lr=0.1 (3 runs)"]
    for lr, g in zip(LRS, groups):
        assert g["x"] == [0, 1, 2, 3, 4]
        for i, step in enumerate(g["x"]):
            values = [loss(lr, seed, step) for seed in SEEDS]
            assert g["mean"][i] == pytest.approx(statistics.mean(values))
            assert g["lo"][i] == pytest.approx(min(values))
            assert g["hi"][i] == pytest.approx(max(values))
    assert page.locator(".chart-legend .legend-name").all_inner_texts()[:2] == ["lr=0.01 (3 runs)", "lr=0.1 (3 runs)"]

    page.select_option(".band-select", "std")
    page.wait_for_function(
        """() => JSON.parse(document.querySelector('.chart[data-key="train/loss"]').dataset.groups || "[]")
               .every(g => g.lo[0] !== g.lo[0] + 1 && Math.abs(g.hi[0] - g.mean[0] - 0.5) < 1e-9)""",
        timeout=TIMEOUT_MS,
    )
    values = [loss(LRS[0], seed, 0) for seed in SEEDS]
    g = groups_of(page)[0]
    assert g["lo"][0] == pytest.approx(statistics.mean(values) - statistics.stdev(values))
    assert g["hi"][0] == pytest.approx(statistics.mean(values) + statistics.stdev(values))
    assert "band=std" in page.url

    # The address brings the grouping back.
    page.goto("about:blank")
    page.goto(f"{serve(folder).url}#/compare?runs={','.join(ids)}&key=train/loss&group=lr&band=std")
    assert len(groups_of(page)) == 2
