"""The diffusion generator: Stable Diffusion (1.5 / SDXL class) through diffusers,
followed by :func:`~sparky_assets.process.pixelize.pixelize` to turn the model's
high-resolution "fake pixel art" into frames at sprite resolution.

Settings come from the manifest's ``[generator.diffusion]`` table (see
:data:`SETTINGS_FIELDS` and docs/diffusion.md); per-sprite ``negative_prompt``,
``strength`` and ``pixelize`` come from the sprite. Models load only from a local
diffusers folder (relative to the project root) or from the local Hugging Face cache
(``local_files_only=True``): a build never downloads.

Invariants:

* torch, diffusers and friends are imported lazily, inside the methods that run the
  model; ``validate`` and ``cache_key`` work without them (they read files only), so
  a ``--frozen`` build on a machine without the extra still computes keys.
* Every frame's noise comes from its own ``torch.Generator`` seeded with a stable
  hash (SHA-256, never Python's ``hash()``) of the sprite seed, animation and frame
  index, so a frame does not depend on which batch it lands in; and every model call
  has the same shape (``micro_batch`` frames, :func:`model_files.batch_invariant`), so
  no kernel's numerics depend on the batch either: bytes are batch-independent.
* Loaded pipelines are cached per process (:data:`_PIPELINES`, keyed by model
  folder, fingerprint, dtype, device and LoRA set): a ``watch`` process loads once.
* ``cache_key`` covers everything that changes pixels: a content fingerprint of the
  model (configs by content, weights by safetensors header + size + sampled content
  chunks — see :func:`model_fingerprint`), LoRA file hashes and weights, every
  setting, the prompt, seed, size, frames and :data:`GENERATOR_VERSION`.
* Output frames are ``(height, width, 4) uint8`` RGBA, alpha exactly 0 or 255.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import BuildFailed, Diagnostic, InvalidInput
from ..manifest.fields import Field, check_fields
from ..process.pixelize import PIXELIZE_VERSION, Grid, PixelizeResult, cell_edges, parse_colour, pixelize_result
from ..reads import ReadContext, ensure_reads
from . import identity, motion
from .base import FrameSpec, GenerationRequest, Generator
from .conditioning import CONDITIONING_KINDS
from .model_files import (
    apply_loras,
    batch_invariant,
    load_model,
    model_identity,
    model_problems,
    pipeline_aligned_weights,
    quiet_loading,
    set_rows_per_call,
)
from .options import PIXELIZE_FIELDS
from .procedural import STYLES

GENERATOR_VERSION = 3
"""Bump when anything here changes the pixels made for an unchanged request."""

EXTRA_HINT = "the diffusion generator needs the [diffusion] extra: pip install 'sparky-assets[diffusion]'"

SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpm++-karras": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "lcm": "LCMScheduler",
    "pndm": "PNDMScheduler",
    "unipc": "UniPCMultistepScheduler",
}
"""Scheduler names accepted by ``scheduler`` → diffusers class (``default``: the model's own)."""

PIPELINE_FAMILIES: dict[str, tuple[str, str, int]] = {
    "StableDiffusionPipeline": ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", 512),
    "StableDiffusionXLPipeline": ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", 1024),
}
"""``model_index.json`` ``_class_name`` → (text-to-image class, image-to-image class, default render size)."""

DTYPES = ("auto", "fp16", "bf16", "fp32")
FRAME_MODES = ("seed", "img2img", "rig", "sheet")
FRAME_PROMPT = "{prompt}, {animation} animation, frame {number} of {count}"
"""Per-frame prompt variation (animations only; a still sprite uses its prompt)."""

DEFAULT_FRAMES_MODE = "img2img"
"""Measured on the tiny model (docs/diffusion.md): img2img frames from one base image
differ far less from each other than independently seeded frames."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LoraSpec:
    path: str
    weight: float = 1.0


@dataclass(frozen=True)
class PixelizeSettings:
    grid: tuple[int, int] | None = None  # cell size in render pixels; None: detect
    background: str | tuple[int, int, int] = "auto"
    tolerance: int = 40

    def as_key(self) -> dict[str, Any]:
        return {
            "grid": list(self.grid) if self.grid else "auto",
            "background": self.background if isinstance(self.background, str) else list(self.background),
            "tolerance": self.tolerance,
        }


@dataclass(frozen=True)
class DiffusionSettings:
    """The parsed ``[generator.diffusion]`` table."""

    model: str
    model_config: str | None = None
    allow_pickle: bool = False
    lora: tuple[LoraSpec, ...] = ()
    scheduler: str = "default"
    steps: int = 20
    guidance: float = 7.5
    negative_prompt: str = ""
    render_size: int | None = None
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 4
    micro_batch: int = 1
    frames: str = DEFAULT_FRAMES_MODE
    strength: float = 0.3
    pixelize: PixelizeSettings = field(default_factory=PixelizeSettings)
    controlnet: str | None = None
    controlnet_scale: float = 1.0
    conditioning: str = "pose"
    ip_adapter: str | None = None
    ip_adapter_weights: str | None = None
    ip_adapter_scale: float = 0.6
    reference_attention: float = 0.0

    def as_key(self) -> dict[str, Any]:
        """Settings that change pixels, JSON-ready (model and LoRA identities are
        fingerprinted separately; ``batch_size`` does not change pixels)."""
        return {
            "scheduler": self.scheduler,
            "steps": self.steps,
            "guidance": self.guidance,
            "negative_prompt": self.negative_prompt,
            "render_size": self.render_size,
            "dtype": self.dtype,
            "device": self.device,
            "micro_batch": self.micro_batch,
            "frames": self.frames,
            "strength": self.strength,
            "pixelize": self.pixelize.as_key(),
        }

    @classmethod
    def from_table(cls, values: Mapping[str, Any]) -> DiffusionSettings:
        """From a ``[generator.diffusion]`` table already checked against :data:`SETTINGS_FIELDS`."""
        lora = values.get("lora", ())
        items = [lora] if isinstance(lora, (str, Mapping)) else list(lora)
        loras = tuple(
            LoraSpec(item) if isinstance(item, str) else LoraSpec(item["path"], float(item.get("weight", 1.0)))
            for item in items
        )
        plain = {k: v for k, v in values.items() if k not in ("lora", "pixelize")}
        return cls(**plain, lora=loras, pixelize=_merge_pixelize(PixelizeSettings(), values.get("pixelize") or {}))


def _key(name: str) -> str:
    return f"generator.diffusion.{name}"


def _merge_pixelize(base: PixelizeSettings, table: Mapping[str, Any]) -> PixelizeSettings:
    """``base`` with the keys a checked ``pixelize`` table sets."""
    result = base
    if "grid" in table:
        grid = table["grid"]
        grid = (grid, grid) if isinstance(grid, int) else grid
        result = replace(result, grid=None if grid == "auto" else (int(grid[0]), int(grid[1])))
    if "background" in table:
        background = table["background"]
        if background not in ("auto", "none"):
            background = "#%02x%02x%02x" % parse_colour(background)
        result = replace(result, background=background)
    if "tolerance" in table:
        result = replace(result, tolerance=int(table["tolerance"]))
    return result


def _lora_problem(value: Any) -> str | None:
    items = [value] if isinstance(value, (str, Mapping)) else value
    expected = 'LoRA files: "a.safetensors" or { path = "…", weight = 0.8 }, or a list of them'
    if isinstance(items, str) or not isinstance(items, Sequence):
        return expected
    for item in items:
        if isinstance(item, str) and item:
            continue
        weight = item.get("weight", 1.0) if isinstance(item, Mapping) else None
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("path"), str)
            and set(item) <= {"path", "weight"}
            and isinstance(weight, (int, float))
            and not isinstance(weight, bool)
        ):
            return expected
    return None


def _device_problem(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
        return None
    return "auto, cpu, cuda, cuda:N or mps"


def _strength_problem(value: float) -> str | None:
    return None if value > 0 else "a number in (0, 1]"


SETTINGS_FIELDS: dict[str, Field] = {
    "model": Field(
        "str",
        "A diffusers folder or single-file checkpoint (`.safetensors`; `.ckpt` with `allow_pickle`) relative "
        "to the project root, or a hub id in `models/org/name` (`sparky-assets models fetch`) or the local HF cache.",
        required=True,
        example='"models/sd15-pixel"',
        check=lambda v: None if v.strip() else "a folder path or hub id",
    ),
    "model_config": Field(
        "path",
        "For a single-file checkpoint of non-standard size: a diffusers folder with its configs and tokenizers "
        "(no weights).",
        check=lambda v: None if v.strip() else "a folder path relative to the project root",
    ),
    "allow_pickle": Field("bool", "Load a `.ckpt`/`.pt` checkpoint (a pickle: it can run code).", False),
    "lora": Field(
        "any",
        'LoRA files: `["a.safetensors", { path = "b.safetensors", weight = 0.8 }]`.',
        check=_lora_problem,
        type_doc="list",
    ),
    "scheduler": Field(
        "str", "Scheduler by name (`default`: the model's own).", "default", choices=("default", *SCHEDULERS)
    ),
    "steps": Field("int", "Denoising steps.", 20, minimum=1, maximum=500),
    "guidance": Field("number", "Classifier-free guidance scale.", 7.5, minimum=0, maximum=50),
    "negative_prompt": Field("str", "Negative prompt for every sprite (a sprite's own replaces it).", ""),
    "render_size": Field(
        "int",
        "Generation resolution of the longer side (a multiple of 8); default 512 for SD 1.5, 1024 for SDXL, "
        "the model's native size otherwise.",
        minimum=8,
        maximum=4096,
        check=lambda v: None if v % 8 == 0 else "a multiple of 8",
    ),
    "dtype": Field("str", "`auto` is fp16 on CUDA, else fp32.", "auto", choices=DTYPES),
    "device": Field(
        "str",
        "`auto`, `cpu`, `cuda`, `cuda:N` or `mps` (auto: cuda, then mps, then cpu).",
        "auto",
        check=_device_problem,
    ),
    "batch_size": Field("int", "Images per pipeline call (does not change pixels).", 4, minimum=1, maximum=256),
    "micro_batch": Field(
        "int",
        "Frames per model call, always exactly this many (padded): pixels depend on it, never on `batch_size`. "
        "Raise it on a GPU for throughput.",
        1,
        minimum=1,
        maximum=64,
    ),
    "frames": Field(
        "str",
        "How animation frames are made (see docs/diffusion.md).",
        DEFAULT_FRAMES_MODE,
        choices=FRAME_MODES,
    ),
    "strength": Field(
        "number",
        "img2img strength: how far each frame may move from the base image, (0, 1].",
        0.3,
        minimum=0,
        maximum=1,
        check=_strength_problem,
    ),
    "pixelize": Field("table", "How renders are collapsed to sprite resolution.", fields=PIXELIZE_FIELDS),
    "controlnet": Field(
        "path",
        "ControlNet folder (a `ControlNetModel`, relative to the project root) steering rig, sheet and sketch frames.",
        check=lambda v: None if v.strip() else "a ControlNet folder relative to the project root",
    ),
    "controlnet_scale": Field("number", "ControlNet conditioning scale.", 1.0, minimum=0, maximum=2),
    "conditioning": Field("str", "Which rig render the ControlNet reads.", "pose", choices=tuple(CONDITIONING_KINDS)),
    "ip_adapter": Field(
        "path",
        "IP-Adapter folder (relative to the project root): the adapter `.safetensors` and `image_encoder/`. Every "
        "frame but the first is steered by the sprite's first frame (or its `source`): one identity.",
        check=lambda v: None if v.strip() else "an IP-Adapter folder relative to the project root",
    ),
    "ip_adapter_weights": Field(
        "str",
        "The adapter file in the `ip_adapter` folder (default: its only `.safetensors` file).",
        check=lambda v: None if v.strip() and "/" not in v and "\\" not in v else "a file name in the folder",
    ),
    "ip_adapter_scale": Field(
        "number", "IP-Adapter scale: how strongly the reference steers.", 0.6, minimum=0, maximum=2
    ),
    "reference_attention": Field(
        "number",
        "Reference attention weight, 0 (off) to 1: every frame but the first also attends to the first frame's "
        "self-attention (reference-only control, no extra weights; one more UNet pass per step).",
        0.0,
        minimum=0,
        maximum=1,
    ),
}
"""The ``[generator.diffusion]`` table (see docs/diffusion.md)."""

OPTION_FIELDS: dict[str, Field] = {
    "style": Field(
        "str", 'Rig of `frames = "rig"` / `"sheet"` sprites (`character`, `creature`: rigged).', choices=STYLES
    ),
    "source": Field("path", "A sketch (PNG) whose lines steer the frames through the ControlNet."),
    "grid": Field("pair", "Cell size `[w, h]` slicing `source` into one sketch per frame."),
    "negative_prompt": Field("str", "Negative prompt (replaces `[generator.diffusion].negative_prompt`)."),
    "strength": Field(
        "number", "img2img strength of frames after the first, (0, 1].", minimum=0, maximum=1, check=_strength_problem
    ),
    "pixelize": Field("table", "Pixelize keys for this sprite, over the generator's.", fields=PIXELIZE_FIELDS),
    # A folder, not a file input: "str", so the manifest does not watch it as one.
    "controlnet": Field(
        "str",
        "ControlNet folder for this sprite (replaces `[generator.diffusion].controlnet`): a sketch may want a "
        "lineart ControlNet while characters use a pose one.",
        check=lambda v: None if v.strip() else "a ControlNet folder relative to the project root",
    ),
    "conditioning": Field("str", "Which rig render this sprite's ControlNet reads.", choices=tuple(CONDITIONING_KINDS)),
}
"""The per-sprite keys of a ``generator = "diffusion"`` sprite."""


def parse_settings(settings: Mapping[str, Any]) -> tuple[DiffusionSettings | None, list[Diagnostic]]:
    """Check and parse a raw ``[generator.diffusion]`` table; every problem is returned."""
    values, problems = check_fields("generator.diffusion", dict(settings), SETTINGS_FIELDS, stage="generate")
    if problems:
        return None, problems
    return DiffusionSettings.from_table(values), []


# --------------------------------------------------------------------------- files


def _hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return os.environ.get("HF_HUB_CACHE") or os.path.join(
            os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub"
        )


def _looks_like_hub_id(reference: str) -> bool:
    parts = reference.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not reference.startswith((".", "/", "~"))
        and not any(reference.endswith(ext) for ext in (".safetensors", ".ckpt", ".bin"))
    )


def resolve_model(reference: str, root: Path, reads: ReadContext | None = None) -> Path:
    """The local folder of ``reference``: a diffusers folder under the project root,
    or a hub id's snapshot in the local HF cache. Never downloads.

    Raises :class:`InvalidInput` naming the reference, where it looked and how to
    fetch the model on a connected machine.
    """
    reads = ensure_reads(reads)
    candidate = (Path(root) / reference).expanduser()
    if candidate.is_file():
        return candidate  # a single-file checkpoint: checked by checkpoints.describe_checkpoint
    if candidate.is_dir():
        if not reads.is_file(candidate / "model_index.json"):
            raise InvalidInput(
                Diagnostic(
                    f"model folder '{reference}' is not a diffusers pipeline folder (no model_index.json)",
                    key=_key("model"),
                    expected="a folder saved with save_pretrained (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)",
                    found=f"{candidate}",
                    stage="generate",
                    hint='for a single-file checkpoint set model = "<folder>/<file>.safetensors"',
                )
            )
        return candidate
    reads.is_file(candidate)  # recorded missing: a model copied in later is a change
    looked = [str(candidate)]
    if _looks_like_hub_id(reference):
        fetched = Path(root) / "models" / reference  # where `sparky-assets models fetch` puts it
        if (fetched / "model_index.json").is_file():
            return fetched
        looked.append(str(fetched))
        cache = _hub_cache_dir()
        looked.append(f"the Hugging Face cache ({cache})")
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(reference, local_files_only=True))
            if (folder / "model_index.json").is_file():
                return folder
        except ImportError:
            looked[-1] += " — huggingface_hub is not installed"
        except Exception:  # noqa: BLE001 - LocalEntryNotFoundError & friends: not cached
            pass
        hint = (
            f"on a connected machine run `huggingface-cli download {reference} --local-dir {Path(reference).name}` "
            f'and set model = "{Path(reference).name}" (or copy the HF cache)'
        )
    else:
        hint = (
            "on a connected machine run `huggingface-cli download <org>/<model> --local-dir "
            f"{reference}` (e.g. a Stable Diffusion 1.5 pixel-art model) and copy the folder here"
        )
    raise InvalidInput(
        Diagnostic(
            f"model '{reference}' not found (looked in {' and '.join(looked)}); builds never download",
            key=_key("model"),
            expected="a local diffusers folder, a .safetensors checkpoint or a hub id in the local cache",
            found="nothing",
            hint=hint,
            stage="generate",
        )
    )


_SAMPLE_CHUNKS = 16
_CHUNK_BYTES = 64 * 1024
_SMALL_FILE = 4 * 1024 * 1024
_SKIPPED_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".gif", ".webp")
_fingerprint_memo: dict[tuple, str] = {}
_folder_memo: dict[tuple, tuple[str, dict[str, Any]]] = {}
_memo_lock = threading.Lock()


def _file_digest(path: Path, size: int) -> dict[str, Any]:
    """Content identity of one file: small files by full SHA-256; large ones by size,
    the safetensors header (tensor names, dtypes, shapes, offsets) and SHA-256 of 16
    evenly spaced 64 KiB chunks — a few MiB read instead of gigabytes, and still
    different for any two real fine-tunes (their values differ everywhere)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= _SMALL_FILE:
            digest.update(handle.read())
            return {"size": size, "sha256": digest.hexdigest()}
        if path.suffix == ".safetensors":
            header_len = int.from_bytes(handle.read(8), "little")
            digest.update(handle.read(min(header_len, 100 * 1024 * 1024)))
        for i in range(_SAMPLE_CHUNKS):
            handle.seek((size - _CHUNK_BYTES) * i // (_SAMPLE_CHUNKS - 1))
            digest.update(handle.read(_CHUNK_BYTES))
    return {"size": size, "sampled_sha256": digest.hexdigest()}


def model_fingerprint(folder: Path, reads: ReadContext | None = None) -> str:
    """A content fingerprint of a diffusers folder, the same on every machine.

    Every file except docs/images is included by relative path (sorted): configs,
    tokenizer files and small weights by full content hash, large weights by
    :func:`_file_digest`. Never mtimes. Memoised per process on (path, size,
    mtime_ns) of every file, so ``watch`` re-hashes only after a file changes. Each
    file is recorded in ``reads`` with its digest (a new or changed weight file is a
    change to watch).
    """
    reads = ensure_reads(reads)
    folder = Path(folder)
    base = folder.resolve()
    files = []
    for path in reads.list_folder(folder):  # its listings recorded: a weight file added later is a change too
        relative = path.relative_to(base).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts) or path.suffix.lower() in _SKIPPED_SUFFIXES:
            continue
        if path.is_file():
            stat = path.stat()
            files.append((relative, path, stat.st_size, stat.st_mtime_ns))
    memo_key = (str(base), tuple((r, s, m) for r, _, s, m in files))
    with _memo_lock:
        memo = _folder_memo.get(memo_key)
    if memo is None:
        entries = {relative: _file_digest(path, size) for relative, path, size, _ in files}
        memo = (hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest(), entries)
        with _memo_lock:
            _folder_memo[memo_key] = memo
    fingerprint, entries = memo
    for relative, path, _, _ in files:
        reads.note(path, json.dumps(entries[relative], sort_keys=True))
    return fingerprint


def file_sha256(path: Path, reads: ReadContext | None = None) -> str:
    """Full SHA-256 of a file (LoRAs are small), memoised on (path, size, mtime_ns);
    recorded in ``reads``."""
    stat = path.stat()
    memo_key = ("file", str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _memo_lock:
        found = _fingerprint_memo.get(memo_key)
    if found is None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        found = digest.hexdigest()
        with _memo_lock:
            _fingerprint_memo[memo_key] = found
    ensure_reads(reads).note(path, found)
    return found


def frame_seed(seed: int, animation: str, index: int) -> int:
    """Stable per-frame seed: SHA-256 of (seed, animation, index) → 63-bit int."""
    data = json.dumps([int(seed), animation, int(index)]).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") & ((1 << 63) - 1)


# --------------------------------------------------------------------------- pipelines


@dataclass
class LoadedPipeline:
    """A loaded text-to-image pipeline plus what generation needs to know about it."""

    text2img: Any
    family: str
    default_size: int
    native_size: int
    scheduler_config: Mapping[str, Any]
    device: str
    dtype_name: str
    load_s: float
    img2img: Any = None
    ip_adapter: bool = False
    reference_attention: bool = False

    @property
    def referenced(self) -> bool:
        """Whether frames take a reference image (IP-Adapter or reference attention)."""
        return self.ip_adapter or self.reference_attention

    def image_to_image(self) -> Any:
        if self.img2img is None:
            import diffusers

            cls = getattr(diffusers, PIPELINE_FAMILIES[self.family][1])
            extra = {"requires_safety_checker": False} if self.family == "StableDiffusionPipeline" else {}
            self.img2img = cls(**self.text2img.components, **extra)
            self.img2img.set_progress_bar_config(disable=True)
        return self.img2img


_PIPELINES: dict[tuple, LoadedPipeline] = {}
_PIPELINES_LOCK = threading.Lock()


def clear_pipeline_cache() -> None:
    """Forget every loaded pipeline (tests; freeing GPU memory)."""
    with _PIPELINES_LOCK:
        _PIPELINES.clear()


def _import_torch():
    try:
        import diffusers  # noqa: F401
        import torch
    except ImportError as exc:
        raise BuildFailed(Diagnostic(f"{EXTRA_HINT} ({exc})", stage="generate")) from exc
    return torch


def resolve_device(setting: str) -> str:
    torch = _import_torch()
    if setting != "auto":
        if setting.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInput(
                Diagnostic(
                    "device 'cuda' requested but CUDA is not available",
                    key=_key("device"),
                    expected="auto, cpu or an available device",
                    found=setting,
                    stage="generate",
                )
            )
        if setting == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InvalidInput(
                Diagnostic(
                    "device 'mps' requested but MPS is not available",
                    key=_key("device"),
                    expected="auto, cpu or an available device",
                    found=setting,
                    stage="generate",
                )
            )
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(setting: str, device: str) -> str:
    if setting == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    return setting


def _dtype_argument() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns); use the
    name this installed version prefers."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


def from_pretrained_local(cls, folder: Path, dtype, setting: str, **extra) -> Any:
    """``cls.from_pretrained(folder)`` in ``dtype``, never downloading; a broken folder
    is a :class:`BuildFailed` naming the setting that points at it."""
    try:
        return cls.from_pretrained(str(folder), **{_dtype_argument(): dtype}, local_files_only=True, **extra)
    except Exception as exc:  # noqa: BLE001 - diffusers raises many types for a broken folder
        what = "model" if setting == "model" else setting
        raise BuildFailed(
            Diagnostic(
                f"could not load {what} from {folder}: {type(exc).__name__}: {exc}", key=_key(setting), stage="generate"
            )
        ) from exc


def load_pipeline(
    folder: Path, fingerprint: str, settings: DiffusionSettings, root: Path
) -> tuple[LoadedPipeline, bool]:
    """Load (or reuse) the pipeline for ``folder`` with the settings' dtype, device
    and LoRAs. Cached per process; the flag says whether it was loaded just now."""
    torch = _import_torch()
    import diffusers

    device = resolve_device(settings.device)
    dtype_name = resolve_dtype(settings.dtype, device)
    loras = tuple((str((root / l.path).resolve()), file_sha256(root / l.path), l.weight) for l in settings.lora)
    adapter = identity.resolve(settings, root) if settings.ip_adapter else None
    adapter_key = (str(adapter.weights), json.dumps(identity.identity(adapter), sort_keys=True)) if adapter else None
    reference = settings.reference_attention > 0
    key = (str(folder.resolve()), fingerprint, dtype_name, device, loras, adapter_key, reference)
    with _PIPELINES_LOCK:
        cached = _PIPELINES.get(key)
        if cached is not None:
            return cached, False
        started = time.perf_counter()
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
        checkpoint_size = None
        if folder.is_file():  # a single-file checkpoint (model_files: detection, configs, conversion)
            with quiet_loading():
                pipe, checkpoint_size = load_model(settings, root, folder, dtype)
            index = {"_class_name": type(pipe).__name__}
        else:
            index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        class_name = index.get("_class_name", "")
        if class_name not in PIPELINE_FAMILIES:
            raise InvalidInput(
                Diagnostic(
                    f"unsupported pipeline class '{class_name}' in {folder / 'model_index.json'}",
                    key=_key("model"),
                    expected=" or ".join(PIPELINE_FAMILIES),
                    found=class_name,
                    stage="generate",
                )
            )
        cls = getattr(diffusers, PIPELINE_FAMILIES[class_name][0])
        extra = (
            {"safety_checker": None, "requires_safety_checker": False}
            if class_name == "StableDiffusionPipeline"
            else {}
        )
        if not folder.is_file():
            with quiet_loading():
                pipe = from_pretrained_local(cls, folder, dtype, "model", **extra)
        if loras:
            with quiet_loading():
                apply_loras(pipe, list(loras))
        if adapter is not None:
            with quiet_loading():
                identity.load(pipe, adapter)
        pipe.to(device)
        pipeline_aligned_weights(pipe)
        pipe.set_progress_bar_config(disable=True)
        if reference:
            identity.install_reference_attention(pipe.unet)
        batch_invariant(pipe)
        vae_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        sample = pipe.unet.config.sample_size
        native = (sample[0] if isinstance(sample, (list, tuple)) else sample) * vae_factor
        default = checkpoint_size or (PIPELINE_FAMILIES[class_name][2] if native >= 256 else native)
        loaded = LoadedPipeline(
            pipe,
            class_name,
            default,
            native,
            dict(pipe.scheduler.config),
            device,
            dtype_name,
            time.perf_counter() - started,
            ip_adapter=adapter is not None,
            reference_attention=reference,
        )
        _PIPELINES[key] = loaded
        return loaded, True


def make_scheduler(name: str, config: Mapping[str, Any]):
    import diffusers

    if name == "default":
        return getattr(diffusers, config["_class_name"]).from_config(config)
    cls = getattr(diffusers, SCHEDULERS[name])
    if name == "dpm++-karras":
        return cls.from_config(config, use_karras_sigmas=True)
    return cls.from_config(config)


# --------------------------------------------------------------------------- generation


@dataclass
class _FrameJob:
    request: int
    frame: int
    prompt: str
    negative: str
    seed: int
    width: int
    height: int
    strength: float
    init: Any = None  # img2img: the base image's latents, (1, 4, h, w) tensor
    control: Any = None  # ControlNet: the conditioning image, (h, w, 3) uint8
    reference: Any = None  # IP-Adapter: the reference image, (h, w, 3) uint8; None: scale 0
    anchor: Any = None  # IP-Adapter: the job whose render becomes ``reference`` (its first ``anchor_width`` columns)
    anchor_width: int = 0


def render_dimensions(width: int, height: int, render_size: int) -> tuple[int, int]:
    """Generation size: the longer side is ``render_size``, the other keeps the
    sprite's aspect ratio, both rounded to multiples of 8."""
    scale = render_size / max(width, height)
    return (max(8, int(round(width * scale / 8)) * 8), max(8, int(round(height * scale / 8)) * 8))


def frame_prompt(prompt: str, spec: FrameSpec, count: int) -> str:
    """The per-frame prompt; a facing (sprites with ``directions``) adds its view words."""
    animation = motion.base_animation(spec)
    text = (
        FRAME_PROMPT.format(prompt=prompt, animation=animation, number=spec.index + 1, count=count)
        if animation
        else prompt
    )
    return f"{text}, {motion.DIRECTION_WORDS[spec.direction]}" if spec.direction else text


def review_frame(raw: np.ndarray, result: PixelizeResult) -> dict[str, Any]:
    """One frame's review (:attr:`Generator.last_review`): the model's image as rendered
    (``png``: lossless PNG bytes, encoded at once so a big batch does not hold raw
    arrays) and the grid pixelize laid over it — :meth:`PixelizeResult.as_dict` (cells,
    period, phase, drift, confidence, source) plus the grid lines' pixel positions along
    each axis (``x_edges``/``y_edges`` from :func:`cell_edges`, the image's borders
    included, so a drifting grid is drawn as it was used)."""
    from ..export.png import encode_png

    height, width = raw.shape[:2]
    rgba = raw if raw.shape[2] == 4 else np.concatenate([raw, np.full((height, width, 1), 255, np.uint8)], axis=2)
    g = result.grid
    grid = {
        **result.as_dict(),
        "x_edges": [round(float(v), 3) for v in cell_edges(width, g.period_x, g.phase_x, g.drift_x)[0]],
        "y_edges": [round(float(v), 3) for v in cell_edges(height, g.period_y, g.phase_y, g.drift_y)[0]],
    }
    return {"png": encode_png(rgba, fast=True, clear_hidden=False), "width": width, "height": height, "grid": grid}


class DiffusionGenerator(Generator):
    """Stable Diffusion → pixelize. See the module docstring and docs/diffusion.md."""

    name: ClassVar[str] = "diffusion"
    doc: ClassVar[str] = "Stable Diffusion (1.5 / SDXL class) through diffusers, then pixelize; local models only."
    needs_lock: ClassVar[bool] = True
    runs_on: ClassVar[str] = "device"
    uses_palette: ClassVar[bool] = True
    """The palette colours the rig's flat render (rig/sheet modes); it joins the
    cache key only there (:func:`motion.cache_part`), so a palette edit regenerates
    only rig-steered sprites."""
    settings_fields: ClassVar[dict[str, Field]] = SETTINGS_FIELDS
    option_fields: ClassVar[dict[str, Field]] = OPTION_FIELDS

    # -- contract ----------------------------------------------------------------

    def parse_settings(self, table: Mapping[str, Any]) -> DiffusionSettings:
        settings, problems = parse_settings(table)
        if settings is None:
            raise InvalidInput(problems)
        return settings

    def _settings(self, request: GenerationRequest) -> tuple[DiffusionSettings | None, list[Diagnostic]]:
        """The parsed settings (as the build passes them, or parsed from a raw table)
        with the sprite's own ``controlnet`` / ``conditioning`` over them."""
        if isinstance(request.settings, DiffusionSettings):
            settings, problems = request.settings, []
        else:
            settings, problems = parse_settings(request.settings)
        return (motion.sprite_settings(settings, request) if settings is not None else None), problems

    def validate(self, request: GenerationRequest, reads: ReadContext | None = None) -> list[Diagnostic]:
        reads = ensure_reads(reads)
        settings, problems = self._settings(request)
        problems = problems + self._sprite_options(request, settings)[1]
        if not request.prompt:
            problems.append(
                Diagnostic(
                    "a diffusion sprite needs a prompt",
                    key="prompt",
                    expected='prompt = "…"',
                    found="none",
                    sprite=request.sprite,
                    stage="generate",
                )
            )
        if settings is None:
            return problems
        problems.extend(model_problems(settings, request.root, reads))
        if settings.controlnet:
            try:
                motion.resolve_controlnet(settings.controlnet, request.root, reads)
            except InvalidInput as exc:
                problems.extend(exc.diagnostics)
        if motion.is_steered(request, settings):
            problems.extend(motion.validate(request, settings, reads))
        if settings.ip_adapter:
            problems.extend(identity.problems(settings, request.root, self._model_width(settings, request.root), reads))
        for i, lora in enumerate(settings.lora):
            if not reads.is_file(request.root / lora.path):
                problems.append(
                    Diagnostic(
                        f"LoRA file '{lora.path}' not found",
                        key=f"{_key('lora')}[{i}]",
                        expected="a .safetensors file relative to the project root",
                        found=str(request.root / lora.path),
                        stage="generate",
                    )
                )
        return problems

    def cache_key(self, request: GenerationRequest, reads: ReadContext | None = None) -> Mapping[str, Any]:
        reads = ensure_reads(reads)
        settings, problems = self._settings(request)
        options, sprite_problems = self._sprite_options(request, settings)
        if settings is None or sprite_problems:
            raise InvalidInput(problems + sprite_problems)
        folder = resolve_model(settings.model, request.root, reads)
        key = {
            "generator": self.name,
            "version": GENERATOR_VERSION,
            "pixelize_version": PIXELIZE_VERSION,
            "model": {"fingerprint": model_identity(settings, request.root, folder, reads)},
            "lora": [{"sha256": file_sha256(request.root / l.path, reads), "weight": l.weight} for l in settings.lora],
            "settings": settings.as_key(),
            "sprite": {**options, "pixelize": options["pixelize"].as_key()},
            "prompt": request.prompt,
            "seed": request.seed,
            "size": [request.width, request.height],
            "frames": [[f.animation, f.index] for f in request.frames],
        }
        steered = motion.cache_part(request, settings, reads)
        if steered is not None:  # absent for unsteered sprites: their keys predate steering
            key["motion"] = steered
        adapter = identity.cache_part(settings, request.root, reads)
        if adapter is not None:  # absent without an IP-Adapter: keys stay what they were
            key["ip_adapter"] = adapter
        if settings.reference_attention:
            key["reference_attention"] = settings.reference_attention
        return key

    def generate(
        self, requests: Sequence[GenerationRequest], reads: ReadContext | None = None
    ) -> list[list[np.ndarray]]:
        torch = _import_torch()
        started = time.perf_counter()
        stats = {"load_s": 0.0, "generate_s": 0.0, "pixelize_s": 0.0, "images": 0, "batches": 0}
        grids: list[str] = []
        self.last_review = {}
        results: list[list[np.ndarray] | None] = [None] * len(requests)
        # Requests with identical pipeline settings share batches.
        groups: dict[str, list[int]] = {}
        parsed: list[tuple[DiffusionSettings, dict[str, Any]]] = []
        for i, request in enumerate(requests):
            settings, problems = self._settings(request)
            options, sprite_problems = self._sprite_options(request, settings)
            if settings is None or sprite_problems:
                raise InvalidInput([replace(d, sprite=request.sprite) for d in problems + sprite_problems])
            parsed.append((settings, options))
            group = json.dumps(
                [
                    settings.model,
                    str(request.root),
                    [(l.path, l.weight) for l in settings.lora],
                    settings.as_key(),
                    settings.batch_size,
                    [settings.controlnet, settings.conditioning, settings.controlnet_scale],
                    [settings.ip_adapter, settings.ip_adapter_weights, settings.ip_adapter_scale],
                    settings.reference_attention,
                ],
                sort_keys=True,
                default=str,
            )
            groups.setdefault(group, []).append(i)
        for indices in groups.values():
            settings = parsed[indices[0]][0]
            root = requests[indices[0]].root
            folder = resolve_model(settings.model, root)
            loaded, fresh = load_pipeline(folder, model_identity(settings, root, folder), settings, root)
            if fresh:
                stats["load_s"] += loaded.load_s
            stats["loaded"] = stats.get("loaded", 0) + int(fresh)
            render_size = settings.render_size or loaded.default_size
            images = self._run_group(
                torch,
                loaded,
                settings,
                [requests[i] for i in indices],
                [parsed[i][1] for i in indices],
                render_size,
                stats,
            )
            pixelize_started = time.perf_counter()
            for local, i in enumerate(indices):
                request, options = requests[i], parsed[i][1]
                pix = options["pixelize"]
                grid = Grid(pix.grid[0], pix.grid[1], 0, 0, 1.0) if pix.grid else None
                done = [
                    pixelize_result(
                        image,
                        grid=grid,
                        target_size=(request.width, request.height),
                        background=pix.background,
                        tolerance=pix.tolerance,
                    )
                    for image in images[local]
                ]
                results[i] = [d.image for d in done]
                self.last_review[request.sprite] = [review_frame(raw, d) for raw, d in zip(images[local], done)]
                # The build report shows the grid each sprite used (its least sure frame).
                weakest = min(done, key=lambda d: d.grid.confidence)
                grids.append(f"{request.sprite} {weakest.summary()}")
            stats["pixelize_s"] += time.perf_counter() - pixelize_started
            stats["device"], stats["dtype"] = loaded.device, loaded.dtype_name
        stats["total_s"] = time.perf_counter() - started
        if grids:
            stats["grid"] = "; ".join(grids)
        self.last_stats = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in stats.items()}
        return [r if r is not None else [] for r in results]

    # -- internals ---------------------------------------------------------------

    @staticmethod
    def _model_width(settings: DiffusionSettings, root: Path) -> int | None:
        """The model's UNet cross-attention width (None when unknown or unreadable)."""
        from .model_files import model_widths

        try:
            widths = model_widths(settings, root, resolve_model(settings.model, root))
        except InvalidInput:
            return None
        return widths.cross_attention if widths else None

    def _sprite_options(
        self, request: GenerationRequest, settings: DiffusionSettings | None
    ) -> tuple[dict[str, Any], list[Diagnostic]]:
        """Per-sprite options merged over the settings: negative prompt, strength,
        pixelize. Returned in a JSON-ready form for the cache key."""
        values, problems = check_fields(
            "",
            {k: v for k, v in request.options.items() if k in OPTION_FIELDS},  # not the core ``directions``
            OPTION_FIELDS,
            stage="generate",
            sprite=request.sprite,
            fill_defaults=False,
        )
        base = settings or DiffusionSettings(model="")
        return {
            "negative_prompt": values.get("negative_prompt", base.negative_prompt),
            "strength": float(values.get("strength", base.strength)),
            "pixelize": _merge_pixelize(base.pixelize, values.get("pixelize") or {}),
        }, problems

    def _run_group(
        self,
        torch,
        loaded: LoadedPipeline,
        settings: DiffusionSettings,
        requests: Sequence[GenerationRequest],
        options: Sequence[dict[str, Any]],
        render_size: int,
        stats: dict[str, Any],
    ) -> list[list[np.ndarray]]:
        """Render every frame of ``requests`` (same settings) in batches; returns
        uint8 RGB images per request, frames in order. Steered requests (rig, sheet,
        sketch) are rendered by :func:`motion.run`."""
        steered = [i for i, request in enumerate(requests) if motion.is_steered(request, settings)]
        if steered:
            ours = [i for i in range(len(requests)) if i not in steered]
            results: list[list[np.ndarray]] = [[] for _ in requests]
            done = motion.run(
                self,
                torch,
                loaded,
                settings,
                [requests[i] for i in steered],
                [options[i] for i in steered],
                render_size,
                stats,
            )
            rest = (
                self._run_group(
                    torch, loaded, settings, [requests[i] for i in ours], [options[i] for i in ours], render_size, stats
                )
                if ours
                else []
            )
            for i, images in zip(steered + ours, done + rest):
                results[i] = images
            return results
        jobs: list[_FrameJob] = []
        for r, (request, opts) in enumerate(zip(requests, options)):
            width, height = render_dimensions(request.width, request.height, render_size)
            counts: dict[str, int] = {}
            for spec in request.frames:  # frames per animation: highest index + 1
                counts[spec.animation] = max(counts.get(spec.animation, 0), spec.index + 1)
            first = len(jobs)
            for f, spec in enumerate(request.frames):
                jobs.append(
                    _FrameJob(
                        r,
                        f,
                        frame_prompt(request.prompt or "", spec, counts[spec.animation]),
                        opts["negative_prompt"],
                        frame_seed(request.seed, spec.animation, spec.index),
                        width,
                        height,
                        opts["strength"],
                    )
                )
                if f and loaded.referenced:  # steered by the sprite's first frame
                    jobs[-1].anchor, jobs[-1].anchor_width = jobs[first], width
        scheduler = make_scheduler(settings.scheduler, loaded.scheduler_config)
        generate_started = time.perf_counter()
        if settings.frames == "img2img":
            # One base image per sprite (its own seed, the plain prompt), then every
            # frame is an img2img variation of it. The base stays in latent space:
            # no VAE decode/encode round trip (lossy, and the encoder samples its
            # posterior, which adds per-frame noise).
            bases = [
                _FrameJob(
                    r,
                    -1,
                    request.prompt or "",
                    options[r]["negative_prompt"],
                    frame_seed(request.seed, "", -1),
                    *render_dimensions(request.width, request.height, render_size),
                    options[r]["strength"],
                )
                for r, request in enumerate(requests)
            ]
            base_latents = self._batched(
                torch, loaded, loaded.text2img, scheduler, settings, bases, stats, img2img=False, latents=True
            )
            for job in jobs:
                job.init = base_latents[job.request]
            images = self._batched(
                torch, loaded, loaded.image_to_image(), scheduler, settings, jobs, stats, img2img=True
            )
        else:
            images = self._batched(torch, loaded, loaded.text2img, scheduler, settings, jobs, stats, img2img=False)
        stats["generate_s"] += time.perf_counter() - generate_started
        per_request: list[list[np.ndarray]] = [[] for _ in requests]
        for job, image in zip(jobs, images):
            per_request[job.request].append(image)
        return per_request

    def _batched(
        self,
        torch,
        loaded: LoadedPipeline,
        pipe,
        scheduler,
        settings: DiffusionSettings,
        jobs: Sequence[_FrameJob],
        stats: dict[str, Any],
        *,
        img2img: bool,
        latents: bool = False,
        control: float | None = None,
    ) -> list[Any]:
        """Run ``jobs`` in batches of ``batch_size``; jobs of different render size or
        strength never share a batch. Returns uint8 RGB images in job order (or, with
        ``latents``, each image's ``(1, 4, h, w)`` latent tensor). ``control``: a
        ControlNet pipeline's conditioning scale; each job's ``control`` image steers it.

        With an IP-Adapter, jobs with an ``anchor`` run after every other job, with the
        anchor's render (its first ``anchor_width`` columns) as their reference."""
        waiting = [i for i, job in enumerate(jobs) if job.anchor is not None]
        if waiting:
            ready = [i for i, job in enumerate(jobs) if job.anchor is None]
            args = (torch, loaded, pipe, scheduler, settings)
            first = self._batched(*args, [jobs[i] for i in ready], stats, img2img=img2img, control=control)
            rendered = {id(jobs[i]): image for i, image in zip(ready, first)}
            references: dict[tuple[int, int], np.ndarray] = {}  # one array per anchor: frames share batches
            for i in waiting:
                job = jobs[i]
                crop = (id(job.anchor), job.anchor_width)
                if crop not in references:
                    references[crop] = np.ascontiguousarray(rendered[crop[0]][:, : job.anchor_width])
                job.reference, job.anchor = references[crop], None
            second = self._batched(*args, [jobs[i] for i in waiting], stats, img2img=img2img, control=control)
            out_all: list[Any] = [None] * len(jobs)
            for i, image in zip(ready + waiting, first + second):
                out_all[i] = image
            return out_all
        pipe.scheduler = scheduler
        out: list[np.ndarray | None] = [None] * len(jobs)
        buckets: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            # diffusers gives every image of a call the same IP-Adapter embeddings: one reference per batch.
            reference = id(job.reference) if loaded.referenced and job.reference is not None else None
            buckets.setdefault((job.width, job.height, job.strength if img2img else None, reference), []).append(i)
        generator_device = "cpu" if loaded.device == "mps" else loaded.device
        for (width, height, strength, reference), members in buckets.items():
            for start in range(0, len(members), settings.batch_size):
                batch = [jobs[i] for i in members[start : start + settings.batch_size]]
                kwargs: dict[str, Any] = dict(
                    prompt=[j.prompt for j in batch],
                    negative_prompt=[j.negative for j in batch] if any(j.negative for j in batch) else None,
                    num_inference_steps=settings.steps,
                    guidance_scale=settings.guidance,
                    generator=[torch.Generator(generator_device).manual_seed(j.seed) for j in batch],
                    output_type="latent" if latents else "np",
                )
                if img2img:
                    kwargs["image"] = torch.cat([j.init for j in batch])
                    kwargs["strength"] = strength
                    # diffusers denoises int(steps * strength) steps; at least one.
                    kwargs["num_inference_steps"] = max(settings.steps, math.ceil(1 / strength - 1e-9))
                else:
                    kwargs["height"], kwargs["width"] = height, width
                if control is not None:
                    from PIL import Image

                    kwargs["image"] = [Image.fromarray(j.control) for j in batch]
                    kwargs["controlnet_conditioning_scale"] = control
                if loaded.ip_adapter:  # every call passes embeddings; scale 0 where no reference
                    pipe.set_ip_adapter_scale(settings.ip_adapter_scale if reference is not None else 0.0)
                    kwargs["ip_adapter_image_embeds"] = identity.image_embeds(
                        torch, pipe, batch[0].reference, settings.guidance
                    )
                if loaded.reference_attention and reference is not None:
                    kwargs["cross_attention_kwargs"] = identity.reference_kwargs(
                        torch, loaded, pipe, batch, settings.guidance, settings.reference_attention
                    )
                set_rows_per_call(pipe, settings.micro_batch, identity.uses_guidance(pipe, settings.guidance))
                with torch.inference_mode():
                    result = pipe(**kwargs).images
                for i, image in zip(members[start : start + settings.batch_size], result):
                    if latents:
                        out[i] = image[None].clone()
                    else:
                        out[i] = (np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)
                stats["images"] += len(batch)
                stats["batches"] += 1
        return [image for image in out if image is not None]
