"""The diffusion generator's model and LoRA files: checks, fingerprints, watched inputs
and loading, for diffusers folders and single-file checkpoints alike.

:mod:`.diffusion` calls in here at four points — ``validate`` (:func:`model_problems`),
files it watches (:func:`model_input_files`, recorded by ``validate``), ``cache_key``/``generate``
(:func:`model_identity`) and pipeline loading (:func:`load_model`, :func:`apply_loras`)
— so a checkpoint behaves exactly like a folder model: same diagnostics shape
(``generator.diffusion.model`` / ``generator.diffusion.lora[i]`` keys, the file in
``found``), same content fingerprint rules, same pipeline cache.

Every check here reads headers and configs only (no torch), so ``check`` finds a
truncated checkpoint, a ``.ckpt`` without ``allow_pickle`` or a LoRA for another base
model before a build starts; locked sprites under ``--frozen`` never reach this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import Diagnostic, InvalidInput
from ..reads import ReadContext, ensure_reads
from . import checkpoints, lora
from .checkpoints import CheckpointInfo, CheckpointProblem


def _key(name: str) -> str:
    return f"generator.diffusion.{name}"


def _diagnostic(problem: CheckpointProblem, key: str, path: Path, what: str) -> Diagnostic:
    return Diagnostic(
        f"{what} {path.name}: {problem.message}",
        key=key,
        expected=problem.expected,
        found=f"{problem.found} in {path}" if problem.found else str(path),
        hint=problem.hint,
        stage="generate",
    )


def model_config_dir(settings, root: Path) -> Path | None:
    return (Path(root) / settings.model_config) if settings.model_config else None


def checkpoint_info(settings, root: Path, path: Path) -> CheckpointInfo:
    """The checked description of a single-file model; :class:`InvalidInput` otherwise."""
    try:
        return checkpoints.describe_checkpoint(path, model_config_dir(settings, root), settings.allow_pickle)
    except CheckpointProblem as problem:
        key = _key("model_config") if "model_config" in problem.message else _key("model")
        raise InvalidInput(_diagnostic(problem, key, path, "checkpoint")) from None
    except OSError as exc:
        raise InvalidInput(
            Diagnostic(
                f"checkpoint {path.name} cannot be read: {exc}", key=_key("model"), found=str(path), stage="generate"
            )
        ) from None


def model_widths(settings, root: Path, path: Path) -> lora.ModelWidths | None:
    if path.is_dir():
        return lora.folder_widths(path)
    info = checkpoint_info(settings, root, path)
    if info.architecture is None:  # a pickle: known only once loaded
        return None
    if info.shipped_config:
        return lora.checkpoint_widths(path, info.architecture)
    return lora.folder_widths(info.config_dir)


def model_problems(settings, root: Path, reads: ReadContext | None = None) -> list[Diagnostic]:
    """Everything wrong with the model and LoRA files, from headers and configs (the
    files looked at are recorded in ``reads``)."""
    from .diffusion import resolve_model

    reads = ensure_reads(reads)
    problems: list[Diagnostic] = []
    widths = None
    for file in model_input_files(settings, root):
        reads.is_file(file)
    try:
        path = resolve_model(settings.model, root, reads)
        widths = model_widths(settings, root, path)
    except InvalidInput as exc:
        problems.extend(exc.diagnostics)
    for i, spec in enumerate(settings.lora):
        file = Path(root) / spec.path
        key = f"{_key('lora')}[{i}]"
        if not reads.is_file(file):
            problems.append(
                Diagnostic(
                    f"LoRA file '{spec.path}' not found",
                    key=key,
                    expected="a .safetensors file relative to the project root",
                    found=str(file),
                    stage="generate",
                )
            )
            continue
        try:
            info = lora.describe_lora(file)
        except CheckpointProblem as problem:
            problems.append(_diagnostic(problem, key, file, "LoRA"))
            continue
        mismatches = lora.lora_mismatches(info, widths) if widths else []
        if mismatches:
            problems.append(
                Diagnostic(
                    f"LoRA {file.name} was made for a different base model than '{settings.model}': "
                    + "; ".join(mismatches),
                    key=key,
                    expected=f"a LoRA for {lora.family_of(widths.cross_attention)}",
                    found=f"a {info.format} LoRA for {lora.family_of(info.cross_attention)} in {file}",
                    hint="use a LoRA trained on the same base model family, or change model",
                    stage="generate",
                )
            )
    return problems


def model_input_files(settings, root: Path) -> list[Path]:
    """Files ``watch`` must see for the model: a folder's model_index.json, or a
    checkpoint and the configs it loads with."""
    local = Path(root) / settings.model
    if local.is_dir():
        return [local / "model_index.json"]
    if local.is_file():
        try:
            return checkpoint_info(settings, root, local).files()
        except InvalidInput:
            return [local]
    return []


def model_identity(settings, root: Path, path: Path, reads: ReadContext | None = None) -> str:
    """The content fingerprint of the model at ``path`` (folder or checkpoint); every
    file it covers is recorded in ``reads``."""
    from .diffusion import _file_digest, _fingerprint_memo, _memo_lock, model_fingerprint

    reads = ensure_reads(reads)
    if path.is_dir():
        return model_fingerprint(path, reads)
    info = checkpoint_info(settings, root, path)
    if info.config_dir is not None and info.config_dir.resolve().is_relative_to(Path(root).resolve()):
        reads.list_folder(info.config_dir)  # a config file added to the folder later is a change
    files = info.files() if info.config_dir is not None else [path, *sorted(checkpoints.CONFIG_ROOT.rglob("*"))]
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    memo_key = ("checkpoint", str(path.resolve()), tuple(stats))
    with _memo_lock:
        found = _fingerprint_memo.get(memo_key)
    if found is not None:
        for f in files:
            if f.is_file() and f.is_relative_to(root):  # the shipped configs are part of the package
                reads.note(f, found)
        return found
    entries = checkpoints.fingerprint_entries(info, _file_digest)
    if info.config_dir is None:  # a pickle with the shipped configs: any of them may be used
        for f in sorted(checkpoints.CONFIG_ROOT.rglob("*")):
            if f.is_file():
                entries["shipped/" + f.relative_to(checkpoints.CONFIG_ROOT).as_posix()] = hashlib.sha256(
                    f.read_bytes()
                ).hexdigest()
    fingerprint = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    with _memo_lock:
        _fingerprint_memo[memo_key] = fingerprint
    for f in files:
        if f.is_file() and f.is_relative_to(root):
            reads.note(f, fingerprint)
    return fingerprint


@contextlib.contextmanager
def quiet_loading():
    """No diffusers/transformers progress bars or warnings while a model loads: a build
    prints its own progress and diagnostics (what those warnings would say — LoRA keys
    that matched nothing — is checked by :func:`apply_loras`), and library noise on
    stderr reads like an error in CI logs."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    modules = (diffusers_logging, transformers_logging)
    states = [(m, m.is_progress_bar_enabled(), m.get_verbosity()) for m in modules]
    for module in modules:
        module.disable_progress_bar()
        module.set_verbosity_error()
    try:
        yield
    finally:
        for module, bars, verbosity in states:
            module.set_verbosity(verbosity)
            if bars:
                module.enable_progress_bar()


