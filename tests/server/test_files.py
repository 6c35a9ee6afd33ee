"""Checkpoint downloads: only files the store lists, never a path taken from the request."""

import os

import pytest
import torch


@pytest.fixture
def checkpoint(client, ids, store):
    [record] = store.checkpoints(ids["alpha"])
    return record


def test_a_listed_checkpoint_downloads_byte_for_byte(client, ids, store, checkpoint):
    detail = client.get(f"/api/runs/{ids['alpha']}").json()
    response = client.get(detail["checkpoints"][0]["url"])
    assert response.status_code == 200
    path = os.path.join(store.run(ids["alpha"]).path, checkpoint.path)
    with open(path, "rb") as f:
        assert response.content == f.read()
    assert "attachment" in response.headers["content-disposition"]


@pytest.mark.parametrize(
    "path",
    [
        "../../epochal.db",
        "..%2F..%2Fepochal.db",
        "%2e%2e/%2e%2e/epochal.db",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "checkpoints/../../../epochal.db",
        "....//....//epochal.db",
        "",
    ],
)
def test_paths_that_are_not_listed_are_404(client, ids, path):
    response = client.get(f"/api/runs/{ids['alpha']}/files/{path}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json" and "SQLite" not in response.text


def test_a_listed_file_swapped_for_a_symlink_is_not_followed(client, ids, store, checkpoint, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    path = os.path.join(store.run(ids["alpha"]).path, checkpoint.path)
    os.remove(path)
    os.symlink(secret, path)
    response = client.get(f"/api/runs/{ids['alpha']}/files/{checkpoint.path}")
    assert response.status_code == 404 and "top secret" not in response.text


def test_a_listed_file_in_a_symlinked_folder_outside_the_run_is_not_served(client, ids, store, checkpoint, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = store.run(ids["alpha"]).path
    folder = os.path.dirname(os.path.join(run_dir, checkpoint.path))
    torch.save({"x": 1}, outside / os.path.basename(checkpoint.path))
    os.rename(folder, str(folder) + ".moved")
    os.symlink(outside, folder)
    response = client.get(f"/api/runs/{ids['alpha']}/files/{checkpoint.path}")
    assert response.status_code == 404


def test_a_checkpoint_of_another_run_is_not_served_under_this_one(client, ids, checkpoint):
    response = client.get(f"/api/runs/{ids['beta']}/files/{checkpoint.path}")
    assert response.status_code == 404
