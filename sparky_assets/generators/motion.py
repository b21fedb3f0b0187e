"""Steered diffusion frames: the procedural rig, sheets, sketches and ControlNet.

The diffusion generator hands a group of requests here (``_run_group``) when frames
are *steered*: ``frames = "rig"`` or ``"sheet"``, or the sprite has a ``source``
sketch. Each frame then gets a steering image at the render size:

* a sketch (``source`` + ``generator = "diffusion"``): the drawing composited on
  white (img2img init) and its dark lines white on black (ControlNet input);
* otherwise, for a rig style (character, creature): the rig's conditioning renders
  (:mod:`~sparky_assets.generators.conditioning`): ``conditioning`` (pose by
  default) for a ControlNet, the flat-colour render as img2img init.

With ``controlnet`` set, frames are ControlNet text-to-image renders of the steering
image; without, img2img from it at the sprite's ``strength`` (the init is VAE-encoded
with the posterior *mean*, one image at a time, so it is deterministic and
independent of batching). ``frames = "sheet"`` lays all frames of an animation side
by side in one strip (steering strips laid out the same way), renders the strip in
one pass — the frames share one identity by construction — and slices it.

Invariants: rig and sheet frames of one sprite share one noise seed (they differ
only where their steering images differ); everything here is deterministic per
seed; :func:`cache_part` covers every input added here (ControlNet fingerprint,
scale, conditioning kind, rig style and palette, the sketch's bytes and grid).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Diagnostic, InvalidInput
from ..reads import ReadContext, ensure_reads
from .base import FrameSpec, GenerationRequest
from .conditioning import Rig, compose_sheet, has_rig, rig_request, sheet_layout, slice_sheet

if TYPE_CHECKING:
    from .diffusion import DiffusionSettings, LoadedPipeline

MOTION_MODES = ("rig", "sheet")
"""``frames`` modes handled here (``seed`` and ``img2img`` are the diffusion module's own)."""

CONTROLNET_PIPELINES = {
    "StableDiffusionPipeline": "StableDiffusionControlNetPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLControlNetPipeline",
}

DIRECTION_WORDS = {
    "n": "back view",
    "ne": "three-quarter back view, facing right",
    "e": "side view, facing right",
    "se": "three-quarter view, facing right",
    "s": "front view",
    "sw": "three-quarter view, facing left",
    "w": "side view, facing left",
    "nw": "three-quarter back view, facing left",
}

SHEET_PROMPT = "{prompt}, {animation} animation, sprite sheet of {count} frames side by side"
RIG_PROMPT = "{prompt}, {animation} animation"


# --------------------------------------------------------------------------- requests


def sketch_path(request: GenerationRequest) -> Path | None:
    source = request.options.get("source")
    return (Path(request.root) / source).resolve() if isinstance(source, str) else None


def is_steered(request: GenerationRequest, settings: DiffusionSettings) -> bool:
    return settings.frames in MOTION_MODES or sketch_path(request) is not None


def base_animation(spec: FrameSpec) -> str:
    """``walk`` for ``walk_ne`` (direction ``ne``); the name itself otherwise."""
    suffix = f"_{spec.direction}"
    if spec.direction and spec.animation.endswith(suffix):
        return spec.animation[: -len(suffix)]
    return spec.animation if spec.animation != spec.direction else ""


def steered_prompt(prompt: str, spec: FrameSpec, count: int | None = None) -> str:
    """Rig frames: the prompt, the animation name (no frame number: the pose is in
    the steering image) and the facing; sheets also say how many frames."""
    animation = base_animation(spec)
    if count is not None and animation:
        text = SHEET_PROMPT.format(prompt=prompt, animation=animation, count=count)
    elif animation:
        text = RIG_PROMPT.format(prompt=prompt, animation=animation)
    else:
        text = prompt
    if spec.direction:
        text += ", " + DIRECTION_WORDS[spec.direction]
    return text


def validate(
    request: GenerationRequest, settings: DiffusionSettings, reads: ReadContext | None = None
) -> list[Diagnostic]:
    reads = ensure_reads(reads)
    problems: list[Diagnostic] = []
    sketch = sketch_path(request)
    if sketch is not None:
        try:
            sketch.relative_to(Path(request.root).resolve())
            inside = True
        except ValueError:
            inside = False
        if not inside:
            problems.append(
                Diagnostic("source image is outside the project root", key="source", found=request.options["source"])
            )
        elif not reads.is_file(sketch):
            problems.append(
                Diagnostic(
                    f"source sketch not found: {request.options['source']}",
                    key="source",
                    expected="a PNG relative to the project root",
                    found=str(sketch),
                )
            )
        else:
            try:
                from PIL import Image

                with Image.open(io.BytesIO(reads.read_bytes(sketch))) as im:
                    im.verify()
            except Exception as exc:  # noqa: BLE001 - any decoder error is bad input
                problems.append(
                    Diagnostic(f"source sketch cannot be read: {exc}", key="source", found=request.options["source"])
                )
    elif settings.frames == "rig" and not has_rig(request):
        problems.append(
            Diagnostic(
                'frames = "rig" needs a rigged sprite: style = "character" or "creature" (or a source sketch)',
                key="style",
                expected='style = "character" | "creature"',
                found=repr(request.options.get("style")),
                hint='or use frames = "sheet" / "img2img" for sprites without a rig',
            )
        )
    for spec in request.frames:
        if spec.direction and spec.direction not in DIRECTION_WORDS:
            problems.append(
                Diagnostic(
                    f"unknown direction '{spec.direction}'",
                    key="directions",
                    expected=", ".join(DIRECTION_WORDS),
                    found=spec.direction,
                )
            )
            break
    return [_sprite_stage(d, request) for d in problems]


def _sprite_stage(d: Diagnostic, request: GenerationRequest) -> Diagnostic:
    from dataclasses import replace

    return replace(d, sprite=request.sprite, stage="generate")


def sprite_settings(settings: DiffusionSettings, request: GenerationRequest) -> DiffusionSettings:
    """``settings`` with the sprite's ``controlnet`` / ``conditioning`` over them (their
    problems are reported by the sprite's option check, which skips bad values here)."""
    from dataclasses import replace

    from .conditioning import CONDITIONING_KINDS

    changes: dict[str, Any] = {}
    controlnet = request.options.get("controlnet")
    if isinstance(controlnet, str) and controlnet.strip():
        changes["controlnet"] = controlnet.strip()
    if request.options.get("conditioning") in CONDITIONING_KINDS:
        changes["conditioning"] = request.options["conditioning"]
    return replace(settings, **changes) if changes else settings


def resolve_controlnet(reference: str, root: Path, reads: ReadContext | None = None) -> Path:
    """The ControlNet folder (``config.json`` of a ``ControlNetModel``) under the root;
    its ``config.json`` is recorded in ``reads``, found or not."""
    from .diffusion import _key

    folder = (Path(root) / reference).expanduser()
    config = folder / "config.json"
    if not ensure_reads(reads).is_file(config):
        raise InvalidInput(
            Diagnostic(
                f"ControlNet '{reference}' not found (looked in {folder}); builds never download",
                key=_key("controlnet"),
                expected="a ControlNetModel folder saved with save_pretrained (config.json + weights)",
                found="a folder without config.json" if folder.is_dir() else "nothing",
                hint=f"on a connected machine run `huggingface-cli download <org>/<controlnet> --local-dir {reference}`",
                stage="generate",
            )
        )
    return folder


def _uses_rig(request: GenerationRequest) -> bool:
    return sketch_path(request) is None and has_rig(request)


def cache_part(
    request: GenerationRequest, settings: DiffusionSettings, reads: ReadContext | None = None
) -> dict[str, Any] | None:
    """What steering adds to the cache key (``None`` for unsteered requests, so their
    keys are what they were before this module existed)."""
    if not is_steered(request, settings):
        return None
    from .diffusion import file_sha256, model_fingerprint

    part: dict[str, Any] = {"mode": settings.frames}
    if settings.controlnet:
        part["controlnet"] = model_fingerprint(resolve_controlnet(settings.controlnet, request.root, reads), reads)
        part["controlnet_scale"] = settings.controlnet_scale
        part["conditioning"] = settings.conditioning
    sketch = sketch_path(request)
    if sketch is not None:
        part["sketch"] = {"sha256": file_sha256(sketch, reads), "grid": list(request.options.get("grid") or [])}
    elif _uses_rig(request):
        from . import procedural

        part["rig"] = {
            "algorithm": procedural.ALGORITHM_VERSION,
            "style": request.options.get("style"),
            "palette": [f"{r:02x}{g:02x}{b:02x}" for r, g, b in request.palette],
        }
    part["directions"] = sorted({f.direction for f in request.frames if f.direction})
    return part


# --------------------------------------------------------------------------- steering images


def _sketch_cells(request: GenerationRequest) -> list[np.ndarray]:
    """The sketch as RGB on white: its grid cells in reading order, or the whole image."""
    from PIL import Image

    with Image.open(sketch_path(request)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    rgb = np.where(rgba[..., 3:] >= 128, rgba[..., :3], np.uint8(255)).astype(np.uint8)
    grid = request.options.get("grid")
    if not grid:
        return [rgb]
    cw, ch = int(grid[0]), int(grid[1])
    rows, columns = rgb.shape[0] // ch, rgb.shape[1] // cw
    cells = [rgb[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw] for r in range(rows) for c in range(columns)]
    return cells or [rgb]


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST))