def load_model(settings, root: Path, path: Path, dtype) -> tuple[Any, int | None]:
    """The text-to-image pipeline of a single-file checkpoint and its architecture's
    render size (None: use the config's native size)."""
    info = checkpoint_info(settings, root, path)
    try:
        pipe, info = checkpoints.load_checkpoint_pipeline(info, dtype)
    except CheckpointProblem as problem:
        raise InvalidInput(_diagnostic(problem, _key("model"), path, "checkpoint")) from None
    size = checkpoints.ARCHITECTURES[info.architecture].render_size if info.shipped_config else None
    return pipe, size


def apply_loras(pipe, loras: list[tuple[str, str, float]]) -> None:
    """Load each LoRA as its own adapter and check every layer in it landed on the
    model; set the adapter weights."""
    names = []
    for i, (path, _, _) in enumerate(loras):
        name = f"sparky_lora_{i}"
        key = f"{_key('lora')}[{i}]"
        file = Path(path)
        try:
            expected = lora.describe_lora(file).layers
        except CheckpointProblem as problem:
            raise InvalidInput(_diagnostic(problem, key, file, "LoRA")) from None
        try:
            pipe.load_lora_weights(path, adapter_name=name)
        except Exception as exc:  # noqa: BLE001 - diffusers/peft raise many types for a foreign LoRA
            raise InvalidInput(
                Diagnostic(
                    f"LoRA {file.name} does not fit the model: {type(exc).__name__}: {exc}",
                    key=key,
                    found=str(file),
                    stage="generate",
                )
            ) from exc
        loaded = lora.count_loaded_layers(pipe, name)
        if loaded < expected:
            raise InvalidInput(
                Diagnostic(
                    f"LoRA {file.name} does not fit the model: only {loaded} of its {expected} layers match a module",
                    key=key,
                    expected="a LoRA for this base model",
                    found=str(file),
                    stage="generate",
                )
            )
        names.append(name)
    if names:
        pipe.set_adapters(names, adapter_weights=[w for _, _, w in loras])


