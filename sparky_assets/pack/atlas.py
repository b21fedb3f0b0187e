"""Atlas assembly: locked frames → packed pages + frame records.

:func:`build_atlas` is a pure function. It stores identical frames once (dedupe by
content after trimming), trims transparent borders when asked, extrudes edges, packs
with :func:`~.maxrects.pack_maxrects`, and composes the page images. The resulting
:class:`PackedAtlas` is what every exporter reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..process.shape import extrude as extrude_frame
from ..process.shape import opaque_bounds
from .maxrects import pack_maxrects

PACK_VERSION = 1
"""Bump when packing or page composition changes (part of every pack key)."""


@dataclass(frozen=True)
class FrameInput:
    """One locked frame to pack."""

    sprite: str
    animation: str | None
    """None for a still sprite."""
    frame: int
    image: np.ndarray


@dataclass(frozen=True)
class PackedFrame:
    sprite: str
    animation: str | None
    frame: int
    page: int
    slot: int
    """Index of this frame's rectangle in its page's ``rects`` (shared by duplicates)."""
    x: int
    y: int
    w: int
    h: int
    offset_x: int
    """Pixels trimmed off the left of the original frame."""
    offset_y: int
    source_w: int
    source_h: int

    @property
    def trimmed(self) -> bool:
        return (self.w, self.h) != (self.source_w, self.source_h)

    @property
    def key(self) -> str:
        """``sprite/animation/frame`` (or ``sprite`` for a still)."""
        return self.sprite if self.animation is None else f"{self.sprite}/{self.animation}/{self.frame}"


def play_order(count: int, playback: str) -> tuple[int, ...]:
    """Positions ``0..count-1`` in the order one cycle plays them, for formats that only
    know forward lists: ``pingpong`` over 4 frames is 0 1 2 3 2 1 (the ends once, as
    Aseprite plays it), ``pingpong_reverse`` 3 2 1 0 1 2."""
    forward = tuple(range(count))
    backward = forward[::-1]
    if playback == "reverse":
        return backward
    if playback == "pingpong":
        return forward + backward[1:-1]
    if playback == "pingpong_reverse":
        return backward + forward[1:-1]
    return forward


@dataclass(frozen=True)
class AnimationInfo:
    sprite: str
    name: str
    fps: float
    loop: bool
    frames: tuple[int, ...]
    """Indices into :attr:`PackedAtlas.frames`."""
    durations: tuple[float, ...] = ()
    """Per-frame ms, one per entry of ``frames``; empty: ``1000 / fps`` each."""
    playback: str = "forward"
    """``forward`` ``reverse`` ``pingpong`` ``pingpong_reverse``: the order the frames play in
    (metadata only; frames are stored once, whatever the order)."""
    repeat: int = 0
    """Times the animation plays before it stops (0: as ``loop`` says)."""

    def frame_ms(self) -> tuple[float, ...]:
        """Every frame's duration in milliseconds."""
        return self.durations or (1000.0 / self.fps,) * len(self.frames)

    def cycle(self) -> tuple[int, ...]:
        """Positions in ``frames`` in the order one cycle plays them (:func:`play_order`)."""
        return play_order(len(self.frames), self.playback)

    @property
    def timed(self) -> bool:
        """Timing or order differ from the defaults (uniform, forward)."""
        return bool(self.durations) or self.playback != "forward" or self.repeat > 0


@dataclass(frozen=True)
class PackedAtlas:
    name: str
    pages: tuple[np.ndarray, ...]
    rects: tuple[tuple[tuple[int, int, int, int], ...], ...]
    """Per page, the unique rectangles ``(x, y, w, h)`` in slot order."""
    frames: tuple[PackedFrame, ...]
    animations: tuple[AnimationInfo, ...]
    sprites: tuple[str, ...]

    def page_name(self, page: int) -> str:
        return f"{self.name}_{page}.png"

    def sprite_frames(self, sprite: str) -> list[int]:
        return [i for i, f in enumerate(self.frames) if f.sprite == sprite]


def build_atlas(
    name: str,
    frames: list[FrameInput],
    animations: list[tuple],
    *,
    max_width: int,
    max_height: int,
    padding: int = 1,
    extrude: int = 0,
    trim: bool = False,
    power_of_two: bool = False,
    square: bool = False,
    pack=pack_maxrects,
) -> PackedAtlas:
    """Pack ``frames``; ``animations`` lists ``(sprite, animation, fps, loop[, durations, playback, repeat])``.

    ``pack`` has :func:`~.maxrects.pack_maxrects`' signature; the build engine passes a
    memoised one, since placements depend only on the sizes (a palette edit keeps them)."""
    unique: list[np.ndarray] = []
    unique_of: dict[tuple, int] = {}
    placement_of_frame: list[tuple[int, int, int, int, int]] = []  # (unique, ox, oy, sw, sh)
    for f in frames:
        h, w = f.image.shape[:2]
        ox = oy = 0
        content = f.image
        if trim:
            bounds = opaque_bounds(f.image)
            if bounds is None:
                bounds = (0, 0, 1, 1)  # fully transparent: keep one pixel
            ox, oy, bw, bh = bounds
            content = f.image[oy : oy + bh, ox : ox + bw]
        content = np.ascontiguousarray(content)
        identity = (content.shape, content.tobytes())  # exact: dict hashing, no digest
        if identity not in unique_of:
            unique_of[identity] = len(unique)
            unique.append(content)
        placement_of_frame.append((unique_of[identity], ox, oy, w, h))

    sizes = [(u.shape[1] + 2 * extrude, u.shape[0] + 2 * extrude) for u in unique]
    result = pack(sizes, max_width, max_height, padding=padding, power_of_two=power_of_two, square=square)
    pages = [np.zeros((ph, pw, 4), dtype=np.uint8) for pw, ph in result.page_sizes]
    page_rects: list[list[tuple[int, int, int, int]]] = [[] for _ in pages]
    slot_of_unique: list[tuple[int, int, int, int]] = []  # (page, slot, x, y)
    for u, (img, place) in enumerate(zip(unique, result.placements)):
        block = extrude_frame(img, extrude)
        bh, bw = block.shape[:2]
        pages[place.page][place.y : place.y + bh, place.x : place.x + bw] = block
        x, y = place.x + extrude, place.y + extrude
        slot = len(page_rects[place.page])
        page_rects[place.page].append((x, y, img.shape[1], img.shape[0]))
        slot_of_unique.append((place.page, slot, x, y))

    packed: list[PackedFrame] = []
    for f, (u, ox, oy, sw, sh) in zip(frames, placement_of_frame):
        page, slot, x, y = slot_of_unique[u]
        packed.append(
            PackedFrame(
                f.sprite, f.animation, f.frame, page, slot, x, y, unique[u].shape[1], unique[u].shape[0], ox, oy, sw, sh
            )
        )
    members: dict[tuple[str, str | None], list[int]] = {}
    for i, p in enumerate(packed):
        members.setdefault((p.sprite, p.animation), []).append(i)
    infos = [
        AnimationInfo(sprite, anim, fps, loop, tuple(members.get((sprite, anim), ())), *timing)
        for sprite, anim, fps, loop, *timing in animations
    ]
    sprites = tuple(dict.fromkeys(f.sprite for f in frames))
    return PackedAtlas(name, tuple(pages), tuple(tuple(r) for r in page_rects), tuple(packed), tuple(infos), sprites)
