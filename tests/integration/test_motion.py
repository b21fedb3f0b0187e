"""Steered diffusion frames with real (tiny, random-weight) models loaded from disk
with ``from_pretrained``: rig img2img, a ControlNet, sheets, sketches and directions,
through the generator and through the build engine. CPU, one thread, 2 steps, 64 px."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparky_assets.generators.base import FrameSpec, GenerationRequest
from sparky_assets.generators.diffusion import DiffusionGenerator
from sparky_assets.palettes.builtin import BUILTIN_PALETTES
from sparky_assets.reads import ReadContext

pytestmark = pytest.mark.diffusion

PICO = tuple(tuple(c) for c in BUILTIN_PALETTES["pico-8"].colors)
WALK = tuple(FrameSpec("walk", i) for i in range(4))


def request(root: Path, *, specs=WALK, options=None, palette=PICO, seed=7, **settings) -> GenerationRequest:
    base = {"model": "models/tiny-sd", "steps": 2, "guidance": 1.5, "batch_size": 4}
    base.update(settings)
    return GenerationRequest(
        sprite="hero",
        width=16,
        height=16,
        frames=specs,
        seed=seed,
        root=root,
        prompt="knight blue cape",
        palette=palette,
        options={"style": "character", "pixelize": {"background": "none"}} if options is None else options,
        settings=base,
    )


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def generator():
    return DiffusionGenerator()


def test_rig_img2img_follows_the_rig_and_is_deterministic(tiny_sd_project, generator):
    rig = request(tiny_sd_project, frames="rig", strength=0.3)
    assert generator.validate(rig) == []
    first = generator.generate([rig])[0]
    assert generator.last_stats["images"] == 4  # no base image: each frame starts from its rig render
    assert same(first, DiffusionGenerator().generate([rig])[0])
    plain = generator.generate([request(tiny_sd_project, frames="img2img")])[0]
    assert not any(np.array_equal(a, b) for a, b in zip(first, plain))
    # The walk moves the legs, so steered frames differ from each other.
    assert not np.array_equal(first[0], first[1])
    key = generator.cache_key(rig)
    assert key["motion"]["rig"]["style"] == "character" and len(key["motion"]["rig"]["palette"]) == 16
    other_palette = request(tiny_sd_project, frames="rig", strength=0.3, palette=PICO[:8])
    assert generator.cache_key(other_palette) != key
    # Unsteered sprites keep the keys they had before steering existed: no palette in them.
    assert "motion" not in generator.cache_key(request(tiny_sd_project, frames="img2img"))
    assert generator.cache_key(request(tiny_sd_project, frames="img2img", palette=())) == generator.cache_key(
        request(tiny_sd_project, frames="img2img")
    )


@pytest.mark.parametrize(
    "mode",
    [
        {"frames": "rig", "strength": 0.3},
        {"frames": "rig", "controlnet": "models/tiny-controlnet"},
        {"frames": "sheet", "strength": 0.5},
        {"frames": "rig", "ip_adapter": "models/tiny-ip-adapter"},
        {"frames": "rig", "strength": 0.3, "micro_batch": 2},
    ],
    ids=["rig-img2img", "controlnet", "sheet", "ip-adapter", "micro-batch-2"],
)
def test_frames_are_byte_identical_across_batch_sizes(tiny_sd_project, generator, mode):
    """Every model call has the same shape (``micro_batch`` frames, padded), so no
    kernel sees a batch-size-dependent one: a frame's bytes do not depend on
    ``batch_size`` or its neighbours (before, rig img2img frames differed by 1/255
    between batch 4 and 1 on CPU)."""
    specs = WALK[:3] + (FrameSpec("idle", 0), FrameSpec("idle", 1))
    hero = request(tiny_sd_project, specs=specs, **mode, batch_size=1)
    slime = replace(hero, sprite="slime", prompt="green slime", seed=11)
    alone = generator.generate([hero])[0]
    together = generator.generate([replace(r, settings={**r.settings, "batch_size": 4}) for r in (slime, hero)])
    assert same(together[1], alone)
    assert not same(together[0], alone)


def test_rig_mode_needs_a_rigged_style(tiny_sd_project, generator):
    problems = generator.validate(request(tiny_sd_project, frames="rig", options={"style": "item"}))
    assert [p.key for p in problems] == ["style"] and "character" in problems[0].format()
    bad = {
        d.key: d.format()
        for d in generator.validate(
            request(tiny_sd_project, conditioning="edges", controlnet="models/missing", frames="rig")
        )
    }
    assert (
        "did you mean" in bad["generator.diffusion.conditioning"] or "pose" in bad["generator.diffusion.conditioning"]
    )
    missing = generator.validate(request(tiny_sd_project, controlnet="models/missing", frames="rig"))
    assert [p.key for p in missing] == ["generator.diffusion.controlnet"]
    assert "never download" in missing[0].format()


def test_controlnet_steers_every_frame(tiny_sd_project, generator):
    pose = request(tiny_sd_project, frames="rig", controlnet="models/tiny-controlnet")
    assert generator.validate(pose) == []
    frames = generator.generate([pose])[0]
    assert len(frames) == 4 and frames[0].shape == (16, 16, 4)
    assert same(frames, DiffusionGenerator().generate([pose])[0])
    silhouette = request(tiny_sd_project, frames="rig", controlnet="models/tiny-controlnet", conditioning="silhouette")
    other = generator.generate([silhouette])[0]
    assert not any(np.array_equal(a, b) for a, b in zip(frames, other))
    weaker = request(tiny_sd_project, frames="rig", controlnet="models/tiny-controlnet", controlnet_scale=0.0)
    unsteered = generator.generate([weaker])[0]
    assert not same(frames, unsteered)
    keys = {json.dumps(generator.cache_key(r), sort_keys=True) for r in (pose, silhouette, weaker)}
    assert len(keys) == 3
    assert generator.cache_key(pose)["motion"]["controlnet"]  # the ControlNet's content fingerprint


def test_sheet_renders_each_animation_in_one_pass_and_slices_it(tiny_sd_project, generator):
    specs = WALK + (FrameSpec("idle", 0), FrameSpec("idle", 1))
    sheet = request(tiny_sd_project, specs=specs, frames="sheet", strength=0.5)
    frames = generator.generate([sheet])[0]
    assert len(frames) == 6 and all(f.shape == (16, 16, 4) for f in frames)
    assert generator.last_stats["images"] == 2  # one strip per animation
    with_cn = request(tiny_sd_project, specs=specs, frames="sheet", controlnet="models/tiny-controlnet")
    strips = generator.generate([with_cn])[0]
    assert generator.last_stats["images"] == 2 and not same(frames, strips)
    # No rig: the strip is plain text-to-image, still one pass per animation.
    free = generator.generate([request(tiny_sd_project, specs=specs, frames="sheet", options={})])[0]
    assert len(free) == 6 and generator.last_stats["images"] == 2


def test_sketch_steers_generation(tiny_sd_project, tmp_path, generator):
    root = tmp_path / "sketch"
    shutil.copytree(tiny_sd_project, root, symlinks=True)
    art = np.full((32, 32, 4), 255, dtype=np.uint8)
    art[8:24, 12:20, :3] = (20, 20, 20)  # a rough body
    Image.fromarray(art).save(root / "sketch.png")
    options = {"source": "sketch.png", "pixelize": {"background": "none"}}
    sketch = request(root, specs=(FrameSpec("", 0),), options=options, strength=0.6)
    reads = ReadContext()  # the sketch is an input the build records (and watch watches)
    assert generator.validate(sketch, reads) == []
    assert (root / "sketch.png").resolve() in reads.paths()
    first = generator.generate([sketch])[0]
    key = generator.cache_key(sketch)
    art[4:8, 12:20, :3] = (200, 30, 30)
    Image.fromarray(art).save(root / "sketch.png")
    assert generator.cache_key(sketch) != key
    changed = generator.generate([sketch])[0]
    assert not np.array_equal(first[0], changed[0])
    lines = request(root, specs=(FrameSpec("", 0),), options=options, controlnet="models/tiny-controlnet")
    assert generator.generate([lines])[0][0].shape == (16, 16, 4)
    missing = generator.validate(request(root, options={"source": "nope.png"}))
    assert [p.key for p in missing] == ["source"]


def test_directions_give_each_facing_its_own_prompt_and_rig(tiny_sd_project, generator):
    specs = tuple(FrameSpec(f"walk_{d}", i, d) for d in ("n", "e", "s", "w") for i in range(2))
    req = request(tiny_sd_project, specs=specs, frames="rig", controlnet="models/tiny-controlnet")
    frames = generator.generate([req])[0]
    assert len(frames) == 8
    by = {d: frames[i * 2 : i * 2 + 2] for i, d in enumerate("nesw")}
    assert not np.array_equal(by["n"][0], by["s"][0]) and not np.array_equal(by["e"][0], by["w"][0])
    assert generator.cache_key(req)["motion"]["directions"] == ["e", "n", "s", "w"]


MANIFEST = """
[project]
name = "motion"
palette = "pico-8"
seed = 5

