"""Columnar encoding of a scalar series chunk into one compact blob.

A chunk holds the points of one key from one flush. Steps, epochs and times
(integer microseconds) are stored as differences from the previous point, in
the narrowest integer type that holds them: a step that advances by one takes a
single byte before compression. Values are XOR-ed with the previous value and
byte-shuffled (all first bytes, then all second bytes, ...), so that the sign,
exponent and the zero low bytes of float32-derived numbers line up. Zstandard
then compresses the lot. Steps, epochs and values are kept exactly, times to
the microsecond.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

_FORMAT = 2
_LEVEL = 1  # Zstandard's fastest level already packs these columns well
_HEADER = struct.Struct("<BI")  # format version, number of points
_INT_COLUMN = struct.Struct("<qB")  # first value, byte width of the differences
_WIDTHS = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def _differences(column: np.ndarray) -> tuple[int, np.ndarray]:
    """(first value, differences to the previous value, the first being 0) in the narrowest type."""
    column = np.ascontiguousarray(column, dtype=np.int64)
    steps = np.zeros_like(column)
    np.subtract(column[1:], column[:-1], out=steps[1:])
    low, high = int(steps.min()), int(steps.max())
    for dtype in (np.int8, np.int16, np.int32):
        limits = np.iinfo(dtype)
        if limits.min <= low and high <= limits.max:
            return int(column[0]), steps.astype(dtype)
    return int(column[0]), steps


def encode(steps: np.ndarray, epochs: np.ndarray, values: np.ndarray, times_us: np.ndarray) -> bytes:
    """Pack four equally long columns (int64, int64, float64, int64) into a blob."""
    n = len(steps)
    header = [_HEADER.pack(_FORMAT, n)]
    if n == 0:
        return header[0]
    body = []
    for column in (steps, epochs, times_us):
        first, differences = _differences(column)
        header.append(_INT_COLUMN.pack(first, differences.itemsize))
        body.append(differences.tobytes())
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    xored = bits.copy()
    np.bitwise_xor(bits[1:], bits[:-1], out=xored[1:])
    body.append(xored.view(np.uint8).reshape(n, 8).T.tobytes())
    return b"".join(header) + zstandard.ZstdCompressor(level=_LEVEL).compress(b"".join(body))


class DamagedChunkError(ValueError):
    """A blob that is not a chunk this module wrote (a damaged or crafted store)."""


def count(blob: bytes) -> int:
    """Number of points in a chunk, read from its header and checked against its compressed body,
    so that a damaged header cannot make a reader allocate memory for points that are not there."""
    try:
        version, n = _HEADER.unpack_from(blob)
        if version != _FORMAT:
            raise DamagedChunkError(f"a series chunk has format {version}; this epochal reads format {_FORMAT}")
        if n == 0:
            return 0
        offset = _HEADER.size
        widths = 8  # the values
        for _ in range(3):
            _, width = _INT_COLUMN.unpack_from(blob, offset)
            widths += np.dtype(_WIDTHS[width]).itemsize
            offset += _INT_COLUMN.size
        declared = zstandard.frame_content_size(memoryview(blob)[offset:])
    except (struct.error, KeyError, TypeError, zstandard.ZstdError) as exc:
        raise DamagedChunkError(f"a series chunk is damaged ({exc!r})") from None
    if declared != n * widths:
        raise DamagedChunkError(f"a series chunk is damaged: its header says {n} points, its body holds {declared} bytes")
    return n


def decode(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode`: (steps, epochs, values, times_us)."""
    n = count(blob)
    steps, epochs, times = (np.empty(n, np.int64) for _ in range(3))
    values = np.empty(n, np.float64)
    decode_into(blob, steps, epochs, values, times)
    return steps, epochs, values, times


def decode_into(blob: bytes, steps: np.ndarray, epochs: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
    """Decode a chunk straight into the given arrays (as long as the chunk; ``times`` int64 or float64).

    A float64 ``times`` receives seconds rather than microseconds, saving a pass over a
    long series.
    """
    n = count(blob)
    if n == 0:
        return
    offset = _HEADER.size
    columns = []
    for _ in range(3):
        first, width = _INT_COLUMN.unpack_from(blob, offset)
        columns.append((first, _WIDTHS[width]))
        offset += _INT_COLUMN.size
    try:
        body = memoryview(zstandard.ZstdDecompressor().decompress(memoryview(blob)[offset:]))
    except zstandard.ZstdError as exc:
        raise DamagedChunkError(f"a series chunk is damaged ({exc})") from None
    position = 0
    for (first, dtype), out in zip(columns, (steps, epochs, times)):
        size = np.dtype(dtype).itemsize * n
        differences = np.frombuffer(body[position : position + size], dtype=dtype)
        position += size
        if out.dtype == np.int64:
            np.cumsum(differences, dtype=np.int64, out=out)
            out += first
        else:  # times as float seconds
            microseconds = np.cumsum(differences, dtype=np.int64)
            microseconds += first
            np.divide(microseconds, 1e6, out=out)
    planes = np.frombuffer(body[position : position + 8 * n], dtype=np.uint8)
    shuffled = np.empty((n, 8), dtype=np.uint8)
    for byte in range(8):  # one plane at a time: faster than a strided transpose copy
        shuffled[:, byte] = planes[byte * n : (byte + 1) * n]
    np.bitwise_xor.accumulate(shuffled.view(np.uint64).ravel(), out=values.view(np.uint64))
