"""A large projection in a real browser: 50,000 samples whose coordinates arrive as float32 in parts, the
first epoch drawn as they come, the next epochs loaded ahead while playing. The projection's files are
written here (no fit): what is tested is the loading and drawing, not the layout."""

import json

import numpy as np
import pytest
import torch

import epochal
from epochal.dynamics import files

TIMEOUT_MS = 60_000
SAMPLES, EPOCHS, CLASSES = 50_000, 4, 10
EXTENT = [-10.0, 10.0, -10.0, 10.0]
#: Samples per request of the page (web/src/pages/dynamics.ts).
CHUNK = 16_384


def coords_at(epoch: int, labels: np.ndarray) -> np.ndarray:
    """Each class a blob that moves out from the centre, epoch by epoch."""
    rng = np.random.default_rng(epoch)
    angle = 2 * np.pi * labels / CLASSES
    radius = 1 + 2 * epoch
    centre = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    coords = (centre + rng.normal(0, 0.6, (len(labels), 2))).astype(np.float32)
    coords[7] = np.nan  # a sample without coordinates stays out of view
    return coords


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-large") / "epochal-runs"
    torch.manual_seed(0)
    x = torch.randn(SAMPLES, 8)
    labels = torch.randint(0, CLASSES, (SAMPLES,))
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, CLASSES))
    with epochal.Store(folder) as store, epochal.start("large", "fifty-thousand", store=store) as run:
        for _ in range(EPOCHS):
            run.record_dynamics(model, x, labels)
            run.epoch()
    projection = files.projection_folder(run.path)
    projection.mkdir(parents=True, exist_ok=True)
    for epoch in range(EPOCHS):
        np.savez(files.epoch_file(projection, epoch), coords=coords_at(epoch, labels.numpy()))
    files.write_json(projection / files.META_FILE, {
        "epochs": list(range(EPOCHS)), "extent": EXTENT, "resolution": 32, "backgrounds": False, "params": {},
        "colors": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"],
    })
    return folder, run.id, labels.numpy()


@pytest.fixture(scope="module")
def served(large_run, serve_for_module):
    return serve_for_module(large_run[0])


def measures(page) -> dict[str, float]:
    return page.evaluate(
        "Object.fromEntries(performance.getEntriesByType('measure').filter(m => m.name.startsWith('epochal'))"
        ".map(m => [m.name, m.duration]))")


def test_fifty_thousand_points_load_in_float32_parts_and_play_through_the_epochs(page, served, large_run):
    _, run, labels = large_run
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url) if "/dynamics/epochs/" in r.url else None)
    page.goto(f"{served.url}#/run/{run}/dynamics")
    page.wait_for_function(
        f"document.querySelector('.projection-card')?.dataset.epoch === '{EPOCHS - 1}'", timeout=TIMEOUT_MS)
    assert page.locator(".projection-plot").get_attribute("data-points") == str(SAMPLES)
    # Every epoch comes as float32 parts, the first one as it arrives; none as JSON.
    page.wait_for_function(
        f"[...Array({EPOCHS}).keys()].every(e => performance.getEntriesByName(`epochal: epoch ${{e}} loaded`).length)",
        timeout=TIMEOUT_MS)
    parts = -(-SAMPLES // CHUNK)
    assert len(requested) == EPOCHS * parts and all("/coords.bin?offset=" in url for url in requested)
    assert "epochal: first points drawn" in measures(page)

    # A sample is drawn where its coordinates put it: it moves as its coordinates do between two epochs.
    def drawn_at(index: int) -> np.ndarray:
        return np.array(page.evaluate(f"document.querySelector('.projection-plot').screenPosition({index})"))

    last, first = coords_at(EPOCHS - 1, labels), coords_at(0, labels)
    a, b = 123, int(np.nanargmax(np.linalg.norm(last - last[123], axis=1)))
    scale = np.linalg.norm(drawn_at(a) - drawn_at(b)) / np.linalg.norm(last[a] - last[b])  # pixels per unit
    before = drawn_at(a)
    page.locator(".epoch-slider").fill("0")
    page.wait_for_function("document.querySelector('.projection-card').dataset.epoch === '0'", timeout=TIMEOUT_MS)
    page.wait_for_timeout(900)  # the transition
    moved = (before - drawn_at(a)) * [1, -1]  # the screen's y points down
    assert np.abs(moved - (last[a] - first[a]) * scale).max() < 2

    page.locator(".play-btn").click()
    page.wait_for_function(
        f"document.querySelector('.projection-card').dataset.epoch === '{EPOCHS - 1}'", timeout=TIMEOUT_MS)
    drawn = measures(page)
    assert all(f"epochal: epoch {e} drawn" in drawn for e in range(EPOCHS))
    print("\n" + json.dumps({k: round(v, 1) for k, v in sorted(drawn.items())}, indent=1))


def test_the_float32_coordinates_match_the_json_ones_and_cost_less(page, served, large_run):
    """What the page did before (one JSON answer per epoch, parsed and mapped) against what it does now, timed
    in the browser; the coordinates must be the same."""
    _, run, _ = large_run
    page.goto(f"{served.url}#/run/{run}/dynamics")
    page.wait_for_selector(".projection-plot[data-points]", timeout=TIMEOUT_MS)
    timings = page.evaluate(f"""async () => {{
        const base = "api/runs/{run}/dynamics/epochs/";
        const out = {{ json: [], float32: [], same: true, bytes: [0, 0] }};
        for (let epoch = 0; epoch < {EPOCHS}; epoch++) {{
            let t = performance.now();
            const text = await (await fetch(base + epoch)).text();
            const body = JSON.parse(text);
            out.bytes[0] = text.length;
            const jx = new Float32Array(body.x.length), jy = new Float32Array(body.y.length);
            for (let i = 0; i < body.x.length; i++) {{ jx[i] = body.x[i] ?? NaN; jy[i] = body.y[i] ?? NaN; }}
            out.json.push(performance.now() - t);
            t = performance.now();
            const parts = [];
            for (let offset = 0; offset < {SAMPLES}; offset += {CHUNK}) {{
                parts.push(fetch(base + epoch + "/coords.bin?offset=" + offset + "&limit={CHUNK}")
                    .then(r => r.arrayBuffer()).then(b => [offset, new Float32Array(b)]));
            }}
            const x = new Float32Array({SAMPLES}), y = new Float32Array({SAMPLES});
            out.bytes[1] = 0;
            for (const [offset, pairs] of await Promise.all(parts)) {{
                out.bytes[1] += pairs.byteLength;
                for (let i = 0; i < pairs.length / 2; i++) {{ x[offset + i] = pairs[2 * i]; y[offset + i] = pairs[2 * i + 1]; }}
            }}
            out.float32.push(performance.now() - t);
            for (let i = 0; i < x.length; i++) {{
                const close = (a, b) => (Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) < 1e-4;
                if (!close(x[i], jx[i]) || !close(y[i], jy[i])) {{ out.same = false; break; }}
            }}
        }}
        return out;
    }}""")
    assert timings["same"]
    print(f"\nper epoch of {SAMPLES} samples, ms: JSON {[round(t) for t in timings['json']]}, "
          f"float32 parts {[round(t) for t in timings['float32']]}; bytes per epoch {timings['bytes']}")
