"""Tilesets built for real: a `[[tileset]]` → sheet, Tiled `.tsx`, Godot `.tres`, Bevy `.tileset.ron`.

Random maps are assembled from each export's own metadata (the `.tsx` Wang ids as
pytiled-parser reads them, the `.tres` peering bits, the RON pick table) and the built
sheet, and compared pixel for pixel with the reference artist's drawing of the same map.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from sparky_assets.cli.main import main
from sparky_assets.tiles import autotile as at
from sparky_assets.tiles.formats import GODOT_PEERING
from tests.tilesets_reference import BORDER, FILL, ReferenceArtist

pytiled_parser = pytest.importorskip("pytiled_parser")

TILE = 12
MANIFEST = """
[project]
name = "tiles"
palette = "art/terrain.hex"

[[sprite]]
name = "coin"
size = 8

[[tileset]]
name = "dungeon"
tile_size = {tile}
template = "art/walls.png"
layout = "{layout}"
set = "{set}"
terrain = "wall"
data = {{ solid = true, damage = 0 }}

[[tileset.tiles]]
name = "water"
source = "art/water.png"
frames = 3
fps = 4
collision = {{ rects = [[0, 6, 12, 6]] }}
data = {{ damage = 2, kind = "liquid" }}

[export.godot]
project = "game"

