# Session/seq tracking for the protocol's "rescan" rule (Godot 3 and 4).
#
# Role: given each *valid* message in arrival order (ignored types included), say
# whether the bridge must rescan everything instead of trusting this message.
#
# Invariants (docs/protocol.md, "Subscriber rules"):
# - The first message after start (or after reset()) is a new session: rescan.
# - A different `session` (publisher restarted): rescan.
# - Within a session, a `seq` that is not last + 1 (lost, duplicated or reordered
#   messages): rescan.
# - Refused messages are never passed here, so they do not update `seq` and the
#   next valid message triggers a rescan through the gap it leaves.

var session = ""
var last_seq = -1
var rescans = 0
var reason = ""


func reset():
	session = ""
	last_seq = -1
	reason = ""


# Returns true when the bridge must rescan; `reason` says why.
func observe(message_session, seq):
	var rescan = false
	if session == "":
		rescan = true
		reason = "first message (session %s)" % message_session
	elif message_session != session:
		rescan = true
		reason = "new session %s (was %s)" % [message_session, session]
	elif seq != last_seq + 1:
		rescan = true
		reason = "seq %d after %d" % [seq, last_seq]
	session = message_session
	last_seq = seq
	if rescan:
		rescans += 1
	return rescan
