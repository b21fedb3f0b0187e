"""The ``aseprite`` generator: ``.aseprite``/``.ase`` files as sources (chosen when a
sprite's ``source`` has one of those suffixes).

What the file says becomes the sprite: the canvas is its size; its tags become its
animations (direction, ``repeat`` → ``loop``, per-frame durations) unless the manifest
names ``animations`` (then frames are taken in file order); a file without tags is one
animation ``default`` (or a still for one frame); its slices (the key at the first
frame: bounds, 9-slice centre, pivot, user data) join the manifest's ``slices``. Frames
are the visible layers flattened (``layers = [...]`` picks layers or groups by name).

Invariants: the file is read only through the build's :class:`ReadContext` (so
``watch`` rebuilds when it is saved, and reuse checks it); everything the output
depends on (the file's digest, the chosen layers, the requested frames) is in the
cache key. A malformed file is bad input (exit 2), never a crash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import Diagnostic, InvalidInput, suggest
from ..manifest.fields import Field
from ..pipeline.safepath import real_path
from ..reads import ReadContext, ensure_reads
from .aseprite_file import AsepriteError, AsepriteFile, compose, read_aseprite
from .base import Generator

VERSION = 1
SUFFIXES = (".aseprite", ".ase")


@dataclass(frozen=True)
class SourceClip:
    """One animation a file defines (a tag, or all frames)."""

    name: str
    frames: tuple[int, ...]
    """Frame numbers in the file, in order."""
    durations: tuple[float, ...]
    direction: str
    loop: bool
    repeat: int = 0
    """The tag's repeat count (0: forever)."""


@dataclass(frozen=True)
class SourceSlice:
    name: str
    rect: tuple[int, int, int, int]
    center: tuple[int, int, int, int] | None
    pivot: tuple[int, int] | None
    data: str


def _clean_name(name: str) -> str:
    """A tag or slice name as a valid sparky name (other characters become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name).replace("..", "_").lstrip(".")
    return cleaned or "_"


def source_clips(doc: AsepriteFile) -> list[SourceClip]:
    """The file's animations: one per tag (names made valid and unique), else one
    ``default`` over every frame when there are several."""
    clips: list[SourceClip] = []
    taken: set[str] = set()
    for tag in doc.tags:
        name, n = _clean_name(tag.name), 2
        while name in taken:
            name, n = f"{_clean_name(tag.name)}_{n}", n + 1
        taken.add(name)
        frames = tuple(range(tag.start, tag.end + 1))
        clips.append(
            SourceClip(
                name,
                frames,
                tuple(float(doc.durations[f]) for f in frames),
                tag.direction,
                loop=tag.repeat == 0,
                repeat=tag.repeat,
            )
        )
    if not clips and len(doc.durations) > 1:
        frames = tuple(range(len(doc.durations)))
        clips.append(SourceClip("default", frames, tuple(float(d) for d in doc.durations), "forward", True))
    return clips


def source_slices(doc: AsepriteFile) -> list[SourceSlice]:
    """Each slice's first key, kept when it lies inside the canvas."""
    out = []
    for sl in doc.slices:
        if not sl.keys:
            continue
        key = sl.keys[0]
        x, y, w, h = key.rect
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > doc.width or y + h > doc.height:
            continue
        out.append(SourceSlice(_clean_name(sl.name), key.rect, key.center, key.pivot, sl.data))
    return out


def layer_indices(doc: AsepriteFile, names: Sequence[str]) -> tuple[list[int], list[str]]:
    """Image layers for ``names`` (a group stands for every image layer in it), and
    the names that match no layer."""
    chosen, unknown = [], []
    for name in names:
        matches = [i for i, layer in enumerate(doc.layers) if layer.name == name]
        if not matches:
            unknown.append(name)
        for m in matches:
            for i in doc.image_layers():
                j: int | None = i
                while j is not None and j != m:
                    j = doc.layers[j].parent
                if j == m and i not in chosen:
                    chosen.append(i)
    return sorted(chosen), unknown


