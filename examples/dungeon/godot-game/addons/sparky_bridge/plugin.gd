@tool
extends EditorPlugin
## sparky-assets hot reload in the Godot 4 editor (4.2 or newer).
##
## Subscribes to `sparky-assets watch` (protocol v1, docs/protocol.md) through the
## version-neutral core (subscriber.gd) and applies what reload_planner.gd decides:
## update_file() for every changed file, reimport_files() for changed textures, an
## in-place reload of changed SpriteFrames/AtlasTexture resources, and a full scan()
## when the publisher restarted or messages were lost. The editor does not reimport
## while it is unfocused (godot-proposals #9520), so the plugin asks for it itself.
##
## Invariants:
## - Never touches a file outside res:// (or the sparky_bridge/managed_dir setting);
##   refused paths are reported as warnings.
## - While the editor scans or imports, plans wait (the planner queues and merges them).
## - A failed build prints one `file:line:col: message` error per problem and shows a
##   toast where the editor has a toaster (Godot 4.3+).
## - Enabling the plugin registers the runtime autoload (runtime.gd) as SparkyBridge.

const Subscriber := preload("subscriber.gd")
const ReloadPlanner := preload("reload_planner.gd")
const BridgeStatus := preload("bridge_status.gd")

const SETTING_ENDPOINT := "sparky_bridge/endpoint"
const SETTING_MAX_BYTES := "sparky_bridge/max_message_bytes"
const SETTING_MANAGED_DIR := "sparky_bridge/managed_dir"
const DEFAULT_ENDPOINT := "tcp://127.0.0.1:5557"
const DEFAULT_MAX_BYTES := 1048576
const DEFAULT_MANAGED_DIR := "res://"
const AUTOLOAD_NAME := "SparkyBridge"
const TOAST_SEVERITY_ERROR := 2
const COLOR_OK := Color(0.45, 0.85, 0.45)
const COLOR_ERROR := Color(1.0, 0.45, 0.4)
const COLOR_OFFLINE := Color(0.7, 0.7, 0.7)

var _subscriber: Subscriber
var _planner: ReloadPlanner
var _status: BridgeStatus
var _button: Button
var _endpoint := ""
var _max_bytes := DEFAULT_MAX_BYTES
var _shown_label := ""
var _applying := false


func _get_plugin_name() -> String:
	return "Sparky Bridge"


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD_NAME, _addon_dir().path_join("runtime.gd"))


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD_NAME)


func _enter_tree() -> void:
	_define_settings()
	_button = Button.new()
	_button.flat = true
	_button.focus_mode = Control.FOCUS_NONE
	_button.pressed.connect(_on_status_pressed)
	add_control_to_container(CONTAINER_TOOLBAR, _button)
	if ProjectSettings.has_signal("settings_changed"):
		ProjectSettings.connect("settings_changed", _on_settings_changed)
	_start_subscriber()
	set_process(true)


func _exit_tree() -> void:
	set_process(false)
	if ProjectSettings.has_signal("settings_changed"):
		ProjectSettings.disconnect("settings_changed", _on_settings_changed)
	if _subscriber != null:
		_subscriber.stop()
	if _button != null:
		remove_control_from_container(CONTAINER_TOOLBAR, _button)
		_button.queue_free()
		_button = null


func _process(_delta: float) -> void:
	for event: Dictionary in _subscriber.poll(Time.get_ticks_msec()):
		_handle_event(event)
	_apply_plan()
	_refresh_status()


# ------------------------------------------------------------------- settings


func _define_settings() -> void:
	_define_setting(SETTING_ENDPOINT, DEFAULT_ENDPOINT, TYPE_STRING, PROPERTY_HINT_NONE, "")
	_define_setting(
		SETTING_MAX_BYTES, DEFAULT_MAX_BYTES, TYPE_INT, PROPERTY_HINT_RANGE, "1024,67108864"
	)
	_define_setting(SETTING_MANAGED_DIR, DEFAULT_MANAGED_DIR, TYPE_STRING, PROPERTY_HINT_DIR, "")


func _define_setting(
	setting: String, default_value: Variant, type: int, hint: int, hint_string: String
) -> void:
	if not ProjectSettings.has_setting(setting):
		ProjectSettings.set_setting(setting, default_value)
	ProjectSettings.set_initial_value(setting, default_value)
	ProjectSettings.add_property_info(
		{"name": setting, "type": type, "hint": hint, "hint_string": hint_string}
	)
	ProjectSettings.set_as_basic(setting, true)


func _on_settings_changed() -> void:
	var endpoint: String = ProjectSettings.get_setting(SETTING_ENDPOINT, DEFAULT_ENDPOINT)
	var max_bytes: int = ProjectSettings.get_setting(SETTING_MAX_BYTES, DEFAULT_MAX_BYTES)
	if endpoint != _endpoint or max_bytes != _max_bytes:
		_start_subscriber()
	else:
		_planner.managed_prefix = _managed_prefix()


