"""ProgressBar: one progress bar per pass over a data set, or plain lines when not on a terminal.

On a terminal each stage (train, valid, test) gets a tqdm bar over its batches with the
samples per second and the running mean loss. In a log file (stdout is not a terminal) a
redrawn bar is noise, so every ``every_s`` seconds one line is written instead::

    train epoch 3/15  120/500 batches  3,100 samples/s  loss 0.4312

and one more when the stage ends. The loss is read from the device at most every
``refresh_s`` seconds: reading a CUDA tensor's value waits for the device, so doing it on
every batch would slow training down.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

import torch

from epochal.train.callback import BatchResult, Callback, StageResult

if TYPE_CHECKING:
    from epochal.train.callback import TrainerView

_clock = time.monotonic  # module-level so that tests can drive the time


class ProgressBar(Callback):
    """Progress of every stage: a tqdm bar on a terminal, a line every ``every_s`` seconds elsewhere.

    Args:
        every_s: seconds between progress lines when the output is not a terminal.
        file: where to write; default ``sys.stdout`` (looked up when a stage starts).
        refresh_s: seconds between readings of the running loss from the device.
        unit: what the bar counts, ``"batch"`` or ``"samples"``.
        description: the title of a stage's bar or lines, from the trainer and the stage; default
            ``"train epoch 3/15"``.
        total: what a stage's bar counts up to, from the trainer and the stage (None: unknown);
            default the stage's batches (unknown with ``unit="samples"``).
        terminal: draw a bar even when the output is not a terminal (True), or never (False);
            None asks the output.
        ascii: draw the bar with ASCII characters (``|#####     |``).
        postfix: the figures at the end of the bar, from the batch just done (every ``refresh_s``
            seconds) and from the stage's result when it ends; default the samples per second and
            the running mean loss.

    Examples:
        >>> trainer = Trainer(model, optimizer, ..., callbacks=[ProgressBar(every_s=30)], progress=False)
        >>> ProgressBar(unit="samples", description=lambda trainer, stage: f"{stage} {trainer.epoch + 1}")
        >>> ProgressBar(postfix=lambda done: {"loss_mean": done.loss_mean} if isinstance(done, StageResult) else {})
    """

    order = 10  # after the logger: only shows what the stage did
    rank_zero_only = True

    def __init__(
        self,
        every_s: float = 10.0,
        file: TextIO | None = None,
        refresh_s: float = 0.5,
        *,
        unit: str = "batch",
        description: Callable[[TrainerView, str], str] | None = None,
        total: Callable[[TrainerView, str], int | None] | None = None,
        terminal: bool | None = None,
        ascii: bool = False,
        postfix: Callable[[BatchResult | StageResult], Mapping[str, Any]] | None = None,
    ):
        if every_s < 0 or refresh_s < 0:
            raise ValueError(f"every_s and refresh_s must be 0 or more, got {every_s} and {refresh_s}")
        if unit not in ("batch", "samples"):
            raise ValueError(f"unit must be 'batch' or 'samples', got {unit!r}")
        self.every_s = every_s
        self.file = file
        self.refresh_s = refresh_s
        self.unit = unit
        self.description = description or _title
        self.total = total
        self.terminal = terminal
        self.ascii = ascii
        self.postfix = postfix
        self._bar: Any = None  # the open tqdm bar, on a terminal
        self._stage: _StageProgress | None = None

    # -- hooks ---------------------------------------------------------------------------------

    def on_stage_start(self, trainer: TrainerView, stage: str, batches: int | None) -> None:
        self._close()
        out = self.file if self.file is not None else sys.stdout
        now = _clock()
        self._stage = _StageProgress(self.description(trainer, stage), batches, out, now)
        if _is_terminal(out) if self.terminal is None else self.terminal:
            from tqdm import tqdm

            if self.total is not None:
                total = self.total(trainer, stage)
            else:
                total = batches if self.unit == "batch" else None
            self._bar = tqdm(total=total, desc=self._stage.title, unit=self.unit, file=out, dynamic_ncols=True,
                             leave=True, ascii=self.ascii)

    def on_batch_end(self, trainer: TrainerView, batch: BatchResult) -> None:
        s = self._stage
        if s is None:
            return
        # From the batch's index: a fit resumed part-way through an epoch starts past 0.
        s.batches_done = batch.index + 1
        s.samples += batch.size
        # Kept as they come (on a GPU an addition per batch is a kernel launch per step), added up and
        # read only when shown.
        s.unread.append(batch.loss.detach() if hasattr(batch.loss, "detach") else float(batch.loss))
        now = _clock()
        if now - s.loss_read_at >= self.refresh_s:
            s.loss_read_at = now
            s.loss_shown = s.read_loss()
            if self._bar is not None:
                if self.postfix is not None:
                    self._bar.set_postfix(self.postfix(batch), refresh=False)
                else:
                    self._bar.set_postfix_str(f"{s.rate(now):,.0f} samples/s, loss={s.loss_shown:.4f}", refresh=False)
        if self._bar is not None:
            self._bar.update((s.batches_done if self.unit == "batch" else s.samples) - self._bar.n)
        elif now - s.printed_at >= self.every_s:
            s.printed_at = now
            print(s.line(now), file=s.out, flush=True)

    def on_stage_end(self, trainer: TrainerView, result: StageResult) -> None:
        s = self._stage
        if s is None:
            return
        now = _clock()
        s.loss_shown, s.samples, s.batches_done = result.loss_mean, result.samples, result.batches
        if result.seconds > 0:
            rate = result.samples / result.seconds
        else:
            rate = s.rate(now)
        if self._bar is not None:
            if self.postfix is not None:
                self._bar.set_postfix(self.postfix(result), refresh=False)
            else:
                self._bar.set_postfix_str(f"{rate:,.0f} samples/s, loss={result.loss_mean:.4f}", refresh=False)
            self._close()
        else:
            seconds = result.seconds if result.seconds > 0 else now - s.started
            print(s.line(now, rate=rate) + f"  done in {_hms(seconds)}", file=s.out, flush=True)
        self._stage = None

    def on_fit_end(self, trainer: TrainerView) -> None:
        self._close()

    def on_interrupt(self, trainer: TrainerView) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _StageProgress:
    """What one stage has done so far, as far as the bar or the lines show it."""

    def __init__(self, title: str, total: int | None, out: TextIO, now: float):
        self.title = title
        self.total = total
        self.out = out
        self.started = now
        self.printed_at = now
        self.loss_read_at = now
        self.batches_done = 0
        self.samples = 0
        self.unread: list[Any] = []  # batch losses (device tensors or floats) not yet added to loss_sum
        self.loss_sum = 0.0
        self.losses = 0  # batches in loss_sum
        self.loss_shown: float | None = None

    def read_loss(self) -> float:
        """The mean batch loss so far: one addition (and one wait for the device) per reading."""
        tensors = [v for v in self.unread if hasattr(v, "detach")]
        if tensors:
            self.loss_sum += float(torch.stack(tensors).float().sum())
        self.loss_sum += sum(v for v in self.unread if not hasattr(v, "detach"))
        self.losses += len(self.unread)
        self.unread = []
        return self.loss_sum / self.losses if self.losses else float("nan")

    def rate(self, now: float) -> float:
        elapsed = now - self.started
        return self.samples / elapsed if elapsed > 0 else 0.0

    def line(self, now: float, rate: float | None = None) -> str:
        done = f"{self.batches_done}/{self.total}" if self.total is not None else f"{self.batches_done}"
        rate = self.rate(now) if rate is None else rate
        loss = "-" if self.loss_shown is None else f"{self.loss_shown:.4f}"
        return f"{self.title}  {done} batches  {rate:,.0f} samples/s  loss {loss}"


def _title(trainer: TrainerView, stage: str) -> str:
    if stage == "test":
        return stage  # a test pass belongs to no epoch of the fit
    epoch = getattr(trainer, "epoch", None)
    if epoch is None:
        return stage
    total = getattr(trainer, "max_epochs", None)
    return f"{stage} epoch {epoch + 1}/{total}" if total else f"{stage} epoch {epoch + 1}"


def _is_terminal(out: TextIO) -> bool:
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


def _hms(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
