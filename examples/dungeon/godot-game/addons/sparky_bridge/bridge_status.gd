# The bridge's state as the editor's status indicator shows it (Godot 3 and 4).
#
# Role: fold subscriber events into a few facts (connected?, last build, its result,
# error count) and render them as a short label and a tooltip. Pure: no nodes, no
# clock, so the Godot 3 tests check the exact texts the Godot 4 plugin displays.

var endpoint = ""
var connected = false
var project = ""
var building = 0
var last_build = 0
var last_build_ok = true
var has_build_result = false
var error_count = 0
var rejected = 0
var last_problem = ""


func apply(event):
	var kind = event["kind"]
	if kind == "connected":
		connected = true
	elif kind == "disconnected":
		connected = false
		last_problem = event["reason"]
	elif kind == "rejected":
		rejected += 1
		last_problem = "refused message (%s): %s" % [event["error"], event["detail"]]
	elif kind == "message" and not event["ignored"]:
		var message = event["message"]
		project = message["project"]
		var message_type = event["type"]
		if message_type == "build-started":
			building = message["build"]
		elif message_type == "build-failed":
			error_count = message["errors"].size()
		elif message_type == "build-finished":
			building = 0
			last_build = message["build"]
			last_build_ok = message["ok"]
			has_build_result = true
			if last_build_ok:
				error_count = 0


func label_text():
	if not connected:
		return "Sparky: offline"
	if building > 0:
		return "Sparky: building #%d" % building
	if not has_build_result:
		return "Sparky: connected"
	if last_build_ok:
		return "Sparky: build #%d ok" % last_build
	return "Sparky: build #%d failed (%d errors)" % [last_build, error_count]


func tooltip_text():
	var lines = ["sparky-assets hot reload", "endpoint: %s" % endpoint]
	if project != "":
		lines.append("project: %s" % project)
	lines.append("connected: %s" % ("yes" if connected else "no"))
	if rejected > 0:
		lines.append("refused messages: %d" % rejected)
	if last_problem != "":
		lines.append("last problem: %s" % last_problem)
	var text = ""
	for index in range(lines.size()):
		if index > 0:
			text += "\n"
		text += lines[index]
	return text
