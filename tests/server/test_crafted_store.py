"""A store someone else wrote: run ids, checkpoint records and links that point outside the store.

Nothing outside the store may be served or deleted, whatever its database says.
"""

import hashlib
import os
import shutil
import sqlite3

import pytest
from fastapi.testclient import TestClient

from epochal.server import create_app

SAME_ORIGIN = {"Origin": "http://testserver"}
SECRET = b"the victim's private key"


@pytest.fixture
def victim(tmp_path):
    """A folder beside the store, with a secret in it."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    return folder


def _craft(store, run_id: str, new_id: str, checkpoint_path: str | None = None) -> None:
    """Rename a run in the database as someone with the file could, and record ``checkpoint_path`` as a
    checkpoint with the secret's true size and sha256."""
    with sqlite3.connect(store.path / "epochal.db") as db:
        for table, column in (("runs", "id"), ("run_tags", "run_id"), ("config", "run_id"), ("series", "run_id"),
                              ("checkpoints", "run_id")):
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (new_id, run_id))
        if checkpoint_path is not None:
            db.execute(
                "INSERT INTO checkpoints (run_id, path, step, epoch, size, sha256, created, kind) "
                "VALUES (?, ?, 0, 0, ?, ?, 0, 'resume')",
                (new_id, checkpoint_path, len(SECRET), hashlib.sha256(SECRET).hexdigest()),
            )


def _outside_ids(victim):
    return {
        "dotdot": "../../victim",
        "absolute": str(victim),
        "backslash": "..\\..\\victim",
        "nul": "../../victim\x00x",
        "dot": ".",
        "dotdot-alone": "..",
    }


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "backslash", "nul", "dot", "dotdot-alone"])
def test_a_run_id_that_leads_outside_serves_and_deletes_nothing(client, filled_store, victim, kind):
    store, ids = filled_store
    _craft(store, ids["beta"], _outside_ids(victim)[kind], "secret.txt")
    served = client.get("/api/runs/beta/files/secret.txt")
    assert served.status_code in (404, 409) and SECRET.decode() not in served.text
    assert served.headers["content-type"] == "application/json"
    deleted = client.delete("/api/runs/beta", headers=SAME_ORIGIN)
    assert deleted.status_code in (404, 409), deleted.text
    assert (victim / "secret.txt").read_bytes() == SECRET
    assert os.path.isdir(store.path / "runs") and os.path.isfile(store.path / "epochal.db")
    assert client.get("/api/runs").status_code == 200


def test_a_recorded_checkpoint_path_that_leads_outside_is_404(client, filled_store, victim):
    store, ids = filled_store
    relative = os.path.relpath(victim / "secret.txt", store.run(ids["beta"]).path)
    _craft(store, ids["beta"], ids["beta"], relative)
    served = client.get(f"/api/runs/{ids['beta']}/files/{relative}")
    assert served.status_code == 404 and SECRET.decode() not in served.text


def test_a_run_folder_that_is_a_symlink_out_of_the_store_is_neither_served_nor_deleted(client, filled_store, tmp_path):
    store, ids = filled_store
    folder = store.run(ids["alpha"]).path
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)
    os.symlink(elsewhere, folder)
    [checkpoint] = store.checkpoints(ids["alpha"])
    served = client.get(f"/api/runs/{ids['alpha']}/files/{checkpoint.path}")
    assert served.status_code == 409 and "not inside the store" in served.json()["detail"]
    deleted = client.delete(f"/api/runs/{ids['alpha']}", headers=SAME_ORIGIN)
    assert deleted.status_code == 409
    assert (elsewhere / checkpoint.path).is_file() and store.run(ids["alpha"]).id == ids["alpha"]


