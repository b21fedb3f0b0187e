"""The diffusion generator against a real (tiny, random-weight) diffusers pipeline
loaded from disk the way a user's model is: ``from_pretrained`` with
``local_files_only=True``. CPU, one thread, 64×64 renders, 2 steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.errors import InvalidInput
from sparky_assets.generators.base import FrameSpec, GenerationRequest, Generator
from sparky_assets.generators.diffusion import (
    EXTRA_HINT,
    SCHEDULERS,
    DiffusionGenerator,
    clear_pipeline_cache,
    frame_seed,
    model_fingerprint,
)

pytestmark = pytest.mark.diffusion

FRAMES = (FrameSpec("idle", 0), FrameSpec("idle", 1), FrameSpec("walk", 0), FrameSpec("walk", 1), FrameSpec("walk", 2))


def request(
    root: Path,
    *,
    seed: int = 7,
    prompt: str = "knight blue cape",
    sprite: str = "hero",
    specs=FRAMES,
    size=(16, 16),
    options=None,
    **settings,
) -> GenerationRequest:
    base = {
        "model": "models/tiny-sd",
        "steps": 2,
        "guidance": 1.5,
        "batch_size": 4,
        "frames": "seed",
        "pixelize": {"background": "none"},
    }
    base.update(settings)
    return GenerationRequest(
        sprite=sprite,
        width=size[0],
        height=size[1],
        frames=specs,
        seed=seed,
        root=root,
        prompt=prompt,
        options=options or {},
        settings=base,
    )


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def generator():
    return DiffusionGenerator()


def test_generates_every_frame_at_sprite_resolution(tiny_sd_project, generator):
    assert isinstance(generator, Generator)
    clear_pipeline_cache()
    req = request(tiny_sd_project, size=(16, 12), pixelize={"background": "auto"})
    assert generator.validate(req) == []
    [frames] = generator.generate([req])
    assert len(frames) == len(FRAMES)
    for frame in frames:
        assert frame.shape == (12, 16, 4) and frame.dtype == np.uint8
        assert set(np.unique(frame[..., 3])) <= {0, 255}
        assert np.all(frame[frame[..., 3] == 0][:, :3] == 0)
    stats = generator.last_stats
    assert stats["images"] == len(FRAMES) and stats["loaded"] == 1 and stats["load_s"] > 0
    assert stats["generate_s"] > 0 and stats["device"] == "cpu" and stats["dtype"] == "fp32"


def test_pipeline_is_loaded_once_per_process(tiny_sd_project, generator):
    generator.generate([request(tiny_sd_project, specs=FRAMES[:1])])
    generator.generate([request(tiny_sd_project, specs=FRAMES[:1], seed=99)])
    assert generator.last_stats["loaded"] == 0 and generator.last_stats["load_s"] == 0


def test_same_seed_same_pixels_different_seed_different(tiny_sd_project, generator):
    first = generator.generate([request(tiny_sd_project, seed=3)])[0]
    again = DiffusionGenerator().generate([request(tiny_sd_project, seed=3)])[0]
    other = generator.generate([request(tiny_sd_project, seed=4)])[0]
    assert same(first, again)
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))
    # Frames differ from each other (each has its own seed).
    assert not np.array_equal(first[0], first[1])


def test_frame_does_not_depend_on_its_batch_or_neighbours(tiny_sd_project, generator):
    """Text-to-image batches are bit-identical to one-by-one on CPU; a frame's
    pixels do not depend on which other frames or sprites share its batch."""
    slime = request(tiny_sd_project, sprite="slime", prompt="green slime", seed=11, specs=FRAMES[:3], batch_size=4)
    together = generator.generate([request(tiny_sd_project, batch_size=4), slime])
    assert generator.last_stats["batches"] == 2  # 5 + 3 frames in batches of 4
    shifted = generator.generate(
        [replace(slime, settings={**slime.settings, "batch_size": 3}), request(tiny_sd_project, batch_size=3)]
    )
    alone = generator.generate([request(tiny_sd_project, batch_size=1)])[0]
    assert same(together[0], alone)
    assert same(shifted[1], alone)
    assert same(together[1], shifted[0])
    assert not same(together[0], together[1])


def test_img2img_frames_are_batch_independent_too(tiny_sd_project, generator):
    """img2img frames start from the base image's latents (no batched VAE encode),
    so on CPU they are bit-identical however they are batched."""
    batched = generator.generate([request(tiny_sd_project, frames="img2img", batch_size=8)])[0]
    stats = dict(generator.last_stats)
    single = generator.generate([request(tiny_sd_project, frames="img2img", batch_size=1)])[0]
    assert stats["images"] == len(FRAMES) + 1 and stats["batches"] == 2  # base + frames
    assert same(batched, single)
    plain = generator.generate([request(tiny_sd_project, frames="seed")])[0]
    assert not any(np.array_equal(a, b) for a, b in zip(batched, plain))


def test_lora_loads_and_changes_the_output(tiny_sd_project, generator):
    plain = generator.generate([request(tiny_sd_project)])[0]
    lora = request(tiny_sd_project, lora=[{"path": "loras/pixel.safetensors", "weight": 1.0}])
    assert generator.validate(lora) == []
    with_lora = generator.generate([lora])[0]
    assert generator.last_stats["loaded"] == 1
    assert not any(np.array_equal(a, b) for a, b in zip(plain, with_lora))
    assert generator.cache_key(lora) != generator.cache_key(request(tiny_sd_project))
    weaker = request(tiny_sd_project, lora=[{"path": "loras/pixel.safetensors", "weight": 0.5}])
    assert generator.cache_key(weaker) != generator.cache_key(lora)


@pytest.mark.parametrize("scheduler", ["euler", "euler-a", "dpm++", "lcm"])
def test_schedulers_by_name(tiny_sd_project, generator, scheduler):
    req = request(tiny_sd_project, specs=FRAMES[:2], scheduler=scheduler)
    first = generator.generate([req])[0]
    assert same(first, generator.generate([req])[0])


def test_missing_model_names_path_cache_and_fetch_command(tiny_sd_project, generator):
    req = request(tiny_sd_project, model="models/sd15-pixel")
    problems = generator.validate(req)
    assert len(problems) == 1
    text = problems[0].format()
    assert problems[0].key == "generator.diffusion.model"
    assert str(tiny_sd_project / "models/sd15-pixel") in text and "never download" in text
    assert "huggingface-cli download" in text
    with pytest.raises(InvalidInput, match="sd15-pixel"):
        generator.generate([req])
    hub = generator.validate(request(tiny_sd_project, model="nobody/not-cached-model"))
    assert (
        "Hugging Face cache" in hub[0].format()
        and "huggingface-cli download nobody/not-cached-model" in hub[0].format()
    )


def test_settings_problems_are_all_reported_with_suggestions(tiny_sd_project, generator):
    req = request(
        tiny_sd_project,
        stepz=4,
        scheduler="eulr",
        dtype="fp8",
        lora=["loras/missing.safetensors"],
        frames="video",
        pixelize={"grid": [0, 4], "backgroud": "auto"},
    )
    problems = {d.key: d.format() for d in generator.validate(req)}
    assert "did you mean 'steps'?" in problems["generator.diffusion.stepz"]
    assert (
        "euler-a" in problems["generator.diffusion.scheduler"]
        and "did you mean 'euler'?" in problems["generator.diffusion.scheduler"]
    )
    assert "fp16" in problems["generator.diffusion.dtype"]
    assert "seed, img2img, rig or sheet" in problems["generator.diffusion.frames"]
    assert "did you mean 'background'?" in problems["generator.diffusion.pixelize.backgroud"]
    assert "generator.diffusion.pixelize.grid" in problems
    with pytest.raises(InvalidInput):
        generator.cache_key(req)
    # LoRA files are checked once the settings parse.
    missing = {d.key for d in generator.validate(request(tiny_sd_project, lora=["loras/missing.safetensors"]))}
    assert missing == {"generator.diffusion.lora[0]"}
    assert set(SCHEDULERS) >= {"euler", "euler-a", "dpm++", "ddim", "lcm"}


def test_cache_key_covers_what_changes_pixels_and_nothing_else(tiny_sd_project, generator):
    base = request(tiny_sd_project)
    key = generator.cache_key(base)
    json.dumps(key)  # JSON-serialisable
    assert generator.cache_key(base) == key
    assert generator.cache_key(request(tiny_sd_project, batch_size=1)) == key
    for changed in (
        request(tiny_sd_project, seed=8),
        request(tiny_sd_project, prompt="red knight"),
        request(tiny_sd_project, steps=3),
        request(tiny_sd_project, size=(32, 32)),
        request(tiny_sd_project, specs=FRAMES[:2]),
        request(tiny_sd_project, scheduler="euler"),
        request(tiny_sd_project, options={"negative_prompt": "blurry"}),
        request(tiny_sd_project, options={"strength": 0.7}),
        request(tiny_sd_project, options={"pixelize": {"grid": [4, 4]}}),
    ):
        assert generator.cache_key(changed) != key


def test_model_fingerprint_is_content_not_mtime(tiny_sd_project, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_sd_project / "models" / "tiny-sd", copy)
    original = model_fingerprint(tiny_sd_project / "models" / "tiny-sd")
    os.utime(copy / "unet" / "config.json", (1, 1))
    assert model_fingerprint(copy) == original
    config = json.loads((copy / "unet" / "config.json").read_text())
    config["norm_eps"] = 1e-6
    (copy / "unet" / "config.json").write_text(json.dumps(config))
    assert model_fingerprint(copy) != original
    weights = copy / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one weight byte: caught by the full hash (small file) or the last sampled chunk
    weights.write_bytes(bytes(data))
    config["norm_eps"] = 1e-5
    (copy / "unet" / "config.json").write_text(json.dumps(config))
    assert model_fingerprint(copy) != model_fingerprint(tiny_sd_project / "models" / "tiny-sd")


def test_frame_seeds_are_stable_across_processes():
    assert frame_seed(7, "walk", 2) == frame_seed(7, "walk", 2) != frame_seed(7, "walk", 3)
    code = "from sparky_assets.generators.diffusion import frame_seed; print(frame_seed(7, 'walk', 2))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert int(out.stdout) == frame_seed(7, "walk", 2)


def test_without_the_extra_validation_works_and_generation_says_what_to_install(tiny_sd_project):
    code = f"""
