"""Single-file checkpoints and kohya LoRAs through the real build, offline.

Tiny random-weight SD 1.5-shaped and SDXL-shaped pipelines are saved as diffusers
folders, then the same weights are written as one original-layout ``.safetensors`` file
each (``tests/tiny_checkpoints.py``). Builds from the single file must give the same
atlas bytes as builds from the folder, with the network blocked: ``HF_HUB_OFFLINE=1``
(tests/conftest.py) and a socket guard that fails any non-loopback connection.
Tiny weights need ``model_config`` (a folder with their configs): the shipped real
configs are checked in tests/unit/test_checkpoints.py.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from sparky_assets.cli.main import main

pytestmark = pytest.mark.diffusion


@pytest.fixture
def no_network(monkeypatch):
    """Fail any connection that is not loopback or a local socket."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access attempted: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: guarded(self, address) or 0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture(scope="session")
def checkpoint_models(tiny_sd_project, tmp_path_factory):
    """``models/``: tiny SD and SDXL as folders, single files and config folders;
    ``loras/``: the diffusers LoRA and the same LoRA in kohya layout."""
    pytest.importorskip("torch")
    from tests.tiny_checkpoints import (
        kohya_lora,
        save_config_folder,
        save_single_file,
        save_tiny_sd2_pipeline,
        save_tiny_sdxl_pipeline,
    )
    from tests.tiny_pipeline import save_tiny_lora

    root = tmp_path_factory.mktemp("checkpoint-models")
    models = root / "models"
    shutil.copytree(tiny_sd_project / "models" / "tiny-sd", models / "tiny-sd")
    save_single_file(models / "tiny-sd", models / "tiny-sd.safetensors")
    save_single_file(models / "tiny-sd", models / "tiny-sd.ckpt", pickle=True)
    save_config_folder(models / "tiny-sd", models / "tiny-sd-config")
    save_tiny_sd2_pipeline(models / "tiny-sd2")
    save_single_file(models / "tiny-sd2", models / "tiny-sd2.safetensors", sd2=True)
    save_config_folder(models / "tiny-sd2", models / "tiny-sd2-config")
    save_tiny_sdxl_pipeline(models / "tiny-xl")
    save_single_file(models / "tiny-xl", models / "tiny-xl.safetensors")
    save_config_folder(models / "tiny-xl", models / "tiny-xl-config")
    (root / "loras").mkdir()
    shutil.copy(tiny_sd_project / "loras" / "pixel.safetensors", root / "loras" / "pixel.safetensors")
    kohya_lora(root / "loras" / "pixel.safetensors", root / "loras" / "pixel-kohya.safetensors")
    xl_lora = save_tiny_lora(models / "tiny-xl", root / "loras" / "xl", seed=3)
    xl_lora.rename(root / "loras" / "xl.safetensors")
    unet_config = json.loads((models / "tiny-xl" / "unet" / "config.json").read_text())
    kohya_lora(root / "loras" / "xl.safetensors", root / "loras" / "xl-kohya.safetensors", unet_config)
    return root


MANIFEST = """[project]
name = "tiny"
palette = "pico-8"
seed = 5

[generator.diffusion]
{settings}
steps = 2
guidance = 1.5
frames = "seed"
pixelize = {{ background = "none" }}

[[sprite]]
name = "hero"
generator = "diffusion"
prompt = "knight with a blue cape"
size = [16, 16]
animations = {{ walk = 2 }}

[[atlas]]
name = "all"
sprites = ["hero"]
"""


def project(models: Path, tmp_path: Path, name: str, settings: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "models").symlink_to(models / "models")
    (root / "loras").symlink_to(models / "loras")
    (root / "sparky.toml").write_text(MANIFEST.format(settings=settings))
    return root


