"""The harness itself: the PCK writer, and that the Godot 4.6 runtime really runs our pack and reports errors."""

from __future__ import annotations

import pytest

from tests.godot4.pck import read_pck, res_relative, write_pck

HELLO = """extends Node

func _ready() -> void:
	var info := Engine.get_version_info()
	print("SPARKY ", JSON.stringify({"major": info["major"], "minor": info["minor"], "display": DisplayServer.get_name(), "files": DirAccess.get_files_at("res://many").size()}))
	print("SPARKY ", JSON.stringify({"text": FileAccess.get_file_as_string("res://data/hello.txt")}))
	if OS.get_cmdline_user_args().has("--fail"):
		push_error("deliberate failure")
	print("SPARKY ", JSON.stringify({"done": true}))
	get_tree().quit(0)
"""


def test_pck_round_trip_and_determinism():
    files = {"project.godot": "config_version=5\n", "res://a/b.gd": b"extends Node\n", "odd len.txt": b"x" * 5}
    pack = write_pck(files)
    assert pack == write_pck(dict(reversed(list(files.items()))))
    assert read_pck(pack) == {res_relative(k): (v.encode() if isinstance(v, str) else v) for k, v in files.items()}
    for bad in ("/etc/passwd", "res://../x", "a//b", ""):
        with pytest.raises(ValueError):
            write_pck({bad: b""})


def test_godot_46_runs_the_pack(godot_web):
    """A pack with a folder of 40 files next to another folder: the shape that made Godot's
    ``--headless`` display server corrupt memory in this template (see harness.py)."""
    many = {f"many/f{index:03d}.txt": b"x" * 10 for index in range(40)}
    run = godot_web.run({**many, "data/hello.txt": "hi from the pack"}, script=HELLO)
    run.assert_clean()
    version, text = run.records[0], run.records[1]
    assert (version["major"], version["minor"]) == (4, 6)
    assert version["display"] == "web" and version["files"] == 40
    assert text["text"] == "hi from the pack"


def test_a_godot_error_is_reported(godot_web):
    run = godot_web.run({"data/hello.txt": ""}, script=HELLO, args=("--", "--fail"))
    assert any("deliberate failure" in line for line in run.errors), run.transcript()
    with pytest.raises(AssertionError, match="deliberate failure"):
        run.assert_clean()
