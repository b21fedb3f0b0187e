# ZMTP 3.0 SUB client over StreamPeerTCP (Godot 3 and 4).
#
# Role: connect to a ZeroMQ PUB socket (libzmq) without a ZeroMQ library, and hand
# back complete multi-frame messages. Godot has no ZeroMQ binding, so this speaks
# the wire protocol (rfc.zeromq.org/spec/23, ZMTP 3.0, NULL mechanism) itself.
#
# Invariants:
# - Announces version 3.0 (so libzmq expects subscriptions as "\x01" + prefix
#   message frames) and sends the subscriptions only after the publisher's READY
#   command arrived; libzmq drops a connection that subscribes earlier.
# - poll(now_ms) never blocks: it reads what the socket has (at most
#   max_read_per_poll bytes), parses complete frames (at most max_messages_per_poll
#   messages, so a burst is spread over frames), keeps the rest buffered for the
#   next call, and returns a list of event dictionaries:
#     {"kind": "connected", "handshake_ms": int}
#     {"kind": "disconnected", "reason": str}
#     {"kind": "message", "frames": [byte arrays]}
#     {"kind": "oversize", "frames": [frames kept before the drop], "size": int}
# - Memory is bounded: a frame over its bound (max_topic_bytes for the first frame
#   of a message, max_frame_bytes for the others) is skipped as it streams in,
#   never buffered, and the whole message is reported as "oversize".
# - PING commands (ZMTP 3.1 heartbeats, which libzmq sends when the publisher sets
#   ZMQ_HEARTBEAT_IVL) are answered with PONG carrying the PING's context.
# - Any protocol violation or socket error closes the connection; it is re-opened
#   after a backoff that doubles from backoff_min_ms to backoff_max_ms and resets
#   once a handshake completes.
# - Time is injected (now_ms), so the client never reads a clock itself.
# - Version-neutral: no `extends`, no typed syntax, no engine-specific type names;
#   StreamPeerTCP.poll() (Godot 4 only) is called only where it exists.

const STATE_WAITING = "waiting"
const STATE_CONNECTING = "connecting"
const STATE_GREETING = "greeting"
const STATE_HANDSHAKE = "handshake"
const STATE_SUBSCRIBED = "subscribed"
const STATE_CLOSED = "closed"

const FLAG_MORE = 1
const FLAG_LONG = 2
const FLAG_COMMAND = 4
const GREETING_SIZE = 64
const MAX_COMMAND_BYTES = 65536
const MAX_FRAMES_PER_MESSAGE = 16

var host = "127.0.0.1"
var port = 5557
var subscriptions = ["sparky."]
var max_topic_bytes = 255
var max_frame_bytes = 1048576
var max_read_per_poll = 4194304
var max_messages_per_poll = 256
var connect_timeout_ms = 3000
var handshake_timeout_ms = 3000
var backoff_min_ms = 100
var backoff_max_ms = 3000

# Counters, for the status display and the tests.
var handshakes = 0
var disconnects = 0
var pings_received = 0
var pongs_sent = 0
var bytes_received = 0
var last_handshake_ms = -1
var last_error = ""

var _state = STATE_CLOSED
var _tcp = null
var _rx = null
var _rx_pos = 0
var _events = []
var _frames = []
var _dropping = false
var _dropped_size = 0
var _skip_left = 0
var _skip_more = false
var _attempt_started_ms = 0
var _next_attempt_ms = 0
var _backoff_ms = 100
var _now_ms = 0
var _messages_this_poll = 0


# "tcp://host:port" -> "" on success, or why the endpoint is not usable.
func set_endpoint(endpoint):
	var parsed = parse_endpoint(endpoint)
	if parsed.has("error"):
		return parsed["error"]
	host = parsed["host"]
	port = parsed["port"]
	return ""


static func parse_endpoint(endpoint):
	if not endpoint.begins_with("tcp://"):
		return {"error": "endpoint '%s' must start with tcp://" % endpoint}
	var rest = endpoint.substr(6, endpoint.length())
	var colon = rest.rfind(":")
	if colon <= 0:
		return {"error": "endpoint '%s' has no port" % endpoint}
	var endpoint_host = rest.substr(0, colon)
	var port_text = rest.substr(colon + 1, rest.length())
	if endpoint_host.begins_with("[") and endpoint_host.ends_with("]"):
		endpoint_host = endpoint_host.substr(1, endpoint_host.length() - 2)
	if endpoint_host == "*" or endpoint_host == "":
		endpoint_host = "127.0.0.1"
	var endpoint_port = port_text.to_int()
	if str(endpoint_port) != port_text or endpoint_port < 1 or endpoint_port > 65535:
		return {"error": "endpoint '%s' has an invalid port '%s'" % [endpoint, port_text]}
	return {"host": endpoint_host, "port": endpoint_port}


