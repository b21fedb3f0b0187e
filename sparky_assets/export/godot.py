"""Godot 4 export: ``.tres`` text resources (``format=3``) plus the page PNGs.

An animated sprite becomes a ``SpriteFrames`` resource with one ``AtlasTexture``
sub-resource per frame (per-frame ``duration`` relative to the animation's ``speed`` = fps;
``reverse``/``pingpong`` animations list their frames in play order, textures shared); a still sprite becomes an ``AtlasTexture`` resource. Textures
are referenced as ``res://<dir>/<atlas>_<page>.png``. Resource ``uid`` s and ids are
derived from paths and contents, so rebuilding gives byte-identical files.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from ..manifest.fields import Field
from ..pack.atlas import PackedAtlas, PackedFrame
from .base import ExportContext, Exporter, OutputFile, directional_clips, export_dir, page_files, quoted, sprite_spec

# Godot's ResourceUID::id_to_text: base 34, digits 'a'..'y' then '0'..'8'
_UID_CHARS = "abcdefghijklmnopqrstuvwxy012345678"


def godot_uid(seed: str) -> str:
    """A ``uid://…`` in Godot's text form (base 34 of a 63-bit id), stable for ``seed``."""
    n = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") & ((1 << 63) - 1)
    text = ""
    while True:
        text = _UID_CHARS[n % 34] + text
        n //= 34
        if n == 0:
            return "uid://" + text


def _num(value: float) -> str:
    return repr(float(value))


