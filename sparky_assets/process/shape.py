"""Shape operations on RGBA frames: outline, trim bounds, extrude.

Pure functions on ``(h, w, 4) uint8`` arrays; none changes the frame size.
"""

from __future__ import annotations

import numpy as np


def add_outline(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Paint a 1-px outline (4-neighbourhood) around opaque pixels, on transparent ones."""
    opaque = image[:, :, 3] >= 128
    grown = opaque.copy()
    grown[1:, :] |= opaque[:-1, :]
    grown[:-1, :] |= opaque[1:, :]
    grown[:, 1:] |= opaque[:, :-1]
    grown[:, :-1] |= opaque[:, 1:]
    ring = grown & ~opaque
    out = image.copy()
    out[ring] = (*color, 255)
    return out


def opaque_bounds(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` of the smallest box holding every non-transparent pixel."""
    alpha = image[:, :, 3] > 0
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def extrude(image: np.ndarray, amount: int) -> np.ndarray:
    """The frame with its edge pixels repeated ``amount`` times on every side."""
    if amount <= 0:
        return image
    return np.pad(image, ((amount, amount), (amount, amount), (0, 0)), mode="edge")


def darkest(colors: tuple[tuple[int, int, int], ...]) -> tuple[int, int, int]:
    """The palette colour with the lowest luma (outline default)."""
    return min(colors, key=lambda c: (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2], c))
