@tool
extends EditorPlugin
## sparky-assets hot reload in the Godot 4 editor (4.2 or newer): the editor-only shell.
##
## Everything that can run without an editor lives in editor_session.gd (subscriber,
## reload planning, build-error reports), which the tests run in the Godot 4.6 runtime.
## This file only does what needs the editor: declare the settings, add the toolbar
## button, hand EditorFileSystem to the session each frame, print its reports, show
## toasts, and register the runtime autoload when the plugin is enabled. What only an
## editor session can check is listed in engine-bridges/godot/README.md.

const EditorSession := preload("editor_session.gd")
const BridgeSettings := preload("bridge_settings.gd")

const AUTOLOAD_NAME := "SparkyBridge"
const TOAST_SEVERITY_ERROR := 2
const COLOR_OK := Color(0.45, 0.85, 0.45)
const COLOR_ERROR := Color(1.0, 0.45, 0.4)
const COLOR_OFFLINE := Color(0.7, 0.7, 0.7)

var _session := EditorSession.new()
var _button: Button
var _shown := ""


func _get_plugin_name() -> String:
	return "Sparky Bridge"


func _enable_plugin() -> void:
	var addon_dir := (get_script() as Script).resource_path.get_base_dir()
	add_autoload_singleton(AUTOLOAD_NAME, addon_dir.path_join("runtime.gd"))


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD_NAME)


func _enter_tree() -> void:
	BridgeSettings.define()
	_button = Button.new()
	_button.flat = true
	_button.focus_mode = Control.FOCUS_NONE
	_button.pressed.connect(_on_status_pressed)
	add_control_to_container(CONTAINER_TOOLBAR, _button)
	if ProjectSettings.has_signal("settings_changed"):
		ProjectSettings.connect("settings_changed", _on_settings_changed)
	_session.start(BridgeSettings.read(), Time.get_ticks_msec())
	set_process(true)


func _exit_tree() -> void:
	set_process(false)
	if ProjectSettings.has_signal("settings_changed"):
		ProjectSettings.disconnect("settings_changed", _on_settings_changed)
	_session.stop()
	if _button != null:
		remove_control_from_container(CONTAINER_TOOLBAR, _button)
		_button.queue_free()
		_button = null


func _process(_delta: float) -> void:
	var filesystem := EditorInterface.get_resource_filesystem()
	_session.poll(Time.get_ticks_msec())
	var busy := filesystem.is_scanning()
	if filesystem.has_method("is_importing"):
		busy = busy or filesystem.call("is_importing")
	_session.apply_plan(filesystem, busy)
	for report: Dictionary in _session.take_reports():
		if report["level"] == "error":
			push_error(report["text"])
		else:
			push_warning(report["text"])
	for toast: Dictionary in _session.take_toasts():
		_show_toast(toast)
	_refresh_status()


func _show_toast(toast: Dictionary) -> void:
	if not EditorInterface.has_method("get_editor_toaster"):  # Godot 4.3+
		return
	var toaster: Object = EditorInterface.call("get_editor_toaster")
	if toaster != null and toaster.has_method("push_toast"):
		toaster.call("push_toast", toast["text"], TOAST_SEVERITY_ERROR, toast["detail"])


func _on_settings_changed() -> void:
	_session.update_settings(BridgeSettings.read(), Time.get_ticks_msec())


func _on_status_pressed() -> void:
	_session.reconnect(EditorInterface.get_resource_filesystem(), Time.get_ticks_msec())


func _refresh_status() -> void:
	var status := _session.status
	var label: String = status.label_text()
	var tooltip: String = status.tooltip_text() + "\n(click: reconnect and rescan)"
	if label + tooltip == _shown:
		return
	_shown = label + tooltip
	_button.text = label
	_button.tooltip_text = tooltip
	var color := COLOR_OFFLINE
	if status.connected:
		color = COLOR_OK if status.error_count == 0 else COLOR_ERROR
	_button.add_theme_color_override("font_color", color)
