"""Who may read and change: the token, same-origin changes, read-only mode, loopback hosts."""

import pytest
from fastapi.testclient import TestClient

from epochal.server import create_app
from epochal.server.security import LOOPBACK_NAMES

TOKEN = "correct-horse-battery"


@pytest.fixture
def guarded(filled_store):
    store, _ = filled_store
    with TestClient(create_app(store, token=TOKEN, static_dir=None)) as c:
        yield c


@pytest.mark.parametrize("path", ["/api/store", "/api/runs", "/api/runs/alpha", "/api/runs/alpha/series?key=odd",
                                  "/api/series.csv?key=odd&run=alpha", "/api/runs/alpha/files/x"])
def test_without_the_token_every_api_call_is_401(guarded, path):
    response = guarded.get(path)
    assert response.status_code == 401 and "token" in response.json()["detail"]


def test_a_wrong_token_is_401(guarded):
    assert guarded.get("/api/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert guarded.get("/api/runs", params={"token": TOKEN[:-1]}).status_code == 401


def test_the_token_opens_the_api_as_header_or_query(guarded):
    assert guarded.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/api/runs", params={"token": TOKEN}).status_code == 200


def test_the_token_allows_changes_without_an_origin(guarded, ids, store):
    response = guarded.patch("/api/runs/beta", json={"notes": "n"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and store.run(ids["beta"]).description == "n"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
     {"Origin": "null"}],
)
def test_changes_from_another_origin_are_403_and_change_nothing(client, ids, store, headers):
    assert client.patch("/api/runs/beta", json={"notes": "pwned"}, headers=headers).status_code == 403
    assert client.delete("/api/runs/beta", headers=headers).status_code == 403
    assert store.run(ids["beta"]).description == "" and len(store.runs()) == 3


def test_a_same_origin_change_by_fetch_metadata(client, store, ids):
    response = client.patch("/api/runs/beta", json={"notes": "ok"}, headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200 and store.run(ids["beta"]).description == "ok"


def test_read_only_refuses_every_change_even_with_the_token(filled_store):
    store, ids = filled_store
    with TestClient(create_app(store, token=TOKEN, read_only=True, static_dir=None)) as c:
        auth = {"Authorization": f"Bearer {TOKEN}", "Origin": "http://testserver"}
        patch = c.patch("/api/runs/beta", json={"tags": []}, headers=auth)
        delete = c.delete("/api/runs/beta", headers=auth)
        assert patch.status_code == delete.status_code == 403 and "read-only" in patch.json()["detail"]
        assert c.get("/api/store", headers=auth).json()["read_only"] is True
    assert store.run(ids["beta"]).tags == ("baseline",)


def test_on_loopback_another_host_name_is_refused(filled_store):
    """A page on another site cannot reach the API by pointing its own name at 127.0.0.1."""
    store, _ = filled_store
    app = create_app(store, allowed_hosts=LOOPBACK_NAMES, static_dir=None)
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/store").status_code == 200
        assert c.get("/api/store", headers={"Host": "attacker.example:8765"}).status_code == 400
