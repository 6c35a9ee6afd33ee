import pytest

import epochal


def test_reading_a_missing_store_without_create_is_a_clear_error(tmp_path):
    with pytest.raises(epochal.StoreNotFoundError, match="no store in"):
        epochal.Store(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_store_layout_is_a_database_and_a_folder_per_run(store_dir):
    with epochal.start(store=store_dir) as run:
        run.log({"a": 1.0})
    assert (store_dir / "epochal.db").is_file()
    assert run.path == store_dir / "runs" / run.id and run.path.is_dir()
    import sqlite3

    conn = sqlite3.connect(store_dir / "epochal.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_delete_removes_records_and_files_but_refuses_a_running_run(store_dir):
    live = epochal.start(store=store_dir, name="live")
    with pytest.raises(epochal.RunStateError, match="still running"):
        epochal.Store(store_dir).delete("live")
    live.finish()
    with epochal.start(store=store_dir, name="doomed") as run:
        run.log({"a": 1.0})
        run.save_checkpoint()
    store = epochal.Store(store_dir)
    store.delete("doomed")
    assert not run.path.exists()
    assert [r.name for r in store.runs()] == ["live"]
    with pytest.raises(epochal.RunNotFoundError):
        store.run(run.id)
    import sqlite3

    conn = sqlite3.connect(store_dir / "epochal.db")
    for table in ("series", "chunks", "checkpoints", "config", "run_tags"):
        rows = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        assert rows == 0, table


def test_filters_by_status_and_tag(location):
    epochal.start(store=location, name="a", tags=["x"]).finish()
    epochal.start(store=location, name="b", tags=["y"]).finish("failed")
    store = epochal.Store(location)
    assert [r.name for r in store.runs(tag="x")] == ["a"]
    assert [r.name for r in store.runs(status="failed")] == ["b"]


def test_a_store_from_a_newer_epochal_is_refused(store_dir):
    epochal.Store(store_dir).close()
    import sqlite3

    conn = sqlite3.connect(store_dir / "epochal.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(epochal.StoreError, match="schema 99.*upgrade epochal"):
        epochal.Store(store_dir)


@pytest.mark.parametrize("crafted", ["../../outside", "/etc", "..", ".hidden", "a/b", "a\\b", "x\x00y", "", "é" * 3])
def test_a_run_id_that_could_name_another_folder_is_never_read_from_the_store(store_dir, crafted):
    import sqlite3

    with epochal.start(store=store_dir, name="real") as run:
        run.log({"a": 1.0})
    with sqlite3.connect(store_dir / "epochal.db") as conn:  # a store someone else wrote
        conn.execute("UPDATE runs SET id = ?, name = 'crafted' WHERE id = ?", (crafted, run.id))
        conn.execute("PRAGMA foreign_keys = OFF")
    store = epochal.Store(store_dir)
    assert store.runs() == []  # the row is left out: nothing reads or deletes files through it
    with pytest.raises(epochal.RunNotFoundError):
        store.run("crafted")
    with pytest.raises(epochal.RunNotFoundError):
        store.run(crafted or "?")
    with epochal.start(store=store_dir, name="next") as other:  # the store goes on working
        other.log({"a": 2.0})
    assert [r.name for r in store.runs()] == ["next"]


def test_tags_and_notes_set_on_a_stored_run_follow_the_same_text_rule(store):
    with epochal.start(store=store, name="r") as run:
        pass
    for tags, notes in ((["ok", "bad\udcff"], None), (None, "notes \ud800"), (["x" * 101], None)):
        with pytest.raises(ValueError, match="not valid Unicode|at most 100"):
            store.update(run.id, tags=tags, notes=notes)
    assert store.run(run.id).tags == () and store.run(run.id).description == ""


@pytest.mark.parametrize("column, damage", [("config", "{not json"), ("config", "[1, 2]"), ("tags", "5"),
                                            ("tags", "[1]"), ("ranks", "{}"), ("ranks", '[["h", "1"]]')])
def test_a_damaged_run_record_is_left_out_with_a_warning_and_the_others_are_read(store_dir, column, damage):
    import sqlite3

    for name in ("damaged", "fine"):
        with epochal.start(store=store_dir, name=name, config={"lr": 0.1}, tags=["t"]):
            pass
    with sqlite3.connect(store_dir / "epochal.db") as conn:
        conn.execute(f"UPDATE runs SET {column} = ? WHERE name = 'damaged'", (damage,))
    with pytest.warns(epochal.EpochalWarning, match="is damaged"):
        assert [r.name for r in epochal.Store(store_dir).runs()] == ["fine"]


def test_a_damaged_series_chunk_is_a_store_error_naming_the_key(store_dir):
    import sqlite3
    import struct

    with epochal.start(store=store_dir, name="r") as run:
        for step in range(100):
            run.log({"loss": 1.0 / (step + 1)})
            run.step()
    store = epochal.Store(store_dir)
    with sqlite3.connect(store_dir / "epochal.db") as conn:
        (blob,) = conn.execute("SELECT data FROM chunks").fetchone()
        for damaged in (blob[:7], struct.pack("<BI", 2, 2**32 - 1) + blob[5:], blob[:30] + b"x" * 20):
            conn.execute("UPDATE chunks SET data = ?", (damaged,))
            conn.commit()
            with pytest.raises(epochal.StoreError, match="series of key 'loss' cannot be read: .*damaged"):
                store.history(run.id, "loss")


def test_keys_by_run_reads_every_runs_keys_at_once(store):
    first = epochal.start(store=store)
    first.log({"valid/loss": 0.5, "train/loss": 1.0})
    first.finish()
    second = epochal.start(store=store)
    second.log({"lr": 0.1})
    second.finish()
    silent = epochal.start(store=store)
    silent.finish()
    everything = {first.id: ["train/loss", "valid/loss"], second.id: ["lr"]}
    assert store.keys_by_run() == everything  # a run that logged nothing has no entry
    assert store.keys_by_run([second.id, silent.id, "no-such-run"]) == {second.id: ["lr"]}
    many = [f"x{i}" for i in range(1_200)] + [first.id]  # more ids than one query's IN list holds
    assert store.keys_by_run(many) == {first.id: everything[first.id]}
    assert store.keys_of([first.id, second.id]) == ["lr", "train/loss", "valid/loss"]
