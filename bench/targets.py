"""A benchmark target and how the bench scripts print them: the figure, then met / NOT met."""

from __future__ import annotations

from dataclasses import dataclass


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
