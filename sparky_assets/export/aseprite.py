"""Aseprite "json-array" export, one file per page (Phaser, LÖVE, PixiJS …).

What ``aseprite --sheet … --data … --format json-array --list-tags
--filename-format {frame}`` writes: frames as an array with ``duration`` in ms, and
``meta.frameTags`` giving each animation's ``from``/``to`` range in that array and its
``direction``. Frames are ordered so every animation is one range (its frames in
manifest order; the tag's direction says how they play — never duplicated).

Frame names follow Aseprite's ``--filename-format`` tokens (:func:`format_filename`);
the default ``{frame}`` (the index in the array) is what Phaser's
``createFromAseprite`` looks frames up by. Names must be unique within a page file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from ..errors import Diagnostic, InvalidInput
from ..manifest.fields import Field
from ..manifest.schema import DEFAULT_FILENAME_FORMAT
from ..pack.atlas import PackedAtlas
from .base import (
    ExportContext,
    Exporter,
    OutputFile,
    dir_field,
    dump_json,
    export_dir,
    page_files,
    page_size,
    sprite_spec,
)
from .texturepacker import frame_entry

_TOKEN = re.compile(r"\{([a-z]+)(\d*)\}")
FILENAME_TOKENS = ("frame", "tagframe", "title", "name", "fullname", "path", "extension", "layer", "group", "tag",
                   "innertag", "outertag", "slice", "duration")  # fmt: skip


@dataclass(frozen=True)
class FrameNaming:
    """What a frame name may say about one frame."""

    frame: int
    """Index in the page's frame array."""
    tagframe: int
    """Index within its animation (0 for a still)."""
    title: str
    tag: str
    duration: int
    path: str


def filename_format_problem(fmt: str) -> str | None:
    """Why ``fmt`` is not a usable format (an unknown token), or None."""
    for match in re.finditer(r"\{([^{}]*)\}", fmt):
        token = _TOKEN.fullmatch(match.group(0))
        if token is None or token.group(1) not in FILENAME_TOKENS:
            return f"unknown token {match.group(0)}"
        if token.group(2) and token.group(1) not in ("frame", "tagframe"):
            return f"only {{frame}} and {{tagframe}} take digits, not {match.group(0)}"
    return None


def format_filename(fmt: str, naming: FrameNaming) -> str:
    """``fmt`` with Aseprite's tokens replaced. ``{frame001}``: start at 1, pad to 3 digits
    (Aseprite's rule: the digits give both the first number and the width)."""

    def token(match: re.Match) -> str:
        name, digits = match.group(1), match.group(2)
        if name in ("frame", "tagframe"):
            value = (naming.frame if name == "frame" else naming.tagframe) + (int(digits) if digits else 0)
            return str(value).zfill(len(digits))
        return {
            "title": naming.title,
            "name": f"{naming.title}.png",
            "fullname": f"{naming.path}{naming.title}.png",
            "path": naming.path.rstrip("/"),
            "extension": "png",
            "layer": "",
            "group": "",
            "tag": naming.tag,
            "innertag": naming.tag,
            "outertag": naming.tag,
            "slice": "",
            "duration": str(naming.duration),
        }[name]

    return _TOKEN.sub(token, fmt)


def _rect(x, y, w, h) -> dict:
    return {"x": x, "y": y, "w": w, "h": h}


