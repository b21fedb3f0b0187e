"""Palette lock: every opaque pixel becomes its nearest palette colour in OKLab.

Invariants of :func:`quantize_to_palette`'s output: alpha is 0 or 255 (threshold 128);
every pixel with alpha 255 has an RGB that is exactly one of the palette's colours;
every pixel with alpha 0 is (0, 0, 0, 0). Nearest means smallest Euclidean distance
in OKLab (perceptual), not in RGB; ties go to the lower palette index.

Images are locked per distinct colour: a sprite has few colours, so the nearest
search runs on the unique colours only and a lookup maps them back. Ordered (Bayer)
dithering perturbs each pixel's OKLab value by a position-dependent offset before the
search, so dithered images are locked per pixel instead.
"""

from __future__ import annotations

import numpy as np

from ..palettes import Palette

QUANTIZE_VERSION = 1
"""Bump when locking, dithering or outlining changes its output (part of every process key)."""

_BAYER2 = np.array([[0, 2], [3, 1]], dtype=np.float32)


def _bayer(n: int) -> np.ndarray:
    m = _BAYER2
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return (m + 0.5) / m.size - 0.5  # centred thresholds in (-0.5, 0.5)


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 sRGB → ``(..., 3)`` float32 OKLab (Björn Ottosson's matrices)."""
    c = rgb.astype(np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m1 = np.array(
        [
            [0.4122214708, 0.5363325363, 0.0514459929],
            [0.2119034982, 0.6806995451, 0.1073969566],
            [0.0883024619, 0.2817188376, 0.6299787005],
        ],
        dtype=np.float32,
    )
    m2 = np.array(
        [
            [0.2104542553, 0.7936177850, -0.0040720468],
            [1.9779984951, -2.4285922050, 0.4505937099],
            [0.0259040371, 0.7827717662, -0.8086757660],
        ],
        dtype=np.float32,
    )
    lms = np.cbrt(lin @ m1.T)
    return (lms @ m2.T).astype(np.float32)


def nearest_indices(lab: np.ndarray, palette_lab: np.ndarray) -> np.ndarray:
    """Index of the nearest palette entry for each row of ``lab`` (``(n, 3)``)."""
    out = np.empty(len(lab), dtype=np.intp)
    step = max(1024, (1 << 22) // max(1, len(palette_lab)))  # ~50 MB of distances at most
    for start in range(0, len(lab), step):
        chunk = lab[start : start + step]
        d = ((chunk[:, None, :] - palette_lab[None, :, :]) ** 2).sum(axis=2)
        out[start : start + step] = d.argmin(axis=1)
    return out


def quantize_to_palette(image: np.ndarray, palette: Palette, dither: str = "none") -> np.ndarray:
    """RGBA ``(h, w, 4)`` uint8 → RGBA locked to ``palette`` (see module invariants)."""
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an RGBA image (h, w, 4), found shape {image.shape}")
    colors = np.array(palette.colors, dtype=np.uint8)
    palette_lab = srgb_to_oklab(colors)
    h, w = image.shape[:2]
    opaque = image[:, :, 3] >= 128
    out = np.zeros((h, w, 4), dtype=np.uint8)
    if not opaque.any():
        return out
    rgb = image[:, :, :3][opaque]
    if dither != "none":
        n = int(dither.removeprefix("bayer"))
        thresholds = np.tile(_bayer(n), (h // n + 1, w // n + 1))[:h, :w][opaque]
        lab = srgb_to_oklab(rgb)
        spread = _palette_spread(palette_lab)
        lab = lab + thresholds[:, None] * spread * np.array([1.0, 0.5, 0.5], dtype=np.float32)
        idx = nearest_indices(lab, palette_lab)
    else:
        packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
        uniq, inverse = np.unique(packed, return_inverse=True)
        uniq_rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.uint8)
        idx = nearest_indices(srgb_to_oklab(uniq_rgb), palette_lab)[inverse.ravel()]
    out[opaque, :3] = colors[idx]
    out[opaque, 3] = 255
    return out


def _palette_spread(palette_lab: np.ndarray) -> float:
    """Typical distance between neighbouring palette colours (dither amplitude)."""
    if len(palette_lab) < 2:
        return 0.0
    d = np.sqrt(((palette_lab[:, None] - palette_lab[None]) ** 2).sum(axis=2))
    d[d == 0] = np.inf
    return float(np.median(d.min(axis=1)))
