"""LoRA files as people have them, checked against the base model before loading.

Two layouts are common: diffusers/peft (``unet.<module>.lora_A.weight``,
``text_encoder.<module>.lora_B.weight``, older ``.lora.down.weight``) and kohya/A1111
(``lora_unet_<module_with_underscores>.lora_down.weight``, ``lora_te_``/``lora_te1_``/
``lora_te2_`` for text encoders, with ``.alpha``). diffusers' ``load_lora_weights``
converts both; what it does not do is refuse a LoRA made for another base model — it
skips the keys that match nothing, or fails deep in peft with a shape error.

:func:`describe_lora` reads only the safetensors header and finds what the LoRA was made
for: the width of the UNet's cross-attention inputs (768 SD 1.x, 1024 SD 2.x, 2048 SDXL)
and of each text encoder it touches. :func:`lora_mismatches` compares that with the
base model's widths (:class:`ModelWidths`, also from headers/configs), so ``check`` and
``build`` name the LoRA file and what was expected before any weights load.
:func:`count_loaded_layers` is the after-load check: every LoRA layer in the file must
have landed on a module of the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoints import (
    ARCHITECTURES,
    UNET,
    CheckpointProblem,
    _cross_attention_width,
    safetensors_shapes,
)

KNOWN_WIDTHS = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}
"""Cross-attention input width → the base model family it belongs to."""


def family_of(width: int | None) -> str:
    if width is None:
        return "unknown"
    return f"{KNOWN_WIDTHS[width]} ({width})" if width in KNOWN_WIDTHS else f"width {width}"


@dataclass(frozen=True)
class ModelWidths:
    """The base model's input widths a LoRA must match."""

    cross_attention: int | None
    text_encoders: tuple[int | None, ...]  # hidden size of text_encoder, text_encoder_2


@dataclass
class LoraInfo:
    format: str  # "kohya" or "diffusers"
    layers: int  # LoRA layers (down/A matrices) in the file
    cross_attention: int | None = None
    text_widths: dict[int, int] = field(default_factory=dict)  # text encoder index (0, 1) → width
    components: set[str] = field(default_factory=set)  # "unet", "text_encoder", "text_encoder_2"


_KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder"}
_KOHYA_PREFIXES["lora_te2_"] = "text_encoder_2"
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", ".lora_linear_layer.down.weight")


def describe_lora(path: Path) -> LoraInfo:
    """What a LoRA file targets, from its safetensors header. Raises
    :class:`CheckpointProblem` for a file that is not a LoRA this tool can load."""
    if path.suffix.lower() != ".safetensors":
        raise CheckpointProblem(
            f"unsupported LoRA file type '{path.suffix}'", expected="a .safetensors LoRA (diffusers or kohya layout)"
        )
    shapes = safetensors_shapes(path)
    if any(k.startswith(UNET) for k in shapes):
        raise CheckpointProblem("this is a full checkpoint, not a LoRA", hint="use it as model = ... instead")
    if any(".hada_" in k or ".lokr_" in k for k in shapes):
        raise CheckpointProblem(
            "a LyCORIS LoHa/LoKr file", expected="a plain LoRA (lora_down/lora_up or lora_A/lora_B matrices)"
        )
    downs = {k: s for k, s in shapes.items() if k.endswith(_DOWN_SUFFIXES)}
    if not downs:
        raise CheckpointProblem(
            "no LoRA matrices in this file",
            expected="lora_down/lora_up (kohya) or lora_A/lora_B (diffusers/peft) tensors",
            found=f"{len(shapes)} tensors, e.g. {', '.join(sorted(shapes)[:3]) or 'none'}",
        )
    kohya = any(k.startswith(tuple(_KOHYA_PREFIXES)) for k in downs)
    info = LoraInfo("kohya" if kohya else "diffusers", len(downs))
    for key, shape in downs.items():
        if len(shape) < 2:
            continue
        if kohya:
            component = next((c for p, c in _KOHYA_PREFIXES.items() if key.startswith(p)), None)
            flat = key
        else:
            head = key.split(".", 1)[0]
            component = head if head in ("unet", "text_encoder", "text_encoder_2") else "unet"
            flat = key.replace(".", "_")
        if component is None:
            continue
        info.components.add(component)
        if component == "unet" and "attn2_to_k" in flat and info.cross_attention is None:
            info.cross_attention = shape[1]
        elif component.startswith("text_encoder") and "q_proj" in flat:
            info.text_widths.setdefault(1 if component.endswith("_2") else 0, shape[1])
    return info


def checkpoint_widths(path: Path, architecture: str) -> ModelWidths:
    """A single-file checkpoint's widths, from its header."""
    return checkpoint_widths_from_shapes(safetensors_shapes(path), architecture)


def checkpoint_widths_from_shapes(shapes: Mapping[str, tuple[int, ...]], architecture: str) -> ModelWidths:
    """The widths of an original-layout checkpoint with these tensor shapes."""
    widths: list[int | None] = []
    for prefix in ARCHITECTURES[architecture].text_encoders:
        if prefix.endswith(".model."):
            token = shapes.get(prefix + "token_embedding.weight")
        else:
            token = shapes.get(prefix + "embeddings.token_embedding.weight")
        widths.append(token[1] if token else None)
    return ModelWidths(_cross_attention_width(shapes), tuple(widths))


def folder_widths(folder: Path) -> ModelWidths:
    """A diffusers folder's widths, from its configs."""

    def read(sub: str) -> dict:
        try:
            return json.loads((folder / sub / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    unet = read("unet")
    widths = [read(sub).get("hidden_size") for sub in ("text_encoder", "text_encoder_2") if (folder / sub).is_dir()]
    return ModelWidths(unet.get("cross_attention_dim"), tuple(widths))


def lora_mismatches(info: LoraInfo, model: ModelWidths) -> list[str]:
    """Why the LoRA cannot apply to the model (empty when it fits)."""
    problems = []
    if info.cross_attention is not None and model.cross_attention is not None:
        if info.cross_attention != model.cross_attention:
            problems.append(
                f"its UNet cross-attention takes {family_of(info.cross_attention)} inputs, "
                f"the model's takes {family_of(model.cross_attention)}"
            )
    for index, width in sorted(info.text_widths.items()):
        name = "text_encoder_2" if index else "text_encoder"
        if index >= len(model.text_encoders):
            problems.append(f"it targets {name}, which the model does not have")
        elif model.text_encoders[index] is not None and model.text_encoders[index] != width:
            problems.append(f"its {name} layers are {width} wide, the model's are {model.text_encoders[index]}")
    return problems


def count_loaded_layers(pipe, adapter: str) -> int:
    """LoRA layers of ``adapter`` that landed on the pipeline's modules."""
    total = 0
    for name in ("unet", "text_encoder", "text_encoder_2"):
        component = getattr(pipe, name, None)
        if component is None:
            continue
        for module in component.modules():
            lora_a = getattr(module, "lora_A", None)
            if lora_a is not None and hasattr(lora_a, "keys") and adapter in lora_a.keys():
                total += 1
    return total
