"""A store that is locked or refuses a value: JSON answers that say so, never a 500 or the store's path."""

import json
import sqlite3

import pytest
from fastapi.testclient import TestClient
from sample_runs import make_runs

import epochal
from epochal.server import create_app

SAME_ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def impatient(tmp_path):
    """A filled store whose writes give up after 0.2 s, and a client of it that reports a 500 instead of raising."""
    with epochal.Store(tmp_path / "store", busy_timeout=0.2) as store:
        ids = make_runs(store)
        with TestClient(create_app(store, static_dir=None), raise_server_exceptions=False) as client:
            yield store, ids, client


@pytest.fixture
def locked(impatient):
    store, _, _ = impatient
    holder = sqlite3.connect(store.path / "epochal.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    yield impatient
    holder.execute("ROLLBACK")
    holder.close()


@pytest.mark.parametrize(
    ("method", "body"), [("PATCH", {"notes": "n"}), ("PATCH", {"tags": ["x"]}), ("DELETE", None)],
)
def test_a_change_while_the_store_is_locked_is_503_and_changes_nothing(locked, method, body):
    store, ids, client = locked
    response = client.request(method, f"/api/runs/{ids['alpha']}", json=body, headers=SAME_ORIGIN)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json" and response.headers["retry-after"]
    assert "locked" in response.json()["detail"] and "nothing was changed" in response.json()["detail"]


def test_after_the_lock_the_same_change_goes_through(impatient):
    store, ids, client = impatient
    holder = sqlite3.connect(store.path / "epochal.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    assert client.delete(f"/api/runs/{ids['alpha']}", headers=SAME_ORIGIN).status_code == 503
    holder.execute("ROLLBACK")
    holder.close()
    assert store.run(ids["alpha"]).name == "alpha"
    assert client.delete(f"/api/runs/{ids['alpha']}", headers=SAME_ORIGIN).status_code == 200


def test_a_damaged_database_is_503_not_500(impatient):
    store, ids, client = impatient
    store.close()
    with open(store.path / "epochal.db", "r+b") as f:
        f.write(b"this is not a database any more" * 4)
    response = client.patch(f"/api/runs/{ids['alpha']}", json={"notes": "n"}, headers=SAME_ORIGIN)
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"


def test_a_404_names_the_run_not_the_stores_folder(impatient):
    store, _, client = impatient
    for path in ("/api/runs/nosuchrun", "/api/runs/nosuchrun/series?key=x", "/api/series.csv?key=x&run=nosuchrun"):
        response = client.get(path)
        assert response.status_code == 404, path
        detail = response.json()["detail"]
        assert "no run" in detail and "nosuchrun" in detail
        assert str(store.path) not in detail and str(store.path.parent) not in detail


def test_an_over_long_tag_is_refused_with_the_rule_start_applies(impatient):
    store, ids, client = impatient
    long_tag = "t" * 10_000
    with pytest.raises(ValueError) as by_start:
        epochal.start("p", "r", tags=[long_tag], store=store)
    response = client.patch(f"/api/runs/{ids['beta']}", json={"tags": ["ok", long_tag]}, headers=SAME_ORIGIN)
    assert response.status_code == 422
    assert response.json()["detail"] == str(by_start.value) and len(response.text) < 1000
    assert store.run(ids["beta"]).tags == ("baseline",)
    ok = client.patch(f"/api/runs/{ids['beta']}", json={"tags": ["t" * 100]}, headers=SAME_ORIGIN)
    assert ok.status_code == 200 and ok.json()["tags"] == ["t" * 100]


def test_a_run_with_an_over_long_tag_from_an_older_version_still_opens(impatient):
    store, ids, client = impatient
    long_tag = "t" * 10_000
    with sqlite3.connect(store.path / "epochal.db") as db:
        db.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(["baseline", long_tag]), ids["beta"]))
        db.execute("INSERT INTO run_tags VALUES (?, ?)", (ids["beta"], long_tag))
    detail = client.get(f"/api/runs/{ids['beta']}")
    assert detail.status_code == 200 and detail.json()["tags"] == ["baseline", long_tag]
    listed = client.get("/api/runs", params={"tag": "baseline"}).json()["runs"]
    assert [r["tags"] for r in listed if r["id"] == ids["beta"]] == [["baseline", long_tag]]
    notes = client.patch(f"/api/runs/{ids['beta']}", json={"notes": "still editable"}, headers=SAME_ORIGIN)
    assert notes.status_code == 200 and notes.json()["tags"] == ["baseline", long_tag]
    kept = client.patch(f"/api/runs/{ids['beta']}", json={"tags": ["baseline"]}, headers=SAME_ORIGIN)
    assert kept.status_code == 200 and kept.json()["tags"] == ["baseline"]
