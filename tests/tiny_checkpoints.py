"""Tiny single-file checkpoints in the original (ldm/sgm) layout, for tests.

A user's downloaded model is one ``.safetensors`` file with the original Stable
Diffusion key names (``model.diffusion_model.input_blocks.1.1.…``,
``first_stage_model.encoder.down.0.block.0.…``, ``cond_stage_model.transformer.…`` or,
for SDXL, ``conditioner.embedders.0.transformer.…`` + ``conditioner.embedders.1.model.…``
with fused q/k/v ``in_proj_weight``). This module writes such files from a tiny
random-weight diffusers pipeline, so a test can load the *same weights* both ways and
compare pixels: :func:`original_state_dict` renames (and, where the layouts differ,
reshapes or fuses) every tensor; nothing is re-initialised, so the conversion is
lossless and exactly invertible by diffusers' own single-file loader.

The renaming rules are the published layout of the original UNet (input blocks
``1 + level·(layers+1) + j``, downsamplers at ``(level+1)·(layers+1)``, output blocks
``level·(layers+1) + j``, upsamplers after the last resnet — ``.1`` or ``.2`` depending on
whether the block has attention), VAE (decoder levels reversed, ``mid.block_1/2``,
``mid.attn_1`` with 1×1-conv q/k/v/proj_out) and OpenCLIP text tower. They are written
for any number of levels, so the tiny 2-level models and the real 3/4-level ones use the
same code (``tests/unit/test_checkpoints.py`` checks the real layouts on meta tensors).

Also: :func:`build_tiny_sdxl_pipeline` (an SDXL-shaped pipeline: two text encoders of
different widths, text-time additional embeddings) and :func:`kohya_lora` (a diffusers
LoRA renamed to kohya/A1111 ``lora_unet_…``/``lora_te_…`` keys with ``.alpha``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tests.tiny_pipeline import build_tiny_vae, write_tokenizer_files

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt")


# --------------------------------------------------------------------------- pipelines


def build_tiny_sdxl_pipeline(seed: int = 0):
    """A ``StableDiffusionXLPipeline`` with tiny random components (not saved)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)
    vocab = len(tokenizer.get_vocab())

    def text_config(hidden: int) -> CLIPTextConfig:
        return CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=hidden,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=vocab,
            max_position_embeddings=77,
            projection_dim=32,
            hidden_act="gelu",
        )

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # time ids × embed dim + pooled projection
        cross_attention_dim=32 + 48,  # both text encoders' hidden states side by side
        norm_num_groups=32,
    )
    vae = build_tiny_vae(seed + 1)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(text_config(32))
    torch.manual_seed(seed + 3)
    # A different width from text_encoder, as in real SDXL (768 vs 1280): the single-file
    # loader tells the two CLIP towers apart by their width.
    text_encoder_2 = CLIPTextModelWithProjection(text_config(48))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    return StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def build_tiny_sd2_pipeline(seed: int = 0):
    """The tiny SD pipeline made SD 2.x-shaped: linear attention projections with upcast
    attention, a GELU text encoder (the OpenCLIP tower), v-prediction."""
    import torch
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    from tests.tiny_pipeline import build_tiny_pipeline

    pipeline = build_tiny_pipeline(seed)
    torch.manual_seed(seed + 5)
    config = dict(pipeline.unet.config, use_linear_projection=True, upcast_attention=True)
    pipeline.register_modules(unet=UNet2DConditionModel.from_config(config))
    text_config = pipeline.text_encoder.config
    text_config.hidden_act = "gelu"
    torch.manual_seed(seed + 6)
    pipeline.register_modules(text_encoder=CLIPTextModel(text_config))
    scheduler = DDIMScheduler.from_config(pipeline.scheduler.config, prediction_type="v_prediction")
    pipeline.register_modules(scheduler=scheduler)
    return pipeline


def save_tiny_sd2_pipeline(path: Path, seed: int = 0) -> Path:
    build_tiny_sd2_pipeline(seed).save_pretrained(str(path), safe_serialization=True)
    return Path(path)


def save_tiny_sdxl_pipeline(path: Path, seed: int = 0) -> Path:
    build_tiny_sdxl_pipeline(seed).save_pretrained(str(path), safe_serialization=True)
    return Path(path)


# --------------------------------------------------------------------------- diffusers → original


