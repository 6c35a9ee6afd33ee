"""System metrics: what the machine and this process do while a run is open, sampled on the writer's thread.

Keys, under ``system/``:

- ``cpu_percent``: the machine's CPU use, 0-100 over all cores; ``process_cpu_percent``: this process's,
  100 per busy core (so up to 100 x cores);
- ``memory_percent`` and ``memory_used_gb``: the machine's memory in use; ``process_memory_gb``: this
  process's resident memory;
- ``disk_read_mb_s``, ``disk_write_mb_s``, ``net_recv_mb_s``, ``net_sent_mb_s``: the machine's rates
  since the previous sample (from the second sample on);
- for each GPU this process uses (one where PyTorch holds memory; never every GPU of the machine),
  ``gpu{i}/utilization_percent``, ``gpu{i}/memory_used_gb``, ``gpu{i}/memory_percent``,
  ``gpu{i}/power_w`` and ``gpu{i}/temperature_c``, with ``i`` PyTorch's device index. These need
  ``nvidia-ml-py`` (``pip install epochal[gpu]``); without it, or without a GPU, there are none.

A sample costs a few hundred microseconds of the writer thread every ``interval`` seconds and nothing
on the training thread. A reading the machine refuses (no permission for disk counters in a container,
a GPU without power readings) is left out of that sample, never an error.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from epochal.logs import logger

#: Seconds between samples unless ``start(system_metrics=...)`` says otherwise.
DEFAULT_INTERVAL_S = 10.0
_MB = 1e6
_GB = 1e9


def check_interval(system_metrics: object) -> float | None:
    """``start(system_metrics=)`` as seconds between samples, or None for no sampling.

    Raises:
        ValueError: neither True, False, None nor a positive number of seconds.
    """
    if system_metrics is True:
        return DEFAULT_INTERVAL_S
    if system_metrics is False or system_metrics is None:
        return None
    if isinstance(system_metrics, (int, float)) and 0 < system_metrics < float("inf"):
        return float(system_metrics)
    raise ValueError(f"system_metrics is a number of seconds between samples, True (every "
                     f"{DEFAULT_INTERVAL_S:g} s) or False (none), got {system_metrics!r}")


class SystemSampler:
    """Samples the machine every ``interval`` seconds; :meth:`due` says when, :meth:`sample` reads."""

    def __init__(self, interval: float):
        import psutil

        self.interval = interval
        self._psutil = psutil
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # the first reading only starts the count
        psutil.cpu_percent(None)
        self._last_io: tuple[float, Any, Any] | None = None
        _read({}, self._rates)  # the counters at the start, so the first sample has rates too
        self._nvml: Any = None
        self._nvml_tried = False
        self._next = time.monotonic() + interval  # each sample covers the interval before it

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + self.interval
        return True

    def sample(self) -> dict[str, float]:
        """One reading of every metric available now."""
        psutil = self._psutil
        values: dict[str, float] = {}
        _read(values, lambda: {"system/cpu_percent": psutil.cpu_percent(None),
                               "system/process_cpu_percent": self._process.cpu_percent(None)})
        _read(values, lambda: _memory(psutil.virtual_memory(), self._process.memory_info()))
        _read(values, self._rates)
        _read(values, self._gpus)
        return values

    def _rates(self) -> dict[str, float]:
        now = time.monotonic()
        disk, net = self._psutil.disk_io_counters(), self._psutil.net_io_counters()
        last, self._last_io = self._last_io, (now, disk, net)
        if last is None or now <= last[0]:
            return {}
        seconds = now - last[0]
        rates = {}
        if disk is not None and last[1] is not None:
            rates["system/disk_read_mb_s"] = (disk.read_bytes - last[1].read_bytes) / _MB / seconds
            rates["system/disk_write_mb_s"] = (disk.write_bytes - last[1].write_bytes) / _MB / seconds
        if net is not None and last[2] is not None:
            rates["system/net_recv_mb_s"] = (net.bytes_recv - last[2].bytes_recv) / _MB / seconds
            rates["system/net_sent_mb_s"] = (net.bytes_sent - last[2].bytes_sent) / _MB / seconds
        return rates

    def _gpus(self) -> dict[str, float]:
        used = _gpus_in_use()
        if not used:
            return {}
        nvml = self._nvml_module()
        if nvml is None:
            return {}
        values: dict[str, float] = {}
        for index, uuid in used:
            _read(values, lambda: _gpu(nvml, nvml.nvmlDeviceGetHandleByUUID(uuid), f"system/gpu{index}/"))  # noqa: B023
        return values

    def _nvml_module(self) -> Any:
        if not self._nvml_tried:
            self._nvml_tried = True
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except ImportError:
                logger.info("GPU metrics need nvidia-ml-py: pip install epochal[gpu]")
            except Exception as exc:  # no driver, no permission: no GPU metrics, said once
                logger.info(f"no GPU metrics: NVML cannot start ({exc})")
        return self._nvml


def _gpus_in_use() -> list[tuple[int, str]]:
    """``(torch device index, NVML UUID)`` of each GPU where PyTorch holds memory in this process.
    Never initializes CUDA: a process that has not touched a GPU uses none."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return []
    used = []
    for index in range(torch.cuda.device_count()):
        if torch.cuda.memory_reserved(index) > 0:
            uuid = str(torch.cuda.get_device_properties(index).uuid)
            used.append((index, uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"))
    return used


def _gpu(nvml: Any, handle: Any, prefix: str) -> dict[str, float]:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    values = {prefix + "memory_used_gb": memory.used / _GB,
              prefix + "memory_percent": 100.0 * memory.used / memory.total if memory.total else 0.0}
    _read(values, lambda: {prefix + "utilization_percent": float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)})
    _read(values, lambda: {prefix + "power_w": nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0})
    _read(values, lambda: {prefix + "temperature_c": float(nvml.nvmlDeviceGetTemperature(
        handle, nvml.NVML_TEMPERATURE_GPU))})
    return values


def _memory(machine: Any, process: Any) -> dict[str, float]:
    return {"system/memory_percent": float(machine.percent),
            "system/memory_used_gb": (machine.total - machine.available) / _GB,
            "system/process_memory_gb": process.rss / _GB}


def _read(values: dict[str, float], reading: Any) -> None:
    """Add what ``reading()`` returns; a reading the machine refuses is left out."""
    try:
        values.update(reading())
    except Exception as exc:  # psutil.AccessDenied, an NVML error for one field: that reading alone is lost
        logger.debug(f"a system metric could not be read: {exc!r}")
