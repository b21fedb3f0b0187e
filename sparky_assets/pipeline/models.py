"""``sparky-assets models``: every model file a manifest uses, and fetching hub models.

:func:`inventory` lists the diffusion generator's model, ``model_config``, ControlNet
and LoRAs — where each resolves, what it is (diffusers folder, single-file checkpoint
and its detected architecture, hub cache snapshot, LoRA layout and base family), its
size and content fingerprint (the same one the build's cache key uses), whether it is
present — and what a ``--frozen`` build needs: nothing when every diffusion sprite is
locked and current, otherwise the sprites that would need generating.

:func:`fetch` is the only code in the package that may use the network: it downloads
hub models (``model = "org/name"``) that are not on this machine into
``<project>/models/org/name`` — where the build looks before the Hugging Face cache —
after saying so, and refuses when ``HF_HUB_OFFLINE`` is set. Downloads go to a
temporary folder first and are renamed into place, so an interrupted fetch leaves
nothing a build would take for a model.

Reading is header-only, as in ``check``: no torch, no weights loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import BuildFailed, Diagnostic, InvalidInput, suggest
from ..manifest.load import load_manifest
from ..manifest.locate import KeyLocator

FETCH_PATTERNS = [
    "model_index.json",
    "*/config.json",
    "*/scheduler_config.json",
    "*/preprocessor_config.json",
    "*/tokenizer_config.json",
    "*/tokenizer.json",
    "*/special_tokens_map.json",
    "*/vocab.json",
    "*/merges.txt",
    "*/diffusion_pytorch_model.safetensors",
    "*/model.safetensors",
    "config.json",
    "diffusion_pytorch_model.safetensors",
]
"""What a diffusers repo needs for a build: configs, tokenizers and the full-precision
safetensors weights — not the .bin/.ckpt duplicates, fp16 variants or sample images."""


@dataclass
class ModelFile:
    role: str  # model | model_config | controlnet | ip_adapter | lora[i]
    key: str  # manifest key path
    reference: str  # as written in the manifest
    line: int | None = None
    path: str | None = None
    kind: str = "missing"
    architecture: str | None = None
    size: int | None = None
    fingerprint: str | None = None
    present: bool = False
    problem: str | None = None
    fetch: str | None = None  # hub id `models fetch` can download


@dataclass
class Inventory:
    manifest: Path
    files: list[ModelFile] = field(default_factory=list)
    diffusion_sprites: list[str] = field(default_factory=list)
    frozen_stale: dict[str, str] = field(default_factory=dict)  # sprite → why it would need generating

    @property
    def frozen_needs(self) -> str:
        if not self.diffusion_sprites:
            return "nothing (no diffusion sprites)"
        if not self.frozen_stale:
            return f"nothing — all {len(self.diffusion_sprites)} diffusion sprites are locked; no model file is read"
        return (
            f"{len(self.frozen_stale)} of {len(self.diffusion_sprites)} diffusion sprites are not locked or changed "
            "since: build them where the model is, then commit sparky.lock and sparky-generated/"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "files": [asdict(f) for f in self.files],
            "frozen": {
                "needs_model_files": bool(self.frozen_stale),
                "summary": self.frozen_needs,
                "diffusion_sprites": self.diffusion_sprites,
                "stale": self.frozen_stale,
            },
        }

    def text(self) -> str:
        lines = [f"{self.manifest}:"]
        if not self.files:
            lines.append("  no models: no [generator.diffusion] table")
        for f in self.files:
            status = "present" if f.present else ("invalid" if f.path else "missing")
            size = f"{f.size / 1e6:,.1f} MB" if f.size is not None else "-"
            lines.append(f"  {f.role:<12} {f.reference}")
            details = (
                [status] + ([f.kind] if f.kind != "missing" else []) + ([f.architecture] if f.architecture else [])
            )
            lines.append("      " + "; ".join(details + [size]))
            if f.path and f.path != f.reference:
                lines.append(f"      at {f.path}")
            if f.fingerprint:
                lines.append(f"      fingerprint {f.fingerprint[:16]}")
            if f.problem:
                lines.append(f"      problem: {f.problem}")
            if f.fetch and not f.present:
                lines.append(f"      get it: sparky-assets models fetch --only {f.reference}")
        lines.append(f"  frozen build needs: {self.frozen_needs}")
        for sprite, why in sorted(self.frozen_stale.items()):
            lines.append(f"      {sprite}: {why}")
        return "\n".join(lines)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _folder_architecture(folder: Path) -> str:
    from ..generators.lora import family_of, folder_widths

    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "not a diffusers pipeline folder"
    widths = folder_widths(folder)
    name = {"StableDiffusionXLPipeline": "SDXL", "StableDiffusionPipeline": "SD"}.get(index.get("_class_name"), "")
    return f"{name or index.get('_class_name')} pipeline, cross-attention {family_of(widths.cross_attention)}"


def _describe_model(entry: ModelFile, settings, root: Path) -> None:
    from ..generators import checkpoints
    from ..generators.diffusion import _looks_like_hub_id, resolve_model
    from ..generators.model_files import checkpoint_info, model_identity

    try:
        path = resolve_model(settings.model, root)
    except InvalidInput as exc:
        entry.problem = exc.diagnostics[0].message
        entry.fetch = settings.model if _looks_like_hub_id(settings.model) else None
        return
    entry.path = str(path)
    entry.size = _tree_size(path)
    try:
        if path.is_file():
            info = checkpoint_info(settings, root, path)
            entry.kind = "single-file checkpoint" + (" (pickle, allow_pickle)" if info.pickle else "")
            entry.architecture = checkpoints.architecture_label(info.architecture) if info.architecture else None
            if info.architecture and not info.shipped_config:
                entry.architecture += f" layout, configs from {settings.model_config}"
        else:
            entry.kind = "diffusers folder" if path.is_relative_to(root) else "hub cache snapshot"
            entry.architecture = _folder_architecture(path)
        entry.fingerprint = model_identity(settings, root, path)
        entry.present = True
    except InvalidInput as exc:
        entry.problem = exc.diagnostics[0].format_message()


def _describe_ip_adapter(settings, root: Path) -> ModelFile:
    from ..generators import identity
    from ..generators.lora import family_of

    entry = ModelFile("ip_adapter", identity.KEY, settings.ip_adapter, kind="IP-Adapter")
    try:
        files = identity.resolve(settings, root)
    except InvalidInput as exc:
        entry.problem = exc.diagnostics[0].message
        return entry
    entry.path = str(files.folder)
    entry.kind = f"IP-Adapter ({files.weights.name} + {identity.ENCODER_FOLDER}/, scale {settings.ip_adapter_scale:g})"
    entry.size = files.weights.stat().st_size + _tree_size(files.encoder)
    width = identity.cross_attention_width(files)
    entry.architecture = f"for cross-attention {family_of(width)}" if width else None
    entry.fingerprint = hashlib.sha256(json.dumps(identity.identity(files), sort_keys=True).encode()).hexdigest()
    problems = identity.problems(settings, root, _model_width(settings, root))
    entry.problem = problems[0].format_message() if problems else None
    entry.present = entry.problem is None
    return entry


def _model_width(settings, root: Path) -> int | None:
    from ..generators.diffusion import DiffusionGenerator

    return DiffusionGenerator._model_width(settings, root)


def inventory(path: str | Path = ".") -> Inventory:
    """Every model file the manifest at ``path`` uses, and what ``--frozen`` needs."""
    from ..generators.diffusion import model_fingerprint, parse_settings
    from ..generators.lora import describe_lora, family_of
    from ..generators.model_files import model_problems
    from .engine import resolve
    from .store import GeneratedStore

    manifest = load_manifest(path)
    root = manifest.root
    result = Inventory(manifest.path)
    table = manifest.generators.get("diffusion")
    locator = KeyLocator(manifest.path.read_text(encoding="utf-8", errors="replace"))
    if table is not None:
        settings, problems = parse_settings(table)
        if settings is None:
            raise InvalidInput([d if d.file else replace(d, file=str(manifest.path)) for d in problems])
        model = ModelFile("model", "generator.diffusion.model", settings.model)
        _describe_model(model, settings, root)
        result.files.append(model)
        if settings.model_config:
            config = Path(root) / settings.model_config
            result.files.append(
                ModelFile(
                    "model_config",
                    "generator.diffusion.model_config",
                    settings.model_config,
                    path=str(config),
                    kind="config folder",
                    size=_tree_size(config) if config.is_dir() else None,
                    present=config.is_dir(),
                )
            )
        controlnet = getattr(settings, "controlnet", None)
        if controlnet:
            folder = Path(root) / controlnet
            result.files.append(
                ModelFile(
                    "controlnet",
                    "generator.diffusion.controlnet",
                    controlnet,
                    path=str(folder),
                    kind="diffusers folder",
                    size=_tree_size(folder) if folder.is_dir() else None,
                    fingerprint=model_fingerprint(folder) if folder.is_dir() else None,
                    present=folder.is_dir(),
                )
            )
        if settings.ip_adapter:
            result.files.append(_describe_ip_adapter(settings, root))
        lora_problems = {d.key: d.format_message() for d in model_problems(settings, root) if "lora[" in (d.key or "")}
        for i, spec in enumerate(settings.lora):
            key = f"generator.diffusion.lora[{i}]"
            file = Path(root) / spec.path
            entry = ModelFile(f"lora[{i}]", key, spec.path, path=str(file), kind="LoRA")
            if file.is_file():
                from ..generators.diffusion import file_sha256

                entry.size = file.stat().st_size
                entry.fingerprint = file_sha256(file)
                try:
                    info = describe_lora(file)
                    entry.kind = f"LoRA ({info.format} layout, weight {spec.weight:g})"
                    entry.architecture = f"for cross-attention {family_of(info.cross_attention)}"
                except Exception:  # noqa: BLE001 - reported through model_problems below
                    pass
                entry.problem = lora_problems.get(key)
                entry.present = entry.problem is None
            else:
                entry.path = None
                entry.problem = "not found"
            result.files.append(entry)
        for entry in result.files:
            entry.line = locator.locate(entry.key)[0]
    store = GeneratedStore(root)
    project = resolve(manifest, store)
    for name, plan in project.sprites.items():
        if plan.spec.generator != "diffusion" or not plan.lockable:
            continue
        result.diffusion_sprites.append(name)
        why, _ = store.staleness(name, plan.manifest_key, plan.inputs)
        if why:
            result.frozen_stale[name] = why
    result.diffusion_sprites.sort()
    return result


def fetch(path: str | Path = ".", only: str | None = None, echo: Callable[[str], None] = print) -> list[Path]:
    """Download the manifest's missing hub models into ``<project>/models/<org>/<name>``.
    Says what it downloads before it does; refuses offline. Returns the folders written."""
    found = inventory(path)
    root = found.manifest.parent
    candidates = [f for f in found.files if f.fetch and not f.present]
    if only is not None:
        names = [f.reference for f in found.files]
        match = [f for f in found.files if only in (f.reference, f.role)]
        if not match:
            raise InvalidInput(
                Diagnostic(
                    f"no model named '{only}' in the manifest",
                    file=str(found.manifest),
                    expected=", ".join(names) or "a [generator.diffusion] model",
                    found=only,
                    hint=suggest(only, names),
                )
            )
        entry = match[0]
        if entry.present:
            echo(f"{entry.reference}: already present at {entry.path}; nothing to fetch")
            return []
        if not entry.fetch:
            raise InvalidInput(
                Diagnostic(
                    f"'{entry.reference}' is not a hub model id, so there is nothing to fetch it from",
                    file=str(found.manifest),
                    line=entry.line,
                    key=entry.key,
                    expected='a hub id such as model = "org/name" (fetched into models/org/name)',
                    found=entry.reference,
                    hint="download single files and LoRAs by hand into the project, at the path the manifest names",
                )
            )
        candidates = [entry]
    if not candidates:
        echo("nothing to fetch: " + ("every model is present" if found.files else "the manifest uses no models"))
        return []
    written = []
    for entry in candidates:
        target = root / "models" / entry.fetch
        echo(f"models fetch uses the network: downloading {entry.fetch} from huggingface.co into {target}")
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            raise BuildFailed(
                Diagnostic(
                    f"HF_HUB_OFFLINE is set, so {entry.fetch} cannot be downloaded",
                    key=entry.key,
                    hint="unset HF_HUB_OFFLINE for this command (builds never download either way)",
                )
            )
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise BuildFailed(
                Diagnostic(f"models fetch needs huggingface_hub: pip install 'sparky-assets[diffusion]' ({exc})")
            ) from exc
        partial = target.with_name(f".{target.name}.partial")
        try:
            snapshot_download(entry.fetch, local_dir=str(partial), allow_patterns=FETCH_PATTERNS)
        except Exception as exc:  # noqa: BLE001 - network and hub errors of every kind
            raise BuildFailed(
                Diagnostic(f"downloading {entry.fetch} failed: {type(exc).__name__}: {exc}", key=entry.key)
            ) from exc
        shutil.rmtree(partial / ".cache", ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, target)
        echo(f"  fetched {entry.fetch} → {target.relative_to(root)}")
        written.append(target)
    return written
