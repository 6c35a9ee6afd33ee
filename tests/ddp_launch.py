"""Starting tests/ddp_worker.py as a user starts a DDP job: torchrun, or one plain process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).parent / "ddp_worker.py"


def torchrun(*args: str, ranks: int = 2, timeout: float = 180, check: bool = True,
             worker: Path = WORKER) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=ranks tests/ddp_worker.py ARGS``, as a user would start a job."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               str(worker), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"torchrun exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


def single(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The same worker in one plain process."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, str(WORKER), *args], env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return done
