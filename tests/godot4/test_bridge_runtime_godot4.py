"""The addon's runtime autoload and editor session, driven by real protocol messages in Godot 4.6.

Two real builds of a small project (the second changes the hero's seed and its walk
clip's length, so regions, frame count and page pixels all change); build 2's
``assets-changed`` message, encoded by the project's own protocol module, reaches the
addon through ``Subscriber.decode_frames`` in-process (a web page has no raw TCP; the
socket path is tested in Godot 3, tests/integration/test_godot_bridge.py). The driver is
``tests/godot4/gd/bridge_in_game.gd``.

- runtime.gd: after build 2's files replace build 1's, the SpriteFrames an AnimatedSprite2D
  holds is the same object and describes build 2 (frame count, every region, the page's
  pixels): ``ResourceLoader.load(..., CACHE_MODE_REPLACE)`` swapped it in place;
  ``assets_reloaded`` names the page before the .tres.
- editor_session.gd (the editor plugin's logic): a hello rescans, build 2 becomes
  update_file for every Godot file and reimport_files for its page, nothing happens while
  the editor is busy, and a failed build gives one error line per problem and a toast.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image

from sparky_assets.hotreload.protocol import (
    AssetsChanged,
    BuildError,
    BuildFailed,
    Hello,
    encode,
)
from sparky_assets.pipeline.engine import Builder
from sparky_assets.watch.session import protocol_assets
from tests.godot4.pck import write_pck

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ADDON = REPO / "engine-bridges" / "godot" / "addons" / "sparky_bridge"
DRIVER = (HERE / "gd" / "bridge_in_game.gd").read_text(encoding="utf-8")
SESSION = "c3" * 16

MANIFEST = """
[project]
name = "swap"
palette = "endesga-32"
seed = {seed}

[[sprite]]
name = "hero"
style = "character"
size = [16, 16]
animations = {{ idle = 2, walk = {walk} }}

[[sprite]]
name = "coin"
style = "item"
size = [8, 8]

[[atlas]]
name = "things"
sprites = ["*"]
max_size = 64

[export.godot]
project = "game"
dir = "sprites"

[export.texturepacker]
dir = "build/tp"
"""


def build(root: Path, seed: int, walk: int):
    (root / "sparky.toml").write_text(MANIFEST.format(seed=seed, walk=walk), encoding="utf-8")
    report = Builder(root / "sparky.toml", durable=False).build()
    sprites = root / "game" / "sprites"
    files = {f"sprites/{p.name}": p.read_bytes() for p in sorted(sprites.iterdir())}
    return report, files, walk_layout(root, files)


def walk_layout(root: Path, files: dict[str, bytes]) -> list[dict]:
    """What Godot must show for hero/walk: each frame's region, page and page pixels."""
    (page_file,) = (root / "build/tp").glob("*.json")
    page = json.loads(page_file.read_text(encoding="utf-8"))
    rgba = Image.open(io.BytesIO(files[f"sprites/{page['meta']['image']}"])).convert("RGBA").tobytes()
    frames = []
    for key, frame in page["frames"].items():
        if key.startswith("hero/walk/"):
            rect = frame["frame"]
            frames.append(
                {
                    "region": [rect["x"], rect["y"], rect["w"], rect["h"]],
                    "page": f"res://sprites/{page['meta']['image']}",
                    "page_rgba_md5": hashlib.md5(rgba).hexdigest(),
                }
            )
    return frames


def test_runtime_swaps_build_2_in_place_and_the_editor_session_plans_it(godot_web, tmp_path):
    root = tmp_path / "swap"
    (root / "game").mkdir(parents=True)
    (root / "game" / "project.godot").write_text("config_version=5\n", encoding="utf-8")
    _, files_1, walk_1 = build(root, seed=7, walk=3)
    report_2, files_2, walk_2 = build(root, seed=8, walk=4)
    assert len(walk_1) == 3 and len(walk_2) == 4 and walk_1[0]["page_rgba_md5"] != walk_2[0]["page_rgba_md5"]

    # The report's changed files as the protocol's Asset (same fields), as `watch` publishes them.
    godot_assets = [a for a in protocol_assets(report_2) if a.target == "godot"]
    error = BuildError(message="unknown palette 'endesga32'", file="sparky.toml", line=5, column=11, stage="manifest")
    messages = [
        Hello(session=SESSION, seq=1, project="swap", interval_ms=2000, build=1),
        AssetsChanged(session=SESSION, seq=2, project="swap", build=2, assets=godot_assets),
        BuildFailed(session=SESSION, seq=3, project="swap", build=3, errors=[error]),
    ]
    lines = [f"{topic.hex()}\t{body.hex()}" for topic, body in map(encode, messages)]
    files = {
        **{f"addons/sparky_bridge/{p.name}": p.read_bytes() for p in ADDON.glob("*.gd")},
        **files_1,
        "sparky_test/v2.pck": write_pck(files_2),
        "sparky_test/messages.txt": "\n".join(lines),
    }
    run = godot_web.run(files, script=DRIVER)
    run.assert_clean()
    (runtime,) = [r for r in run.records if r.get("runtime")]
    (editor,) = [r for r in run.records if r.get("editor")]

    # runtime.gd: the same SpriteFrames object now shows build 2.
    assert runtime["mounted"] and runtime["event_kinds"] == ["message"] * 3
    assert runtime["rescan"] == [True, False, False]
    assert runtime["before"]["walk"] == walk_1
    assert runtime["same_instance"] and runtime["still_playing"]
    assert runtime["after"]["walk"] == walk_2
    changed = {a.engine_path for a in godot_assets if a.change != "removed"}
    pages = sorted(p for p in changed if p.endswith(".png"))
    assert runtime["reloaded"][: len(pages)] == pages, "pages reload before the resources using them"
    assert set(runtime["reloaded"]) == changed and runtime["signalled"] == [runtime["reloaded"]]

    # editor_session.gd: what the plugin asks of EditorFileSystem.
    hello, assets, failed = editor["steps"]
    assert hello["calls"] == [["scan"]] and hello["label"] == "Sparky: offline"
    assert not assets["applied_while_busy"] and assets["applied"]
    assert assets["calls"] == [["update_file", a.engine_path] for a in godot_assets] + [["reimport_files", pages]]
    assert assets["reports"] == [] and failed["calls"] == []
    assert failed["reports"] == [
        {"level": "error", "text": "sparky.toml:5:11: unknown palette 'endesga32' [stage manifest]"}
    ]
    assert failed["toasts"] == [
        {"text": "sparky-assets: build #3 failed (1 errors)", "detail": failed["reports"][0]["text"]}
    ]
