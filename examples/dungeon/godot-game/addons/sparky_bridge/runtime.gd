extends Node
## Hot reload in the running game (Godot 4 autoload "SparkyBridge", debug builds only).
##
## Listens to `sparky-assets watch` like the editor plugin and hands every message to
## runtime_reloader.gd, which reloads changed textures and SpriteFrames/AtlasTexture
## resources in place (CACHE_MODE_REPLACE). Emits assets_reloaded(paths) after each reload.
##
## Invariants:
## - Release builds never open a socket (OS.is_debug_build() is false), nor do web
##   exports (a browser has no raw TCP); receive() still works, for tests and tools.
## - This Node only wires the subscriber to the reloader; the decisions live in
##   runtime_reloader.gd and reload_planner.gd, which the tests run in Godot 4.6.

signal assets_reloaded(paths: PackedStringArray)

const Subscriber := preload("subscriber.gd")
const RuntimeReloader := preload("runtime_reloader.gd")
const BridgeSettings := preload("bridge_settings.gd")

var reloader: RuntimeReloader
var _subscriber: Subscriber


func _ready() -> void:
	var settings := BridgeSettings.read()
	reloader = RuntimeReloader.new(settings["managed_prefix"])
	if not OS.is_debug_build() or OS.has_feature("web"):
		set_process(false)
		return
	_subscriber = Subscriber.new()
	_subscriber.set_max_bytes(settings["max_bytes"])
	var problem: String = _subscriber.start(settings["endpoint"], Time.get_ticks_msec())
	if problem != "":
		push_warning("SparkyBridge: %s; hot reload is off" % problem)
		set_process(false)


func _exit_tree() -> void:
	if _subscriber != null:
		_subscriber.stop()


func _process(_delta: float) -> void:
	var now := Time.get_ticks_msec()
	receive(_subscriber.poll(now), now)


## Apply subscriber events (as Subscriber.poll returns them) and reload what is due.
func receive(events: Array, now_ms: int) -> PackedStringArray:
	for event: Dictionary in events:
		if event["kind"] == "rejected":
			push_warning(
				"SparkyBridge: refused a message (%s): %s" % [event["error"], event["detail"]]
			)
		reloader.offer(event)
	var reloaded := reloader.reload_ready(now_ms)
	if reloaded.size() > 0:
		assets_reloaded.emit(reloaded)
	return reloaded
