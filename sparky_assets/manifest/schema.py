"""Manifest v1: the typed model and the field table it is validated against.

The field tables (:data:`SECTIONS` here, plus each plugin's own tables) are the single
source of truth for keys, types, defaults and documentation: validation walks them, and
``docs/manifest.md`` is rendered from them (``python -m sparky_assets.manifest.reference``;
a test keeps them in step).
The model classes are frozen; every path in them is absolute and inside the project
root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..hotreload.protocol import DEFAULT_ENDPOINT
from ..palettes.model import Palette
from .fields import DITHER_MODES, MAX_SPRITE_SIDE, NAMED_PIVOTS, Field

__all__ = ["DITHER_MODES", "MAX_SPRITE_SIDE", "NAMED_PIVOTS", "Field"]

MANIFEST_NAME = "sparky.toml"
DIRECTIONS: dict[int, tuple[str, ...]] = {
    4: ("n", "e", "s", "w"),
    8: ("n", "ne", "e", "se", "s", "sw", "w", "nw"),
}
"""Facings per ``directions`` value, clockwise from north (``s`` faces the viewer,
``e`` faces screen right)."""
PLAYBACK_DIRECTIONS = ("forward", "reverse", "pingpong", "pingpong_reverse")
"""An animation's playback order, named as Aseprite names its tag directions."""
DEFAULT_FILENAME_FORMAT = "{frame}"
"""Aseprite JSON frame names: the index in the sheet, what Phaser's ``createFromAseprite`` looks up."""


PROJECT_FIELDS: dict[str, Field] = {
    "name": Field(
        "str", "Project name; shown in summaries and sent in hot-reload messages.", required=True, example='"dungeon"'
    ),
    "out": Field("str", "Output folder for sheets, generic exports and reports (inside the project).", "build/sprites"),
    "palette": Field("str", "Default palette: a built-in name or a .hex/.gpl/.pal/.png file.", "pico-8"),
    "seed": Field("int", "Base seed; a sprite's default seed is derived from it and the sprite's name.", 0, minimum=0),
    "generator": Field("str", "Default generator for sprites that name none.", "procedural"),
    "size": Field("size", "Default sprite size, `16` or `[w, h]`.", [16, 16]),
    "fps": Field("number", "Default animation speed in frames per second.", 8, minimum=0.1, maximum=240),
}

SPRITE_FIELDS: dict[str, Field] = {
    "name": Field(
        "str",
        "Unique sprite name: ASCII letters, digits, `_ - .` (not first), no `..`, at most 128 characters.",
        required=True,
        example='"hero"',
    ),
    "size": Field("size", "Frame size in pixels, `32` or `[w, h]`, 1..4096. Defaults to `project.size`."),
    "animations": Field(
        "animations",
        "Animations: `{ idle = 4, walk = { frames = 6, fps = 12, loop = true } }`. None: a still sprite.",
        {},
    ),
    "fps": Field("number", "Animation speed for animations that set none.", minimum=0.1, maximum=240),
    "loop": Field("bool", "Whether animations loop by default.", True),
    "generator": Field(
        "str",
        "`procedural`, `image`, `diffusion` or a plugin's name. Defaults to `project.generator` (or `image` when `source` is set). "
        "The generator's own keys (below) may be set on the sprite too.",
    ),
    "prompt": Field("str", "Text prompt (diffusion); a style hint for other generators."),
    "seed": Field("int", "Generation seed; default derived from `project.seed` and the name.", minimum=0),
    "palette": Field("str", "Palette override for this sprite."),
    "directions": Field(
        "int",
        "Facings: `4` (n, e, s, w) or `8` (adds ne, se, sw, nw). Each animation becomes one clip per facing, "
        "named `<animation>_<facing>` (`walk_n`); a still sprite gets one frame per facing, named by the facing.",
        minimum=4,
        maximum=8,
    ),
    "pivot": Field(
        "pivot",
        "Origin of every frame, in frame pixels from the top-left `[8, 15]` or named: `top-left` `top-center` "
        "`top-right` `center-left` `center` `center-right` `bottom-left` `bottom-center` `bottom-right`. "
        "Default: the centre. An animation's own `pivot` overrides it.",
    ),
    "slices": Field(
        "slices",
        "Named regions and points in frame pixels: `{ hitbox = [2, 4, 12, 12], hand = [13, 9], "
        "panel = { rect = [0, 0, 16, 16], center = [4, 4, 8, 8], pivot = [8, 16] } }` — a rect `[x, y, w, h]`, "
        "a point `[x, y]` (a 1x1 rect), or a table with `rect`, optional 9-slice `center` (`[x, y, w, h]` "
        "inside the rect, relative to it) and `pivot` (relative to the rect).",
    ),
    "outline": Field("outline", 'Add a 1-px outline: `true` (darkest palette colour) or a colour `"#1a1c2c"`.', False),
    "dither": Field(
        "dither",
        "Ordered dithering when locking to the palette: `none`, `bayer2`, `bayer4`, `bayer8` (or `true` = bayer4).",
        "none",
    ),
}

