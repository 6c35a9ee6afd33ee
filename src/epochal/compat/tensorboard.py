"""A one-import shim for code written against TensorBoard's ``SummaryWriter``.

    >>> from epochal.compat.tensorboard import SummaryWriter   # was: from torch.utils.tensorboard import ...
    >>> writer = SummaryWriter("runs/baseline")
    >>> writer.add_scalar("train/loss", 0.5, global_step=10)
    >>> writer.add_hparams({"lr": 1e-3}, {"hparam/accuracy": 0.9})
    >>> writer.close()

Each writer records one epochal run, named by its log directory's last part (TensorBoard's default
``runs/<date>_<host><comment>`` when none is given) in project ``tensorboard``, through the run's
public API: scalars at their ``global_step`` (0 when none is given, as TensorBoard records them) and
``walltime``; ``add_scalars`` as ``main_tag/tag`` keys; ``add_hparams`` into the run's config and its
metrics as points; ``add_text`` into the config under ``text``. No event files are written; ``epochal
export RUN --format tensorboard`` makes them. Calls epochal has no counterpart for (images,
histograms, graphs, embeddings, audio, video) raise ``NotImplementedError`` naming the call.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import epochal

__all__ = ["SummaryWriter"]

_UNSUPPORTED = ("add_image", "add_images", "add_histogram", "add_histogram_raw", "add_figure", "add_graph",
                "add_embedding", "add_audio", "add_video", "add_pr_curve", "add_pr_curve_raw", "add_mesh",
                "add_custom_scalars", "add_onnx_graph")


class SummaryWriter:
    """``torch.utils.tensorboard.SummaryWriter``'s scalar API, recording an epochal run.

    Args:
        log_dir, comment: as TensorBoard's; they name the run.
        project, store: where the run goes (default project ``tensorboard``, the default store).
        The other TensorBoard arguments (``purge_step``, ``max_queue``, ``flush_secs``,
        ``filename_suffix``) are accepted and have no effect: epochal's writer batches by itself.
    """

    def __init__(self, log_dir: str | Path | None = None, comment: str = "", purge_step: int | None = None,
                 max_queue: int = 10, flush_secs: int = 120, filename_suffix: str = "", *,
                 project: str = "tensorboard", store: Any = None):
        if log_dir is None:
            log_dir = Path("runs") / f"{datetime.now():%b%d_%H-%M-%S}_{socket.gethostname()}{comment}"
        self.log_dir = str(log_dir)
        self.run = epochal.start(project, Path(self.log_dir).name or self.log_dir, store=store,
                                 description=f"written through SummaryWriter({self.log_dir!r})")

    def get_logdir(self) -> str:
        return self.log_dir

    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None, walltime: float | None = None,
                   new_style: bool = False, double_precision: bool = False) -> None:
        self._log({tag: scalar_value}, global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: Mapping[str, Any], global_step: int | None = None,
                    walltime: float | None = None) -> None:
        self._log({f"{main_tag}/{tag}": value for tag, value in tag_scalar_dict.items()}, global_step, walltime)

    def add_hparams(self, hparam_dict: Mapping[str, Any], metric_dict: Mapping[str, Any],
                    hparam_domain_discrete: Any = None, run_name: str | None = None,
                    global_step: int | None = None) -> None:
        """The hyperparameters go into the run's config; the metrics are logged at ``global_step`` (or 0)."""
        self.run.update_config(dict(hparam_dict))
        if metric_dict:
            self._log(dict(metric_dict), global_step, None)

    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        """Kept in the run's config under ``text``: the newest text of each tag."""
        self.run.update_config({"text": {tag: str(text_string)}})

    def flush(self) -> None:
        self.run.flush()

    def close(self) -> None:
        self.run.finish()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.run.finish()
        else:
            self.run.finish("interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")

    def __getattr__(self, name: str) -> Any:
        if name in _UNSUPPORTED:
            raise NotImplementedError(
                f"SummaryWriter.{name} has no counterpart in epochal, which records scalars; keep "
                "torch.utils.tensorboard's SummaryWriter for it beside this one"
            )
        raise AttributeError(name)

    def _log(self, values: dict[str, Any], global_step: int | None, walltime: float | None) -> None:
        step = 0 if global_step is None else int(global_step)
        self.run.log(values, step=step, time=walltime)
        if step > self.run.steps:  # the run's counter follows the largest step written
            self.run.set_counters(step, self.run.epochs)
