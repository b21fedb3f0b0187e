# Hot-reload protocol v1 checks for the Godot bridge (Godot 3 and 4).
#
# Role: decide whether one (topic, body) pair is a valid protocol v1 message, with
# the same error codes and the same check order as the normative spec
# (docs/protocol.md) and the Python decoder (sparky_assets/hotreload/protocol.py):
# oversize, malformed, not-a-map, then `v` (missing-field, wrong-type, version),
# `type`, topic, `seq`, `session`, `project`, the type's own fields in spec order,
# and finally the asset paths. The shared vectors in tests/vectors/ pin this down.
#
# Invariants:
# - decode() returns a value, never raises or crashes:
#   {"ok": true, "message": map, "type": str, "ignored": bool} or
#   {"ok": false, "error": code, "detail": text}.
# - A valid message of an unknown type is "ignored" (not an error); it still counts
#   for seq tracking.
# - Version-neutral: no `extends`, no typed syntax, no engine-specific type names.

const MsgpackDecoder = preload("msgpack_decoder.gd")

const PROTOCOL_VERSION = 1
const TOPIC_PREFIX = "sparky."
const GODOT_PREFIX = "res://"
const DEFAULT_MAX_BYTES = 1048576
const MAX_INT = 9007199254740991
const KNOWN_TYPES = ["hello", "build-started", "assets-changed", "build-failed", "build-finished"]
const ERROR_CODES = [
	"oversize", "malformed", "not-a-map", "missing-field", "wrong-type", "version", "path", "topic"
]

var max_bytes = DEFAULT_MAX_BYTES

var _decoder = MsgpackDecoder.new()
# Set by a failed check; the first failure wins (spec check order).
var _code = ""
var _detail = ""
var _nul_strings = {}


# topic: a String or a byte array (the raw topic frame); body: a byte array.
func decode(topic, body):
	var topic_bytes = topic
	if typeof(topic) == TYPE_STRING:
		topic_bytes = utf8_bytes(topic)
	_decoder.max_bytes = max_bytes
	var parsed = _decoder.decode(body)
	if not parsed["ok"]:
		return parsed
	var value = parsed["value"]
	if typeof(value) != TYPE_DICTIONARY:
		return _failure_result(
			"not-a-map", "body is a msgpack %s, not a map" % MsgpackDecoder._type_name(value)
		)
	_code = ""
	_detail = ""
	_nul_strings = parsed["nul_strings"]
	var message_type = _validate(topic_bytes, value)
	if _code != "":
		return _failure_result(_code, _detail)
	return {
		"ok": true,
		"message": value,
		"type": message_type,
		"ignored": not KNOWN_TYPES.has(message_type),
	}


static func _failure_result(code, detail):
	return {"ok": false, "error": code, "detail": detail}


func _fail(code, detail):
	if _code == "":
		_code = code
		_detail = detail


func _validate(topic_bytes, body):
	# v first: a future version may change every other field.
	if not body.has("v"):
		_fail("missing-field", "v is missing")
		return ""
	var version = body["v"]
	if typeof(version) != TYPE_INT:
		_fail("wrong-type", "v must be an int, found %s" % MsgpackDecoder._type_name(version))
		return ""
	if version != PROTOCOL_VERSION:
		_fail("version", "v is %d; this decoder speaks version %d" % [version, PROTOCOL_VERSION])
		return ""
	var message_type = _str(body, "type", "")
	if _code != "":
		return ""
	var type_bytes = _nul_strings.get(message_type, null)
	if type_bytes == null:
		type_bytes = utf8_bytes(message_type)
	if not bytes_equal(topic_bytes, concat_bytes(utf8_bytes(TOPIC_PREFIX), type_bytes)):
		_fail(
			"topic",
			(
				"topic '%s' does not match type '%s'"
				% [topic_bytes.get_string_from_utf8(), message_type]
			)
		)
		return ""
	_int(body, "seq", "")
	_str(body, "session", "")
	_str(body, "project", "")
	if message_type == "hello":
		_int(body, "interval_ms", "")
		_int(body, "build", "")
	elif message_type == "build-started":
		_int(body, "build", "")
		_str_array(body, "trigger", "")
	elif message_type == "assets-changed":
		_int(body, "build", "")
		var assets = _maps(body, "assets", "")
		for index in range(assets.size()):
			_check_asset_fields(assets[index], "assets[%d]." % index)
		for index in range(assets.size()):
			_check_asset_paths(assets[index])
	elif message_type == "build-failed":
		_int(body, "build", "")
		var errors = _maps(body, "errors", "")
		for index in range(errors.size()):
			var where = "errors[%d]." % index
			var error = errors[index]
			_opt_str(error, "file", where)
			_opt_int(error, "line", where)
			_opt_int(error, "column", where)
			_opt_str(error, "sprite", where)
			_opt_str(error, "stage", where)
			_str(error, "message", where)
	elif message_type == "build-finished":
		_int(body, "build", "")
		_bool(body, "ok", "")
		_int(body, "duration_ms", "")
		_int(body, "changed", "")
	return message_type


