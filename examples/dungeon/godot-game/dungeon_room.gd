extends TileMapLayer
## A room of the dungeon tileset (res://sprites/dungeon.tres, built from
## examples/dungeon/art/dungeon_walls.png): a floor everywhere, then the walls painted with
## Godot's own terrain painter, which picks each wall's autotile (inner and outer corners)
## from the peering bits sparky-assets wrote. Add this script to a TileMapLayer node.

const TILESET := "res://sprites/dungeon.tres"
const ROOM := [
	"##########",
	"#........#",
	"#..##....#",
	"#..##..###",
	"#......#.#",
	"#~~....#.#",
	"##########",
]
## Sheet cells of the plain tiles: after the 47 wall autotiles, 8 to a row.
const FLOOR := Vector2i(7, 5)
const LAVA := Vector2i(0, 6)


func _ready() -> void:
	if tile_set == null:
		tile_set = load(TILESET)
	var walls: Array[Vector2i] = []
	for y in ROOM.size():
		for x in ROOM[y].length():
			var cell := Vector2i(x, y)
			match ROOM[y][x]:
				"#":
					walls.append(cell)
				"~":
					set_cell(cell, 0, LAVA)
				_:
					set_cell(cell, 0, FLOOR)
	set_cells_terrain_connect(walls, 0, 0)
