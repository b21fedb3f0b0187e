extends SceneTree
# Godot 3 entry of the sparky_bridge core tests (the tests: bridge_tests.gd).
#
# Run by tests/integration/test_godot_bridge.py as
#   godot3-server --path <project> -s res://tests/run_tests.gd
# in a throw-away project that holds the addon's core scripts and bridge_tests.gd.
# The scenario comes from the environment (the Godot 4 entry, run_tests_godot4.gd, runs
# unit + decode from files in its pack; live needs raw TCP, which only Godot 3 has here):
#   SPARKY_TEST_SCENARIO = unit | decode | live
#   SPARKY_TEST_CASES    = decode: manifest file, one case per line:
#                          name \t topic hex \t max_bytes \t offset \t length
#   SPARKY_TEST_BLOB     = decode: the file holding every case's body
#   SPARKY_TEST_ENDPOINT = live: tcp://host:port of the publisher
#   SPARKY_TEST_DEADLINE_MS = live: give up after this long (default 20000)
#   SPARKY_TEST_MAX_BYTES   = live: body bound (default 1 MiB)
#   SPARKY_TEST_STOP_FILE   = live: stop as soon as this file exists
# Every result is one stdout line "SPARKY <json>"; the last one is {"done": true}.
# A live run ends when it receives a valid message of type "test-stop" (an unknown
# type, so the bridge ignores it), when the stop file appears, or at the deadline.

const BridgeTests = preload("res://tests/bridge_tests.gd")
const ReloadPlanner = preload("res://addons/sparky_bridge/reload_planner.gd")
const BridgeStatus = preload("res://addons/sparky_bridge/bridge_status.gd")
const Subscriber = preload("res://addons/sparky_bridge/subscriber.gd")

var tests = BridgeTests.new()


func _init():
	var scenario = OS.get_environment("SPARKY_TEST_SCENARIO")
	if scenario == "unit":
		tests.run_unit()
	elif scenario == "decode":
		_run_decode()
	elif scenario == "live":
		_run_live()
	else:
		_emit({"error": "unknown scenario '%s'" % scenario})
	_emit({"done": true})
	quit()


func _emit(record):
	tests.emit(record)


func _run_decode():
	var manifest = File.new()
	if manifest.open(OS.get_environment("SPARKY_TEST_CASES"), File.READ) != OK:
		_emit({"error": "cannot open the case manifest"})
		return
	var blob = File.new()
	if blob.open(OS.get_environment("SPARKY_TEST_BLOB"), File.READ) != OK:
		_emit({"error": "cannot open the case blob"})
		return
	tests.run_decode(manifest.get_as_text(), blob.get_buffer(blob.get_len()))


# --------------------------------------------------------------------- live


func _run_live():
	var deadline_ms = 20000
	if OS.get_environment("SPARKY_TEST_DEADLINE_MS") != "":
		deadline_ms = int(OS.get_environment("SPARKY_TEST_DEADLINE_MS"))
	var subscriber = Subscriber.new()
	if OS.get_environment("SPARKY_TEST_MAX_BYTES") != "":
		subscriber.set_max_bytes(int(OS.get_environment("SPARKY_TEST_MAX_BYTES")))
	var planner = ReloadPlanner.new()
	var status = BridgeStatus.new()
	var started_ms = OS.get_ticks_msec()
	var problem = subscriber.start(OS.get_environment("SPARKY_TEST_ENDPOINT"), started_ms)
	if problem != "":
		_emit({"error": problem})
		return
	status.endpoint = subscriber.endpoint
	var stop_file = OS.get_environment("SPARKY_TEST_STOP_FILE")
	var files = File.new()
	var next_stop_check_ms = 0
	var stopping = false
	var polls = 0
	while not stopping:
		var now_ms = OS.get_ticks_msec()
		if now_ms - started_ms > deadline_ms:
			_emit({"ev": "deadline"})
			break
		if stop_file != "" and now_ms >= next_stop_check_ms:
			next_stop_check_ms = now_ms + 20
			if files.file_exists(stop_file):
				_emit({"ev": "stop-file"})
				break
		var events = subscriber.poll(now_ms)
		polls += 1
		for event in events:
			status.apply(event)
			var record = {"ev": event["kind"], "t_us": OS.get_ticks_usec(), "poll": polls}
			if event["kind"] == "connected":
				record["handshake_ms"] = event["handshake_ms"]
			elif event["kind"] == "disconnected":
				record["reason"] = event["reason"]
			elif event["kind"] == "rejected":
				record["error"] = event["error"]
				record["detail"] = event["detail"]
				record["topic"] = event["topic"]
			elif event["kind"] == "message":
				var message = event["message"]
				record["type"] = event["type"]
				record["seq"] = message["seq"]
				record["session"] = message["session"]
				record["rescan"] = event["rescan"]
				record["ignored"] = event["ignored"]
				# Like the editor plugin: offer each message, take the plan every frame.
				planner.offer(event)
				var plan = planner.take(false)
				if event["type"] == "assets-changed":
					record["plan"] = plan
				elif event["type"] == "build-failed":
					var lines = []
					for error in message["errors"]:
						lines.append(ReloadPlanner.format_build_error(error))
					record["lines"] = lines
				elif event["type"] == "test-stop":
					stopping = true
				record["label"] = status.label_text()
			_emit(record)
		if events.size() == 0:
			OS.delay_usec(300)
	var client = subscriber.client
	_emit(
		{
			"ev": "stats",
			"handshakes": client.handshakes,
			"disconnects": client.disconnects,
			"pings": client.pings_received,
			"pongs": client.pongs_sent,
			"bytes": client.bytes_received,
			"received": subscriber.received,
			"rejected": subscriber.rejected,
			"rescans": subscriber.tracker.rescans,
			"last_handshake_ms": client.last_handshake_ms,
		}
	)
	subscriber.stop()
