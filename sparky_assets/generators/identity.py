"""IP-Adapter: one identity across a sprite's frames from a reference image.

``ip_adapter = "models/ip-adapter"`` in ``[generator.diffusion]`` names a folder laid
out like the ``models/`` (SD 1.5) or ``sdxl_models/`` (SDXL) folder of the public
IP-Adapter repository: one adapter weight file (``ip_adapter_weights``, default the
only ``.safetensors`` file at the top) holding ``image_proj.*`` and ``ip_adapter.*``
tensors, and the CLIP vision encoder in ``image_encoder/`` (a
``CLIPVisionModelWithProjection`` saved with ``save_pretrained``). It is loaded with
diffusers' own ``load_ip_adapter`` (``local_files_only``), never downloaded.

The reference image of a sprite is its ``source`` sketch when it has one, otherwise
its **first generated frame** (frame 0 of its first animation; in sheet mode the first
strip's first frame): that *anchor* frame is rendered first with the adapter's scale
at 0, then every other frame of the sprite is rendered with the anchor's render as
the IP-Adapter image at ``ip_adapter_scale`` (:meth:`DiffusionGenerator._batched`
runs the two phases). The image embeddings are computed one image at a time, so
they do not depend on batching either.

Invariants: the folder resolves inside the project root (symlinks resolved,
:func:`~sparky_assets.pipeline.safepath.require_inside`); the weight file's header
is checked before loading (adapter tensors present, cross-attention width equal to
the model's); the weights' digest, the encoder folder's fingerprint and the scale
join the cache key (:func:`cache_part`) and every file is recorded in the reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Diagnostic, InvalidInput
from ..reads import ReadContext, ensure_reads

KEY = "generator.diffusion.ip_adapter"
ENCODER_FOLDER = "image_encoder"


@dataclass(frozen=True)
class AdapterFiles:
    folder: Path
    weights: Path
    encoder: Path


def _problem(message: str, *, key: str = KEY, **extra) -> InvalidInput:
    return InvalidInput(Diagnostic(message, key=key, stage="generate", **extra))


def resolve(settings, root: Path, reads: ReadContext | None = None) -> AdapterFiles:
    """The adapter's files, checked (headers only); :class:`InvalidInput` naming the key."""
    from ..pipeline import safepath
    from .checkpoints import CheckpointProblem, safetensors_shapes

    reads = ensure_reads(reads)
    reference = settings.ip_adapter
    try:
        folder = safepath.require_inside(Path(root), Path(root) / reference, what="IP-Adapter folder")
    except InvalidInput as exc:
        raise _problem(exc.diagnostics[0].message, found=reference) from None
    weights_name = settings.ip_adapter_weights
    if not folder.is_dir():
        reads.is_file(folder / (weights_name or "ip-adapter.safetensors"))  # recorded missing: a change
        raise _problem(
            f"IP-Adapter folder '{reference}' not found (looked in {folder}); builds never download",
            expected="a folder with the adapter .safetensors and image_encoder/",
            found="nothing",
            hint=f"on a connected machine run `huggingface-cli download h94/IP-Adapter --include 'models/*' "
            f"--local-dir ip` and copy ip/models to {reference}",
        )
    if weights_name is None:
        listed = reads.list_folder(folder, recursive=False)  # recorded: an adapter added later is a change
        found = sorted(p.name for p in listed if p.name.endswith(".safetensors") and p.is_file())
        if len(found) != 1:
            raise _problem(
                f"IP-Adapter folder '{reference}' holds {len(found)} .safetensors files: name the adapter",
                key="generator.diffusion.ip_adapter_weights",
                expected='ip_adapter_weights = "<file>.safetensors"',
                found=", ".join(found) or "none",
            )
        weights_name = found[0]
    weights = folder / weights_name
    if Path(weights_name).name != weights_name or not reads.is_file(weights):
        raise _problem(
            f"IP-Adapter weights '{weights_name}' not found in '{reference}'",
            key="generator.diffusion.ip_adapter_weights",
            expected="a .safetensors file name in the IP-Adapter folder",
            found=str(weights),
        )
    try:
        shapes = safetensors_shapes(weights)
    except CheckpointProblem as problem:
        raise _problem(
            f"IP-Adapter {weights.name}: {problem.message}", expected=problem.expected, found=problem.found
        ) from None
    if not any(k.startswith("image_proj.") for k in shapes) or not any(k.startswith("ip_adapter.") for k in shapes):
        raise _problem(
            f"{weights.name} is not an IP-Adapter (no image_proj.* and ip_adapter.* tensors)",
            expected="an IP-Adapter .safetensors (e.g. ip-adapter_sd15.safetensors)",
            found=f"{len(shapes)} tensors in {weights}",
        )
    encoder = folder / ENCODER_FOLDER
    if not reads.is_file(encoder / "config.json"):
        raise _problem(
            f"IP-Adapter folder '{reference}' has no {ENCODER_FOLDER}/config.json",
            expected="the CLIP vision encoder in image_encoder/ (CLIPVisionModelWithProjection)",
            found=str(encoder),
        )
    return AdapterFiles(folder, weights, encoder)