ATLAS_FIELDS: dict[str, Field] = {
    "name": Field(
        "str",
        "Atlas name (the sprite-name rule); pages are `<name>_<page>.png`.",
        required=True,
        example='"characters"',
    ),
    "sprites": Field("str-list", "Sprite names or globs (`slime*`) packed into this atlas.", required=True),
    "max_size": Field("size", "Largest page size; more pages are made when one is full.", [2048, 2048]),
    "padding": Field("int", "Empty pixels between packed frames.", 1, minimum=0, maximum=64),
    "extrude": Field(
        "int",
        "Repeat each frame's edge pixels this many times around it (no bleeding when filtering).",
        0,
        minimum=0,
        maximum=16,
    ),
    "power_of_two": Field("bool", "Round page sizes up to powers of two.", False),
    "square": Field("bool", "Make pages square.", False),
    "trim": Field("bool", "Cut transparent borders off frames (offsets are exported).", False),
}

ANIMATION_FIELDS: dict[str, Field] = {
    "frames": Field("int", "Number of frames.", required=True, minimum=1, maximum=256, example="4"),
    "fps": Field("number", "Frames per second; defaults to the sprite's `fps`.", minimum=0.1, maximum=240),
    "loop": Field("bool", "Whether the animation repeats; defaults to the sprite's `loop`."),
    "durations": Field(
        "int-list",
        "Per-frame durations in milliseconds, one per frame (`[100, 100, 300]`); default `1000 / fps` each.",
        minimum=1,
        maximum=65535,
    ),
    "holds": Field(
        "int-list",
        "Per-frame holds in ticks of the animation's fps, one per frame (`[1, 1, 3]`: the third frame shows "
        "three times as long). Exclusive with `durations`; a held frame is stored once.",
        minimum=1,
        maximum=240,
    ),
    "pivot": Field("pivot", "This animation's origin (overrides the sprite's `pivot`), same forms."),
    "direction": Field(
        "str",
        "Playback order: `forward`, `reverse`, `pingpong` (there and back, the end frames once) or "
        "`pingpong_reverse`. Exported as each format names it; frames are never duplicated.",
        "forward",
        choices=PLAYBACK_DIRECTIONS,
    ),
    "repeat": Field(
        "int",
        "Play the animation this many times, then stop on its last frame (Aseprite's tag repeat; sets `loop = "
        "false`). `0`: as `loop` says.",
        0,
        minimum=0,
        maximum=65535,
    ),
}
"""The keys of one animation's table in a sprite's ``animations``."""

HOT_RELOAD_FIELDS: dict[str, Field] = {
    "endpoint": Field("str", "ZeroMQ endpoint `sparky-assets watch` publishes on.", DEFAULT_ENDPOINT),
    "allow_remote": Field("bool", "Allow binding a non-loopback address (exposes build events to the network).", False),
}


def _collision_problem(value: Any) -> str | None:
    """What a ``collision`` value should have been, or None when it is fine."""
    shape = "full, none, { polygon = [[x, y], ...] } (3+ points) or { rects = [[x, y, w, h], ...] }"
    if value in ("full", "none"):
        return None
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("polygon", "rects"):
        return shape
    ((kind, items),) = value.items()
    numbers = (int, float)
    if not isinstance(items, list) or not items:
        return shape
    if kind == "polygon":
        ok = len(items) >= 3 and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(n, numbers) and not isinstance(n, bool) for n in p)
            for p in items
        )
    else:
        ok = all(
            isinstance(r, list)
            and len(r) == 4
            and all(isinstance(n, numbers) and not isinstance(n, bool) for n in r)
            and r[2] > 0
            and r[3] > 0
            for r in items
        )
    return None if ok else shape


def _custom_data_problem(value: Any) -> str | None:
    if all(isinstance(v, (bool, int, float, str)) for v in value.values()):
        return None
    return "a table of booleans, integers, numbers or strings (`{ solid = true, damage = 2 }`)"


