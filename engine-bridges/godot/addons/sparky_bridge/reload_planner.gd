# What the editor (and the running game) must reload for each message (Godot 3 and 4).
#
# Role: the editor plugin's decision logic, kept free of editor calls so it runs and
# is tested in a headless Godot 3. The plugin feeds it subscriber "message" events
# (offer) and, each frame, asks for a plan (take) saying which EditorFileSystem
# calls to make; the runtime autoload uses the same plans for ResourceLoader reloads.
#
# A plan is {"scan": bool, "update": [res:// paths], "reimport": [...],
# "first_import": [...], "reload": [...], "refused": [{"path", "reason"}]}:
# - update:       every changed file (added, modified, removed): update_file(path).
# - reimport:     added/modified textures (imported PNG pages): reimport_files(paths).
# - first_import: the added ones among them; reimport_files() is documented for
#                 files the editor already knows, so the editor scans for these.
# - reload:       added/modified resources that are not imported (SpriteFrames,
#                 AtlasTexture and TileSet .tres): reloaded in place (CACHE_MODE_REPLACE),
#                 so TileMapLayers using a TileSet draw the new tiles.
# - scan:         the publisher restarted or messages were lost: do a full scan
#                 instead of trusting individual messages (the specific lists are
#                 still given, for the runtime, which cannot scan).
#
# Invariants:
# - Only assets with target == "godot" whose engine_path lies inside managed_prefix
#   (default "res://", the whole project) and passes the protocol's path rules are
#   ever planned; every other godot asset is listed in "refused" with the reason.
#   Godot's own import cache (res://.godot/, res://.import/) is never touched.
# - While the editor is busy (scanning or importing) take() returns null and the
#   offers accumulate: one entry per path, the latest change wins, first-seen order
#   is kept, so the same file is never reimported twice for one burst.
# - Textures are listed before the resources that reference them.

const Protocol = preload("protocol.gd")

const GODOT_TARGET = "godot"
const CACHE_PREFIXES = ["res://.godot/", "res://.import/"]
const IMPORTED_KINDS = ["texture"]
const RELOADED_KINDS = ["sprite-frames", "atlas-texture", "tileset"]

var managed_prefix = "res://"
# Every managed path ever planned, for a runtime rescan (it cannot scan folders).
var known_paths = {}

var _scan = false
var _pending = {}
var _refused = []


# Why `engine_path` may not be touched by the bridge, or "" when it may.
func path_refusal(engine_path):
	if typeof(engine_path) != TYPE_STRING:
		return "has no engine_path"
	if not engine_path.begins_with(Protocol.GODOT_PREFIX):
		return "'%s' is outside res://" % engine_path
	var problem = Protocol.path_problem(
		engine_path.substr(Protocol.GODOT_PREFIX.length(), engine_path.length()), false
	)
	if problem != "":
		return "'%s' %s" % [engine_path, problem]
	if not engine_path.begins_with(managed_prefix):
		return "'%s' is outside %s" % [engine_path, managed_prefix]
	for prefix in CACHE_PREFIXES:
		if engine_path.begins_with(prefix):
			return "'%s' is in Godot's import cache" % engine_path
	return ""


# event: a subscriber "message" event.
func offer(event):
	if event["rescan"]:
		_scan = true
	if event["type"] != "assets-changed":
		return
	for asset in event["message"]["assets"]:
		if asset["target"] != GODOT_TARGET:
			continue
		var path = asset["engine_path"]
		var refusal = path_refusal(path)
		if refusal != "":
			_refused.append({"path": str(path), "reason": refusal})
			continue
		_pending[path] = asset
		known_paths[path] = asset["kind"]


func has_pending():
	return _scan or _pending.size() > 0 or _refused.size() > 0


# The plan to apply now, or null when there is nothing to do or the editor is busy.
func take(busy):
	if busy or not has_pending():
		return null
	var plan = {
		"scan": _scan,
		"update": [],
		"reimport": [],
		"first_import": [],
		"reload": [],
		"refused": _refused,
	}
	for path in _pending:
		var asset = _pending[path]
		plan["update"].append(path)
		if asset["change"] == "removed":
			continue
		var kind = asset["kind"]
		if IMPORTED_KINDS.has(kind) or path.get_extension().to_lower() == "png":
			plan["reimport"].append(path)
			if asset["change"] == "added":
				plan["first_import"].append(path)
		elif RELOADED_KINDS.has(kind) or path.get_extension().to_lower() == "tres":
			plan["reload"].append(path)
	_scan = false
	_pending = {}
	_refused = []
	return plan


# Every known managed path, textures first (the runtime's answer to a rescan).
func known_reload_paths():
	var textures = []
	var resources = []
	for path in known_paths:
		if IMPORTED_KINDS.has(known_paths[path]):
			textures.append(path)
		elif RELOADED_KINDS.has(known_paths[path]):
			resources.append(path)
	return textures + resources


# One build error as an editor line: "file:line:col: message [sprite s, stage x]".
static func format_build_error(error):
	var location = "sparky.toml"
	if typeof(error.get("file")) == TYPE_STRING:
		location = error["file"]
	if typeof(error.get("line")) == TYPE_INT:
		location += ":%d" % error["line"]
		if typeof(error.get("column")) == TYPE_INT:
			location += ":%d" % error["column"]
	var context = []
	if typeof(error.get("sprite")) == TYPE_STRING:
		context.append("sprite %s" % error["sprite"])
	if typeof(error.get("stage")) == TYPE_STRING:
		context.append("stage %s" % error["stage"])
	var line = "%s: %s" % [location, error.get("message", "")]
	if context.size() > 0:
		line += " [%s]" % _join(context, ", ")
	return line


static func _join(items, separator):
	var text = ""
	for index in range(items.size()):
		if index > 0:
			text += separator
		text += items[index]
	return text
