# Strict msgpack decoder for the sparky hot-reload protocol (Godot 3 and 4).
#
# Role: turn one message body (a byte array) into Godot values, or say why not.
# Version-neutral on purpose: no `extends` (the script is a Reference/RefCounted),
# no typed syntax, no PoolByteArray/PackedByteArray names, only methods that both
# engines share (StreamPeerBuffer with big_endian = true reads the wire order).
#
# Invariants:
# - decode() never crashes and never loops on hostile input: every read is
#   bounds-checked first, a container's element count is checked against the bytes
#   left before looping, and nesting is bounded (MAX_DEPTH containers, the top-level
#   map being depth 1), so the work is linear in the body size.
# - Errors are values: {"ok": false, "error": code, "detail": text} where code is
#   "oversize" (body over max_bytes, not parsed at all) or "malformed" (not valid
#   msgpack: truncated, trailing bytes, reserved 0xc1, non-string or duplicate map
#   key, invalid UTF-8, nesting too deep, bad timestamp extension).
# - Every msgpack format is recognised. Values v1 never uses are still decoded so
#   the protocol layer can refuse them by type: floats become Godot floats; bin, ext
#   and uint64 values above the signed 64-bit range become MsgpackOpaque objects.
# - Godot strings cannot hold NUL; a string containing U+0000 is decoded with each
#   NUL replaced by NUL_REPLACEMENT and recorded in the result's "nul_strings"
#   ({decoded string: its original UTF-8 bytes}) so path and topic checks still
#   see the NUL.

const DEFAULT_MAX_BYTES = 1048576
const MAX_DEPTH = 32
const NUL_REPLACEMENT = "\ufffd"

var max_bytes = DEFAULT_MAX_BYTES

var _buffer = null
var _size = 0
var _error = ""
var _nul_strings = {}


class MsgpackOpaque:
	# A value protocol v1 does not use: "bin", "ext" (with ext_type) or "uint64"
	# (an unsigned integer above 2^63 - 1, kept as its text).
	var kind = ""
	var ext_type = 0
	var data = null

	func _init(value_kind, value_ext_type, value_data):
		kind = value_kind
		ext_type = value_ext_type
		data = value_data


func decode(bytes):
	var size = bytes.size()
	if size > max_bytes:
		return _failure("oversize", "body is %d bytes, over the %d-byte bound" % [size, max_bytes])
	_buffer = StreamPeerBuffer.new()
	_buffer.big_endian = true
	_buffer.data_array = bytes
	_buffer.seek(0)
	_size = size
	_error = ""
	_nul_strings = {}
	var value = _read_value(1)
	if _error != "":
		return _failure("malformed", _error)
	if _buffer.get_position() != _size:
		return _failure(
			"malformed",
			"%d trailing bytes after the msgpack value" % [_size - _buffer.get_position()]
		)
	return {"ok": true, "value": value, "nul_strings": _nul_strings}


func _failure(code, detail):
	_buffer = null
	return {"ok": false, "error": code, "detail": detail}


func _left():
	return _size - _buffer.get_position()


func _need(count, what):
	if _left() < count:
		_error = "truncated msgpack: %s needs %d bytes, %d left" % [what, count, _left()]
		return false
	return true


func _read_value(depth):
	if not _need(1, "a value"):
		return null
	var lead = _buffer.get_u8()
	if lead <= 0x7f:
		return lead
	if lead >= 0xe0:
		return lead - 0x100
	if lead <= 0xbf:
		return _read_fixed_container(lead, depth)
	if lead <= 0xc3:
		return _read_constant(lead)
	return _read_prefixed(lead, depth)


# fixmap 0x80-0x8f, fixarray 0x90-0x9f, fixstr 0xa0-0xbf.
func _read_fixed_container(lead, depth):
	var value = null
	if lead <= 0x8f:
		value = _read_map(lead & 0x0f, depth)
	elif lead <= 0x9f:
		value = _read_array(lead & 0x0f, depth)
	else:
		value = _read_str(lead & 0x1f)
	return value


