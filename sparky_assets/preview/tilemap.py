"""The small random map the preview page draws for each tileset.

The page (``static/preview.js``, ``tileMap``) and this module make the same map from the
same seed; this one is the reference the tests compare the page against. The autotile
*rules* are not repeated in JavaScript: the page is given the build's pick table
(``table``: 8-neighbour mask → tile for a blob set, NW<<3 | NE<<2 | SW<<1 | SE → tile
for a corner set, exactly what the exports carry), so all it computes is neighbour masks.

The map: ``rows × cols`` terrain flags from :func:`mulberry32` (45% terrain), smoothed
twice (a cell with at least 5 of 8 terrain neighbours becomes terrain, at most 2 becomes
floor; outside the map counts as floor), then every floor cell may get a decoration
(one of the tileset's other plain tiles, 1 in 12). What is drawn per map cell, bottom
to top: the ground tile (the first plain tile, if the tileset has one), a decoration,
the terrain's autotile. A blob set draws one autotile per terrain cell, picked by its
8-neighbour mask; a corner set is a dual grid: the tile between four cells is picked by
which of them are terrain, so it shows ``rows - 1`` by ``cols - 1`` tiles.
"""

from __future__ import annotations

from typing import Any

COLS, ROWS = 16, 10
TERRAIN_PERCENT = 45
DECORATION_ONE_IN = 12
NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
"""(row, column) offsets of mask bits 0…7: N, NE, E, SE, S, SW, W, NW (:mod:`sparky_assets.tiles.autotile`)."""
_M = 0xFFFFFFFF


def mulberry32(seed: int):
    """The page's random numbers: 32-bit unsigned integers, the same in both languages."""
    state = seed & _M

    def next_u32() -> int:
        nonlocal state
        state = (state + 0x6D2B79F5) & _M
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & _M
        t = (t ^ ((t + ((t ^ (t >> 7)) * (t | 61))) & _M)) & _M
        return (t ^ (t >> 14)) & _M

    return next_u32


def terrain(seed: int, rows: int = ROWS, cols: int = COLS) -> tuple[list[list[bool]], Any]:
    """The terrain flags (row-major) and the generator, to go on drawing decorations."""
    rng = mulberry32(seed)
    grid = [[rng() % 100 < TERRAIN_PERCENT for _ in range(cols)] for _ in range(rows)]
    for _ in range(2):
        count = [[sum(_at(grid, r + dr, c + dc) for dr, dc in NEIGHBOURS) for c in range(cols)] for r in range(rows)]
        grid = [
            [True if count[r][c] >= 5 else False if count[r][c] <= 2 else grid[r][c] for c in range(cols)]
            for r in range(rows)
        ]
    return grid, rng


def _at(grid: list[list[bool]], r: int, c: int) -> bool:
    return 0 <= r < len(grid) and 0 <= c < len(grid[0]) and grid[r][c]


def mask(grid: list[list[bool]], r: int, c: int) -> int:
    return sum(1 << bit for bit, (dr, dc) in enumerate(NEIGHBOURS) if _at(grid, r + dr, c + dc))


def tile_map(tileset: dict[str, Any], seed: int, rows: int = ROWS, cols: int = COLS) -> list[list[list[int]]]:
    """Per shown map cell, the tiles (sheet cell indices) drawn there, bottom to top;
    ``tileset`` is a preview document's tileset entry (``set``, ``table``, ``plain``)."""
    grid, rng = terrain(seed, rows, cols)
    plain = tileset["plain"]
    ground = [plain[0]["id"]] if plain else []
    decorations = [t["id"] for t in plain[1:]]
    kind, table = tileset["set"], tileset["table"]
    shown_rows, shown_cols = (rows - 1, cols - 1) if kind == "corners" else (rows, cols)
    out = []
    for r in range(shown_rows):
        row = []
        for c in range(shown_cols):
            layers = list(ground)
            if kind == "blob" and grid[r][c]:
                layers.append(table[mask(grid, r, c)])
            elif kind == "corners":
                key = (grid[r][c] << 3) | (grid[r][c + 1] << 2) | (grid[r + 1][c] << 1) | grid[r + 1][c + 1]
                if key:
                    layers.append(table[key])
            if decorations and not (kind == "blob" and grid[r][c]) and rng() % DECORATION_ONE_IN == 0:
                layers.insert(len(ground), decorations[rng() % len(decorations)])
            row.append(layers)
        out.append(row)
    return out
