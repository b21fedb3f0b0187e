"""TexturePacker "JSON (Hash)" export, one file per page (Phaser, PixiJS, Defold …).

Fields are exactly those TexturePacker writes for the hash layout; ``animations``
(frame-name lists per ``sprite/animation``) is the extension PixiJS and Phaser read. An
animation with timing or a playback direction lists its frames in the order one cycle
plays them (``pingpong`` over a b c: a b c b — names repeat, pixels are stored once).
Animation frames carry ``duration`` in ms, as Aseprite's json-hash (TexturePacker-
compatible) writes it.
"""

from __future__ import annotations

from typing import ClassVar

from ..manifest.fields import Field
from ..pack.atlas import PackedAtlas
from .base import ExportContext, Exporter, OutputFile, dir_field, dump_json, page_files, page_size


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
                    frames[f.key] = {**frame_entry(f), "pivot": {"x": 0.5, "y": 0.5}}
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
