"""Engine tilesets written from a :class:`~.build.BuiltTileset`: Godot 4 ``.tres``, Tiled ``.tsx``, Bevy RON.

Each writer is a pure function returning text (UTF-8 when written); numbers have fixed
formatting and everything is emitted in tile order, so outputs are byte-stable.

- Godot 4: a ``TileSet`` with one ``TileSetAtlasSource`` (the sheet), one terrain set
  (``match corners and sides`` for a blob set, ``match corners`` for a corner set) whose
  peering bits are set for every autotile, physics layer 0 with the collision polygons
  (Godot's tile coordinates: origin at the tile centre), one custom data layer per key,
  and animated tiles (frames on the same row).
- Tiled: a ``.tsx`` with the sheet as its image, a Wang set (``mixed`` for blob: edges and
  corners; ``corner`` for a corner set; colour 1 is the terrain, 0 no terrain), per-tile
  properties, collision objects and animations.
- Bevy: ``<name>.tileset.ron`` read by ``bevy_sparky`` (docs/formats.md): the sheet, the
  256- or 16-entry pick table and every tile's frames, collision and custom data.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from ..export.base import quoted
from . import autotile
from .build import BuiltTileset, TileEntry

GODOT_PEERING: tuple[tuple[int, str], ...] = (
    (autotile.E, "right_side"),
    (autotile.SE, "bottom_right_corner"),
    (autotile.S, "bottom_side"),
    (autotile.SW, "bottom_left_corner"),
    (autotile.W, "left_side"),
    (autotile.NW, "top_left_corner"),
    (autotile.N, "top_side"),
    (autotile.NE, "top_right_corner"),
)
"""Neighbour bit → Godot's ``terrains_peering_bit`` name, in Godot's ``CellNeighbor`` order."""
GODOT_CORNER_NAMES = ("top_left_corner", "top_right_corner", "bottom_left_corner", "bottom_right_corner")
GODOT_VARIANT_TYPE = {bool: 1, int: 2, float: 3, str: 4}
TILED_TYPE = {bool: "bool", int: "int", float: "float", str: "string"}
TERRAIN_COLOUR = (0.8, 0.4, 0.2)


def _num(value: float) -> str:
    return f"{value:g}"


def godot_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _cell(tileset: BuiltTileset, index: int) -> tuple[int, int]:
    row, col = divmod(index, tileset.columns)
    return col, row


def godot_tres(tileset: BuiltTileset, texture_path: str, uid: str) -> str:
    """The TileSet resource; ``texture_path`` is the sheet's ``res://`` path."""
    spec, side = tileset.spec, tileset.spec.tile_size
    half = side / 2
    source = []
    for tile in tileset.tiles:
        col, row = _cell(tileset, tile.index)
        at = f"{col}:{row}"
        if tile.frames:
            source += [
                f"{at}/animation_speed = {float(tile.fps)!r}",
                f"{at}/animation_frames_count = {len(tile.frames)}",
            ]
        source.append(f"{at}/0 = 0")
        bits = _godot_peering(tile)
        if bits is not None:
            terrain, names = bits
            source.append(f"{at}/0/terrain_set = 0")
            source.append(f"{at}/0/terrain = {terrain}")
            source += [f"{at}/0/terrains_peering_bit/{name} = 0" for name in names]
        for p, polygon in enumerate(tile.collision):
            points = ", ".join(f"{_num(x - half)}, {_num(y - half)}" for x, y in polygon)
            source.append(f"{at}/0/physics_layer_0/polygon_{p}/points = PackedVector2Array({points})")
        for layer, key in enumerate(tileset.data_types):
            if key in tile.data:
                value = tile.data[key]
                value = float(value) if tileset.data_types[key] is float else value
                source.append(f"{at}/0/custom_data_{layer} = {godot_value(value)}")
    resource = [f"tile_size = Vector2i({side}, {side})"]
    if any(t.collision for t in tileset.tiles):
        resource.append("physics_layer_0/collision_layer = 1")
    if tileset.table:
        r, g, b = TERRAIN_COLOUR
        resource += [
            f"terrain_set_0/mode = {0 if spec.set == 'blob' else 1}",
            f"terrain_set_0/terrain_0/name = {quoted(spec.terrain)}",
            f"terrain_set_0/terrain_0/color = Color({r}, {g}, {b}, 1)",
        ]
    for layer, (key, kind) in enumerate(tileset.data_types.items()):
        resource += [
            f"custom_data_layer_{layer}/name = {quoted(key)}",
            f"custom_data_layer_{layer}/type = {GODOT_VARIANT_TYPE[kind]}",
        ]
    resource.append('sources/0 = SubResource("TileSetAtlasSource_0")')
    lines = [
        f'[gd_resource type="TileSet" load_steps=3 format=3 uid="{uid}"]',
        "",
        f'[ext_resource type="Texture2D" path={quoted(texture_path)} id="1_sheet"]',
        "",
        '[sub_resource type="TileSetAtlasSource" id="TileSetAtlasSource_0"]',
        'texture = ExtResource("1_sheet")',
        f"texture_region_size = Vector2i({side}, {side})",
        *source,
        "",
        "[resource]",
        *resource,
        "",
    ]
    return "\n".join(lines)