# nil 0xc0, reserved 0xc1, false 0xc2, true 0xc3.
func _read_constant(lead):
	var value = null
	if lead == 0xc1:
		_error = "reserved msgpack byte 0xc1"
	elif lead == 0xc2:
		value = false
	elif lead == 0xc3:
		value = true
	return value


# Formats 0xc4-0xdf: a lead byte followed by a size or a fixed-width value.
func _read_prefixed(lead, depth):
	var value = null
	if lead <= 0xc6:
		value = _read_bin(_read_length(1 << (lead - 0xc4)))
	elif lead <= 0xc9:
		value = _read_ext(_read_length(1 << (lead - 0xc7)))
	elif lead == 0xca:
		if _need(4, "float32"):
			value = _buffer.get_float()
	elif lead == 0xcb:
		if _need(8, "float64"):
			value = _buffer.get_double()
	elif lead <= 0xcf:
		value = _read_uint(1 << (lead - 0xcc))
	elif lead <= 0xd3:
		value = _read_int(1 << (lead - 0xd0))
	elif lead <= 0xd8:
		value = _read_ext(1 << (lead - 0xd4))
	elif lead <= 0xdb:
		value = _read_str(_read_length(1 << (lead - 0xd9)))
	elif lead <= 0xdd:
		value = _read_array(_read_length(2 << (lead - 0xdc)), depth)
	else:
		value = _read_map(_read_length(2 << (lead - 0xde)), depth)
	return value


# A length prefix of 1, 2 or 4 bytes; -1 (with _error set) when truncated.
func _read_length(width):
	if not _need(width, "a length"):
		return -1
	if width == 1:
		return _buffer.get_u8()
	if width == 2:
		return _buffer.get_u16()
	return _buffer.get_u32()


func _read_uint(width):
	if not _need(width, "an unsigned integer"):
		return null
	if width == 1:
		return _buffer.get_u8()
	if width == 2:
		return _buffer.get_u16()
	if width == 4:
		return _buffer.get_u32()
	var high = _buffer.get_u32()
	var low = _buffer.get_u32()
	if high >= 0x80000000:
		# Beyond Godot's signed 64-bit int: keep it as an opaque value.
		return MsgpackOpaque.new("uint64", 0, [high, low])
	return (high << 32) | low


func _read_int(width):
	if not _need(width, "a signed integer"):
		return null
	if width == 1:
		return _buffer.get_8()
	if width == 2:
		return _buffer.get_16()
	if width == 4:
		return _buffer.get_32()
	return _buffer.get_64()


func _read_bytes(length, what):
	if length < 0 or not _need(length, what):
		return null
	if length == 0:
		return StreamPeerBuffer.new().data_array
	return _buffer.get_data(length)[1]


func _read_bin(length):
	var bytes = _read_bytes(length, "bin data")
	if _error != "":
		return null
	return MsgpackOpaque.new("bin", 0, bytes)


func _read_ext(length):
	if length < 0 or not _need(1 + length, "an ext value"):
		return null
	var ext_type = _buffer.get_8()
	var bytes = _read_bytes(length, "ext data")
	if _error != "":
		return null
	if ext_type == -1:
		_check_timestamp(bytes)
	return MsgpackOpaque.new("ext", ext_type, bytes)


# Ext type -1 is the msgpack timestamp; a reference decoder refuses a timestamp of
# the wrong length or with nanoseconds >= 10^9, so this one does too.
func _check_timestamp(bytes):
	var length = bytes.size()
	var nanoseconds = 0
	if length == 4:
		return
	if length == 8:
		nanoseconds = (bytes[0] << 22) | (bytes[1] << 14) | (bytes[2] << 6) | (bytes[3] >> 2)
	elif length == 12:
		nanoseconds = (bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]
	else:
		_error = "timestamp extension of %d bytes (expected 4, 8 or 12)" % length
		return
	if nanoseconds >= 1000000000:
		_error = "timestamp nanoseconds %d out of range" % nanoseconds


