"""Aseprite "json-array" export, one file per page (LÖVE, Phaser, PixiJS …).

What ``aseprite --sheet … --data … --format json-array --list-tags`` writes: frames as an
array with ``duration`` in ms, and ``meta.frameTags`` giving each animation's
``from``/``to`` range in that array. Frames are ordered so every animation is one range.
"""

from __future__ import annotations

from typing import ClassVar

from ..pack.atlas import PackedAtlas
from .base import ExportContext, OutputFile, dump_json, page_files, page_size
from .texturepacker import frame_entry


class AsepriteExporter:
    name: ClassVar[str] = "aseprite"
    version: ClassVar[int] = 2  # 2: one record per line (dump_json)

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]:
        files = page_files(atlas, context)
        fps_of = {(a.sprite, a.name): a.fps for a in atlas.animations}
        for page in range(len(atlas.pages)):
            frames, tags = [], []
            on_page = [i for i, f in enumerate(atlas.frames) if f.page == page]
            for a in atlas.animations:
                members = [i for i in a.frames if atlas.frames[i].page == page]
                if members:
                    tags.append(
                        {
                            "name": f"{a.sprite}/{a.name}",
                            "from": len(frames),
                            "to": len(frames) + len(members) - 1,
                            "direction": "forward",
                            "color": "#000000ff",
                        }
                    )
                    for i in members:
                        frames.append((i, a.fps))
            for i in on_page:
                f = atlas.frames[i]
                if f.animation is None:
                    frames.append((i, None))
            entries = []
            for i, fps in frames:
                f = atlas.frames[i]
                fps = fps or fps_of.get((f.sprite, f.animation or ""), 10.0)
                entries.append({"filename": f.key, **frame_entry(f), "duration": int(round(1000 / fps))})
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
                    "slices": [],
                },
            }
            sprites = tuple(dict.fromkeys(atlas.frames[i].sprite for i in on_page))
            files[f"{atlas.name}_{page}.json"] = OutputFile(dump_json(doc), "metadata", sprites, atlas.name)
        return files