def _godot_peering(tile: TileEntry) -> tuple[int, list[str]] | None:
    """(the tile's own terrain, peering bit names set to terrain 0), None for a plain tile."""
    if tile.mask is not None:
        return 0, [name for bit, name in GODOT_PEERING if tile.mask & bit]
    if tile.corners is not None:
        names = [name for flag, name in zip(tile.corners, GODOT_CORNER_NAMES, strict=True) if flag]
        order = [name for _, name in GODOT_PEERING]
        return (0 if any(tile.corners) else -1), sorted(names, key=order.index)
    return None


def tiled_wangid(tile: TileEntry) -> str:
    """Tiled's 8 Wang colours (top, top-right, right, … top-left): 1 terrain, 0 none."""
    if tile.mask is not None:
        return ",".join("1" if tile.mask & (1 << i) else "0" for i in range(8))
    nw, ne, sw, se = tile.corners
    return ",".join(str(v) for v in (0, ne, 0, se, 0, sw, 0, nw))


def tiled_tsx(tileset: BuiltTileset, image_name: str) -> str:
    spec, side = tileset.spec, tileset.spec.tile_size
    height, width = tileset.image.shape[:2]
    count = tileset.columns * tileset.rows
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<tileset version="1.10" tiledversion="1.10.2" name={quoteattr(spec.name)} tilewidth="{side}" '
        f'tileheight="{side}" tilecount="{count}" columns="{tileset.columns}">',
        f' <image source={quoteattr(image_name)} width="{width}" height="{height}"/>',
    ]
    for tile in tileset.tiles:
        body = []
        props = [f" <property name={quoteattr('name')} value={quoteattr(tile.name)}/>"]
        for key, kind in tileset.data_types.items():
            if key in tile.data:
                value = tile.data[key]
                text = ("true" if value else "false") if kind is bool else str(float(value) if kind is float else value)
                props.append(
                    f" <property name={quoteattr(key)} type={quoteattr(TILED_TYPE[kind])} value={quoteattr(text)}/>"
                )
        body += ["  <properties>", *("  " + p for p in props), "  </properties>"]
        if tile.collision:
            body.append('  <objectgroup draworder="index">')
            for i, polygon in enumerate(tile.collision, start=1):
                x0, y0 = polygon[0]
                points = " ".join(f"{_num(x - x0)},{_num(y - y0)}" for x, y in polygon)
                body.append(f'   <object id="{i}" x="{_num(x0)}" y="{_num(y0)}"><polygon points="{points}"/></object>')
            body.append("  </objectgroup>")
        if tile.frames:
            duration = round(1000 / tile.fps)
            body.append("  <animation>")
            body += [f'   <frame tileid="{f}" duration="{duration}"/>' for f in tile.frames]
            body.append("  </animation>")
        out += [f' <tile id="{tile.index}">', *body, " </tile>"]
    if tileset.table:
        r, g, b = (round(c * 255) for c in TERRAIN_COLOUR)
        kind = "mixed" if spec.set == "blob" else "corner"
        full = next(t.index for t in tileset.tiles if t.mask == 0xFF or t.corners == (1, 1, 1, 1))
        out += [
            " <wangsets>",
            f'  <wangset name={quoteattr(spec.terrain)} type="{kind}" tile="{full}">',
            f'   <wangcolor name={quoteattr(spec.terrain)} color="#{r:02x}{g:02x}{b:02x}" tile="{full}" probability="1"/>',
        ]
        out += [
            f'   <wangtile tileid="{t.index}" wangid="{tiled_wangid(t)}"/>'
            for t in tileset.tiles
            if t.mask is not None or t.corners is not None
        ]
        out += ["  </wangset>", " </wangsets>"]
    out += ["</tileset>", ""]
    return "\n".join(out)


def _ron_value(value) -> str:
    if isinstance(value, bool):
        return f"Bool({'true' if value else 'false'})"
    if isinstance(value, int):
        return f"Int({value})"
    if isinstance(value, float):
        return f"Float({value!r})"
    return f"String({quoted(value)})"


def bevy_ron(tileset: BuiltTileset, image_name: str) -> str:
    spec = tileset.spec
    lines = [
        "(",
        "    format: 1,",
        f"    name: {quoted(spec.name)},",
        f"    image: {quoted(image_name)},",
        f"    tile_size: {spec.tile_size},",
        f"    columns: {tileset.columns},",
        f"    rows: {tileset.rows},",
        f"    terrain: {quoted(spec.terrain)},",
        f"    set: {quoted(spec.set if tileset.table else 'none')},",
        f"    table: [{', '.join(str(i) for i in tileset.table)}],",
        "    tiles: [",
    ]
    for t in tileset.tiles:
        polygons = ", ".join("[" + ", ".join(f"({float(x)!r}, {float(y)!r})" for x, y in p) + "]" for p in t.collision)
        data = ", ".join(f"{quoted(k)}: {_ron_value(v)}" for k, v in sorted(t.data.items()))
        lines.append(
            f"        (index: {t.index}, name: {quoted(t.name)}, frames: [{', '.join(str(f) for f in t.frames)}], "
            f"fps: {float(t.fps)!r}, collision: [{polygons}], data: {{{data}}}),"
        )
    lines += ["    ],", ")", ""]
    return "\n".join(lines)
