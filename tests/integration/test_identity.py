"""IP-Adapter identity with a tiny random-weight adapter saved to disk in the public
repository's layout and loaded through diffusers' own ``load_ip_adapter``: the
sprite's first frame (or its sketch) steers every other frame; folder checks, cache
key, reads and the ``models`` listing. CPU, one thread, 2 steps, 64 px."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparky_assets.generators.base import FrameSpec
from sparky_assets.generators.diffusion import DiffusionGenerator
from sparky_assets.reads import ReadContext
from tests.integration.test_motion import WALK, request, same

pytestmark = pytest.mark.diffusion

ADAPTER = "models/tiny-ip-adapter"


@pytest.fixture(scope="module")
def generator():
    return DiffusionGenerator()


def test_the_first_frame_steers_the_others(tiny_sd_project, generator):
    plain = request(tiny_sd_project, frames="rig")
    steered = request(tiny_sd_project, frames="rig", ip_adapter=ADAPTER, ip_adapter_scale=1.0)
    reads = ReadContext()
    assert generator.validate(steered, reads) == []
    folder = (tiny_sd_project / ADAPTER).resolve()
    assert {folder / "ip-adapter.safetensors", folder / "image_encoder" / "config.json"} <= reads.paths()
    without, with_adapter = generator.generate([plain]), generator.generate([steered])
    assert generator.last_stats["batches"] == 2  # the anchor frame first, then the rest
    # The anchor is rendered at scale 0 (exactly the frame without an adapter); every
    # other frame has its reference.
    assert np.array_equal(without[0][0], with_adapter[0][0])
    assert not any(np.array_equal(a, b) for a, b in zip(without[0][1:], with_adapter[0][1:]))
    assert same(with_adapter[0], DiffusionGenerator().generate([steered])[0])
    # Scale 0 is the plain output; the scale and the adapter's bytes join the key.
    zero = request(tiny_sd_project, frames="rig", ip_adapter=ADAPTER, ip_adapter_scale=0.0)
    assert same(generator.generate([zero])[0], without[0])
    key = generator.cache_key(steered)
    assert key["ip_adapter"]["scale"] == 1.0 and key["ip_adapter"]["weights"]["sha256"]
    assert generator.cache_key(zero) != key and "ip_adapter" not in generator.cache_key(plain)
    reads = ReadContext()
    generator.cache_key(steered, reads)
    assert folder / "image_encoder" / "model.safetensors" in reads.paths()


def test_every_mode_and_a_sketch_reference(tiny_sd_project, tmp_path, generator):
    """seed, img2img and ControlNet frames take the adapter too; a sketch is every
    frame's reference (so even the first frame changes)."""
    for mode in ({"frames": "seed"}, {"frames": "img2img"}, {"frames": "rig", "controlnet": "models/tiny-controlnet"}):
        plain = generator.generate([request(tiny_sd_project, specs=WALK[:2], **mode)])[0]
        steered = generator.generate([request(tiny_sd_project, specs=WALK[:2], ip_adapter=ADAPTER, **mode)])[0]
        assert np.array_equal(plain[0], steered[0]) and not np.array_equal(plain[1], steered[1]), mode
    root = tmp_path / "sketch"
    shutil.copytree(tiny_sd_project, root, symlinks=True)
    art = np.full((32, 32, 4), 255, dtype=np.uint8)
    art[8:24, 12:20, :3] = (20, 20, 20)
    Image.fromarray(art).save(root / "sketch.png")
    options = {"source": "sketch.png", "pixelize": {"background": "none"}}
    plain = generator.generate([request(root, specs=WALK[:2], options=options, frames="rig")])[0]
    sketched = request(root, specs=WALK[:2], options=options, frames="rig", ip_adapter=ADAPTER)
    steered = generator.generate([sketched])[0]
    assert generator.last_stats["batches"] == 1  # no anchor to wait for: the sketch is the reference
    assert not any(np.array_equal(a, b) for a, b in zip(plain, steered))


def test_sheet_frames_take_the_first_strip_as_reference(tiny_sd_project, generator):
    specs = WALK[:2] + (FrameSpec("idle", 0), FrameSpec("idle", 1))
    plain = generator.generate([request(tiny_sd_project, specs=specs, frames="sheet")])[0]
    steered = generator.generate([request(tiny_sd_project, specs=specs, frames="sheet", ip_adapter=ADAPTER)])[0]
    assert generator.last_stats["images"] == 2  # still one strip per animation
    assert same(plain[:2], steered[:2]) and not same(plain[2:], steered[2:])


