"""Fixtures for integration tests: a tiny random-weight Stable Diffusion pipeline
(and a LoRA for it) saved once per session into a project-like folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_sd_project(tmp_path_factory):
    """A project root holding ``models/tiny-sd`` (diffusers folder),
    ``models/tiny-controlnet`` (a ControlNetModel for it), ``models/tiny-ip-adapter``
    (an IP-Adapter for it) and ``loras/pixel.safetensors``; skips (fails under CI) without torch/diffusers."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    pytest.importorskip("peft")
    import torch

    torch.set_num_threads(1)
    from tests.tiny_pipeline import save_tiny_controlnet, save_tiny_ip_adapter, save_tiny_lora, save_tiny_pipeline

    root = tmp_path_factory.mktemp("tiny-sd-project")
    model = save_tiny_pipeline(root / "models" / "tiny-sd")
    save_tiny_controlnet(model, root / "models" / "tiny-controlnet")
    save_tiny_ip_adapter(model, root / "models" / "tiny-ip-adapter")
    lora = save_tiny_lora(model, root / "loras" / "pixel")
    target = root / "loras" / "pixel.safetensors"
    lora.rename(target)
    return root


@pytest.fixture()
def recipe_plugin(tmp_path_factory, monkeypatch):
    """The third-party ``recipe`` generator and ``csv`` exporter (tests/thirdparty_plugin.py)
    installed on ``sys.path`` as a package with entry points, for one test."""
    from sparky_assets import registry
    from tests.thirdparty_plugin import install

    site = install(tmp_path_factory.mktemp("site-packages"))
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield site
    monkeypatch.undo()
    import sys

    sys.modules.pop("sparky_recipe", None)
    registry.refresh()
