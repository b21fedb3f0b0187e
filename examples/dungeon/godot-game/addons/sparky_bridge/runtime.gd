extends Node
## Hot reload in the running game (Godot 4 autoload "SparkyBridge", debug builds only).
##
## Listens to `sparky-assets watch` like the editor plugin and reloads changed
## textures and SpriteFrames/AtlasTexture resources in place with
## ResourceLoader.load(path, "", CACHE_MODE_REPLACE), so every node that uses them
## shows the new frames without restarting the game. Emits assets_reloaded(paths).
##
## Invariants:
## - Does nothing in release builds (OS.is_debug_build() is false): exported games
##   never open a socket.
## - A PNG page is only reloaded once the editor has reimported it (the import's
##   source_md5 matches the file on disk), or after IMPORT_WAIT_MS, so the game never
##   reloads the previous import. Textures reload before the resources using them.
## - On a rescan (publisher restarted, messages lost) every resource the bridge has
##   seen in this session is reloaded, since a running game cannot scan folders.

signal assets_reloaded(paths: PackedStringArray)

const Subscriber := preload("subscriber.gd")
const ReloadPlanner := preload("reload_planner.gd")

const SETTING_ENDPOINT := "sparky_bridge/endpoint"
const SETTING_MAX_BYTES := "sparky_bridge/max_message_bytes"
const SETTING_MANAGED_DIR := "sparky_bridge/managed_dir"
const DEFAULT_ENDPOINT := "tcp://127.0.0.1:5557"
const DEFAULT_MAX_BYTES := 1048576
const IMPORT_WAIT_MS := 10000

var _subscriber: Subscriber
var _planner: ReloadPlanner
# Batches waiting for the editor's import: {"textures", "resources", "since_ms"}.
var _waiting: Array[Dictionary] = []


func _ready() -> void:
	if not OS.is_debug_build():
		set_process(false)
		return
	_subscriber = Subscriber.new()
	_subscriber.set_max_bytes(ProjectSettings.get_setting(SETTING_MAX_BYTES, DEFAULT_MAX_BYTES))
	_planner = ReloadPlanner.new()
	var managed: String = ProjectSettings.get_setting(SETTING_MANAGED_DIR, "res://")
	if managed.begins_with("res://"):
		_planner.managed_prefix = managed if managed.ends_with("/") else managed + "/"
	var endpoint: String = ProjectSettings.get_setting(SETTING_ENDPOINT, DEFAULT_ENDPOINT)
	var problem: String = _subscriber.start(endpoint, Time.get_ticks_msec())
	if problem != "":
		push_warning("SparkyBridge: %s; hot reload is off" % problem)
		set_process(false)


func _exit_tree() -> void:
	if _subscriber != null:
		_subscriber.stop()


func _process(_delta: float) -> void:
	var now := Time.get_ticks_msec()
	for event: Dictionary in _subscriber.poll(now):
		if event["kind"] == "message" and not event["ignored"]:
			_planner.offer(event)
		elif event["kind"] == "rejected":
			push_warning(
				"SparkyBridge: refused a message (%s): %s" % [event["error"], event["detail"]]
			)
	var plan: Variant = _planner.take(false)
	if plan != null:
		_queue(plan, now)
	_reload_ready_batches(now)


func _queue(plan: Dictionary, now: int) -> void:
	var textures: Array = plan["reimport"].duplicate()
	var resources: Array = plan["reload"].duplicate()
	if plan["scan"]:
		for path: String in _planner.known_reload_paths():
			var target: Array = textures if path.get_extension().to_lower() == "png" else resources
			if not target.has(path):
				target.append(path)
	if textures.size() + resources.size() > 0:
		_waiting.append({"textures": textures, "resources": resources, "since_ms": now})


func _reload_ready_batches(now: int) -> void:
	while _waiting.size() > 0:
		var batch: Dictionary = _waiting[0]
		var timed_out: bool = now - int(batch["since_ms"]) > IMPORT_WAIT_MS
		if not timed_out and not _all_imported(batch["textures"]):
			return
		_waiting.pop_front()
		var reloaded := PackedStringArray()
		for path: String in batch["textures"] + batch["resources"]:
			if ResourceLoader.exists(path):
				ResourceLoader.load(path, "", ResourceLoader.CACHE_MODE_REPLACE)
				reloaded.append(path)
		if reloaded.size() > 0:
			assets_reloaded.emit(reloaded)


func _all_imported(textures: Array) -> bool:
	for path: String in textures:
		if not _import_is_current(path):
			return false
	return true


# True when the editor's import of `path` was made from the bytes now on disk, or when
# there is nothing to wait for (no .import file: an exported game or a removed file).
static func _import_is_current(path: String) -> bool:
	var import_path := path + ".import"
	if not FileAccess.file_exists(import_path) or not FileAccess.file_exists(path):
		return true
	var import_config := ConfigFile.new()
	if import_config.load(import_path) != OK:
		return true
	var imported: String = import_config.get_value("remap", "path", "")
	if imported == "":
		var destinations: Array = import_config.get_value("deps", "dest_files", [])
		if destinations.is_empty():
			return true
		imported = destinations[0]
	# The editor keeps "<base>.md5" beside "<base>.ctex" (or "<base>.s3tc.ctex", ...),
	# where <base> ends with "-" and the 32 hex digits of the source path's MD5.
	var dash := imported.rfind("-")
	if dash == -1:
		return true
	var md5_path := imported.substr(0, dash + 33) + ".md5"
	var md5_text := FileAccess.get_file_as_string(md5_path)
	var source_md5 := ""
	for line in md5_text.split("\n"):
		if line.begins_with("source_md5="):
			source_md5 = line.trim_prefix("source_md5=").strip_edges().replace('"', "")
	return source_md5 != "" and source_md5 == FileAccess.get_md5(path)