func get_state():
	return _state


func is_subscribed():
	return _state == STATE_SUBSCRIBED


# Start connecting at the next poll().
func open(now_ms):
	_now_ms = now_ms
	_backoff_ms = backoff_min_ms
	_state = STATE_WAITING
	_next_attempt_ms = now_ms


func close():
	_drop_socket()
	_state = STATE_CLOSED


# Drop the connection (e.g. heartbeat timeout) and reconnect after the backoff.
func reconnect(reason, now_ms):
	_now_ms = now_ms
	if _state != STATE_CLOSED and _state != STATE_WAITING:
		_lose_connection(reason)


func poll(now_ms):
	_now_ms = now_ms
	if _state == STATE_WAITING and now_ms >= _next_attempt_ms:
		_start_connect()
	if _state == STATE_CONNECTING:
		_poll_connecting()
	if _state == STATE_GREETING or _state == STATE_HANDSHAKE or _state == STATE_SUBSCRIBED:
		_poll_connected()
	var events = _events
	_events = []
	return events


func _start_connect():
	_tcp = StreamPeerTCP.new()
	_rx = StreamPeerBuffer.new()
	_rx.big_endian = true
	_rx_pos = 0
	_reset_message()
	_attempt_started_ms = _now_ms
	var error = _tcp.connect_to_host(host, port)
	if error != OK:
		_lose_connection("connect_to_host(%s, %d) failed: error %d" % [host, port, error])
		return
	_state = STATE_CONNECTING


func _tcp_status():
	if _tcp.has_method("poll"):
		_tcp.poll()
	return _tcp.get_status()


func _poll_connecting():
	var status = _tcp_status()
	if status == StreamPeerTCP.STATUS_CONNECTED:
		_tcp.set_no_delay(true)
		_state = STATE_GREETING
		_send(_greeting())
	elif status == StreamPeerTCP.STATUS_CONNECTING:
		if _now_ms - _attempt_started_ms > connect_timeout_ms:
			_lose_connection("connect to %s:%d timed out" % [host, port])
	else:
		_lose_connection("connect to %s:%d refused or failed" % [host, port])


func _poll_connected():
	var status = _tcp_status()
	var connected = status == StreamPeerTCP.STATUS_CONNECTED
	# Read only while the backlog is small, so a flood cannot grow the buffer.
	if connected and _rx.get_size() - _rx_pos < max_read_per_poll:
		var available = _tcp.get_available_bytes()
		if available > 0:
			var result = _tcp.get_partial_data(min(available, max_read_per_poll))
			if result[0] != OK:
				_lose_connection("read failed: error %d" % result[0])
				return
			var chunk = result[1]
			bytes_received += chunk.size()
			_rx.seek(_rx.get_size())
			_rx.put_data(chunk)
	_messages_this_poll = 0
	# Once the peer is gone, deliver everything it sent before dropping the socket.
	_parse(connected)
	_compact()
	if _state == STATE_WAITING:
		return
	if not connected:
		_lose_connection("connection closed by %s:%d" % [host, port])
		return
	if _state != STATE_SUBSCRIBED and _now_ms - _attempt_started_ms > handshake_timeout_ms:
		_lose_connection("ZMTP handshake with %s:%d timed out" % [host, port])


func _lose_connection(reason):
	var was_connected = _state == STATE_SUBSCRIBED
	_drop_socket()
	last_error = reason
	if was_connected:
		disconnects += 1
	_events.append({"kind": "disconnected", "reason": reason})
	_state = STATE_WAITING
	_next_attempt_ms = _now_ms + _backoff_ms
	_backoff_ms = min(_backoff_ms * 2, backoff_max_ms)


func _drop_socket():
	if _tcp != null:
		_tcp.disconnect_from_host()
	_tcp = null
	_rx = null
	_rx_pos = 0
	_reset_message()


func _reset_message():
	_frames = []
	_dropping = false
	_dropped_size = 0
	_skip_left = 0
	_skip_more = false


func _compact():
	if _rx == null:
		return
	var size = _rx.get_size()
	if _rx_pos >= size:
		_rx = StreamPeerBuffer.new()
		_rx.big_endian = true
		_rx_pos = 0
	elif _rx_pos > 65536:
		_rx.seek(_rx_pos)
		var rest = _rx.get_data(size - _rx_pos)[1]
		_rx = StreamPeerBuffer.new()
		_rx.big_endian = true
		_rx.put_data(rest)
		_rx_pos = 0


# --------------------------------------------------------------------- parsing


# Parse buffered bytes; with `budgeted`, stop after max_messages_per_poll messages
# (the rest stays buffered for the next poll, so a burst never stalls a frame long).
func _parse(budgeted):
	var progressing = true
	while progressing and _rx != null:
		if budgeted and _messages_this_poll >= max_messages_per_poll:
			return
		progressing = _parse_step()


