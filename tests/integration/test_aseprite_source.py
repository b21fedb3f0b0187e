"""``.aseprite``/``.ase`` sources: the reader on files the tests write (every chunk the
reader knows) and on three files made by Aseprite itself (tests/data/aseprite/README.md),
and builds from them — tags become animations with their durations and directions,
slices join the sprite's, layers are flattened or picked, an edit rebuilds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.errors import InvalidInput
from sparky_assets.generators.aseprite_file import AsepriteError, compose, read_aseprite
from sparky_assets.manifest.load import load_manifest
from sparky_assets.manifest.schema import Slice
from sparky_assets.pipeline.engine import Builder
from sparky_assets.watch.session import watched_files
from tests.aseprite_writer import WCel, WFile, WLayer, WSlice, WTag, write_aseprite
from tests.helpers import cut, rgba

DATA = Path(__file__).resolve().parents[1] / "data" / "aseprite"
RED, BLUE, GREEN = (255, 0, 77, 255), (41, 173, 255, 255), (0, 228, 54, 255)  # pico-8 colours


def _block(w: int, h: int, colour) -> np.ndarray:
    return np.tile(np.array(colour, np.uint8), (h, w, 1))


def hero_file() -> WFile:
    """8x8, four frames: a red body moving right, a blue hat in a group, a hidden green
    layer that must never show; frame 2's body cel uncompressed, frame 3's linked to frame 1."""
    layers = [WLayer("body"), WLayer("hats", group=True), WLayer("hat", level=1), WLayer("fx", visible=False)]
    frames = []
    for k in range(4):
        cels = [
            WCel(0, _block(4, 4, RED), x=k, y=3, compressed=k != 2),
            WCel(2, _block(2, 2, BLUE), x=1, y=0),
            WCel(3, _block(8, 8, GREEN)),
        ]
        if k == 3:
            cels[0] = WCel(0, link=1)
        frames.append(cels)
    return WFile(
        8,
        8,
        layers,
        frames,
        durations=[100, 150, 200, 80],
        tags=[WTag("walk", 0, 2, "pingpong"), WTag("idle cycle", 3, 3, "forward", repeat=1, data="calm")],
        slices=[WSlice("hitbox", (1, 1, 6, 6)), WSlice("panel", (0, 0, 8, 8), (2, 2, 4, 4), (4, 8), data="ui")],
    )


def expected_frame(k: int, hat: bool = True, body: bool = True) -> np.ndarray:
    out = np.zeros((8, 8, 4), np.uint8)
    x = 1 if k == 3 else k  # frame 3 links frame 1's cel
    if body:
        out[3:7, x : x + 4] = RED
    if hat:
        out[0:2, 1:3] = BLUE
    return out


def test_reader_reads_every_chunk_the_writer_writes():
    doc = read_aseprite(write_aseprite(hero_file()), "hero.aseprite")
    assert (doc.width, doc.height, doc.depth, doc.durations) == (8, 8, 32, [100, 150, 200, 80])
    assert [(layer.name, layer.kind, layer.parent, layer.visible) for layer in doc.layers] == [
        ("body", 0, None, True),
        ("hats", 1, None, True),
        ("hat", 0, 1, True),
        ("fx", 0, None, False),
    ]
    assert [(t.name, t.start, t.end, t.direction, t.repeat, t.data) for t in doc.tags] == [
        ("walk", 0, 2, "pingpong", 0, ""),
        ("idle cycle", 3, 3, "forward", 1, "calm"),
    ]
    panel = doc.slices[1]
    assert (panel.name, panel.data) == ("panel", "ui")
    assert (panel.keys[0].rect, panel.keys[0].center, panel.keys[0].pivot) == ((0, 0, 8, 8), (2, 2, 4, 4), (4, 8))
    for k in range(4):  # compressed, raw and linked cels; the hidden layer never drawn
        assert np.array_equal(compose(doc, k), expected_frame(k)), k
    assert np.array_equal(compose(doc, 0, [2]), expected_frame(0, body=False))


def test_layer_and_cel_opacity_blend_normally():
    f = WFile(2, 1, [WLayer("under"), WLayer("over", opacity=128)], [[WCel(0, _block(2, 1, RED)), WCel(1, _block(1, 1, BLUE), opacity=255)]], [100])  # fmt: skip
    got = compose(read_aseprite(write_aseprite(f)), 0)
    a = 128 / 255
    expected = np.rint(np.array(BLUE[:3]) * a + np.array(RED[:3]) * (1 - a)).astype(np.uint8)
    assert got[0, 0, :3].tolist() == expected.tolist() and got[0, 0, 3] == 255
    assert got[0, 1].tolist() == list(RED)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "shorter than the 128-byte header"),
        (b"\0" * 4 + b"\x00\x00" + b"\0" * 122, "not an Aseprite file"),
        ("truncate", "bad frame header"),
        ("bad-zlib", "does not decompress"),
    ],
)
def test_malformed_files_are_refused_with_a_reason(data, words):
    good = write_aseprite(hero_file())
    if data == "truncate":
        data = good[:200]
    elif data == "bad-zlib":
        at = good.index(b"\x78\x9c")  # the first zlib stream
        data = good[:at] + b"\xff\xff" + good[at + 2 :]
    with pytest.raises(AsepriteError, match=words):
        read_aseprite(data)


def test_files_made_by_aseprite_are_read():
    groups = read_aseprite((DATA / "layer-groups.ase").read_bytes())
    # as the asetools tests describe it: g1 > 1.1; g2 > 2.1, g2.2 > (2.2.1, 2.2.2)
    parent = {
        layer.name: (groups.layers[layer.parent].name if layer.parent is not None else None) for layer in groups.layers
    }
    assert parent == {"g1": None, "1.1": "g1", "g2": None, "g2.2": "g2", "2.2.1": "g2.2", "2.2.2": "g2.2", "2.1": "g2"}
    visibility = read_aseprite((DATA / "layer-visibility.ase").read_bytes())
    shown = [layer.name for i, layer in enumerate(visibility.layers) if layer.kind == 0 and visibility.layer_visible(i)]
    assert shown == ["3"]  # 1.1 hidden, 2.1 inside the hidden g2, 4 hidden
    indexed = read_aseprite((DATA / "indexed.aseprite").read_bytes())
    assert (indexed.width, indexed.height, indexed.depth, len(indexed.palette)) == (256, 256, 8, 16)
    image = compose(indexed, 0)
    colours = {tuple(c) for c in image.reshape(-1, 4) if c[3]}
    assert colours and colours <= {(*rgb, 255) for *rgb, _ in (p for p in indexed.palette)}


MANIFEST = """
[project]
name = "ase"
palette = "pico-8"