def cross_attention_width(files: AdapterFiles) -> int | None:
    """The UNet cross-attention width the adapter's key projections take."""
    from .checkpoints import safetensors_shapes

    shape = safetensors_shapes(files.weights).get("ip_adapter.1.to_k_ip.weight")
    return shape[1] if shape and len(shape) == 2 else None


def problems(settings, root: Path, model_width: int | None, reads: ReadContext | None = None) -> list[Diagnostic]:
    """Everything wrong with the adapter, before anything loads."""
    try:
        files = resolve(settings, root, reads)
    except InvalidInput as exc:
        return list(exc.diagnostics)
    width = cross_attention_width(files)
    if model_width is not None and width is not None and width != model_width:
        from .lora import family_of

        return [
            Diagnostic(
                f"IP-Adapter {files.weights.name} was made for a different base model than '{settings.model}'",
                key=KEY,
                expected=f"an IP-Adapter for {family_of(model_width)}",
                found=f"one for {family_of(width)} in {files.weights}",
                stage="generate",
            )
        ]
    return []


def identity(files: AdapterFiles, reads: ReadContext | None = None) -> dict[str, Any]:
    """Content identity (weights digest, encoder fingerprint); files recorded in ``reads``."""
    import json

    from .diffusion import _file_digest, model_fingerprint

    reads = ensure_reads(reads)
    digest = _file_digest(files.weights, files.weights.stat().st_size)
    reads.note(files.weights, json.dumps(digest, sort_keys=True))
    return {"weights": digest, "image_encoder": model_fingerprint(files.encoder, reads)}


def cache_part(settings, root: Path, reads: ReadContext | None = None) -> dict[str, Any] | None:
    if not settings.ip_adapter:
        return None
    return {**identity(resolve(settings, root, reads), reads), "scale": settings.ip_adapter_scale}


def load(pipe, files: AdapterFiles) -> None:
    """diffusers' ``load_ip_adapter`` on the local folder (weights + image encoder)."""
    try:
        pipe.load_ip_adapter(
            str(files.folder),
            subfolder="",
            weight_name=files.weights.name,
            image_encoder_folder=ENCODER_FOLDER,
            local_files_only=True,
        )
    except Exception as exc:  # noqa: BLE001 - diffusers/transformers raise many types for a foreign adapter
        raise _problem(
            f"IP-Adapter {files.weights.name} does not load: {type(exc).__name__}: {exc}", found=str(files.folder)
        ) from exc


def uses_guidance(pipe, guidance: float) -> bool:
    """Whether the pipeline runs classifier-free guidance (diffusers' own rule)."""
    return guidance > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None


def image_embeds(torch, pipe, reference: np.ndarray | None, guidance: float) -> list[Any]:
    """``ip_adapter_image_embeds`` for one pipeline call, whose frames all share
    ``reference`` (diffusers repeats one image's embeddings over the batch: frames
    with different references never share a call); a white image where there is
    none (its scale is 0). Negatives first under classifier-free guidance."""
    from diffusers.models.embeddings import ImageProjection
    from PIL import Image

    hidden = not isinstance(pipe.unet.encoder_hid_proj.image_projection_layers[0], ImageProjection)
    image = Image.fromarray(reference) if reference is not None else Image.new("RGB", (64, 64), "white")
    with torch.inference_mode():
        embeds, uncond = pipe.encode_image(image, pipe.unet.device, 1, hidden)
    if uses_guidance(pipe, guidance):
        return [torch.cat([uncond[None], embeds[None]])]
    return [embeds[None]]


# --------------------------------------------------------------------------- reference attention

