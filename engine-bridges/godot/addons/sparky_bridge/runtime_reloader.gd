extends RefCounted
## What the running game reloads, and when (Godot 4, no editor API).
##
## Role: the runtime autoload's logic, kept out of the Node so tests drive it with decoded
## messages in-process. offer() takes subscriber "message" events; reload_ready(now_ms)
## reloads what is due with ResourceLoader.load(path, "", CACHE_MODE_REPLACE) and returns
## the paths it reloaded. CACHE_MODE_REPLACE refreshes the cached resources in place, so
## every node holding a SpriteFrames/AtlasTexture shows the new frames without a restart.
##
## Invariants:
## - A PNG page is only reloaded once the editor has reimported it (its import's
##   source_md5 matches the file on disk), or after IMPORT_WAIT_MS, so the game never
##   reloads the previous import. Textures reload before the resources that use them.
## - Batches reload in arrival order; a batch waits for its own textures only.
## - On a rescan (publisher restarted, messages lost) every resource the bridge has seen in
##   this session is reloaded, since a running game cannot scan folders.
## - Only what the reload planner accepts (res:// inside the managed folder) is touched.

const ReloadPlanner := preload("reload_planner.gd")

const IMPORT_WAIT_MS := 10000

var planner := ReloadPlanner.new()
# Batches waiting for the editor's import: {"textures", "resources", "since_ms"}.
var _waiting: Array[Dictionary] = []


func _init(managed_prefix: String = "res://") -> void:
	planner.managed_prefix = managed_prefix


## Take one subscriber event; only valid, non-ignored messages matter here.
func offer(event: Dictionary) -> void:
	if event["kind"] == "message" and not event["ignored"]:
		planner.offer(event)


## Reload every batch whose textures are imported (or waited for long enough).
func reload_ready(now_ms: int) -> PackedStringArray:
	var plan: Variant = planner.take(false)
	if plan != null:
		_queue(plan, now_ms)
	var reloaded := PackedStringArray()
	while _waiting.size() > 0:
		var batch: Dictionary = _waiting[0]
		var timed_out: bool = now_ms - int(batch["since_ms"]) > IMPORT_WAIT_MS
		if not timed_out and not _all_imported(batch["textures"]):
			break
		_waiting.pop_front()
		for path: String in batch["textures"] + batch["resources"]:
			if ResourceLoader.exists(path):
				ResourceLoader.load(path, "", ResourceLoader.CACHE_MODE_REPLACE)
				reloaded.append(path)
	return reloaded


func waiting_batches() -> int:
	return _waiting.size()


func _queue(plan: Dictionary, now_ms: int) -> void:
	var textures: Array = plan["reimport"].duplicate()
	var resources: Array = plan["reload"].duplicate()
	if plan["scan"]:
		for path: String in planner.known_reload_paths():
			var target: Array = textures if path.get_extension().to_lower() == "png" else resources
			if not target.has(path):
				target.append(path)
	if textures.size() + resources.size() > 0:
		_waiting.append({"textures": textures, "resources": resources, "since_ms": now_ms})


func _all_imported(textures: Array) -> bool:
	for path: String in textures:
		if not import_is_current(path):
			return false
	return true


## True when the editor's import of `path` was made from the bytes now on disk, or when
## there is nothing to wait for (no .import file: an exported game or a removed file).
static func import_is_current(path: String) -> bool:
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
