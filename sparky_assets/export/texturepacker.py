"""TexturePacker "JSON (Hash)" export, one file per page (Phaser, PixiJS, Defold …).

Fields are exactly those TexturePacker writes for the hash layout; ``animations``
(frame-name lists per ``sprite/animation``) is the extension PixiJS and Phaser read. An
animation with timing or a playback direction lists its frames in the order one cycle
plays them (``pingpong`` over a b c: a b c b — names repeat, pixels are stored once).
Animation frames carry ``duration`` in ms, as Aseprite's json-hash (TexturePacker-
compatible) writes it. ``pivot`` is the frame's pivot as a fraction of its source size
(0.5, 0.5 unless set); a sprite with a 9-slice slice gets ``scale9Borders`` (its centre,
in frame pixels), both as TexturePacker writes them and Phaser reads them.
"""

from __future__ import annotations

from typing import ClassVar

from ..manifest.fields import Field
from ..pack.atlas import PackedAtlas
from .base import (
    ExportContext,
    Exporter,
    OutputFile,
    dir_field,
    dump_json,
    frame_pivot,
    nine_slice,
    page_files,
    page_size,
)


def frame_entry(f) -> dict:
    return {
        "frame": {"x": f.x, "y": f.y, "w": f.w, "h": f.h},
        "rotated": False,
        "trimmed": f.trimmed,
        "spriteSourceSize": {"x": f.offset_x, "y": f.offset_y, "w": f.w, "h": f.h},
        "sourceSize": {"w": f.source_w, "h": f.source_h},
    }


class TexturePackerExporter(Exporter):
    name: ClassVar[str] = "texturepacker"
    version: ClassVar[int] = 3  # 3: durations, animations in play order
    doc: ClassVar[str] = "TexturePacker JSON (hash): Phaser, PixiJS, most engines."
    option_fields: ClassVar[dict[str, Field]] = dir_field("TexturePacker JSON (hash) files")

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]:
        files = page_files(atlas, context)
        for page in range(len(atlas.pages)):
            duration = {i: ms for a in atlas.animations for i, ms in zip(a.frames, a.frame_ms())}
            frames = {}
            for i, f in enumerate(atlas.frames):
                if f.page == page:
                    pivot = frame_pivot(context, f.sprite, f.animation)
                    px, py = (0.5, 0.5) if pivot is None else (pivot[0] / f.source_w, pivot[1] / f.source_h)
                    frames[f.key] = {**frame_entry(f), "pivot": {"x": round(px, 6), "y": round(py, 6)}}
                    sl = nine_slice(context, f.sprite)
                    if sl is not None:  # TexturePacker's 9-patch: the stretching centre, frame pixels
                        (sx, sy, _, _), (cx, cy, cw, ch) = sl.rect, sl.center
                        frames[f.key]["scale9Borders"] = {"x": sx + cx, "y": sy + cy, "w": cw, "h": ch}
                    if i in duration:
                        frames[f.key]["duration"] = int(round(duration[i]))
            animations = {
                f"{a.sprite}/{a.name}": [atlas.frames[a.frames[k]].key for k in a.cycle()]
                for a in atlas.animations
                if all(atlas.frames[i].page == page for i in a.frames)
            }
            w, h = page_size(atlas, page)
            doc = {
                "frames": frames,
                "animations": animations,
                "meta": {
                    "app": "https://www.codeandweb.com/texturepacker",
                    "version": "1.0",
                    "image": atlas.page_name(page),
                    "format": "RGBA8888",
                    "size": {"w": w, "h": h},
                    "scale": "1",
                },
            }
            sprites = tuple(dict.fromkeys(f.sprite for f in atlas.frames if f.page == page))
            files[f"{atlas.name}_{page}.json"] = OutputFile(dump_json(doc), "metadata", sprites, atlas.name)
        return files
