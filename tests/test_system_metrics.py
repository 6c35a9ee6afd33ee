"""System metrics: sampled on the writer's thread while a run is open, recorded under system/ like any point."""

import threading
import time

import pytest
import torch

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


def test_gpu_readings_come_in_the_units_the_keys_name():
    from types import SimpleNamespace

    from epochal.system_metrics import _gpu

    class FakeNVML:  # the four NVML calls, as nvidia-ml-py answers them (bytes, milliwatts, degrees, percent)
        NVML_TEMPERATURE_GPU = 0

        def nvmlDeviceGetMemoryInfo(self, handle):
            return SimpleNamespace(used=30e9, total=120e9)

        def nvmlDeviceGetUtilizationRates(self, handle):
            return SimpleNamespace(gpu=87)

        def nvmlDeviceGetPowerUsage(self, handle):
            return 412_500

        def nvmlDeviceGetTemperature(self, handle, sensor):
            raise RuntimeError("not supported on this GPU")  # a reading refused is left out

    assert _gpu(FakeNVML(), object(), "system/gpu1/") == {
        "system/gpu1/memory_used_gb": 30.0, "system/gpu1/memory_percent": 25.0,
        "system/gpu1/utilization_percent": 87.0, "system/gpu1/power_w": 412.5,
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_this_process_uses_is_sampled(store_dir):
    pytest.importorskip("pynvml", reason="GPU metrics need nvidia-ml-py (epochal[gpu])")
    held = torch.ones(1024, device="cuda")  # PyTorch holds memory on device 0: this process uses it
    with epochal.start(store=store_dir, system_metrics=0.2) as run:
        time.sleep(1.0)
    keys = set(_series(store_dir, run.id))
    assert {"system/gpu0/memory_used_gb", "system/gpu0/utilization_percent"} <= keys
    assert not any(k.startswith("system/gpu") and not k.startswith("system/gpu0/") for k in keys)
    del held
