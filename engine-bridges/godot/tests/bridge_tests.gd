# The bridge core's tests, version-neutral: run by tests/run_tests.gd in a headless
# Godot 3 and by tests/run_tests_godot4.gd in the Godot 4.6 runtime.
#
# Like the core itself, this file has no `extends`, no typed syntax and no API that only
# one engine has (the entry scripts do the file reading and quitting). Every result is
# one stdout line "SPARKY <json>":
#   run_unit()                  {"test": name, "ok": bool, "detail": str} per check
#   run_decode(text, bytes)     {"case": name, "ok": ...} per case, then the timing
# Godot 3 and 4 share what is compared: tests/bridge_cases.py.

const Protocol = preload("res://addons/sparky_bridge/protocol.gd")
const MsgpackDecoder = preload("res://addons/sparky_bridge/msgpack_decoder.gd")
const SessionTracker = preload("res://addons/sparky_bridge/session_tracker.gd")
const ReloadPlanner = preload("res://addons/sparky_bridge/reload_planner.gd")
const BridgeStatus = preload("res://addons/sparky_bridge/bridge_status.gd")
const ZmtpClient = preload("res://addons/sparky_bridge/zmtp_client.gd")


func emit(record):
	print("SPARKY " + json_text(record, {}))


# Microseconds since start: the Time singleton in Godot 4 (and 3.5+), OS in older 3.x.
static func ticks_usec():
	if Engine.has_singleton("Time"):
		return Engine.get_singleton("Time").get_ticks_usec()
	return OS.call("get_ticks_usec")


# ------------------------------------------------------------------- decode


# Decode every case: `cases_text` holds one case per line (name \t topic hex \t
# max_bytes \t offset \t length), `blob` every case's body.
func run_decode(cases_text, blob_bytes):
	var blob = StreamPeerBuffer.new()
	blob.data_array = blob_bytes
	var protocol = Protocol.new()
	var started = ticks_usec()
	var count = 0
	var decode_us = 0
	for line in cases_text.split("\n"):
		if line == "":
			continue
		var fields = line.split("\t")
		var topic = _hex_bytes(fields[1])
		protocol.max_bytes = int(fields[2])
		var body = StreamPeerBuffer.new().data_array
		var length = int(fields[4])
		if length > 0:
			blob.seek(int(fields[3]))
			body = blob.get_data(length)[1]
		var decode_started = ticks_usec()
		var result = protocol.decode(topic, body)
		decode_us += ticks_usec() - decode_started
		count += 1
		if result["ok"]:
			var nul_strings = protocol._nul_strings
			_emit_raw(
				(
					'{"case": %s, "ok": true, "type": %s, "ignored": %s, "decoded": %s}'
					% [
						json_text(fields[0], {}),
						json_text(result["type"], nul_strings),
						json_text(result["ignored"], {}),
						json_text(result["message"], nul_strings),
					]
				)
			)
		else:
			emit(
				{
					"case": fields[0],
					"ok": false,
					"error": result["error"],
					"detail": result["detail"],
				}
			)
	emit(
		{
			"decoded_cases": count,
			"elapsed_us": ticks_usec() - started,
			"decode_us": decode_us,
		}
	)


func _emit_raw(text):
	print("SPARKY " + text)


static func _hex_bytes(hex):
	var buffer = StreamPeerBuffer.new()
	for index in range(0, hex.length(), 2):
		buffer.put_u8(("0x" + hex.substr(index, 2)).hex_to_int())
	return buffer.data_array


# --------------------------------------------------------------------- unit


func _check(test, condition, detail):
	emit({"test": test, "ok": condition, "detail": str(detail)})


func run_unit():
	_unit_session_tracker()
	_unit_planner()
	_unit_build_errors()
	_unit_status()
	_unit_endpoint()
	_unit_frames()


func _unit_session_tracker():
	var tracker = SessionTracker.new()
	_check("tracker/first-message-rescans", tracker.observe("a", 5), tracker.reason)
	_check("tracker/next-seq-trusted", not tracker.observe("a", 6), tracker.reason)
	_check("tracker/gap-rescans", tracker.observe("a", 8), tracker.reason)
	_check("tracker/duplicate-rescans", tracker.observe("a", 8), tracker.reason)
	_check("tracker/new-session-rescans", tracker.observe("b", 9), tracker.reason)
	_check("tracker/new-session-then-trusted", not tracker.observe("b", 10), tracker.reason)
	_check("tracker/counts-rescans", tracker.rescans == 4, tracker.rescans)


