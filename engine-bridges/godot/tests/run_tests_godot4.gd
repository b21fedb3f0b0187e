extends Node
## Godot 4 entry of the sparky_bridge core tests: the main scene of a throw-away project
## that tests/godot4/test_bridge_godot4.py runs in the Godot 4.6 web runtime.
##
## Runs the same version-neutral tests as the Godot 3 entry (bridge_tests.gd): the unit
## checks, then every decode case when res://tests/decode_cases.tsv is in the pack. A web
## page has no environment variables and no raw TCP, so the inputs are files in the pack
## and the live (socket) scenario stays with Godot 3. Prints `SPARKY <json>` lines and
## ends with {"done": true}.

const BridgeTests := preload("res://tests/bridge_tests.gd")
const CASES := "res://tests/decode_cases.tsv"
const BLOB := "res://tests/decode_cases.bin"


func _ready() -> void:
	var tests := BridgeTests.new()
	tests.run_unit()
	if FileAccess.file_exists(CASES):
		tests.run_decode(FileAccess.get_file_as_string(CASES), FileAccess.get_file_as_bytes(BLOB))
	tests.emit({"done": true})
	get_tree().quit(0)
