"""What the bench scripts share: a table of figures, each target with met / NOT met, and how busy the CPUs were."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Target:
    what: str
    figure: str
    met: bool | None  # None: not measured in this run


def print_targets(targets: list[Target]) -> None:
    print("\nTargets:")
    width = max(len(t.what) for t in targets)
    figure_width = max(len(t.figure) for t in targets)
    for t in targets:
        verdict = "not measured" if t.met is None else "met" if t.met else "NOT met"
        print(f"  {t.what.ljust(width)}  {t.figure.rjust(figure_width)}  {verdict}")


def print_columns(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    """Columns as wide as their widest cell: the first left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    for cells in (headers, ["-" * w for w in widths], *lines):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def import_lightning() -> tuple[Any, str] | None:
    """``lightning.pytorch`` (or the older ``pytorch_lightning``) and its package name, its logging and
    warnings quietened; None, said on stdout, if neither is installed."""
    try:
        import lightning.pytorch as pl
        package = "lightning"
    except ImportError:
        try:
            import pytorch_lightning as pl
            package = "pytorch_lightning"
        except ImportError as exc:
            print(f"Lightning is not importable ({exc}); pip install epochal[bench] to compare with it. Skipping it.")
            return None
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*`tensorboardX` has been removed.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")  # Lightning on a newer torch
    return pl, package