func _check_asset_fields(asset, where):
	_str(asset, "target", where)
	_str(asset, "path", where)
	_opt_str(asset, "engine_path", where)
	_str(asset, "kind", where)
	_str(asset, "change", where)
	_str(asset, "hash", where)
	_str_array(asset, "sprites", where)
	_opt_str(asset, "atlas", where)


func _check_asset_paths(asset):
	if _code != "":
		return
	var path = asset["path"]
	var problem = path_problem(path, _nul_strings.has(path))
	if problem != "":
		_fail("path", "asset path '%s' %s" % [path, problem])
		return
	var engine_path = asset["engine_path"]
	if typeof(engine_path) == TYPE_NIL:
		return
	var rest = engine_path
	if asset["target"] == "godot":
		if not engine_path.begins_with(GODOT_PREFIX):
			_fail(
				"path",
				"godot engine_path '%s' does not start with '%s'" % [engine_path, GODOT_PREFIX]
			)
			return
		rest = engine_path.substr(GODOT_PREFIX.length(), engine_path.length())
	problem = path_problem(rest, _nul_strings.has(engine_path))
	if problem != "":
		_fail("path", "%s engine_path '%s' %s" % [asset["target"], engine_path, problem])


# Why `path` is not a normalized relative "/"-separated path, or "" if it is one.
# has_nul: the decoded string contained a NUL byte (Godot strings cannot hold one).
static func path_problem(path, has_nul):
	if path == "":
		return "is empty"
	if path.begins_with("/"):
		return "is absolute (starts with '/')"
	if path.find("\\") != -1:
		return "contains a backslash"
	if has_nul:
		return "contains a NUL byte"
	if path.find(":") != -1:
		return "contains a ':' (drive letter or URL)"
	for component in path.split("/"):
		if component == "..":
			return "has a '..' component"
		if component == ".":
			return "has a '.' component"
		if component == "":
			return "has an empty component ('//' or a trailing '/')"
	return ""


# --------------------------------------------------------------- typed field access


func _get_field(mapping, key, where):
	if _code != "":
		return null
	if not mapping.has(key):
		_fail("missing-field", "%s%s is missing" % [where, key])
		return null
	return mapping[key]


func _wrong(where, key, expected, value):
	_fail(
		"wrong-type",
		"%s%s must be %s, found %s" % [where, key, expected, MsgpackDecoder._type_name(value)]
	)


func _int(mapping, key, where):
	var value = _get_field(mapping, key, where)
	if _code == "":
		_check_int(where, key, value)
	return value


func _check_int(where, key, value):
	if typeof(value) != TYPE_INT:
		_wrong(where, key, "an int", value)
	elif value < 0 or value > MAX_INT:
		_wrong(where, key, "an int in 0..%d" % MAX_INT, value)


func _opt_int(mapping, key, where):
	var value = _get_field(mapping, key, where)
	if _code == "" and typeof(value) != TYPE_NIL:
		_check_int(where, key, value)


func _str(mapping, key, where):
	var value = _get_field(mapping, key, where)
	if _code == "" and typeof(value) != TYPE_STRING:
		_wrong(where, key, "a str", value)
		return ""
	if _code != "":
		return ""
	return value


func _opt_str(mapping, key, where):
	var value = _get_field(mapping, key, where)
	if _code == "" and typeof(value) != TYPE_NIL and typeof(value) != TYPE_STRING:
		_wrong(where, key, "a str or nil", value)


func _bool(mapping, key, where):
	var value = _get_field(mapping, key, where)
	if _code == "" and typeof(value) != TYPE_BOOL:
		_wrong(where, key, "a bool", value)


func _array(mapping, key, where):
	var value = _get_field(mapping, key, where)
	if _code != "":
		return []
	if typeof(value) != TYPE_ARRAY:
		_wrong(where, key, "an array", value)
		return []
	return value


func _str_array(mapping, key, where):
	var items = _array(mapping, key, where)
	for index in range(items.size()):
		if _code == "" and typeof(items[index]) != TYPE_STRING:
			_wrong(where, "%s[%d]" % [key, index], "a str", items[index])


func _maps(mapping, key, where):
	var items = _array(mapping, key, where)
	for index in range(items.size()):
		if _code == "" and typeof(items[index]) != TYPE_DICTIONARY:
			_wrong(where, "%s[%d]" % [key, index], "a map", items[index])
	if _code != "":
		return []
	return items


# ------------------------------------------------------------------ byte helpers


# UTF-8 bytes of `text` without naming the engine's byte array type.
static func utf8_bytes(text):
	var buffer = StreamPeerBuffer.new()
	buffer.put_utf8_string(text)
	buffer.seek(0)
	var length = buffer.get_u32()
	if length == 0:
		return StreamPeerBuffer.new().data_array
	return buffer.get_data(length)[1]


static func concat_bytes(first, second):
	var buffer = StreamPeerBuffer.new()
	if first.size() > 0:
		buffer.put_data(first)
	if second.size() > 0:
		buffer.put_data(second)
	return buffer.data_array


static func bytes_equal(first, second):
	if first.size() != second.size():
		return false
	for index in range(first.size()):
		if first[index] != second[index]:
			return false
	return true
