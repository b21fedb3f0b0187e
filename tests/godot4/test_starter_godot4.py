"""``sparky-assets init --engine godot`` makes a game that runs: its main scene, in Godot 4.6.

The starter is created and built for real, then its files (project.godot with the
SparkyBridge autoload and pixel-art settings, main.tscn/main.gd, the copied addon, the
exported sprites) are packed as they are; only the project's main scene is pointed at a
driver (tests/godot4/gd/play_starter.gd) that instantiates the starter's ``main.tscn``.
The hero's AnimatedSprite2D must play the ``walk`` clip from ``res://sprites/hero.tres``
and advance through its frames, with no Godot error.
"""

from __future__ import annotations

from pathlib import Path

from sparky_assets.cli.main import main
from tests.godot4.harness import MAIN_SCENE

DRIVER = (Path(__file__).resolve().parent / "gd" / "play_starter.gd").read_text(encoding="utf-8")


def project_files(root: Path) -> dict[str, bytes]:
    skip = {".sparky", "build", "sparky-generated", "palettes"}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not (set(p.relative_to(root).parts) & skip)
    }


def test_godot_starter_main_scene_plays_the_walk_clip_in_godot_46(godot_web, tmp_path):
    root = tmp_path / "my-game"
    assert main(["-q", "init", str(root), "--engine", "godot"]) == 0
    assert main(["-q", "build", str(root)]) == 0
    files = project_files(root)
    assert "addons/sparky_bridge/plugin.cfg" in files and "sprites/hero.tres" in files
    project = files["project.godot"].decode("utf-8")
    assert 'run/main_scene="res://main.tscn"' in project
    files["project.godot"] = project.replace('run/main_scene="res://main.tscn"', f'run/main_scene="res://{MAIN_SCENE}"')
    pages = sorted(f"res://{name}" for name in files if name.startswith("sprites/") and name.endswith(".png"))
    files["sparky_test/pages.txt"] = "\n".join(pages)

    run = godot_web.run(files, script=DRIVER)
    run.assert_clean()
    (state,) = [record for record in run.records if "playing" in record]
    assert state["playing"] and state["animation"] == "walk", state
    assert state["sprite_frames"] == "res://sprites/hero.tres"
    assert state["frame_count"] == 6 and state["frames_seen"] >= 3, state
    assert state["texture_page"] in pages and state["hint"] == ""
    assert state["bridge_autoload"], "project.godot registers the SparkyBridge autoload"
    assert state["plugins"] == ["res://addons/sparky_bridge/plugin.cfg"]
    assert (state["texture_filter"], state["snap_transforms"], state["snap_vertices"]) == (0, True, True)
