"""The Godot exporter's ``.tres`` files, loaded by the real Godot 4.6 runtime.

Two projects are built for real and their Godot export is loaded with Godot's own loaders
(the example together with its own project.godot and addons/, so its settings and the
SparkyBridge autoload load as well)
(``tests/godot4/gd/load_resources.gd``): the example game (``examples/dungeon``) and a
project made to stress the layout (several pages per atlas, trimmed frames, two palettes,
animations whose frames span pages, different fps and loop settings, a still sprite).
Every resource must load with no Godot error, have the right class, and agree with the
packer's layout as the TexturePacker export of the same build states it: each
AtlasTexture's page, region, margin (trim offsets) and size; each SpriteFrames'
animation names, speed, loop flag, frame count and frame durations (per-frame timing
relative to the speed; reverse/ping-pong animations in play order), from the manifest;
pivots and slices as the resources' metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparky_assets.cli.main import main
from sparky_assets.manifest.load import load_manifest
from tests.godot4.harness import MAIN_SCENE
from tests.helpers import copy_example

HERE = Path(__file__).resolve().parent
LOADER = (HERE / "gd" / "load_resources.gd").read_text(encoding="utf-8")

STRESS_MANIFEST = """
[project]
name = "stress"
out = "build/sprites"
palette = "endesga-32"
seed = 99
fps = 8

[[sprite]]
name = "hero"
style = "character"
size = [16, 16]
animations = { idle = { frames = 4, holds = [1, 2, 1, 3], direction = "pingpong" }, walk = { frames = 6, fps = 12, direction = "reverse" }, die = { frames = 3, fps = 5, loop = false, durations = [100, 250, 400] } }
outline = true
pivot = "bottom-center"

[[sprite]]
name = "slime"
style = "creature"
size = [16, 16]
animations = { hop = 5 }
palette = "sweetie-16"

[[sprite]]
name = "gem"
style = "item"
size = [12, 12]
animations = { shine = 4 }
fps = 10
pivot = [6, 11]
slices = { hitbox = [1, 1, 10, 10], panel = { rect = [0, 0, 12, 12], center = [3, 3, 6, 6] } }
palette = "sweetie-16"
dither = "bayer4"

[[sprite]]
name = "coin"
style = "item"
size = [8, 8]

[[atlas]]
name = "mixed"
sprites = ["*"]
max_size = 40
padding = 1
trim = true

[export.godot]
project = "game"
dir = "sprites"

