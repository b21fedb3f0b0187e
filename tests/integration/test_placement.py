"""Pivots (per sprite, per animation; points or names) and named slices (rects, points,
9-slices with pivots) reach every export in its own terms."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sparky_assets.errors import InvalidInput
from sparky_assets.manifest.load import load_manifest
from sparky_assets.manifest.schema import Slice
from sparky_assets.pipeline.engine import Builder

MANIFEST = """
[project]
name = "placement"
palette = "pico-8"

[[sprite]]
name = "hero"
style = "character"
size = [16, 16]
pivot = "bottom-center"
slices = { hitbox = [2, 4, 12, 12], hand = [13, 9], panel = { rect = [0, 0, 16, 16], center = [4, 4, 8, 8], pivot = [8, 16] } }
animations = { walk = { frames = 2, pivot = [8, 15] }, idle = 2 }

[[sprite]]
name = "gem"
style = "item"
size = 8
pivot = [3, 4]

[[atlas]]
name = "all"
sprites = ["hero", "gem"]

[export.bevy]
assets = "bevy/assets"
[export.godot]
project = "godot"
[export.aseprite]
[export.texturepacker]
"""


def project(tmp_path: Path) -> Path:
    (tmp_path / "godot").mkdir(exist_ok=True)
    (tmp_path / "godot" / "project.godot").write_text("")
    (tmp_path / "bevy" / "assets").mkdir(parents=True, exist_ok=True)
    (tmp_path / "sparky.toml").write_text(MANIFEST)
    return tmp_path / "sparky.toml"


def test_manifest_resolves_pivots_and_slices(tmp_path):
    manifest = load_manifest(project(tmp_path))
    hero = manifest.sprite("hero")
    assert hero.pivot == (8.0, 16.0) and hero.pivot_of("walk") == (8.0, 15.0) and hero.pivot_of("idle") == (8.0, 16.0)
    assert hero.slices == (
        Slice("hitbox", (2, 4, 12, 12)),
        Slice("hand", (13, 9, 1, 1)),
        Slice("panel", (0, 0, 16, 16), (4, 4, 8, 8), (8, 16)),
    )
    assert hero.slices[2].borders() == (4, 4, 4, 4)
    assert manifest.sprite("gem").pivot_of(None) == (3.0, 4.0)


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ('pivot = "bottom-center"', 'pivot = "bottom-centre"', "sprite[0].pivot", "bottom-center"),
        ('pivot = "bottom-center"', "pivot = [17, 3]", "sprite[0].pivot", "pivot outside the frame"),
        ("hitbox = [2, 4, 12, 12]", "hitbox = [2, 4, 15, 12]", "sprite[0].slices.hitbox", "inside 16x16"),
        ("center = [4, 4, 8, 8]", "center = [4, 4, 13, 8]", "sprite[0].slices.panel.center", "outside its slice"),
        ("hand = [13, 9]", "hand = [13]", "sprite[0].slices.hand", "[x, y, w, h], a point"),
        ("pivot = [8, 15]", "pivot = [8, 30]", "sprite[0].animations.walk.pivot", "pivot outside the frame"),
    ],
)
def test_bad_pivots_and_slices_are_located(tmp_path, old, new, key, words):
    path = project(tmp_path)
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(InvalidInput) as error:
        load_manifest(path)
    (problem,) = error.value.diagnostics
    assert problem.key == key and problem.line is not None, problem.format()
    assert words in problem.format()


def test_every_export_carries_pivots_and_slices(tmp_path):
    Builder(project(tmp_path)).build()
    tp = json.loads((tmp_path / "build/sprites/texturepacker/all_0.json").read_text())
    assert tp["frames"]["hero/walk/0"]["pivot"] == {"x": 0.5, "y": 0.9375}
    assert tp["frames"]["hero/idle/1"]["pivot"] == {"x": 0.5, "y": 1.0}
    assert tp["frames"]["gem"]["pivot"] == {"x": 0.375, "y": 0.5}
    assert tp["frames"]["hero/idle/0"]["scale9Borders"] == {"x": 4, "y": 4, "w": 8, "h": 8}
    assert "scale9Borders" not in tp["frames"]["gem"]

    ase = json.loads((tmp_path / "build/sprites/aseprite/all_0.json").read_text())
    tags = {t["name"]: t for t in ase["meta"]["frameTags"]}
    slices = {s["name"]: s for s in ase["meta"]["slices"]}
    assert slices["hero/hitbox"]["keys"] == [{"frame": 0, "bounds": {"x": 2, "y": 4, "w": 12, "h": 12}}]
    assert slices["hero/hand"]["keys"][0]["bounds"] == {"x": 13, "y": 9, "w": 1, "h": 1}
    panel = slices["hero/panel"]["keys"][0]
    assert panel["center"] == {"x": 4, "y": 4, "w": 8, "h": 8} and panel["pivot"] == {"x": 8, "y": 16}
    # the sprite's pivot: a whole-frame slice, one key per animation from its first frame
    pivots = [(k["frame"], k["pivot"]) for k in slices["hero"]["keys"]]
    assert pivots == [(tags["hero/walk"]["from"], {"x": 8, "y": 15}), (tags["hero/idle"]["from"], {"x": 8, "y": 16})]
    assert slices["gem"]["keys"][0]["pivot"] == {"x": 3, "y": 4}

    tres = (tmp_path / "godot/sprites/hero.tres").read_text()
    assert "metadata/pivot = Vector2(8.0, 16.0)" in tres
    assert "metadata/offset = Vector2(0.0, -8.0)" in tres  # AnimatedSprite2D (centered) offset
    assert 'metadata/offsets = {"walk": Vector2(0.0, -7.0)}' in tres
    assert (
        'metadata/slices = {"hitbox": Rect2(2, 4, 12, 12), "hand": Rect2(13, 9, 1, 1), "panel": Rect2(0, 0, 16, 16)}'
        in tres
    )
    sheets = json.loads((tmp_path / "build/sprites/sheets/all.json").read_text())
    first = next(f for f in sheets["frames"] if f["sprite"] == "hero")
    region = f"Rect2({first['rect'][0]}, {first['rect'][1]}, 16, 16)"
    assert re.search(
        r'metadata/nine_slices = \{"panel": \{"texture": ExtResource\("[\w]+"\), "region": ' + re.escape(region), tres
    )
    assert '"margins": PackedInt32Array(4, 4, 4, 4)' in tres
    gem = (tmp_path / "godot/sprites/gem.tres").read_text()
    assert "metadata/offset = Vector2(1.0, 0.0)" in gem

    ron = (tmp_path / "bevy/assets/sprites/all.atlas.ron").read_text()
    assert "pivot: (8.0, 16.0)," in ron and "pivot: (3.0, 4.0)," in ron
    assert '"panel": (rect: (0, 0, 16, 16), center: Some((4, 4, 8, 8)), pivot: Some((8, 16))),' in ron
    assert '"hand": (rect: (13, 9, 1, 1)),' in ron
    assert re.search(r'"walk": \(frames: \[\d+, \d+\], fps: 8\.0, looping: true, pivot: Some\(\(8\.0, 15\.0\)\)\)', ron)


def test_a_pivot_edit_rebuilds_the_exports(tmp_path):
    path = project(tmp_path)
    Builder(path).build()
    path.write_text(path.read_text().replace("pivot = [3, 4]", "pivot = [2, 2]"))
    Builder(path).build()
    tp = json.loads((tmp_path / "build/sprites/texturepacker/all_0.json").read_text())
    assert tp["frames"]["gem"]["pivot"] == {"x": 0.25, "y": 0.25}