static func _asset(target, engine_path, kind, change):
	return {
		"target": target,
		"path": "x",
		"engine_path": engine_path,
		"kind": kind,
		"change": change,
		"hash": "",
		"sprites": [],
		"atlas": null,
	}


static func _assets_event(assets, rescan):
	return {
		"kind": "message",
		"type": "assets-changed",
		"rescan": rescan,
		"ignored": false,
		"message": {"assets": assets, "seq": 2, "session": "s", "project": "p"},
	}


func _unit_planner():
	var planner = ReloadPlanner.new()
	_check("planner/nothing-pending", planner.take(false) == null, "")
	planner.offer(
		_assets_event(
			[
				_asset("godot", "res://sprites/chars_0.png", "texture", "modified"),
				_asset("godot", "res://sprites/hero.tres", "sprite-frames", "modified"),
				_asset("godot", "res://sprites/coin.tres", "atlas-texture", "added"),
				_asset("godot", "res://sprites/old.tres", "sprite-frames", "removed"),
				_asset("bevy", "sprites/chars_0.png", "texture", "modified"),
				_asset("sheets", "chars_0.png", "texture", "modified"),
			],
			false
		)
	)
	var plan = planner.take(false)
	_check(
		"planner/update-every-godot-file",
		(
			plan["update"]
			== [
				"res://sprites/chars_0.png",
				"res://sprites/hero.tres",
				"res://sprites/coin.tres",
				"res://sprites/old.tres",
			]
		),
		plan
	)
	_check("planner/reimport-textures", plan["reimport"] == ["res://sprites/chars_0.png"], plan)
	_check(
		"planner/reload-resources",
		plan["reload"] == ["res://sprites/hero.tres", "res://sprites/coin.tres"],
		plan
	)
	_check("planner/no-scan-when-trusted", plan["scan"] == false, plan)
	_check("planner/modified-texture-no-first-import", plan["first_import"] == [], plan)
	_check("planner/plan-taken-once", planner.take(false) == null, "")

	# Busy editor: offers queue up, the latest change per path wins, order kept.
	planner.offer(
		_assets_event([_asset("godot", "res://sprites/a.png", "texture", "modified")], false)
	)
	_check("planner/queued-while-busy", planner.take(true) == null, "")
	planner.offer(
		_assets_event(
			[
				_asset("godot", "res://sprites/b.png", "texture", "added"),
				_asset("godot", "res://sprites/a.png", "texture", "removed"),
			],
			false
		)
	)
	_check("planner/still-busy", planner.take(true) == null, "")
	plan = planner.take(false)
	_check(
		"planner/queue-merged",
		(
			plan["update"] == ["res://sprites/a.png", "res://sprites/b.png"]
			and plan["reimport"] == ["res://sprites/b.png"]
		),
		plan
	)
	_check("planner/added-texture-first-import", plan["first_import"] == ["res://sprites/b.png"], plan)

	# Rescan: full scan, the message's files still listed for the runtime.
	planner.offer(
		_assets_event([_asset("godot", "res://sprites/c.png", "texture", "modified")], true)
	)
	plan = planner.take(false)
	_check("planner/rescan-scans", plan["scan"] == true, plan)
	_check("planner/rescan-keeps-files", plan["reimport"] == ["res://sprites/c.png"], plan)
	planner.offer(
		{
			"kind": "message",
			"type": "hello",
			"rescan": true,
			"ignored": false,
			"message": {"seq": 1, "session": "t", "project": "p"},
		}
	)
	plan = planner.take(false)
	_check("planner/hello-rescan-scans", plan != null and plan["scan"] == true, plan)

	# Paths outside the project are refused, never planned.
	planner.offer(
		_assets_event(
			[
				_asset("godot", "/etc/passwd", "texture", "modified"),
				_asset("godot", "user://x.png", "texture", "modified"),
				_asset("godot", "res://../x.png", "texture", "modified"),
				_asset("godot", "res://.godot/imported/x.ctex", "texture", "modified"),
				_asset("godot", null, "texture", "modified"),
				_asset("godot", "res://ok.png", "texture", "modified"),
			],
			false
		)
	)
	plan = planner.take(false)
	_check("planner/refuses-outside", plan["refused"].size() == 5, plan)
	_check("planner/keeps-inside", plan["update"] == ["res://ok.png"], plan)
	planner.managed_prefix = "res://sprites/"
	_check(
		"planner/managed-prefix",
		(
			planner.path_refusal("res://other/x.png") != ""
			and planner.path_refusal("res://sprites/x.png") == ""
		),
		planner.path_refusal("res://other/x.png")
	)
	planner.offer(
		_assets_event([_asset("godot", "res://sprites/dungeon.tres", "tileset", "modified")], false)
	)
	var tileset_plan = planner.take(false)
	_check(
		"planner/reload-tilesets",
		tileset_plan["reload"] == ["res://sprites/dungeon.tres"],
		tileset_plan
	)
	_check(
		"planner/known-paths-keep-tilesets",
		planner.known_reload_paths().has("res://sprites/dungeon.tres"),
		planner.known_reload_paths()
	)
	_check(
		"planner/known-paths-textures-first",
		planner.known_reload_paths()[0].ends_with(".png"),
		planner.known_reload_paths()
	)