[export.bevy]
assets = "bevy/assets"
"""


def _project(tmp_path, layout="blob5x3", tileset="blob"):
    root = tmp_path / "p"
    (root / "art").mkdir(parents=True)
    artist = ReferenceArtist(tile=TILE, border=3, seed=3)
    Image.fromarray(artist.template(layout)).save(root / "art" / "walls.png")
    colours = [*FILL, *BORDER]
    (root / "art" / "terrain.hex").write_text("".join(f"{r:02x}{g:02x}{b:02x}\n" for r, g, b, _ in colours))
    water = np.concatenate([np.broadcast_to(FILL[i % 3], (TILE, TILE, 4)) for i in range(3)], axis=1)
    Image.fromarray(np.ascontiguousarray(water)).save(root / "art" / "water.png")
    (root / "sparky.toml").write_text(MANIFEST.format(tile=TILE, layout=layout, set=tileset))
    return root, artist


def _sheet_tiles(path) -> list[np.ndarray]:
    sheet = np.asarray(Image.open(path).convert("RGBA"))
    rows, cols = sheet.shape[0] // TILE, sheet.shape[1] // TILE
    return [sheet[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] for r in range(rows) for c in range(cols)]


def _assemble(grid, pick, tiles):
    out = np.zeros((grid.shape[0] * TILE, grid.shape[1] * TILE, 4), np.uint8)
    for r, c in zip(*np.nonzero(grid), strict=True):
        out[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = tiles[pick(at.neighbour_mask(grid, r, c))]
    return out


def _tiled_pick(wangset):
    """Tiled's rule: the tile whose Wang id matches the cell's sides and (reduced) corners."""
    by_id = {tuple(t.wang_id): t.tile_id for t in wangset.wang_tiles.values()}

    def pick(mask):
        reduced = at.reduce_mask(mask)
        return by_id[tuple(1 if reduced & (1 << i) else 0 for i in range(8))]

    return pick


def _godot_pick(tres: str, columns: int):
    """Godot's rule: the tile whose peering bits are exactly the cell's terrain neighbours."""
    bits: dict[int, int] = {}
    name_to_bit = {name: bit for bit, name in GODOT_PEERING}
    for col, row, name in re.findall(r"^(\d+):(\d+)/0/terrains_peering_bit/(\w+) = 0$", tres, re.M):
        index = int(row) * columns + int(col)
        bits[index] = bits.get(index, 0) | name_to_bit[name]
    for col, row in re.findall(r"^(\d+):(\d+)/0/terrain = 0$", tres, re.M):
        bits.setdefault(int(row) * columns + int(col), 0)
    by_bits = {b: i for i, b in bits.items()}
    assert len(by_bits) == 47
    return lambda mask: by_bits[at.reduce_mask(mask)]


def test_blob_tileset_exports_assemble_the_reference_map(tmp_path):
    root, artist = _project(tmp_path)
    assert main(["-q", "build", str(root)]) == 0
    out = root / "build" / "sprites" / "tilesets"
    tiles = _sheet_tiles(out / "dungeon.png")

    tileset = pytiled_parser.parse_tileset(out / "dungeon.tsx")
    assert (tileset.tile_width, tileset.columns, tileset.tile_count) == (TILE, 8, 56)
    (wangset,) = tileset.wang_sets
    assert (wangset.name, wangset.wang_type, len(wangset.wang_colors)) == ("wall", "mixed", 1)
    assert len(wangset.wang_tiles) == 47
    expected_ids = {i: [1 if m & (1 << b) else 0 for b in range(8)] for i, m in enumerate(at.BLOB_MASKS)}
    assert {t.tile_id: t.wang_id for t in wangset.wang_tiles.values()} == expected_ids
    water = tileset.tiles[48]  # 47 autotiles, then the 3-frame water starts a new row when it does not fit
    assert water.properties == {"name": "water", "damage": 2.0, "kind": "liquid"}
    assert [f.tile_id for f in water.animation] == [48, 49, 50]
    assert tileset.tiles[0].properties["solid"] is True

    tres = (root / "game" / "sprites" / "dungeon.tres").read_text()
    assert (root / "game" / "sprites" / "dungeon.png").read_bytes() == (out / "dungeon.png").read_bytes()
    assert "terrain_set_0/mode = 0" in tres and 'terrain_set_0/terrain_0/name = "wall"' in tres
    assert "0:6/animation_frames_count = 3" in tres
    assert "0:6/0/physics_layer_0/polygon_0/points = PackedVector2Array(-6, 0, 6, 0, 6, 6, -6, 6)" in tres
    ron = (root / "bevy" / "assets" / "sprites" / "dungeon.tileset.ron").read_text()
    table = [int(n) for n in re.search(r"table: \[([^\]]*)\]", ron).group(1).split(",")]
    assert table == at.blob_table()

    rng = np.random.default_rng(5)
    picks = {"tiled": _tiled_pick(wangset), "godot": _godot_pick(tres, 8), "bevy": table.__getitem__}
    for _ in range(4):
        grid = rng.random((9, 11)) < 0.55
        ideal = artist.render(grid)
        for name, pick in picks.items():
            assert np.array_equal(_assemble(grid, pick, tiles), ideal), name


def test_corner_tileset_is_a_tiled_corner_set_and_godot_match_corners(tmp_path):
    root, _ = _project(tmp_path, layout="corners", tileset="corners")
    assert main(["-q", "build", str(root)]) == 0
    tileset = pytiled_parser.parse_tileset(root / "build" / "sprites" / "tilesets" / "dungeon.tsx")
    (wangset,) = tileset.wang_sets
    assert wangset.wang_type == "corner" and len(wangset.wang_tiles) == 16
    for t in wangset.wang_tiles.values():
        nw, ne, sw, se = at.CORNER_KEYS[t.tile_id]
        assert t.wang_id == [0, ne, 0, se, 0, sw, 0, nw]
    tres = (root / "game" / "sprites" / "dungeon.tres").read_text()
    assert "terrain_set_0/mode = 1" in tres
    assert re.findall(r"^1:0/0/terrains_peering_bit/(\w+) = 0$", tres, re.M) == ["bottom_right_corner"]
    assert re.findall(r"^3:0/0/terrains_peering_bit/(\w+) = 0$", tres, re.M) == [
        "bottom_right_corner",
        "bottom_left_corner",
    ]


def test_rebuild_is_byte_identical_and_a_bad_template_is_located(tmp_path, capsys):
    root, _ = _project(tmp_path)
    assert main(["-q", "build", str(root)]) == 0
    tsx = root / "build" / "sprites" / "tilesets" / "dungeon.tsx"
    first = tsx.read_bytes()
    assert main(["-q", "build", "--force", str(root)]) == 0
    assert tsx.read_bytes() == first
    Image.new("RGBA", (40, 40)).save(root / "art" / "walls.png")
    capsys.readouterr()
    assert main(["-q", "build", str(root)]) == 2
    err = capsys.readouterr().err
    assert "sparky.toml:13:1" in err and "tileset[0].template" in err and "found 40x40" in err
    assert tsx.read_bytes() == first


def test_watch_republishes_a_tileset_when_its_template_or_its_table_changes(tmp_path):
    from sparky_assets.hotreload.protocol import AssetsChanged
    from tests.integration.test_watch import Running

    root, _ = _project(tmp_path)
    running = Running(root)
    try:
        template = root / "art" / "walls.png"
        pixels = np.asarray(Image.open(template).convert("RGBA")).copy()
        pixels[TILE + 5, TILE + 5] = BORDER[0]  # a pixel of the full tile, still a palette colour
        Image.fromarray(pixels).save(template)
        assert running.finished(2).ok
        (message,) = running.of_build(2, AssetsChanged)
        assert {(a.target, a.path, a.kind, a.engine_path) for a in message.assets} == {
            ("tilesets", "dungeon.png", "texture", None),
            ("godot", "dungeon.png", "texture", "res://sprites/dungeon.png"),
            ("bevy", "dungeon.png", "texture", "sprites/dungeon.png"),
        }
        manifest = root / "sparky.toml"
        manifest.write_text(manifest.read_text().replace("damage = 0", "damage = 1"))
        assert running.finished(3).ok
        (message,) = running.of_build(3, AssetsChanged)
        assert {(a.target, a.path, a.kind) for a in message.assets} == {
            ("tilesets", "dungeon.tsx", "tileset"),
            ("godot", "dungeon.tres", "tileset"),
            ("bevy", "dungeon.tileset.ron", "tileset"),
        }
    finally:
        running.close()


BASE_MANIFEST = """
[project]
name = "generated"
palette = "sweetie-16"

