"""Phaser 3 (npm ``phaser``, installed by .ci/run into ``.tools/phaser``) in headless
Chromium loads the Aseprite and TexturePacker exports: every animation Phaser makes
from them is played frame by frame on a manual clock, and what it shows — which
frame (its rectangle in the page), in which order, for how many milliseconds — is
compared with the manifest; so are the pivots and 9-slice borders Phaser's frames carry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sparky_assets.pipeline.engine import Builder

REPO = Path(__file__).resolve().parents[2]
PHASER_VERSION = "3.90.0"
PHASER = Path(
    os.environ.get("SPARKY_PHASER") or REPO / ".tools/phaser/node_modules/phaser/dist/phaser.min.js"
)  # fmt: skip

MANIFEST = """
[project]
name = "phaser"
palette = "pico-8"

[[sprite]]
name = "hero"
style = "character"
size = [16, 16]
animations = { walk = { frames = 3, fps = 8, holds = [1, 1, 3], direction = "pingpong" }, idle = { frames = 3, durations = [100, 200, 300], direction = "reverse" }, run = 4, jump = { frames = 3, durations = [50, 60, 70], direction = "pingpong_reverse" } }

[[sprite]]
name = "coin"
style = "item"
size = 8
pivot = "bottom-center"
slices = { panel = { rect = [0, 0, 8, 8], center = [2, 3, 4, 2] } }

[[atlas]]
name = "all"
sprites = ["hero", "coin"]

