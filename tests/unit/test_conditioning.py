"""The rig's conditioning renders, directions and sheet layout: exact, deterministic,
and consistent with the procedural generator's own pixels.

Golden images live in ``tests/data/conditioning/``; regenerate them (after a
deliberate change that bumps ``procedural.ALGORITHM_VERSION``) with
``SPARKY_UPDATE_GOLDEN=1 pytest tests/unit/test_conditioning.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparky_assets.generators import procedural
from sparky_assets.generators.base import FrameSpec, GenerationRequest
from sparky_assets.generators.conditioning import (
    BONES,
    CONDITIONING_KINDS,
    FLAT_BACKGROUND,
    Rig,
    compose_sheet,
    sheet_layout,
    slice_sheet,
)
from sparky_assets.generators.procedural import DIRECTIONS, ProceduralGenerator
from sparky_assets.palettes.builtin import BUILTIN_PALETTES

GOLDEN = Path(__file__).parent.parent / "data" / "conditioning"
PICO = tuple(tuple(c) for c in BUILTIN_PALETTES["pico-8"].colors)


def request(style="character", size=(16, 16), directions=("",), animations=(("walk", 4),), palette=PICO, seed=3):
    frames = tuple(
        FrameSpec(f"{name}_{d}" if d else name, i, d)
        for name, count in animations
        for d in directions
        for i in range(count)
    )
    return GenerationRequest(
        sprite="hero",
        width=size[0],
        height=size[1],
        frames=frames,
        seed=seed,
        root=Path("."),
        prompt="knight",
        palette=palette,
        options={"style": style},
    )


def strip(rig: Rig, kind: str, width: int, height: int) -> np.ndarray:
    return np.concatenate([rig.render(rig.frame(spec), kind, width, height) for spec in rig.request.frames], axis=1)


@pytest.mark.parametrize("style", ["character", "creature"])
@pytest.mark.parametrize("kind", CONDITIONING_KINDS)
def test_renders_match_the_golden_images(style, kind):
    rig = Rig(request(style, directions=("s", "e", "n")))
    image = strip(rig, kind, 64, 64)
    path = GOLDEN / f"{style}-walk-{kind}.png"
    if os.environ.get("SPARKY_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    golden = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == golden.shape == (64, 64 * 12, 3)
    assert np.array_equal(image, golden), f"{path.name}: {int((image != golden).any(-1).sum())} pixels differ"


@pytest.mark.parametrize("style", ["character", "creature"])
@pytest.mark.parametrize("size", [(16, 16), (24, 20), (96, 96)])
def test_silhouette_is_exactly_the_procedural_sprites_alpha(style, size):
    """Cross-check against the procedural generator's own output for every frame and
    all eight directions: the silhouette at sprite size is its alpha, and at 4x it
    is that alpha upscaled by pixel replication."""
    req = request(style, size=size, directions=DIRECTIONS[8], animations=(("idle", 4), ("walk", 4), ("attack", 3)))
    rig = Rig(req)
    sprites = ProceduralGenerator().generate([req])[0]
    for spec, sprite in zip(req.frames, sprites):
        frame = rig.frame(spec)
        exact = rig.render(frame, "silhouette", size[0], size[1])[..., 0]
        assert np.array_equal(exact == 255, sprite[..., 3] == 255), spec
        big = rig.render(frame, "silhouette", size[0] * 4, size[1] * 4)[..., 0]
        assert np.array_equal(big, np.kron(exact, np.ones((4, 4), dtype=np.uint8))), spec
        assert np.array_equal(rig.sprite_rgba(frame), sprite)


def test_flat_render_uses_only_palette_colours_and_white():
    rig = Rig(request("character", directions=DIRECTIONS[4]))
    colours = {tuple(c) for c in strip(rig, "flat", 32, 32).reshape(-1, 3)}
    assert colours <= set(PICO) | {FLAT_BACKGROUND}
    assert len(colours) >= 4


def test_pose_joints_lie_on_the_body_and_follow_the_walk():
    req = request("character", size=(24, 24), animations=(("walk", 4),))
    rig = Rig(req)
    frames = [rig.frame(spec) for spec in req.frames]
    for frame in frames:
        # every part moved with the cells: same support, and every joint is on the body
        assert np.array_equal(frame.parts > 0, frame.cells > 0)
        opaque = rig.opaque(frame)
        for name, (x, y) in rig.joints(frame).items():
            assert opaque[min(int(y), opaque.shape[0] - 1), int(x)], name
    feet = [(rig.joints(f)["foot_left"][1], rig.joints(f)["foot_right"][1]) for f in frames]
    assert len(set(feet)) > 1  # the walk lifts the feet in turn
    assert feet[1][0] < feet[0][0] or feet[3][1] < feet[0][1]
    pose = rig.render(frames[0], "pose", 96, 96)
    colours = {tuple(c) for c in pose.reshape(-1, 3)}
    assert (0, 0, 0) in colours and sum(bone[2] in colours for bone in BONES) >= 8


def test_renders_are_deterministic_and_reject_unknown_kinds():
    a, b = Rig(request("creature")), Rig(request("creature"))
    for kind in CONDITIONING_KINDS:
        assert np.array_equal(strip(a, kind, 40, 48), strip(b, kind, 40, 48))
    with pytest.raises(ValueError, match="pose, silhouette, depth, flat"):
        a.render(a.frame(a.request.frames[0]), "canny", 8, 8)


# --------------------------------------------------------------------------- directions


def test_directions_turn_the_sprite_and_leave_the_front_unchanged():
    gen = ProceduralGenerator()
    plain = gen.generate([request("character", palette=())])[0]
    views = gen.generate([request("character", directions=DIRECTIONS[8], palette=())])[0]
    by = {spec.direction: [] for spec in request("character", directions=DIRECTIONS[8]).frames}
    for spec, frame in zip(request("character", directions=DIRECTIONS[8]).frames, views):
        by[spec.direction].append(frame)
    assert all(np.array_equal(a, b) for a, b in zip(by["s"], plain))  # south is the base sprite
    for east, west in (("e", "w"), ("ne", "nw"), ("se", "sw")):
        # West is east mirrored; the walk then lifts the other leg first, so the
        # 4-frame cycle runs mirrored frame 0, 3, 2, 1.
        assert all(np.array_equal(by[east][(4 - i) % 4][:, ::-1], by[west][i]) for i in range(4)), east
    width = {d: int((frames[0][..., 3] > 0).any(axis=0).sum()) for d, frames in by.items()}
    assert width["e"] < width["se"] < width["s"]  # profile narrower than three-quarter narrower than front
    assert all(not np.array_equal(by["n"][0], by[d][0]) for d in ("s", "e", "se"))
    blueprint, _ = procedural._blueprint(request("character"))
    back = procedural.view(blueprint, "n")
    assert not np.isin(back.cells >> 2, (procedural.EYE, procedural.PUPIL)).any()
    assert procedural.view(blueprint, "s") is blueprint


def test_unknown_directions_are_reported():
    bad = request("character", directions=("up",))
    (problem,) = ProceduralGenerator().validate(bad)
    assert problem.key == "directions" and "ne" in problem.format()


def test_items_and_tiles_have_no_views():
    blueprint, _ = procedural._blueprint(request("item"))
    assert procedural.view(blueprint, "e") is blueprint


# --------------------------------------------------------------------------- sheets


def test_sheet_layout_compose_and_slice_are_exact():
    layout = sheet_layout(5, 24, 16)
    assert (layout.width, layout.height) == (120, 16)
    assert [layout.box(i) for i in (0, 4)] == [(0, 0, 24, 16), (96, 0, 120, 16)]
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(5)]
    sheet = compose_sheet(layout, frames)
    assert sheet.shape == (16, 120, 3)
    assert np.array_equal(sheet[:, 48:72], frames[2])
    back = slice_sheet(layout, sheet)
    assert all(np.array_equal(a, b) for a, b in zip(frames, back))
    with pytest.raises(ValueError, match="got 4 images"):
        compose_sheet(layout, frames[:4])
    with pytest.raises(ValueError, match="is not 120x16"):
        slice_sheet(layout, sheet[:, :100])
    with pytest.raises(IndexError):
        layout.box(5)