TILESET_LAYOUTS = ("corners", "blob3x3", "blob5x3")
TILESET_SETS = ("blob", "corners")
COLLISION_FIELD = Field(
    "any",
    "Collision shape in tile pixels (top-left origin): `full`, `none`, `{ polygon = [[x, y], ...] }` or "
    "`{ rects = [[x, y, w, h], ...] }`.",
    check=_collision_problem,
    type_doc="collision",
)
DATA_FIELD = Field(
    "table",
    "Custom data (`{ solid = true, damage = 2 }`): one layer per key in the engine tilesets.",
    {},
    check=_custom_data_problem,
)
TILE_FIELDS: dict[str, Field] = {
    "name": Field("str", "Tile name (letters, digits, `_ - .`).", required=True, example='"water"'),
    "source": Field("path", "Image holding the tile (a single tile or a sheet).", required=True),
    "cell": Field(
        "pair", "The tile's `[column, row]` in `source`, in tiles (a sheet); frames follow to the right.", [0, 0]
    ),
    "frames": Field(
        "int",
        "Animation frames (consecutive tiles to the right in `source`); 1: a still tile.",
        1,
        minimum=1,
        maximum=64,
    ),
    "fps": Field("number", "Animation speed of an animated tile.", 6, minimum=0.1, maximum=240),
    "collision": replace(COLLISION_FIELD, default="none"),
    "data": DATA_FIELD,
}
TILESET_FIELDS: dict[str, Field] = {
    "name": Field(
        "str",
        "Tileset name; files are `<name>.png`, `<name>.tsx`, `<name>.tres`, `<name>.tileset.ron`.",
        required=True,
        example='"dungeon"',
    ),
    "tile_size": Field(
        "int", "Tile side in pixels (even: autotiles are built from half-tile quadrants).", 16, minimum=2, maximum=512
    ),
    "template": Field(
        "path", "Autotile template drawn by the artist (layouts in docs/tilesets.md); none: only `tiles`."
    ),
    "base": Field(
        "str",
        "Instead of a `template`: a sprite of this manifest (a procedural `tile`, say) as the full tile; the "
        "template is drawn from it with a border in the palette's two darkest colours.",
    ),
    "layout": Field("str", "The template's layout.", "blob5x3", choices=TILESET_LAYOUTS),
    "set": Field(
        "str",
        "Autotiles made: `blob` (47 tiles, sides and corners) or `corners` (16 tiles, a dual grid).",
        "blob",
        choices=TILESET_SETS,
    ),
    "terrain": Field("str", "Terrain name in the engine tilesets. Defaults to the tileset name."),
    "palette": Field("str", "Palette the tiles are locked to. Defaults to `project.palette`."),
    "collision": replace(COLLISION_FIELD, default="full"),
    "data": DATA_FIELD,
    "tiles": Field(
        "any",
        "Other tiles: `[[tileset.tiles]]` tables (keys below), hand-drawn or cut from a sheet, still or animated.",
        [],
        type_doc="tables",
    ),
}

SECTIONS: dict[str, dict[str, Field]] = {
    "project": PROJECT_FIELDS,
    "sprite": SPRITE_FIELDS,
    "atlas": ATLAS_FIELDS,
    "hot_reload": HOT_RELOAD_FIELDS,
    "tileset": TILESET_FIELDS,
    "tile": TILE_FIELDS,
}
TOP_LEVEL_KEYS = ("project", "generator", "sprite", "atlas", "tileset", "export", "hot_reload")


# ---------------------------------------------------------------- typed model


@dataclass(frozen=True)
class Animation:
    name: str
    """The clip name; with directions ``<base>_<direction>`` (or the direction alone for a still sprite)."""
    frames: int
    fps: float
    loop: bool
    direction: str = ""
    """The facing of every frame of this clip (sprites with ``directions``), else empty."""
    base: str = ""
    """The animation the manifest names (``walk`` for ``walk_n``; empty for a still sprite's facing)."""
    durations: tuple[float, ...] = ()
    """Per-frame durations in ms (from ``durations`` or ``holds``); empty: ``1000 / fps`` each."""
    playback: str = "forward"
    """One of :data:`PLAYBACK_DIRECTIONS` (the manifest's animation ``direction``; ``direction``
    here is the facing)."""
    pivot: tuple[float, float] | None = None
    """This animation's own pivot in frame pixels (else the sprite's)."""
    repeat: int = 0
    """Plays this many times then stops (``loop`` is then false); 0: as ``loop`` says."""

    @property
    def timed(self) -> bool:
        """Whether timing, order or repeats differ from the defaults (only then do keys and files mention them)."""
        return bool(self.durations) or self.playback != "forward" or self.repeat > 0