# --------------------------------------------------------------------------- batch invariance


def _batch_rows(value: Any) -> int | None:
    """The batch size of a module call: the first tensor argument's leading dimension."""
    import torch

    if isinstance(value, torch.Tensor):
        return int(value.shape[0]) if value.ndim else None
    if isinstance(value, (list, tuple)):
        return next((r for r in map(_batch_rows, value) if r is not None), None)
    return None


def _rows(value: Any, index: Any, rows: int) -> Any:
    """The rows ``index`` (a slice or index tensor) of every batch-shaped tensor in
    ``value`` (nested lists, tuples, dicts); anything else as it is."""
    import torch

    if isinstance(value, torch.Tensor):
        if not value.ndim or value.shape[0] != rows:
            return value
        return value[index] if isinstance(index, slice) else value.index_select(0, index.to(value.device))
    if isinstance(value, (list, tuple)):
        return type(value)(_rows(v, index, rows) for v in value)
    if isinstance(value, dict):
        return {k: _rows(v, index, rows) for k, v in value.items()}
    return value


def _join(parts: list[Any], rows: int) -> Any:
    """The calls' outputs put back together (padding rows dropped), in the shape the
    module returns."""
    import torch

    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)[:rows]
    if first is None:
        return None
    if isinstance(first, dict):  # diffusers BaseOutput / transformers ModelOutput
        return type(first)(**{k: _join([p[k] for p in parts], rows) for k in first.keys()})
    if isinstance(first, (list, tuple)):
        return type(first)(_join(list(column), rows) for column in zip(*parts))
    return first


def fixed_rows_per_call(module: Any, rows_per_call: int = 1) -> Any:
    """Make ``module`` run every batch in calls of exactly ``rows_per_call`` rows (the
    last call padded by repeating its last row), so each row's numbers are the same
    whatever batch it arrives in.

    CPU (and GPU) kernels pick their algorithm by tensor shape: measured here, a
    ``Conv2d`` on one image and the same image in a batch of 2+ differ in the last
    bits (oneDNN takes another path for batch 1), and the tiny UNet's outputs differ
    by ~1e-6 between batch 1, 2 and 8 — enough to flip a rounded pixel. With every
    call the same shape, and rows independent of each other (no layer of these models
    mixes rows), a frame's pixels cannot depend on ``batch_size`` or its neighbours.
    ``module.sparky_rows_per_call`` may be changed later (the generator sets it from
    ``micro_batch`` before each call). Idempotent; returns ``module``."""
    module.sparky_rows_per_call = rows_per_call
    if getattr(module, "_sparky_fixed_rows", False):
        return module
    forward = module.forward

    def fixed(*args, **kwargs):
        import torch

        rows = _batch_rows(args) or _batch_rows(list(kwargs.values()))
        size = module.sparky_rows_per_call
        if not rows or rows == size:
            return forward(*args, **kwargs)
        parts = []
        for start in range(0, rows, size):
            if size == 1:
                index: Any = slice(start, start + 1)
            else:
                index = torch.tensor([min(start + i, rows - 1) for i in range(size)])
            parts.append(forward(*_rows(args, index, rows), **_rows(kwargs, index, rows)))
        return _join(parts, rows)

    module.forward = fixed
    module._sparky_fixed_rows = True
    return module


