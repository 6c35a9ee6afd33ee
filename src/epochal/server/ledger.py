"""The sample ledger of a run (``run.record_samples``, ``SampleLedger``): its events per epoch, the samples behind
each, an epoch's confusion matrix with the samples of its cells, and one sample's history.

A ledger's sample is its index in the training data set. Where the run also recorded training dynamics, a
sample listed here carries its ``position`` among the recorded samples (the ``train`` sample with that index),
which names its thumbnail and its point in the projection."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request

from epochal.dynamics import files
from epochal.dynamics.ledger import FOLDER
from epochal.dynamics.ledger_events import confusion, epoch_events, sample_history
from epochal.dynamics.ledger_measures import LedgerStats, has_ledger, ledger_stats
from epochal.server import folders
from epochal.server.models import (
    CellSamples,
    Confusion,
    ConfusionCell,
    EventSamples,
    LedgerEpoch,
    LedgerInfo,
    LedgerSample,
    Problem,
    SampleEpoch,
    SampleHistory,
)
from epochal.server.runs import RunRef, store_of

router = APIRouter()

Epoch = Annotated[int, Path(ge=0, le=10**9, description="an epoch of the ledger")]
Sample = Annotated[int, Path(ge=0, le=2**62, description="a sample's index in its data set")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="the most samples listed")]
Class = Annotated[int, Path(ge=0, le=10**6, description="a class")]
_NOT_FOUND = {404: {"model": Problem}, 422: {"model": Problem}}


def _ledger(request: Request, run: str) -> FsPath:
    """The run's ledger folder; 404 when it recorded none."""
    store = store_of(request)
    record = store.run(run)
    folder = folders.run_folder(store, record)
    ledger = folder / FOLDER
    if folders.link_outside(ledger, folder) is not None or not has_ledger(folder):
        raise HTTPException(404, f"run {record.name!r} ({record.id}) has no sample ledger: record one with the "
                                 "Trainer callback epochal.SampleLedger, or run.record_samples(indices, logits, targets)")
    return ledger


@router.get("/runs/{run}/ledger", response_model=LedgerInfo, responses=_NOT_FOUND)
def get_ledger(request: Request, run: RunRef) -> LedgerInfo:
    """The ledger's epochs, each with its events against the epoch before."""
    ledger = _ledger(request, run)
    events = epoch_events(ledger)
    dynamics = _dynamics(ledger)
    names = files.read_json(dynamics / files.CLASSES_FILE) if dynamics else None
    stats = ledger_stats(ledger)
    return LedgerInfo(
        classes=stats.classes, samples=len(stats.sample),
        sprites=dynamics is not None and (dynamics / files.SPRITES_FILE).is_file(),
        projection=dynamics is not None and (dynamics / files.PROJECTION_FOLDER / files.META_FILE).is_file(),
        class_names=[str(n) for n in names] if isinstance(names, list) and len(names) >= stats.classes else None,
        epochs=[LedgerEpoch(
            epoch=e.epoch, last_step=e.last_step, samples=e.samples, flips=len(e.flips), forgotten=len(e.forgotten),
            learned=len(e.learned), confidence_jumps=len(e.confidence_jumps),
            class_changes={str(c): n for c, n in e.class_changes.items()}, burst=e.burst,
        ) for e in events],
    )


@router.get("/runs/{run}/ledger/events/{epoch}", response_model=EventSamples, responses=_NOT_FOUND)
def get_event_samples(
    request: Request, run: RunRef, epoch: Epoch,
    kind: Annotated[Literal["flips", "forgotten", "learned", "confidence_jumps"], Query()] = "forgotten",
    limit: Limit = 200,
) -> EventSamples:
    """The samples behind one kind of event of an epoch, highest mislabeled score first."""
    ledger = _ledger(request, run)
    found = {e.epoch: e for e in epoch_events(ledger)}
    if epoch not in found:
        raise HTTPException(404, f"the ledger has no epoch {epoch}; it has epochs {sorted(found)}")
    samples = getattr(found[epoch], kind)
    return EventSamples(epoch=epoch, kind=kind, count=len(samples), samples=_listed(ledger, samples, limit))