def sketch_lines(rgb: np.ndarray) -> np.ndarray:
    """Dark strokes (luma < 128, integer Rec. 601 weights) white on black: the
    scribble/lineart convention of ControlNets."""
    luma = rgb[..., 0].astype(np.int32) * 299 + rgb[..., 1].astype(np.int32) * 587 + rgb[..., 2].astype(np.int32) * 114
    lines = np.where(luma < 128_000, np.uint8(255), np.uint8(0))
    return np.repeat(lines[..., None], 3, axis=2)


@dataclass
class Steering:
    """Per frame: the ControlNet input and the img2img init (RGB, render size)."""

    control: np.ndarray | None
    init: np.ndarray | None


def steering(request: GenerationRequest, settings: DiffusionSettings, width: int, height: int) -> list[Steering]:
    """One :class:`Steering` per requested frame."""
    if sketch_path(request) is not None:
        cells = _sketch_cells(request)
        out = []
        for i, _ in enumerate(request.frames):
            init = _resize(cells[i % len(cells)], width, height)
            out.append(Steering(sketch_lines(init), init))
        return out
    if has_rig(request):
        rig = Rig(rig_request(request))
        out = []
        for spec in request.frames:
            frame = rig.frame(spec)
            out.append(
                Steering(
                    rig.render(frame, settings.conditioning, width, height), rig.render(frame, "flat", width, height)
                )
            )
        return out
    return [Steering(None, None) for _ in request.frames]


