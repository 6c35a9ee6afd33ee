"""Columnar encoding of a scalar series chunk into one compact blob.

A chunk holds the points of one key from one flush. Each column is delta- or
XOR-encoded, byte-shuffled (all first bytes, then all second bytes, ...) and the
four columns are compressed together with Zstandard. Steps and epochs usually advance by a
constant, times by a few microseconds and float32-derived values share their
low mantissa bytes, so a point typically takes well under 16 bytes.

Times are kept as integer microseconds since the epoch; everything else is
lossless.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

_FORMAT = 1
_LEVEL = 1  # Zstandard's fastest level already packs these columns well
_HEADER = struct.Struct("<BI")  # format version, number of points


def _shuffle(column: np.ndarray) -> bytes:
    # (n, 8) bytes -> (8, n): bytes of equal significance end up side by side.
    return column.view(np.uint8).reshape(-1, 8).T.tobytes()


def _unshuffle(raw: memoryview, n: int, dtype: str) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.uint8).reshape(8, n).T.copy().view(dtype).ravel()


def _delta(column: np.ndarray) -> np.ndarray:
    out = np.empty_like(column)
    if len(column):
        out[0] = column[0]
        np.subtract(column[1:], column[:-1], out=out[1:])
    return out


def encode(steps: np.ndarray, epochs: np.ndarray, values: np.ndarray, times_us: np.ndarray) -> bytes:
    """Pack four equally long columns (int64, int64, float64, int64) into a blob."""
    n = len(steps)
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    xored = bits.copy()
    if n > 1:
        np.bitwise_xor(bits[1:], bits[:-1], out=xored[1:])
    body = b"".join(
        (
            _shuffle(_delta(np.ascontiguousarray(steps, dtype=np.int64))),
            _shuffle(_delta(np.ascontiguousarray(epochs, dtype=np.int64))),
            _shuffle(_delta(np.ascontiguousarray(times_us, dtype=np.int64))),
            _shuffle(xored),
        )
    )
    return _HEADER.pack(_FORMAT, n) + zstandard.ZstdCompressor(level=_LEVEL).compress(body)


def decode(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode`: (steps, epochs, values, times_us)."""
    version, n = _HEADER.unpack_from(blob)
    if version != _FORMAT:
        raise ValueError(f"series chunk has format {version}; this epochal reads format {_FORMAT}")
    body = memoryview(zstandard.ZstdDecompressor().decompress(memoryview(blob)[_HEADER.size :]))
    width = 8 * n
    steps = np.cumsum(_unshuffle(body[0:width], n, "<i8"))
    epochs = np.cumsum(_unshuffle(body[width : 2 * width], n, "<i8"))
    times = np.cumsum(_unshuffle(body[2 * width : 3 * width], n, "<i8"))
    bits = np.bitwise_xor.accumulate(_unshuffle(body[3 * width : 4 * width], n, "<u8"))
    return steps, epochs, bits.view(np.float64), times