import sys
sys.modules["torch"] = None
sys.modules["diffusers"] = None
from pathlib import Path
from sparky_assets.errors import BuildFailed
from sparky_assets.generators.base import FrameSpec, GenerationRequest
from sparky_assets.generators.diffusion import DiffusionGenerator
req = GenerationRequest(sprite="hero", width=16, height=16, frames=(FrameSpec("", 0),), seed=1,
                        root=Path({str(tiny_sd_project)!r}), prompt="knight",
                        settings={{"model": "models/tiny-sd"}})
g = DiffusionGenerator()
assert g.validate(req) == [], g.validate(req)
assert g.cache_key(req)["model"]["fingerprint"]
try:
    g.generate([req])
except BuildFailed as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert EXTRA_HINT in out.stdout


def test_registry_finds_the_generator():
    from sparky_assets import registry

    assert "diffusion" in registry.generator_names()
    assert isinstance(registry.generator("diffusion"), DiffusionGenerator)


MANIFEST = """
[project]
name = "tiny"
palette = "pico-8"
seed = 5

[generator.diffusion]
model = "models/tiny-sd"
lora = [{{ path = "loras/pixel.safetensors", weight = 0.7 }}]
steps = 2
guidance = 1.5
batch_size = 4
frames = "{frames}"
pixelize = {{ background = "none" }}

[[sprite]]
name = "hero"
generator = "diffusion"
prompt = "knight with a blue cape, side view"
size = [16, 16]
animations = {{ idle = 2, walk = 3 }}

[[sprite]]
name = "coin"
generator = "diffusion"
prompt = "gold coin"
negative_prompt = "blurry"
size = [8, 8]
animations = {{ spin = 2 }}

[[atlas]]
name = "all"
sprites = ["hero", "coin"]

[export.aseprite]
"""


