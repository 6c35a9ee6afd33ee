"""The quality of a run's fitted projection, per epoch and split, kept in ``projection/quality.json``.

    >>> report = epochal.dynamics.evaluate(run)
    >>> report["epochs"]["10"]["train"]["npr"], report["mean"]["train"]["movement"]

Per epoch and split (train and test samples measured apart, each among its own kind):

- ``npr``: NPR@k, the share of each sample's k nearest neighbours in the representation that are
  also among its k nearest in 2D;
- ``trustworthiness``: Venna & Kaski's, at the same k;
- ``ppr``: the share of samples whose 2D point, decoded and classified by that epoch's head, gets
  the class the model predicted for the sample (only when the heads were recorded).

Per pair of consecutive epochs and split: ``movement``, the Spearman correlation between how far
each sample moved in the representation and in 2D, and ``neighbourhood``, the same for the share of
its k nearest neighbours it lost against its 2D movement. ``mean`` averages each over epochs.
With four epochs or more, ``trajectory`` holds per split the Spearman correlation over each sample's
epochs between its moves in the representation and in 2D, averaged over samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from epochal.dynamics import files
from epochal.dynamics.fitting import coordinates, load, recorded, run_folder
from epochal.dynamics.quality import (
    movement_correlation,
    neighbourhood_change_correlation,
    neighbourhood_quality,
    prediction_preservation,
    trajectory_correlation,
)
from epochal.errors import DynamicsError

SPLITS = ("train", "test")


def evaluate(run: Any, *, k: int = 15) -> dict[str, Any]:
    """Measure the fitted projection of ``run``, write ``quality.json`` and return what it holds."""
    folder, _ = recorded(run)
    projection = load(run)
    with files.arrays(folder / files.SAMPLES_FILE) as samples:
        split = samples["split"]
    masks = {name: split == name for name in SPLITS if (split == name).sum() > 2 * k}
    if not masks:
        raise DynamicsError(f"the quality measures need more than {2 * k} samples of a split; the run has "
                            + ", ".join(f"{(split == s).sum()} {s}" for s in SPLITS))
    epochs: dict[str, Any] = {}
    temporal: dict[str, Any] = {}
    moves: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {name: ([], []) for name in masks}
    previous = None
    for epoch in projection.epochs_:
        with files.arrays(files.epoch_file(folder, epoch)) as arrays:
            reps = arrays["representations"].astype(np.float32)
            predicted = arrays["predictions"]
        coords = coordinates(run, epoch)
        decoded = None
        if projection.heads_ is not None:
            decoded = projection.predict_proba(projection.inverse_transform(coords, epoch), epoch).argmax(1)
        epochs[str(epoch)] = {}
        neighbours = {}
        for name, mask in masks.items():
            quality = neighbourhood_quality(reps[mask], coords[mask], k)
            neighbours[name] = quality.high_neighbours
            measures = {"npr": float(quality.npr.mean()), "trustworthiness": quality.trustworthiness}
            if decoded is not None:
                measures["ppr"] = prediction_preservation(predicted[mask], decoded[mask])
            epochs[str(epoch)][name] = measures
        if previous is not None:
            last_epoch, last_reps, last_coords, last_neighbours = previous
            temporal[f"{last_epoch}-{epoch}"] = {
                name: {
                    "movement": movement_correlation(last_reps[mask], reps[mask], last_coords[mask], coords[mask]),
                    "neighbourhood": neighbourhood_change_correlation(
                        last_reps[mask], reps[mask], last_coords[mask], coords[mask], k,
                        high_neighbours=(last_neighbours[name], neighbours[name]),
                    ),
                }
                for name, mask in masks.items()
            }
            for name, mask in masks.items():
                moves[name][0].append(np.linalg.norm(reps[mask] - last_reps[mask], axis=1))
                moves[name][1].append(np.linalg.norm(coords[mask] - last_coords[mask], axis=1))
        previous = (epoch, reps, coords, neighbours)
    report = {"k": k, "epochs": epochs, "temporal": temporal, "mean": _means(epochs, temporal, masks)}
    if len(temporal) >= 3:
        report["trajectory"] = {name: trajectory_correlation(high, low) for name, (high, low) in moves.items()}
    files.write_json(files.projection_folder(run_folder(run)) / files.QUALITY_FILE, _finite(report))
    return report


def _means(epochs: dict, temporal: dict, masks: dict) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in masks:
        values: dict[str, list[float]] = {}
        for per_split in [*epochs.values(), *temporal.values()]:
            for measure, value in per_split[name].items():
                values.setdefault(measure, []).append(value)
        out[name] = {m: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for m, v in values.items()}
    return out


def _finite(value: Any) -> Any:
    """JSON has no NaN: a measure that is undefined (nothing moved) is null."""
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
