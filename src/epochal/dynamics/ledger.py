"""The per-sample ledger: each training sample's loss, logit margin and prediction at every presentation,
taken from the training step's own outputs (no extra forward pass) and written off the training thread.

    >>> for idx, x, y in loader:                     # a data set that also yields each sample's index
    ...     logits = model(x)
    ...     loss = F.cross_entropy(logits, y)
    ...     run.record_samples(idx, logits, y)        # a LedgerRecorder the run owns
    ...     ...
    ...     run.step()
    >>> run.epoch()

Per presentation: the cross-entropy loss, the margin (the target's logit minus the largest other logit;
Pleiss et al., 2020), the predicted class (argmax) and whether it is the target. Logits on an accelerator
are reduced to these on their own device by the training thread, without waiting for it (no ``.item()``,
no ``.cpu()``); logits on the CPU are copied and reduced by the writer thread, in NumPy, many batches at
once. One writer thread per run copies the results to the host, keeps the current epoch's rows, and writes them
when the epoch ends (the first record of another epoch, ``flush`` or ``close``) into
``<run folder>/ledger/epoch-<E>-s<session>-r<rank>.npz``, atomically. A flush mid-epoch writes the epoch so
far; the epoch's file is written again, whole, when it ends. A recorder without a folder (a DDP rank that
may not see the run's folder) holds the epochs' arrays instead, for :meth:`LedgerRecorder.take` to hand to
rank 0, which writes them with :func:`write_epoch`.

Each file holds one row per presentation, in the order presented (a sample presented twice in an epoch
has two rows): ``sample`` (int32, int64 past 2**31), ``target`` and ``predicted`` (int16, int32 past
32,767 classes), ``correct`` (bool), ``loss`` and ``margin`` (float16 when every finite value of the
epoch fits in its range, else float32: float16 keeps 11 significant bits, a relative error of at most
2**-11), and per batch ``batch_step`` (the run's step) and ``batch_end`` (its last row + 1), by which a
resumed run's session supersedes what an earlier session recorded of the same epoch from that step on
(see :mod:`epochal.dynamics.ledger_measures`, which reads the files).
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.errors import DynamicsError, EpochalWarning, RunStateError

#: The folder of a run's ledger, inside the run's folder.
FOLDER = "ledger"
#: How many recorded batches may wait for the writer thread before ``record`` waits for it.
QUEUE_BATCHES = 1024
#: ``record`` wakes the writer thread every this many batches (each wake-up costs the training thread a
#: context switch), and the writer wakes by itself every ``WAKE_S`` seconds.
WAKE_BATCHES = 32
WAKE_S = 1.0
#: The writer thread reduces host logits once this many rows wait (or the epoch is written).
CHUNK_ROWS = 8192
_FILE = re.compile(r"epoch-(?P<epoch>[0-9]+)-s(?P<session>[0-9]+)-r(?P<rank>[0-9]+)\.npz")
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_STOP = object()


def file_name(epoch: int, part: str) -> str:
    """The name of an epoch's file written by ``part`` (``s<session>-r<rank>``)."""
    return f"epoch-{epoch}-{part}.npz"


def parse_file_name(name: str) -> tuple[int, int, int] | None:
    """(epoch, session, rank) of a ledger file's name; None for any other name."""
    match = _FILE.fullmatch(name)
    return None if match is None else (int(match["epoch"]), int(match["session"]), int(match["rank"]))


