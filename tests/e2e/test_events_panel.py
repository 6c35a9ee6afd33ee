"""The run page's ledger events in a real browser: marks on the loss and accuracy charts at each epoch's
last step, the events panel a mark opens (counts, the samples behind a kind of event, a sample's history,
the confusion matrix and its cells' samples), the panel kept in the address, and the link to a sample's
path in the projection."""

import json

import numpy as np
import pytest
import torch

import epochal

TIMEOUT_MS = 20_000
SAMPLES, TRAIN, EPOCHS = 300, 240, 5
#: Training samples given a wrong label on purpose: the ledger should find them.
FLIPPED = np.arange(0, TRAIN, 20)


@pytest.fixture(scope="module")
def ledger_store(tmp_path_factory):
    """A run that recorded a ledger (with flipped labels), its dynamics with sprites and a fitted projection;
    and a run with a loss and no ledger."""
    from sklearn.datasets import load_digits

    from epochal.dynamics import fit

    folder = tmp_path_factory.mktemp("e2e-ledger") / "epochal-runs"
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:SAMPLES] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[:SAMPLES])
    y[FLIPPED] = (y[FLIPPED] + 1) % 10
    split = ["train"] * TRAIN + ["test"] * (SAMPLES - TRAIN)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    with epochal.Store(folder) as store:
        with epochal.start("digits", "ledger", store=store, system_metrics=False) as run:
            for _ in range(EPOCHS):
                for batch in torch.randperm(TRAIN, generator=generator).split(40):
                    logits = model(x[batch])
                    loss = torch.nn.functional.cross_entropy(logits, y[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    run.record_samples(batch, logits.detach(), y[batch])
                    run.log({"train/loss": loss, "train/accuracy": (logits.argmax(1) == y[batch]).float().mean(),
                             "train/lr": 0.2})
                    run.step()
                run.record_dynamics(model, x, y, split=split, image_shape=(8, 8))
                run.epoch()
        fit(run.path, max_epochs=EPOCHS)
        with epochal.start("digits", "plain", store=store, system_metrics=False) as plain:
            for step in range(20):
                plain.log({"train/loss": 1 / (step + 1)})
                plain.step()
    return folder, {"ledger": run.id, "plain": plain.id}


@pytest.fixture(scope="module")
def served(ledger_store, serve_for_module):
    return serve_for_module(ledger_store[0])


def get(page, served, path: str, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = page.request.get(f"{served.url}api{path}" + (f"?{query}" if query else ""))
    assert response.ok, response.text()
    return json.loads(response.text())


@pytest.fixture
def opened(page, served, ledger_store):
    """The ledger run's page with the marks on its loss chart drawn."""
    run = ledger_store[1]["ledger"]
    page.goto(f"{served.url}#/run/{run}")
    page.wait_for_selector('.chart[data-key="train/loss"] .event-mark', timeout=TIMEOUT_MS)
    return page, run


def test_marks_sit_on_the_loss_and_accuracy_charts_at_each_epochs_last_step(opened, served):
    page, run = opened
    ledger = get(page, served, f"/runs/{run}/ledger")
    assert len(ledger["epochs"]) == EPOCHS and ledger["sprites"] and ledger["projection"]
    marks = page.locator('.chart[data-key="train/loss"] .event-mark')
    assert marks.count() == EPOCHS
    assert [int(m) for m in marks.evaluate_all("els => els.map(e => e.dataset.epoch)")] == [e["epoch"] for e in ledger["epochs"]]
    second = ledger["epochs"][1]
    title = marks.nth(1).get_attribute("title")
    assert f"{second['flips']} flips" in title and f"{second['forgotten']} forgotten" in title
    # Each mark stands where the chart draws its epoch's last step.
    box = page.locator('.chart[data-key="train/loss"] .u-over').bounding_box()
    x_range = [float(v) for v in page.locator('.chart[data-key="train/loss"]').get_attribute("data-x-range").split(",")]
    for mark, epoch in zip(marks.all(), ledger["epochs"], strict=True):
        at = mark.bounding_box()
        expected = box["x"] + (epoch["last_step"] - x_range[0]) / (x_range[1] - x_range[0]) * box["width"]
        assert abs(at["x"] + at["width"] / 2 - expected) <= 2
    page.wait_for_selector('.chart[data-key="train/accuracy"] .event-mark', timeout=TIMEOUT_MS)
    assert page.locator('.chart[data-key="train/accuracy"] .event-mark').count() == EPOCHS
    page.wait_for_selector('.chart[data-key="train/lr"][data-points]', timeout=TIMEOUT_MS)
    assert page.locator('.chart[data-key="train/lr"] .event-mark').count() == 0


def test_a_mark_opens_the_epochs_events_with_the_apis_counts_and_samples(opened, served):
    page, run = opened
    ledger = get(page, served, f"/runs/{run}/ledger")
    epoch = ledger["epochs"][1]
    page.locator(f'.chart[data-key="train/loss"] .event-mark[data-epoch="{epoch["epoch"]}"]').click()
    panel = page.locator(".events-panel")
    panel.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert panel.get_attribute("data-epoch") == str(epoch["epoch"])
    assert panel.locator(".events-title").inner_text() == f"Epoch {epoch['epoch']}"
    for kind in ("flips", "forgotten", "learned", "confidence_jumps"):
        assert panel.locator(f'[role=tab][data-tab="{kind}"]').get_attribute("data-count") == str(epoch[kind])

    page.locator('[role=tab][data-tab="flips"]').click()
    events = get(page, served, f"/runs/{run}/ledger/events/{epoch['epoch']}", kind="flips", limit=200)
    assert events["count"] == epoch["flips"] > 0
    rows = panel.locator("tr.ledger-sample")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    assert rows.evaluate_all("rs => rs.map(r => Number(r.dataset.sample))") == [s["sample"] for s in events["samples"]]
    assert rows.first.locator("img.sprite").count() == 1
    assert f"ledger={epoch['epoch']}&kind=flips" in page.url

    rows.first.get_by_role("button").click()
    history = panel.locator(".sample-history .lcell")
    history.first.wait_for(timeout=TIMEOUT_MS)
    expected = get(page, served, f"/runs/{run}/ledger/samples/{events['samples'][0]['sample']}")
    assert history.count() == len(expected["epochs"]) == EPOCHS
    assert history.evaluate_all("cs => cs.map(c => c.dataset.right === 'true')") == [e["right"] for e in expected["epochs"]]
    assert f"sample={events['samples'][0]['sample']}" in page.url

    # The address keeps the panel: a reload opens it again where it was.
    page.reload()
    panel.locator(".sample-history .lcell").first.wait_for(timeout=TIMEOUT_MS)
    assert panel.get_attribute("data-epoch") == str(epoch["epoch"]) and panel.get_attribute("data-tab") == "flips"
    page.get_by_role("button", name="Close the events panel").click()
    panel.wait_for(state="hidden", timeout=TIMEOUT_MS)
    assert "ledger=" not in page.url


def test_the_confusion_matrix_shows_the_apis_counts_and_a_cell_lists_its_samples(opened, served):
    page, run = opened
    last = get(page, served, f"/runs/{run}/ledger")["epochs"][-1]["epoch"]
    page.goto(f"{served.url}#/run/{run}?ledger={last}&kind=confusion")
    panel = page.locator(".events-panel")
    buttons = panel.locator(".cell-btn")
    buttons.first.wait_for(timeout=TIMEOUT_MS)
    confusion = get(page, served, f"/runs/{run}/ledger/confusion/{last}")
    shown = np.zeros((10, 10), int)
    for label, predicted, count in buttons.evaluate_all(
            "bs => bs.map(b => [Number(b.dataset.label), Number(b.dataset.predicted), Number(b.dataset.count)])"):
        shown[label, predicted] = count
    assert shown.tolist() == confusion["matrix"]
    assert panel.locator("thead th").all_inner_texts()[1:] == [str(c) for c in range(10)]

    # The cell most often wrong: its samples, most likely mislabeled first, as the API lists them.
    wrong = max((c for c in confusion["cells"] if c["label"] != c["predicted"]), key=lambda c: c["count"])
    panel.locator(f'.cell-btn[data-label="{wrong["label"]}"][data-predicted="{wrong["predicted"]}"]').click()
    rows = panel.locator(".cell-samples tr.ledger-sample")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    listed = rows.evaluate_all("rs => rs.map(r => Number(r.dataset.sample))")
    assert sorted(listed) == sorted(wrong["samples"]) and len(listed) == wrong["count"]
    cell = get(page, served, f"/runs/{run}/ledger/confusion/{last}/cells/{wrong['label']}/{wrong['predicted']}")
    assert listed == [s["sample"] for s in cell["samples"]]
    assert f"cell={wrong['label']},{wrong['predicted']}" in page.url
    # The labels flipped on purpose are among the wrong cells' samples.
    wrongly = {s for c in confusion["cells"] if c["label"] != c["predicted"] for s in c["samples"]}
    assert len(wrongly & set(FLIPPED.tolist())) >= len(FLIPPED) // 2


def test_a_sample_opens_in_the_projection_with_its_path(opened, served):
    page, run = opened
    ledger = get(page, served, f"/runs/{run}/ledger")
    epoch = next(e for e in ledger["epochs"] if e["flips"] > 0)
    page.goto(f"{served.url}#/run/{run}?ledger={epoch['epoch']}&kind=flips")
    rows = page.locator(".events-panel tr.ledger-sample")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    sample = int(rows.first.get_attribute("data-sample"))
    rows.first.get_by_role("button").click()
    link = page.locator(".dynamics-sample-link")
    link.wait_for(timeout=TIMEOUT_MS)
    link.click()
    # The training samples were recorded first, in order: a sample's position is its index.
    page.wait_for_url(f"**#/run/{run}/dynamics?sample={sample}")
    page.wait_for_function(f"document.querySelector('.projection-card')?.dataset.pinned === '{sample}'", timeout=TIMEOUT_MS)
    page.wait_for_selector(f".projection-plot[data-trajectory='{EPOCHS}']", timeout=TIMEOUT_MS)
    assert page.locator(".sample-card").get_attribute("data-index") == str(sample)


def test_a_run_without_a_ledger_has_no_marks(page, served, ledger_store):
    run = ledger_store[1]["plain"]
    page.goto(f"{served.url}#/run/{run}")
    page.wait_for_selector('.chart[data-key="train/loss"][data-points]', timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)
    assert page.locator(".event-mark").count() == 0
    assert page.locator(".events-panel").count() == 0
    # An address asking for its events opens nothing either.
    page.goto(f"{served.url}#/run/{run}?ledger=1&kind=flips")
    page.wait_for_selector('.chart[data-key="train/loss"][data-points]', timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)
    assert page.locator(".events-panel").count() == 0

