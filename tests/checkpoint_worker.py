"""A process that saves checkpoints and is killed at a chosen moment, for tests/test_checkpoint_faults.py.

    python checkpoint_worker.py STORE NAME MODE

MODE is
- 'kill-before-record': save a checkpoint, then save again at the same step and epoch while
  the database is locked, and SIGKILL itself before the second record can be committed;
- 'kill-mid-write': save a checkpoint, then SIGKILL itself halfway through writing the next;
- 'writing': start writing a file with ``write_atomically``, say so, and wait to be killed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import torch

import epochal
from epochal import atomic, run_checkpoints


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    store_dir, name, mode = sys.argv[1:4]
    if mode == "writing":
        def write(file):
            file.write(b"half a file")
            file.flush()
            print("writing", flush=True)
            time.sleep(60)

        atomic.atomic_write(Path(store_dir) / "blob.bin", write)
        return
    store = epochal.Store(store_dir, busy_timeout=0.05)
    run = epochal.start(name=name, store=store, flush_interval=0.05)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    run.step(3)
    run.epoch(1)
    run.save_checkpoint(models=model)
    print("saved", flush=True)
    if mode == "kill-before-record":
        blocker = sqlite3.connect(Path(store_dir) / "epochal.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        run_checkpoints.RECORD_TIMEOUT_S = 0.2
        threading.Timer(5.0, _die).start()  # should the save wait for the lock, die all the same
        with torch.no_grad():
            model.weight.add_(1.0)
        run.save_checkpoint(models=model)  # the same step and epoch: the Trainer's Ctrl-C save does this
        _die()  # after the file is in place, before its record is committed
    elif mode == "kill-mid-write":
        def dying_save(obj, file, *args, **kwargs):
            file.write(b"PK\x03\x04" + b"\0" * 4096)
            file.flush()
            _die()

        torch.save = dying_save
        run.step()
        run.save_checkpoint(models=model)


if __name__ == "__main__":
    main()
