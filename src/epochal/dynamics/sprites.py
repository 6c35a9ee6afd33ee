"""Sprites: a small thumbnail of each recorded sample, so a point in a projection can show its image.

    >>> run.record_dynamics(model, x, y, image_shape=(8, 8))    # flat inputs, 64 values per sample
    >>> epochal.dynamics.sprites(Path(run.path) / "dynamics").shape
    (1797, 8, 8)

``dynamics/sprites.npz`` holds one array, ``images``: uint8, ``(samples, h, w)`` grey or
``(samples, h, w, 3)`` RGB, in the order of ``samples.npz``. Inputs become sprites when they are
images, ``(n, h, w)``, ``(n, 1, h, w)``, ``(n, 3, h, w)`` or ``(n, h, w, 3)``, or when an
``image_shape`` says how to fold each sample into one. Their values are scaled to 0-255 over the
whole set (its minimum becomes 0, its maximum 255), so the images keep their brightness relative to
each other, and images larger than :data:`MAX_SIDE` are shrunk to it (longer side), aspect kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from epochal.atomic import atomic_write
from epochal.dynamics.files import SPRITES_FILE, arrays
from epochal.errors import DynamicsError

__all__ = ["MAX_SIDE", "image_view", "save_sprites", "shrink", "sprites", "thumbnail_size", "to_sprites"]

#: The longest side of a sprite in pixels; smaller images are kept as they are.
MAX_SIDE = 32
_CHUNK = 4096  # images converted at a time, to bound the memory of the float copy


def image_view(inputs: Any, image_shape: Sequence[int] | None = None) -> Any | None:
    """``inputs`` seen as images, ``(n, h, w)`` or ``(n, h, w, 3)`` (a view, not converted yet).

    None when the inputs are not images and no ``image_shape`` is given.

    Args:
        image_shape: ``(h, w)``, ``(h, w, 3)``, or the channels-first ``(1, h, w)`` / ``(3, h, w)``
            that each sample's values fold into (flattened PyTorch images are channels-first).

    Raises:
        DynamicsError: ``image_shape`` is not one of those forms, or does not hold as many values
            as a sample has.
    """
    if not hasattr(inputs, "shape"):
        inputs = np.asarray(inputs)
    shape = tuple(int(s) for s in inputs.shape)
    if image_shape is None:
        return _as_images(inputs, shape)
    wanted = _image_shape(image_shape)
    sample = shape[1:]
    if len(shape) < 2 or math.prod(sample) != math.prod(wanted):
        raise DynamicsError(
            f"image_shape {wanted} holds {math.prod(wanted)} values but each input has shape {sample} "
            f"({math.prod(sample)} values; inputs {shape}); give the (h, w) or (h, w, 3) a sample folds into"
        )
    images = inputs.reshape(shape[0], *wanted)
    if len(wanted) == 3 and wanted[0] in (1, 3) and wanted[-1] != 3:  # channels first
        images = images[:, 0] if wanted[0] == 1 else _channels_last(images)
    return images


def to_sprites(images: Any) -> np.ndarray:
    """uint8 sprites of ``(n, h, w)`` or ``(n, h, w, 3)`` images: scaled over the set, then shrunk."""
    if hasattr(images, "detach"):  # a tensor, maybe on an accelerator, maybe bfloat16 (which NumPy lacks)
        images = images.detach().cpu()
        images = (images.float() if images.is_floating_point() else images).numpy()
    images = np.asarray(images)
    finite = np.isfinite(images) if images.dtype.kind == "f" else None
    if finite is not None and not finite.any():
        low = high = 0.0
    else:
        values = images[finite] if finite is not None and not finite.all() else images
        low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    pixels = np.empty(images.shape, np.uint8)
    for start in range(0, len(images), _CHUNK):
        chunk = np.nan_to_num(images[start : start + _CHUNK].astype(np.float32), nan=low, posinf=high, neginf=low)
        pixels[start : start + _CHUNK] = np.clip(np.rint((chunk - low) * scale), 0, 255).astype(np.uint8)
    return shrink(pixels)


def shrink(pixels: np.ndarray) -> np.ndarray:
    """uint8 images with the longer side shrunk to :data:`MAX_SIDE` (area averages); small ones unchanged."""
    height, width = pixels.shape[1:3]
    size = thumbnail_size(height, width)
    if size == (height, width):
        return pixels
    from PIL import Image

    out = np.empty((len(pixels), *size, *pixels.shape[3:]), np.uint8)
    for i, image in enumerate(pixels):
        out[i] = np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BOX))
    return out


def thumbnail_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) of an image's sprite: the longer side at most :data:`MAX_SIDE`, the aspect kept."""
    longer = max(height, width)
    if longer <= MAX_SIDE:
        return height, width
    return max(1, round(height * MAX_SIDE / longer)), max(1, round(width * MAX_SIDE / longer))


def save_sprites(dynamics_folder: str | Path, images: np.ndarray) -> Path:
    """Write ``sprites.npz`` (temporary file, then renamed) into a run's dynamics folder; its path."""
    if images.dtype != np.uint8 or not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise DynamicsError(
            f"sprites are uint8 (n, h, w) or (n, h, w, 3) images, got {images.dtype} {images.shape}"
        )
    target = Path(dynamics_folder) / SPRITES_FILE
    atomic_write(target, lambda file: np.savez(file, images=images))
    return target


def sprites(dynamics_folder: str | Path) -> np.ndarray | None:
    """The recorded sprites of a run's ``dynamics`` folder, in the samples' order; None if there are none."""
    try:
        with arrays(Path(dynamics_folder) / SPRITES_FILE) as stored:
            return stored["images"]
    except FileNotFoundError:
        return None


def _as_images(inputs: Any, shape: tuple[int, ...]) -> Any | None:
    if len(shape) == 3:
        return inputs
    if len(shape) == 4 and shape[1] == 1:
        return inputs[:, 0]
    if len(shape) == 4 and shape[1] == 3:
        return _channels_last(inputs)
    if len(shape) == 4 and shape[-1] == 3:
        return inputs
    return None


def _channels_last(images: Any) -> Any:
    return images.permute(0, 2, 3, 1) if hasattr(images, "permute") else np.moveaxis(images, 1, -1)


def _image_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        wanted = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        wanted = ()
    channels_last = len(wanted) == 3 and wanted[-1] == 3
    channels_first = len(wanted) == 3 and wanted[0] in (1, 3)
    if not (len(wanted) == 2 or channels_last or channels_first) or min(wanted, default=0) < 1:
        raise DynamicsError(
            f"image_shape is (h, w), (h, w, 3), (1, h, w) or (3, h, w) with sizes of at least 1, got {image_shape!r}"
        )
    return wanted