def build(root: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-q", "build", str(root)])
    return code, capsys.readouterr().err


def atlas(root: Path) -> bytes:
    return (root / "build/sprites/sheets/all_0.png").read_bytes()


@pytest.mark.parametrize(
    "name,folder,single",
    [
        (
            "sd15",
            'model = "models/tiny-sd"\nlora = ["loras/pixel-kohya.safetensors"]',
            'model = "models/tiny-sd.safetensors"\nmodel_config = "models/tiny-sd-config"\n'
            'lora = ["loras/pixel-kohya.safetensors"]',
        ),
        (
            "sd2",
            'model = "models/tiny-sd2"',
            'model = "models/tiny-sd2.safetensors"\nmodel_config = "models/tiny-sd2-config"',
        ),
        (
            "sdxl",
            'model = "models/tiny-xl"',
            'model = "models/tiny-xl.safetensors"\nmodel_config = "models/tiny-xl-config"',
        ),
    ],
)
def test_single_file_builds_the_same_sprites_as_the_folder_offline(
    checkpoint_models, tmp_path, capsys, no_network, name, folder, single
):
    from_folder = project(checkpoint_models, tmp_path, "folder", folder)
    from_file = project(checkpoint_models, tmp_path, "file", single)
    assert build(from_folder, capsys) == (0, "")
    result = build(from_file, capsys)
    assert result == (0, ""), result[1]
    assert atlas(from_file) == atlas(from_folder)
    assert (from_file / "sparky.lock").is_file()
    # Same caching as a folder model: nothing to do the second time.
    from sparky_assets.pipeline.engine import Builder

    again = Builder(from_file / "sparky.toml").build()
    assert again.ran["generate"] == [] and not again.written


def test_kohya_lora_equals_the_diffusers_lora_and_changes_the_output(checkpoint_models, tmp_path, capsys, no_network):
    base = 'model = "models/tiny-sd.safetensors"\nmodel_config = "models/tiny-sd-config"'
    plain = project(checkpoint_models, tmp_path, "plain", base)
    kohya = project(checkpoint_models, tmp_path, "kohya", base + '\nlora = ["loras/pixel-kohya.safetensors"]')
    peft = project(checkpoint_models, tmp_path, "peft", base + '\nlora = ["loras/pixel.safetensors"]')
    for root in (plain, kohya, peft):
        assert build(root, capsys) == (0, "")
    assert atlas(kohya) == atlas(peft) != atlas(plain)


def test_sdxl_kohya_lora_with_original_block_names_equals_the_diffusers_lora(
    checkpoint_models, tmp_path, capsys, no_network
):
    """SDXL kohya LoRAs name UNet modules the original way (input_blocks_4_1_…)."""
    base = 'model = "models/tiny-xl.safetensors"\nmodel_config = "models/tiny-xl-config"'
    kohya = project(checkpoint_models, tmp_path, "kohya", base + '\nlora = ["loras/xl-kohya.safetensors"]')
    folder = project(checkpoint_models, tmp_path, "folder", 'model = "models/tiny-xl"\nlora = ["loras/xl.safetensors"]')
    plain = project(checkpoint_models, tmp_path, "plain", base)
    for root in (kohya, folder, plain):
        assert build(root, capsys) == (0, "")
    assert atlas(kohya) == atlas(folder) != atlas(plain)
    # The other way round: an SDXL LoRA on the SD 1.5 model.
    wrong = project(
        checkpoint_models, tmp_path, "wrong", 'model = "models/tiny-sd"\nlora = ["loras/xl-kohya.safetensors"]'
    )
    code, err = build(wrong, capsys)
    assert code == 2 and "generator.diffusion.lora[0]" in err and "xl-kohya.safetensors" in err
    assert "takes width 80 inputs, the model's takes width 32" in err


def test_pickle_checkpoint_needs_the_opt_in_then_builds_the_same(checkpoint_models, tmp_path, capsys, no_network):
    settings = 'model = "models/tiny-sd.ckpt"\nmodel_config = "models/tiny-sd-config"'
    root = project(checkpoint_models, tmp_path, "ckpt", settings)
    code, err = build(root, capsys)
    assert code == 2
    assert f"{root / 'sparky.toml'}:7:" in err and "generator.diffusion.model" in err
    assert "tiny-sd.ckpt" in err and "pickle" in err and "allow_pickle = true" in err
    reference = project(checkpoint_models, tmp_path, "safetensors", settings.replace(".ckpt", ".safetensors"))
    (root / "sparky.toml").write_text(MANIFEST.format(settings=settings + "\nallow_pickle = true"))
    assert build(root, capsys) == (0, "")
    assert build(reference, capsys) == (0, "")
    assert atlas(root) == atlas(reference)


def test_truncated_checkpoint_is_invalid_input_naming_the_file(checkpoint_models, tmp_path, capsys):
    root = project(checkpoint_models, tmp_path, "cut", 'model = "cut.safetensors"')
    data = (checkpoint_models / "models" / "tiny-sd.safetensors").read_bytes()
    (root / "cut.safetensors").write_bytes(data[: len(data) // 2])
    code, err = build(root, capsys)
    assert code == 2
    assert f"{root / 'sparky.toml'}:7:" in err and "generator.diffusion.model" in err
    assert "cut.safetensors" in err and "truncated" in err and f"{len(data)} bytes" in err


def test_lora_for_another_base_model_is_refused_before_loading(checkpoint_models, tmp_path, capsys):
    settings = (
        'model = "models/tiny-xl.safetensors"\nmodel_config = "models/tiny-xl-config"\n'
        'lora = ["loras/pixel-kohya.safetensors"]'
    )
    root = project(checkpoint_models, tmp_path, "mismatch", settings)
    code, err = build(root, capsys)
    assert code == 2
    assert f"{root / 'sparky.toml'}:9:" in err and "generator.diffusion.lora[0]" in err
    assert "pixel-kohya.safetensors" in err and "different base model" in err
    assert "width 32" in err and "width 80" in err  # the LoRA's and the model's cross-attention inputs
    assert not (root / "build").exists()


def test_standard_configs_refuse_a_scaled_down_checkpoint_with_a_hint(checkpoint_models, tmp_path, capsys):
    root = project(checkpoint_models, tmp_path, "noconfig", 'model = "models/tiny-sd.safetensors"')
    code, err = build(root, capsys)
    assert code == 2
    assert "SD 1.5-layout checkpoint does not match the standard SD 1.5 configs" in err
    assert "cross-attention width: checkpoint 32, config 768" in err and "model_config" in err


def test_watch_inputs_include_the_checkpoint_and_its_configs(checkpoint_models):
    from sparky_assets.generators.base import FrameSpec, GenerationRequest
    from sparky_assets.generators.diffusion import DiffusionGenerator
    from sparky_assets.reads import ReadContext

    request = GenerationRequest(
        sprite="hero",
        width=16,
        height=16,
        frames=(FrameSpec("", 0),),
        seed=1,
        root=checkpoint_models,
        prompt="knight",
        settings={
            "model": "models/tiny-sd.safetensors",
            "model_config": "models/tiny-sd-config",
            "lora": ["loras/pixel-kohya.safetensors"],
        },
    )
    generator = DiffusionGenerator()
    reads = ReadContext()  # what the build records (and watch watches) for this sprite
    assert generator.validate(request, reads) == []
    generator.cache_key(request, reads)
    root = checkpoint_models.resolve()
    files = {p.relative_to(root).as_posix() for p in reads.paths() if p.is_relative_to(root)}
    assert {"models/tiny-sd.safetensors", "loras/pixel-kohya.safetensors"} <= files
    assert {"models/tiny-sd-config/unet/config.json", "models/tiny-sd-config/tokenizer/tokenizer.json"} <= files
    key = generator.cache_key(request)["model"]["fingerprint"]
    other = dict(request.settings, model_config="models/tiny-xl-config")
    with pytest.raises(Exception, match="does not match"):
        generator.cache_key(GenerationRequest(**{**request.__dict__, "settings": other}))
    assert len(key) == 64


# --------------------------------------------------------------------------- `models`


def models_command(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["models", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


SINGLE_FILE = (
    'model = "models/tiny-sd.safetensors"\nmodel_config = "models/tiny-sd-config"\n'
    'lora = [{ path = "loras/pixel-kohya.safetensors", weight = 0.5 }]'
)


def test_models_lists_present_files_with_the_builds_fingerprint(checkpoint_models, tmp_path, capsys):
    import json

    from sparky_assets.generators.base import FrameSpec, GenerationRequest
    from sparky_assets.generators.diffusion import DiffusionGenerator, file_sha256

    root = project(checkpoint_models, tmp_path, "listed", SINGLE_FILE)
    code, out, err = models_command(capsys, str(root), "--json")
    assert code == 0, err
    listing = json.loads(out)
    model, config, lora = listing["files"]
    assert (model["role"], model["present"], model["kind"]) == ("model", True, "single-file checkpoint")
    assert model["architecture"] == "SD 1.5 layout, configs from models/tiny-sd-config"
    checkpoint = checkpoint_models / "models" / "tiny-sd.safetensors"
    assert model["size"] == checkpoint.stat().st_size and model["line"] == 7
    request = GenerationRequest(
        "hero",
        16,
        16,
        (FrameSpec("", 0),),
        1,
        root,
        "knight",
        settings={"model": "models/tiny-sd.safetensors", "model_config": "models/tiny-sd-config"},
    )
    assert model["fingerprint"] == DiffusionGenerator().cache_key(request)["model"]["fingerprint"]
    assert (config["role"], config["present"], config["kind"]) == ("model_config", True, "config folder")
    assert lora["kind"] == "LoRA (kohya layout, weight 0.5)" and lora["architecture"] == "for cross-attention width 32"
    assert lora["fingerprint"] == file_sha256(checkpoint_models / "loras" / "pixel-kohya.safetensors")
    assert listing["frozen"] == {
        "needs_model_files": True,
        "summary": listing["frozen"]["summary"],
        "diffusion_sprites": ["hero"],
        "stale": {"hero": "not in sparky.lock (new sprite)"},
    }
    code, text, _ = models_command(capsys, str(root))
    assert code == 0 and "present; single-file checkpoint; SD 1.5 layout" in text
    assert "frozen build needs: 1 of 1 diffusion sprites are not locked" in text


def test_models_after_a_build_says_frozen_needs_nothing_even_without_the_files(
    checkpoint_models, tmp_path, capsys, no_network
):
    import json

    root = project(checkpoint_models, tmp_path, "locked", SINGLE_FILE)
    assert build(root, capsys)[0] == 0
    ci = tmp_path / "ci"
    shutil.copytree(root, ci, symlinks=True, ignore=shutil.ignore_patterns(".sparky", "build", "models", "loras"))
    code, out, err = models_command(capsys, str(ci), "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert [(f["role"], f["present"]) for f in listing["files"]] == [
        ("model", False),
        ("model_config", False),
        ("lora[0]", False),
    ]
    assert listing["files"][0]["problem"].startswith("model 'models/tiny-sd.safetensors' not found")
    assert listing["frozen"]["needs_model_files"] is False and listing["frozen"]["stale"] == {}
    code, text, _ = models_command(capsys, str(ci))
    assert "missing" in text and "frozen build needs: nothing — all 1 diffusion sprites are locked" in text
    assert main(["-q", "build", "--frozen", str(ci)]) == 0
    assert atlas(ci) == atlas(root)


def test_models_fetch_says_it_uses_the_network_and_refuses_offline(checkpoint_models, tmp_path, capsys, no_network):
    root = project(
        checkpoint_models, tmp_path, "hub", 'model = "nobody/pixel-model"\nlora = ["loras/absent.safetensors"]'
    )
    code, out, err = models_command(capsys, "fetch", str(root))
    assert code == 1
    assert "models fetch uses the network: downloading nobody/pixel-model from huggingface.co" in out
    assert "HF_HUB_OFFLINE is set" in err and not (root / "models" / "nobody").exists()
    code, _, err = models_command(capsys, "fetch", str(root), "--only", "loras/absent.safetensors")
    assert code == 2 and "not a hub model id" in err and "generator.diffusion.lora[0]" in err
    code, _, err = models_command(capsys, "fetch", str(root), "--only", "nobody/pixel-modle")
    assert code == 2 and "no model named 'nobody/pixel-modle'" in err and "did you mean 'nobody/pixel-model'?" in err
    present = project(checkpoint_models, tmp_path, "present", 'model = "models/tiny-sd"')
    code, out, _ = models_command(capsys, "fetch", str(present))
    assert code == 0 and out.strip() == "nothing to fetch: every model is present"
    # A fetched model lands where the build looks before the Hugging Face cache.
    (root / "models").unlink()
    (root / "models" / "nobody").mkdir(parents=True)
    shutil.copytree(checkpoint_models / "models" / "tiny-sd", root / "models" / "nobody" / "pixel-model")
    code, out, _ = models_command(capsys, str(root), "--json")
    assert '"kind": "diffusers folder"' in out and '"present": true' in out
