extends Node
## Drives the addon's runtime autoload and editor session with real protocol messages,
## in-process (a web page has no raw TCP), and prints what changed as `SPARKY <json>`.
##
## Inputs in the pack: res://sprites/ (build 1 of a project), res://sparky_test/v2.pck
## (build 2's files under the same paths), res://sparky_test/messages.txt (one message a
## line: topic hex, tab, body hex, as `sparky-assets watch` publishes them).
##
## 1. runtime.gd: hero.tres is loaded and shown by an AnimatedSprite2D; build 2's files are
##    mounted over build 1's (load_resource_pack with replace), the messages go through
##    Subscriber.decode_frames into runtime.receive(); the SpriteFrames the node holds must
##    now describe build 2 (CACHE_MODE_REPLACE: same object, new frames and page).
## 2. editor_session.gd: the same messages plus a build failure, applied to a recording
##    stand-in for EditorFileSystem (an editor-only class).
##
## PNG pages are loaded by PngLoader, a ResourceFormatLoader standing in for the editor's
## imported textures (the web template has no PNG importer), so reloading a page path
## with CACHE_MODE_REPLACE reads the new PNG like a game reads a reimported one.

const Subscriber := preload("res://addons/sparky_bridge/subscriber.gd")
const EditorSession := preload("res://addons/sparky_bridge/editor_session.gd")
const MESSAGES := "res://sparky_test/messages.txt"


class PngLoader:
	extends ResourceFormatLoader

	func _get_recognized_extensions() -> PackedStringArray:
		return PackedStringArray(["png"])

	func _handles_type(type: StringName) -> bool:
		return ClassDB.is_parent_class("ImageTexture", type)

	func _get_resource_type(path: String) -> String:
		return "ImageTexture" if path.get_extension().to_lower() == "png" else ""

	func _load(path: String, _original: String, _threads: bool, _cache_mode: int) -> Variant:
		var image := Image.load_from_file(path)
		return ImageTexture.create_from_image(image) if image != null else ERR_FILE_CORRUPT


class RecordingFileSystem:
	extends RefCounted
	var calls := []

	func update_file(path: String) -> void:
		calls.append(["update_file", path])

	func scan() -> void:
		calls.append(["scan"])

	func reimport_files(paths: PackedStringArray) -> void:
		calls.append(["reimport_files", Array(paths)])


var _signalled := []


func _ready() -> void:
	ResourceLoader.add_resource_format_loader(PngLoader.new(), true)
	var frames: SpriteFrames = load("res://sprites/hero.tres")
	var sprite := AnimatedSprite2D.new()
	sprite.sprite_frames = frames
	add_child(sprite)
	sprite.play(&"walk")
	var before := _describe(frames)

	var mounted := ProjectSettings.load_resource_pack("res://sparky_test/v2.pck", true)
	var runtime: Node = load("res://addons/sparky_bridge/runtime.gd").new()
	add_child(runtime)
	runtime.assets_reloaded.connect(func(paths: PackedStringArray) -> void: _signalled.append(Array(paths)))
	var subscriber := Subscriber.new()
	var events := []
	for frames_pair in _messages():
		events.append(subscriber.decode_frames(frames_pair))
	var reloaded: PackedStringArray = runtime.receive(events, Time.get_ticks_msec())
	_emit(
		{
			"runtime": true,
			"mounted": mounted,
			"event_kinds": events.map(func(event: Dictionary) -> String: return event["kind"]),
			"rescan": events.map(func(event: Dictionary) -> bool: return event.get("rescan", false)),
			"reloaded": Array(reloaded),
			"signalled": _signalled,
			"same_instance": sprite.sprite_frames == frames,
			"still_playing": sprite.is_playing() and sprite.animation == &"walk",
			"before": before,
			"after": _describe(sprite.sprite_frames),
		}
	)
	_editor_session(events)
	_emit({"done": true})
	get_tree().quit(0)


func _editor_session(events: Array) -> void:
	var session := EditorSession.new()
	session.configure(
		{"endpoint": "tcp://127.0.0.1:5557", "max_bytes": 1048576, "managed_prefix": "res://"}
	)
	var filesystem := RecordingFileSystem.new()
	var steps := []
	for event: Dictionary in events:
		session.handle_events([event])
		var applied_while_busy := session.apply_plan(filesystem, true)
		var applied := session.apply_plan(filesystem, false)
		steps.append(
			{
				"type": event.get("type", event["kind"]),
				"applied_while_busy": applied_while_busy,
				"applied": applied,
				"calls": filesystem.calls.duplicate(),
				"reports": session.take_reports(),
				"toasts": session.take_toasts(),
				"label": session.status.label_text(),
			}
		)
		filesystem.calls.clear()
	_emit({"editor": true, "steps": steps})


func _messages() -> Array:
	var out := []
	for line in FileAccess.get_file_as_string(MESSAGES).split("\n", false):
		var parts := line.split("\t")
		out.append([parts[0].hex_decode(), parts[1].hex_decode()])
	return out


func _describe(frames: SpriteFrames) -> Dictionary:
	var walk := []
	for index in frames.get_frame_count(&"walk"):
		var texture: AtlasTexture = frames.get_frame_texture(&"walk", index)
		var image := texture.atlas.get_image()
		image.convert(Image.FORMAT_RGBA8)
		walk.append(
			{
				"region": [texture.region.position.x, texture.region.position.y, texture.region.size.x, texture.region.size.y],
				"page": texture.atlas.resource_path,
				"page_rgba_md5": _md5(image.get_data()),
			}
		)
	return {"walk": walk, "animations": Array(frames.get_animation_names())}


static func _md5(data: PackedByteArray) -> String:
	var context := HashingContext.new()
	context.start(HashingContext.HASH_MD5)
	context.update(data)
	return context.finish().hex_encode()


static func _emit(record: Dictionary) -> void:
	print("SPARKY " + JSON.stringify(record))
