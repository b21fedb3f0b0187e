"""The exporter contract and the helpers every exporter shares.

An exporter turns one :class:`~sparky_assets.pack.atlas.PackedAtlas` (plus its
encoded pages) into files under its target's output root, returned as
``{relative posix path: OutputFile}``. Exporters never touch the disk; the build
engine writes what they return, atomically, and only where bytes changed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from PIL import Image

from ..manifest.schema import ExportSpec, Manifest
from ..pack.atlas import PackedAtlas

PNG_VERSION = 1
"""Bump when :func:`encode_png` changes its bytes (it is part of every export key)."""


@dataclass(frozen=True)
class OutputFile:
    data: bytes
    kind: str
    """``texture`` ``atlas`` ``sprite-frames`` ``atlas-texture`` ``metadata`` (protocol v1)."""
    sprites: tuple[str, ...] = ()
    atlas: str | None = None
    engine_path: str | None = None


@dataclass(frozen=True)
class ExportContext:
    manifest: Manifest
    spec: ExportSpec
    pages_png: tuple[bytes, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)


class Exporter(Protocol):
    name: ClassVar[str]
    version: ClassVar[int]

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]: ...


def directional_clips(context: ExportContext, sprite: str) -> tuple[tuple[str, ...], dict[str, tuple[str, str]]]:
    """A sprite's facings (manifest order) and, per directional clip name, its
    (animation, facing); empty for sprites without ``directions``."""
    try:
        spec = context.manifest.sprite(sprite)
    except KeyError:
        return (), {}
    clips = {a.name: (a.base, a.direction) for a in spec.animations if a.direction}
    return tuple(dict.fromkeys(d for _, d in clips.values())), clips


def encode_png(rgba: np.ndarray, candidates: np.ndarray | None = None) -> bytes:
    """Deterministic PNG bytes: indexed (with a transparent entry) when the image has
    at most 256 colours, else RGBA. No timestamps or text chunks.

    ``candidates`` (sorted uint32 RGBA values that may occur, e.g. the atlas's palettes
    plus transparent) replaces a full sort of the pixels by a binary search; pixels not
    among them fall back to the general path, so the bytes never depend on it."""
    h, w = rgba.shape[:2]
    flat = rgba.reshape(-1, 4)
    packed = (
        (flat[:, 0].astype(np.uint32) << 24)
        | (flat[:, 1].astype(np.uint32) << 16)
        | (flat[:, 2].astype(np.uint32) << 8)
        | flat[:, 3]
    )
    packed[flat[:, 3] == 0] = 0
    colors = inverse = None
    if candidates is not None and 0 < len(candidates):
        pos = np.minimum(np.searchsorted(candidates, packed), len(candidates) - 1)
        if np.array_equal(candidates[pos], packed):
            used = np.bincount(pos, minlength=len(candidates)) > 0
            colors = candidates[used]
            remap = np.cumsum(used) - 1
            inverse = remap[pos]
    if colors is None:
        colors, inverse = np.unique(packed, return_inverse=True)
    buf = io.BytesIO()
    if len(colors) <= 256:
        im = Image.fromarray(inverse.reshape(h, w).astype(np.uint8), "P")
        pal = np.zeros((len(colors), 3), dtype=np.uint8)
        pal[:, 0], pal[:, 1], pal[:, 2] = (colors >> 24) & 255, (colors >> 16) & 255, (colors >> 8) & 255
        im.putpalette(pal.tobytes())
        alpha = bytes(int(a) for a in (colors & 255))
        im.save(buf, format="PNG", transparency=alpha)
    else:
        Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def dump_json(value: Any) -> bytes:
    """Stable, readable JSON bytes: the first two levels one entry per line, anything
    deeper on one line (one frame per line), keys in the order given, a newline at the
    end. Encoding runs in the json module's C encoder (big atlases stay fast)."""

    def compact(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))

    def block(v: Any, depth: int) -> str:
        pad = "  " * (depth + 1)
        if depth < 2 and isinstance(v, dict) and v:
            rows = [f"{pad}{compact(str(k))}: {block(x, depth + 1)}" for k, x in v.items()]
            return "{\n" + ",\n".join(rows) + "\n" + "  " * depth + "}"
        if depth < 2 and isinstance(v, list) and v:
            return "[\n" + ",\n".join(pad + block(x, depth + 1) for x in v) + "\n" + "  " * depth + "]"
        return compact(v)

    return (block(value, 0) + "\n").encode()


def quoted(value: str) -> str:
    """A double-quoted string as Godot's resource text and RON both read it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def export_dir(context: ExportContext) -> str:
    """The target's ``dir`` setting as a ``/``-terminated prefix ("" for the root)."""
    sub = context.spec.settings.get("dir", "sprites").strip("/")
    return f"{sub}/" if sub else ""


def page_files(atlas: PackedAtlas, context: ExportContext, engine_prefix: str | None = None) -> dict[str, OutputFile]:
    """The page PNGs, as every target needs its own copy next to its metadata."""
    out = {}
    for page, data in enumerate(context.pages_png):
        name = atlas.page_name(page)
        sprites = tuple(dict.fromkeys(f.sprite for f in atlas.frames if f.page == page))
        engine = None if engine_prefix is None else engine_prefix + name
        out[name] = OutputFile(data, "texture", sprites, atlas.name, engine)
    return out


def page_size(atlas: PackedAtlas, page: int) -> tuple[int, int]:
    h, w = atlas.pages[page].shape[:2]
    return w, h
