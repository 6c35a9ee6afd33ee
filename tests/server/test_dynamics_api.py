"""The training-dynamics API over runs trained and recorded here, and projections fitted for real."""

import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sample_runs import DIGIT_NAMES, make_dynamics_run

import epochal
from epochal.dynamics import files, sample_stats, sprites
from epochal.server import create_app

SAME_ORIGIN = {"Origin": "http://testserver"}
#: The projection's settings for these tests: small and quick, not good.
FIT = {"max_epochs": 2}
FIT_SECONDS = 240


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A fitted run, a recorded one without a projection, one too small to fit, one without dynamics."""
    with epochal.Store(tmp_path_factory.mktemp("dynamics") / "store") as store:
        made = {
            "fitted": make_dynamics_run(store, "fitted"),
            "unfitted": make_dynamics_run(store, "unfitted"),
            "tiny": make_dynamics_run(store, "tiny", samples=12, epochs=2, sprites=False, class_names=False),
        }
        plain = epochal.start("digits", "plain", store=store)
        plain.log({"loss": 1.0})
        plain.finish()
        made["plain"] = plain
        epochal.dynamics.fit(made["fitted"].path, **FIT)
        epochal.dynamics.evaluate(made["fitted"].path)
        yield store, {name: run.id for name, run in made.items()}


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(runs[0], static_dir=None)) as c:
        yield c


@pytest.fixture(scope="module")
def ids(runs):
    return runs[1]


def folder_of(runs, name):
    store, ids = runs
    return Path(store.run(ids[name]).path)


def wait_for_fit(client, run, seconds=FIT_SECONDS):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        progress = client.get(f"/api/runs/{run}/dynamics").json()["progress"]
        if not progress["running"]:
            return progress
        time.sleep(0.5)
    raise AssertionError(f"the fit of {run} did not end in {seconds} s: {progress}")


def test_a_recorded_run_tells_its_epochs_samples_splits_and_classes(client, ids):
    info = client.get(f"/api/runs/{ids['unfitted']}/dynamics").json()
    assert info["run"] == ids["unfitted"]
    assert info["epochs"] == [0, 1, 2]
    assert info["samples"] == 300 and info["splits"] == {"train": 240, "test": 60}
    assert info["classes"] == 10 and info["class_names"] == DIGIT_NAMES
    assert info["sprites"] is True
    assert info["projection"] is None and info["quality"] is None and info["progress"] is None


def test_without_class_names_or_sprites_the_info_says_so(client, ids):
    info = client.get(f"/api/runs/{ids['tiny']}/dynamics").json()
    assert info["class_names"] is None and info["sprites"] is False
    assert info["samples"] == 12 and info["epochs"] == [0, 1]


@pytest.mark.parametrize("path", ["", "/samples", "/epochs/0", "/epochs/0/background.png", "/sprites/0.png"])
def test_a_run_without_dynamics_is_404_saying_how_to_record_them(client, ids, path):
    response = client.get(f"/api/runs/{ids['plain']}/dynamics{path}")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "'plain'" in detail and ids["plain"] in detail
    assert "epochal.RecordDynamics" in detail and "run.record_dynamics" in detail


def test_an_unknown_run_is_404(client):
    response = client.get("/api/runs/no-such-run/dynamics")
    assert response.status_code == 404 and "no-such-run" in response.json()["detail"]


def test_the_samples_are_those_of_sample_stats(client, ids, runs):
    table = client.get(f"/api/runs/{ids['unfitted']}/dynamics/samples").json()
    stats = sample_stats(folder_of(runs, "unfitted") / files.FOLDER)
    assert table["epochs"] == [0, 1, 2]
    for key in ("labels", "split", "indices", "forgetting", "first_learned", "learned_from", "category"):
        assert table[key] == getattr(stats, key).tolist(), key
    assert table["predictions"] == stats.predictions.tolist()
    for key in ("confidence", "variability", "correctness"):
        assert np.allclose(table[key], getattr(stats, key), atol=1e-4), key
    assert table["likely_mislabeled"] == stats.likely_mislabeled(50).tolist()
    assert set(table["category"]) <= {"easy", "ambiguous", "hard"}


def test_the_samples_follow_a_newly_recorded_epoch(tmp_path):
    with epochal.Store(tmp_path / "store") as store, TestClient(create_app(store, static_dir=None)) as c:
        run = make_dynamics_run(store, "growing", samples=40, epochs=1)
        first = c.get(f"/api/runs/{run.id}/dynamics/samples").json()
        assert c.get(f"/api/runs/{run.id}/dynamics/samples").json() == first  # from the cache
        assert first["epochs"] == [0]
        import torch

        model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        samples = np.load(Path(run.path) / files.FOLDER / files.SAMPLES_FILE)
        x = torch.rand(40, 64)
        epochal.dynamics.record(run, model, x, samples["labels"], split=samples["split"].tolist(), epoch=1)
        second = c.get(f"/api/runs/{run.id}/dynamics/samples").json()
        assert second["epochs"] == [0, 1] and len(second["predictions"]) == 2


def test_a_fitted_run_has_its_projection_quality_and_a_done_progress(client, ids, runs):
    info = client.get(f"/api/runs/{ids['fitted']}/dynamics").json()
    meta = files.read_json(files.projection_folder(folder_of(runs, "fitted")) / files.META_FILE)
    projection = info["projection"]
    assert projection["epochs"] == meta["epochs"] == [0, 1, 2]
    assert projection["extent"] == meta["extent"] and len(projection["extent"]) == 4
    assert projection["colors"] == meta["colors"] and len(projection["colors"]) >= 10
    assert projection["resolution"] == meta["resolution"]
    quality = info["quality"]
    assert set(quality["epochs"]) == {"0", "1", "2"}
    for splits in quality["epochs"].values():
        assert set(splits) == {"train", "test"}
        assert all(isinstance(v, float) for measures in splits.values() for v in measures.values())
    assert set(quality["temporal"]) == {"0-1", "1-2"}
    assert set(quality["mean"]) == {"train", "test"} and "npr" in quality["mean"]["train"]
    assert info["progress"]["state"] == "done" and info["progress"]["running"] is False


def test_an_epochs_coordinates_are_the_fitted_ones(client, ids, runs):
    answer = client.get(f"/api/runs/{ids['fitted']}/dynamics/epochs/1").json()
    with np.load(files.epoch_file(files.projection_folder(folder_of(runs, "fitted")), 1)) as stored:
        coords = stored["coords"]
    assert answer["epoch"] == 1 and len(answer["x"]) == len(answer["y"]) == 300
    extent = client.get(f"/api/runs/{ids['fitted']}/dynamics").json()["projection"]["extent"]
    tolerance = 1e-5 * max(extent[1] - extent[0], extent[3] - extent[2])
    assert np.allclose(answer["x"], coords[:, 0], atol=tolerance)
    assert np.allclose(answer["y"], coords[:, 1], atol=tolerance)


def test_an_epoch_that_was_not_fitted_is_404_naming_the_fitted_ones(client, ids):
    for path in ("/epochs/7", "/epochs/7/background.png"):
        response = client.get(f"/api/runs/{ids['fitted']}/dynamics{path}")
        assert response.status_code == 404 and "[0, 1, 2]" in response.json()["detail"]


def test_without_a_projection_epochs_are_404_saying_how_to_fit(client, ids):
    for path in ("/epochs/0", "/epochs/0/background.png"):
        response = client.get(f"/api/runs/{ids['unfitted']}/dynamics{path}")
        assert response.status_code == 404
        assert "epochal dynamics fit" in response.json()["detail"]


def test_a_background_is_the_fitted_png(client, ids, runs):
    response = client.get(f"/api/runs/{ids['fitted']}/dynamics/epochs/2/background.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    path = files.background_file(files.projection_folder(folder_of(runs, "fitted")), 2)
    assert response.content == path.read_bytes()
    resolution = client.get(f"/api/runs/{ids['fitted']}/dynamics").json()["projection"]["resolution"]
    assert Image.open(io.BytesIO(response.content)).size == (resolution, resolution)


def test_a_sprite_is_the_samples_thumbnail(client, ids, runs):
    images = sprites(folder_of(runs, "unfitted") / files.FOLDER)
    for index in (0, 299):
        response = client.get(f"/api/runs/{ids['unfitted']}/dynamics/sprites/{index}.png")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), images[index])


def test_sprites_out_of_range_or_not_recorded_are_404(client, ids):
    response = client.get(f"/api/runs/{ids['unfitted']}/dynamics/sprites/300.png")
    assert response.status_code == 404 and "300 thumbnails" in response.json()["detail"]
    response = client.get(f"/api/runs/{ids['tiny']}/dynamics/sprites/0.png")
    assert response.status_code == 404 and "no thumbnails" in response.json()["detail"]
    assert client.get(f"/api/runs/{ids['unfitted']}/dynamics/sprites/-1.png").status_code == 422


def test_a_fit_runs_in_the_background_refuses_a_second_and_ends_done(client, runs):
    run = make_dynamics_run(runs[0], "posted").id
    started = client.post(f"/api/runs/{run}/dynamics/fit", headers=SAME_ORIGIN)
    assert started.status_code == 202
    progress = started.json()
    assert progress["state"] == "running" and progress["running"] is True and progress["pid"] > 0
    again = client.post(f"/api/runs/{run}/dynamics/fit", headers=SAME_ORIGIN)
    assert again.status_code == 409 and "already running" in again.json()["detail"]
    progress = wait_for_fit(client, run)
    assert progress["state"] == "done" and progress["fraction"] == 1.0, progress
    info = client.get(f"/api/runs/{run}/dynamics").json()
    assert info["projection"]["epochs"] == [0, 1, 2] and info["quality"]["epochs"]
    assert client.get(f"/api/runs/{run}/dynamics/epochs/2").status_code == 200


def test_a_failing_fit_ends_failed_with_the_end_of_its_stderr(client, ids):
    run = ids["tiny"]
    assert client.post(f"/api/runs/{run}/dynamics/fit", headers=SAME_ORIGIN).status_code == 202
    progress = wait_for_fit(client, run)
    assert progress["state"] == "failed" and progress["running"] is False
    assert "samples" in progress["message"], progress["message"]
    assert client.get(f"/api/runs/{run}/dynamics").json()["projection"] is None


def test_a_killed_fit_does_not_look_running(client, ids, runs):
    store, _ = runs
    run = make_dynamics_run(store, "killed", samples=200, epochs=2)
    progress = client.post(f"/api/runs/{run.id}/dynamics/fit", headers=SAME_ORIGIN).json()
    os.killpg(progress["pid"], signal.SIGKILL)  # the driver leads a session of its own, the fit with it
    deadline = time.monotonic() + 10
    while client.get(f"/api/runs/{run.id}/dynamics").json()["progress"]["running"]:
        assert time.monotonic() < deadline, "a killed fit still looks running"
        time.sleep(0.1)
    assert client.get(f"/api/runs/{run.id}/dynamics").json()["progress"]["state"] == "running"
    # Nothing runs, so another fit may start.
    assert client.post(f"/api/runs/{run.id}/dynamics/fit", headers=SAME_ORIGIN).status_code == 202
    os.killpg(client.get(f"/api/runs/{run.id}/dynamics").json()["progress"]["pid"], signal.SIGKILL)


def test_a_fit_is_a_change_read_only_and_cross_origin_refuse_it(runs, ids):
    store, _ = runs
    with TestClient(create_app(store, read_only=True, static_dir=None)) as read_only:
        response = read_only.post(f"/api/runs/{ids['unfitted']}/dynamics/fit", headers=SAME_ORIGIN)
        assert response.status_code == 403 and "read-only" in response.json()["detail"]
    with TestClient(create_app(store, static_dir=None)) as c:
        evil = {"Origin": "http://evil.example"}
        assert c.post(f"/api/runs/{ids['unfitted']}/dynamics/fit", headers=evil).status_code == 403
        assert c.post(f"/api/runs/{ids['plain']}/dynamics/fit", headers=SAME_ORIGIN).status_code == 404


def test_a_dynamics_file_linked_out_of_the_run_is_not_read(client, ids, runs, tmp_path):
    """A symlink anywhere in the dynamics folder, here one epoch's background, stops the run's dynamics."""
    path = files.background_file(files.projection_folder(folder_of(runs, "fitted")), 1)
    outside = tmp_path / "outside.png"
    os.replace(path, outside)
    os.symlink(outside, path)
    try:
        for url in ("", "/epochs/1/background.png", "/epochs/2"):
            response = client.get(f"/api/runs/{ids['fitted']}/dynamics{url}")
            assert response.status_code == 409 and "link to outside" in response.json()["detail"], url
        assert client.post(f"/api/runs/{ids['fitted']}/dynamics/fit", headers=SAME_ORIGIN).status_code == 409
    finally:
        os.remove(path)
        os.replace(outside, path)
    assert client.get(f"/api/runs/{ids['fitted']}/dynamics/epochs/1/background.png").status_code == 200


def test_a_background_hard_linked_elsewhere_is_not_served(client, ids, runs, tmp_path):
    path = files.background_file(files.projection_folder(folder_of(runs, "fitted")), 1)
    os.link(path, tmp_path / "second-name.png")
    try:
        response = client.get(f"/api/runs/{ids['fitted']}/dynamics/epochs/1/background.png")
        assert response.status_code == 404 and "plain file" in response.json()["detail"]
    finally:
        os.remove(tmp_path / "second-name.png")
    assert client.get(f"/api/runs/{ids['fitted']}/dynamics/epochs/1/background.png").status_code == 200


def test_an_epochs_coordinates_come_as_float32_pairs_in_parts(client, ids, runs):
    with np.load(files.epoch_file(files.projection_folder(folder_of(runs, "fitted")), 1)) as stored:
        coords = stored["coords"]
    url = f"/api/runs/{ids['fitted']}/dynamics/epochs/1/coords.bin"
    whole = client.get(url)
    assert whole.headers["content-type"] == "application/octet-stream" and whole.headers["x-samples"] == "300"
    assert np.array_equal(np.frombuffer(whole.content, "<f4").reshape(-1, 2), coords)
    parts = [client.get(url, params={"offset": offset, "limit": 128}) for offset in (0, 128, 256)]
    assert [len(p.content) // 8 for p in parts] == [128, 128, 44]
    assert b"".join(p.content for p in parts) == whole.content
    assert client.get(url, params={"offset": 400}).content == b""
    assert client.get(f"/api/runs/{ids['fitted']}/dynamics/epochs/7/coords.bin").status_code == 404
    assert client.get(f"/api/runs/{ids['unfitted']}/dynamics/epochs/0/coords.bin").status_code == 404
