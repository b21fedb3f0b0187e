"""Single-file Stable Diffusion checkpoints: detection, fingerprints and offline loading.

Most models people download are one ``.safetensors`` file in the original (ldm/sgm)
layout — ``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.*`` or
``conditioner.embedders.*`` — not a diffusers folder. This module turns such a file into
a diffusers pipeline without the network:

* :func:`read_safetensors_header` reads only the JSON header (tensor names, dtypes,
  shapes, offsets) and checks the file is as long as the header says: a truncated
  download is caught before anything loads.
* :func:`detect_architecture` names the architecture from tensor names and shapes:
  ``sd15`` (SD 1.x, CLIP ViT-L), ``sd2`` (SD 2.x, OpenCLIP ViT-H), ``sdxl`` (SDXL base,
  CLIP ViT-L + OpenCLIP ViT-bigG). Inpainting, refiner and other checkpoints are refused
  by name.
* The diffusers configs for each architecture ship inside the package
  (``model_configs/<arch>/``, written from the published architecture values; their
  parameter counts are checked in the tests), and so does the CLIP BPE vocabulary
  (``bpe_simple_vocab_16e6.txt.gz``, as open_clip ships it) from which every SD
  tokenizer is built. A ``model_config`` folder (a diffusers folder without weights)
  replaces the shipped configs for checkpoints of other sizes.
* :func:`load_checkpoint_pipeline` converts the weights with diffusers' own conversion
  functions (``from_single_file`` per component with a local ``config``,
  ``create_diffusers_clip_model_from_ldm``) — never a hub lookup.

Invariants: nothing here imports torch or diffusers outside the loading functions;
``.ckpt``/``.pt`` files (pickles, which can run code when loaded) are only ever opened
with an explicit ``allow_pickle = true``; a checkpoint's fingerprint covers the file
(size, header, sampled chunks) and every config and tokenizer file it loads with.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import struct
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_ROOT = Path(__file__).with_name("model_configs")
BPE_VOCAB = CONFIG_ROOT / "bpe_simple_vocab_16e6.txt.gz"

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES

_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class Architecture:
    name: str
    label: str
    pipeline: str
    render_size: int
    text_encoders: tuple[str, ...]  # original-layout prefixes, in diffusers component order


ARCHITECTURES: dict[str, Architecture] = {
    "sd15": Architecture(
        "sd15", "SD 1.5", "StableDiffusionPipeline", 512, ("cond_stage_model.transformer.text_model.",)
    ),
    "sd2": Architecture(
        "sd2", "SD 2.x (768 v-prediction)", "StableDiffusionPipeline", 768, ("cond_stage_model.model.",)
    ),
    "sdxl": Architecture(
        "sdxl",
        "SDXL base",
        "StableDiffusionXLPipeline",
        1024,
        ("conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.1.model."),
    ),
}

UNET = "model.diffusion_model."
VAE = "first_stage_model."


class CheckpointProblem(Exception):
    """Why a checkpoint (or LoRA) file cannot be used; becomes a diagnostic naming the file."""

    def __init__(self, message: str, *, expected: str | None = None, found: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.expected, self.found, self.hint = message, expected, found, hint


# --------------------------------------------------------------------------- headers


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor name: (dtype, shape)}`` from a safetensors file's header, reading only
    the header. Raises :class:`CheckpointProblem` for a file that is not safetensors, or
    whose length differs from what the header describes (a truncated download)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointProblem(
                "not a safetensors file (shorter than its 8-byte header length)", found=f"{size} bytes"
            )
        (length,) = struct.unpack("<Q", prefix)
        if length > min(_MAX_HEADER, size - 8):
            raise CheckpointProblem(
                "not a safetensors file, or truncated inside its header",
                expected=f"a header of {length} bytes" if length <= _MAX_HEADER else "a JSON header length",
                found=f"a file of {size} bytes",
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointProblem("not a safetensors file (its header is not JSON)", found=str(exc)) from None
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (_, stop) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointProblem(
                f"malformed safetensors header entry for '{name}'", found=repr(entry)[:120]
            ) from None
        tensors[name] = (dtype, shape)
        end = max(end, int(stop))
    expected = 8 + length + end
    if size < expected:
        raise CheckpointProblem(
            "the file is truncated (an interrupted download?)",
            expected=f"{expected} bytes as its header describes",
            found=f"{size} bytes",
            hint="download it again",
        )
    if size > expected:
        raise CheckpointProblem(
            "the file is longer than its header describes (corrupt)",
            expected=f"{expected} bytes",
            found=f"{size} bytes",
        )
    return tensors


@functools.lru_cache(maxsize=64)
def _cached_header(path: str, size: int, mtime_ns: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    return read_safetensors_header(Path(path))


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from the header, memoised per (path, size, mtime)."""
    stat = path.stat()
    return {k: v[1] for k, v in _cached_header(str(path.resolve()), stat.st_size, stat.st_mtime_ns).items()}


