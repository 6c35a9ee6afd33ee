"""The sample ledger of a run (``run.record_samples``, ``SampleLedger``): its events per epoch, the samples behind
each, an epoch's confusion matrix with the samples of its cells, and one sample's history."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request

from epochal.dynamics import files
from epochal.dynamics.ledger import FOLDER
from epochal.dynamics.ledger_events import confusion, epoch_events, sample_history
from epochal.dynamics.ledger_measures import has_ledger, ledger_stats
from epochal.server import folders
from epochal.server.models import (
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
    names = files.read_json(files.dynamics_folder(ledger.parent) / files.CLASSES_FILE)
    stats = ledger_stats(ledger)
    return LedgerInfo(
        classes=stats.classes, samples=len(stats.sample),
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
    stats = ledger_stats(ledger)
    at = stats.sample.searchsorted(samples)
    order = at[(-stats.mislabeled_score[at]).argsort(kind="stable")][:limit]
    return EventSamples(epoch=epoch, kind=kind, count=len(samples), samples=[
        LedgerSample(sample=int(stats.sample[i]), label=int(stats.label[i]), aum=float(stats.aum[i]),
                     forgetting_events=int(stats.forgetting_events[i]),
                     mislabeled_score=float(stats.mislabeled_score[i])) for i in order])


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


@router.get("/runs/{run}/ledger/samples/{sample}", response_model=SampleHistory, responses=_NOT_FOUND)
def get_sample_history(request: Request, run: RunRef, sample: Sample) -> SampleHistory:
    """One sample's target, prediction and probability of its target at every epoch it was presented in."""
    history = sample_history(_ledger(request, run), sample)
    if not history:
        raise HTTPException(404, f"the ledger has no sample {sample}")
    return SampleHistory(sample=sample, epochs=[
        SampleEpoch(epoch=e, target=t, predicted=p, right=r, probability=q) for e, t, p, r, q in history])
