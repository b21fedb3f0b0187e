"""Frame timing and playback order: ``durations``/``holds`` and ``direction`` per
animation reach every export in its own terms, frames are stored once whatever the
order or holds, and Aseprite frame names follow ``filename_format`` (default ``{frame}``,
what Phaser's ``createFromAseprite`` looks up)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.errors import InvalidInput
from sparky_assets.export.aseprite import FrameNaming, format_filename
from sparky_assets.manifest.load import load_manifest
from sparky_assets.pipeline.engine import Builder
from tests.helpers import rgba

MANIFEST = """
[project]
name = "timing"
palette = "pico-8"

[[sprite]]
name = "hero"
style = "character"
size = [16, 16]
animations = {{ walk = {{ frames = 3, fps = 8, holds = [1, 1, 3], direction = "pingpong" }}, idle = {{ frames = 2, durations = [100, 300], direction = "reverse" }}, run = 2 }}

[[sprite]]
name = "coin"
style = "item"
size = 8

[[atlas]]
name = "all"
sprites = ["hero", "coin"]

[export.bevy]
assets = "bevy/assets"
[export.godot]
project = "godot"
[export.aseprite]
{aseprite}
[export.texturepacker]
"""


def project(tmp_path: Path, aseprite: str = "", timing: bool = True) -> Path:
    (tmp_path / "godot").mkdir(exist_ok=True)
    (tmp_path / "godot" / "project.godot").write_text("")
    (tmp_path / "bevy" / "assets").mkdir(parents=True, exist_ok=True)
    text = MANIFEST.format(aseprite=aseprite)
    if not timing:
        text = re.sub(r", (holds|durations) = \[[^]]*\]|, direction = \"\w+\"", "", text)
    (tmp_path / "sparky.toml").write_text(text)
    return tmp_path / "sparky.toml"


def test_manifest_reads_durations_holds_and_direction(tmp_path):
    hero = load_manifest(project(tmp_path)).sprite("hero")
    walk, idle, run = hero.animations
    assert (walk.durations, walk.playback) == ((125.0, 125.0, 375.0), "pingpong")
    assert (idle.durations, idle.playback) == ((100.0, 300.0), "reverse")
    assert (run.durations, run.playback, run.timed) == ((), "forward", False)


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        ("holds = [1, 1, 3]", "animations.walk.holds", "3 frames"),
        ("holds = [1, 1]", "animations.walk.holds", "has 2 entries for 3 frames"),
        ("holds = [1, 0, 3]", "animations.walk.holds", "[1, 240]"),
        ("durations = [100, 100, 300], holds = [1, 1, 3]", "animations.walk.holds", "both set"),
        ('direction = "pingpnog"', "animations.walk.direction", "pingpong"),
    ],
)
def test_bad_timing_is_located(tmp_path, edit, key, words):
    path = project(tmp_path)
    text = path.read_text().replace('holds = [1, 1, 3], direction = "pingpong"', edit)
    if edit == "holds = [1, 1, 3]":
        text = text.replace("frames = 3, fps = 8", "frames = 2, fps = 8").replace(edit, "holds = [1, 1, 3]")
        words = "has 3 entries for 2 frames"
    path.write_text(text)
    with pytest.raises(InvalidInput) as error:
        load_manifest(path)
    (problem,) = error.value.diagnostics
    assert problem.key == f"sprite[0].{key}" and problem.line == 10, problem.format()
    assert words in problem.format()


def _pages(root: Path) -> list[np.ndarray]:
    return [rgba(p) for p in sorted((root / "build/sprites/sheets").glob("all_*.png"))]


def test_every_export_carries_timing_and_order_and_frames_are_stored_once(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    Builder(project(plain, timing=False)).build()
    timed = tmp_path / "timed"
    timed.mkdir()
    Builder(project(timed)).build()
    # holds and ping-pong add no pixels: the same pages as without them
    assert [p.tobytes() for p in _pages(plain)] == [p.tobytes() for p in _pages(timed)]

    sheets = json.loads((timed / "build/sprites/sheets/all.json").read_text())
    by_name = {a["name"]: a for a in sheets["animations"] if a["sprite"] == "hero"}
    assert by_name["walk"]["durations_ms"] == [125.0, 125.0, 375.0] and by_name["walk"]["direction"] == "pingpong"
    assert "durations_ms" not in by_name["run"]
    assert [sheets["frames"][i]["duration_ms"] for i in by_name["idle"]["frames"]] == [100.0, 300.0]

    aseprite = json.loads((timed / "build/sprites/aseprite/all_0.json").read_text())
    frames = aseprite["frames"]
    assert [f["filename"] for f in frames] == [str(i) for i in range(len(frames))]
    tags = {t["name"]: t for t in aseprite["meta"]["frameTags"]}
    assert [tags[f"hero/{n}"]["direction"] for n in ("walk", "idle", "run")] == ["pingpong", "reverse", "forward"]
    walk = tags["hero/walk"]
    assert [f["duration"] for f in frames[walk["from"] : walk["to"] + 1]] == [125, 125, 375]
    idle = tags["hero/idle"]
    assert [f["duration"] for f in frames[idle["from"] : idle["to"] + 1]] == [100, 300]

    tp = json.loads((timed / "build/sprites/texturepacker/all_0.json").read_text())
    # play order for one cycle; a repeated name is the same stored frame
    assert tp["animations"]["hero/walk"] == ["hero/walk/0", "hero/walk/1", "hero/walk/2", "hero/walk/1"]
    assert tp["animations"]["hero/idle"] == ["hero/idle/1", "hero/idle/0"]
    assert [tp["frames"][f"hero/walk/{k}"]["duration"] for k in range(3)] == [125, 125, 375]
    assert tp["frames"]["hero/run/0"]["duration"] == 125 and "duration" not in tp["frames"]["coin"]

    tres = (timed / "godot/sprites/hero.tres").read_text()
    anims = {
        name: body for body, name in re.findall(r'"frames": \[(.*?)\],\n"loop": \w+,\n"name": &"(\w+)"', tres, re.S)
    }
    frame = re.compile(r'"duration": ([\d.]+),\n"texture": SubResource\("(\w+)"\)')
    subs = {name: frame.findall(body) for name, body in anims.items()}
    # walk at 8 fps: durations relative to speed, play order 0 1 2 1
    assert [d for d, _ in subs["walk"]] == ["1.0", "1.0", "3.0", "1.0"]
    assert subs["walk"][1][1] == subs["walk"][3][1]
    idle_speed = re.search(r'"name": &"idle",\n"speed": ([\d.]+)', tres).group(1)
    # idle reversed: 300 ms then 100 ms, as multiples of one tick at the animation's speed
    assert [float(d) for d, _ in subs["idle"]] == pytest.approx([0.3 * float(idle_speed), 0.1 * float(idle_speed)])

    ron = (timed / "bevy/assets/sprites/all.atlas.ron").read_text()
    walk_clip = r'"walk": \(frames: \[\d+, \d+, \d+\], fps: 8\.0, looping: true, durations: \[125\.0, 125\.0, 375\.0\]'
    assert re.search(walk_clip + r', playback: "pingpong"\)', ron)
    assert re.search(r'"run": \(frames: \[\d+, \d+\], fps: 8\.0, looping: true\)', ron)


def test_filename_format_tokens_follow_aseprite():
    naming = FrameNaming(frame=4, tagframe=1, title="hero", tag="hero/walk", duration=125, path="sprites/")
    assert format_filename("{frame}", naming) == "4"
    assert format_filename("{title} {frame}.{extension}", naming) == "hero 4.png"
    assert format_filename("{tag}/{tagframe001}", naming) == "hero/walk/002"
    assert format_filename("{frame01}|{frame000}|{tagframe}", naming) == "05|004|1"
    assert format_filename("{path}/{name} {duration}", naming) == "sprites/hero.png 125"


def test_filename_format_is_used_and_checked(tmp_path):
    Builder(project(tmp_path, 'filename_format = "{title} {frame}.{extension}"')).build()
    doc = json.loads((tmp_path / "build/sprites/aseprite/all_0.json").read_text())
    assert doc["frames"][0]["filename"] == "hero 0.png" and doc["frames"][-1]["filename"].startswith("coin ")

    with pytest.raises(InvalidInput) as error:
        load_manifest(project(tmp_path, 'filename_format = "{sprite}-{frame}"'))
    assert "unknown token {sprite}" in error.value.diagnostics[0].format()
    assert error.value.diagnostics[0].key == "export.aseprite.filename_format"

    with pytest.raises(InvalidInput) as error:  # {tag} alone names every frame of a tag alike
        Builder(project(tmp_path, 'filename_format = "{tag}"')).build()
    (problem,) = error.value.diagnostics
    assert problem.key == "export.aseprite.filename_format" and problem.line == 26
    assert "'hero/walk' names both hero/walk/0 and hero/walk/1" in problem.format()


def test_the_preview_plays_frames_in_play_order_with_their_durations(tmp_path):
    from sparky_assets.preview.document import collect

    Builder(project(tmp_path)).build()
    hero = next(s for s in collect(tmp_path)["sprites"] if s["name"] == "hero")
    anims = {a["name"]: a for a in hero["animations"]}
    walk, idle = anims["walk"], anims["idle"]
    assert [walk["frames"][k] - walk["frames"][0] for k in range(4)] == [0, 1, 2, 1]  # ping-pong
    assert walk["durations_ms"] == [125, 125, 375, 125]
    assert idle["frames"][0] == idle["frames"][1] + 1 and idle["durations_ms"] == [300, 100]  # reversed


def test_a_repeat_count_stops_the_animation_after_that_many_plays(tmp_path):
    path = project(tmp_path)
    path.write_text(path.read_text().replace("run = 2", "run = { frames = 2, repeat = 3 }"))
    run = load_manifest(path).sprite("hero").animations[2]
    assert (run.repeat, run.loop, run.timed) == (3, False, True)
    Builder(path).build()
    tags = {
        t["name"]: t
        for t in json.loads((tmp_path / "build/sprites/aseprite/all_0.json").read_text())["meta"]["frameTags"]
    }
    assert tags["hero/run"]["repeat"] == "3" and "repeat" not in tags["hero/walk"]  # Aseprite writes it as a string
    ron = (tmp_path / "bevy/assets/sprites/all.atlas.ron").read_text()
    assert re.search(r'"run": \(frames: \[\d+, \d+\], fps: 8\.0, looping: false, repeat: 3\)', ron)
    sheets = json.loads((tmp_path / "build/sprites/sheets/all.json").read_text())
    assert next(a for a in sheets["animations"] if a["name"] == "run")["repeat"] == 3