# --------------------------------------------------------------------------- detection


def detect_architecture(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """The architecture name (``sd15``, ``sd2``, ``sdxl``) of an original-layout
    checkpoint, from its tensor names and shapes; sizes are checked separately
    (:func:`config_mismatches`), so scaled-down test checkpoints are detected too."""
    keys = shapes.keys()

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if not has(UNET):
        if any(k.startswith(("lora_", "unet.", "text_encoder.")) or ".lora" in k for k in keys):
            raise CheckpointProblem(
                "this is a LoRA, not a base model", expected="a full checkpoint", hint="list it under lora = [...]"
            )
        if has("down_blocks.") or has("conv_in."):
            raise CheckpointProblem(
                "this looks like a lone diffusers UNet, not a full checkpoint",
                expected="a full checkpoint (UNet, VAE and text encoders) or a diffusers folder",
            )
        raise CheckpointProblem(
            "no Stable Diffusion UNet in this file",
            expected="tensors named model.diffusion_model.* (SD 1.5, SD 2.x, SDXL single-file checkpoints)",
            found=f"{len(shapes)} tensors, e.g. {', '.join(sorted(keys)[:3]) or 'none'}",
        )
    conv_in = shapes.get(UNET + "input_blocks.0.0.weight")
    if conv_in is not None and len(conv_in) == 4 and conv_in[1] != 4:
        raise CheckpointProblem(
            f"an inpainting or instruct-pix2pix checkpoint (its UNet takes {conv_in[1]} input channels)",
            expected="a text-to-image base checkpoint (4 input channels)",
        )
    if has("conditioner.embedders.1.model.") and has("conditioner.embedders.0.transformer."):
        return "sdxl"
    if has("conditioner.embedders.0.model."):
        raise CheckpointProblem(
            "an SDXL refiner checkpoint", expected="an SDXL base checkpoint (the refiner is unsupported)"
        )
    if has("cond_stage_model.model."):
        return "sd2"
    if has("cond_stage_model.transformer."):
        return "sd15"
    raise CheckpointProblem(
        "a UNet without a text encoder this tool knows",
        expected="cond_stage_model.* (SD 1.x/2.x) or conditioner.embedders.* (SDXL) tensors",
    )


def architecture_label(name: str | None) -> str:
    return ARCHITECTURES[name].label if name in ARCHITECTURES else (name or "unknown")


def _count_indices(shapes: Mapping[str, Any], prefix: str) -> int:
    found = set()
    for key in shapes:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return len(found)


def _cross_attention_width(shapes: Mapping[str, tuple[int, ...]], prefix: str = UNET) -> int | None:
    for key, shape in sorted(shapes.items()):
        if key.startswith(prefix) and key.endswith("attn2.to_k.weight") and len(shape) == 2:
            return shape[1]
    return None


def _config(folder: Path, sub: str, name: str = "config.json") -> dict[str, Any]:
    return json.loads((folder / sub / name).read_text(encoding="utf-8"))


def config_mismatches(shapes: Mapping[str, tuple[int, ...]], arch: str, config_dir: Path) -> list[str]:
    """Where the checkpoint's shapes disagree with a config folder: ``"what: checkpoint X,
    config Y"`` strings (empty when they agree). Header-only; catches a checkpoint of
    another size, or a ``model_config`` folder for another model."""
    problems: list[str] = []

    def compare(what: str, found: Any, expected: Any) -> None:
        if found is not None and found != expected:
            problems.append(f"{what}: checkpoint {found}, config {expected}")

    try:
        index = json.loads((config_dir / "model_index.json").read_text(encoding="utf-8"))
        unet, vae = _config(config_dir, "unet"), _config(config_dir, "vae")
    except (OSError, ValueError) as exc:
        return [f"config folder unreadable: {exc}"]
    compare("pipeline", index.get("_class_name"), ARCHITECTURES[arch].pipeline)
    conv_in = shapes.get(UNET + "input_blocks.0.0.weight")
    if conv_in:
        compare("UNet conv_in channels", conv_in[0], unet["block_out_channels"][0])
    levels, per_block = len(unet["block_out_channels"]), unet.get("layers_per_block", 2)
    compare("UNet input blocks", _count_indices(shapes, UNET + "input_blocks."), 1 + levels * (per_block + 1) - 1)
    compare("UNet cross-attention width", _cross_attention_width(shapes), unet.get("cross_attention_dim"))
    vae_in = shapes.get(VAE + "encoder.conv_in.weight")
    if vae_in:
        compare("VAE conv_in channels", vae_in[0], vae["block_out_channels"][0])
    for i, prefix in enumerate(ARCHITECTURES[arch].text_encoders):
        sub = "text_encoder" if i == 0 else "text_encoder_2"
        try:
            text = _config(config_dir, sub)
        except (OSError, ValueError) as exc:
            problems.append(f"{sub} config unreadable: {exc}")
            continue
        if prefix.endswith(".model."):  # OpenCLIP layout
            token = shapes.get(prefix + "token_embedding.weight")
            layers = _count_indices(shapes, prefix + "transformer.resblocks.")
            # SD 2.x uses the penultimate layer: its diffusers encoder has one layer fewer.
            layers_expected = text["num_hidden_layers"] + (1 if arch == "sd2" else 0)
        else:
            token = shapes.get(prefix + "embeddings.token_embedding.weight")
            layers = _count_indices(shapes, prefix + "encoder.layers.")
            layers_expected = text["num_hidden_layers"]
        if token:
            compare(f"{sub} vocabulary × width", list(token), [text["vocab_size"], text["hidden_size"]])
        compare(f"{sub} layers", layers, layers_expected)
    return problems


# --------------------------------------------------------------------------- descriptions


@dataclass(frozen=True)
class CheckpointInfo:
    """What a build needs to know about a single-file checkpoint."""

    path: Path
    architecture: str | None  # None: a pickle not yet opened
    config_dir: Path | None  # shipped or model_config; None until the architecture is known
    shipped_config: bool

    @property
    def pickle(self) -> bool:
        return self.path.suffix.lower() in PICKLE_SUFFIXES

    def files(self) -> list[Path]:
        """Every file the loaded pipeline depends on (the fingerprint and ``watch`` use them)."""
        files = [self.path]
        if self.config_dir is not None:
            files += sorted(p for p in self.config_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        if self.shipped_config:
            files.append(BPE_VOCAB)
        return files


def shipped_config_dir(arch: str) -> Path:
    return CONFIG_ROOT / arch


def describe_checkpoint(path: Path, model_config: Path | None, allow_pickle: bool) -> CheckpointInfo:
    """Check a checkpoint file (header only) and choose its config folder. Raises
    :class:`CheckpointProblem` with what is wrong."""
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointProblem(
            f"unknown checkpoint file type '{suffix or path.name}'",
            expected="a .safetensors file (or .ckpt with allow_pickle = true) or a diffusers folder",
        )
    if model_config is not None and not (model_config / "model_index.json").is_file():
        raise CheckpointProblem(
            f"model_config folder {model_config} has no model_index.json",
            expected="a diffusers folder's configs (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)",
        )
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise CheckpointProblem(
                f"'{path.name}' is a pickle checkpoint ({suffix}); loading a pickle can run arbitrary code",
                expected="a .safetensors checkpoint",
                hint="prefer a .safetensors download; if you trust this file, set allow_pickle = true in [generator.diffusion]",
            )
        return CheckpointInfo(path, None, model_config, False)
    shapes = safetensors_shapes(path)
    arch = detect_architecture(shapes)
    config_dir = model_config or shipped_config_dir(arch)
    mismatches = config_mismatches(shapes, arch, config_dir)
    if mismatches:
        which = f"model_config {model_config}" if model_config else f"the standard {architecture_label(arch)} configs"
        raise CheckpointProblem(
            f"this {architecture_label(arch)}-layout checkpoint does not match {which}",
            expected="shapes that match the config",
            found="; ".join(mismatches[:4]),
            hint="set model_config to a diffusers folder (configs and tokenizers, no weights) that matches the checkpoint"
            if not model_config
            else "point model_config at the configs this checkpoint was made with",
        )
    return CheckpointInfo(path, arch, config_dir, model_config is None)


# --------------------------------------------------------------------------- loading


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte → printable-character table (the BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


_tokenizer_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _clip_vocab() -> tuple[str, str]:
    """``(vocab.json text, merges.txt text)`` of the CLIP ViT-L/OpenCLIP tokenizers, built
    exactly as CLIP does from its BPE merges: 256 byte symbols, the same word-final, one
    token per merge, then the two specials — 49408 entries."""
    merges = gzip.decompress(BPE_VOCAB.read_bytes()).decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(merge.split()) for merge in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return json.dumps({token: i for i, token in enumerate(vocab)}), "#version: 0.2\n" + "\n".join(merges) + "\n"


def clip_tokenizer(settings: Mapping[str, Any]):
    """A ``CLIPTokenizer`` from the shipped BPE vocabulary and a tokenizer_config."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab()
    with _tokenizer_lock, tempfile.TemporaryDirectory(prefix="sparky-clip-") as tmp:
        (Path(tmp) / "vocab.json").write_text(vocab, encoding="utf-8")
        (Path(tmp) / "merges.txt").write_text(merges, encoding="utf-8")
        options = {k: v for k, v in settings.items() if not k.startswith("_")}
        return CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), **options)


def load_state_dict(info: CheckpointInfo) -> dict[str, Any]:
    """The checkpoint's tensors (``state_dict`` unwrapped for pickles)."""
    if not info.pickle:
        from safetensors.torch import load_file

        return load_file(str(info.path))
    import torch

    try:
        data = torch.load(str(info.path), map_location="cpu", weights_only=False)  # allow_pickle opted in
    except Exception as exc:  # noqa: BLE001 - a broken pickle raises anything
        raise CheckpointProblem(f"could not read the pickle checkpoint: {type(exc).__name__}: {exc}") from exc
    while isinstance(data, Mapping) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise CheckpointProblem("the pickle checkpoint holds no state dict", found=type(data).__name__)
    return {k: v for k, v in data.items() if hasattr(v, "shape")}


def resolve_pickle(info: CheckpointInfo, state: Mapping[str, Any]) -> CheckpointInfo:
    """Detect a pickle checkpoint's architecture once its tensors are loaded."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    arch = detect_architecture(shapes)
    config_dir = info.config_dir or shipped_config_dir(arch)
    mismatches = config_mismatches(shapes, arch, config_dir)
    if mismatches:
        raise CheckpointProblem(
            f"this {architecture_label(arch)}-layout checkpoint does not match its configs",
            found="; ".join(mismatches[:4]),
            hint="set model_config to a diffusers folder that matches the checkpoint",
        )
    return CheckpointInfo(info.path, arch, config_dir, info.config_dir is None)


def load_checkpoint_pipeline(info: CheckpointInfo, dtype):
    """Build the text-to-image pipeline of a single-file checkpoint, offline: each
    component is converted by diffusers' single-file functions with the local config
    folder; tokenizers come from that folder (``model_config``) or from the shipped
    vocabulary. Returns the pipeline and the (resolved) description."""
    import diffusers
    import transformers
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    state = load_state_dict(info)
    if info.architecture is None:
        info = resolve_pickle(info, state)
    assert info.config_dir is not None and info.architecture is not None
    config_dir = info.config_dir
    index = json.loads((config_dir / "model_index.json").read_text(encoding="utf-8"))
    pipeline_cls = getattr(diffusers, index["_class_name"])
    components: dict[str, Any] = {}
    for name in ("unet", "vae"):
        cls = getattr(diffusers, index[name][1])
        components[name] = cls.from_single_file(
            state, config=str(config_dir), subfolder=name, local_files_only=True, torch_dtype=dtype
        )
    encoders = ["text_encoder"] + (["text_encoder_2"] if "text_encoder_2" in index else [])
    for name in encoders:
        cls = getattr(transformers, index[name][1])
        components[name] = create_diffusers_clip_model_from_ldm(
            cls, state, subfolder=name, config=str(config_dir), torch_dtype=dtype, local_files_only=True
        )
    del state
    for name in ("tokenizer", "tokenizer_2"):
        if name not in index:
            continue
        folder = config_dir / name
        if any((folder / f).is_file() for f in ("vocab.json", "tokenizer.json")):  # model_config's own vocabulary
            cls = getattr(transformers, index[name][1])
            components[name] = cls.from_pretrained(str(folder), local_files_only=True)
        else:
            components[name] = clip_tokenizer(_config(config_dir, name, "tokenizer_config.json"))
    scheduler_cls = getattr(diffusers, index["scheduler"][1])
    components["scheduler"] = scheduler_cls.from_pretrained(
        str(config_dir), subfolder="scheduler", local_files_only=True
    )
    import inspect

    accepted = inspect.signature(pipeline_cls.__init__).parameters
    for key, value in index.items():
        if key.startswith("_") or key in components or key not in accepted:
            continue
        if isinstance(value, list) and len(value) == 2 and (value[0] is None or isinstance(value[0], str)):
            components[key] = None  # an absent optional component (safety checker, feature extractor)
        else:
            components[key] = value  # a pipeline option (requires_safety_checker, force_zeros_for_empty_prompt)
    return pipeline_cls(**components), info


def fingerprint_entries(info: CheckpointInfo, digest) -> dict[str, Any]:
    """Content identity of everything a checkpoint loads with: the checkpoint by
    ``digest`` (size, safetensors header, sampled chunks), configs and tokenizer files
    by full hash, keyed by their role rather than their machine-specific path."""
    entries: dict[str, Any] = {"checkpoint": digest(info.path, info.path.stat().st_size)}
    if info.config_dir is not None:
        for path in info.files()[1:]:
            if path == BPE_VOCAB:
                key = "tokenizer/bpe"
            else:
                key = "config/" + path.relative_to(info.config_dir).as_posix()
            entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    entries["allow_pickle"] = info.pickle
    return entries