[export.aseprite]
[export.texturepacker]
"""

# Plays every animation once (Phaser's default: no repeat) on a clock stepped 1 ms at a
# time, on a sprite outside the scene's update list, and records each frame shown.
PAGE = """<!doctype html><script src="/phaser.js"></script><script>
function play(scene, texture, key) {
  const sprite = new Phaser.GameObjects.Sprite(scene, 0, 0, texture);
  sprite.play(key);
  const shown = [];
  let t = 0, last = null;
  while (sprite.anims.isPlaying && t < 20000) {
    const f = sprite.frame;
    if (f.name !== last) { shown.push({name: f.name, at: t, rect: [f.cutX, f.cutY, f.cutWidth, f.cutHeight]}); last = f.name; }
    t += 1;
    sprite.anims.update(t, 1);
  }
  const f = sprite.frame;
  if (f.name !== last) shown.push({name: f.name, at: t, rect: [f.cutX, f.cutY, f.cutWidth, f.cutHeight]});
  return shown;
}
class Check extends Phaser.Scene {
  preload() {
    this.load.aseprite("ase", "ase/all_0.png", "ase/all_0.json");
    this.load.atlas("tp", "tp/all_0.png", "tp/all_0.json");
  }
  create() {
    const out = {aseprite: {}, texturepacker: {}};
    for (const anim of this.anims.createFromAseprite("ase")) {
      out.aseprite[anim.key] = {yoyo: anim.yoyo, rate: anim.frameRate, frames: anim.frames.map(f => [f.textureFrame, f.duration]),
                                played: play(this, "ase", anim.key)};
    }
    const tp = this.textures.get("tp");
    for (const [name, names] of Object.entries(tp.customData.animations)) {
      const key = "tp:" + name;
      this.anims.create({key, frames: names.map(n => ({key: "tp", frame: n, duration: tp.get(n).customData.duration}))});
      out.texturepacker[name] = {played: play(this, "tp", key)};
    }
    out.frames = {};
    for (const name of tp.getFrameNames()) {
      const f = tp.get(name);
      out.frames[name] = {pivot: [f.customPivot, f.pivotX, f.pivotY], scale9: f.scale9,
                          borders: f.scale9 ? [f.data.scale9Borders.x, f.data.scale9Borders.y, f.data.scale9Borders.w, f.data.scale9Borders.h] : null};
    }
    window.result = out;
  }
}
new Phaser.Game({type: Phaser.HEADLESS, width: 64, height: 64, banner: false, scene: Check});
</script>"""


@pytest.fixture
def phaser_js() -> bytes:
    if not PHASER.is_file():
        pytest.skip(f"Phaser missing: npm install phaser@{PHASER_VERSION} into .tools/phaser (.ci/run does)")
    return PHASER.read_bytes()


def _expected_played(names: list[str], durations: list[int], direction: str) -> list[tuple[str, int]]:
    """(frame, ms shown) as Phaser plays a tag once: ``reverse`` backwards, ``pingpong``
    there and back to the first frame (yoyo); Phaser 3 has no ``pingpong_reverse``
    and plays it forward."""
    order = list(range(len(names)))
    if direction == "reverse":
        order.reverse()
    elif direction == "pingpong":
        order += order[-2::-1]
    return [(names[k], durations[k]) for k in order]


def test_phaser_plays_every_frame_tag_direction_and_duration(tmp_path, browser_context, loopback_server, phaser_js):
    (tmp_path / "sparky.toml").write_text(MANIFEST)
    Builder(tmp_path / "sparky.toml").build()
    out = tmp_path / "build/sprites"
    loopback_server.add_file("phaser.js", phaser_js)
    loopback_server.add_file("index.html", PAGE)
    loopback_server.add_folder("ase", out / "aseprite")
    loopback_server.add_folder("tp", out / "texturepacker")
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(loopback_server.url("index.html"))
    page.wait_for_function("window.result !== undefined", timeout=30000)
    result = page.evaluate("window.result")
    assert not errors, errors

    sheets = json.loads((out / "sheets/all.json").read_text())
    rect_of = {(f["sprite"], f["animation"], f["frame"]): f["rect"] for f in sheets["frames"]}
    manifest_anims = {
        "walk": ([125, 125, 375], "pingpong"),
        "idle": ([100, 200, 300], "reverse"),
        "run": ([125] * 4, "forward"),
        "jump": ([50, 60, 70], "pingpong_reverse"),
    }

    # Aseprite: createFromAseprite makes one animation per tag, named by it
    ase = result["aseprite"]
    assert sorted(ase) == sorted(f"hero/{n}" for n in manifest_anims)
    aseprite_doc = json.loads((out / "aseprite/all_0.json").read_text())
    tags = {t["name"]: t for t in aseprite_doc["meta"]["frameTags"]}
    for name, (durations, direction) in manifest_anims.items():
        tag = tags[f"hero/{name}"]
        names = [str(i) for i in range(tag["from"], tag["to"] + 1)]
        anim = ase[f"hero/{name}"]
        assert anim["yoyo"] is (direction == "pingpong")
        expected = _expected_played(names, durations, direction)
        played = anim["played"]
        assert [p["name"] for p in played] == [n for n, _ in expected], name
        # each frame shows for its duration (the last one until the animation stops)
        assert [b["at"] - a["at"] for a, b in zip(played, played[1:])] == [ms for _, ms in expected][:-1], name
        for p in played:  # the frame Phaser shows is this animation's frame, cut where the sheet has it
            k = int(p["name"]) - tag["from"]
            assert p["rect"] == rect_of[("hero", name, k)], (name, p)

    # TexturePacker: the play-order lists with per-frame durations
    tp = result["texturepacker"]
    assert sorted(tp) == sorted(f"hero/{n}" for n in manifest_anims)
    for name, (durations, direction) in manifest_anims.items():
        cycle = {
            "forward": list(range(len(durations))),
            "reverse": list(range(len(durations)))[::-1],
            "pingpong": [0, 1, 2, 1],
            "pingpong_reverse": [2, 1, 0, 1],
        }[direction]
        played = tp[f"hero/{name}"]["played"]
        assert [p["name"] for p in played] == [f"hero/{name}/{k}" for k in cycle], name
        assert [b["at"] - a["at"] for a, b in zip(played, played[1:])] == [durations[k] for k in cycle][:-1], name
        for p, k in zip(played, cycle):
            assert p["rect"] == rect_of[("hero", name, k)], (name, p)

    # pivots and 9-slice borders as Phaser's frames carry them
    frames = result["frames"]
    assert frames["coin"] == {"pivot": [True, 0.5, 1], "scale9": True, "borders": [2, 3, 4, 2]}
    assert frames["hero/walk/0"] == {"pivot": [True, 0.5, 0.5], "scale9": False, "borders": None}
