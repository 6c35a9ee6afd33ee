"""System metrics: sampled on the writer's thread while a run is open, recorded under system/ like any point."""

import threading
import time

import pytest

import epochal
from epochal.system_metrics import SystemSampler


def _series(store_dir, run_id):
    with epochal.Store(store_dir) as store:
        return {key: store.history(run_id, key) for key in store.summary(run_id)}


def test_an_open_run_records_the_machine_and_process_at_its_steps_off_the_training_thread(store_dir, monkeypatch):
    threads = set()
    sample = SystemSampler.sample

    def watched(self):
        threads.add(threading.current_thread().name)
        return sample(self)

    monkeypatch.setattr(SystemSampler, "sample", watched)
    with epochal.start(store=store_dir, system_metrics=0.2) as run:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            run.log({"train/loss": 1.0})
            run.step()
            if run.steps % 200 == 0:
                run.epoch()
            time.sleep(0.001)
    series = _series(store_dir, run.id)
    assert threads and all(name.startswith("epochal-writer") for name in threads)
    for key in ("cpu_percent", "process_cpu_percent", "memory_percent", "memory_used_gb", "process_memory_gb",
                "disk_read_mb_s", "disk_write_mb_s", "net_recv_mb_s", "net_sent_mb_s"):
        assert f"system/{key}" in series, key
    cpu = series["system/cpu_percent"]
    assert 3 <= len(cpu.values) <= 9  # every 0.2 s over 1.5 s, the first after 0.2 s
    assert all(0 <= v <= 100 for v in cpu.values)
    assert all(0 < v < 1000 for v in series["system/process_memory_gb"].values)
    # On the run's axes: steps and epochs that move on with training.
    assert list(cpu.steps) == sorted(cpu.steps) and cpu.steps[-1] > cpu.steps[0] > 0
    assert cpu.epochs[-1] >= 1
    assert not any(key.startswith("system/gpu") for key in series)  # no GPU used by this process


def test_system_metrics_false_records_none_and_a_bad_interval_is_refused(store_dir):
    with epochal.start(store=store_dir, system_metrics=False) as run:
        run.log({"x": 1.0})
        time.sleep(0.6)
    assert set(_series(store_dir, run.id)) == {"x"}
    for bad in (0, -1, "10s", float("inf")):
        with pytest.raises(ValueError, match="system_metrics is a number of seconds between samples"):
            epochal.start(store=store_dir, system_metrics=bad)


def test_a_resumed_run_samples_again(store_dir):
    with epochal.start(store=store_dir, system_metrics=False) as run:
        run.step(5)
    with epochal.resume(run.id, store=store_dir, system_metrics=0.1) as again:
        time.sleep(0.5)
    assert again.id == run.id
    assert min(_series(store_dir, run.id)["system/cpu_percent"].steps) == 5