[[sprite]]
name = "ground"
style = "tile"
size = 16

[[tileset]]
name = "ground"
base = "ground"
tile_size = 16
"""


def test_a_generated_base_tile_becomes_a_palette_locked_blob_set(tmp_path):
    from sparky_assets.palettes.load import load_palette

    root = tmp_path / "p"
    root.mkdir()
    (root / "sparky.toml").write_text(BASE_MANIFEST)
    assert main(["-q", "build", str(root)]) == 0
    tiles = [t[:16, :16] for t in _sheet_tiles_of(root / "build/sprites/tilesets/ground.png", 16)]
    sprite = np.asarray(Image.open(root / "build/sprites/sheets/ground_0.png").convert("RGBA"))[:16, :16]
    assert np.array_equal(tiles[at.BLOB_INDEX[0xFF]], sprite)  # the full tile is the generated tile itself
    palette = {(*c, 255) for c in load_palette("sweetie-16", root).colors}
    assert {tuple(p) for t in tiles[:47] for p in t.reshape(-1, 4)} <= palette
    isolated = tiles[at.BLOB_INDEX[0]]
    ring = np.concatenate([isolated[0], isolated[-1], isolated[:, 0], isolated[:, -1]])
    assert len({tuple(p) for p in ring}) == 1 and tuple(ring[0]) != tuple(sprite[0, 0])  # outlined all round
    # every seam of a random map: a border pixel faces a border pixel or an empty cell, never bare fill
    rng = np.random.default_rng(2)
    grid = rng.random((8, 8)) < 0.6
    table = at.blob_table()
    picture = np.zeros((8 * 16, 8 * 16, 4), np.uint8)
    for r, c in zip(*np.nonzero(grid), strict=True):
        picture[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] = tiles[table[at.neighbour_mask(grid, r, c)]]
    outline = tuple(ring[0])
    for r in range(8):
        for c in range(8):
            if not grid[r, c]:
                continue
            for dr, dc, edge in (
                (0, 1, picture[r * 16 : (r + 1) * 16, c * 16 + 15]),
                (1, 0, picture[r * 16 + 15, c * 16 : (c + 1) * 16]),
            ):
                rr, cc = r + dr, c + dc
                if rr < 8 and cc < 8 and not grid[rr, cc]:
                    assert all(tuple(p) == outline for p in edge), (r, c, dr, dc)


def _sheet_tiles_of(path, side):
    sheet = np.asarray(Image.open(path).convert("RGBA"))
    return [
        sheet[r * side : (r + 1) * side, c * side : (c + 1) * side]
        for r in range(sheet.shape[0] // side)
        for c in range(sheet.shape[1] // side)
    ]


@pytest.mark.parametrize(
    "change, fragments",
    [
        ('base = "ground"', ['base = "grund"', "no sprite named 'grund'", "did you mean 'ground'?"]),
        ("tile_size = 16", ["tile_size = 8", "sprite 'ground' is not one tile", "found 16x16"]),
        ('base = "ground"', ['base = "ground"\ntemplate = "t.png"', "a `template` or a `base`, not both"]),
    ],
)
def test_a_bad_base_is_located(tmp_path, capsys, change, fragments):
    root = tmp_path / "p"
    root.mkdir()
    (root / "sparky.toml").write_text(BASE_MANIFEST.replace(change, fragments[0]))
    assert main(["-q", "build", str(root)]) == 2
    err = capsys.readouterr().err
    assert "tileset[0]" in err and all(f in err for f in fragments[1:]), err