# --------------------------------------------------------------------------- pipelines

_CONTROLNETS: dict[tuple, Any] = {}
_CONTROLNETS_LOCK = threading.Lock()


def controlnet_pipeline(loaded: LoadedPipeline, folder: Path, fingerprint: str) -> Any:
    """The base model's components + the ControlNet, cached per process."""
    import diffusers

    from .diffusion import from_pretrained_local
    from .model_files import fixed_rows_per_call, own_aligned_weights

    key = (id(loaded.text2img), str(folder.resolve()), fingerprint)
    with _CONTROLNETS_LOCK:
        if key in _CONTROLNETS:
            return _CONTROLNETS[key]
        controlnet = from_pretrained_local(diffusers.ControlNetModel, folder, loaded.text2img.unet.dtype, "controlnet")
        controlnet.to(loaded.device)
        own_aligned_weights(controlnet)
        fixed_rows_per_call(controlnet)
        cls = getattr(diffusers, CONTROLNET_PIPELINES[loaded.family])
        extra = {"requires_safety_checker": False} if loaded.family == "StableDiffusionPipeline" else {}
        pipe = cls(**loaded.text2img.components, controlnet=controlnet, **extra)
        pipe.set_progress_bar_config(disable=True)
        _CONTROLNETS[key] = pipe
        return pipe


def encode_init(torch, loaded: LoadedPipeline, image: np.ndarray):
    """VAE latents of one RGB image: the posterior mean (no sampling noise), scaled
    like the pipeline's own latents."""
    vae = loaded.text2img.vae
    pixels = torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    pixels = pixels.to(device=loaded.device, dtype=vae.dtype)
    with torch.inference_mode():
        latents = vae.encode(pixels).latent_dist.mode()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return ((latents - shift) * vae.config.scaling_factor).clone()


# --------------------------------------------------------------------------- generation


