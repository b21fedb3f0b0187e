# Protocol v1 subscriber: ZMTP client + decoder + session tracking (Godot 3 and 4).
#
# Role: the one object the editor plugin and the runtime autoload poll each frame.
# poll(now_ms) returns events, in arrival order:
#   {"kind": "connected", "handshake_ms": int}
#   {"kind": "disconnected", "reason": str}
#   {"kind": "message", "type": str, "message": map, "rescan": bool,
#    "rescan_reason": str, "ignored": bool}
#   {"kind": "rejected", "error": code, "detail": str, "topic": str}
#
# Invariants (docs/protocol.md, "Subscriber rules"):
# - A refused message is reported and dropped; it never stops the subscriber and
#   never updates seq, so the next valid message triggers a rescan.
# - "rescan" is true for the first message, a new session, and a seq gap.
# - Heartbeat watchdog: after a `hello` announced interval_ms, a connection that
#   hears nothing for 3 intervals is dropped and re-opened.
# - Time is injected (now_ms); nothing here blocks or reads a clock.

const ZmtpClient = preload("zmtp_client.gd")
const Protocol = preload("protocol.gd")
const SessionTracker = preload("session_tracker.gd")

const DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"
const HEARTBEAT_MISSES = 3

var client = ZmtpClient.new()
var protocol = Protocol.new()
var tracker = SessionTracker.new()

var endpoint = DEFAULT_ENDPOINT
var heartbeat_interval_ms = 0
var received = 0
var rejected = 0
var ignored = 0
var last_rejection = ""

var _last_traffic_ms = 0


# Returns "" or why the endpoint is not usable.
func start(endpoint_text, now_ms):
	var problem = client.set_endpoint(endpoint_text)
	if problem != "":
		return problem
	endpoint = endpoint_text
	client.max_frame_bytes = protocol.max_bytes
	client.open(now_ms)
	_last_traffic_ms = now_ms
	return ""


func stop():
	client.close()


func set_max_bytes(bound):
	protocol.max_bytes = bound
	client.max_frame_bytes = bound


func is_connected_to_publisher():
	return client.is_subscribed()


func poll(now_ms):
	var events = []
	for event in client.poll(now_ms):
		var kind = event["kind"]
		if kind == "message":
			_last_traffic_ms = now_ms
			events.append(decode_frames(event["frames"]))
		elif kind == "oversize":
			_last_traffic_ms = now_ms
			var topic = ""
			if event["frames"].size() > 0:
				topic = event["frames"][0].get_string_from_utf8()
			rejected += 1
			last_rejection = "oversize"
			events.append(
				{
					"kind": "rejected",
					"error": "oversize",
					"detail": "message of at least %d bytes, over the bound" % event["size"],
					"topic": topic,
				}
			)
		else:
			if kind == "connected":
				_last_traffic_ms = now_ms
			events.append(event)
	if (
		client.is_subscribed()
		and heartbeat_interval_ms > 0
		and now_ms - _last_traffic_ms > HEARTBEAT_MISSES * heartbeat_interval_ms
	):
		_last_traffic_ms = now_ms
		client.reconnect(
			(
				"no message for %d heartbeat intervals of %d ms"
				% [HEARTBEAT_MISSES, heartbeat_interval_ms]
			),
			now_ms
		)
		for event in client.poll(now_ms):
			events.append(event)
	return events


# One received message (its frames: topic, body) as the event poll() reports for it;
# tests and tools feed messages through here without a socket.
func decode_frames(frames):
	if frames.size() != 2:
		rejected += 1
		last_rejection = "malformed"
		return {
			"kind": "rejected",
			"error": "malformed",
			"detail": "message has %d frames, expected topic + body" % frames.size(),
			"topic": "",
		}
	var result = protocol.decode(frames[0], frames[1])
	if not result["ok"]:
		rejected += 1
		last_rejection = result["error"]
		return {
			"kind": "rejected",
			"error": result["error"],
			"detail": result["detail"],
			"topic": frames[0].get_string_from_utf8(),
		}
	var message = result["message"]
	received += 1
	if result["ignored"]:
		ignored += 1
	if result["type"] == "hello":
		heartbeat_interval_ms = message["interval_ms"]
	var rescan = tracker.observe(message["session"], message["seq"])
	return {
		"kind": "message",
		"type": result["type"],
		"message": message,
		"rescan": rescan,
		"rescan_reason": tracker.reason if rescan else "",
		"ignored": result["ignored"],
	}