def test_end_to_end_through_the_build_engine(tiny_sd_project, tmp_path):
    """generate → pixelize → lock → pack → export with the real engine; a second
    build regenerates nothing, ``--frozen`` builds from the lock alone, and a changed
    generator setting regenerates."""
    import shutil

    from sparky_assets.pipeline.engine import Builder, BuildOptions

    root = tmp_path / "project"
    shutil.copytree(tiny_sd_project, root)
    (root / "sparky.toml").write_text(MANIFEST.format(frames="img2img"))
    builder = Builder(root / "sparky.toml")
    report = builder.build()
    assert sorted(report.ran["generate"]) == ["coin", "hero"]
    stats = report.generator_stats["diffusion"]
    assert stats["images"] == 5 + 2 + 2  # frames + one base image per sprite (img2img)
    assert "load_s" in stats and "generate_s" in stats
    assert (root / "sparky.lock").is_file() and list((root / "sparky-generated").glob("hero.*.png"))
    sheets = json.loads((root / "build/sprites/sheets/all.json").read_text())
    assert len(sheets["frames"]) == 7
    assert list((root / "build/sprites/aseprite").glob("*.json"))

    again = builder.build()
    assert again.ran["generate"] == [] and not again.written
    # --frozen on a clean checkout (no cache, no outputs): everything from the lock.
    sheet_bytes = (root / "build/sprites/sheets/all_0.png").read_bytes()
    shutil.rmtree(root / ".sparky")
    shutil.rmtree(root / "build")
    frozen = Builder(root / "sparky.toml").build(BuildOptions(frozen=True))
    assert frozen.ran["generate"] == [] and sorted(frozen.ran["process"]) == ["coin", "hero"]
    assert (root / "build/sprites/sheets/all_0.png").read_bytes() == sheet_bytes

    (root / "sparky.toml").write_text(MANIFEST.format(frames="seed"))
    changed = builder.build()
    assert sorted(changed.ran["generate"]) == ["coin", "hero"]
    assert changed.generator_stats["diffusion"]["images"] == 7


