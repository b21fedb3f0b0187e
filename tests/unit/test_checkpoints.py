"""Checkpoint headers, architecture detection, the shipped configs and the CLIP vocabulary.

The shipped configs (``sparky_assets/generators/model_configs``) are what a real SD 1.5,
SD 2.x or SDXL single file loads with, and no real weights exist here: they are checked
by building each architecture on the meta device (no memory), comparing parameter counts
with the published figures, writing the real original-layout names and shapes with the
test converter, and asking both this package and diffusers' own single-file code what
they make of them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sparky_assets.generators import checkpoints, lora
from sparky_assets.generators.checkpoints import CheckpointProblem

CONFIGS = checkpoints.CONFIG_ROOT


def write_safetensors(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    from safetensors.numpy import save_file

    save_file({k: np.zeros(shape, dtype=np.float16) for k, shape in tensors.items()}, str(path))
    return path


def test_header_is_read_without_loading_and_truncation_is_caught(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", {"a.weight": (4, 3), "b": (2,)})
    assert checkpoints.read_safetensors_header(path) == {"a.weight": ("F16", (4, 3)), "b": ("F16", (2,))}
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-1])
    with pytest.raises(CheckpointProblem, match="truncated") as cut:
        checkpoints.read_safetensors_header(tmp_path / "cut.safetensors")
    assert cut.value.expected == f"{len(data)} bytes as its header describes"
    (tmp_path / "head.safetensors").write_bytes(data[:20])
    with pytest.raises(CheckpointProblem, match="truncated inside its header"):
        checkpoints.read_safetensors_header(tmp_path / "head.safetensors")
    (tmp_path / "long.safetensors").write_bytes(data + b"\0")
    with pytest.raises(CheckpointProblem, match="longer than its header"):
        checkpoints.read_safetensors_header(tmp_path / "long.safetensors")
    (tmp_path / "text.safetensors").write_bytes(struct.pack("<Q", 5) + b"hello")
    with pytest.raises(CheckpointProblem, match="not JSON"):
        checkpoints.read_safetensors_header(tmp_path / "text.safetensors")


def test_other_files_are_refused_by_name():
    unet = {"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)}
    with pytest.raises(CheckpointProblem, match="LoRA, not a base model"):
        checkpoints.detect_architecture({"lora_unet_x.lora_down.weight": (4, 8)})
    with pytest.raises(CheckpointProblem, match="inpainting"):
        checkpoints.detect_architecture({"model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)})
    with pytest.raises(CheckpointProblem, match="refiner"):
        checkpoints.detect_architecture({**unet, "conditioner.embedders.0.model.text_projection": (1280, 1280)})
    with pytest.raises(CheckpointProblem, match="no Stable Diffusion UNet"):
        checkpoints.detect_architecture({"encoder.weight": (3, 3)})


def test_pickle_checkpoints_need_the_opt_in(tmp_path):
    (tmp_path / "m.ckpt").write_bytes(b"not opened")
    with pytest.raises(CheckpointProblem, match="pickle") as refused:
        checkpoints.describe_checkpoint(tmp_path / "m.ckpt", None, allow_pickle=False)
    assert "allow_pickle = true" in refused.value.hint
    info = checkpoints.describe_checkpoint(tmp_path / "m.ckpt", None, allow_pickle=True)
    assert info.architecture is None and info.pickle  # detected once loaded


def test_clip_vocabulary_gives_the_reference_token_ids():
    pytest.importorskip("transformers")
    tokenizer = checkpoints.clip_tokenizer(json.loads((CONFIGS / "sd15/tokenizer/tokenizer_config.json").read_text()))
    assert len(tokenizer.get_vocab()) == 49408
    # openai/clip-vit-large-patch14's ids for this sentence (the CLIP README example).
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    sd2 = checkpoints.clip_tokenizer(json.loads((CONFIGS / "sd2/tokenizer/tokenizer_config.json").read_text()))
    assert sd2.pad_token == "!" and sd2.pad_token_id == 0 and tokenizer.pad_token_id == 49407


def _meta_pipeline(arch: str):
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    folder = CONFIGS / arch
    index = json.loads((folder / "model_index.json").read_text())
    parts = {}
    with init_empty_weights():
        for name in ("unet", "vae"):
            cls = getattr(diffusers, index[name][1])
            parts[name] = cls.from_config(json.loads((folder / name / "config.json").read_text()))
        for name in ("text_encoder", "text_encoder_2"):
            if name in index:
                cls = getattr(transformers, index[name][1])
                parts[name] = cls(transformers.CLIPTextConfig.from_pretrained(str(folder / name)))
    return SimpleNamespace(**parts)


def real_layout_state(arch: str, pipe=None) -> dict:
    """The original-layout tensors (meta: names and shapes only) of a real ``arch`` file."""
    from tests.tiny_checkpoints import original_state_dict

    return original_state_dict(pipe or _meta_pipeline(arch), sd2=arch == "sd2")


# Published parameter counts: UNet, VAE, text encoder(s).
PUBLISHED = {
    "sd15": (859_520_964, 83_653_863, (123_060_480,)),
    "sd2": (865_910_724, 83_653_863, (340_387_840,)),
    "sdxl": (2_567_463_684, 83_653_863, (123_060_480, 694_659_840)),
}


@pytest.mark.diffusion
@pytest.mark.parametrize("arch", ["sd15", "sd2", "sdxl"])
def test_shipped_configs_are_the_real_architectures(arch):
    """Parameter counts match the published ones; the real original-layout names and
    shapes are detected as this architecture, agree with the configs, are what diffusers
    itself infers, and convert back onto every UNet parameter."""
    pytest.importorskip("accelerate")
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, infer_diffusers_model_type

    pipe = _meta_pipeline(arch)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if arch == "sdxl" else [])
    assert (count(pipe.unet), count(pipe.vae), tuple(count(e) for e in encoders)) == PUBLISHED[arch]

    state = real_layout_state(arch, pipe)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert checkpoints.detect_architecture(shapes) == arch
    assert checkpoints.config_mismatches(shapes, arch, CONFIGS / arch) == []
    assert infer_diffusers_model_type(state) == {"sd15": "v1", "sd2": "v2", "sdxl": "xl_base"}[arch]
    unet_state = convert_ldm_unet_checkpoint(state, dict(pipe.unet.config))
    assert {k: tuple(v.shape) for k, v in unet_state.items()} == {
        k: tuple(v.shape) for k, v in pipe.unet.state_dict().items()
    }
    widths = {"sd15": (768, (768,)), "sd2": (1024, (1024,)), "sdxl": (2048, (768, 1280))}[arch]
    assert lora.checkpoint_widths_from_shapes(shapes, arch) == lora.ModelWidths(widths[0], widths[1])
    native = pipe.unet.config.sample_size * 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    assert native == checkpoints.ARCHITECTURES[arch].render_size == {"sd15": 512, "sd2": 768, "sdxl": 1024}[arch]
    others = [a for a in PUBLISHED if a != arch]
    assert all(checkpoints.config_mismatches(shapes, arch, CONFIGS / o) for o in others)


def test_lora_layouts_and_what_they_were_made_for(tmp_path):
    kohya = write_safetensors(
        tmp_path / "k.safetensors",
        {
            "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
            "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4),
            "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.alpha": (),
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 768),
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": (768, 4),
        },
    )
    info = lora.describe_lora(kohya)
    assert (info.format, info.layers, info.cross_attention, info.text_widths) == ("kohya", 2, 768, {0: 768})
    xl = write_safetensors(
        tmp_path / "xl.safetensors",
        {
            "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 2048),
            "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (640, 4),
            "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": (4, 1280),
        },
    )
    xl_info = lora.describe_lora(xl)
    assert (xl_info.format, xl_info.cross_attention, xl_info.text_widths) == ("diffusers", 2048, {1: 1280})
    sd15 = lora.ModelWidths(768, (768,))
    assert lora.lora_mismatches(info, sd15) == []
    problems = lora.lora_mismatches(xl_info, sd15)
    assert problems == [
        "its UNet cross-attention takes SDXL (2048) inputs, the model's takes SD 1.x (768)",
        "it targets text_encoder_2, which the model does not have",
    ]
    write_safetensors(tmp_path / "loha.safetensors", {"lora_unet_x.hada_w1_a": (4, 4)})
    with pytest.raises(CheckpointProblem, match="LoHa"):
        lora.describe_lora(tmp_path / "loha.safetensors")
    write_safetensors(tmp_path / "full.safetensors", {"model.diffusion_model.out.2.weight": (4, 320, 3, 3)})
    with pytest.raises(CheckpointProblem, match="full checkpoint"):
        lora.describe_lora(tmp_path / "full.safetensors")


def test_weights_off_the_allocator_boundary_get_memory_of_their_own():
    """A single-file checkpoint's tensors sit where its reader put them; CPU kernels
    round differently on such memory, so they are copied to torch's own boundary."""
    import torch  # the [test] extra installs the [diffusion] one

    from sparky_assets.generators.model_files import WEIGHT_ALIGNMENT, own_aligned_weights

    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.BatchNorm1d(16))
    weight = model[0].weight.detach().clone()
    buffer = torch.empty(weight.numel() + 16)
    off = buffer[1 : 1 + weight.numel()].view_as(weight)  # 4 bytes past the boundary
    off.copy_(weight)
    model[0].weight.data = off
    assert model[0].weight.data_ptr() % WEIGHT_ALIGNMENT
    aligned = {name: t.data_ptr() for name, t in [*model.named_parameters(), *model.named_buffers()] if t.numel()}
    del aligned["0.weight"]

    assert own_aligned_weights(model) == 1  # only the tensor off the boundary moved
    assert model[0].weight.data_ptr() % WEIGHT_ALIGNMENT == 0
    assert torch.equal(model[0].weight, weight) and isinstance(model[0].weight, torch.nn.Parameter)
    assert model[0].weight.stride() == weight.stride()
    now = {name: t.data_ptr() for name, t in [*model.named_parameters(), *model.named_buffers()] if t.numel()}
    assert all(now[name] == ptr for name, ptr in aligned.items())
    assert own_aligned_weights(model) == 0
