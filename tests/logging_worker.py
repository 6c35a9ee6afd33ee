"""A process that logs to a store, used by the crash, concurrency and disk-full tests.

    python logging_worker.py STORE NAME MODE [N]

MODE is 'steady' (log N steps of two keys, then finish), 'kill' (log, flush,
log a little more, then SIGKILL itself), 'outrun' (log N steps as fast as a loop
can, far faster than the store can write them, then SIGKILL itself without a
flush) or 'disk-full' (log while no file may grow, then let files grow again and
finish).
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
import warnings

import epochal


def _log_steps(run, start: int, count: int) -> None:
    for i in range(start, start + count):
        run.log({"train/loss": 1.0 / (i + 1), "train/noise": (i * 7919 % 1000) / 997})
        run.step()


def main() -> None:
    store, name, mode = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    if mode == "steady":
        with epochal.start(project="workers", name=name, store=store, flush_interval=0.05) as run:
            _log_steps(run, 0, count)
    elif mode == "kill":
        run = epochal.start(project="workers", name=name, store=store, flush_interval=0.2)
        _log_steps(run, 0, count)
        run.flush()
        print("flushed", flush=True)
        _log_steps(run, count, 10)  # these may be lost: less than one flush interval old
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "outrun":
        # Woken by size only (the interval is long), in small batches: the loop outruns the writer.
        run = epochal.start(project="workers", name=name, store=store, flush_interval=30, flush_points=1000)
        values = {f"k{i:02d}": float(i) for i in range(20)}  # 20 points a call: far more than the store takes
        for _ in range(count):
            run.log(values)
            run.step()
        print("logged", 20 * count, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "disk-full":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write then fails with EFBIG, as on a full disk
        warnings.simplefilter("always")
        run = epochal.start(project="workers", name=name, store=store, flush_interval=0.05)
        _log_steps(run, 0, count)
        run.flush()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
        _log_steps(run, count, count)
        time.sleep(0.5)  # several flushes fail meanwhile
        print("written while full:", run.flush(timeout=0.2), flush=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        _log_steps(run, 2 * count, count)
        run.finish()
        print("finished", flush=True)


if __name__ == "__main__":
    main()