class LedgerRecorder:
    """Records each sample's outcome at every presentation; a :class:`~epochal.Run` makes one on its first
    :meth:`~epochal.Run.record_samples`.

    Args:
        folder: where the epoch files go (a run's ``ledger/``); None to hold them for :meth:`take`.
        part: what tells this process's files from other sessions' and ranks' (``s<session>-r<rank>``).

    Examples:
        >>> recorder = LedgerRecorder(Path(run.path) / "ledger", "s0-r0")
        >>> recorder.record(torch.arange(4), logits, targets, epoch=0, step=0)
        >>> recorder.close()   # writes epoch 0's file
    """

    def __init__(self, folder: str | Path | None, part: str = "s0-r0"):
        self.folder = None if folder is None else Path(folder)
        self.part = part
        self.classes: int | None = None  # fixed by the first record
        # The hand-over: record() appends (a deque's append and popleft are thread-safe) and wakes the
        # writer now and then; the writer drains it. A bounded queue with the same protocol as
        # TensorBoard's _AsyncWriter (a sentinel, the writer's error re-raised by the next call), less its
        # lock round trip per batch.
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._handed = 0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        # The writer thread's: the epoch being filled, its rows (lists of arrays per column), its batches.
        self._epoch: int | None = None
        self._rows: dict[str, list[np.ndarray]] = {}
        self._batches: list[tuple[int, int]] = []
        self._count = 0  # rows of the epoch, those waiting included
        self._waiting: list[tuple[Any, np.ndarray, np.ndarray]] = []  # host batches (logits a tensor) not yet reduced
        self._waiting_rows = 0
        self._held: dict[int, dict[str, np.ndarray]] = {}  # without a folder: the epochs written, by epoch
        self._held_lock = threading.Lock()

    # -- the training thread ---------------------------------------------------------------------

    def record(self, indices: Any, logits: Any, targets: Any, epoch: int, step: int = 0) -> None:
        """Record one batch: ``indices`` (N) of the samples, the step's ``logits`` (N, C), the ``targets`` (N).

        Args:
            indices: each sample's index in its data set: a 1-D integer tensor, NumPy array or list.
            logits: the (N, C) floating tensor (or NumPy array) the model gave; never changed, not kept.
            targets: (N) class indices in [0, C): an integer tensor, NumPy array or list.
            epoch, step: where the run is.

        Raises:
            DynamicsError: an input of another shape or type than the above, targets outside [0, C) or
                negative indices (for int64 targets in a tensor, and CPU logits with int64 indices or any on an
                accelerator: raised by a later call or ``flush``, as the writer thread finds it; the batches
                handed between the bad one and that call are not recorded either), or another class count than
                the first record's.
            OSError: the writer thread could not write an epoch's file (raised by the next call).
        """
        self._check_writer()
        if self._closed:
            raise RunStateError(f"the ledger in '{self.folder}' is closed (its run finished); resume the run to record")
        import torch

        # The quick way, for what a model on the CPU and a DataLoader give: float32 logits, int64 tensors (or
        # an int64 array of indices, as SampleLedger gives). Only copies (a loader that reuses its buffers,
        # logits changed afterwards: nothing recorded changes), three calls into torch: between training
        # steps every call into a library is slow (its code is out of the caches), NumPy's most. The writer
        # thread checks the targets and indices (a bad batch is raised by the next call) and does the arithmetic.
        tensor = torch.Tensor
        if (type(logits) is tensor and type(targets) is tensor and logits.dtype is torch.float32
                and logits.ndim == 2 and logits.shape[1] == self.classes and targets.dtype is torch.int64
                and targets.ndim == 1 and logits.is_cpu and targets.is_cpu and len(targets) == len(logits) > 0):
            index = None
            if type(indices) is tensor and indices.dtype is torch.int64 and indices.is_cpu:
                index = indices.clone()
            elif type(indices) is np.ndarray and indices.dtype == np.int64:
                index = indices.copy()
            if index is not None and index.shape == targets.shape:
                return self._hand((epoch, step, logits.detach().clone(), targets.clone(), index))
        if not isinstance(logits, torch.Tensor):
            logits = _host_tensor(logits, "logits")
        if logits.ndim != 2 or not logits.is_floating_point():
            raise DynamicsError(
                f"logits are an (N, C) floating tensor (N samples, C classes), got a {_described(logits)}"
            )
        count, classes = logits.shape
        if self.classes is None:
            if classes < 2:
                raise DynamicsError(f"logits have {classes} class; a margin needs 2 classes or more")
            self.classes = classes
        elif classes != self.classes:
            raise DynamicsError(
                f"logits have {classes} classes but this run's ledger recorded {self.classes} classes before; "
                "the class count stays the same throughout a run"
            )
        on_host = logits.device.type == "cpu"
        targets, device_targets = _index_tensor(targets, "targets", count, f"class indices in [0, {classes})", on_host)
        indices, device_indices = _index_tensor(indices, "indices", count, "sample indices >= 0", on_host)
        if not device_targets and count and (targets.min() < 0 or targets.max() >= classes):
            raise DynamicsError(
                f"targets run from {int(targets.min())} to {int(targets.max())} but the logits have {classes} "
                f"classes; targets are class indices in [0, {classes})"
            )
        if not device_indices and count and indices.min() < 0:
            raise DynamicsError(f"indices hold {int(indices.min())}; sample indices are >= 0")
        if not count:
            return
        if on_host:
            # On the CPU the writer thread does the arithmetic, in NumPy: the training thread only copies
            # the (N, C) logits, so that changing them afterwards changes nothing recorded.
            x = logits.detach()
            x = x.clone() if x.dtype in (torch.float32, torch.float64) else x.float()
            return self._hand((epoch, step, x, targets, indices))
        floats, ints, indices = _device_outcomes(logits, targets, indices)
        self._hand((epoch, step, floats, ints, indices, device_targets or device_indices))

    def flush(self) -> None:
        """Wait until every batch recorded so far is written (the current epoch's file holds them).

        Raises:
            OSError, DynamicsError: as :meth:`record`, if the writer thread hit one.
        """
        self._check_writer()
        if self._thread is not None and not self._closed:
            done = threading.Event()
            self._queue.append(done)
            self._wake.set()
            done.wait()
        self._check_writer()

    def take(self) -> list[tuple[str, dict[str, np.ndarray]]]:
        """For a recorder without a folder: wait for every batch recorded so far, and hand over each epoch
        written since the last call as (file name, arrays), for :func:`write_epoch`; the current epoch's
        rows so far included (its later rows come whole, with them, at the next call).

        Raises:
            OSError, DynamicsError: as :meth:`record`, if the writer thread hit one.
        """
        self.flush()
        with self._held_lock:
            held, self._held = self._held, {}
        return [(file_name(epoch, self.part), arrays) for epoch, arrays in sorted(held.items())]

    def close(self) -> None:
        """Write the last epoch and stop the writer thread. Never raises: an error the writer thread hit
        is an :class:`~epochal.EpochalWarning` (a run's ``finish`` calls this)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.append(_STOP)
            self._wake.set()
            self._thread.join()
        if self._error is not None:
            warnings.warn(f"epochal: the sample ledger in '{self.folder}' lost records: {self._error}",
                          EpochalWarning, stacklevel=3)
            self._error = None

    def _check_writer(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _hand(self, item: tuple) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"epochal-ledger-{self.part}", daemon=True)
            self._thread.start()
        self._queue.append(item)
        self._handed += 1
        if self._handed % WAKE_BATCHES == 0:
            self._wake.set()
            while len(self._queue) >= QUEUE_BATCHES and self._thread.is_alive():  # the writer is behind: wait
                time.sleep(0.001)

    # -- the writer thread ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            self._wake.wait(WAKE_S)
            self._wake.clear()
            while self._queue:
                item = self._queue.popleft()
                try:
                    if item is _STOP:
                        self._write_epoch()
                        return
                    if isinstance(item, threading.Event):
                        self._write_epoch()
                        item.set()
                    elif self._error is None:  # after an error, batches are dropped until the caller hears of it
                        self._take(*item)
                except BaseException as exc:  # kept for the training thread's next call
                    self._error = exc
                    if isinstance(item, threading.Event):
                        item.set()

    def _take(self, epoch: int, step: int, *batch: Any) -> None:
        if epoch != self._epoch:
            self._write_epoch()
            self._epoch, self._rows, self._batches, self._count = epoch, {}, [], 0
        if len(batch) == 3:  # host logits, targets, indices: reduced together once enough rows wait
            batch = _checked(self.classes, step, *batch)
            self._waiting.append(batch)
            self._waiting_rows += len(batch[1])
            if self._waiting_rows >= CHUNK_ROWS:
                self._reduce_waiting()
        else:
            self._reduce_waiting()
            floats, ints, indices, check = batch
            floats, ints = floats.cpu().numpy(), ints.cpu().numpy()  # waits for the device here, not in training
            target = ints[1]
            indices = ints[2] if indices is None else indices.cpu().numpy()
            if check and (target.min() < 0 or target.max() >= self.classes):
                raise DynamicsError(
                    f"targets run from {target.min()} to {target.max()} but the logits have {self.classes} classes; "
                    f"targets are class indices in [0, {self.classes}); the batch at step {step} was not recorded"
                )
            if check and indices.min() < 0:
                raise DynamicsError(f"indices hold {indices.min()}; sample indices are >= 0")
            self._add(ints[0], target, indices, floats[:, 0], floats[:, 1])
        self._count += len(batch[1])
        self._batches.append((step, self._count))

    def _reduce_waiting(self) -> None:
        """Loss, margin and prediction of the host batches waiting, in one go (NumPy's cost is per call)."""
        if self._waiting:
            waiting, self._waiting, self._waiting_rows = self._waiting, [], 0
            import torch

            logits, targets, indices = zip(*waiting)
            self._add(*_outcomes(torch.cat(logits).numpy(), np.concatenate(targets), np.concatenate(indices)))

    def _add(self, predicted: np.ndarray, target: np.ndarray, indices: np.ndarray, loss: np.ndarray,
             margin: np.ndarray) -> None:
        for name, column in (("sample", indices), ("target", target), ("predicted", predicted),
                             ("loss", loss), ("margin", margin)):
            self._rows.setdefault(name, []).append(column)

    def _write_epoch(self) -> None:
        self._reduce_waiting()
        if self._epoch is None or not self._count:
            return
        columns = {name: np.concatenate(parts) for name, parts in self._rows.items()}
        self._rows = {name: [column] for name, column in columns.items()}  # a flush mid-epoch: kept whole
        classes = self.classes or 0
        labels = np.int16 if classes <= np.iinfo(np.int16).max else np.int32
        sample = columns["sample"]
        arrays = {
            "sample": sample.astype(np.int32 if sample.max() <= np.iinfo(np.int32).max else np.int64),
            "target": columns["target"].astype(labels),
            "predicted": columns["predicted"].astype(labels),
            "correct": columns["predicted"] == columns["target"],
            "loss": _compact(columns["loss"]),
            "margin": _compact(columns["margin"]),
            "batch_step": np.array([s for s, _ in self._batches], dtype=np.int64),
            "batch_end": np.array([e for _, e in self._batches], dtype=np.int64),
            "classes": np.array(classes, dtype=np.int64),
            "epoch": np.array(self._epoch, dtype=np.int64),
        }
        if self.folder is None:
            with self._held_lock:
                self._held[self._epoch] = arrays
        else:
            write_epoch(self.folder, file_name(self._epoch, self.part), arrays)


def write_epoch(folder: Path, name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write one epoch's ``arrays`` (as a recorder makes them) to ``folder / name``, atomically."""
    atomic_write(folder / name, lambda file: np.savez(file, **arrays))


def _checked(classes: int, step: int, logits: Any, targets: Any, indices: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """A host batch with its targets and indices as NumPy arrays, once they are found to fit.

    Raises:
        DynamicsError: targets outside [0, classes) or negative indices; the batch is not recorded.
    """
    targets = targets if isinstance(targets, np.ndarray) else targets.numpy()
    indices = indices if isinstance(indices, np.ndarray) else indices.numpy()
    if targets.dtype == np.int64 and targets.view(np.uint64).max() < classes and indices.min() >= 0:
        return logits, targets, indices  # one comparison for the targets: a negative one is a huge unsigned one
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= classes:
        raise DynamicsError(
            f"targets run from {low} to {high} but the logits have {classes} classes; targets are class indices "
            f"in [0, {classes}); the batch at step {step} was not recorded"
        )
    if indices.min() < 0:
        raise DynamicsError(f"indices hold {indices.min()}; sample indices are >= 0; the batch at step {step} was "
                            "not recorded")
    return logits, targets, indices


def _compact(values: np.ndarray) -> np.ndarray:
    """float16 when every finite value fits in its range, else float32."""
    finite = values[np.isfinite(values)]
    fits = not finite.size or float(np.abs(finite).max()) <= _FLOAT16_MAX
    return values.astype(np.float16 if fits else np.float32)


def _host_tensor(values: Any, what: str) -> Any:
    import torch

    try:
        return torch.as_tensor(np.asarray(values))
    except (TypeError, ValueError, RuntimeError):
        raise DynamicsError(f"{what} must be a tensor, NumPy array or list of numbers, got {_described(values)}") \
            from None


def _outcomes(logits: np.ndarray, targets: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    """Predicted class, target, index, cross-entropy loss and margin per row of host logits."""
    count, classes = logits.shape
    logits = np.ascontiguousarray(logits)
    rows = np.arange(count)
    assigned = logits.reshape(-1)[rows * classes + targets]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if classes <= 64:
            # Few classes: NumPy's reductions over a short last axis are slow (a call per row), so the
            # classes are walked as rows of the transpose, each a vector operation over every sample.
            by_class = np.ascontiguousarray(logits.T)
            top = by_class[0].copy()
            predicted = np.zeros(count, np.int64)
            for k in range(1, classes):  # the first class at the top wins, as argmax
                row = by_class[k]
                predicted = np.where(row > top, k, predicted)
                np.maximum(top, row, out=top)
            if np.isnan(top).any():  # argmax takes the first NaN; the walk above does not see it
                undefined = np.isnan(top)
                predicted[undefined] = logits[undefined].argmax(1)
            shifted = np.subtract(by_class, top)
            np.exp(shifted, out=shifted)
            loss = np.log(shifted.sum(0)) + top - assigned
            by_class.reshape(-1)[targets * count + rows] = -np.inf
            best_other = by_class.max(0)
        else:
            predicted = logits.argmax(1)
            top = logits[rows, predicted]
            loss = np.log(np.exp(logits - top[:, None]).sum(1)) + top - assigned
            others = logits.copy()
            others[rows, targets] = -np.inf
            best_other = others.max(1)
        margin = assigned - best_other  # inf - inf: NaN, quietly
    return predicted, targets, indices, loss.astype(np.float32), margin.astype(np.float32)


def _device_outcomes(logits: Any, targets: Any, indices: Any) -> tuple[Any, Any, Any]:
    """On the logits' device, in a few kernels that nothing waits for: (N, 2) float32 of loss and margin,
    and rows of predicted class, target and (when on the same device; else None is returned in its place,
    and ``indices`` itself) index."""
    import torch

    with torch.no_grad():
        x = logits.detach()
        if x.dtype not in (torch.float32, torch.float64):
            x = x.float()  # half-precision logits: the loss and margin in float32
        target = targets.to(x.device, torch.int64, non_blocking=True)
        held = target.clamp(0, x.shape[1] - 1).unsqueeze(1)  # a bad target is reported, never gathered
        assigned = x.gather(1, held)
        top, top_classes = x.topk(2, 1)
        best_other = torch.where(top_classes[:, :1] == held, top[:, 1:], top[:, :1])
        loss = torch.logsumexp(x, 1, keepdim=True) - assigned
        floats = torch.cat([loss, assigned - best_other], 1).float()
        ints = [top_classes[:, 0], target]
        if indices.device == x.device:
            ints.append(indices.to(torch.int64))
            indices = None
        return floats, torch.stack(ints), indices


def _index_tensor(values: Any, what: str, count: int, accepted: str, host: bool) -> tuple[Any, bool]:
    """``values`` as a 1-D integer tensor of ``count`` elements (a NumPy array, for ``host`` logits), and
    whether it lies on an accelerator."""
    import torch

    if (host and type(values) is torch.Tensor and values.dtype in (torch.int64, torch.int32) and values.ndim == 1
            and values.shape[0] == count and values.device.type == "cpu"):  # what a DataLoader gives: the quick way
        return values.numpy().astype(np.int64), False  # a copy: a loader that reuses its buffers changes nothing
    if not isinstance(values, torch.Tensor):
        array = np.asarray(values)
        if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind == "f"):
            raise DynamicsError(f"{what} are {accepted} (integers), got a {_described(array)}")
        values = array
    elif values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
        raise DynamicsError(f"{what} are {accepted} (an integer tensor), got a {_described(values)}")
    else:
        array = None
    if values.ndim != 1 or len(values) != count:
        hint = "; one-hot or probabilities? give class indices, e.g. targets.argmax(1)" if values.ndim == 2 else ""
        raise DynamicsError(
            f"{what} are {count} {accepted} (one per row of the logits), got a {_described(values)}{hint}"
        )
    if host:  # a copy: a loader that reuses its buffers changes nothing recorded
        return np.array(array if array is not None else values.cpu().numpy(), dtype=np.int64), False
    if array is not None:
        return torch.from_numpy(array.astype(np.int64)), False
    return values, values.device.type != "cpu"


def _described(value: Any) -> str:
    """'float32 tensor of shape (8, 3)', 'int64 array of shape (5,)', or the type's name."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return type(value).__name__
    kind = "tensor" if type(value).__module__.startswith("torch") else "array"
    return f"{str(dtype).removeprefix('torch.')} {kind} of shape {tuple(shape)}"
