"""The ``image`` generator: hand-drawn PNGs, single frames or sheets sliced by grid.

A sheet is read row by row, left to right; an animated sprite takes its frames in
manifest order (all of the first animation, then the next …). A cell that is larger
than the sprite is collapsed with the pixelize stage when the sprite asks for it
(``pixelize = {…}``), otherwise the sizes must match. Frames are returned unlocked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ..errors import Diagnostic, InvalidInput

VERSION = 1


class ImageGenerator:
    name: ClassVar[str] = "image"
    needs_lock: ClassVar[bool] = False

    def _source(self, request) -> Path:
        return (request.root / request.options["source"]).resolve()

    def input_files(self, request) -> list[Path]:
        return [self._source(request)] if "source" in request.options else []

    def validate(self, request) -> list[Diagnostic]:
        if "source" not in request.options:
            return [
                Diagnostic("the image generator needs a source image", key="source", expected='source = "art/hero.png"')
            ]
        path = self._source(request)
        try:
            path.relative_to(request.root)
        except ValueError:
            return [
                Diagnostic("source image is outside the project root", key="source", found=request.options["source"])
            ]
        if not path.is_file():
            return [
                Diagnostic(
                    f"source image not found: {request.options['source']}", key="source", hint=f"looked for {path}"
                )
            ]
        try:
            with Image.open(path) as im:
                width, height = im.size
                im.verify()
        except Exception as exc:  # noqa: BLE001 - any decoder error is bad input
            return [Diagnostic(f"source image cannot be read: {exc}", key="source", found=request.options["source"])]
        cell = tuple(request.options.get("grid") or (width, height))
        cells = (width // cell[0]) * (height // cell[1])
        problems = []
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

    def cache_key(self, request) -> Mapping[str, Any]:
        digest = hashlib.sha256(self._source(request).read_bytes()).hexdigest()
        return {
            "generator": self.name,
            "version": VERSION,
            "source": digest,
            "grid": list(request.options.get("grid") or []),
            "size": [request.width, request.height],
            "frames": len(request.frames),
            "pixelize": request.options.get("pixelize"),
        }

    def generate(self, requests: Sequence) -> list[list[np.ndarray]]:
        return [self._frames(r) for r in requests]

    def _frames(self, request) -> list[np.ndarray]:
        problems = self.validate(request)
        if problems:
            raise InvalidInput(
                [
                    Diagnostic(p.message, key=p.key, sprite=request.sprite, stage="generate", hint=p.hint)
                    for p in problems
                ]
            )
        with Image.open(self._source(request)) as im:
            sheet = np.asarray(im.convert("RGBA"))
        ch, cw = (request.options.get("grid") or (sheet.shape[1], sheet.shape[0]))[::-1]
        columns = sheet.shape[1] // cw
        frames = []
        for i in range(max(1, len(request.frames))):
            row, col = divmod(i, columns)
            cell = sheet[row * ch : (row + 1) * ch, col * cw : (col + 1) * cw]
            if (cw, ch) != (request.width, request.height):
                from ..process.pixelize import pixelize

                opts = dict(request.options.get("pixelize") or {})
                cell = pixelize(
                    cell, target_size=(request.width, request.height), background=opts.get("background", "auto")
                )
            frames.append(np.ascontiguousarray(cell, dtype=np.uint8))
        return frames