[export.texturepacker]
dir = "build/tp"
"""


def _build(root: Path) -> None:
    assert main(["-q", "build", str(root)]) == 0


def _layout(texturepacker_dir: Path, res_dir: str) -> dict[str, dict]:
    """Frame key → the AtlasTexture Godot must make of it, from the TexturePacker pages."""
    frames = {}
    for page_file in sorted(texturepacker_dir.glob("*.json")):
        page = json.loads(page_file.read_text(encoding="utf-8"))
        meta = page["meta"]
        for key, frame in page["frames"].items():
            rect, source, offset = frame["frame"], frame["sourceSize"], frame["spriteSourceSize"]
            margin = (
                [offset["x"], offset["y"], source["w"] - rect["w"], source["h"] - rect["h"]]
                if frame["trimmed"]
                else [0, 0, 0, 0]
            )
            frames[key] = {
                "class": "AtlasTexture",
                "atlas": f"res://{res_dir}/{meta['image']}",
                "atlas_is_page": True,
                "atlas_size": [meta["size"]["w"], meta["size"]["h"]],
                "region": [rect["x"], rect["y"], rect["w"], rect["h"]],
                "margin": margin,
                "size": [source["w"], source["h"]],
            }
    return frames


def expected_resources(manifest_path: Path, texturepacker_dir: Path, res_dir: str) -> dict[str, dict]:
    """res path of every exported ``.tres`` → what Godot must load from it."""
    layout = _layout(texturepacker_dir, res_dir)
    manifest = load_manifest(manifest_path)
    expected = {f"res://{res_dir}/{t.name}.tres": {"class": "TileSet"} for t in manifest.tilesets}
    for sprite in manifest.sprites:
        path = f"res://{res_dir}/{sprite.name}.tres"
        if not sprite.animations:
            expected[path] = layout[sprite.name]
            continue
        animations = [
            {
                "name": animation.name,
                "speed": float(animation.fps),
                "loop": animation.loop,
                "frames": [
                    {
                        "duration": _relative_duration(animation, index),
                        "texture": layout[f"{sprite.name}/{animation.name}/{index}"],
                    }
                    for index in _play_order(animation)
                ],
            }
            for animation in sorted(sprite.animations, key=lambda a: a.name)
        ]
        expected[path] = {"class": "SpriteFrames", "animations": animations}
    return expected


def _play_order(animation) -> list[int]:
    """Frame indices in the order one cycle plays them (SpriteFrames only plays forward)."""
    forward = list(range(animation.frames))
    return {
        "forward": forward,
        "reverse": forward[::-1],
        "pingpong": forward + forward[-2:0:-1],
        "pingpong_reverse": forward[::-1] + forward[1:-1],
    }[animation.playback]


def _relative_duration(animation, index: int) -> float:
    """A frame's duration as Godot reads it: ticks of the animation's speed."""
    if not animation.durations:
        return 1.0
    return round(animation.durations[index] * animation.fps / 1000.0, 6)


def load_in_godot(godot_web, game: Path, res_dir: str, with_project: bool = False) -> dict[str, dict]:
    """Load every exported page and .tres of ``game`` in Godot 4.6; with ``with_project`` the
    game's own project.godot (its main scene pointed at the loader) and addons/ come along,
    so its settings and the SparkyBridge autoload load too."""
    folder = game / res_dir
    files = {f"{res_dir}/{p.name}": p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".png", ".tres")}
    cases = {
        "pages": [f"res://{name}" for name in files if name.endswith(".png")],
        "resources": [f"res://{name}" for name in files if name.endswith(".tres")],
    }
    if with_project:
        for path in sorted((game / "addons").rglob("*")):
            if path.is_file():
                files[path.relative_to(game).as_posix()] = path.read_bytes()
        project = (game / "project.godot").read_text(encoding="utf-8")
        assert "run/main_scene" not in project, "the example has no main scene of its own"
        files["project.godot"] = project.replace(
            "[application]\n", f'[application]\n\nrun/main_scene="res://{MAIN_SCENE}"', 1
        )
    run = godot_web.run({**files, "sparky_test/cases.json": json.dumps(cases)}, script=LOADER)
    run.assert_clean()
    loaded = {record["path"]: record for record in run.records if "path" in record}
    assert set(loaded) == set(cases["resources"])
    (root,) = [record["root_nodes"] for record in run.records if "root_nodes" in record]
    assert ("SparkyBridge" in root) == with_project, root
    return loaded


def _normalise(record: dict) -> dict:
    record = {key: value for key, value in record.items() if key not in ("path", "loaded", "meta")}
    if record.get("class") == "SpriteFrames":
        record["animations"] = sorted(record["animations"], key=lambda a: a["name"])
    return record


def assert_matches(loaded: dict[str, dict], expected: dict[str, dict]) -> None:
    assert set(loaded) == set(expected), f"exported {sorted(loaded)}, manifest has {sorted(expected)}"
    for path, want in expected.items():
        got = loaded[path]
        assert got["loaded"], f"{path} did not load"
        got = _normalise(got)
        if got != want:
            lines = [f"{path}:"]
            if got.get("class") != want["class"]:
                lines.append(f"  class {got.get('class')} != {want['class']}")
            for mine, theirs in zip(got.get("animations", []), want.get("animations", [])):
                for key in ("name", "speed", "loop"):
                    if mine[key] != theirs[key]:
                        lines.append(f"  {theirs['name']}: {key} {mine[key]!r} != {theirs[key]!r}")
                for index, (frame, target) in enumerate(zip(mine["frames"], theirs["frames"])):
                    if frame != target:
                        lines.append(f"  {theirs['name']}[{index}]: {frame} != {target}")
            raise AssertionError("\n".join(lines) + f"\n  got {got}\n  expected {want}")


@pytest.fixture(scope="module")
def example_build(tmp_path_factory) -> Path:
    root = copy_example(tmp_path_factory.mktemp("example"))
    _build(root)
    return root


@pytest.fixture(scope="module")
def stress_build(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stress")
    (root / "game").mkdir()
    (root / "game" / "project.godot").write_text("config_version=5\n", encoding="utf-8")
    (root / "sparky.toml").write_text(STRESS_MANIFEST, encoding="utf-8")
    _build(root)
    return root


def test_every_example_tres_loads_in_godot_46_and_matches_the_layout(godot_web, example_build):
    loaded = load_in_godot(godot_web, example_build / "godot-game", "sprites", with_project=True)
    expected = expected_resources(
        example_build / "sparky.toml", example_build / "build/sprites/texturepacker", "sprites"
    )
    assert len(expected) == 23  # 22 sprites and the dungeon TileSet (tests/godot4/test_tileset_godot4.py checks it)
    assert_matches(loaded, expected)


def test_multi_page_trimmed_multi_palette_export_loads_in_godot_46(godot_web, stress_build):
    layout = _layout(stress_build / "build/tp", "sprites")
    pages = {frame["atlas"] for frame in layout.values()}
    assert len(pages) >= 3, f"the stress atlas must span several pages, got {sorted(pages)}"
    assert any(frame["margin"] != [0, 0, 0, 0] for frame in layout.values()), "some frames must be trimmed"
    spanning = {key.rsplit("/", 1)[0] for key in layout if "/" in key}
    assert any(len({layout[k]["atlas"] for k in layout if k.startswith(anim + "/")}) > 1 for anim in spanning), (
        "an animation must span pages (one SpriteFrames referencing several page textures)"
    )

    loaded = load_in_godot(godot_web, stress_build / "game", "sprites")
    assert_matches(loaded, expected_resources(stress_build / "sparky.toml", stress_build / "build/tp", "sprites"))

    # pivots and slices, as Godot reads the metadata (var_to_str of each value)
    hero, gem = loaded["res://sprites/hero.tres"]["meta"], loaded["res://sprites/gem.tres"]["meta"]
    assert hero["pivot"] == "Vector2(8, 16)" and hero["offset"] == "Vector2(0, -8)"
    assert gem["pivot"] == "Vector2(6, 11)" and gem["offset"] == "Vector2(0, -5)"
    assert "Rect2(1, 1, 10, 10)" in gem["slices"] and "Rect2(0, 0, 12, 12)" in gem["slices"]
    nine = gem["nine_slices"]
    assert "PackedInt32Array(3, 3, 3, 3)" in nine and "mixed_" in nine, nine
