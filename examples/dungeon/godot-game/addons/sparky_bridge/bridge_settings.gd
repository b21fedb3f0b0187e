extends RefCounted
## The bridge's project settings (Godot 4): names, defaults, declaration and reading.
##
## Shared by the editor plugin (which declares them, so they show under Project Settings)
## and the runtime autoload (which only reads them). No editor classes: runs anywhere.

const ENDPOINT := "sparky_bridge/endpoint"
const MAX_BYTES := "sparky_bridge/max_message_bytes"
const MANAGED_DIR := "sparky_bridge/managed_dir"
const DEFAULT_ENDPOINT := "tcp://127.0.0.1:5557"
const DEFAULT_MAX_BYTES := 1048576
const DEFAULT_MANAGED_DIR := "res://"


## {"endpoint": String, "max_bytes": int, "managed_prefix": "res://…/"} from ProjectSettings.
static func read() -> Dictionary:
	return {
		"endpoint": String(ProjectSettings.get_setting(ENDPOINT, DEFAULT_ENDPOINT)),
		"max_bytes": int(ProjectSettings.get_setting(MAX_BYTES, DEFAULT_MAX_BYTES)),
		"managed_prefix":
		managed_prefix(ProjectSettings.get_setting(MANAGED_DIR, DEFAULT_MANAGED_DIR)),
	}


## The managed folder as a prefix ending in "/"; anything outside res:// falls back to res://.
static func managed_prefix(managed: Variant) -> String:
	var text := String(managed) if managed is String else DEFAULT_MANAGED_DIR
	if not text.begins_with("res://"):
		text = DEFAULT_MANAGED_DIR
	return text if text.ends_with("/") else text + "/"


## Declare the settings (type, range, default) so the editor lists them as basic settings.
static func define() -> void:
	_define(ENDPOINT, DEFAULT_ENDPOINT, TYPE_STRING, PROPERTY_HINT_NONE, "")
	_define(MAX_BYTES, DEFAULT_MAX_BYTES, TYPE_INT, PROPERTY_HINT_RANGE, "1024,67108864")
	_define(MANAGED_DIR, DEFAULT_MANAGED_DIR, TYPE_STRING, PROPERTY_HINT_DIR, "")


static func _define(
	setting: String, default_value: Variant, type: int, hint: int, hint_string: String
) -> void:
	if not ProjectSettings.has_setting(setting):
		ProjectSettings.set_setting(setting, default_value)
	ProjectSettings.set_initial_value(setting, default_value)
	ProjectSettings.add_property_info(
		{"name": setting, "type": type, "hint": hint, "hint_string": hint_string}
	)
	ProjectSettings.set_as_basic(setting, true)
