"""A training process that logs to a team (PostgreSQL) store, used by tests/store/test_team_store.py.

    python team_worker.py MODE STORE NAME [N] [--store URL]

MODE is 'steady' (log N steps of three keys, then finish; prints the run's id) or 'kill' (log N steps
and wait until they are shipped, then slow the shipper down to one copy a minute, log N more steps,
wait until they are in the spool, and SIGKILL itself: the spool then holds points the team store
lacks). A trailing ``--store URL`` is ignored: it is there to be seen in the run's command line.

The run is started with ``job=False`` (no DDP job to join), which spares each worker the import of
torch.distributed: eight of them start in seconds, not half a minute, on a machine of two cores.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import epochal
from epochal.store import shipping

KEYS = ("train/loss", "train/acc", "lr")


def value(key: str, step: int) -> float:
    """The value a worker logs for ``key`` at ``step`` (the tests compute the same)."""
    return {"train/loss": 1.0 / (step + 1), "train/acc": (step * 7919 % 1000) / 997, "lr": 3e-4 * 0.999 ** step}[key]


def _log_steps(run: epochal.Run, start: int, count: int) -> None:
    for step in range(start, start + count):
        run.log({key: value(key, step) for key in KEYS})
        run.step()


def _slowed(copy_run, delay: float):
    """``copy_run`` that waits ``delay`` seconds before each copy: a shipper far slower than the run."""

    def slow(*args, **kwargs):
        time.sleep(delay)
        return copy_run(*args, **kwargs)

    return slow


def main() -> None:
    mode, store, name = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4].isdigit() else 1000
    run = epochal.start(project="team", name=name, store=store, flush_interval=0.05, system_metrics=False,
                        job=False)
    print(run.id, flush=True)
    if mode == "steady":
        _log_steps(run, 0, count)
        run.finish()
    elif mode == "kill":
        _log_steps(run, 0, count)
        assert run.flush(timeout=30), "the first steps were not shipped"
        print("shipped", flush=True)
        shipping.copy_run = _slowed(shipping.copy_run, 60.0)
        _log_steps(run, count, count)
        run.summary  # waits until the points are in the spool, not for the team store
        print("spooled", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
