extends Node
## Loads the sheet PNG and the TileSet .tres listed in res://sparky_test/cases.json and
## prints what Godot made of them, one `SPARKY <json>` line each: the tileset's layers and
## terrain set, every tile's terrain, peering bits, collision polygons, custom data and
## animation, and the tiles Godot's own terrain painter
## (TileMapLayer.set_cells_terrain_connect) chooses for the listed cells.

const CASES := "res://sparky_test/cases.json"
const NEIGHBOURS := {
	"right_side": TileSet.CELL_NEIGHBOR_RIGHT_SIDE,
	"bottom_right_corner": TileSet.CELL_NEIGHBOR_BOTTOM_RIGHT_CORNER,
	"bottom_side": TileSet.CELL_NEIGHBOR_BOTTOM_SIDE,
	"bottom_left_corner": TileSet.CELL_NEIGHBOR_BOTTOM_LEFT_CORNER,
	"left_side": TileSet.CELL_NEIGHBOR_LEFT_SIDE,
	"top_left_corner": TileSet.CELL_NEIGHBOR_TOP_LEFT_CORNER,
	"top_side": TileSet.CELL_NEIGHBOR_TOP_SIDE,
	"top_right_corner": TileSet.CELL_NEIGHBOR_TOP_RIGHT_CORNER,
}


func _ready() -> void:
	var cases: Dictionary = JSON.parse_string(FileAccess.get_file_as_string(CASES))
	var texture := ImageTexture.create_from_image(Image.load_from_file(cases["page"]))
	texture.take_over_path(cases["page"])
	var tile_set: TileSet = ResourceLoader.load(cases["tileset"])
	_emit({"loaded": tile_set != null, "class": tile_set.get_class() if tile_set != null else ""})
	var layers := []
	for i in tile_set.get_custom_data_layers_count():
		layers.append([tile_set.get_custom_data_layer_name(i), tile_set.get_custom_data_layer_type(i)])
	var source: TileSetAtlasSource = tile_set.get_source(tile_set.get_source_id(0))
	_emit(
		{
			"tile_size": [tile_set.tile_size.x, tile_set.tile_size.y],
			"terrain_sets": tile_set.get_terrain_sets_count(),
			"mode": tile_set.get_terrain_set_mode(0) if tile_set.get_terrain_sets_count() > 0 else -1,
			"terrain": tile_set.get_terrain_name(0, 0) if tile_set.get_terrain_sets_count() > 0 else "",
			"physics_layers": tile_set.get_physics_layers_count(),
			"custom_data_layers": layers,
			"texture": source.texture.resource_path,
			"tiles": source.get_tiles_count(),
		}
	)
	for i in source.get_tiles_count():
		var coords := source.get_tile_id(i)
		var data := source.get_tile_data(coords, 0)
		var record := {
			"tile": [coords.x, coords.y], "terrain_set": data.terrain_set, "terrain": data.terrain
		}
		var bits := []
		if data.terrain_set == 0:
			for name: String in NEIGHBOURS:
				var bit: int = NEIGHBOURS[name]
				if data.is_valid_terrain_peering_bit(bit) and data.get_terrain_peering_bit(bit) == 0:
					bits.append(name)
		record["peering"] = bits
		var polygons := []
		for p in data.get_collision_polygons_count(0):
			var points := []
			for point: Vector2 in data.get_collision_polygon_points(0, p):
				points.append([point.x, point.y])
			polygons.append(points)
		record["collision"] = polygons
		var custom := {}
		for layer: Array in layers:
			custom[layer[0]] = data.get_custom_data(layer[0])
		record["data"] = custom
		record["frames"] = source.get_tile_animation_frames_count(coords)
		record["speed"] = source.get_tile_animation_speed(coords)
		_emit(record)
	var map := TileMapLayer.new()
	map.tile_set = tile_set
	add_child(map)
	var cells: Array[Vector2i] = []
	for cell: Array in cases["cells"]:
		cells.append(Vector2i(int(cell[0]), int(cell[1])))
	map.set_cells_terrain_connect(cells, 0, 0)
	var painted := []
	for cell in cells:
		var at := map.get_cell_atlas_coords(cell)
		painted.append([cell.x, cell.y, at.x, at.y])
	_emit({"painted": painted})
	_emit({"done": true})
	get_tree().quit(0)


func _emit(record: Dictionary) -> void:
	print("SPARKY " + JSON.stringify(record))