@router.get("/runs/{run}/ledger/confusion/{epoch}", response_model=Confusion, responses=_NOT_FOUND)
def get_confusion(request: Request, run: RunRef, epoch: Epoch, limit: Limit = 100) -> Confusion:
    """An epoch's confusion matrix, and the samples of each cell (at most ``limit`` each)."""
    ledger = _ledger(request, run)
    epochs = {e.epoch for e in epoch_events(ledger)}
    if epoch not in epochs:
        raise HTTPException(404, f"the ledger has no epoch {epoch}; it has epochs {sorted(epochs)}")
    matrix, cells = confusion(ledger, epoch)
    return Confusion(epoch=epoch, classes=len(matrix), matrix=matrix.tolist(), cells=[
        ConfusionCell(label=label, predicted=predicted, count=len(samples), samples=samples[:limit].tolist())
        for (label, predicted), samples in sorted(cells.items())])


@router.get("/runs/{run}/ledger/confusion/{epoch}/cells/{label}/{predicted}", response_model=CellSamples,
            responses=_NOT_FOUND)
def get_cell_samples(request: Request, run: RunRef, epoch: Epoch, label: Class, predicted: Class,
                     limit: Limit = 200) -> CellSamples:
    """The samples of one cell of an epoch's confusion matrix (target ``label``, predicted ``predicted``),
    highest mislabeled score first."""
    ledger = _ledger(request, run)
    epochs = {e.epoch for e in epoch_events(ledger)}
    if epoch not in epochs:
        raise HTTPException(404, f"the ledger has no epoch {epoch}; it has epochs {sorted(epochs)}")
    matrix, cells = confusion(ledger, epoch)
    if label >= len(matrix) or predicted >= len(matrix):
        raise HTTPException(404, f"the ledger has {len(matrix)} classes (0 to {len(matrix) - 1}); "
                                 f"got label {label}, predicted {predicted}")
    samples = cells.get((label, predicted), np.empty(0, np.int64))
    return CellSamples(epoch=epoch, label=label, predicted=predicted, count=len(samples),
                       samples=_listed(ledger, samples, limit))


@router.get("/runs/{run}/ledger/samples/{sample}", response_model=SampleHistory, responses=_NOT_FOUND)
def get_sample_history(request: Request, run: RunRef, sample: Sample) -> SampleHistory:
    """One sample's target, prediction and probability of its target at every epoch it was presented in."""
    history = sample_history(_ledger(request, run), sample)
    if not history:
        raise HTTPException(404, f"the ledger has no sample {sample}")
    return SampleHistory(sample=sample, epochs=[
        SampleEpoch(epoch=e, target=t, predicted=p, right=r, probability=q) for e, t, p, r, q in history])


def _listed(ledger: FsPath, samples: np.ndarray, limit: int) -> list[LedgerSample]:
    """``samples`` (ascending indices) with their measures, highest mislabeled score first, at most ``limit``."""
    stats = ledger_stats(ledger)
    at = stats.sample.searchsorted(samples)
    order = at[(-stats.mislabeled_score[at]).argsort(kind="stable")][:limit]
    positions = _positions(_dynamics(ledger), stats, order)
    return [LedgerSample(sample=int(stats.sample[i]), label=int(stats.label[i]), aum=float(stats.aum[i]),
                         forgetting_events=int(stats.forgetting_events[i]),
                         mislabeled_score=float(stats.mislabeled_score[i]),
                         position=None if p < 0 else int(p)) for i, p in zip(order, positions, strict=True)]


def _dynamics(ledger: FsPath) -> FsPath | None:
    """The run's training dynamics folder, beside its ledger; None when it has none, or one that links outside
    the run's folder (the dynamics resource refuses to read that one too)."""
    folder = files.dynamics_folder(ledger.parent)
    if not folder.is_dir() or folders.link_outside(folder, ledger.parent) is not None:
        return None
    return folder


def _positions(dynamics: FsPath | None, stats: LedgerStats, rows: np.ndarray) -> np.ndarray:
    """Where the samples at ``rows`` of ``stats`` sit among the run's recorded dynamics samples: the ``train``
    sample with the same index; -1 where there is none (or the run recorded no dynamics)."""
    out = np.full(len(rows), -1, np.int64)
    path = None if dynamics is None else dynamics / files.SAMPLES_FILE
    if not len(rows) or path is None or not path.is_file():
        return out
    with files.arrays(path) as stored:
        indices, split = stored["indices"], stored["split"]
    train = np.flatnonzero(split == "train")
    order = train[np.argsort(indices[train], kind="stable")]
    known = indices[order]
    wanted = stats.sample[rows]
    at = np.minimum(known.searchsorted(wanted), max(len(known) - 1, 0))
    found = (at < len(known)) & (known[at] == wanted) if len(known) else np.zeros(len(rows), bool)
    out[found] = order[at[found]]
    return out
