extends Node
## Runs the Godot starter's real main scene (res://main.tscn) and reports what its
## AnimatedSprite2D does while it plays, as `SPARKY <json>` lines.
##
## The page PNGs are handed to ResourceCache first (the web template has no PNG importer:
## see tests/godot4/harness.py), then the starter's own scene and script run unchanged.

const PAGES := "res://sparky_test/pages.txt"

var _pages := []
var _frames_seen := {}


func _ready() -> void:
	for path in FileAccess.get_file_as_string(PAGES).split("\n", false):
		var texture := ImageTexture.create_from_image(Image.load_from_file(path))
		texture.take_over_path(path)
		_pages.append(texture)
	var main: Node = load("res://main.tscn").instantiate()
	add_child(main)
	var hero: AnimatedSprite2D = main.get_node("Hero")
	hero.frame_changed.connect(func() -> void: _frames_seen[hero.frame] = true)
	_frames_seen[hero.frame] = true
	# Let it play until three different frames were shown (8 fps: ~0.4 s), 10 s at most.
	var started := Time.get_ticks_msec()
	while _frames_seen.size() < 3 and Time.get_ticks_msec() - started < 10000:
		await get_tree().process_frame
	var frames := hero.sprite_frames
	var texture := frames.get_frame_texture(hero.animation, hero.frame) if frames != null else null
	_emit(
		{
			"playing": hero.is_playing(),
			"animation": String(hero.animation),
			"sprite_frames": frames.resource_path if frames != null else null,
			"frames_seen": _frames_seen.size(),
			"frame_count": frames.get_frame_count(hero.animation) if frames != null else 0,
			"texture_page": texture.atlas.resource_path if texture is AtlasTexture else null,
			"hint": main.get_node("Hint").text,
			"bridge_autoload": get_node_or_null(^"/root/SparkyBridge") != null,
			"texture_filter": ProjectSettings.get_setting("rendering/textures/canvas_textures/default_texture_filter"),
			"snap_transforms": ProjectSettings.get_setting("rendering/2d/snap/snap_2d_transforms_to_pixel"),
			"snap_vertices": ProjectSettings.get_setting("rendering/2d/snap/snap_2d_vertices_to_pixel"),
			"plugins": ProjectSettings.get_setting("editor_plugins/enabled"),
		}
	)
	_emit({"done": true})
	get_tree().quit(0)


static func _emit(record: Dictionary) -> void:
	print("SPARKY " + JSON.stringify(record))
