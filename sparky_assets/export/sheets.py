"""The always-on ``sheets`` target: page PNGs and a plain JSON description.

The JSON is sparky-assets' own, documented in docs/formats.md's target table; it
mirrors the packed atlas one to one and is what the build report and tests read.
"""

from __future__ import annotations

from typing import ClassVar

from ..pack.atlas import PackedAtlas
from .base import ExportContext, Exporter, OutputFile, dump_json, page_files, page_size


class SheetsExporter(Exporter):
    name: ClassVar[str] = "sheets"
    version: ClassVar[int] = 3  # 3: durations and direction of timed animations
    doc: ClassVar[str] = "Page PNGs and a plain JSON description under `<project.out>/sheets` (always written)."
    always: ClassVar[bool] = True

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]:
        files = page_files(atlas, context)
        doc = {
            "format": 1,
            "atlas": atlas.name,
            "pages": [
                {"image": atlas.page_name(p), "size": list(page_size(atlas, p))} for p in range(len(atlas.pages))
            ],
            "frames": [
                {
                    "sprite": f.sprite,
                    "animation": f.animation,
                    "frame": f.frame,
                    "page": f.page,
                    "rect": [f.x, f.y, f.w, f.h],
                    "offset": [f.offset_x, f.offset_y],
                    "source_size": [f.source_w, f.source_h],
                }
                for f in atlas.frames
            ],
            "animations": [
                {"sprite": a.sprite, "name": a.name, "fps": a.fps, "loop": a.loop, "frames": list(a.frames)}
                | ({"durations_ms": list(a.frame_ms()), "direction": a.playback, "repeat": a.repeat} if a.timed else {})
                for a in atlas.animations
            ],
        }
        for a in atlas.animations:  # per-frame timing, read by the preview (only where set: other files unchanged)
            if a.timed:
                for i, ms in zip(a.frames, a.frame_ms()):
                    doc["frames"][i]["duration_ms"] = ms
        files[f"{atlas.name}.json"] = OutputFile(dump_json(doc), "metadata", atlas.sprites, atlas.name)
        return files
