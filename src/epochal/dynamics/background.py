"""Background images: a grid over the 2D plane, decoded and classified by each epoch's head.

Each pixel takes its class's colour, as strong as the head is sure of it (the gap between its top two
probabilities) and white where two classes tie, so the boundaries show as white lines. Colours are
fixed per class for the whole run and the shading is absolute, never normalised per epoch, so a
change of colour between epochs is a change of the model.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np

#: The strongest a class colour gets over white: the points drawn on top must stand out.
STRENGTH = 0.55


def class_colors(classes: int) -> list[str]:
    """One fixed '#rrggbb' colour per class: matplotlib's tab10 up to 10 classes, tab20 up to 20, then hues."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if classes <= 10:
        return [to_hex(colormaps["tab10"](i)) for i in range(classes)]
    if classes <= 20:
        return [to_hex(colormaps["tab20"](i)) for i in range(classes)]
    return [to_hex(colorsys.hsv_to_rgb(i / classes, 0.65, 0.85)) for i in range(classes)]


def extent_of(coords: np.ndarray, margin: float = 0.05) -> list[float]:
    """[xmin, xmax, ymin, ymax] around every point, with a margin, as a square so the grid's pixels are."""
    points = coords.reshape(-1, 2)
    low, high = points.min(0), points.max(0)
    middle, half = (low + high) / 2, float((high - low).max()) / 2 * (1 + margin) or 1.0
    return [float(middle[0] - half), float(middle[0] + half), float(middle[1] - half), float(middle[1] + half)]


def grid(extent: list[float], resolution: int) -> np.ndarray:
    """(resolution * resolution, 2) pixel centres, row by row from the top (largest y) down."""
    xmin, xmax, ymin, ymax = extent
    step_x, step_y = (xmax - xmin) / resolution, (ymax - ymin) / resolution
    xs = xmin + step_x * (np.arange(resolution) + 0.5)
    ys = ymax - step_y * (np.arange(resolution) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def background(probabilities: np.ndarray, resolution: int, colors: list[str]) -> np.ndarray:
    """(resolution, resolution, 3) uint8 RGB from the grid's class probabilities."""
    from matplotlib.colors import to_rgb

    palette = np.array([to_rgb(c) for c in colors], dtype=np.float32)
    top = np.sort(probabilities, axis=1)[:, ::-1]
    margin = top[:, 0] - (top[:, 1] if probabilities.shape[1] > 1 else 0.0)
    strength = (STRENGTH * margin)[:, None]
    rgb = (1 - strength) + strength * palette[probabilities.argmax(1)]
    return (rgb.reshape(resolution, resolution, 3) * 255).round().astype(np.uint8)


def save_png(image: np.ndarray, target: Any) -> None:
    from PIL import Image

    Image.fromarray(image).save(target, format="PNG", optimize=True)