class AsepriteGenerator(Generator):
    name: ClassVar[str] = "aseprite"
    doc: ClassVar[str] = (
        "Aseprite files (`.aseprite`/`.ase`, the default for such a `source`): frames, tags as animations "
        "(direction, repeat, per-frame durations), layers, slices."
    )
    needs_lock: ClassVar[bool] = False
    option_fields: ClassVar[dict[str, Field]] = {
        "source": Field("path", "The `.aseprite`/`.ase` file.", required=True),
        "layers": Field(
            "str-list",
            "Layers (or groups) to draw, by name; default every visible layer, flattened bottom to top.",
        ),
        "split_layers": Field(
            "bool",
            "One sprite per visible layer, named `<sprite>_<layer>` (Aseprite's `--split-layers`); name them in "
            'an atlas with a glob (`"hero_*"`).',
        ),
    }

    @staticmethod
    def _path(root: Path, options: Mapping[str, Any]) -> Path:
        try:
            return real_path(root / options["source"])
        except (OSError, RuntimeError, ValueError) as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def read(cls, root: Path, options: Mapping[str, Any], reads: ReadContext) -> AsepriteFile:
        """The parsed file (read through ``reads``); ``AsepriteError``/``OSError``/``ValueError`` when it cannot be."""
        path = cls._path(root, options)
        if not path.is_relative_to(root):
            raise ValueError("outside the project root")
        return read_aseprite(reads.read_bytes(path), str(options["source"]))

    @classmethod
    def default_size(cls, options, root: Path, reads: ReadContext) -> tuple[int, int] | None:
        try:
            doc = cls.read(root, options, reads)
        except Exception:  # noqa: BLE001 - reported by validate
            return None
        return doc.width, doc.height

    @classmethod
    def source_layout(
        cls, options, root: Path, reads: ReadContext
    ) -> tuple[list[SourceClip], list[SourceSlice]] | None:
        """The animations and slices the file defines (None when it cannot be read:
        validate says why)."""
        try:
            doc = cls.read(root, options, reads)
        except Exception:  # noqa: BLE001 - reported by validate
            return None
        return source_clips(doc), source_slices(doc)

    @classmethod
    def source_layer_names(cls, options, root: Path, reads: ReadContext) -> list[tuple[str, str]]:
        """(layer name, sprite-name suffix) of each visible image layer, bottom to top
        (suffixes made valid and unique); empty when the file cannot be read."""
        try:
            doc = cls.read(root, options, reads)
        except Exception:  # noqa: BLE001 - reported by validate
            return []
        out, taken = [], set()
        for i in doc.image_layers():
            if doc.layer_visible(i):
                name = doc.layers[i].name
                suffix, n = _clean_name(name), 2
                while suffix in taken:
                    suffix, n = f"{_clean_name(name)}_{n}", n + 1
                taken.add(suffix)
                out.append((name, suffix))
        return out

    def validate(self, request, reads: ReadContext | None = None) -> list[Diagnostic]:
        reads = ensure_reads(reads)
        source = request.options.get("source")
        if source is None:
            return [Diagnostic("the aseprite generator needs a source", key="source", expected='"art/hero.aseprite"')]
        try:
            path = self._path(request.root, request.options)
        except ValueError as exc:
            return [Diagnostic(f"source cannot be resolved: {exc}", key="source", found=repr(source))]
        if not path.is_relative_to(request.root):
            return [Diagnostic("source is outside the project root", key="source", found=repr(source))]
        if not reads.is_file(path):
            return [Diagnostic(f"source not found: {source}", key="source", hint=f"looked for {path}")]
        try:
            doc = read_aseprite(reads.read_bytes(path), str(source))
        except AsepriteError as exc:
            return [Diagnostic(f"source cannot be read: {exc}", key="source", found=repr(source))]
        problems = []
        if (doc.width, doc.height) != (request.width, request.height):
            problems.append(
                Diagnostic(
                    f"canvas {doc.width}x{doc.height} differs from sprite size {request.width}x{request.height}",
                    key="size",
                    hint="leave size out: an Aseprite source's size is its canvas",
                )
            )
        needed = len(self._order(doc, request))
        if needed > len(doc.durations):
            problems.append(
                Diagnostic(
                    f"the file has {len(doc.durations)} frames, the animations need {needed}",
                    key="animations",
                    expected=f"at most {len(doc.durations)} frames, or no animations (the file's tags)",
                    found=str(needed),
                )
            )
        if "layers" in request.options:
            _, unknown = layer_indices(doc, request.options["layers"])
            if unknown:
                names = [layer.name for layer in doc.layers]
                problems.append(
                    Diagnostic(
                        f"no layer named '{unknown[0]}' in {source}",
                        key="layers",
                        expected=", ".join(names),
                        found=repr(unknown[0]),
                        hint=suggest(unknown[0], names),
                    )
                )
        return problems

    @staticmethod
    def _order(doc: AsepriteFile, request) -> list[int]:
        """File frame numbers for the requested frames: the tags' frames when the sprite's
        animations are the file's, else frames in file order."""
        wanted = list(dict.fromkeys(f.animation for f in request.frames))
        clips = source_clips(doc)
        if clips and wanted == [c.name for c in clips]:
            return [f for c in clips for f in c.frames]
        return list(range(max(1, len(request.frames))))

    def cache_key(self, request, reads: ReadContext | None = None) -> Mapping[str, Any]:
        digest = hashlib.sha256(ensure_reads(reads).read_bytes(self._path(request.root, request.options))).hexdigest()
        return {
            "generator": self.name,
            "version": VERSION,
            "source": digest,
            "layers": list(request.options.get("layers") or []),
            "size": [request.width, request.height],
            "frames": [[f.animation, f.index] for f in request.frames],
        }

    def generate(self, requests: Sequence, reads: ReadContext | None = None) -> list[list[np.ndarray]]:
        reads = ensure_reads(reads)
        out = []
        for request in requests:
            problems = self.validate(request, reads)
            if problems:
                raise InvalidInput(
                    [
                        Diagnostic(p.message, key=p.key, sprite=request.sprite, stage="generate", hint=p.hint)
                        for p in problems
                    ]
                )
            doc = self.read(request.root, request.options, reads)
            layers = None
            if "layers" in request.options:
                layers, _ = layer_indices(doc, request.options["layers"])
            out.append([compose(doc, f, layers) for f in self._order(doc, request)])
        return out