func _managed_prefix() -> String:
	var managed: String = ProjectSettings.get_setting(SETTING_MANAGED_DIR, DEFAULT_MANAGED_DIR)
	if not managed.begins_with("res://"):
		managed = DEFAULT_MANAGED_DIR
	if not managed.ends_with("/"):
		managed += "/"
	return managed


# ----------------------------------------------------------------- subscriber


func _start_subscriber() -> void:
	if _subscriber != null:
		_subscriber.stop()
	_subscriber = Subscriber.new()
	_planner = ReloadPlanner.new()
	_planner.managed_prefix = _managed_prefix()
	_status = BridgeStatus.new()
	_endpoint = ProjectSettings.get_setting(SETTING_ENDPOINT, DEFAULT_ENDPOINT)
	_max_bytes = ProjectSettings.get_setting(SETTING_MAX_BYTES, DEFAULT_MAX_BYTES)
	_subscriber.set_max_bytes(_max_bytes)
	_status.endpoint = _endpoint
	var problem: String = _subscriber.start(_endpoint, Time.get_ticks_msec())
	if problem != "":
		push_error("sparky_bridge: %s (Project Settings > %s)" % [problem, SETTING_ENDPOINT])
		_status.last_problem = problem


func _handle_event(event: Dictionary) -> void:
	_status.apply(event)
	var kind: String = event["kind"]
	if kind == "rejected":
		push_warning(
			(
				"sparky_bridge: refused a %s message (%s): %s"
				% [event["topic"], event["error"], event["detail"]]
			)
		)
	elif kind == "message" and not event["ignored"]:
		_planner.offer(event)
		if event["type"] == "build-failed":
			_report_build_errors(event["message"])


func _report_build_errors(message: Dictionary) -> void:
	var lines := PackedStringArray()
	for error: Dictionary in message["errors"]:
		var line: String = ReloadPlanner.format_build_error(error)
		lines.append(line)
		push_error(line)
	if EditorInterface.has_method("get_editor_toaster"):
		var toaster: Object = EditorInterface.call("get_editor_toaster")
		if toaster != null and toaster.has_method("push_toast"):
			toaster.call(
				"push_toast",
				"sparky-assets: build #%d failed (%d errors)" % [message["build"], lines.size()],
				TOAST_SEVERITY_ERROR,
				"\n".join(lines)
			)


# ------------------------------------------------------------------ reloading


func _editor_busy(filesystem: EditorFileSystem) -> bool:
	if filesystem.is_scanning():
		return true
	return filesystem.has_method("is_importing") and filesystem.call("is_importing")


func _apply_plan() -> void:
	# reimport_files() blocks but keeps iterating the main loop (progress bar), so
	# _process() runs again inside it: messages are still received and queued, and
	# the next plan waits until this one is done.
	if _applying:
		return
	var filesystem := EditorInterface.get_resource_filesystem()
	var plan: Variant = _planner.take(_editor_busy(filesystem))
	if plan == null:
		return
	_applying = true
	for refused: Dictionary in plan["refused"]:
		push_warning("sparky_bridge: not touching %s: %s" % [refused["path"], refused["reason"]])
	for path: String in plan["update"]:
		filesystem.update_file(path)
	if plan["scan"] or plan["first_import"].size() > 0:
		# Publisher restarted, messages lost, or new files to import for the first
		# time: a scan imports new and changed files and reloads changed resources.
		filesystem.scan()
	else:
		if plan["reimport"].size() > 0:
			filesystem.reimport_files(PackedStringArray(plan["reimport"]))
		for path: String in plan["reload"]:
			if ResourceLoader.has_cached(path) and FileAccess.file_exists(path):
				ResourceLoader.load(path, "", ResourceLoader.CACHE_MODE_REPLACE)
	_applying = false


# --------------------------------------------------------------------- status


func _refresh_status() -> void:
	var label: String = _status.label_text()
	var tooltip: String = _status.tooltip_text() + "\n(click: reconnect and rescan)"
	if label == _shown_label and tooltip == _button.tooltip_text:
		return
	_shown_label = label
	_button.text = label
	_button.tooltip_text = tooltip
	var color := COLOR_OFFLINE
	if _status.connected:
		color = COLOR_OK if _status.error_count == 0 else COLOR_ERROR
	_button.add_theme_color_override("font_color", color)


func _on_status_pressed() -> void:
	_subscriber.client.reconnect("reconnect requested", Time.get_ticks_msec())
	_subscriber.tracker.reset()
	EditorInterface.get_resource_filesystem().scan()


func _addon_dir() -> String:
	return (get_script() as Script).resource_path.get_base_dir()
