"""The writer's conversion of buffered records, including tensors that live on a device."""

import time

import numpy as np
import pytest
import torch

import epochal
from epochal.store.writer import Deferred, _resolve_tensors


def test_deferred_tensors_are_resolved_in_one_batch_in_logging_order():
    plain = (0, 0, 1.0, ("a",), (1.0,))
    first = Deferred(1, 0, 2.0, ("a", "b"), (np.nan, 5.0), ("a",), torch.tensor([2.5]))
    second = Deferred(2, 0, 3.0, ("c", "a"), (np.nan, np.nan), ("a", "c"), torch.tensor([3.5, -1.0]))
    resolved = _resolve_tensors([plain, first, second], [first, second])
    assert resolved == [plain, (1, 0, 2.0, ("a", "b"), (2.5, 5.0)), (2, 0, 3.0, ("c", "a"), (-1.0, 3.5))]


def test_keys_logged_in_different_combinations_keep_their_order(location):
    with epochal.start(store=location) as run:
        run.log({"a": 1.0, "b": 10.0}, step=0)
        run.log({"a": 2.0}, step=0)
        run.log({"b": 20.0, "a": 3.0}, step=0)
    h = epochal.Store(location).history(run.id, "a")
    assert h.values.tolist() == [1.0, 2.0, 3.0]  # same step: kept in the order they were logged


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_logging_a_cuda_tensor_does_not_synchronize_the_device(store_dir):
    run = epochal.start(store=store_dir, flush_interval=60)
    loss = torch.randn(1000, device="cuda").square().mean()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(100):
            run.log({"train/loss": loss, "train/acc": loss * 0.5})
            run.step()
            loss.add_(1.0)  # later in-place changes must not reach what was logged
    finally:
        torch.cuda.set_sync_debug_mode("default")
    run.finish()
    values = epochal.Store(store_dir).history(run.id, "train/loss").values
    assert np.allclose(np.diff(values), 1.0, atol=1e-3)


def _writer_of(store, run):
    from epochal.store.writer import Writer

    return Writer(store, run.id, 1, lambda: (0, 0), interval=0.05)