def unet_key_map(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, original prefix) pairs for a UNet2DConditionModel config."""
    levels = len(config["block_out_channels"])
    per = config.get("layers_per_block", 2)
    up_types = config["up_block_types"]
    pairs = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("add_embedding.linear_1.", "label_emb.0.0."),
        ("add_embedding.linear_2.", "label_emb.0.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    for level in range(levels):
        for j in range(per):
            block = 1 + level * (per + 1) + j
            pairs.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{block}.0."))
            pairs.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{block}.1."))
        if level < levels - 1:
            pairs.append((f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{(level + 1) * (per + 1)}.0.op."))
        for j in range(per + 1):
            block = level * (per + 1) + j
            pairs.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{block}.0."))
            pairs.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{block}.1."))
        if level < levels - 1:
            slot = 2 if up_types[level].startswith("CrossAttn") else 1
            pairs.append((f"up_blocks.{level}.upsamplers.0.", f"output_blocks.{level * (per + 1) + per}.{slot}."))
    return pairs


RESNET_PARTS = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]


def convert_unet(state: dict, config: dict) -> dict:
    pairs = sorted(unet_key_map(config), key=lambda p: -len(p[0]))
    out = {}
    for key, value in state.items():
        prefix = next((p for p in pairs if key.startswith(p[0])), None)
        assert prefix is not None, f"no original name for UNet tensor {key}"
        rest = key[len(prefix[0]) :]
        if ".resnets." in prefix[0] or prefix[0].startswith("mid_block.resnets"):
            for new, old in RESNET_PARTS:
                if rest.startswith(new):
                    rest = old + rest[len(new) :]
        out["model.diffusion_model." + prefix[1] + rest] = value
    return out


def convert_vae(state: dict, config: dict) -> dict:
    levels = len(config["block_out_channels"])
    pairs = [("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out.")]
    for side in ("encoder", "decoder"):
        pairs += [(f"{side}.mid_block.resnets.{i}.", f"{side}.mid.block_{i + 1}.") for i in range(2)]
        pairs.append((f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1."))
    for level in range(levels):
        pairs.append((f"encoder.down_blocks.{level}.resnets.", f"encoder.down.{level}.block."))
        pairs.append((f"encoder.down_blocks.{level}.downsamplers.0.", f"encoder.down.{level}.downsample."))
        pairs.append((f"decoder.up_blocks.{level}.resnets.", f"decoder.up.{levels - 1 - level}.block."))
        pairs.append((f"decoder.up_blocks.{level}.upsamplers.0.", f"decoder.up.{levels - 1 - level}.upsample."))
    attention = [
        ("group_norm.", "norm."),
        ("to_q.", "q."),
        ("to_k.", "k."),
        ("to_v.", "v."),
        ("to_out.0.", "proj_out."),
    ]
    out = {}
    for key, value in state.items():
        new = key
        for old, original in pairs:
            if new.startswith(old):
                new = original + new[len(old) :]
                break
        new = new.replace(".conv_shortcut.", ".nin_shortcut.")
        if ".mid.attn_1." in new:
            head, rest = new.split(".mid.attn_1.")
            for old, original in attention:
                if rest.startswith(old):
                    rest = original + rest[len(old) :]
            new = f"{head}.mid.attn_1.{rest}"
            if value.ndim == 2:  # the original attention uses 1×1 convolutions
                value = value.reshape(*value.shape, 1, 1)
        out["first_stage_model." + new] = value
    return out


def convert_clip(state: dict, prefix: str) -> dict:
    """HF CLIP text model → the original layout's HF-named tower under ``prefix``."""
    return {
        prefix + "text_model." + key.removeprefix("text_model."): value
        for key, value in state.items()
        if not key.endswith("position_ids")
    }


