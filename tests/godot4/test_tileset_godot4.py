"""A built tileset's Godot 4 ``TileSet`` loaded by the real Godot 4.6 runtime.

The blob tileset of tests/integration/test_tilesets.py is built, its sheet and ``.tres``
loaded with Godot's own loader (``tests/godot4/gd/load_tileset.gd``): the terrain set's
mode and name, the physics and custom data layers, and every tile's terrain, peering bits
(exactly the reduced mask of its blob tile), collision polygons, custom data and
animation must be what the manifest and :mod:`sparky_assets.tiles.autotile` say. Godot's
own terrain painter (``set_cells_terrain_connect``) then paints a random map, and every
cell must get the tile the Python pick table names for its neighbour mask.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from sparky_assets.cli.main import main
from sparky_assets.tiles import autotile as at
from sparky_assets.tiles.formats import GODOT_PEERING
from tests.helpers import copy_example
from tests.integration.test_tilesets import TILE, _project

HERE = Path(__file__).resolve().parent
LOADER = (HERE / "gd" / "load_tileset.gd").read_text(encoding="utf-8")


def test_blob_tileset_loads_with_its_peering_bits_and_godot_paints_the_python_table(godot_web, tmp_path):
    root, _ = _project(tmp_path)
    assert main(["-q", "build", str(root)]) == 0
    folder = root / "game" / "sprites"
    rng = np.random.default_rng(11)
    grid = rng.random((8, 10)) < 0.6
    cells = [[int(c), int(r)] for r, c in zip(*np.nonzero(grid), strict=True)]
    files = {f"sprites/{name}": (folder / name).read_bytes() for name in ("dungeon.png", "dungeon.tres")}
    cases = {"page": "res://sprites/dungeon.png", "tileset": "res://sprites/dungeon.tres", "cells": cells}
    run = godot_web.run({**files, "sparky_test/cases.json": json.dumps(cases)}, script=LOADER)
    run.assert_clean()
    records = run.records
    assert records[0] == {"loaded": True, "class": "TileSet"}
    info = records[1]
    assert info == {
        "tile_size": [TILE, TILE],
        "terrain_sets": 1,
        "mode": 0,  # TERRAIN_MODE_MATCH_CORNERS_AND_SIDES
        "terrain": "wall",
        "physics_layers": 1,
        "custom_data_layers": [["damage", 2], ["kind", 4], ["solid", 1]],
        "texture": "res://sprites/dungeon.png",
        "tiles": 48,
    }
    tiles = {tuple(r["tile"]): r for r in records if "tile" in r}
    names = dict(GODOT_PEERING)
    half = TILE / 2
    full = [[-half, -half], [half, -half], [half, half], [-half, half]]
    for index, mask in enumerate(at.BLOB_MASKS):
        got = tiles[(index % 8, index // 8)]
        assert (got["terrain_set"], got["terrain"]) == (0, 0)
        assert sorted(got["peering"]) == sorted(names[bit] for bit in names if mask & bit), index
        assert got["collision"] == [full]
        assert got["data"] == {"damage": 0, "kind": "", "solid": True}
        assert got["frames"] == 1
    water = tiles[(0, 6)]
    assert (water["terrain_set"], water["peering"], water["frames"], water["speed"]) == (-1, [], 3, 4.0)
    assert water["collision"] == [[[-half, 0.0], [half, 0.0], [half, half], [-half, half]]]
    assert water["data"] == {"damage": 2, "kind": "liquid", "solid": False}

    (painted,) = [r["painted"] for r in records if "painted" in r]
    table = at.blob_table()
    for col, row, tile_col, tile_row in painted:
        assert tile_row * 8 + tile_col == table[at.neighbour_mask(grid, row, col)], (col, row)


ROOM_RUNNER = """extends Node

func _ready() -> void:
	var texture := ImageTexture.create_from_image(Image.load_from_file("res://sprites/dungeon.png"))
	texture.take_over_path("res://sprites/dungeon.png")
	var room := TileMapLayer.new()
	room.set_script(load("res://dungeon_room.gd"))
	add_child(room)
	var cells := []
	for cell: Vector2i in room.get_used_cells():
		var at := room.get_cell_atlas_coords(cell)
		cells.append([cell.x, cell.y, at.x, at.y])
	print("SPARKY " + JSON.stringify({"cells": cells}))
	print("SPARKY " + JSON.stringify({"done": true}))
	get_tree().quit(0)
"""


def test_the_example_room_paints_its_walls_with_the_python_table(godot_web, tmp_path):
    """examples/dungeon/godot-game/dungeon_room.gd on the example's own tileset: every wall
    cell gets the blob tile the Python table names for its neighbours; floor and lava stay."""
    root = copy_example(tmp_path)
    assert main(["-q", "build", str(root)]) == 0
    game = root / "godot-game"
    files = {f"sprites/{name}": (game / "sprites" / name).read_bytes() for name in ("dungeon.png", "dungeon.tres")}
    files["dungeon_room.gd"] = (game / "dungeon_room.gd").read_bytes()
    run = godot_web.run(files, script=ROOM_RUNNER)
    run.assert_clean()
    (cells,) = [r["cells"] for r in run.records if "cells" in r]
    source = (game / "dungeon_room.gd").read_text(encoding="utf-8")
    room = re.findall(r'^\t"([#.~]+)",$', source, re.M)
    grid = np.array([[ch == "#" for ch in row] for row in room])
    table = at.blob_table()
    painted = {(x, y): ty * 8 + tx for x, y, tx, ty in cells}
    assert len(painted) == grid.size
    for (x, y), index in painted.items():
        kind = room[y][x]
        want = table[at.neighbour_mask(grid, y, x)] if kind == "#" else {".": 47, "~": 48}[kind]
        assert index == want, (x, y, kind)
