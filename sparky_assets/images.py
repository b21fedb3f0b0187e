"""Reading images the user (or a cloned project) supplies: source sheets, swatch palettes.

Every such image is untrusted. :func:`open_checked` refuses, from the header alone,
one with more than ``max_pixels`` pixels (a decompression bomb declares a huge size
in a tiny file) before anything is decoded; :func:`rgba_array` converts with the tones
of 16- and 32-bit greyscale kept (Pillow's own RGBA conversion clips them to white).
Multi-frame files (GIF, APNG) give their first frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

_GREY_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageTooLarge(ValueError):
    """The header declares more pixels than the caller accepts."""


@contextlib.contextmanager
def open_checked(source: Path | BinaryIO, max_pixels: int) -> Iterator[Image.Image]:
    """``Image.open`` that raises :class:`ImageTooLarge` for more than ``max_pixels``
    pixels before decoding. Decoder errors (including Pillow's own bomb check) raise
    as they are: callers report any exception as unreadable input."""
    with Image.open(source) as im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"image is {width}x{height}, more than {max_pixels} pixels")
        yield im


def rgba_array(im: Image.Image) -> np.ndarray:
    """``im`` as an RGBA ``uint8`` array; high-depth greyscale keeps its tones."""
    if im.mode in _GREY_HIGH_DEPTH:
        grey = np.asarray(im).astype(np.int64)
        if im.mode == "I" and grey.max(initial=0) > 0xFFFF:
            grey = grey >> 16
        grey = (np.clip(grey, 0, 0xFFFF) >> 8).astype(np.uint8)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    return np.asarray(im.convert("RGBA"))