@dataclass(frozen=True)
class Slice:
    """A named region of every frame of a sprite, in frame pixels (x right, y down)."""

    name: str
    rect: tuple[int, int, int, int]
    """``(x, y, w, h)``; a point is a 1x1 rect."""
    center: tuple[int, int, int, int] | None = None
    """9-slice centre ``(x, y, w, h)`` relative to ``rect``: what stretches."""
    pivot: tuple[int, int] | None = None
    """A point relative to ``rect`` (Aseprite's slice pivot)."""
    data: str = ""
    """User data (Aseprite's slice user data text)."""

    def borders(self) -> tuple[int, int, int, int] | None:
        """9-slice borders ``(left, top, right, bottom)`` inside ``rect``, or None."""
        if self.center is None:
            return None
        cx, cy, cw, ch = self.center
        return cx, cy, self.rect[2] - cx - cw, self.rect[3] - cy - ch


@dataclass(frozen=True)
class SpriteSpec:
    name: str
    index: int
    """Position in the manifest's ``[[sprite]]`` list (0-based)."""
    width: int
    height: int
    animations: tuple[Animation, ...]
    """Empty for a still sprite (one frame)."""
    generator: str
    seed: int
    palette: str
    prompt: str | None = None
    outline: str | bool = False
    dither: str = "none"
    options: Mapping[str, Any] = field(default_factory=dict)
    """The sprite's keys declared by its generator (``option_fields``), as written, plus
    ``directions`` when set."""
    pivot: tuple[float, float] | None = None
    """The frames' origin in frame pixels; None: the centre."""
    slices: tuple[Slice, ...] = ()

    def pivot_of(self, animation: str | None) -> tuple[float, float]:
        """The pivot an animation's frames use (its own, the sprite's, else the centre)."""
        for a in self.animations:
            if a.name == animation and a.pivot is not None:
                return a.pivot
        return self.pivot if self.pivot is not None else (self.width / 2, self.height / 2)

    @property
    def placed(self) -> bool:
        """Whether pivots or slices are set (only then do keys and files mention them)."""
        return self.pivot is not None or bool(self.slices) or any(a.pivot is not None for a in self.animations)

    @property
    def frame_count(self) -> int:
        return sum(a.frames for a in self.animations) or 1

    @property
    def key(self) -> str:
        return f"sprite[{self.index}]"


@dataclass(frozen=True)
class AtlasSpec:
    name: str
    index: int
    patterns: tuple[str, ...]
    sprites: tuple[str, ...]
    """Sprite names matched by ``patterns``, in manifest order."""
    max_width: int
    max_height: int
    padding: int = 1
    extrude: int = 0
    power_of_two: bool = False
    square: bool = False
    trim: bool = False
    implicit: bool = False
    """True for the one-sprite sheet made for a sprite that no atlas names."""


@dataclass(frozen=True)
class ExportSpec:
    target: str
    root: Path
    """Absolute output root of this target."""
    settings: Mapping[str, Any] = field(default_factory=dict)


Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TileSpec:
    """A tile besides the autotiles: cut from ``source`` at ``cell``, ``frames`` to the right."""

    name: str
    source: Path
    cell: tuple[int, int] = (0, 0)
    frames: int = 1
    fps: float = 6.0
    collision: tuple[Polygon, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TilesetSpec:
    name: str
    index: int
    tile_size: int
    palette: str
    terrain: str
    template: Path | None = None
    base: str | None = None
    """A sprite whose first locked frame is the full tile (instead of ``template``)."""
    layout: str = "blob5x3"
    set: str = "blob"
    collision: tuple[Polygon, ...] = ()
    """Of every autotile."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Of every autotile."""
    tiles: tuple[TileSpec, ...] = ()


@dataclass(frozen=True)
class Manifest:
    path: Path
    root: Path
    name: str
    out: Path
    palette: str
    seed: int
    sprites: tuple[SpriteSpec, ...]
    atlases: tuple[AtlasSpec, ...]
    exports: tuple[ExportSpec, ...]
    generators: Mapping[str, Mapping[str, Any]]
    endpoint: str = DEFAULT_ENDPOINT
    allow_remote: bool = False
    tilesets: tuple[TilesetSpec, ...] = ()
    palettes: Mapping[str, Palette] = field(default_factory=dict)
    """Every palette value the manifest names → the loaded palette (loaded once per load)."""

    def sprite(self, name: str) -> SpriteSpec:
        for sprite in self.sprites:
            if sprite.name == name:
                return sprite
        raise KeyError(name)

    def relative(self, path: Path) -> str:
        """``path`` relative to the project root, ``/``-separated."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()
