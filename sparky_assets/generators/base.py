"""The generator contract.

A generator turns :class:`GenerationRequest` s into frames: RGBA ``uint8`` arrays of
shape ``(height, width, 4)`` at the sprite's resolution, one per requested frame, in
request order. Generators are pure with respect to their inputs: the same request
(and the same bytes of any file it reads) gives the same frames. Everything that
influences the output must appear in :meth:`Generator.cache_key`, because the build
engine reuses a stored result whenever that key is unchanged. Files are read through
the :class:`~sparky_assets.reads.ReadContext` each method receives, which is how the
build (and ``watch``) learns what a sprite depends on.

Frames are *not* palette-locked here; the ``process`` stage quantizes them afterwards,
so a palette change never regenerates (unless the generator declares ``uses_palette``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import Diagnostic
from ..manifest.fields import Field, check_fields
from ..reads import ReadContext


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
    """The sprite's keys from the generator's ``option_fields`` (``source``, ``grid``, …),
    as written in the manifest."""
    settings: Any = field(default_factory=dict)
    """The manifest's ``[generator.<name>]`` table as :meth:`Generator.parse_settings`
    returned it (a generator called directly may get the raw table)."""


class Generator:
    """The base of every generator (built-in or third-party): the methods the build
    calls and the capabilities it reads, declared here so that nothing probes for them.

    Capabilities (class attributes):

    * ``needs_lock`` — results are kept in ``sparky.lock`` + ``sparky-generated/``
      (generators that *make* art; ``image`` only reads a file, so it is cached instead).
    * ``uses_palette`` — the request carries the sprite's palette, which then joins the
      generate key (a palette edit regenerates); otherwise a palette edit only re-quantizes.
    * ``settings_fields`` — the keys of ``[generator.<name>]``; ``option_fields`` — the
      per-sprite keys this generator takes. The manifest checks both (with locations)
      and ``docs/manifest.md`` documents them, for third-party generators too.
    * ``runs_on`` — where a build may run :meth:`generate` (``--jobs``, ``--executor ray``):
      ``"process"`` (the default) only in the build's own process; ``"cpu"``: its requests
      are independent and cheap to start, so chunks of them run in worker processes or Ray
      tasks; ``"device"``: it loads models once and batches on an accelerator, so it runs
      in the build's process locally and in one long-lived Ray actor per GPU on a cluster.
      A generator run elsewhere must give the same result for a request whatever other
      requests share its call.

    ``last_stats`` holds figures of the last :meth:`generate` call (shown by ``build -v``
    and kept in the build report); empty when there are none.

    ``last_review`` holds, per sprite of the last :meth:`generate` call, what a reviewer
    wants to see of how its frames were made: one ``{"png": bytes, "width": int,
    "height": int, "grid": dict}`` per frame (the model's image and the pixel grid found in it, see
    :func:`~sparky_assets.generators.diffusion.review_frame`). The build keeps it in the
    stage cache under the sprite's generate key; the preview page shows it. Empty for
    generators that make frames at sprite resolution.
    """

    name: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    """One line for the reference page."""
    needs_lock: ClassVar[bool] = True
    uses_palette: ClassVar[bool] = False
    runs_on: ClassVar[str] = "process"
    settings_fields: ClassVar[Mapping[str, Field]] = {}
    option_fields: ClassVar[Mapping[str, Field]] = {}

    def __init__(self) -> None:
        self.last_stats: dict[str, Any] = {}
        self.last_review: dict[str, list[dict[str, Any]]] = {}

    def parse_settings(self, table: Mapping[str, Any]) -> Any:
        """The ``[generator.<name>]`` table (already checked against
        ``settings_fields``) in the form :attr:`GenerationRequest.settings` carries it.
        The build calls this once per build; the default is the table with defaults
        filled."""
        values, _ = check_fields(f"generator.{self.name}", dict(table), self.settings_fields)
        return values

    @classmethod
    def default_size(cls, options: Mapping[str, Any], root: Path, reads: ReadContext) -> tuple[int, int] | None:
        """A sprite's size when the manifest sets none (``image``: its grid cell or the
        whole image); None: the project's default size."""
        return None

    def validate(self, request: GenerationRequest, reads: ReadContext | None = None) -> list[Diagnostic]:
        """Problems with the request that can be found without generating. Every file
        looked at goes through ``reads`` (``watch`` watches what is recorded there)."""
        return []

    def cache_key(self, request: GenerationRequest, reads: ReadContext | None = None) -> Mapping[str, Any]:
        """A JSON-serialisable description of everything that determines the output,
        including content digests of the files read through ``reads`` (never mtimes)."""
        raise NotImplementedError

    def generate(
        self, requests: Sequence[GenerationRequest], reads: ReadContext | None = None
    ) -> list[list[np.ndarray]]:
        """Frames per request, each ``(height, width, 4) uint8`` RGBA."""
        raise NotImplementedError

    def warm(self, palettes: Sequence[tuple[tuple[int, int, int], ...]]) -> None:
        """Get ready to generate in this process — imports, per-palette tables — for
        sprites drawn with ``palettes``. A build with ``--jobs`` calls it in each worker
        process while it plans, before the worker's first chunk (``runs_on = "cpu"``
        generators only). The default does nothing."""