def test_a_record_the_store_cannot_hold_is_set_apart_and_the_others_are_kept(store):
    # Records that got past the caller's checks (a store written by another version, a bug) must not
    # take the rest of the run with them: every later flush used to fail on the one bad key.
    import warnings

    run = epochal.start(store=store)
    run.finish()
    writer = _writer_of(store, run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            writer.queue.append((step, 0, 1.0, ("good", "loss/\ud800"), (float(step), 1.0)))
            writer.queue.append((step, 0, 1.0, ("other",), (10.0 * step,)))
        assert writer.flush(timeout=10)  # released, not left waiting
        writer.queue.append((3, 0, 1.0, ("good",), (3.0,)))
        assert writer.close(timeout=10)
    assert store.history(run.id, "good").values.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert store.history(run.id, "other").values.tolist() == [0.0, 10.0, 20.0]
    assert writer.dropped_points == 3
    messages = [str(w.message) for w in caught if issubclass(w.category, epochal.EpochalWarning)]
    assert any("cannot hold 3 points of key 'loss/\\ud800'" in m for m in messages), messages


def test_a_record_that_cannot_be_converted_is_dropped_alone_and_flush_returns(store):
    run = epochal.start(store=store)
    run.finish()
    writer = _writer_of(store, run)
    writer.queue.append((0, 0, 1.0, ("a",), (1.0,)))
    writer.queue.append((2**64, 0, 1.0, ("a", "b"), (2.0, 3.0)))  # past int64: the conversion fails
    writer.queue.append((1, 0, 1.0, ("a",), (4.0,)))
    with pytest.warns(epochal.EpochalWarning, match="cannot be stored"):
        assert writer.close(timeout=10)
    assert store.history(run.id, "a").steps.tolist() == [0, 1]
    assert store.history(run.id, "a").values.tolist() == [1.0, 4.0]
    assert writer.dropped_points == 2 and "step 18446744073709551616" in writer.drop_reasons[0]


def test_a_store_that_fails_every_write_keeps_the_points_for_later_instead_of_dropping_them(store):
    # Not a bad record but a broken store (here: its connection closed under the writer):
    # nothing is dropped, everything waits for a store that works again.
    import warnings

    run = epochal.start(store=store)
    run.finish()
    writer = _writer_of(store, run)
    store.write = lambda batch: (_ for _ in ()).throw(ValueError("the database is damaged"))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        writer.queue.append((0, 0, 1.0, ("a", "b"), (1.0, 2.0)))
        assert not writer.flush(timeout=0.5)
        assert writer.dropped_points == 0 and writer.failing
        del store.write  # the store works again
        assert writer.close(timeout=10)
    assert store.history(run.id, "a").values.tolist() == [1.0]
    assert store.history(run.id, "b").values.tolist() == [2.0]


def test_a_store_refusing_writes_with_the_buffer_full_is_raised_at_the_next_log_once(local_store, monkeypatch):
    store = local_store  # the run writes to it directly
    # A refusal is waited out while nothing is lost; once the buffer is full (points are being dropped)
    # for PERSISTENT_AFTER_S, the caller hears of it at its next log(), not only at finish().
    import time
    import warnings

    from epochal.store import writer as writer_module

    monkeypatch.setattr(writer_module, "PERSISTENT_AFTER_S", 0.3)
    run = epochal.start(store=store, flush_interval=0.05, flush_points=10, max_buffered_points=100)
    run.log({"loss": -1.0})
    assert run.flush(timeout=10)
    store.write = lambda batch: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        deadline = time.monotonic() + 20
        with pytest.raises(epochal.StoreError, match="No space left on device.*buffer is full") as raised:
            while time.monotonic() < deadline:
                run.log({"loss": float(run.steps)})
                run.step()
                time.sleep(0.002)
        assert "kept and retried" in str(raised.value)
        run.log({"loss": 0.5})  # once: the next log() goes on
        assert run.flush(timeout=0.0) is False  # and so does flush(), while the store still refuses
        del store.write  # the store works again
        run.finish()
    values = store.history(run.id, "loss").values
    assert values[0] == -1.0 and len(values) >= 100  # what was buffered when it was raised is written
    assert run.dropped_points > 0


def _writer_with_a_bug(store):
    """A writer of a finished run whose first round of writing hits an unexpected error, with one point queued."""
    run = epochal.start(store=store)
    run.finish()
    failures = [RuntimeError("a bug in a round of writing")]

    def counters():
        if failures:
            raise failures.pop()
        return (0, 0)

    from epochal.store.writer import Writer

    writer = Writer(store, run.id, 1, counters, interval=0.05)
    writer.queue.append((0, 0, 1.0, ("a",), (1.0,)))
    return run, writer, failures


def test_an_unexpected_error_of_the_writer_is_raised_at_the_next_flush_and_loses_nothing(store):
    run, writer, _ = _writer_with_a_bug(store)
    with pytest.warns(epochal.EpochalWarning, match="unexpected error"):
        with pytest.raises(epochal.StoreError, match="a bug in a round of writing"):
            writer.flush(timeout=10)
    assert writer.flush(timeout=10)  # raised once; the point was kept and is written now
    assert writer.close(timeout=10)
    assert store.history(run.id, "a").values.tolist() == [1.0]


def test_a_writer_warning_that_cannot_be_a_warning_is_logged(capsys):
    import warnings

    from epochal.store.writer import _warn

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the writer thread must go on even so
        _warn("epochal: the store is full")
    assert capsys.readouterr().err == "epochal: the store is full\n"


def test_finishing_after_a_persistent_failure_not_yet_raised_still_writes_everything(store):
    run, writer, failures = _writer_with_a_bug(store)
    with pytest.warns(epochal.EpochalWarning, match="unexpected error"):
        while failures:
            time.sleep(0.01)
        assert writer.close(timeout=10)  # close() does not raise it: it writes what is buffered
    assert store.history(run.id, "a").values.tolist() == [1.0]