REFERENCE_KEY = "sparky_reference"
NOISE_KEY = "sparky_reference_noise"


class ReferenceState:
    """What the reference-attention processors of one UNet share: the pass being run
    (``"write"``: the reference, ``"read"``: the frames, ``None``: plain), the weight,
    and the scheduler that noises the reference to each step."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.weight = 1.0
        self.scheduler: Any = None


class ReferenceAttnProcessor:
    """Self-attention that also attends to the reference's self-attention inputs
    ("reference-only" control): in the write pass it stores its input; in the read pass
    keys and values come from ``[own tokens, reference tokens]``, blended with plain
    self-attention by the weight. Outside either pass it is plain ``AttnProcessor2_0``."""

    def __init__(self, state: ReferenceState) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.state = state
        self.base = AttnProcessor2_0()
        self.bank: Any = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        import torch

        mode = self.state.mode
        if mode == "write":
            self.bank = hidden_states.detach().clone()
        if mode != "read" or self.bank is None or encoder_hidden_states is not None or hidden_states.ndim != 3:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        context = torch.cat([hidden_states, self.bank], dim=1)
        referenced = self.base(attn, hidden_states, context, attention_mask, temb)
        weight = self.state.weight
        if weight >= 1:
            return referenced
        return weight * referenced + (1 - weight) * self.base(attn, hidden_states, None, attention_mask, temb)


def install_reference_attention(unet) -> ReferenceState:
    """Reference-attention processors on every self-attention layer of ``unet`` (its
    cross-attention processors, e.g. an IP-Adapter's, are kept) and a forward that
    runs the reference pass before each denoising call that carries a reference in
    ``cross_attention_kwargs`` (:data:`REFERENCE_KEY`, :data:`NOISE_KEY`: per row,
    so batching slices them with the rows). Install before :func:`batch_invariant`."""
    state = ReferenceState()
    processors = {
        name: ReferenceAttnProcessor(state) if name.endswith("attn1.processor") else processor
        for name, processor in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)
    forward = unet.forward

    def with_reference(sample, timestep, encoder_hidden_states=None, *args, **kwargs):
        extra = dict(kwargs.get("cross_attention_kwargs") or {})
        reference, noise = extra.pop(REFERENCE_KEY, None), extra.pop(NOISE_KEY, None)
        if reference is None:
            return forward(sample, timestep, encoder_hidden_states, *args, **kwargs)
        kwargs["cross_attention_kwargs"] = extra or None
        import torch

        steps = (timestep if torch.is_tensor(timestep) else torch.tensor(timestep)).reshape(-1)
        steps = steps.expand(sample.shape[0]) if steps.numel() == 1 else steps
        scheduler = state.scheduler
        noisy = scheduler.scale_model_input(scheduler.add_noise(reference, noise, steps), timestep)
        plain = {k: v for k, v in kwargs.items() if "additional_residual" not in k}  # no ControlNet on the reference
        try:
            state.mode = "write"
            forward(noisy.to(sample.dtype), timestep, encoder_hidden_states, *args, **plain)
            state.mode = "read"
            return forward(sample, timestep, encoder_hidden_states, *args, **kwargs)
        finally:
            state.mode = None

    unet.forward = with_reference
    unet.sparky_reference = state
    return state


def reference_kwargs(torch, loaded, pipe, jobs, guidance: float, weight: float) -> dict[str, Any]:
    """``cross_attention_kwargs`` carrying one batch's reference latents (the VAE
    posterior mean of the shared reference image) and each frame's own reference
    noise (seeded from the frame's seed, so independent of batching), one row per
    UNet row (negatives first under classifier-free guidance)."""
    from .motion import encode_init

    state = pipe.unet.sparky_reference
    state.weight, state.scheduler = weight, pipe.scheduler
    latents = encode_init(torch, loaded, jobs[0].reference)
    noises = [
        torch.randn(latents.shape, generator=torch.Generator("cpu").manual_seed(job.seed ^ 0x5EED), dtype=torch.float32)
        for job in jobs
    ]
    noise = torch.cat(noises).to(device=latents.device, dtype=latents.dtype)
    rows = 2 if uses_guidance(pipe, guidance) else 1
    return {REFERENCE_KEY: latents.repeat(len(jobs) * rows, 1, 1, 1), NOISE_KEY: noise.repeat(rows, 1, 1, 1)}
