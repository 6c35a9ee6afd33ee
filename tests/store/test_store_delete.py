"""Store.delete removes runs/<id> of its own store and nothing else, whatever the database says."""

import sqlite3
from pathlib import Path

import pytest

import epochal
from epochal.errors import EpochalError, StoreError
from epochal.store import sql


def finished_run(store, name):
    with epochal.start("p", name=name, store=store) as run:
        run.log({"loss": 1.0})
    (Path(run.path) / "kept.txt").write_text("run file")
    return store.run(run.id)


def craft_id(store_dir, run_id, crafted):
    """What someone else's copy of the store can say: the run's id, changed in epochal.db."""
    with sqlite3.connect(store_dir / "epochal.db") as db:
        db.execute("UPDATE runs SET id = ? WHERE id = ?", (crafted, run_id))


@pytest.fixture
def victim(tmp_path):
    """A folder beside the store, and one in it, that a crafted id could name."""
    for folder in (tmp_path / "victim", tmp_path / "store" / "victim"):
        folder.mkdir(parents=True)
        (folder / "precious.txt").write_text("keep me")
    return tmp_path


@pytest.mark.parametrize("backend_checks_ids", [True, False], ids=["as-is", "without-the-backends-id-check"])
@pytest.mark.parametrize("crafted", ["../../victim", "../victim", "x/../../victim", "..", ".", "../runs"])
def test_a_crafted_id_never_deletes_outside_runs(store_dir, victim, crafted, backend_checks_ids, monkeypatch):
    if not backend_checks_ids:  # the backend leaves such rows out; delete's own check must hold without that
        monkeypatch.setattr(sql, "valid_run_id", lambda run_id: True)
    with epochal.Store(store_dir) as store:
        record = finished_run(store, "target")
        other = finished_run(store, "other")
    craft_id(store_dir, record.id, crafted)
    with epochal.Store(store_dir) as store:
        with pytest.raises(StoreError if not backend_checks_ids else EpochalError) as refused:
            store.delete(crafted)
        if not backend_checks_ids:
            assert "refused to delete run" in str(refused.value) and "nothing was deleted" in str(refused.value)
            assert store.run(crafted).name == "target"  # its record is kept too
        assert store.run(other.id).name == "other"
    assert (victim / "victim" / "precious.txt").read_text() == "keep me"
    assert (store_dir / "victim" / "precious.txt").read_text() == "keep me"
    assert (Path(other.path) / "kept.txt").is_file() and (store_dir / "epochal.db").is_file()


def test_a_run_folder_that_is_a_link_is_unlinked_not_followed(local_store, victim):
    location = local_store.location
    with epochal.Store(location) as store:
        record = finished_run(store, "linked")
        folder = Path(record.path)
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
        folder.symlink_to(victim / "victim", target_is_directory=True)
        store.delete(record.id)
        assert store.runs() == []
    assert not folder.is_symlink() and not folder.exists()
    assert (victim / "victim" / "precious.txt").read_text() == "keep me"


def test_a_run_folder_is_removed_with_its_files(store_dir):
    with epochal.Store(store_dir) as store:
        record = finished_run(store, "plain")
        store.delete(record.id)
        assert store.runs() == []
    assert not Path(record.path).exists() and (store_dir / "runs").is_dir()
