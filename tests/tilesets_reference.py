"""A reference "artist": draws terrain tiles from a pixel rule, so tests know what every tile must look like.

A terrain pixel within ``border`` pixels (Chebyshev) of an empty neighbour cell takes a
border colour, otherwise a fill colour; both come from per-position random tables, so a
quadrant copied to the wrong place shows. Empty cells are transparent. Templates for each
layout are drawn with the same rule, tile by tile, from the neighbour masks their layout
implies.
"""

from __future__ import annotations

import numpy as np

from sparky_assets.tiles import autotile as at

FILL = np.array([[40, 120, 60, 255], [50, 140, 70, 255], [30, 100, 50, 255]], np.uint8)
BORDER = np.array([[90, 60, 30, 255], [120, 80, 40, 255]], np.uint8)


class ReferenceArtist:
    def __init__(self, tile: int, border: int, seed: int):
        rng = np.random.default_rng(seed)
        self.tile, self.border = tile, border
        self.fill = FILL[rng.integers(0, len(FILL), (tile, tile))]
        self.edge = BORDER[rng.integers(0, len(BORDER), (tile, tile))]
        self._drawn: dict[int, np.ndarray] = {}

    def draw(self, mask: int) -> np.ndarray:
        """The terrain tile for a cell whose neighbours are ``mask`` (not reduced: the rule sees every cell)."""
        if mask in self._drawn:
            return self._drawn[mask]
        t, b = self.tile, self.border
        ys, xs = np.mgrid[0:t, 0:t]
        near = np.zeros((t, t), bool)
        for bit, (dr, dc) in at.OFFSETS.items():
            if mask & bit:
                continue
            dist_y = np.where(dr < 0, ys + 1, np.where(dr > 0, t - ys, 0))
            dist_x = np.where(dc < 0, xs + 1, np.where(dc > 0, t - xs, 0))
            near |= np.maximum(dist_y, dist_x) <= b
        self._drawn[mask] = np.where(near[..., None], self.edge, self.fill).astype(np.uint8)
        return self._drawn[mask]

    def template(self, layout: str) -> np.ndarray:
        cols, rows = at.TEMPLATE_TILES[layout]
        t = self.tile
        out = np.zeros((rows * t, cols * t, 4), np.uint8)
        island = 2 if layout == "corners" else 3
        grid = np.ones((island, island), bool)
        for r in range(island):
            for c in range(island):
                out[r * t : (r + 1) * t, c * t : (c + 1) * t] = self.draw(at.neighbour_mask(grid, r, c))
        if layout == "blob5x3":
            for (r, c), missing in {(0, 3): at.SE, (0, 4): at.SW, (1, 3): at.NE, (1, 4): at.NW}.items():
                out[r * t : (r + 1) * t, c * t : (c + 1) * t] = self.draw(0xFF & ~missing)
        return out

    def render(self, grid: np.ndarray) -> np.ndarray:
        """The ideal picture of a terrain grid, cell by cell."""
        t = self.tile
        out = np.zeros((grid.shape[0] * t, grid.shape[1] * t, 4), np.uint8)
        for r, c in zip(*np.nonzero(grid), strict=True):
            out[r * t : (r + 1) * t, c * t : (c + 1) * t] = self.draw(at.neighbour_mask(grid, r, c))
        return out
