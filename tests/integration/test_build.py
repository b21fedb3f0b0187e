"""`sparky-assets build` end to end on the example project: invariants every output
must hold, and that all four metadata formats describe exactly the packed frames."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sparky_assets.cli.main import main
from sparky_assets.manifest.load import load_manifest
from sparky_assets.palettes.load import load_palette
from tests.helpers import copy_example, cut, rgba, snapshot


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = copy_example(tmp_path_factory.mktemp("ex"))
    assert main(["-q", "build", str(root)]) == 0
    return root


def sheet_docs(root):
    return {p.stem: json.loads(p.read_text()) for p in (root / "build/sprites/sheets").glob("*.json")}


def test_every_opaque_pixel_is_a_palette_colour_of_its_sprite(built):
    manifest = load_manifest(built)
    palettes = {s.name: {tuple(c) for c in load_palette(s.palette, built).colors} for s in manifest.sprites}
    for atlas, doc in sheet_docs(built).items():
        pages = [rgba(built / "build/sprites/sheets" / p["image"]) for p in doc["pages"]]
        covered = [np.zeros(p.shape[:2], bool) for p in pages]
        for f in doc["frames"]:
            x, y, w, h = f["rect"]
            px = cut(pages[f["page"]], x, y, w, h)
            assert set(np.unique(px[..., 3])) <= {0, 255}
            opaque = {tuple(int(v) for v in c) for c in px[px[..., 3] == 255][:, :3]}
            assert opaque <= palettes[f["sprite"]], (f["sprite"], opaque - palettes[f["sprite"]])
            covered[f["page"]][y : y + h, x : x + w] = True
        for page, cov in zip(pages, covered):
            # outside frames only transparent pixels or extruded copies of frame edges
            assert set(np.unique(page[..., 3])) <= {0, 255}


def test_regions_inside_pages_never_overlap_and_keep_padding(built):
    manifest = load_manifest(built)
    padding = {a.name: a.padding for a in manifest.atlases}
    extrude = {a.name: a.extrude for a in manifest.atlases}
    for atlas, doc in sheet_docs(built).items():
        rects = {}
        for f in doc["frames"]:
            x, y, w, h = f["rect"]
            pw, ph = doc["pages"][f["page"]]["size"]
            assert 0 <= x and 0 <= y and x + w <= pw and y + h <= ph
            rects[(f["page"], x, y, w, h)] = True
        gap = padding[atlas] + 2 * extrude[atlas]
        keys = list(rects)
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                if a[0] != b[0]:
                    continue
                _, ax, ay, aw, ah = a
                _, bx, by, bw, bh = b
                separated = ax + aw + gap <= bx or bx + bw + gap <= ax or ay + ah + gap <= by or by + bh + gap <= ay
                assert separated, (atlas, a, b)


def _frames_by_key(built):
    """(atlas, key) → pixels cut by the sheets JSON (the reference)."""
    out = {}
    for atlas, doc in sheet_docs(built).items():
        pages = [rgba(built / "build/sprites/sheets" / p["image"]) for p in doc["pages"]]
        for f in doc["frames"]:
            key = f["sprite"] if f["animation"] is None else f"{f['sprite']}/{f['animation']}/{f['frame']}"
            out[(atlas, key)] = (cut(pages[f["page"]], *f["rect"]), f)
    return out


def test_sheet_frames_are_the_locked_frames_untrimmed_back_to_source(built):
    from sparky_assets.pipeline.engine import check

    project = check(built)
    from sparky_assets.pipeline.stages import process_frame  # the stage function, run directly

    frames = _frames_by_key(built)
    for (atlas, key), (pixels, f) in frames.items():
        plan = project.sprites[f["sprite"]]
        gen = plan.generator.generate([plan.request])[0]
        index = 0
        if f["animation"] is not None:
            for a in plan.spec.animations:
                if a.name == f["animation"]:
                    index += f["frame"]
                    break
                index += a.frames
        expected = process_frame(plan, gen[index])
        sw, sh = f["source_size"]
        ox, oy = f["offset"]
        full = np.zeros((sh, sw, 4), np.uint8)
        full[oy : oy + pixels.shape[0], ox : ox + pixels.shape[1]] = pixels
        assert np.array_equal(full, expected), key


def test_texturepacker_and_aseprite_cut_out_the_same_frames(built):
    ref = _frames_by_key(built)
    for fmt in ("texturepacker", "aseprite"):
        seen = 0
        for path in sorted((built / "build/sprites" / fmt).glob("*.json")):
            doc = json.loads(path.read_text())
            atlas = path.stem.rsplit("_", 1)[0]
            page = rgba(path.parent / doc["meta"]["image"])
            if fmt == "texturepacker":
                entries = list(doc["frames"].items())
            else:  # names are indices ({frame}); a frame's key is its tag and place in it
                assert [e["filename"] for e in doc["frames"]] == [str(i) for i in range(len(doc["frames"]))]
                keys = {}
                for tag in doc["meta"]["frameTags"]:
                    keys.update({i: f"{tag['name']}/{i - tag['from']}" for i in range(tag["from"], tag["to"] + 1)})
                stills = [k for (a, k) in ref if a == atlas and k.count("/") == 0]
                untagged = [i for i in range(len(doc["frames"])) if i not in keys]
                assert len(untagged) == len(stills)
                keys.update(zip(untagged, stills))
                entries = [(keys[i], e) for i, e in enumerate(doc["frames"])]
            for key, e in entries:
                fr = e["frame"]
                assert e["rotated"] is False
                assert set(e) >= {"frame", "rotated", "trimmed", "spriteSourceSize", "sourceSize"}
                assert np.array_equal(cut(page, fr["x"], fr["y"], fr["w"], fr["h"]), ref[(atlas, key)][0]), (fmt, key)
                seen += 1
            assert set(doc["meta"]) >= {"app", "version", "image", "format", "size", "scale"}
            if fmt == "aseprite":
                for tag in doc["meta"]["frameTags"]:
                    assert tag["direction"] == "forward"
        assert seen == len(ref), fmt


def test_bevy_atlas_ron_rects_cut_out_the_same_frames(built):
    text = (built / "bevy-game/assets/sprites/characters.atlas.ron").read_text()
    rects = [tuple(map(int, m)) for m in re.findall(r"\(min: \((\d+), (\d+)\), max: \((\d+), (\d+)\)\)", text)]
    frames = re.findall(r'\(sprite: "([^"]+)", animation: "([^"]*)", frame: (\d+), page: (\d+), index: (\d+)', text)
    page = rgba(built / "bevy-game/assets/sprites/characters_0.png")
    ref = _frames_by_key(built)
    assert frames
    for sprite, anim, frame, pg, index in frames:
        x0, y0, x1, y1 = rects[int(index)]
        key = sprite if not anim else f"{sprite}/{anim}/{frame}"
        assert np.array_equal(cut(page, x0, y0, x1 - x0, y1 - y0), ref[("characters", key)][0]), key
    assert "format: 1" in text and "clips: {" in text and '"walk": (frames: [' in text


_TRES_HEADER = re.compile(
    r'^\[gd_resource type="(SpriteFrames|AtlasTexture)" load_steps=(\d+) format=3 uid="uid://[a-y0-8]+"\]$'
)


def test_godot_tres_files_are_well_formed_godot4_resources(built):
    ref = _frames_by_key(built)
    tilesets = {f"{t.name}.tres" for t in load_manifest(built / "sparky.toml").tilesets}  # test_tilesets.py
    tres = sorted(p for p in (built / "godot-game/sprites").glob("*.tres") if p.name not in tilesets)
    assert len(tres) == 22 and tilesets == {"dungeon.tres"}
    for path in tres:
        text = path.read_text()
        lines = text.splitlines()
        m = _TRES_HEADER.match(lines[0])
        assert m, lines[0]
        ext = dict(
            re.findall(r'\[ext_resource type="Texture2D" path="(res://sprites/[^"]+\.png)" id="([^"]+)"\]', text)
        )
        ext_ids = set(ext.values())
        subs = re.findall(r'\[sub_resource type="AtlasTexture" id="([^"]+)"\]', text)
        assert int(m.group(2)) == len(ext) + len(subs) + 1
        assert len(set(subs)) == len(subs)
        for used in re.findall(r'ExtResource\("([^"]+)"\)', text):
            assert used in ext_ids
        for used in re.findall(r'SubResource\("([^"]+)"\)', text):
            assert used in subs
        for res in ext:
            assert (built / "godot-game" / res.removeprefix("res://")).is_file()
        assert "[resource]" in lines
        if m.group(1) == "SpriteFrames":
            assert re.search(r'"name": &"\w+"', text) and '"speed": ' in text and '"loop": ' in text
        # every region cuts out a frame of this sprite
        page_of = {v: k for k, v in ext.items()}
        blocks = re.findall(r'atlas = ExtResource\("([^"]+)"\)\nregion = Rect2\((\d+), (\d+), (\d+), (\d+)\)', text)
        sprite = path.stem
        frames_of_sprite = [v[0] for (a, k), v in ref.items() if k == sprite or k.startswith(sprite + "/")]
        for ext_id, x, y, w, h in blocks:
            page = rgba(built / "godot-game" / page_of[ext_id].removeprefix("res://"))
            px = cut(page, int(x), int(y), int(w), int(h))
            assert any(np.array_equal(px, f) for f in frames_of_sprite), (sprite, x, y)


def test_two_builds_from_scratch_are_byte_identical(tmp_path):
    a = copy_example(tmp_path / "a")
    b = copy_example(tmp_path / "b")
    assert main(["-q", "build", str(a)]) == 0
    assert main(["-q", "build", str(b)]) == 0
    sa, sb = snapshot(a), snapshot(b)
    assert sa == sb
    assert len(sa) > 40


def test_check_validates_without_writing(tmp_path, capsys):
    root = copy_example(tmp_path)
    before = snapshot(root, skip=())
    assert main(["check", str(root)]) == 0
    assert "22 sprites, 2 atlases" in capsys.readouterr().out
    assert snapshot(root, skip=()) == before


def test_init_templates_build_as_written(tmp_path):
    for engine in ("generic", "godot", "bevy"):
        d = tmp_path / engine
        assert main(["-q", "init", str(d), "--engine", engine]) == 0
        assert main(["-q", "build", str(d)]) == 0
        before = snapshot(d, skip=())
        assert main(["-q", "init", str(d), "--engine", engine]) == 0  # adds nothing, overwrites nothing
        assert snapshot(d, skip=()) == before
    assert list((tmp_path / "godot" / "sprites").glob("*.tres"))
    assert list((tmp_path / "bevy" / "assets" / "sprites").glob("*.atlas.ron"))
    assert list((tmp_path / "generic" / "build/sprites/aseprite").glob("*.json"))
