extends Node
## Loads every page PNG and .tres listed in res://sparky_test/cases.json with Godot's own
## loaders and prints what Godot made of each resource, one `SPARKY <json>` line each.
##
## The web export template has no PNG importer, so each page is read with
## Image.load_from_file and handed to ResourceCache under its res:// path
## (ImageTexture.take_over_path) before any .tres that references it is loaded; the
## .tres files themselves go through ResourceLoader unchanged.

const CASES := "res://sparky_test/cases.json"

var _pages := {}


func _ready() -> void:
	var cases: Dictionary = JSON.parse_string(FileAccess.get_file_as_string(CASES))
	for path: String in cases["pages"]:
		var image := Image.load_from_file(path)
		var texture := ImageTexture.create_from_image(image)
		texture.take_over_path(path)
		_pages[path] = texture
	for path: String in cases["resources"]:
		var resource := ResourceLoader.load(path)
		var record := {"path": path, "loaded": resource != null}
		if resource != null:
			record.merge(describe(resource))
			var meta := {}
			for key: StringName in resource.get_meta_list():
				meta[String(key)] = var_to_str(resource.get_meta(key))
			if not meta.is_empty():
				record["meta"] = meta
		_emit(record)
	var root_nodes := get_tree().root.get_children().map(func(node: Node) -> String: return node.name)
	_emit({"root_nodes": root_nodes})
	_emit({"done": true})
	get_tree().quit(0)


func describe(resource: Resource) -> Dictionary:
	if resource is SpriteFrames:
		return _sprite_frames(resource)
	if resource is AtlasTexture:
		return _atlas_texture(resource)
	return {"class": resource.get_class()}


func _sprite_frames(frames: SpriteFrames) -> Dictionary:
	var animations := []
	for name: StringName in frames.get_animation_names():
		var list := []
		for index in frames.get_frame_count(name):
			var texture := frames.get_frame_texture(name, index)
			var frame := {"duration": frames.get_frame_duration(name, index)}
			frame["texture"] = _atlas_texture(texture) if texture is AtlasTexture else {"class": str(texture)}
			list.append(frame)
		animations.append(
			{
				"name": String(name),
				"speed": frames.get_animation_speed(name),
				"loop": frames.get_animation_loop(name),
				"frames": list,
			}
		)
	return {"class": frames.get_class(), "animations": animations}


func _atlas_texture(texture: AtlasTexture) -> Dictionary:
	var atlas := texture.atlas
	return {
		"class": texture.get_class(),
		"atlas": atlas.resource_path if atlas != null else null,
		"atlas_is_page": atlas != null and _pages.get(atlas.resource_path) == atlas,
		"atlas_size": _vector(atlas.get_size()) if atlas != null else null,
		"region": _rect(texture.region),
		"margin": _rect(texture.margin),
		"size": _vector(texture.get_size()),
	}


static func _rect(rect: Rect2) -> Array:
	return [rect.position.x, rect.position.y, rect.size.x, rect.size.y]


static func _vector(vector: Vector2) -> Array:
	return [vector.x, vector.y]


static func _emit(record: Dictionary) -> void:
	print("SPARKY " + JSON.stringify(record))
