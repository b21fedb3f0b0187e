"""The generator contract.

A generator turns :class:`GenerationRequest` s into frames: RGBA ``uint8`` arrays of
shape ``(height, width, 4)`` at the sprite's resolution, one per requested frame, in
request order. Generators are pure with respect to their inputs: the same request
(and the same bytes of any file it reads) gives the same frames. Everything that
influences the output must appear in :meth:`Generator.cache_key`, because the build
engine reuses a stored result whenever that key is unchanged.

Frames are *not* palette-locked here; the ``lock`` stage does that afterwards, so a
palette change never regenerates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import Diagnostic


@dataclass(frozen=True)
class FrameSpec:
    """One frame to generate: the animation it belongs to and its index there.

    ``direction`` is the compass direction the sprite faces in this frame (``n``,
    ``ne``, … ``nw``) for sprites with ``directions``; empty otherwise. The animation
    name then already carries it as a suffix (``walk_ne``)."""

    animation: str
    index: int
    direction: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a generator may use to make one sprite's frames."""

    sprite: str
    width: int
    height: int
    frames: tuple[FrameSpec, ...]
    seed: int
    root: Path
    """Project root; relative paths in ``options`` resolve against it."""
    prompt: str | None = None
    palette: tuple[tuple[int, int, int], ...] = ()
    """The sprite's palette (RGB), given only to generators whose class sets
    ``uses_palette = True`` (the palette then joins their cache key, so a palette edit
    regenerates); the lock stage enforces the palette either way."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Per-sprite generator options from the manifest (``source``, ``grid``, …)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The manifest's ``[generator.<name>]`` table."""


@runtime_checkable
class Generator(Protocol):
    """What the build engine needs from a generator."""

    name: ClassVar[str]

    def validate(self, request: GenerationRequest) -> list[Diagnostic]:
        """Problems with the request that can be found without generating."""
        ...

    def input_files(self, request: GenerationRequest) -> list[Path]:
        """Files the output depends on (watched by ``sparky-assets watch``)."""
        ...

    def cache_key(self, request: GenerationRequest) -> Mapping[str, Any]:
        """A JSON-serialisable description of everything that determines the output,
        including content hashes of files read (never their mtimes)."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[np.ndarray]]:
        """Frames per request, each ``(height, width, 4) uint8`` RGBA."""
        ...


def unknown_settings(generator: Any, request: GenerationRequest) -> list[Diagnostic]:
    """A diagnostic per key of ``[generator.<name>]`` that the generator does not accept.
    A generator declares the keys it accepts in a class attribute ``settings_keys``;
    one that declares none (a plugin written before it existed) is not checked."""
    accepted = getattr(generator, "settings_keys", None)
    if accepted is None:
        return []
    from ..errors import suggest

    name = getattr(generator, "name", "?")
    return [
        Diagnostic(
            f"unknown key '{key}' for the {name} generator",
            key=f"generator.{name}.{key}",
            stage="manifest",
            hint=suggest(key, accepted)
            or (f"valid keys: {', '.join(accepted)}" if accepted else "it takes no settings"),
        )
        for key in sorted(request.settings)
        if key not in accepted
    ]