def test_frozen_build_needs_neither_the_model_nor_torch(tiny_sd_project, tmp_path):
    """CI has no weights: a frozen build takes locked sprites from the store by their
    manifest description alone; a stale one is reported, not generated."""
    import shutil

    from sparky_assets.errors import InvalidInput
    from sparky_assets.pipeline.engine import Builder, BuildOptions

    root = tmp_path / "project"
    shutil.copytree(tiny_sd_project, root)
    (root / "sparky.toml").write_text(MANIFEST.format(frames="img2img"))
    Builder(root / "sparky.toml").build()
    expected = (root / "build/sprites/sheets/all_0.png").read_bytes()
    ci = tmp_path / "ci"
    shutil.copytree(root, ci, ignore=shutil.ignore_patterns(".sparky", "build", "models", "loras"))
    frozen = Builder(ci / "sparky.toml").build(BuildOptions(frozen=True))
    assert frozen.ran["generate"] == [] and frozen.generator_stats == {}
    assert (ci / "build/sprites/sheets/all_0.png").read_bytes() == expected
    manifest = ci / "sparky.toml"
    manifest.write_text(manifest.read_text().replace('prompt = "gold coin"', 'prompt = "silver coin"'))
    with pytest.raises(InvalidInput) as error:
        Builder(ci / "sparky.toml").build(BuildOptions(frozen=True))
    (only,) = error.value.diagnostics
    assert "sprite 'coin' would need generating: changed since locked: prompt" in only.message and only.line is not None


WARM_MANIFEST = """
[project]
name = "tiny"
palette = "pico-8"
seed = 5

[generator.diffusion]
model = "models/tiny-sd"
steps = 2
frames = "rig"
ip_adapter = "models/tiny-ip-adapter"

[[sprite]]
name = "hero"
generator = "diffusion"
prompt = "knight"
style = "character"
size = [16, 16]
animations = { idle = 2 }
"""


def test_a_file_added_to_a_model_folder_replans_the_sprite_under_a_warm_builder(tiny_sd_project, tmp_path):
    """``watch``'s warm Builder reuses a sprite's plan while the files its generator read
    are unchanged; the folders it listed count too: a weight file dropped into the model
    folder changes the sprite's generate key, a second adapter in the IP-Adapter folder
    makes it ambiguous (an error naming both) — neither is a stale plan."""
    import shutil

    from sparky_assets.errors import InvalidInput
    from sparky_assets.pipeline.engine import Builder, BuildOptions

    root = tmp_path / "project"
    shutil.copytree(tiny_sd_project, root)
    (root / "sparky.toml").write_text(WARM_MANIFEST)
    builder = Builder(root / "sparky.toml")
    plan = BuildOptions(dry_run=True)
    builder.build(plan)
    first = builder.last_project.sprites["hero"].gen_key
    builder.build(plan)
    assert builder.last_project.sprites["hero"].gen_key == first  # reused: nothing changed

    (root / "models/tiny-sd/unet/extra.safetensors").write_bytes(b"\0" * 64)
    builder.build(plan)
    second = builder.last_project.sprites["hero"].gen_key
    assert second != first
    cold = Builder(root / "sparky.toml")
    cold.build(plan)
    assert cold.last_project.sprites["hero"].gen_key == second  # what a fresh process plans

    shutil.copy(
        root / "models/tiny-ip-adapter/ip-adapter.safetensors", root / "models/tiny-ip-adapter/other.safetensors"
    )
    with pytest.raises(InvalidInput) as failed:
        builder.build(plan)
    assert "holds 2 .safetensors files" in str(failed.value)