MODEL_COMPONENTS = ("unet", "text_encoder", "text_encoder_2", "controlnet", "image_encoder", "vae")


WEIGHT_ALIGNMENT = 64
"""Bytes: where torch's CPU allocator starts every tensor it allocates."""


def own_aligned_weights(module: Any) -> int:
    """Give every parameter and buffer of ``module`` (a torch module) memory of its own
    at a :data:`WEIGHT_ALIGNMENT` boundary, as torch allocates it; returns how many
    tensors moved. The same weights must make the same sprites however they were loaded,
    and on the CPU they do not: a single-file checkpoint's tensors stay where its reader
    put them (4-byte boundaries; a diffusers folder's land on 32), and the CPU's matrix
    kernels take another path on such memory and round the last bit differently — which
    a few denoising steps grow into other pixels (a kohya LoRA on a single-file SDXL gave
    other sprites than the same LoRA on the same model from a folder). A copy only where
    a tensor is off the boundary, one tensor at a time (the old memory is freed as it goes)."""
    moved = 0
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type == "cpu" and tensor.data_ptr() % WEIGHT_ALIGNMENT:
            tensor.data = tensor.data.clone()
            moved += 1
    return moved


def pipeline_aligned_weights(pipe: Any) -> int:
    """:func:`own_aligned_weights` for each model of ``pipe``."""
    return sum(own_aligned_weights(m) for name in MODEL_COMPONENTS if (m := getattr(pipe, name, None)) is not None)


def batch_invariant(pipe: Any, rows_per_call: int = 1) -> Any:
    """Every model of ``pipe`` in calls of ``rows_per_call`` rows (the UNet and
    ControlNet see two rows per image under classifier-free guidance); see
    :func:`fixed_rows_per_call`. The VAE's ``decode`` is wrapped (its decoder is
    reached through it, not through ``forward``)."""
    for name in MODEL_COMPONENTS:
        module = getattr(pipe, name, None)
        if module is None:
            continue
        if name == "vae":
            _fixed_rows_method(module, "decode", rows_per_call)
        else:
            fixed_rows_per_call(module, rows_per_call)
    return pipe


class _Method:
    """A bound method dressed as a module for :func:`fixed_rows_per_call`."""

    def __init__(self, method: Any) -> None:
        self.forward = method


def _fixed_rows_method(owner: Any, name: str, rows_per_call: int) -> None:
    holder = getattr(owner, f"_sparky_{name}", None)
    if holder is None:
        holder = _Method(getattr(owner, name))
        fixed_rows_per_call(holder, rows_per_call)
        setattr(owner, f"_sparky_{name}", holder)
        setattr(owner, name, holder.forward)
    holder.sparky_rows_per_call = rows_per_call


def set_rows_per_call(pipe: Any, images: int, guided: bool) -> None:
    """Calls of ``images`` frames for a pipeline made :func:`batch_invariant`: the UNet
    and ControlNet take two rows per frame under classifier-free guidance."""
    for name in MODEL_COMPONENTS:
        module = getattr(pipe, name, None)
        if module is None:
            continue
        target = getattr(module, "_sparky_decode", None) if name == "vae" else module
        if target is not None:
            target.sparky_rows_per_call = images * (2 if guided and name in ("unet", "controlnet") else 1)
