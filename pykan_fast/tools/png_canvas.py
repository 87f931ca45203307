"""A matplotlib Agg canvas whose PNG writer is zlib over unfiltered rows.

Pillow's PNG encoder, which matplotlib's Agg canvas calls, chooses a row filter per row
and spends ~30 ms on a 700 x 700 image whatever the compression level: half the time of a
per-edge image. The rows as they are (filter 0) and zlib level 1 give the same pixels
(RGBA, 8 bits, the dpi recorded in pHYs) in a few ms; the files are somewhat larger.
:class:`BackgroundPngWriter` encodes and writes on one worker thread (zlib and file
writes release the GIL), so a series of images draws the next while the last is written.
Imported only where matplotlib is (the ``plot`` extra).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

__all__ = ["BackgroundPngWriter", "FastPngCanvas", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_INCHES_PER_METRE = 39.37007874015748


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(target, rgba: np.ndarray, dpi: float) -> None:
    """Write ``rgba`` (`[height, width, 4]` uint8, top row first) to ``target`` (a path or a
    binary file object) as an RGBA PNG."""
    _write_rows(target, _png_rows(rgba), rgba.shape[1], dpi)


def _png_rows(rgba: np.ndarray) -> np.ndarray:
    """The image's rows, each led by its filter byte (0: none): a copy of ``rgba``."""
    height, width, _ = rgba.shape
    rows = np.empty((height, 1 + 4 * width), dtype=np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = rgba.reshape(height, 4 * width)
    return rows


def _write_rows(target, rows: np.ndarray, width: int, dpi: float) -> None:
    height = rows.shape[0]
    per_metre = int(round(dpi * _INCHES_PER_METRE))
    data = b"".join([
        _SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)),
        _chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
        _chunk(b"IDAT", zlib.compress(rows, 1)),
        _chunk(b"IEND", b""),
    ])
    if hasattr(target, "write"):
        target.write(data)
    else:
        with open(target, "wb") as f:
            f.write(data)


class BackgroundPngWriter:
    """Writes PNG files (:func:`write_png`) on one worker thread, at most ``max_pending``
    images queued (each a copy of its pixels). ``close`` waits for all of them and
    re-raises the first error; use it as a context manager."""

    def __init__(self, max_pending: int = 4):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="png")
        self._pending = deque()
        self._max_pending = max_pending

    def submit(self, path, rgba: np.ndarray, dpi: float) -> None:
        while len(self._pending) >= self._max_pending:
            self._pending.popleft().result()
        rows = _png_rows(rgba)  # the copy: the canvas redraws into its buffer
        self._pending.append(self._pool.submit(_write_rows, path, rows, rgba.shape[1], dpi))

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FastPngCanvas(FigureCanvasAgg):
    """``FigureCanvasAgg`` with :func:`write_png` for ``savefig(..., format="png")``;
    every other format, and everything else, as Agg's. With ``writer`` set (a
    :class:`BackgroundPngWriter`), files named by a path are written by it. Each PNG
    save records the bounding box it was cropped to (inches), ``last_bbox_inches``:
    the box ``bbox_inches="tight"`` computed, reusable for a figure whose tight box
    cannot change."""

    writer: BackgroundPngWriter | None = None
    last_bbox_inches = None

    def print_png(self, filename_or_obj, **kwargs):  # metadata, pil_kwargs, orientation
        restore = kwargs.get("bbox_inches_restore")
        self.last_bbox_inches = None if restore is None else restore[0]
        FigureCanvasAgg.draw(self)
        rgba = np.asarray(self.buffer_rgba())
        if self.writer is not None and isinstance(filename_or_obj, (str, os.PathLike)):
            self.writer.submit(filename_or_obj, rgba, self.figure.dpi)
        else:
            write_png(filename_or_obj, rgba, self.figure.dpi)
