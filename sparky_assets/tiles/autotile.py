"""Autotile synthesis: an artist's small template → the 47-tile blob set and the 16-tile corner set.

Pure functions on RGBA ``uint8`` arrays. Every output tile is assembled from *quadrants*
(``tile/2`` squares) copied from the template, so it holds only the template's colours
(a palette-locked template gives a palette-locked set) and the result is deterministic.

A quadrant of a terrain cell depends only on the three neighbours it touches (for the
north-west quadrant: N, W and NW), and is in one of five states:

- ``OUTER``: neither side neighbour is terrain (an outer corner);
- ``SIDE_V``: the vertical neighbour (N/S) is terrain, the horizontal one (W/E) is not
  (a border running down the W/E side);
- ``SIDE_H``: the horizontal neighbour is terrain, the vertical one is not;
- ``INNER``: both side neighbours are terrain but the diagonal is not (an inner corner);
- ``FULL``: all three are terrain.

Templates (sizes in tiles; docs/tilesets.md has pictures):

- ``corners`` (2×2): a 2×2 island of terrain; gives OUTER, SIDE_V, SIDE_H and FULL quadrants
  for all four orientations; inner corners are derived.
- ``blob3x3`` (3×3): a 3×3 island (its centre is the full tile); inner corners derived.
- ``blob5x3`` (5×3): the 3×3 island in columns 0-2 and, in columns 3-4 rows 0-1, four tiles
  drawn around a one-cell hole at the centre of that 2×2 block (the top-left one has its
  south-east diagonal missing, and so on); column 3-4 of row 2 is unused.

A derived inner-corner quadrant is the full quadrant with the pixels where *both* side
borders differ from the full quadrant taken from the SIDE_V quadrant (the two borders
overlap there, which is where an inner corner's nub sits).

Neighbour masks are 8 bits clockwise from north (:data:`N` … :data:`NW`). A blob tile is
chosen by the *reduced* mask (a diagonal bit counts only when both sides next to it are
set): 256 masks reduce to 47 tiles. A corner tile is addressed by the four cells that meet
at its corners (a dual grid: tile corners sit on cell centres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N, NE, E, SE, S, SW, W, NW = (1 << i for i in range(8))
DIRECTION_BITS: dict[str, int] = {"n": N, "ne": NE, "e": E, "se": SE, "s": S, "sw": SW, "w": W, "nw": NW}
OFFSETS: dict[int, tuple[int, int]] = {
    N: (-1, 0),
    NE: (-1, 1),
    E: (0, 1),
    SE: (1, 1),
    S: (1, 0),
    SW: (1, -1),
    W: (0, -1),
    NW: (-1, -1),
}
"""Neighbour bit → (row, column) offset."""

OUTER, SIDE_V, SIDE_H, INNER, FULL = "outer", "side_v", "side_h", "inner", "full"
QUADRANTS: tuple[tuple[int, int], ...] = ((-1, -1), (-1, 1), (1, -1), (1, 1))
"""(dy, dx) of the NW, NE, SW and SE quadrants."""

TEMPLATE_TILES: dict[str, tuple[int, int]] = {"corners": (2, 2), "blob3x3": (3, 3), "blob5x3": (5, 3)}
"""Template layout → its size in tiles (columns, rows)."""


class TemplateError(ValueError):
    """The template image does not fit its declared layout."""


def reduce_mask(mask: int) -> int:
    """``mask`` with each diagonal bit cleared unless both side bits next to it are set."""
    mask &= 0xFF
    for corner, a, b in ((NE, N, E), (SE, S, E), (SW, S, W), (NW, N, W)):
        if mask & corner and not (mask & a and mask & b):
            mask &= ~corner
    return mask


BLOB_MASKS: tuple[int, ...] = tuple(sorted({reduce_mask(m) for m in range(256)}))
"""The 47 reduced masks, ascending: blob tile ``i`` is drawn for reduced mask ``BLOB_MASKS[i]``."""
BLOB_INDEX: dict[int, int] = {m: i for i, m in enumerate(BLOB_MASKS)}
CORNER_KEYS: tuple[tuple[int, int, int, int], ...] = tuple(
    ((i >> 3) & 1, (i >> 2) & 1, (i >> 1) & 1, i & 1) for i in range(16)
)
"""Corner tile ``i`` ↔ which of its (NW, NE, SW, SE) corners are terrain (bit 3 = NW … bit 0 = SE)."""


def blob_tile_for(mask: int) -> int:
    """The blob tile index for an 8-neighbour mask (any of the 256)."""
    return BLOB_INDEX[reduce_mask(mask)]


def blob_table() -> list[int]:
    """Mask → blob tile index for all 256 masks (the table the engine exports carry)."""
    return [blob_tile_for(m) for m in range(256)]


def corner_tile_for(nw: bool, ne: bool, sw: bool, se: bool) -> int:
    """The corner tile whose corners are the four cells meeting there."""
    return (int(nw) << 3) | (int(ne) << 2) | (int(sw) << 1) | int(se)


def _side_bits(dy: int, dx: int) -> tuple[int, int, int]:
    """(vertical side, horizontal side, diagonal) bits a quadrant (dy, dx) touches."""
    vertical = N if dy < 0 else S
    horizontal = W if dx < 0 else E
    diagonal = {(-1, -1): NW, (-1, 1): NE, (1, -1): SW, (1, 1): SE}[(dy, dx)]
    return vertical, horizontal, diagonal


def quadrant_state(mask: int, dy: int, dx: int) -> str:
    vertical, horizontal, diagonal = _side_bits(dy, dx)
    v, h = bool(mask & vertical), bool(mask & horizontal)
    if not v and not h:
        return OUTER
    if v and not h:
        return SIDE_V
    if h and not v:
        return SIDE_H
    return FULL if mask & diagonal else INNER


@dataclass(frozen=True)
class Quadrants:
    """The template cut into quadrants: ``pieces[(state, dy, dx)]`` is an (h, h, 4) array."""

    tile: int
    pieces: dict[tuple[str, int, int], np.ndarray]

    def piece(self, state: str, dy: int, dx: int) -> np.ndarray:
        return self.pieces[(state, dy, dx)]


def _quadrant(template: np.ndarray, tile: int, col: int, row: int, dy: int, dx: int) -> np.ndarray:
    half = tile // 2
    y = row * tile + (half if dy > 0 else 0)
    x = col * tile + (half if dx > 0 else 0)
    return template[y : y + half, x : x + half]


def cut_template(template: np.ndarray, tile: int, layout: str) -> Quadrants:
    """Cut ``template`` (RGBA, ``layout``'s size in tiles of ``tile`` pixels) into quadrants."""
    if layout not in TEMPLATE_TILES:
        raise TemplateError(f"unknown template layout {layout!r}; expected one of {', '.join(TEMPLATE_TILES)}")
    if tile < 2 or tile % 2:
        raise TemplateError(f"tile size must be even and at least 2 (quadrants are half a tile); found {tile}")
    cols, rows = TEMPLATE_TILES[layout]
    expected = (rows * tile, cols * tile)
    if template.ndim != 3 or template.shape[:2] != expected or template.shape[2] != 4:
        found = "x".join(str(s) for s in template.shape[1::-1])
        raise TemplateError(
            f"a {layout} template of {tile}px tiles is {expected[1]}x{expected[0]} pixels ({cols}x{rows} tiles); "
            f"found {found}"
        )
    island = 2 if layout == "corners" else 3
    pieces: dict[tuple[str, int, int], np.ndarray] = {}
    for dy, dx in QUADRANTS:
        # A tile in the island misses its W neighbour in column 0, its E neighbour in the last column.
        col_missing = 0 if dx < 0 else island - 1
        row_missing = 0 if dy < 0 else island - 1
        col_present = 1 if island == 3 else (1 if dx < 0 else 0)
        row_present = 1 if island == 3 else (1 if dy < 0 else 0)
        sources = {
            OUTER: (col_missing, row_missing),
            SIDE_V: (col_missing, row_present),
            SIDE_H: (col_present, row_missing),
            FULL: (col_present, row_present),
        }
        for state, (col, row) in sources.items():
            pieces[(state, dy, dx)] = _quadrant(template, tile, col, row, dy, dx).copy()
        if layout == "blob5x3":
            # The hole sits at the centre of the 2x2 block in columns 3-4, rows 0-1.
            col, row = (3 if dx > 0 else 4), (0 if dy > 0 else 1)
            pieces[(INNER, dy, dx)] = _quadrant(template, tile, col, row, dy, dx).copy()
        else:
            full, side_v, side_h = pieces[(FULL, dy, dx)], pieces[(SIDE_V, dy, dx)], pieces[(SIDE_H, dy, dx)]
            both = (side_v != full).any(axis=2) & (side_h != full).any(axis=2)
            inner = full.copy()
            inner[both] = side_v[both]
            pieces[(INNER, dy, dx)] = inner
    return Quadrants(tile, pieces)


def blob_tile(quadrants: Quadrants, mask: int) -> np.ndarray:
    """The (tile, tile, 4) blob tile for a (reduced or not) neighbour mask."""
    mask = reduce_mask(mask)
    half = quadrants.tile // 2
    out = np.zeros((quadrants.tile, quadrants.tile, 4), np.uint8)
    for dy, dx in QUADRANTS:
        y, x = (half if dy > 0 else 0), (half if dx > 0 else 0)
        out[y : y + half, x : x + half] = quadrants.piece(quadrant_state(mask, dy, dx), dy, dx)
    return out


def corner_tile(quadrants: Quadrants, key: tuple[int, int, int, int]) -> np.ndarray:
    """The (tile, tile, 4) corner tile for its (NW, NE, SW, SE) terrain flags.

    Its quadrant at corner (r, c) is the opposite quadrant of the cell centred on that
    corner; that cell's neighbours towards the tile are the other three corners. A
    corner that is not terrain shows a transparent quadrant (the background)."""
    half = quadrants.tile // 2
    cells = {(0, 0): key[0], (0, 1): key[1], (1, 0): key[2], (1, 1): key[3]}
    out = np.zeros((quadrants.tile, quadrants.tile, 4), np.uint8)
    for (r, c), here in cells.items():
        if not here:
            continue
        dy, dx = (1 if r == 0 else -1), (1 if c == 0 else -1)
        vertical, horizontal, diagonal = _side_bits(dy, dx)
        mask = (
            (vertical if cells[(1 - r, c)] else 0)
            | (horizontal if cells[(r, 1 - c)] else 0)
            | (diagonal if cells[(1 - r, 1 - c)] else 0)
        )
        out[r * half : (r + 1) * half, c * half : (c + 1) * half] = quadrants.piece(
            quadrant_state(mask, dy, dx), dy, dx
        )
    return out


def blob_set(quadrants: Quadrants) -> list[np.ndarray]:
    """The 47 blob tiles in :data:`BLOB_MASKS` order."""
    return [blob_tile(quadrants, m) for m in BLOB_MASKS]


def corner_set(quadrants: Quadrants) -> list[np.ndarray]:
    """The 16 corner tiles in :data:`CORNER_KEYS` order."""
    return [corner_tile(quadrants, key) for key in CORNER_KEYS]


def sheet(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles laid out row-major, ``columns`` per row, on a transparent sheet."""
    tile = tiles[0].shape[0]
    rows = -(-len(tiles) // columns)
    out = np.zeros((rows * tile, columns * tile, 4), np.uint8)
    for i, image in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = image
    return out


def neighbour_mask(grid: np.ndarray, row: int, col: int) -> int:
    """The 8-neighbour mask of cell (row, col) in a boolean grid (outside counts as empty)."""
    mask = 0
    for bit, (dr, dc) in OFFSETS.items():
        r, c = row + dr, col + dc
        if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1] and grid[r, c]:
            mask |= bit
    return mask