def convert_open_clip(state: dict, prefix: str) -> dict:
    """HF CLIPTextModelWithProjection → OpenCLIP's text tower (fused q/k/v, transposed projection)."""
    import torch

    out, fused = {}, {}
    renames = [
        ("embeddings.token_embedding.weight", "token_embedding.weight"),
        ("embeddings.position_embedding.weight", "positional_embedding"),
        ("final_layer_norm.", "ln_final."),
    ]
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if key.endswith("position_ids"):
            continue
        if key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
            continue
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old) :]
        if key.startswith("encoder.layers."):
            layer, rest = key[len("encoder.layers.") :].split(".", 1)
            base = f"{prefix}transformer.resblocks.{layer}."
            if rest.startswith("self_attn.") and rest[len("self_attn.")] in "qkv" and "_proj." in rest:
                kind = rest.rsplit(".", 1)[1]  # weight | bias
                fused.setdefault((base, kind), {})[rest[len("self_attn.")]] = value
                continue
            rest = (
                rest.replace("self_attn.out_proj.", "attn.out_proj.")
                .replace("layer_norm1.", "ln_1.")
                .replace("layer_norm2.", "ln_2.")
                .replace("mlp.fc1.", "mlp.c_fc.")
                .replace("mlp.fc2.", "mlp.c_proj.")
            )
            out[base + rest] = value
        else:
            out[prefix + key] = value
    for (base, kind), parts in fused.items():
        out[f"{base}attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def original_state_dict(pipeline, *, sd2: bool = False) -> dict:
    """Every weight of a (tiny or real) SD 1.x, SD 2.x (``sd2``) or SDXL pipeline under its
    original name. SD 2.x files hold the whole OpenCLIP tower — one block more than the
    diffusers text encoder, which stops at the penultimate layer — and its projection;
    neither is used, so the extra block repeats the last one and the projection is the
    identity."""
    import torch

    state = {}
    state.update(convert_unet(pipeline.unet.state_dict(), dict(pipeline.unet.config)))
    state.update(convert_vae(pipeline.vae.state_dict(), dict(pipeline.vae.config)))
    if getattr(pipeline, "text_encoder_2", None) is not None:
        state.update(convert_clip(pipeline.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        state.update(convert_open_clip(pipeline.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    elif sd2:
        prefix = "cond_stage_model.model."
        tower = convert_open_clip(pipeline.text_encoder.state_dict(), prefix)
        last = pipeline.text_encoder.config.num_hidden_layers - 1
        block = f"{prefix}transformer.resblocks.{last}."
        extra = f"{prefix}transformer.resblocks.{last + 1}."
        tower.update({extra + k[len(block) :]: v.clone() for k, v in tower.items() if k.startswith(block)})
        token = tower[prefix + "token_embedding.weight"]
        tower[prefix + "text_projection"] = torch.eye(token.shape[1], dtype=token.dtype, device=token.device)
        state.update(tower)
    else:
        state.update(convert_clip(pipeline.text_encoder.state_dict(), "cond_stage_model.transformer."))
    return state


def save_single_file(pipeline_dir: Path, path: Path, *, pickle: bool = False, sd2: bool = False) -> Path:
    """Load a saved tiny pipeline folder and write its weights as one original-layout
    checkpoint (``.safetensors``, or a ``{"state_dict": …}`` pickle with ``pickle``;
    the SD 2.x text-tower layout with ``sd2``)."""
    import diffusers
    import torch
    from safetensors.torch import save_file

    index = json.loads((Path(pipeline_dir) / "model_index.json").read_text())
    cls = getattr(diffusers, index["_class_name"])
    extra = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in index else {}
    pipeline = cls.from_pretrained(str(pipeline_dir), local_files_only=True, **extra)
    state = {k: v.contiguous() for k, v in original_state_dict(pipeline, sd2=sd2).items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if pickle:
        torch.save({"state_dict": state, "global_step": 1}, str(path))
    else:
        save_file(state, str(path))
    return path


def save_config_folder(pipeline_dir: Path, path: Path) -> Path:
    """The pipeline folder without its weights: what ``model_config`` points at."""
    shutil.copytree(pipeline_dir, path, ignore=lambda _, names: [n for n in names if n.endswith(WEIGHT_SUFFIXES)])
    return Path(path)


# --------------------------------------------------------------------------- LoRA


def kohya_lora(diffusers_lora: Path, path: Path, unet_config: dict | None = None) -> Path:
    """Rename a diffusers/peft LoRA (``unet.<module>.lora_A.weight``) to the kohya/A1111
    layout (``lora_unet_<module_with_underscores>.lora_down.weight`` + ``.alpha``). The
    alpha equals the rank, so the effective scale (alpha / rank = 1) is unchanged. With
    ``unet_config`` the UNet modules get their original names, as SDXL kohya LoRAs have
    them (``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k``)."""
    import torch
    from safetensors.torch import load_file, save_file

    prefixes = {"unet.": "lora_unet_", "text_encoder.": "lora_te_", "text_encoder_2.": "lora_te2_"}
    original = sorted(unet_key_map(unet_config), key=lambda p: -len(p[0])) if unet_config else []
    out = {}
    for key, value in load_file(str(diffusers_lora)).items():
        component = next(p for p in sorted(prefixes, key=len, reverse=True) if key.startswith(p))
        module, kind = key[len(component) :].rsplit(".lora_", 1)
        if component == "unet." and original:
            old, new = next(pair for pair in original if (module + ".").startswith(pair[0]))
            module = new + module[len(old) :]
        name = prefixes[component] + module.replace(".", "_")
        if kind.startswith("A"):
            out[name + ".lora_down.weight"] = value.contiguous()
            out[name + ".alpha"] = torch.tensor(float(value.shape[0]))
        else:
            out[name + ".lora_up.weight"] = value.contiguous()
    path = Path(path)
    save_file(out, str(path))
    return path
