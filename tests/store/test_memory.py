"""The in-memory backend: chosen by a memory:// URI, shared by name, all of a batch or nothing."""

import gc
from pathlib import Path

import numpy as np
import pytest

import epochal
from epochal.store.records import SeriesChunk, WriteBatch


def test_stores_of_one_name_share_their_runs_and_other_names_do_not(tmp_path):
    name = f"memory://{tmp_path}"
    with epochal.start("p", name="first", store=name) as run:
        run.log({"loss": 0.5})
    assert [r.name for r in epochal.Store(name).runs()] == ["first"]
    assert epochal.Store(name).history(run.id, "loss").values.tolist() == [0.5]
    assert epochal.Store(f"{name}-other").runs() == []
    with pytest.raises(epochal.StoreNotFoundError):
        epochal.Store(f"{name}-missing", create=False)


def test_run_files_live_in_a_temporary_folder_that_goes_with_the_store(tmp_path):
    store = epochal.Store(f"memory://{tmp_path}")
    with epochal.start(store=store) as run:
        run.save_checkpoint()
    assert Path(run.path).parent == store.files_root and any(Path(run.path).rglob("*"))
    assert not store.files_root.is_relative_to(tmp_path)
    folder = store.path
    del store, run
    gc.collect()
    assert not folder.exists()


def test_a_batch_that_fails_leaves_nothing_of_itself(tmp_path):
    store = epochal.Store(f"memory://{tmp_path}")
    with epochal.start(store=store, name="kept") as run:
        run.log({"loss": 1.0})
    one = np.zeros(1, np.int64)
    orphan = SeriesChunk("nosuchrun", "loss", 0, one, one, np.ones(1), one)
    good = SeriesChunk(run.id, "loss", 0, one + 1, one, np.ones(1), one)
    with pytest.raises(epochal.StoreError, match="not in the store"):
        store.write(WriteBatch(chunks=(good, orphan)))
    assert store.history(run.id, "loss").values.tolist() == [1.0]  # the good chunk was not kept either


def test_two_resumes_of_the_same_run_one_wins(local_store):
    store = local_store  # the run writes to it directly
    with epochal.start(store=store, name="twice") as run:
        run.log({"loss": 1.0})
    first = epochal.resume(run.id, store=store)
    record = store.stored_record(run.id)
    assert record is not None and record.segment == 1 and record.status == "running"
    with pytest.raises(epochal.RunStateError):
        epochal.resume(run.id, store=store)
    first.finish()
