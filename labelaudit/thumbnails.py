"""Small image thumbnails for report.html, embedded as data: URIs (the report stays one file).

Pillow is imported inside the functions so that `import labelaudit` stays fast.
"""

from __future__ import annotations

import base64
import io
import os

import numpy as np

THUMBNAIL_SIZE = 96  # longest side, in pixels
# Every thumbnail stays under this many bytes (before base64) so a 1,000-sample report stays small.
MAX_THUMBNAIL_BYTES = 8_000


def thumbnail_data_uri(file: str | os.PathLike, *, size: int = THUMBNAIL_SIZE,
                       max_bytes: int = MAX_THUMBNAIL_BYTES) -> str:
    """A PNG or JPEG thumbnail of an image file as a ``data:`` URI, at most `max_bytes` bytes.

    Images smaller than `size` keep their pixels (the page scales them up); larger ones are
    shrunk to `size` on their longest side. Raises OSError/ValueError when the file is unreadable.

    >>> thumbnail_data_uri("datasets/digits-noisy/0/digit-0000.png")[:22]
    'data:image/png;base64,'
    """
    from PIL import Image, ImageOps

    from .data import to_gray_or_rgb

    with Image.open(file) as im:
        im.load()
        im = to_gray_or_rgb(ImageOps.exif_transpose(im))
    return _encode(im, size=size, max_bytes=max_bytes)


def array_thumbnail_data_uri(pixels: np.ndarray, *, size: int = THUMBNAIL_SIZE,
                             max_bytes: int = MAX_THUMBNAIL_BYTES) -> str:
    """The same from a loaded (channels, height, width) uint8 array, e.g. `Dataset.inputs[i]`.

    >>> array_thumbnail_data_uri(np.zeros((1, 8, 8), np.uint8))[:22]
    'data:image/png;base64,'
    """
    from PIL import Image

    arr = np.asarray(pixels, dtype=np.uint8)
    im = Image.fromarray(arr[0], mode="L") if arr.shape[0] == 1 else Image.fromarray(
        np.ascontiguousarray(arr[:3].transpose(1, 2, 0)), mode="RGB")
    return _encode(im, size=size, max_bytes=max_bytes)


def _encode(im, *, size: int, max_bytes: int) -> str:
    from PIL import Image

    side = size
    while True:
        small = im.copy()
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        # PNG is exact and tiny for small or flat images; JPEG wins for photographs.
        candidates = [("png", _save(small, "PNG", optimize=True))]
        for quality in (85, 70, 50):
            candidates.append(("jpeg", _save(small, "JPEG", quality=quality, optimize=True)))
            if len(candidates[-1][1]) <= max_bytes:
                break
        kind, data = min(candidates, key=lambda c: len(c[1]))
        if len(data) <= max_bytes or side <= 16:
            return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"
        side = side * 3 // 4


def _save(im, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **options)
    return buffer.getvalue()