# Consume one unit (the greeting, skipped bytes or one frame); false when more bytes
# are needed or the connection was dropped.
func _parse_step():
	var available = _rx.get_size() - _rx_pos
	if _state == STATE_GREETING:
		return available >= GREETING_SIZE and _read_greeting()
	if _skip_left > 0:
		return _skip(available)
	var header = _frame_header(available)
	if header.size() == 0:
		return false
	if (header[0] & FLAG_COMMAND) != 0:
		return _command_step(header[1], header[2], available)
	return _message_frame_step(header[0], header[1], header[2], available)


func _skip(available):
	var skipped = min(_skip_left, available)
	_rx_pos += skipped
	_skip_left -= skipped
	if _skip_left > 0:
		return false
	_end_frame(_skip_more)
	return true


# [flags, header size, body size], or [] when incomplete or invalid.
func _frame_header(available):
	if available < 2:
		return []
	_rx.seek(_rx_pos)
	var flags = _rx.get_u8()
	var header = []
	if (flags & 0xf8) != 0:
		_lose_connection("invalid ZMTP frame flags 0x%x" % flags)
	elif (flags & FLAG_LONG) == 0:
		header = [flags, 2, _rx.get_u8()]
	elif available >= 9:
		var high = _rx.get_u32()
		var low = _rx.get_u32()
		if high >= 0x80000000:
			_lose_connection("ZMTP frame size out of range")
		else:
			header = [flags, 9, (high << 32) | low]
	return header


func _command_step(header_size, size, available):
	if size > MAX_COMMAND_BYTES:
		_lose_connection("ZMTP command of %d bytes" % size)
		return false
	if available < header_size + size:
		return false
	_handle_command(_take(header_size, size))
	return _rx != null


func _message_frame_step(flags, header_size, size, available):
	if _state != STATE_SUBSCRIBED:
		_lose_connection("message frame before the READY handshake finished")
		return false
	var more = (flags & FLAG_MORE) != 0
	var bound = max_frame_bytes
	if _frames.size() == 0 and not _dropping:
		bound = max_topic_bytes
	if size > bound or _frames.size() >= MAX_FRAMES_PER_MESSAGE:
		# Skip the frame as it streams in instead of buffering it.
		_dropping = true
		_dropped_size += size
		_rx_pos += header_size
		_skip_left = size
		_skip_more = more
		if size == 0:
			_end_frame(more)
		return true
	if available < header_size + size:
		return false
	var frame = _take(header_size, size)
	if _dropping:
		_dropped_size += size
	else:
		_frames.append(frame)
	_end_frame(more)
	return true


func _take(header, size):
	_rx.seek(_rx_pos + header)
	_rx_pos += header + size
	if size == 0:
		return StreamPeerBuffer.new().data_array
	return _rx.get_data(size)[1]


func _end_frame(more):
	if more:
		return
	if _dropping:
		_events.append({"kind": "oversize", "frames": _frames, "size": _dropped_size})
	else:
		_events.append({"kind": "message", "frames": _frames})
	_messages_this_poll += 1
	_reset_message()


func _read_greeting():
	_rx.seek(_rx_pos)
	var greeting = _rx.get_data(GREETING_SIZE)[1]
	_rx_pos += GREETING_SIZE
	if greeting[0] != 0xff or greeting[9] != 0x7f:
		_lose_connection("peer at %s:%d is not a ZMTP 3 peer (bad signature)" % [host, port])
		return false
	if greeting[10] < 3:
		_lose_connection("peer speaks ZMTP %d.%d, need 3.0" % [greeting[10], greeting[11]])
		return false
	var mechanism = _ascii(greeting, 12, 20)
	if mechanism != "NULL":
		_lose_connection("peer wants security mechanism '%s', only NULL is supported" % mechanism)
		return false
	_state = STATE_HANDSHAKE
	_send(_command_frame("READY", _ready_properties()))
	return _state == STATE_HANDSHAKE