def run(
    generator,
    torch,
    loaded: LoadedPipeline,
    settings: DiffusionSettings,
    requests: Sequence[GenerationRequest],
    options: Sequence[Mapping[str, Any]],
    render_size: int,
    stats: dict[str, Any],
) -> list[list[np.ndarray]]:
    """Render every frame of the steered ``requests``; uint8 RGB per frame, in order."""
    from .diffusion import _FrameJob, frame_prompt, frame_seed, make_scheduler, render_dimensions

    jobs: list[_FrameJob] = []
    slots: list[list[tuple[int, int | None]]] = []  # per request, per frame: (job, index in sheet)
    sheets: dict[int, Any] = {}
    for r, (request, opts) in enumerate(zip(requests, options)):
        width, height = render_dimensions(request.width, request.height, render_size)
        steer = steering(request, settings, width, height)
        counts: dict[str, int] = {}
        for spec in request.frames:
            counts[spec.animation] = max(counts.get(spec.animation, 0), spec.index + 1)
        shared_seed = frame_seed(request.seed, "", -1)
        prompt = request.prompt or ""
        request_slots: list[tuple[int, int | None]] = []
        anchor: list[Any] = []  # IP-Adapter: the sprite's first job, whose render steers the rest
        sketch = steer[0].init if loaded.referenced and sketch_path(request) is not None else None

        def add(job_prompt: str, seed: int, w: int, s: Steering) -> int:
            job = _FrameJob(r, len(jobs), job_prompt, opts["negative_prompt"], seed, w, height, opts["strength"])
            job.control, job.init = s.control, s.init
            if sketch is not None:  # a sketch is every frame's reference
                job.reference = sketch
            elif anchor:
                job.anchor, job.anchor_width = anchor[0], width
            elif loaded.referenced:
                anchor.append(job)
            jobs.append(job)
            return len(jobs) - 1

        if settings.frames == "sheet":
            members: dict[str, list[int]] = {}
            for f, spec in enumerate(request.frames):
                members.setdefault(spec.animation, []).append(f)
            job_of: dict[str, int] = {}
            for animation, frames in members.items():
                layout = sheet_layout(len(frames), width, height)
                parts = [steer[f] for f in frames]
                strip = Steering(
                    compose_sheet(layout, [p.control for p in parts]) if parts[0].control is not None else None,
                    compose_sheet(layout, [p.init for p in parts]) if parts[0].init is not None else None,
                )
                spec = request.frames[frames[0]]
                job_of[animation] = add(steered_prompt(prompt, spec, len(frames)), shared_seed, layout.width, strip)
                sheets[job_of[animation]] = layout
            position = {f: i for frames in members.values() for i, f in enumerate(frames)}
            request_slots = [(job_of[spec.animation], position[f]) for f, spec in enumerate(request.frames)]
        else:
            for f, spec in enumerate(request.frames):
                if settings.frames == "rig":
                    job_prompt, seed = steered_prompt(prompt, spec), shared_seed
                else:  # a sketch in seed / img2img mode: the usual per-frame prompt and seed
                    job_prompt = frame_prompt(prompt, spec, counts[spec.animation])
                    seed = frame_seed(request.seed, spec.animation, spec.index)
                request_slots.append((add(job_prompt, seed, width, steer[f]), None))
        slots.append(request_slots)

    scheduler = make_scheduler(settings.scheduler, loaded.scheduler_config)
    started = time.perf_counter()
    images: list[np.ndarray | None] = [None] * len(jobs)
    controlled = [j for j in jobs if settings.controlnet and j.control is not None]
    initialised = [j for j in jobs if not (settings.controlnet and j.control is not None) and j.init is not None]
    plain = [j for j in jobs if j.control is None and j.init is None]
    if controlled:
        from .diffusion import model_fingerprint

        folder = resolve_controlnet(settings.controlnet, requests[0].root)
        pipe = controlnet_pipeline(loaded, folder, model_fingerprint(folder))
        out = generator._batched(
            torch,
            loaded,
            pipe,
            scheduler,
            settings,
            controlled,
            stats,
            img2img=False,
            control=settings.controlnet_scale,
        )
        for job, image in zip(controlled, out):
            images[job.frame] = image
    if initialised:
        for job in initialised:
            job.init = encode_init(torch, loaded, job.init)
        out = generator._batched(
            torch, loaded, loaded.image_to_image(), scheduler, settings, initialised, stats, img2img=True
        )
        for job, image in zip(initialised, out):
            images[job.frame] = image
    if plain:
        out = generator._batched(torch, loaded, loaded.text2img, scheduler, settings, plain, stats, img2img=False)
        for job, image in zip(plain, out):
            images[job.frame] = image

    stats["generate_s"] += time.perf_counter() - started
    sliced: dict[int, list[np.ndarray]] = {
        index: slice_sheet(layout, images[index]) for index, layout in sheets.items()
    }
    return [
        [images[job] if part is None else sliced[job][part] for job, part in request_slots] for request_slots in slots
    ]
