"""Pictures of a fitted projection: one PNG per epoch and an animated GIF over the epochs.

Each picture is the epoch's background with the recorded samples on top, coloured by their label;
test samples are drawn as rings, and samples the model got wrong at that epoch have a black edge.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.dynamics import files
from epochal.dynamics.fitting import coordinates, recorded, run_folder
from epochal.errors import DynamicsError


def plot(run: Any, *, epochs: list[int] | None = None, out: str | Path | None = None, gif: bool = True,
         frame_seconds: float = 0.6) -> list[Path]:
    """Write ``epoch-NNNN.png`` for each epoch (default: all fitted) and ``dynamics.gif``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    folder, _ = recorded(run)
    source = files.projection_folder(run_folder(run))
    meta = files.read_json(source / files.META_FILE)
    if meta is None:
        raise DynamicsError(f"the run in '{run_folder(run)}' has no fitted projection; fit one with `epochal dynamics fit RUN`")
    fitted = list(meta["epochs"])
    chosen = fitted if epochs is None else list(epochs)
    missing = sorted(set(chosen) - set(fitted))
    if missing:
        raise DynamicsError(f"epoch(s) {missing} have no projection; fitted epochs: {fitted}")
    target = Path(out) if out is not None else source
    target.mkdir(parents=True, exist_ok=True)
    with files.arrays(folder / files.SAMPLES_FILE) as samples:
        labels, test = samples["labels"], samples["split"] == "test"
    colors = np.array(meta["colors"])
    xmin, xmax, ymin, ymax = meta["extent"]
    written, frames = [], []
    for epoch in chosen:
        coords = coordinates(run, epoch)
        with files.arrays(files.epoch_file(folder, epoch)) as arrays:
            wrong = arrays["predictions"] != labels
        figure, axes = plt.subplots(figsize=(6, 6), dpi=100)
        background = files.background_file(source, epoch)
        if background.exists():
            axes.imshow(Image.open(background), extent=(xmin, xmax, ymin, ymax), origin="upper", interpolation="bilinear")
        point_colors = colors[labels % len(colors)]
        for mask, marker_face in ((~test, None), (test, "none")):
            face = point_colors[mask] if marker_face is None else "none"
            axes.scatter(coords[mask, 0], coords[mask, 1], s=9, c=face, edgecolors=np.where(wrong[mask], "black", point_colors[mask]),
                         linewidths=np.where(wrong[mask], 0.9, 0.5))
        axes.set_xlim(xmin, xmax)
        axes.set_ylim(ymin, ymax)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"epoch {epoch}: {int((~wrong).sum())}/{len(wrong)} right; rings are test samples", fontsize=10)
        figure.tight_layout()
        path = files.picture_file(target, epoch)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        picture = buffer.getvalue()
        atomic_write(path, picture)
        frames.append(Image.open(io.BytesIO(picture)).convert("RGB"))
        written.append(path)
    if gif and frames:
        path = target / files.ANIMATION_FILE
        def write(file: Any) -> None:
            frames[0].save(file, format="GIF", save_all=True, append_images=frames[1:], duration=int(frame_seconds * 1000), loop=0)
        atomic_write(path, write)
        written.append(path)
    return written