def test_bad_ip_adapter_folders_are_located(tiny_sd_project, tmp_path, generator):
    def problems(root: Path, **settings) -> list[tuple[str, str]]:
        return [(d.key, d.format()) for d in generator.validate(request(root, frames="rig", **settings))]

    [(key, text)] = problems(tiny_sd_project, ip_adapter="models/nope")
    assert key == "generator.diffusion.ip_adapter" and "never download" in text and "h94/IP-Adapter" in text
    root = tmp_path / "project"
    shutil.copytree(tiny_sd_project, root, symlinks=True)
    outside = tmp_path / "elsewhere"
    shutil.copytree(root / ADAPTER, outside)
    os.symlink(outside, root / "models" / "linked")
    [(key, text)] = problems(root, ip_adapter="models/linked")
    assert key == "generator.diffusion.ip_adapter" and "outside the project" in text
    [(key, text)] = problems(root, ip_adapter="../elsewhere")
    assert "outside the project" in text
    shutil.copy(root / "loras/pixel.safetensors", root / ADAPTER / "lora.safetensors")
    [(key, text)] = problems(root, ip_adapter=ADAPTER)
    assert key == "generator.diffusion.ip_adapter_weights" and "ip-adapter.safetensors, lora.safetensors" in text
    [(key, text)] = problems(root, ip_adapter=ADAPTER, ip_adapter_weights="lora.safetensors")
    assert "not an IP-Adapter" in text
    [(key, text)] = problems(root, ip_adapter=ADAPTER, ip_adapter_weights="missing.safetensors")
    assert key == "generator.diffusion.ip_adapter_weights" and "not found" in text
    # An adapter for another base model (SDXL-wide cross-attention) is refused before loading.
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(root / ADAPTER / "ip-adapter.safetensors"))
    wide = {k: (v.repeat(1, 64) if "to_k_ip" in k or "to_v_ip" in k else v) for k, v in tensors.items()}
    save_file(wide, str(root / ADAPTER / "wide.safetensors"))
    [(key, text)] = problems(root, ip_adapter=ADAPTER, ip_adapter_weights="wide.safetensors")
    assert key == "generator.diffusion.ip_adapter" and "different base model" in text and "2048" in text
    shutil.rmtree(root / ADAPTER / "image_encoder")
    [(key, text)] = problems(root, ip_adapter=ADAPTER, ip_adapter_weights="ip-adapter.safetensors")
    assert "image_encoder/config.json" in text


def test_models_lists_the_ip_adapter(tiny_sd_project, tmp_path):
    from sparky_assets.pipeline.models import inventory

    root = tmp_path / "listed"
    shutil.copytree(tiny_sd_project, root, symlinks=True)
    (root / "sparky.toml").write_text(
        '[project]\nname = "t"\n[generator.diffusion]\nmodel = "models/tiny-sd"\n'
        f'ip_adapter = "{ADAPTER}"\nip_adapter_scale = 0.8\n'
    )
    found = inventory(root)
    [entry] = [f for f in found.files if f.role == "ip_adapter"]
    assert entry.present and entry.line == 5 and entry.fingerprint and "scale 0.8" in entry.kind
    assert "SD 1.x" in entry.architecture or "32" in entry.architecture
    assert "ip_adapter" in found.text()


def test_reference_attention_needs_no_weights(tiny_sd_project, generator):
    """Reference-only control: each frame's self-attention also attends to the first
    frame's (noised to the same step) — the anchor is the plain frame, the others
    change, everything stays deterministic and batch-independent."""
    plain = generator.generate([request(tiny_sd_project, frames="rig", scheduler="euler")])[0]
    referenced = request(tiny_sd_project, frames="rig", scheduler="euler", reference_attention=1.0)
    assert generator.validate(referenced) == []
    frames = generator.generate([referenced])[0]
    assert np.array_equal(frames[0], plain[0])
    assert not any(np.array_equal(a, b) for a, b in zip(frames[1:], plain[1:]))
    alone = DiffusionGenerator().generate(
        [request(tiny_sd_project, frames="rig", scheduler="euler", reference_attention=1.0, batch_size=1)]
    )[0]
    assert same(frames, alone)
    half = generator.generate([request(tiny_sd_project, frames="rig", scheduler="euler", reference_attention=0.5)])[0]
    assert not same(half, frames)
    assert generator.cache_key(referenced)["reference_attention"] == 1.0
    assert "reference_attention" not in generator.cache_key(request(tiny_sd_project, frames="rig", scheduler="euler"))