class AsepriteExporter(Exporter):
    name: ClassVar[str] = "aseprite"
    version: ClassVar[int] = 3  # 3: frame names from filename_format, per-frame durations, tag directions
    doc: ClassVar[str] = "Aseprite JSON (array) with frame tags: LÖVE, Defold, Phaser."
    option_fields: ClassVar[dict[str, Field]] = {
        **dir_field("Aseprite JSON (array) files"),
        "filename_format": Field(
            "str",
            "Frame names, with Aseprite's `--filename-format` tokens: `{frame}` (index in the sheet; `{frame1}` "
            "counts from 1, `{frame001}` pads to 3 digits), `{tagframe}` (index in its animation, same forms), "
            "`{title}` (sprite), `{tag}` (sprite/animation), `{innertag}`, `{outertag}`, `{layer}`, `{extension}` "
            "(`png`), `{path}` (the export folder), `{slice}`. Names must be unique in a sheet. The default "
            "`{frame}` is what Phaser's `createFromAseprite` looks frames up by; Aseprite's own default is "
            "`{title} {frame}.{extension}`.",
            DEFAULT_FILENAME_FORMAT,
            check=lambda value: _format_expected(value),
        ),
    }

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]:
        files = page_files(atlas, context)
        fmt = context.spec.settings.get("filename_format", DEFAULT_FILENAME_FORMAT)
        for page in range(len(atlas.pages)):
            rows: list[tuple[int, str, int, float]] = []  # (frame index, tag, tagframe, ms)
            tags = []
            for a in atlas.animations:
                members = [(i, ms) for i, ms in zip(a.frames, a.frame_ms()) if atlas.frames[i].page == page]
                if members:
                    tag = f"{a.sprite}/{a.name}"
                    tags.append(
                        {
                            "name": tag,
                            "from": len(rows),
                            "to": len(rows) + len(members) - 1,
                            "direction": a.playback,
                            "color": "#000000ff",
                        }
                        | ({"repeat": str(a.repeat)} if a.repeat else {})  # as Aseprite writes it
                    )
                    rows += [(i, tag, k, ms) for k, (i, ms) in enumerate(members)]
            fps_of = {(a.sprite, a.name): a.fps for a in atlas.animations}
            for i, f in enumerate(atlas.frames):
                if f.page == page and f.animation is None:
                    rows.append((i, "", 0, 1000.0 / fps_of.get((f.sprite, ""), 10.0)))
            entries, seen = [], {}
            for n, (i, tag, tagframe, ms) in enumerate(rows):
                f = atlas.frames[i]
                duration = int(round(ms))
                name = format_filename(fmt, FrameNaming(n, tagframe, f.sprite, tag, duration, export_dir(context)))
                if name in seen:
                    raise InvalidInput(
                        Diagnostic(
                            f"frame names collide in {atlas.name}_{page}.json: '{name}' names both "
                            f"{atlas.frames[seen[name]].key} and {f.key}",
                            key="export.aseprite.filename_format",
                            stage="export",
                            expected="a format that names every frame differently (with {frame} or {tag} and {tagframe})",
                            found=repr(fmt),
                        )
                    )
                seen[name] = i
                entries.append({"filename": name, **frame_entry(f), "duration": duration})
            w, h = page_size(atlas, page)
            doc = {
                "frames": entries,
                "meta": {
                    "app": "https://www.aseprite.org/",
                    "version": "1.3",
                    "image": atlas.page_name(page),
                    "format": "RGBA8888",
                    "size": {"w": w, "h": h},
                    "scale": "1",
                    "frameTags": tags,
                    "layers": [{"name": "Layer", "opacity": 255, "blendMode": "normal"}],
                    "slices": self._slices(atlas, context, rows),
                },
            }
            sprites = tuple(dict.fromkeys(atlas.frames[i].sprite for i, *_ in rows))
            files[f"{atlas.name}_{page}.json"] = OutputFile(dump_json(doc), "metadata", sprites, atlas.name)
        return files

    @staticmethod
    def _slices(atlas: PackedAtlas, context: ExportContext, rows) -> list[dict]:
        """Aseprite ``meta.slices`` for the sprites in this file: each manifest slice as
        ``<sprite>/<slice>`` (bounds, 9-slice ``center`` and ``pivot`` relative to the
        bounds, ``data``), keyed at the sprite's first frame here; a sprite's pivot as a
        slice named ``<sprite>`` covering the frame, one key per animation with its own."""
        first: dict[str, int] = {}
        first_of_anim: dict[tuple[str, str | None], int] = {}
        for n, (i, *_rest) in enumerate(rows):
            f = atlas.frames[i]
            first.setdefault(f.sprite, n)
            first_of_anim.setdefault((f.sprite, f.animation), n)
        out = []
        for sprite, start in first.items():
            spec = sprite_spec(context, sprite)
            if spec is None:
                continue
            for sl in spec.slices:
                key = {"frame": start, "bounds": _rect(*sl.rect)}
                if sl.center is not None:
                    key["center"] = _rect(*sl.center)
                if sl.pivot is not None:
                    key["pivot"] = {"x": sl.pivot[0], "y": sl.pivot[1]}
                entry = {"name": f"{sprite}/{sl.name}", "color": "#0000ffff"}
                if sl.data:
                    entry["data"] = sl.data
                out.append(entry | {"keys": [key]})
            if spec.pivot is not None or any(a.pivot is not None for a in spec.animations):
                keys = []
                for (s, animation), n in sorted(first_of_anim.items(), key=lambda item: item[1]):
                    if s == sprite:
                        px, py = spec.pivot_of(animation)
                        keys.append(
                            {
                                "frame": n,
                                "bounds": _rect(0, 0, spec.width, spec.height),
                                "pivot": {"x": int(round(px)), "y": int(round(py))},
                            }
                        )
                out.append({"name": sprite, "color": "#0000ffff", "keys": keys})
        return out


def _format_expected(value: str) -> str | None:
    """What ``filename_format`` must be, when ``value`` is not it (its Field check)."""
    problem = filename_format_problem(value)
    if problem is None:
        return None
    return f"Aseprite tokens: {' '.join(f'{{{t}}}' for t in FILENAME_TOKENS)} ({problem})"