func _read_str(length):
	var bytes = _read_bytes(length, "string data")
	if _error != "":
		return null
	var has_nul = _check_utf8(bytes)
	if _error != "":
		return null
	if not has_nul:
		return bytes.get_string_from_utf8()
	var text = _decode_with_nul(bytes)
	_nul_strings[text] = bytes
	return text


# Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF: what a
# reference decoder accepts); sets _error when invalid. Returns whether a NUL occurs.
# One pass, ASCII first: this loop is most of the decoder's time in GDScript.
func _check_utf8(bytes):
	var has_nul = false
	var index = 0
	var count = bytes.size()
	while index < count:
		var byte = bytes[index]
		if byte < 0x80:
			if byte == 0:
				has_nul = true
			index += 1
			continue
		var length = _utf8_sequence_length(bytes, index, count)
		if length == 0:
			_error = "string is not valid UTF-8 (bad sequence at byte %d)" % index
			return false
		index += length
	return has_nul


# Length of the valid multi-byte sequence starting at `index`, or 0 when invalid.
static func _utf8_sequence_length(bytes, index, count):
	var byte = bytes[index]
	var length = 0
	var low = 0x80
	var high = 0xbf
	if byte >= 0xc2 and byte <= 0xdf:
		length = 2
	elif byte >= 0xe0 and byte <= 0xef:
		length = 3
		if byte == 0xe0:
			low = 0xa0
		elif byte == 0xed:
			high = 0x9f
	elif byte >= 0xf0 and byte <= 0xf4:
		length = 4
		if byte == 0xf0:
			low = 0x90
		elif byte == 0xf4:
			high = 0x8f
	if length == 0 or index + length > count:
		return 0
	for offset in range(1, length):
		var next = bytes[index + offset]
		if next < low or next > high:
			return 0
		low = 0x80
		high = 0xbf
	return length


# Godot strings stop at NUL: decode the NUL-free pieces, join with NUL_REPLACEMENT.
static func _decode_with_nul(bytes):
	var text = ""
	var piece = StreamPeerBuffer.new()
	for position in range(bytes.size()):
		if bytes[position] == 0:
			text += piece.data_array.get_string_from_utf8() + NUL_REPLACEMENT
			piece = StreamPeerBuffer.new()
		else:
			piece.put_u8(bytes[position])
	return text + piece.data_array.get_string_from_utf8()


func _read_array(length, depth):
	if length < 0:
		return null
	if depth > MAX_DEPTH:
		_error = "nesting deeper than %d" % MAX_DEPTH
		return null
	# Every element takes at least one byte: refuse impossible counts before looping.
	if not _need(length, "an array of %d elements" % length):
		return null
	var items = []
	for _index in range(length):
		var item = _read_value(depth + 1)
		if _error != "":
			return null
		items.append(item)
	return items


func _read_map(length, depth):
	if length < 0:
		return null
	if depth > MAX_DEPTH:
		_error = "nesting deeper than %d" % MAX_DEPTH
		return null
	if not _need(2 * length, "a map of %d entries" % length):
		return null
	var mapping = {}
	var index = 0
	while index < length and _error == "":
		var key = _read_value(depth + 1)
		if _error != "":
			break
		if typeof(key) != TYPE_STRING:
			_error = "map key is not a string (%s)" % _type_name(key)
		elif mapping.has(key):
			_error = "map key '%s' appears twice" % key
		else:
			mapping[key] = _read_value(depth + 1)
		index += 1
	if _error != "":
		return null
	return mapping


static func _type_name(value):
	var kind = typeof(value)
	if kind == TYPE_NIL:
		return "nil"
	if kind == TYPE_BOOL:
		return "bool"
	if kind == TYPE_INT:
		return "int"
	if kind == TYPE_STRING:
		return "str"
	if kind == TYPE_ARRAY:
		return "array"
	if kind == TYPE_DICTIONARY:
		return "map"
	if kind == TYPE_OBJECT:
		return value.kind
	return "float"
