"""The bad-input corpus: every case exits 2, names file:line:col and the key, and
writes nothing — an earlier good build's outputs stay byte-identical."""

from __future__ import annotations

import pytest

from sparky_assets.cli.main import main
from tests.helpers import copy_example, snapshot

BASE = """[project]
name = "t"
palette = "pico-8"

[[sprite]]
name = "hero"
size = [16, 16]
animations = { idle = 2 }

[[sprite]]
name = "slime"
size = 16

[[atlas]]
name = "all"
sprites = ["hero", "slime"]
"""

# (case id, text replacements on BASE or a full text, expected fragments, expected "line:col")
CASES = [
    ("toml-syntax", ("size = 16", "size = = 16"), ["TOML syntax error"], "12:"),
    ("wrong-type", ("size = [16, 16]", 'size = "big"'), ["sprite[0].size", "wrong type", "found string 'big'"], "7:1"),
    ("unknown-key", ("size = 16", "size = 16\ncolour = 3"), ["sprite[1].colour", "unknown key 'colour'"], "13:1"),
    ("unknown-key-suggest", ("size = 16", "size = 16\nanimation = { a = 1 }"), ["did you mean 'animations'?"], "13:1"),
    (
        "unknown-palette",
        ('palette = "pico-8"', 'palette = "endesga32"'),
        ["unknown palette 'endesga32'", "did you mean 'endesga-32'?"],
        "3:1",
    ),
    (
        "unknown-generator",
        ("size = 16", 'size = 16\ngenerator = "procedual"'),
        ["unknown generator 'procedual'", "did you mean 'procedural'?"],
        "13:1",
    ),
    ("duplicate-sprite", ('name = "slime"', 'name = "hero"'), ["duplicate sprite name 'hero'"], "11:1"),
    (
        "name-with-separator",
        ('name = "slime"', 'name = "mobs/slime"'),
        ["invalid sprite name", "no path separators"],
        "11:1",
    ),
    ("name-with-dotdot", ('name = "slime"', 'name = "..slime"'), ["invalid sprite name"], "11:1"),
    ("size-zero", ("size = 16", "size = 0"), ["sprite[1].size", "size out of range", "1..4096"], "12:1"),
    ("size-too-big", ("size = 16", "size = [16, 5000]"), ["size out of range"], "12:1"),
    (
        "atlas-matches-nothing",
        ('sprites = ["hero", "slime"]', 'sprites = ["hero", "orc*"]'),
        ["'orc*' matches no sprite"],
        "16:1",
    ),
    ("atlas-empty", ('sprites = ["hero", "slime"]', "sprites = []"), ["atlas names no sprite"], "16:1"),
    (
        "missing-source",
        ("size = 16", 'size = 16\nsource = "art/nope.png"'),
        ["source image not found: art/nope.png"],
        "13:1",
    ),
    (
        "source-outside-root",
        ("size = 16", 'size = 16\nsource = "../../etc/passwd"'),
        ["outside the project root"],
        "13:1",
    ),
    ("bad-palette-file", ('palette = "pico-8"', 'palette = "bad.hex"'), ["bad.hex:2"], None),
    ("missing-name", ('name = "t"\n', ""), ["missing required key 'name'"], "1:1"),
    (
        "bad-animation",
        ("animations = { idle = 2 }", "animations = { idle = 0 }"),
        ["sprite[0].animations.idle.frames", "out of range"],
        "8:",
    ),
    (
        "export-outside-root",
        ("[[atlas]]", '[export.godot]\nproject = "../game"\n\n[[atlas]]'),
        ["outside the project root"],
        "15:1",
    ),
    ("unknown-export", ("[[atlas]]", "[export.unity]\n\n[[atlas]]"), ["unknown export target 'unity'"], "14:1"),
]


@pytest.fixture()
def project(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "sparky.toml").write_text(BASE)
    (root / "bad.hex").write_text("ff0000\nnot-a-colour\n")
    assert main(["-q", "build", str(root)]) == 0
    return root


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_location_and_writes_nothing(project, capsys, case):
    _, (old, new), fragments, position = case
    text = BASE.replace(old, new, 1)
    assert text != BASE
    (project / "sparky.toml").write_text(text)
    before = snapshot(project, skip=())
    capsys.readouterr()
    assert main(["build", str(project)]) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, err
    if position:
        assert f"sparky.toml:{position}" in err, err
    assert snapshot(project, skip=()) == before


def test_all_problems_are_reported_at_once(project, capsys):
    text = BASE.replace("size = 16", "size = 0\ncolour = 1").replace('palette = "pico-8"', 'palette = "nope"')
    (project / "sparky.toml").write_text(text)
    assert main(["build", str(project)]) == 2
    err = capsys.readouterr().err
    assert "size out of range" in err and "unknown key 'colour'" in err and "3 problems found" in err


def test_missing_manifest_is_invalid_input(tmp_path, capsys):
    assert main(["build", str(tmp_path)]) == 2
    assert "no manifest found" in capsys.readouterr().err


def test_example_error_keeps_previous_outputs(tmp_path):
    root = copy_example(tmp_path)
    assert main(["-q", "build", str(root)]) == 0
    before = snapshot(root, skip=())
    manifest = root / "sparky.toml"
    manifest.write_text(manifest.read_text().replace("size = [16, 12]", "size = [16, -1]", 1))
    assert main(["-q", "build", str(root)]) == 2
    after = snapshot(root, skip=())
    after.pop("sparky.toml"), before.pop("sparky.toml")
    assert after == before