def test_a_checkpoint_hard_linked_to_another_file_is_not_served(client, filled_store, victim):
    store, ids = filled_store
    [checkpoint] = store.checkpoints(ids["alpha"])
    path = os.path.join(store.run(ids["alpha"]).path, checkpoint.path)
    os.remove(path)
    os.link(victim / "secret.txt", path)
    served = client.get(f"/api/runs/{ids['alpha']}/files/{checkpoint.path}")
    assert served.status_code == 409 and SECRET.decode() not in served.text
    assert "does not match its record" in served.json()["detail"]


def test_a_checkpoint_changed_in_place_is_not_served(client, filled_store):
    store, ids = filled_store
    [checkpoint] = store.checkpoints(ids["alpha"])
    path = os.path.join(store.run(ids["alpha"]).path, checkpoint.path)
    with open(path, "r+b") as f:
        f.write(b"X")  # same size, other bytes
    assert client.get(f"/api/runs/{ids['alpha']}/files/{checkpoint.path}").status_code == 409


def test_a_hard_linked_copy_with_the_recorded_bytes_is_served(client, filled_store, tmp_path):
    """A store copied with hard links (cp -al, rsync --link-dest) still serves its checkpoints."""
    store, ids = filled_store
    [checkpoint] = store.checkpoints(ids["alpha"])
    path = os.path.join(store.run(ids["alpha"]).path, checkpoint.path)
    os.link(path, tmp_path / "backup.pt")
    served = client.get(f"/api/runs/{ids['alpha']}/files/{checkpoint.path}")
    assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == checkpoint.sha256
    assert served.headers["content-length"] == str(checkpoint.size)


def test_every_answer_of_a_crafted_store_is_json(filled_store, victim):
    """Ids the backend would refuse still never make the server answer 500."""
    store, ids = filled_store
    _craft(store, ids["gamma"], "../../victim", "secret.txt")
    with TestClient(create_app(store, static_dir=None), raise_server_exceptions=False) as c:
        for path in ("/api/runs", "/api/runs/gamma", "/api/runs/gamma/files/secret.txt", "/api/runs/gamma/dynamics",
                     "/api/store"):
            response = c.get(path)
            assert response.status_code < 500 and response.headers["content-type"] == "application/json", path


@pytest.mark.parametrize("bad_id", ["../../victim", "/abs/victim", "..", ".", "a/b", "x\x00y", "..\\victim", ".hidden"])
def test_the_server_checks_a_records_folder_itself(filled_store, bad_id):
    """Whatever the backend lets through, the server refuses a folder that is not one name inside the store."""
    from dataclasses import replace

    from fastapi import HTTPException

    from epochal.server import folders

    store, ids = filled_store
    record = store.run(ids["beta"])
    crafted = replace(record, id=bad_id, path=os.path.join(store.path / "runs", bad_id))
    with pytest.raises(HTTPException) as refused:
        folders.run_folder(store, crafted)
    assert refused.value.status_code == 409
    assert folders.run_folder(store, record) == (store.path / "runs" / ids["beta"]).resolve()


def test_a_checkpoint_another_framework_wrote_is_listed_but_not_served(store, tmp_path):
    import epochal

    elsewhere = tmp_path / "lightning" / "epoch=0-step=4.ckpt"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(SECRET)
    with epochal.start("p", "lit", store=store, system_metrics=False) as run:
        inside = run.path / "hf" / "model.bin"
        inside.parent.mkdir()
        inside.write_bytes(SECRET)
        run.add_checkpoint(elsewhere)
        run.add_checkpoint(inside)
    with TestClient(create_app(store, static_dir=None)) as client:
        listed = client.get(f"/api/runs/{run.id}").json()["checkpoints"]
        assert sorted(c["path"] for c in listed) == sorted([str(elsewhere), "hf/model.bin"])
        assert {c["kind"] for c in listed} == {"external"}
        for path in (str(elsewhere).lstrip("/"), "hf/model.bin"):
            served = client.get(f"/api/runs/{run.id}/files/{path}")
            assert served.status_code == 404 and SECRET.decode() not in served.text
        served = client.get(f"/api/runs/{run.id}/files/hf/model.bin")
        assert "written by another framework" in served.json()["detail"]
