"""Bevy export: ``<atlas>.atlas.ron`` (read by ``bevy_sparky``'s loader) plus pages.

The layout follows Bevy's ``TextureAtlasLayout``: per page, ``size`` and ``textures``
as ``URect`` (min inclusive, max exclusive, top-left origin). The format is specified
in docs/formats.md. Output is deterministic (sorted maps, fixed float formatting).
"""

from __future__ import annotations

from typing import ClassVar

from ..manifest.fields import Field
from ..pack.atlas import PackedAtlas
from .base import (
    ExportContext,
    Exporter,
    OutputFile,
    directional_clips,
    export_dir,
    page_files,
    page_size,
    quoted,
    sprite_spec,
)


def _point(p) -> str:
    return f"({float(p[0])!r}, {float(p[1])!r})"


class BevyExporter(Exporter):
    name: ClassVar[str] = "bevy"
    version: ClassVar[int] = 2  # 2: clip durations (ms) and playback
    doc: ClassVar[str] = "An atlas file for the `bevy_sparky` crate (layout, pages, animation clips) and page PNGs."
    option_fields: ClassVar[dict[str, Field]] = {
        "assets": Field("str", "The Bevy game's `assets/` folder, inside the sparky project.", required=True),
        "dir": Field("str", "Folder under `assets/` for the exported files.", "sprites"),
    }
    root_key: ClassVar[str] = "assets"
    subdir_key: ClassVar[str | None] = "dir"

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]:
        prefix = export_dir(context)
        files = page_files(atlas, context, engine_prefix=prefix)
        lines = ["(", "    format: 1,", f"    name: {quoted(atlas.name)},", "    pages: ["]
        for page, rects in enumerate(atlas.rects):
            w, h = page_size(atlas, page)
            lines += [
                "        (",
                f"            image: {quoted(atlas.page_name(page))},",
                f"            size: ({w}, {h}),",
                "            rects: [",
            ]
            lines += [f"                (min: ({x}, {y}), max: ({x + rw}, {y + rh}))," for x, y, rw, rh in rects]
            lines += ["            ],", "        ),"]
        lines += ["    ],", "    frames: ["]
        for f in atlas.frames:
            anim = quoted(f.animation) if f.animation is not None else '""'
            lines.append(
                f"        (sprite: {quoted(f.sprite)}, animation: {anim}, frame: {f.frame}, page: {f.page}, index: {f.slot}, "
                f"offset: ({f.offset_x}, {f.offset_y}), source_size: ({f.source_w}, {f.source_h})),"
            )
        lines += ["    ],", "    sprites: {"]
        for sprite in sorted(atlas.sprites):
            idx = atlas.sprite_frames(sprite)
            first = atlas.frames[idx[0]]
            facings, directional = directional_clips(context, sprite)
            lines += [
                f"        {quoted(sprite)}: (",
                f"            size: ({first.source_w}, {first.source_h}),",
                f"            frames: [{', '.join(map(str, idx))}],",
            ]
            if facings:  # only for sprites with directions: other files stay byte-identical
                lines.append(f"            directions: [{', '.join(quoted(d) for d in facings)}],")
            spec = sprite_spec(context, sprite)
            own_pivot = {a.name: a.pivot for a in spec.animations if a.pivot is not None} if spec else {}
            if spec is not None and spec.pivot is not None:
                lines.append(f"            pivot: {_point(spec.pivot)},")
            if spec is not None and spec.slices:
                lines.append("            slices: {")
                for sl in sorted(spec.slices, key=lambda sl: sl.name):
                    extra = "".join(
                        f", {name}: Some(({', '.join(map(str, value))}))"
                        for name, value in (("center", sl.center), ("pivot", sl.pivot))
                        if value is not None
                    )
                    if sl.data:
                        extra += f", data: {quoted(sl.data)}"
                    lines.append(f"                {quoted(sl.name)}: (rect: ({', '.join(map(str, sl.rect))}){extra}),")
                lines.append("            },")
            lines.append("            clips: {")
            for a in sorted((a for a in atlas.animations if a.sprite == sprite), key=lambda a: a.name):
                facing = ""
                if a.name in directional:
                    base, direction = directional[a.name]
                    facing = f", animation: {quoted(base)}, direction: {quoted(direction)}"
                timing = ""
                if a.durations:
                    timing += f", durations: [{', '.join(repr(round(ms, 3)) for ms in a.durations)}]"
                if a.playback != "forward":
                    timing += f", playback: {quoted(a.playback)}"
                if a.repeat:
                    timing += f", repeat: {a.repeat}"
                if a.name in own_pivot:
                    timing += f", pivot: Some({_point(own_pivot[a.name])})"
                lines.append(
                    f"                {quoted(a.name)}: (frames: [{', '.join(map(str, a.frames))}], "
                    f"fps: {float(a.fps)!r}, looping: {'true' if a.loop else 'false'}{facing}{timing}),"
                )
            lines += ["            },", "        ),"]
        lines += ["    },", ")", ""]
        path = f"{atlas.name}.atlas.ron"
        files[path] = OutputFile("\n".join(lines).encode(), "atlas", atlas.sprites, atlas.name, prefix + path)
        return files