[generator.diffusion]
model = "models/tiny-sd"
controlnet = "models/tiny-controlnet"
conditioning = "{conditioning}"
ip_adapter = "models/tiny-ip-adapter"
steps = 2
guidance = 1.5
frames = "{frames}"
pixelize = {{ background = "none" }}

[[sprite]]
name = "hero"
generator = "diffusion"
style = "character"
prompt = "knight with a blue cape"
size = [16, 16]
directions = 4
animations = {{ walk = 2 }}

[[atlas]]
name = "all"
sprites = ["hero"]

[export.bevy]
assets = "bevy/assets"
"""


def test_full_build_with_rig_controlnet_directions_and_frozen(tiny_sd_project, tmp_path):
    """The whole pipeline on CPU: a rig-steered, ControlNet, IP-Adapter, four-facing sprite builds,
    rebuilds as a no-op, rebuilds from the lock alone on a machine without the models
    (``--frozen``), and a changed steering key is stale there."""
    from sparky_assets.errors import InvalidInput
    from sparky_assets.manifest.load import load_manifest
    from sparky_assets.pipeline.engine import Builder, BuildOptions, manifest_inputs

    root = tmp_path / "project"
    shutil.copytree(tiny_sd_project, root)
    (root / "bevy" / "assets").mkdir(parents=True)
    (root / "sparky.toml").write_text(MANIFEST.format(frames="sheet", conditioning="pose"))
    report = Builder(root / "sparky.toml").build()
    assert report.ran["generate"] == ["hero"]
    assert report.generator_stats["diffusion"]["images"] == 4  # one strip per facing
    ron = (root / "bevy/assets/sprites/all.atlas.ron").read_text()
    assert 'directions: ["n", "e", "s", "w"]' in ron and '"walk_w": (frames: [' in ron
    assert Builder(root / "sparky.toml").build().ran["generate"] == []

    # The lock's manifest description (what --frozen compares) names every new key.
    manifest = load_manifest(root / "sparky.toml")
    hero = manifest.sprite("hero")
    described = manifest_inputs(manifest, hero, tuple(FrameSpec(a.name, 0, a.direction) for a in hero.animations))
    assert described["settings"]["controlnet"] == "models/tiny-controlnet"
    assert described["settings"]["conditioning"] == "pose" and described["settings"]["frames"] == "sheet"
    assert described["options"]["directions"] == 4 and described["frames"][1] == ["walk_e", 0, "e"]
    expected = (root / "build/sprites/sheets/all_0.png").read_bytes()
    ci = tmp_path / "ci"
    shutil.copytree(root, ci, ignore=shutil.ignore_patterns(".sparky", "build", "models", "loras"))
    frozen = Builder(ci / "sparky.toml").build(BuildOptions(frozen=True))
    assert frozen.ran["generate"] == [] and (ci / "build/sprites/sheets/all_0.png").read_bytes() == expected
    (ci / "sparky.toml").write_text(MANIFEST.format(frames="sheet", conditioning="depth"))
    with pytest.raises(InvalidInput, match="would need generating: changed since locked: settings"):
        Builder(ci / "sparky.toml").build(BuildOptions(frozen=True))


@pytest.fixture(scope="module")
def tiny_sdxl_project(tmp_path_factory):
    """An SDXL-shaped tiny pipeline (two text encoders, text-time embeddings), a
    ControlNet made from its UNet and an IP-Adapter for it, saved and loaded from disk."""
    from tests.tiny_checkpoints import save_tiny_sdxl_pipeline
    from tests.tiny_pipeline import save_tiny_controlnet, save_tiny_ip_adapter

    root = tmp_path_factory.mktemp("tiny-sdxl-project")
    save_tiny_sdxl_pipeline(root / "models" / "tiny-xl")
    save_tiny_controlnet(root / "models" / "tiny-xl", root / "models" / "tiny-xl-controlnet")
    save_tiny_ip_adapter(root / "models" / "tiny-xl", root / "models" / "tiny-xl-ip-adapter")
    return root


def test_sdxl_rig_img2img_and_controlnet(tiny_sdxl_project, generator):
    specs = WALK[:2]
    rig = request(tiny_sdxl_project, specs=specs, model="models/tiny-xl", frames="rig")
    assert generator.validate(rig) == []
    plain = generator.generate([rig])[0]
    steered = request(
        tiny_sdxl_project, specs=specs, model="models/tiny-xl", frames="rig", controlnet="models/tiny-xl-controlnet"
    )
    controlled = generator.generate([steered])[0]
    sheet = request(
        tiny_sdxl_project, specs=specs, model="models/tiny-xl", frames="sheet", controlnet="models/tiny-xl-controlnet"
    )
    strip = generator.generate([sheet])[0]
    assert generator.last_stats["images"] == 1
    for frames in (plain, controlled, strip):
        assert len(frames) == 2 and all(f.shape == (16, 16, 4) for f in frames)
    assert not same(plain, controlled)
    assert same(controlled, generator.generate([steered])[0])
    adapter = request(
        tiny_sdxl_project, specs=specs, model="models/tiny-xl", frames="rig", ip_adapter="models/tiny-xl-ip-adapter"
    )
    assert generator.validate(adapter) == []
    referenced = generator.generate([adapter])[0]
    assert np.array_equal(referenced[0], plain[0]) and not np.array_equal(referenced[1], plain[1])


def test_a_sprite_chooses_its_own_controlnet_and_conditioning(tiny_sd_project, generator):
    """Per-sprite ``controlnet`` / ``conditioning`` override the table (a sketch may want
    a lineart ControlNet while characters use a pose one)."""
    table = request(tiny_sd_project, specs=WALK[:2], frames="rig")
    own = request(
        tiny_sd_project,
        specs=WALK[:2],
        frames="rig",
        options={"style": "character", "controlnet": "models/tiny-controlnet", "conditioning": "depth"},
    )
    assert generator.validate(own) == []
    assert generator.cache_key(own)["motion"]["conditioning"] == "depth"
    assert "controlnet" not in generator.cache_key(table)["motion"]
    both = generator.generate([table, own])
    assert generator.last_stats["batches"] == 2  # different ControlNet settings never share a batch
    assert not same(both[0], both[1])
    assert same(both[1], generator.generate([own])[0])
    bad = generator.validate(
        request(tiny_sd_project, frames="rig", options={"style": "character", "conditioning": "edge", "controlnet": ""})
    )
    assert sorted(p.key for p in bad) == ["conditioning", "controlnet"]