class GodotExporter(Exporter):
    name: ClassVar[str] = "godot"
    version: ClassVar[int] = 2  # 2: per-frame durations, frames in play order
    doc: ClassVar[str] = "Godot 4 `.tres` SpriteFrames / AtlasTexture resources and page PNGs."
    option_fields: ClassVar[dict[str, Field]] = {
        "project": Field(
            "str", "Godot project root (the folder with `project.godot`), inside the sparky project.", required=True
        ),
        "dir": Field("str", "Folder under the Godot project for the exported files (`res://<dir>/…`).", "sprites"),
    }
    root_key: ClassVar[str] = "project"
    subdir_key: ClassVar[str | None] = "dir"

    def export(self, atlas: PackedAtlas, context: ExportContext) -> dict[str, OutputFile]:
        prefix = "res://" + export_dir(context)
        files = page_files(atlas, context, engine_prefix=prefix)
        for sprite in atlas.sprites:
            anims = [a for a in atlas.animations if a.sprite == sprite]
            path = f"{sprite}.tres"
            placement = self._placement(atlas, sprite_spec(context, sprite), sprite)
            if anims:
                text = self._sprite_frames(
                    atlas, sprite, anims, prefix, path, directional_clips(context, sprite), placement
                )
                kind = "sprite-frames"
            else:
                frame = next(f for f in atlas.frames if f.sprite == sprite)
                text = self._atlas_texture(atlas, frame, prefix, path, placement)
                kind = "atlas-texture"
            files[path] = OutputFile(text.encode(), kind, (sprite,), atlas.name, prefix + path)
        return files

    def _ext_resources(self, atlas: PackedAtlas, pages: list[int], prefix: str) -> tuple[list[str], dict[int, str]]:
        lines, ids = [], {}
        for n, page in enumerate(pages, start=1):
            ids[page] = f"{n}_{hashlib.sha256(atlas.page_name(page).encode()).hexdigest()[:5]}"
            lines.append(f'[ext_resource type="Texture2D" path="{prefix}{atlas.page_name(page)}" id="{ids[page]}"]')
        return lines, ids

    @staticmethod
    def _region(frame: PackedFrame) -> list[str]:
        lines = [f"region = Rect2({frame.x}, {frame.y}, {frame.w}, {frame.h})"]
        if frame.trimmed:
            lines.append(
                f"margin = Rect2({frame.offset_x}, {frame.offset_y}, {frame.source_w - frame.w}, {frame.source_h - frame.h})"
            )
        return lines

    @staticmethod
    def _placement(atlas: PackedAtlas, spec, sprite: str):
        """Metadata lines (given the page ids) for a sprite's pivot and slices, or None.

        ``pivot`` is in frame pixels; ``offset`` is what an ``AnimatedSprite2D`` /
        ``Sprite2D`` with ``centered = true`` needs so its position is the pivot
        (``offsets`` per animation where one sets its own); ``slices`` are ``Rect2`` in
        frame pixels; ``nine_slices`` give a ``NinePatchRect`` its ``texture``,
        ``region_rect`` (page pixels, the sprite's first frame) and patch margins."""
        if spec is None or not spec.placed:
            return None
        first = atlas.frames[atlas.sprite_frames(sprite)[0]]

        def lines(ids: dict[int, str]) -> list[str]:
            out = []
            w, h = spec.width, spec.height

            def vec(x, y):
                return f"Vector2({_num(x)}, {_num(y)})"

            if spec.pivot is not None or any(a.pivot is not None for a in spec.animations):
                px, py = spec.pivot_of(None)
                out += [f"metadata/pivot = {vec(px, py)}", f"metadata/offset = {vec(w / 2 - px, h / 2 - py)}"]
                own = [a for a in spec.animations if a.pivot is not None]
                if own:
                    table = ", ".join(f"{quoted(a.name)}: {vec(w / 2 - a.pivot[0], h / 2 - a.pivot[1])}" for a in own)
                    out.append(f"metadata/offsets = {{{table}}}")
            if spec.slices:
                table = ", ".join(f"{quoted(sl.name)}: Rect2({', '.join(map(str, sl.rect))})" for sl in spec.slices)
                out.append(f"metadata/slices = {{{table}}}")
                nine = [sl for sl in spec.slices if sl.center is not None]
                if nine:
                    rows = []
                    for sl in nine:
                        x, y, rw, rh = sl.rect
                        region = f"Rect2({first.x - first.offset_x + x}, {first.y - first.offset_y + y}, {rw}, {rh})"
                        margins = ", ".join(map(str, sl.borders()))
                        rows.append(
                            f'{quoted(sl.name)}: {{"texture": ExtResource("{ids[first.page]}"), "region": {region}, '
                            f'"margins": PackedInt32Array({margins})}}'
                        )
                    out.append(f"metadata/nine_slices = {{{', '.join(rows)}}}")
            return out

        return first.page, lines

    def _atlas_texture(self, atlas: PackedAtlas, frame: PackedFrame, prefix: str, path: str, placement=None) -> str:
        ext, ids = self._ext_resources(atlas, [frame.page], prefix)
        out = [
            f'[gd_resource type="AtlasTexture" load_steps=2 format=3 uid="{godot_uid(prefix + path)}"]',
            "",
            *ext,
            "",
            "[resource]",
            f'atlas = ExtResource("{ids[frame.page]}")',
            *self._region(frame),
            *(placement[1](ids) if placement else []),
            "",
        ]
        return "\n".join(out)

    @staticmethod
    def _direction_metadata(facings: tuple[str, ...], clips: dict[str, tuple[str, str]]) -> list[str]:
        """Object metadata for sprites with directions: the facings and, per
        animation, its clip names in facing order — ``get_meta("directions")``,
        ``get_meta("clips")["walk"]["ne"] == "walk_ne"``."""
        if not facings:
            return []
        by_animation: dict[str, list[tuple[str, str]]] = {}
        for name, (base, direction) in clips.items():
            by_animation.setdefault(base, []).append((direction, name))
        table = ", ".join(
            f"{quoted(base)}: {{{', '.join(f'{quoted(d)}: {quoted(n)}' for d, n in pairs)}}}"
            for base, pairs in by_animation.items()
        )
        return [
            f"metadata/directions = PackedStringArray({', '.join(quoted(d) for d in facings)})",
            f"metadata/clips = {{{table}}}",
        ]

    def _sprite_frames(
        self, atlas: PackedAtlas, sprite: str, anims, prefix: str, path: str, facings=((), {}), placement=None
    ) -> str:
        frame_ids = [i for a in anims for i in a.frames]
        pages = sorted({atlas.frames[i].page for i in frame_ids} | ({placement[0]} if placement else set()))
        ext, ids = self._ext_resources(atlas, pages, prefix)
        subs, sub_id = [], {}
        for n, i in enumerate(frame_ids, start=1):
            f = atlas.frames[i]
            sid = f"AtlasTexture_{n}"  # unique within the resource, stable between builds
            sub_id[i] = sid
            subs += [
                f'[sub_resource type="AtlasTexture" id="{sid}"]',
                f'atlas = ExtResource("{ids[f.page]}")',
                *self._region(f),
                "",
            ]
        load_steps = len(ext) + len(frame_ids) + 1
        anim_text = []
        for a in anims:
            # SpriteFrames plays forward only: a cycle lists frames in play order (sharing their
            # AtlasTexture), and a frame's duration is relative to the animation's speed (fps)
            ms = a.frame_ms()
            frames = ",\n".join(
                f'{{\n"duration": {_num(round(ms[k] * a.fps / 1000.0, 6))},\n"texture": SubResource("{sub_id[a.frames[k]]}")\n}}'
                for k in a.cycle()
            )
            anim_text.append(
                "{\n"
                f'"frames": [{frames}],\n'
                f'"loop": {"true" if a.loop else "false"},\n'
                f'"name": &{quoted(a.name)},\n'
                f'"speed": {_num(a.fps)}\n'
                "}"
            )
        out = [
            f'[gd_resource type="SpriteFrames" load_steps={load_steps} format=3 uid="{godot_uid(prefix + path)}"]',
            "",
            *ext,
            "",
            *subs,
            "[resource]",
            f"animations = [{', '.join(anim_text)}]",
            *self._direction_metadata(*facings),
            *(placement[1](ids) if placement else []),
            "",
        ]
        return "\n".join(out)