func _unit_build_errors():
	var full = {
		"file": "sparky.toml",
		"line": 12,
		"column": 5,
		"sprite": "hero",
		"stage": "manifest",
		"message": "unknown palette 'endesga32'",
	}
	_check(
		"errors/full",
		(
			ReloadPlanner.format_build_error(full)
			== "sparky.toml:12:5: unknown palette 'endesga32' [sprite hero, stage manifest]"
		),
		ReloadPlanner.format_build_error(full)
	)
	var bare = {
		"file": "art/hero.png",
		"line": null,
		"column": null,
		"sprite": null,
		"stage": null,
		"message": "cannot read",
	}
	_check(
		"errors/no-line",
		ReloadPlanner.format_build_error(bare) == "art/hero.png: cannot read",
		ReloadPlanner.format_build_error(bare)
	)


func _unit_status():
	var status = BridgeStatus.new()
	_check("status/offline", status.label_text() == "Sparky: offline", status.label_text())
	status.apply({"kind": "connected", "handshake_ms": 1})
	_check("status/connected", status.label_text() == "Sparky: connected", status.label_text())
	var common = {"seq": 1, "session": "s", "project": "dungeon"}
	var started = common.duplicate()
	started["build"] = 3
	status.apply({"kind": "message", "type": "build-started", "ignored": false, "message": started})
	_check("status/building", status.label_text() == "Sparky: building #3", status.label_text())
	var failed = common.duplicate()
	failed["build"] = 3
	failed["errors"] = [{}, {}]
	status.apply({"kind": "message", "type": "build-failed", "ignored": false, "message": failed})
	var finished = common.duplicate()
	finished["build"] = 3
	finished["ok"] = false
	status.apply(
		{"kind": "message", "type": "build-finished", "ignored": false, "message": finished}
	)
	_check(
		"status/failed",
		status.label_text() == "Sparky: build #3 failed (2 errors)",
		status.label_text()
	)
	finished["build"] = 4
	finished["ok"] = true
	status.apply(
		{"kind": "message", "type": "build-finished", "ignored": false, "message": finished}
	)
	_check("status/ok", status.label_text() == "Sparky: build #4 ok", status.label_text())
	status.apply({"kind": "disconnected", "reason": "gone"})
	_check("status/offline-again", status.label_text() == "Sparky: offline", status.label_text())
	_check("status/tooltip", status.tooltip_text().find("dungeon") != -1, status.tooltip_text())


func _unit_endpoint():
	var ok = ZmtpClient.parse_endpoint("tcp://127.0.0.1:5557")
	_check("endpoint/parse", ok.get("host") == "127.0.0.1" and ok.get("port") == 5557, ok)
	_check("endpoint/no-scheme", ZmtpClient.parse_endpoint("127.0.0.1:5557").has("error"), "")
	_check("endpoint/bad-port", ZmtpClient.parse_endpoint("tcp://h:55x").has("error"), "")
	_check("endpoint/port-range", ZmtpClient.parse_endpoint("tcp://h:70000").has("error"), "")


