extends RefCounted
## Everything the editor plugin does that needs no editor: the plugin's logic (Godot 4).
##
## Role: own the subscriber, reload planner and status; turn messages into calls on the
## editor's file system and into problems to report. plugin.gd only forwards the editor's
## EditorFileSystem, prints the reports, shows toasts and paints the status button, so this
## file is what the tests run in the Godot 4.6 runtime (with a recording stand-in for
## EditorFileSystem, which only exists in an editor).
##
## `filesystem` is any object with update_file(path), scan() and
## reimport_files(PackedStringArray): the editor's EditorFileSystem in the plugin.
##
## Invariants:
## - Never touches a file outside res:// (or the managed folder); refused paths are reported
##   as warnings.
## - While the editor scans or imports (busy), plans wait: the planner queues and merges them.
## - A failed build gives one `file:line:col: message` error per problem and one toast.
## - reimport_files() blocks but keeps iterating the main loop, so poll()/apply_plan() can
##   run again inside it: a second plan waits until the first is applied.

const Subscriber := preload("subscriber.gd")
const ReloadPlanner := preload("reload_planner.gd")
const BridgeStatus := preload("bridge_status.gd")

var subscriber: Subscriber
var planner: ReloadPlanner
var status: BridgeStatus
var settings := {}
# Problems for the plugin to print: {"level": "error" | "warning", "text": String}.
var reports: Array[Dictionary] = []
# Build failures for the editor's toaster: {"text": String, "detail": String}.
var toasts: Array[Dictionary] = []
var _applying := false


## (Re)start with {"endpoint", "max_bytes", "managed_prefix"} (bridge_settings.gd read()).
func start(new_settings: Dictionary, now_ms: int) -> void:
	configure(new_settings)
	var problem: String = subscriber.start(settings["endpoint"], now_ms)
	if problem != "":
		_report("error", "sparky_bridge: %s (Project Settings > sparky_bridge/endpoint)" % problem)
		status.last_problem = problem


## Fresh subscriber, planner and status for these settings, without connecting (tests
## feed messages through handle_events instead).
func configure(new_settings: Dictionary) -> void:
	if subscriber != null:
		subscriber.stop()
	settings = new_settings.duplicate()
	subscriber = Subscriber.new()
	planner = ReloadPlanner.new()
	planner.managed_prefix = settings["managed_prefix"]
	status = BridgeStatus.new()
	status.endpoint = settings["endpoint"]
	subscriber.set_max_bytes(settings["max_bytes"])


## New settings: restart when the connection changes, else only move the managed folder.
func update_settings(new_settings: Dictionary, now_ms: int) -> void:
	if (
		new_settings["endpoint"] != settings.get("endpoint")
		or new_settings["max_bytes"] != settings.get("max_bytes")
	):
		start(new_settings, now_ms)
	else:
		settings = new_settings.duplicate()
		planner.managed_prefix = settings["managed_prefix"]


func stop() -> void:
	if subscriber != null:
		subscriber.stop()


## Read the socket and handle what arrived.
func poll(now_ms: int) -> void:
	handle_events(subscriber.poll(now_ms))


## Handle subscriber events (as Subscriber.poll or decode_frames return them).
func handle_events(events: Array) -> void:
	for event: Dictionary in events:
		status.apply(event)
		var kind: String = event["kind"]
		if kind == "rejected":
			_report(
				"warning",
				(
					"sparky_bridge: refused a %s message (%s): %s"
					% [event["topic"], event["error"], event["detail"]]
				)
			)
		elif kind == "message" and not event["ignored"]:
			planner.offer(event)
			if event["type"] == "build-failed":
				_build_failed(event["message"])


## Apply the pending plan to `filesystem` unless the editor is busy; true if one was applied.
func apply_plan(filesystem: Object, busy: bool) -> bool:
	if _applying:
		return false
	var plan: Variant = planner.take(busy)
	if plan == null:
		return false
	_applying = true
	for refused: Dictionary in plan["refused"]:
		_report(
			"warning", "sparky_bridge: not touching %s: %s" % [refused["path"], refused["reason"]]
		)
	for path: String in plan["update"]:
		filesystem.update_file(path)
	if plan["scan"] or plan["first_import"].size() > 0:
		# Publisher restarted, messages lost, or new files to import for the first time:
		# a scan imports new and changed files and reloads changed resources.
		filesystem.scan()
	else:
		if plan["reimport"].size() > 0:
			filesystem.reimport_files(PackedStringArray(plan["reimport"]))
		for path: String in plan["reload"]:
			if ResourceLoader.has_cached(path) and FileAccess.file_exists(path):
				ResourceLoader.load(path, "", ResourceLoader.CACHE_MODE_REPLACE)
	_applying = false
	return true


## The status button was clicked: reconnect now and rescan everything.
func reconnect(filesystem: Object, now_ms: int) -> void:
	subscriber.client.reconnect("reconnect requested", now_ms)
	subscriber.tracker.reset()
	filesystem.scan()


## The reports and toasts collected since the last call (the plugin prints them).
func take_reports() -> Array[Dictionary]:
	var taken := reports
	reports = []
	return taken


func take_toasts() -> Array[Dictionary]:
	var taken := toasts
	toasts = []
	return taken


func _build_failed(message: Dictionary) -> void:
	var lines := PackedStringArray()
	for error: Dictionary in message["errors"]:
		var line: String = ReloadPlanner.format_build_error(error)
		lines.append(line)
		_report("error", line)
	var text := "sparky-assets: build #%d failed (%d errors)" % [message["build"], lines.size()]
	toasts.append({"text": text, "detail": "\n".join(lines)})


func _report(level: String, text: String) -> void:
	reports.append({"level": level, "text": text})
