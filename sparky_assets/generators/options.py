"""Manifest keys shared by more than one generator (see :class:`.base.Generator`).

``pixelize`` collapses high-resolution "fake pixel art" (a diffusion render, a large
hand-drawn cell) to sprite resolution; the image and diffusion generators both take it,
so its table is declared once here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..manifest.fields import Field

BACKGROUNDS_DOC = '"auto", "none" or "#rrggbb"'


def _grid_problem(value: Any) -> str | None:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 256):
        return None
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 256 for v in value)
    ):
        return None
    return '"auto" or [w, h] cell size in render pixels (1..256)'


def _background_problem(value: Any) -> str | None:
    from ..process.pixelize import parse_colour

    if value in ("auto", "none"):
        return None
    try:
        parse_colour(value)
    except (ValueError, TypeError):
        return BACKGROUNDS_DOC
    return None


PIXELIZE_FIELDS: dict[str, Field] = {
    "grid": Field(
        "any",
        'Cell size of the fake pixels in source pixels: `"auto"` (detect), `8` or `[w, h]` (1..256).',
        "auto",
        check=_grid_problem,
        type_doc='"auto" or pair',
    ),
    "background": Field(
        "str",
        'Background that becomes transparent: `"auto"` (corner colour), `"none"` or `"#rrggbb"`.',
        "auto",
        check=_background_problem,
    ),
    "tolerance": Field(
        "int", "How far (per channel, 0..255) a cell may be from the background colour.", 40, minimum=0, maximum=255
    ),
}
"""The keys of a ``pixelize = { … }`` table."""


def pixelize_arguments(table: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`~sparky_assets.process.pixelize.pixelize` for a
    checked ``pixelize`` table (missing keys take their defaults)."""
    from ..process.pixelize import Grid

    grid = table.get("grid", "auto")
    if isinstance(grid, int):
        grid = (grid, grid)
    return {
        "grid": None if grid == "auto" else Grid(int(grid[0]), int(grid[1]), 0, 0, 1.0),
        "background": table.get("background", "auto"),
        "tolerance": table.get("tolerance", PIXELIZE_FIELDS["tolerance"].default),
    }
