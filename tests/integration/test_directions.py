"""``directions = 4 | 8``: the manifest expands every animation into one clip per
facing, the procedural rig turns for each, and every export names the clips
(Bevy and Godot also say which facing each clip is)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparky_assets.errors import InvalidInput
from sparky_assets.manifest.load import load_manifest
from sparky_assets.pipeline.engine import Builder

MANIFEST = """
[project]
name = "dirs"
palette = "pico-8"

[[sprite]]
name = "hero"
style = "character"
size = [16, 16]
directions = 4
animations = {{ walk = 4, idle = {{ frames = 2, fps = 4 }} }}

[[sprite]]
name = "slime"
style = "creature"
directions = {slime_directions}

[[atlas]]
name = "all"
sprites = ["hero", "slime"]

[export.bevy]
assets = "bevy/assets"
[export.godot]
project = "godot"
[export.aseprite]
[export.texturepacker]
"""

FOUR = ["n", "e", "s", "w"]
EIGHT = ["n", "ne", "e", "se", "s", "sw", "w", "nw"]


def project(tmp_path: Path, slime_directions="8") -> Path:
    (tmp_path / "godot").mkdir()
    (tmp_path / "godot" / "project.godot").write_text("")
    (tmp_path / "bevy" / "assets").mkdir(parents=True)
    (tmp_path / "sparky.toml").write_text(MANIFEST.format(slime_directions=slime_directions))
    return tmp_path / "sparky.toml"


def test_manifest_expands_animations_per_facing(tmp_path):
    manifest = load_manifest(project(tmp_path))
    hero = manifest.sprite("hero")
    assert [a.name for a in hero.animations] == [f"walk_{d}" for d in FOUR] + [f"idle_{d}" for d in FOUR]
    assert [(a.base, a.direction, a.frames, a.fps) for a in hero.animations][4] == ("idle", "n", 2, 4.0)
    assert hero.options["directions"] == 4 and hero.frame_count == 24
    slime = manifest.sprite("slime")
    assert [a.name for a in slime.animations] == EIGHT and all(a.frames == 1 for a in slime.animations)


@pytest.mark.parametrize("value", ["3", '"eight"', "6", "16"])
def test_invalid_directions_are_located(tmp_path, value):
    with pytest.raises(InvalidInput) as error:
        load_manifest(project(tmp_path, value))
    (problem,) = error.value.diagnostics
    assert problem.key == "sprite[1].directions" and problem.line == 16
    text = problem.format()
    assert ("4" in text and "8" in text) if value != '"eight"' else ("an integer" in text)


def test_directional_clip_names_must_not_clash(tmp_path):
    path = project(tmp_path)
    path.write_text(path.read_text().replace("walk = 4,", "walk = 4, walk_e = 2,"))
    with pytest.raises(InvalidInput, match="walk_e"):
        load_manifest(path)


def test_every_export_names_the_directional_clips(tmp_path):
    path = project(tmp_path)
    report = Builder(path).build()
    assert sorted(report.ran["generate"]) == ["hero", "slime"]
    root = tmp_path
    hero_clips = [f"{a}_{d}" for a in ("walk", "idle") for d in FOUR]

    sheets = json.loads((root / "build/sprites/sheets/all.json").read_text())
    assert [a["name"] for a in sheets["animations"] if a["sprite"] == "hero"] == hero_clips
    aseprite = json.loads((root / "build/sprites/aseprite/all_0.json").read_text())
    assert [t["name"] for t in aseprite["meta"]["frameTags"]] == [f"hero/{c}" for c in hero_clips] + [
        f"slime/{d}" for d in EIGHT
    ]
    texturepacker = json.loads((root / "build/sprites/texturepacker/all_0.json").read_text())
    assert {f"hero/{c}/0" for c in hero_clips} <= set(texturepacker["frames"])

    ron = (root / "bevy/assets/sprites/all.atlas.ron").read_text()
    assert '            directions: ["n", "e", "s", "w"],' in ron
    assert '"walk_ne"' not in ron and '"ne": (frames: [' in ron
    for clip in hero_clips:
        base, direction = clip.rsplit("_", 1)
        assert re.search(
            rf'"{clip}": \(frames: \[[\d, ]+\], fps: [\d.]+, looping: true, animation: "{base}", direction: "{direction}"\)',
            ron,
        ), clip

    tres = (root / "godot/sprites/hero.tres").read_text()
    assert all(f'"name": &"{clip}"' in tres for clip in hero_clips)
    assert 'metadata/directions = PackedStringArray("n", "e", "s", "w")' in tres
    assert '"walk": {"n": "walk_n", "e": "walk_e", "s": "walk_s", "w": "walk_w"}' in tres
    assert 'metadata/directions = PackedStringArray("n", "ne", "e"' in (root / "godot/sprites/slime.tres").read_text()

    # The facings really differ: east is west mirrored, north is not south.
    sheet = np.asarray(Image.open(root / "build/sprites/sheets/all_0.png").convert("RGBA"))
    frames = {}
    for f in sheets["frames"]:
        if f["sprite"] == "hero" and f["frame"] == 0:
            x, y, w, h = f["rect"]
            frames[f["animation"]] = sheet[y : y + h, x : x + w]
    assert np.array_equal(frames["walk_e"][:, ::-1], frames["walk_w"])
    assert not np.array_equal(frames["walk_n"], frames["walk_s"])


def test_sprites_without_directions_export_as_before(tmp_path):
    """No directions: no new keys in the Bevy or Godot files (they stay byte-identical)."""
    path = project(tmp_path)
    text = path.read_text().replace("directions = 4\n", "").replace("directions = 8\n", "")
    path.write_text(text)
    Builder(path).build()
    assert "direction" not in (tmp_path / "bevy/assets/sprites/all.atlas.ron").read_text()
    assert "metadata/" not in (tmp_path / "godot/sprites/hero.tres").read_text()
