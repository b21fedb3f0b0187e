"""The exporter contract and the helpers every exporter shares.

An exporter turns one :class:`~sparky_assets.pack.atlas.PackedAtlas` (plus its
encoded pages) into files under its target's output root, returned as
``{relative posix path: OutputFile}``. Exporters never touch the disk; the build
engine writes what they return, atomically, and only where bytes changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..manifest.fields import Field
from ..manifest.schema import ExportSpec, Manifest, SpriteSpec
from ..pack.atlas import PackedAtlas
from .png import PNG_VERSION as PNG_VERSION  # the PNG writer lives in export.png; re-exported
from .png import encode_png as encode_png


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


class Exporter:
    """The base of every export target (built-in or third-party).

    Declared, not probed: ``option_fields`` are the keys of ``[export.<name>]`` (the
    manifest checks them with locations; ``docs/manifest.md`` documents them);
    ``root_key`` names the key that holds the output folder (absent: the target writes
    to ``<project.out>/<name>``); ``subdir_key``, when set, names a folder under that
    root (the Godot ``res://`` folder, the Bevy asset folder); ``always`` marks a target
    that every build writes and no manifest configures (``sheets``). ``version`` joins
    the export key: bump it when the bytes for an unchanged atlas change.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    doc: ClassVar[str] = ""
    option_fields: ClassVar[Mapping[str, Field]] = {}
    root_key: ClassVar[str] = "dir"
    subdir_key: ClassVar[str | None] = None
    always: ClassVar[bool] = False

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]:
        raise NotImplementedError


def dir_field(what: str) -> dict[str, Field]:
    """The ``dir`` key of a target that writes under ``<project.out>/<name>`` by default."""
    return {"dir": Field("str", f"Folder (inside the project) for {what}; default `<project.out>/<target>`.")}


def directional_clips(context: ExportContext, sprite: str) -> tuple[tuple[str, ...], dict[str, tuple[str, str]]]:
    """A sprite's facings (manifest order) and, per directional clip name, its
    (animation, facing); empty for sprites without ``directions``."""
    try:
        spec = context.manifest.sprite(sprite)
    except KeyError:
        return (), {}
    clips = {a.name: (a.base, a.direction) for a in spec.animations if a.direction}
    return tuple(dict.fromkeys(d for _, d in clips.values())), clips


def sprite_spec(context: ExportContext, sprite: str) -> SpriteSpec | None:
    """The manifest's spec of an atlas sprite (None for a sprite it no longer has)."""
    try:
        return context.manifest.sprite(sprite)
    except KeyError:
        return None


def frame_pivot(context: ExportContext, sprite: str, animation: str | None) -> tuple[float, float] | None:
    """The pivot (frame pixels) a frame uses, or None when the sprite sets no pivot at all
    (formats then keep their centre default and their files stay unchanged)."""
    spec = sprite_spec(context, sprite)
    if spec is None or not (spec.pivot is not None or any(a.pivot is not None for a in spec.animations)):
        return None
    return spec.pivot_of(animation)


def nine_slice(context: ExportContext, sprite: str):
    """The sprite's first slice with a 9-slice centre, or None."""
    spec = sprite_spec(context, sprite)
    return next((sl for sl in spec.slices if sl.center is not None), None) if spec else None


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
_C_ENCODER = (
    json.encoder.c_make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True
    )
    if json.encoder.c_make_encoder is not None
    else None
)


def _compact(v: Any) -> str:
    """``json.dumps(v, ensure_ascii=False, separators=(", ", ": "))``, without building
    an encoder per call (one call per frame: a watch rebuild makes hundreds)."""
    if isinstance(v, str):
        return json.encoder.encode_basestring(v)
    if _C_ENCODER is not None and isinstance(v, (dict, list, tuple)):
        return "".join(_C_ENCODER(v, 0))
    return _ENCODER.encode(v)


def dump_json(value: Any) -> bytes:
    """Stable, readable JSON bytes: the first two levels one entry per line, anything
    deeper on one line (one frame per line), keys in the order given, a newline at the
    end. Encoding runs in the json module's C encoder (big atlases stay fast)."""
    compact = _compact

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
