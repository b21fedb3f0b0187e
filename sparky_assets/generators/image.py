"""The ``image`` generator: hand-drawn PNGs, single frames or sheets sliced by grid.

A sheet is read row by row, left to right; an animated sprite takes its frames in
manifest order (all of the first animation, then the next …). A cell that is larger
than the sprite is collapsed with the pixelize stage when the sprite asks for it
(``pixelize = {…}``), otherwise the sizes must match. Frames are returned unlocked.

Sources are untrusted files: a symlink loop, a decoder error (truncated data, a
decompression bomb) or a sheet over :data:`MAX_SOURCE_PIXELS` is bad input (exit 2),
found by :meth:`ImageGenerator.validate` from the header before anything is decoded.
16-bit greyscale PNGs are scaled to 8 bits (Pillow's own conversion clips them to
white); multi-frame files (GIF, APNG) use their first frame.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ..errors import Diagnostic, InvalidInput
from ..images import ImageTooLarge, open_checked, rgba_array
from ..manifest.fields import Field
from ..pipeline.safepath import real_path
from ..reads import ReadContext, ensure_reads
from .base import Generator
from .options import PIXELIZE_FIELDS, pixelize_arguments

VERSION = 2
MAX_SOURCE_PIXELS = 4096 * 4096 * 2
"""Largest source sheet read (128 MiB as RGBA): a bigger image is refused, not decoded."""


class ImageGenerator(Generator):
    name: ClassVar[str] = "image"
    doc: ClassVar[str] = "Hand-drawn PNGs: one frame, or a sheet sliced by `grid` (the default when `source` is set)."
    needs_lock: ClassVar[bool] = False
    option_fields: ClassVar[dict[str, Field]] = {
        "source": Field("path", "Hand-drawn PNG (a single frame or a sheet sliced by `grid`).", required=True),
        "grid": Field("pair", "Cell size `[w, h]` for slicing `source`; frames are read row by row."),
        "pixelize": Field(
            "table",
            'Collapse cells larger than the sprite: `{ grid = [8, 8], background = "auto" }`.',
            fields=PIXELIZE_FIELDS,
        ),
    }

    def _source(self, request) -> Path:
        """The source with symlinks resolved; ``ValueError`` for a loop or a NUL byte."""
        try:
            return real_path(request.root / request.options["source"])
        except (OSError, RuntimeError, ValueError) as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def default_size(cls, options, root: Path, reads: ReadContext) -> tuple[int, int] | None:
        """The grid cell, or the whole image (read through ``reads``: its change changes the size)."""
        if "source" not in options or "pixelize" in options:
            return None
        if "grid" in options:
            return tuple(options["grid"])
        try:
            path = real_path(root / options["source"])
            if not path.is_relative_to(root):
                return None  # reported by validate
            with Image.open(io.BytesIO(reads.read_bytes(path))) as im:
                return im.size
        except Exception:  # noqa: BLE001 - a missing, looping or broken file is reported by validate
            return None

    def validate(self, request, reads: ReadContext | None = None) -> list[Diagnostic]:
        reads = ensure_reads(reads)
        if "source" not in request.options:
            return [
                Diagnostic("the image generator needs a source image", key="source", expected='source = "art/hero.png"')
            ]
        problems: list[Diagnostic] = []
        try:
            path = self._source(request)
        except ValueError as exc:
            return [
                *problems,
                Diagnostic(
                    f"source image cannot be resolved: {exc}", key="source", found=repr(request.options["source"])
                ),
            ]
        try:
            path.relative_to(request.root)
        except ValueError:
            return [
                Diagnostic("source image is outside the project root", key="source", found=request.options["source"])
            ]
        if not reads.is_file(path):
            return [
                Diagnostic(
                    f"source image not found: {request.options['source']}", key="source", hint=f"looked for {path}"
                )
            ]
        try:
            with open_checked(io.BytesIO(reads.read_bytes(path)), MAX_SOURCE_PIXELS) as im:
                width, height = im.size
                im.verify()
        except ImageTooLarge as exc:
            return [*problems, Diagnostic(f"source {exc}", key="source", hint="cut the sheet into smaller sheets")]
        except Exception as exc:  # noqa: BLE001 - any decoder error is bad input
            return [
                *problems,
                Diagnostic(f"source image cannot be read: {exc}", key="source", found=request.options["source"]),
            ]
        cell = tuple(request.options.get("grid") or (width, height))
        cells = (width // cell[0]) * (height // cell[1])
        if width % cell[0] or height % cell[1]:
            problems.append(
                Diagnostic(f"image {width}x{height} is not a whole number of {cell[0]}x{cell[1]} cells", key="grid")
            )
        if len(request.frames) > cells:
            problems.append(
                Diagnostic(
                    f"sheet has {cells} cells of {cell[0]}x{cell[1]}, the animations need {len(request.frames)}",
                    key="animations",
                    expected=f"at most {cells} frames",
                    found=str(len(request.frames)),
                )
            )
        if cell != (request.width, request.height) and "pixelize" not in request.options:
            problems.append(
                Diagnostic(
                    f"cell size {cell[0]}x{cell[1]} differs from sprite size {request.width}x{request.height}",
                    key="size",
                    hint="set size to the cell size, or add pixelize = {} to collapse large cells",
                )
            )
        return problems

    def cache_key(self, request, reads: ReadContext | None = None) -> Mapping[str, Any]:
        digest = hashlib.sha256(ensure_reads(reads).read_bytes(self._source(request))).hexdigest()
        return {
            "generator": self.name,
            "version": VERSION,
            "source": digest,
            "grid": list(request.options.get("grid") or []),
            "size": [request.width, request.height],
            "frames": len(request.frames),
            "pixelize": request.options.get("pixelize"),
        }

    def generate(self, requests: Sequence, reads: ReadContext | None = None) -> list[list[np.ndarray]]:
        reads = ensure_reads(reads)
        return [self._frames(r, reads) for r in requests]

    def _frames(self, request, reads: ReadContext) -> list[np.ndarray]:
        problems = self.validate(request, reads)
        if problems:
            raise InvalidInput(
                [
                    Diagnostic(p.message, key=p.key, sprite=request.sprite, stage="generate", hint=p.hint)
                    for p in problems
                ]
            )
        try:
            with open_checked(io.BytesIO(reads.read_bytes(self._source(request))), MAX_SOURCE_PIXELS) as im:
                sheet = rgba_array(im)
        except Exception as exc:  # noqa: BLE001 - truncated data and other decoder errors are bad input
            raise InvalidInput(
                Diagnostic(
                    f"source image cannot be decoded: {exc}",
                    key="source",
                    sprite=request.sprite,
                    stage="generate",
                    found=repr(request.options["source"]),
                )
            ) from None
        ch, cw = (request.options.get("grid") or (sheet.shape[1], sheet.shape[0]))[::-1]
        columns = sheet.shape[1] // cw
        frames = []
        for i in range(max(1, len(request.frames))):
            row, col = divmod(i, columns)
            cell = sheet[row * ch : (row + 1) * ch, col * cw : (col + 1) * cw]
            if (cw, ch) != (request.width, request.height):
                from ..process.pixelize import pixelize

                cell = pixelize(
                    cell,
                    target_size=(request.width, request.height),
                    **pixelize_arguments(dict(request.options.get("pixelize") or {})),
                )
            frames.append(np.ascontiguousarray(cell, dtype=np.uint8))
        return frames