func _unit_frames():
	# The frames this client writes, byte for byte (ZMTP 3.0, rfc 23).
	var greeting = ZmtpClient._greeting()
	_check(
		"frames/greeting",
		(
			greeting.size() == 64
			and greeting[0] == 0xff
			and greeting[9] == 0x7f
			and greeting[10] == 3
			and greeting[11] == 0
			and ZmtpClient._ascii(greeting, 12, 20) == "NULL"
			and greeting[32] == 0
		),
		greeting.hex_encode()
	)
	var ready = ZmtpClient._command_frame("READY", ZmtpClient._ready_properties())
	_check(
		"frames/ready",
		(
			ready.hex_encode()
			== "041905" + "5245414459" + "0b536f636b65742d54797065" + "00000003535542"
		),
		ready.hex_encode()
	)
	var subscription = ZmtpClient._subscription_frame("sparky.")
	_check(
		"frames/subscription",
		subscription.hex_encode() == "000801" + "737061726b792e",
		subscription.hex_encode()
	)
	var pong = ZmtpClient._command_frame("PONG", [1, 2])
	_check("frames/pong", pong.hex_encode() == "0407" + "04504f4e47" + "0102", pong.hex_encode())


# ------------------------------------------------------------------- json


# JSON text of a decoded value; strings listed in nul_strings are written from their
# original bytes so a NUL comes out as \u0000 (Godot strings cannot hold one).
static func json_text(value, nul_strings):
	var kind = typeof(value)
	if kind == TYPE_NIL:
		return "null"
	if kind == TYPE_BOOL:
		return "true" if value else "false"
	if kind == TYPE_INT:
		return str(value)
	if kind == typeof(1.0):  # TYPE_REAL in Godot 3, TYPE_FLOAT in 4
		# Exact: the float's IEEE-754 bits, which the pytest side unpacks.
		var bits = StreamPeerBuffer.new()
		bits.big_endian = true
		bits.put_double(value)
		return '{"$f64": "%s"}' % bits.data_array.hex_encode()
	if kind == TYPE_STRING:
		if nul_strings.has(value):
			return _json_string_from_bytes(nul_strings[value])
		return _json_string(value)
	if kind == TYPE_ARRAY:
		var parts = []
		for item in value:
			parts.append(json_text(item, nul_strings))
		return "[" + _join(parts, ",") + "]"
	if kind == TYPE_DICTIONARY:
		var parts = []
		for key in value:
			parts.append(json_text(key, nul_strings) + ":" + json_text(value[key], nul_strings))
		return "{" + _join(parts, ",") + "}"
	if kind == TYPE_OBJECT and value is MsgpackDecoder.MsgpackOpaque:
		return '{"$opaque": "%s", "ext_type": %d}' % [value.kind, value.ext_type]
	return _json_string(str(value))


static func _json_string(text):
	var out = '"'
	for index in range(text.length()):
		var character = text[index]
		if character == '"':
			out += '\\"'
		elif character == "\\":
			out += "\\\\"
		elif character < " " or character == char(0x7f):
			out += "\\u%04x" % _control_code(character)
		else:
			out += character
	return out + '"'


# The code of a control character (String.ord_at in Godot 3 is unicode_at in 4).
static func _control_code(character):
	for code in range(0x20):
		if character == char(code):
			return code
	return 0x7f


static func _json_string_from_bytes(bytes):
	var out = '"'
	var piece = StreamPeerBuffer.new()
	for index in range(bytes.size()):
		if bytes[index] == 0:
			var text = _json_string(piece.data_array.get_string_from_utf8())
			out += text.substr(1, text.length() - 2) + "\\u0000"
			piece = StreamPeerBuffer.new()
		else:
			piece.put_u8(bytes[index])
	var rest = _json_string(piece.data_array.get_string_from_utf8())
	return out + rest.substr(1, rest.length() - 2) + '"'


static func _join(items, separator):
	var text = ""
	for index in range(items.size()):
		if index > 0:
			text += separator
		text += items[index]
	return text
