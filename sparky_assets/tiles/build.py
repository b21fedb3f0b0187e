"""A declared ``[[tileset]]`` → one palette-locked tile sheet and the description every export writes.

Role: read the template and tile images (through the build's :class:`ReadContext`, so
``watch`` rebuilds when they change), lock them to the tileset's palette, synthesise the
autotiles (:mod:`.autotile`) and lay everything out on a sheet ``columns`` tiles wide:
the autotiles first (blob order or corner order), then each extra tile with its
animation frames on consecutive cells of one row (the layout Godot's animated tiles
need). Deterministic: same inputs → same sheet and same tile list.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Diagnostic, InvalidInput
from ..images import open_checked, rgba_array
from ..manifest.schema import Polygon, TilesetSpec
from ..palettes import Palette
from ..process.quantize import quantize_to_palette
from ..reads import ReadContext
from . import autotile

MAX_TEMPLATE_PIXELS = 4096 * 4096
MIN_COLUMNS = 8


@dataclass(frozen=True)
class TileEntry:
    """One tile of the sheet."""

    index: int
    """Cell index on the sheet, row-major (``row * columns + column``)."""
    name: str
    mask: int | None = None
    """Blob autotile: its reduced 8-neighbour mask (bits in :mod:`.autotile` order)."""
    corners: tuple[int, int, int, int] | None = None
    """Corner autotile: whether its NW, NE, SW, SE corners are terrain."""
    frames: tuple[int, ...] = ()
    """Animated tile: the cell index of each frame (the first is ``index``); empty when still."""
    fps: float = 0.0
    collision: tuple[Polygon, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltTileset:
    spec: TilesetSpec
    image: np.ndarray
    columns: int
    tiles: tuple[TileEntry, ...]
    table: tuple[int, ...]
    """Autotile pick table: 256 entries (blob: 8-neighbour mask → cell index) or 16
    (corners: NW<<3 | NE<<2 | SW<<1 | SE → cell index); empty without a template."""
    data_types: dict[str, type]
    """Custom data key → bool, int, float or str (one engine layer each), sorted by key."""

    @property
    def rows(self) -> int:
        return self.image.shape[0] // self.spec.tile_size


def _problem(spec: TilesetSpec, key: str, message: str, **extra: Any) -> InvalidInput:
    return InvalidInput(Diagnostic(message, key=f"tileset[{spec.index}].{key}", stage="tileset", **extra))


def _read_image(spec: TilesetSpec, key: str, path, reads: ReadContext, root) -> np.ndarray:
    try:
        data = reads.read_bytes(path)
        with open_checked(io.BytesIO(data), MAX_TEMPLATE_PIXELS) as im:
            return rgba_array(im).copy()
    except FileNotFoundError:
        raise _problem(spec, key, "image not found", found=path.relative_to(root).as_posix()) from None
    except Exception as exc:  # noqa: BLE001 - any decoder error: the file is not a usable image
        raise _problem(spec, key, f"unreadable image: {exc}", found=path.relative_to(root).as_posix()) from None


def template_from_base(base: np.ndarray, palette: Palette) -> np.ndarray:
    """A ``blob5x3`` template drawn from one full tile: the tile wherever its cell's neighbours
    are terrain; within ``max(1, tile // 8)`` pixels (Chebyshev) of an empty neighbour cell a
    border, the palette's darkest colour on the outermost pixel and its second darkest inside.
    Every pixel is a palette colour (the base is locked already)."""
    side = base.shape[0]
    width = max(1, side // 8)
    darkest = sorted(palette.colors, key=lambda c: (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2], c))
    outline = np.array([*darkest[0], 255], np.uint8)
    inner = np.array([*darkest[min(1, len(darkest) - 1)], 255], np.uint8)
    ys, xs = np.mgrid[0:side, 0:side]

    def draw(mask: int) -> np.ndarray:
        distance = np.full((side, side), side + 1)
        for bit, (dr, dc) in autotile.OFFSETS.items():
            if not mask & bit:
                dy = np.where(dr < 0, ys + 1, np.where(dr > 0, side - ys, 0))
                dx = np.where(dc < 0, xs + 1, np.where(dc > 0, side - xs, 0))
                distance = np.minimum(distance, np.maximum(dy, dx))
        tile = np.where((distance <= width)[..., None], inner, base)
        return np.where((distance <= 1)[..., None], outline, tile)

    template = np.zeros((3 * side, 5 * side, 4), np.uint8)
    island = np.ones((3, 3), bool)
    cells = {(r, c): autotile.neighbour_mask(island, r, c) for r in range(3) for c in range(3)}
    cells |= {
        (0, 3): 0xFF & ~autotile.SE,
        (0, 4): 0xFF & ~autotile.SW,
        (1, 3): 0xFF & ~autotile.NE,
        (1, 4): 0xFF & ~autotile.NW,
    }
    for (r, c), mask in cells.items():
        template[r * side : (r + 1) * side, c * side : (c + 1) * side] = draw(mask)
    return template


def build_tileset(
    spec: TilesetSpec, palette: Palette, reads: ReadContext, root, base: np.ndarray | None = None
) -> BuiltTileset:
    """Read, lock and lay out ``spec``'s tiles; ``base``: the locked full tile of ``spec.base``.
    Raises InvalidInput located at the tileset's keys."""
    side = spec.tile_size
    cells: list[np.ndarray] = []
    entries: list[TileEntry] = []
    table: tuple[int, ...] = ()
    if spec.template is not None or base is not None:
        if base is not None:
            template = template_from_base(base, palette)
        else:
            template = quantize_to_palette(_read_image(spec, "template", spec.template, reads, root), palette)
        try:
            quadrants = autotile.cut_template(template, side, spec.layout)
        except autotile.TemplateError as exc:
            raise _problem(spec, "template", str(exc), hint="see docs/tilesets.md for the layouts") from None
        if spec.set == "blob":
            cells = autotile.blob_set(quadrants)
            entries = [
                TileEntry(i, f"{spec.terrain}_{mask:03d}", mask=mask, collision=spec.collision, data=dict(spec.data))
                for i, mask in enumerate(autotile.BLOB_MASKS)
            ]
            table = tuple(autotile.blob_table())
        else:
            cells = autotile.corner_set(quadrants)
            entries = [
                TileEntry(
                    i,
                    f"{spec.terrain}_c{i:02d}",
                    corners=key,
                    collision=spec.collision if any(key) else (),
                    data=dict(spec.data) if any(key) else {},
                )
                for i, key in enumerate(autotile.CORNER_KEYS)
            ]
            table = tuple(range(16))
    columns = max([MIN_COLUMNS] + [t.frames for t in spec.tiles])
    placed: list[tuple[int, np.ndarray]] = list(enumerate(cells))
    cursor = len(cells)
    for j, tile in enumerate(spec.tiles):
        if cursor % columns + tile.frames > columns:  # an animation's frames stay on one row
            cursor += columns - cursor % columns
        source = quantize_to_palette(_read_image(spec, f"tiles[{j}].source", tile.source, reads, root), palette)
        col, row = tile.cell
        x0, y0 = col * side, row * side
        if y0 + side > source.shape[0] or x0 + tile.frames * side > source.shape[1]:
            raise _problem(
                spec,
                f"tiles[{j}].cell",
                f"tile '{tile.name}' ({tile.frames} frame(s) of {side}px from cell [{col}, {row}]) runs past its image",
                expected=f"an image at least {x0 + tile.frames * side}x{y0 + side}",
                found=f"{source.shape[1]}x{source.shape[0]}",
            )
        frames = tuple(range(cursor, cursor + tile.frames))
        for k, index in enumerate(frames):
            placed.append((index, source[y0 : y0 + side, x0 + k * side : x0 + (k + 1) * side]))
        entries.append(
            TileEntry(
                cursor,
                tile.name,
                frames=frames if tile.frames > 1 else (),
                fps=tile.fps if tile.frames > 1 else 0.0,
                collision=tile.collision,
                data=dict(tile.data),
            )
        )
        cursor += tile.frames
    rows = max(1, -(-cursor // columns))
    image = np.zeros((rows * side, columns * side, 4), np.uint8)
    for index, pixels in placed:
        r, c = divmod(index, columns)
        image[r * side : (r + 1) * side, c * side : (c + 1) * side] = pixels
    return BuiltTileset(spec, image, columns, tuple(entries), table, _data_types(spec, entries))


def _data_types(spec: TilesetSpec, entries: list[TileEntry]) -> dict[str, type]:
    """One type per custom data key; a key used with two types is an error (an engine layer has one)."""
    types: dict[str, type] = {}
    for entry in entries:
        for key, value in entry.data.items():
            kind = type(value)
            if {kind, types.get(key)} == {int, float}:
                types[key] = float  # 1 and 1.5 share a number layer
                continue
            if key in types and types[key] is not kind:
                raise _problem(
                    spec,
                    "data",
                    f"custom data '{key}' has two types",
                    expected=f"{types[key].__name__} on every tile",
                    found=f"{kind.__name__} on tile '{entry.name}'",
                )
            types[key] = kind
    return dict(sorted(types.items()))
