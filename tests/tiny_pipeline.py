"""Tiny random-weight Stable Diffusion pipelines for CPU tests and benchmarks.

Everything is built locally — no download — from seeded random weights, in the
diffusers test-suite style: a UNet with (32, 64) channels, a two-block VAE (image
size = 2 × latent size), a 2-layer CLIP text encoder and a CLIP tokenizer made from
a hand-written vocabulary and merges. The pipeline renders 64×64 images in well
under a second per step on one CPU thread.

``save_tiny_pipeline(path)`` writes a diffusers folder (``model_index.json`` +
components) that ``DiffusionGenerator`` loads like any real model;
``save_tiny_lora(pipeline_dir, path)`` writes a LoRA for the UNet's attention
projections with non-zero weights. Both are deterministic for a given seed.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

TINY_RENDER_SIZE = 64
"""Native resolution of the tiny pipeline (UNet sample size 32 × VAE factor 2)."""

_WORDS = [
    "knight",
    "slime",
    "coin",
    "sword",
    "blue",
    "red",
    "green",
    "pixel",
    "art",
    "cape",
    "side",
    "view",
    "frame",
    "of",
    "idle",
    "walk",
    "run",
    "attack",
    "blurry",
    "photo",
]


def write_tokenizer_files(folder: Path) -> None:
    """A CLIP BPE vocabulary: specials, single characters (alone and word-final), and
    merges that build a few whole words, so different prompts give different ids."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + ",.!-")
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols:
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    merges: list[str] = []
    for word in _WORDS:
        # Left-to-right merges: "k n" → "kn", "kn i" → "kni", ..., last one word-final.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merge = f"{current} {piece}"
            if merge not in merges:
                merges.append(merge)
            current = current + piece
            vocab.setdefault(current, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def build_tiny_vae(seed: int):
    """A two-level ``AutoencoderKL`` (image size = 2 × latent size) with seeded random weights."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=TINY_RENDER_SIZE,
    )


def build_tiny_pipeline(seed: int = 0):
    """A ``StableDiffusionPipeline`` with tiny random components (not saved)."""
    import tempfile

    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
        attention_head_dim=8,
    )
    vae = build_tiny_vae(seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer.get_vocab()),
            max_position_embeddings=77,
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(path: Path, seed: int = 0) -> Path:
    """Write a tiny pipeline as a diffusers folder (safetensors weights)."""
    pipeline = build_tiny_pipeline(seed)
    pipeline.save_pretrained(str(path), safe_serialization=True)
    return Path(path)


def save_tiny_lora(pipeline_dir: Path, path: Path, *, rank: int = 4, seed: int = 0, scale: float = 0.5) -> Path:
    """A LoRA for the tiny UNet's attention projections (``to_q/k/v/out.0``) with
    random non-zero A and B matrices, saved with diffusers' ``save_lora_weights``.
    Returns the ``.safetensors`` file."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(Path(pipeline_dir) / "unet"))
    config = LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
    )
    torch.manual_seed(seed)
    unet.add_adapter(config)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn_like(parameter) * scale)
    layers = get_peft_model_state_dict(unet)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=layers, safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


def save_tiny_controlnet(pipeline_dir: Path, path: Path, *, seed: int = 0) -> Path:
    """A ControlNet for the tiny UNet (``ControlNetModel.from_unet`` with a small
    conditioning embedding), its weights re-randomised so the conditioning image
    really changes the output (a fresh ControlNet's zero convolutions would not).
    Saved with ``save_pretrained``; loads with ``ControlNetModel.from_pretrained``."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(Path(pipeline_dir) / "unet"))
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in controlnet.named_parameters():
            if name.startswith(
                ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
            ):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    controlnet.save_pretrained(str(path), safe_serialization=True)
    return Path(path)


if __name__ == "__main__":  # pragma: no cover - manual helper
    import sys

    print(save_tiny_pipeline(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-sd")))


def save_tiny_ip_adapter(pipeline_dir: Path, path: Path, *, seed: int = 0, scale: float = 0.5) -> Path:
    """An IP-Adapter for the tiny UNet in the public repository's layout: a tiny CLIP
    vision encoder (``CLIPVisionModelWithProjection``, 32 px input) saved in
    ``image_encoder/`` and ``ip-adapter.safetensors`` with the image projection
    (``image_proj.proj`` / ``norm``: 4 tokens of the UNet's cross-attention width) and
    a key/value projection per cross-attention layer (``ip_adapter.{1,3,…}.to_k_ip`` /
    ``to_v_ip``, numbered like diffusers' loader expects), all seeded random values so
    the reference really changes the output. Loads with ``pipe.load_ip_adapter``."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(path)
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=32,
            patch_size=4,
            num_channels=3,
            layer_norm_eps=1e-5,
        )
    )
    encoder.save_pretrained(str(folder / "image_encoder"), safe_serialization=True)
    unet = UNet2DConditionModel.from_pretrained(str(Path(pipeline_dir) / "unet"))
    width = unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(seed + 1)

    def random(*shape: int) -> torch.Tensor:
        return (torch.randn(shape, generator=generator) * scale).contiguous()

    tensors = {
        "image_proj.proj.weight": random(width * 4, encoder.config.projection_dim),
        "image_proj.proj.bias": random(width * 4),
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):  # cross-attention layers, in the loader's order
            block = name.split(".")[0]
            if block == "mid_block":
                hidden = unet.config.block_out_channels[-1]
            elif block == "up_blocks":
                hidden = list(reversed(unet.config.block_out_channels))[int(name.split(".")[1])]
            else:
                hidden = unet.config.block_out_channels[int(name.split(".")[1])]
            tensors[f"ip_adapter.{key}.to_k_ip.weight"] = random(hidden, width)
            tensors[f"ip_adapter.{key}.to_v_ip.weight"] = random(hidden, width)
            key += 2
    save_file(tensors, str(folder / "ip-adapter.safetensors"))
    return folder