[[sprite]]
name = "hero"
source = "art/hero.aseprite"
{extra}

[[atlas]]
name = "all"
sprites = ["hero"]

[export.aseprite]
[export.bevy]
assets = "bevy/assets"
"""


def project(tmp_path: Path, extra: str = "", file: WFile | None = None) -> Path:
    (tmp_path / "art").mkdir(exist_ok=True)
    (tmp_path / "bevy" / "assets").mkdir(parents=True, exist_ok=True)
    (tmp_path / "art" / "hero.aseprite").write_bytes(write_aseprite(file or hero_file()))
    (tmp_path / "sparky.toml").write_text(MANIFEST.format(extra=extra))
    return tmp_path / "sparky.toml"


def _sheet_frames(root: Path) -> dict[tuple[str, int], np.ndarray]:
    doc = json.loads((root / "build/sprites/sheets/all.json").read_text())
    page = rgba(root / "build/sprites/sheets/all_0.png")
    return {(f["animation"], f["frame"]): cut(page, *f["rect"]) for f in doc["frames"]}


def test_tags_durations_slices_and_layers_become_the_sprite(tmp_path):
    hero = load_manifest(project(tmp_path)).sprite("hero")
    assert (hero.generator, hero.width, hero.height) == ("aseprite", 8, 8)
    walk, idle = hero.animations
    assert (walk.name, walk.frames, walk.durations, walk.playback, walk.loop) == (
        "walk",
        3,
        (100.0, 150.0, 200.0),
        "pingpong",
        True,
    )
    assert (idle.name, idle.frames, idle.durations, idle.loop, idle.repeat) == ("idle_cycle", 1, (80.0,), False, 1)
    assert hero.slices == (Slice("hitbox", (1, 1, 6, 6)), Slice("panel", (0, 0, 8, 8), (2, 2, 4, 4), (4, 8), "ui"))

    Builder(tmp_path / "sparky.toml").build()
    frames = _sheet_frames(tmp_path)
    for k in range(3):
        assert np.array_equal(frames[("walk", k)], expected_frame(k)), k
    assert np.array_equal(frames[("idle_cycle", 0)], expected_frame(3))
    ase = json.loads((tmp_path / "build/sprites/aseprite/all_0.json").read_text())
    tags = {t["name"]: t for t in ase["meta"]["frameTags"]}
    assert tags["hero/walk"]["direction"] == "pingpong"
    assert tags["hero/idle_cycle"]["repeat"] == "1" and "repeat" not in tags["hero/walk"]
    assert [f["duration"] for f in ase["frames"]] == [100, 150, 200, 80]
    slices = {s["name"]: s for s in ase["meta"]["slices"]}
    assert slices["hero/panel"]["data"] == "ui" and slices["hero/panel"]["keys"][0]["center"] == {
        "x": 2,
        "y": 2,
        "w": 4,
        "h": 4,
    }
    ron = (tmp_path / "bevy/assets/sprites/all.atlas.ron").read_text()
    assert (
        '"walk": (frames: [0, 1, 2], fps: 10.0, looping: true, durations: [100.0, 150.0, 200.0], playback: "pingpong")'
        in ron
    )


def test_layers_pick_layers_and_groups_and_unknown_names_are_located(tmp_path):
    project(tmp_path, 'layers = ["hats"]')
    Builder(tmp_path / "sparky.toml").build()
    assert np.array_equal(_sheet_frames(tmp_path)[("walk", 1)], expected_frame(1, body=False))
    project(tmp_path, 'layers = ["hatz"]')
    with pytest.raises(InvalidInput) as error:
        Builder(tmp_path / "sparky.toml").build()
    text = error.value.diagnostics[0].format()
    assert "no layer named 'hatz'" in text and "hats" in text and error.value.diagnostics[0].line is not None


def test_manifest_animations_take_frames_in_file_order_and_its_slices_win(tmp_path):
    path = project(tmp_path, "animations = { run = 4 }\nslices = { hitbox = [0, 0, 2, 2] }")
    hero = load_manifest(path).sprite("hero")
    assert [a.name for a in hero.animations] == ["run"] and hero.animations[0].durations == ()
    assert [s.name for s in hero.slices] == ["panel", "hitbox"] and hero.slices[1].rect == (0, 0, 2, 2)
    Builder(path).build()
    assert np.array_equal(_sheet_frames(tmp_path)[("run", 3)], expected_frame(3))


def test_a_broken_file_is_bad_input(tmp_path):
    path = project(tmp_path)
    (tmp_path / "art" / "hero.aseprite").write_bytes(b"not an aseprite file" * 10)
    with pytest.raises(InvalidInput, match="not an Aseprite file"):
        Builder(path).build()


def test_an_edit_of_the_file_is_watched_and_rebuilds(tmp_path):
    path = project(tmp_path)
    builder = Builder(path)
    builder.build()
    assert (tmp_path / "art" / "hero.aseprite").resolve() in watched_files(path, builder)
    edited = hero_file()
    edited.durations[0] = 300
    edited.frames[0][0] = WCel(0, _block(4, 4, GREEN), x=0, y=3)
    (tmp_path / "art" / "hero.aseprite").write_bytes(write_aseprite(edited))
    report = Builder(path).build()
    assert "hero" in report.ran["generate"] or "hero" in report.ran["process"]
    frame = _sheet_frames(tmp_path)[("walk", 0)]
    assert frame[4, 1].tolist() == list(GREEN)
    ase = json.loads((tmp_path / "build/sprites/aseprite/all_0.json").read_text())
    assert ase["frames"][0]["duration"] == 300


def test_real_aseprite_files_build(tmp_path):
    (tmp_path / "art").mkdir()
    for name in ("indexed.aseprite", "layer-visibility.ase"):
        shutil.copy(DATA / name, tmp_path / "art" / name)
    (tmp_path / "sparky.toml").write_text(
        '[project]\nname = "real"\n[[sprite]]\nname = "indexed"\nsource = "art/indexed.aseprite"\n'
        '[[sprite]]\nname = "layers"\nsource = "art/layer-visibility.ase"\n'
    )
    Builder(tmp_path / "sparky.toml").build()
    sheets = {p.name for p in (tmp_path / "build/sprites/sheets").glob("*.png")}
    assert sheets == {"indexed_0.png", "layers_0.png"}
    assert rgba(tmp_path / "build/sprites/sheets/indexed_0.png").shape[:2] == (256, 256)


def test_split_layers_makes_one_sprite_per_visible_layer(tmp_path):
    path = project(tmp_path, "split_layers = true")
    path.write_text(path.read_text().replace('sprites = ["hero"]', 'sprites = ["hero_*"]'))
    manifest = load_manifest(path)
    assert [(s.name, s.options["layers"]) for s in manifest.sprites] == [("hero_body", ["body"]), ("hero_hat", ["hat"])]
    Builder(path).build()
    doc = json.loads((tmp_path / "build/sprites/sheets/all.json").read_text())
    page = rgba(tmp_path / "build/sprites/sheets/all_0.png")
    by_key = {(f["sprite"], f["animation"], f["frame"]): cut(page, *f["rect"]) for f in doc["frames"]}
    assert np.array_equal(by_key[("hero_body", "walk", 2)], expected_frame(2, hat=False))
    assert np.array_equal(by_key[("hero_hat", "walk", 2)], expected_frame(2, body=False))
    # the hat is the same in every frame: stored once
    assert len({tuple(f["rect"]) for f in doc["frames"] if f["sprite"] == "hero_hat"}) == 1