func _handle_command(command):
	if command.size() < 1 or command[0] + 1 > command.size():
		_lose_connection("truncated ZMTP command")
		return
	var name_length = command[0]
	var name = _ascii(command, 1, name_length)
	var data_start = 1 + name_length
	if name == "PING":
		pings_received += 1
		# PING = ttl (2 bytes) + context (0..16 bytes); PONG echoes the context.
		var context_start = data_start + 2
		var context = []
		for index in range(context_start, command.size()):
			context.append(command[index])
		_send(_command_frame("PONG", context))
		pongs_sent += 1
	elif name == "READY":
		if _state != STATE_HANDSHAKE:
			_lose_connection("unexpected READY command")
			return
		var socket_type = _ready_socket_type(command, data_start)
		if socket_type != "PUB" and socket_type != "XPUB":
			_lose_connection("peer socket type is '%s', expected PUB or XPUB" % socket_type)
			return
		_state = STATE_SUBSCRIBED
		for prefix in subscriptions:
			_send(_subscription_frame(prefix))
		if _state != STATE_SUBSCRIBED:
			return
		handshakes += 1
		_backoff_ms = backoff_min_ms
		last_handshake_ms = _now_ms - _attempt_started_ms
		_events.append({"kind": "connected", "handshake_ms": last_handshake_ms})
	elif name == "ERROR":
		var reason_length = 0
		if command.size() > data_start:
			reason_length = min(command[data_start], command.size() - data_start - 1)
		_lose_connection("peer sent ERROR: %s" % _ascii(command, data_start + 1, reason_length))
	# Other commands (PONG, SUBSCRIBE, ...) need no answer from a SUB socket.


func _ready_socket_type(command, start):
	var position = start
	var size = command.size()
	while position < size:
		var name_length = command[position]
		if position + 1 + name_length + 4 > size:
			return ""
		var name = _ascii(command, position + 1, name_length)
		position += 1 + name_length
		var value_length = (
			(command[position] << 24)
			| (command[position + 1] << 16)
			| (command[position + 2] << 8)
			| command[position + 3]
		)
		position += 4
		if position + value_length > size:
			return ""
		if name.to_lower() == "socket-type":
			return _ascii(command, position, value_length)
		position += value_length
	return ""


# ------------------------------------------------------------------- encoding


func _send(bytes):
	if _tcp == null:
		return
	var error = _tcp.put_data(bytes)
	if error != OK:
		_lose_connection("write failed: error %d" % error)


static func _greeting():
	var buffer = StreamPeerBuffer.new()
	# Signature: 0xff, 8 bytes padding (libzmq writes 1 in the last), 0x7f.
	buffer.put_u8(0xff)
	for _index in range(7):
		buffer.put_u8(0)
	buffer.put_u8(1)
	buffer.put_u8(0x7f)
	# Version 3.0: libzmq then takes subscriptions as message frames.
	buffer.put_u8(3)
	buffer.put_u8(0)
	_put_ascii(buffer, "NULL")
	for _index in range(16):
		buffer.put_u8(0)
	buffer.put_u8(0)  # as-server
	for _index in range(31):
		buffer.put_u8(0)
	return buffer.data_array


static func _ready_properties():
	var buffer = StreamPeerBuffer.new()
	buffer.big_endian = true
	buffer.put_u8(11)
	_put_ascii(buffer, "Socket-Type")
	buffer.put_u32(3)
	_put_ascii(buffer, "SUB")
	var properties = []
	for byte in buffer.data_array:
		properties.append(byte)
	return properties


# Command frame: name-length, name, data (an Array of byte values).
static func _command_frame(name, data):
	var body_size = 1 + name.length() + data.size()
	var buffer = StreamPeerBuffer.new()
	buffer.big_endian = true
	if body_size > 255:
		buffer.put_u8(FLAG_COMMAND | FLAG_LONG)
		buffer.put_u64(body_size)
	else:
		buffer.put_u8(FLAG_COMMAND)
		buffer.put_u8(body_size)
	buffer.put_u8(name.length())
	_put_ascii(buffer, name)
	for byte in data:
		buffer.put_u8(byte)
	return buffer.data_array


# ZMTP 3.0 subscription: a message frame "\x01" + prefix.
static func _subscription_frame(prefix):
	var prefix_buffer = StreamPeerBuffer.new()
	prefix_buffer.put_utf8_string(prefix)
	prefix_buffer.seek(0)
	var prefix_length = prefix_buffer.get_u32()
	var body_size = 1 + prefix_length
	var buffer = StreamPeerBuffer.new()
	buffer.big_endian = true
	if body_size > 255:
		buffer.put_u8(FLAG_LONG)
		buffer.put_u64(body_size)
	else:
		buffer.put_u8(0)
		buffer.put_u8(body_size)
	buffer.put_u8(1)
	for _index in range(prefix_length):
		buffer.put_u8(prefix_buffer.get_u8())
	return buffer.data_array


static func _put_ascii(buffer, text):
	var text_buffer = StreamPeerBuffer.new()
	text_buffer.put_utf8_string(text)
	text_buffer.seek(0)
	var length = text_buffer.get_u32()
	for _index in range(length):
		buffer.put_u8(text_buffer.get_u8())


# Printable ASCII of bytes[start, start + length), stopping at the first NUL.
static func _ascii(bytes, start, length):
	var text = ""
	var end = min(start + length, bytes.size())
	for index in range(start, end):
		var byte = bytes[index]
		if byte == 0:
			break
		if byte < 0x20 or byte > 0x7e:
			text += "?"
		else:
			text += char(byte)
	return text
