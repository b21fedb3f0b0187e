"""The procedural generator: seeded mirrored-mask sprite synthesis on the CPU.

How a sprite is made (all in a small *cell grid*, at most 64 cells a side, upscaled
by an integer factor for bigger sprites):

1. **Blueprint.** A style template (``creature``, ``character``, ``item``, ``tile``)
   gives every cell of the left half a probability of being body and a material
   (primary, secondary, skin). Random draws decide the cells; the half is mirrored
   left-right; specks not connected to the main body are dropped and one-cell holes
   filled. Eyes are placed on creatures and characters.
2. **Colours.** Per material a four-tone ramp (shadow, mid, light, highlight) with
   hue shifting (cool shadows, warm lights), plus one dark outline colour and an eye
   colour. When the request carries a palette, every colour is taken from it
   (nearest in OKLab); otherwise ramps are built in OKLCh. Colour words in the
   prompt ("blue cape") steer the hues.
3. **Frames.** Each frame transforms the blueprint's label grid (idle: the upper
   body bobs 1 cell; walk/run: legs lift and spread alternately; jump: crouch and
   arc; attack: wind-up and lunge; anything else: a squash/stretch cycle; tiles
   scroll), then renders it: 1-cell outline around the body (4-neighbourhood),
   shading from a blurred height field lit from the top-left, transparent
   background.

4. **Views.** A frame may face another way (``FrameSpec.direction``, for sprites with
   ``directions``): :func:`view` turns a character or creature blueprint — back view
   without eyes, 60%-wide profile with one eye at the front, 80%-wide three-quarter
   views, west mirrored from east — before the animation transform. Facing ``s``
   (and no direction) is the base sprite, so sprites without directions are
   unchanged. :func:`part_map` / :func:`frame_cells` expose the rig (body part per
   cell, moved by the same transform) to the diffusion conditioning renders.

Invariants: output frames are ``(height, width, 4) uint8`` with alpha only 0 or 255;
frame 0 of every animation is the base sprite; the same request gives byte-identical
frames on every machine (the RNG is numpy ``PCG64`` seeded from a SHA-256 of the
algorithm version, style, seed and sprite name — never Python's ``hash()``); every
opaque pixel 4-adjacent to a transparent one (or to the image edge) has the outline
colour; the base frame's silhouette of non-tile styles is left-right symmetric.
Anything that changes the output for a given request must bump
:data:`ALGORITHM_VERSION` (it is part of the cache key).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..colour import TIE_BAND, argmin_with_ties, lch, oklab_to_srgb, squared_distances, srgb_to_oklab
from ..errors import Diagnostic, suggest
from ..manifest.fields import Field
from ..manifest.schema import DIRECTIONS
from ..reads import ReadContext
from .base import FrameSpec, GenerationRequest, Generator

ALGORITHM_VERSION = 1
STYLES: tuple[str, ...] = ("creature", "character", "item", "tile")
DEFAULT_STYLE = "creature"
MIN_SIZE = 4
MAX_SIZE = 4096
MAX_CELLS = 64
"""Largest cell grid side; bigger sprites scale the grid by an integer factor."""

# Cell labels. 0 is empty; 1-3 are shaded materials; the rest render flat.
# DETAIL is skin on characters and steel on items; ACCENT is hair/hats, horns, glass.
EMPTY, PRIMARY, SECONDARY, DETAIL, ACCENT = 0, 1, 2, 3, 4
EYE, PUPIL, MORTAR = 5, 6, 7
SHADED_MATERIALS = (PRIMARY, SECONDARY, DETAIL, ACCENT)
TONES = 4  # shadow, mid, light, highlight

# OKLCh hue (degrees) and a chroma/lightness override for colour words in prompts.
_COLOR_WORDS: dict[str, tuple[float, float | None, float | None]] = {
    "red": (29.0, None, None),
    "crimson": (20.0, None, 0.5),
    "orange": (55.0, None, None),
    "brown": (55.0, 0.08, 0.45),
    "yellow": (100.0, None, 0.8),
    "gold": (85.0, None, 0.75),
    "golden": (85.0, None, 0.75),
    "lime": (125.0, None, 0.75),
    "green": (142.0, None, None),
    "teal": (185.0, None, None),
    "cyan": (195.0, None, 0.7),
    "blue": (260.0, None, None),
    "navy": (265.0, None, 0.4),
    "purple": (305.0, None, None),
    "violet": (295.0, None, None),
    "magenta": (330.0, None, None),
    "pink": (350.0, 0.12, 0.72),
    "white": (250.0, 0.01, 0.85),
    "silver": (250.0, 0.02, 0.7),
    "grey": (250.0, 0.015, 0.58),
    "gray": (250.0, 0.015, 0.58),
    "steel": (245.0, 0.03, 0.62),
    "black": (280.0, 0.02, 0.32),
    "dark": (280.0, 0.03, 0.35),
}
_WORD = re.compile(r"[a-z]+")


# --------------------------------------------------------------------------- colour


def _lerp_hue(h: float, target: float, t: float) -> float:
    delta = (target - h + 180.0) % 360.0 - 180.0
    return (h + delta * t) % 360.0


def _hue_of(lab: np.ndarray) -> float:
    return math.degrees(math.atan2(lab[2], lab[1])) % 360.0


@dataclass(frozen=True)
class _HueSpec:
    hue: float
    chroma: float
    lightness: float


# Lightness offsets and hue pulls of the four tones around a ramp's mid colour:
# shadows cooler (toward blue-violet), lights warmer (toward yellow).
_TONE_DL = (-0.2, 0.0, 0.1, 0.19)
_TONE_HUE_PULL = ((285.0, 0.22), (0.0, 0.0), (95.0, 0.12), (95.0, 0.25))
_TONE_CHROMA = (0.85, 1.0, 0.95, 0.7)


def _ramp_targets(spec: _HueSpec) -> np.ndarray:
    targets = []
    for dl, (pull_to, pull), chroma_scale in zip(_TONE_DL, _TONE_HUE_PULL, _TONE_CHROMA):
        hue = _lerp_hue(spec.hue, pull_to, pull) if pull else spec.hue
        lightness = min(0.97, max(0.12, spec.lightness + dl))
        targets.append(lch(lightness, spec.chroma * chroma_scale, hue))
    return np.array(targets)


_RAMP_DISTANCE_WEIGHTS = (0.6, 1.5, 1.5)


class _ColorSource:
    """Turns OKLab targets into RGB: free (gamut-clipped) or nearest palette colour.

    One instance per palette (:meth:`of`), shared by every sprite of a build: whatever
    depends only on the palette (its OKLab, the outline colour, the candidate lists, the
    ramp of each mid colour, the eye colours) is worked out once. Every cached value is
    the very computation it replaces, done once on the same inputs."""

    def __init__(self, palette: Sequence[tuple[int, int, int]]):
        self.palette_rgb = np.array(palette, dtype=np.uint8).reshape(-1, 3)
        self.palette_lab = srgb_to_oklab(self.palette_rgb) if len(self.palette_rgb) else None
        self.outline_index: int | None = None
        self._ramps: dict[_HueSpec, np.ndarray] = {}
        self._picks: dict[tuple[float, float, float], np.ndarray] = {}
        if self.palette_lab is not None:
            lab = self.palette_lab
            lightness = lab[:, 0]
            self.outline_index = int(np.argmax(lightness <= lightness.min() + TIE_BAND))
            self._candidates = [i for i in range(len(lab)) if i != self.outline_index] or [0]
            chromatic = [
                i for i in self._candidates if math.hypot(lab[i, 1], lab[i, 2]) >= 0.04 and 0.35 <= lab[i, 0] <= 0.85
            ]
            self._pool = chromatic or self._candidates
            self._candidate_lab = [np.ascontiguousarray(lab[self._candidates, i]) for i in range(3)]
            self._specs = [_HueSpec(_hue_of(c), float(math.hypot(c[1], c[2])), float(c[0])) for c in lab]

    @staticmethod
    def of(palette: Sequence[tuple[int, int, int]]) -> _ColorSource:
        """The palette's source, made once per palette (a build has a handful)."""
        try:
            hash(palette)  # requests carry a tuple of RGB tuples
        except TypeError:  # unhashable: lists or arrays
            palette = tuple(tuple(int(v) for v in rgb) for rgb in palette)
        return _color_source(palette)

    @property
    def constrained(self) -> bool:
        return self.palette_lab is not None

    def outline(self, primary: _HueSpec) -> np.ndarray:
        if self.palette_lab is not None:
            return self.palette_rgb[self.outline_index].copy()
        hue = _lerp_hue(primary.hue, 290.0, 0.5)
        return oklab_to_srgb(lch(0.2, 0.045, hue))

    def pick(self, targets: np.ndarray, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """RGB for each OKLab target; palette mode avoids the outline colour.
        ``weights`` scale the (L, a, b) axes of the distance."""
        if self.palette_lab is None:
            return oklab_to_srgb(targets)
        distances = squared_distances(targets, self.palette_lab, weights)
        if len(self.palette_rgb) > 1:
            distances[:, self.outline_index] = np.inf
        return self.palette_rgb[argmin_with_ties(distances)]

    def pick_lch(self, lightness: float, chroma: float, hue: float) -> np.ndarray:
        """``pick`` of one OKLCh colour (remembered: the eye colours come from a short list)."""
        key = (lightness, chroma, hue)
        rgb = self._picks.get(key)
        if rgb is None:
            rgb = self._picks[key] = self.pick(lch(lightness, chroma, hue)[None, :])[0]
        return rgb.copy()

    def ramp(self, spec: _HueSpec) -> np.ndarray:
        # A ramp should stay in its hue family: in a small palette a shade of the
        # same hue that is a bit too light beats a spot-on lightness in another hue.
        if self.palette_lab is None:
            return self.pick(_ramp_targets(spec), weights=_RAMP_DISTANCE_WEIGHTS)
        # In palette mode the mid colour is a swatch: a palette has few ramps.
        colors = self._ramps.get(spec)
        if colors is None:
            colors = self.pick(_ramp_targets(spec), weights=_RAMP_DISTANCE_WEIGHTS)
            # Nearest-colour picks can cross; keep the ramp ordered dark -> light.
            order = np.argsort(srgb_to_oklab(colors)[:, 0], kind="stable")
            colors = self._ramps[spec] = colors[order]
        return colors

    def anchor(
        self,
        rng: np.random.Generator,
        word: tuple[float, float | None, float | None] | None,
        chroma_range: tuple[float, float],
        lightness_range: tuple[float, float],
    ) -> _HueSpec:
        """A ramp's mid colour: random, or steered by a colour word; in palette mode a
        palette colour (so the mid tone is exactly one of the swatches)."""
        hue = float(rng.uniform(0.0, 360.0))
        chroma = float(rng.uniform(*chroma_range))
        lightness = float(rng.uniform(*lightness_range))
        if word is not None:
            hue = word[0]
            chroma = word[1] if word[1] is not None else chroma
            lightness = word[2] if word[2] is not None else lightness
        if self.palette_lab is None:
            return _HueSpec(hue, chroma, lightness)
        if word is None:
            index = self._pool[int(rng.integers(len(self._pool)))]
        else:
            # squared_distances + argmin_with_ties of the one target (``lch``), same sums
            h = math.radians(hue)
            lab_l, lab_a, lab_b = self._candidate_lab
            distances = ((lightness - lab_l) ** 2 + (chroma * math.cos(h) - lab_a) ** 2) + (
                chroma * math.sin(h) - lab_b
            ) ** 2
            index = self._candidates[int(np.argmax(distances <= distances.min() + TIE_BAND))]
        return self._specs[index]


_color_source = lru_cache(maxsize=64)(_ColorSource)
"""The colour source of each palette seen (a build has a handful)."""


# --------------------------------------------------------------------------- grid helpers


def _neighbors_any(mask: np.ndarray, wrap: bool = False) -> np.ndarray:
    """True where any 4-neighbour is True."""
    if wrap:
        return np.roll(mask, 1, 0) | np.roll(mask, -1, 0) | np.roll(mask, 1, 1) | np.roll(mask, -1, 1)
    out = np.zeros_like(mask)
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _neighbors_all(mask: np.ndarray) -> np.ndarray:
    """True where all four neighbours are True (outside the grid counts as False)."""
    out = np.zeros_like(mask)
    out[1:-1, 1:-1] = mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return out


def _shift(field: np.ndarray, dy: int, dx: int, wrap: bool) -> np.ndarray:
    """``out[y, x] = field[y - dy, x - dx]``; zero outside unless ``wrap``."""
    if wrap:
        return np.roll(field, (dy, dx), axis=(0, 1))
    out = np.zeros_like(field)
    h, w = field.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = field[ys, xs]
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of ``mask`` (ties: the one holding the
    lowest flat index).

    Works on horizontal runs of cells: runs joined by a vertical neighbour pair are
    merged (union-find, each set named by its first run in row-major order, so by its
    lowest flat index), and the cells of the biggest set are kept."""
    h, w = mask.shape
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]
    count = int(np.count_nonzero(starts))
    if not count:
        return mask.copy()
    run_of = np.cumsum(starts, dtype=np.int64).reshape(h, w) - 1  # each masked cell's run
    stacked = mask[:-1] & mask[1:]
    # (upper run, lower run) of every vertical neighbour pair; in row-major order both
    # never decrease, so equal pairs are adjacent: keep the first of each
    keys = run_of[:-1][stacked] * count + run_of[1:][stacked]
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    parent = list(range(count))
    for key in keys.tolist():
        a, b = divmod(key, count)
        while parent[a] != a:
            parent[a] = a = parent[parent[a]]
        while parent[b] != b:
            parent[b] = b = parent[parent[b]]
        if a != b:
            parent[max(a, b)] = min(a, b)
    for i in range(count):  # parents are lower runs: one pass resolves every root
        parent[i] = parent[parent[i]]
    roots = np.array(parent, dtype=np.int64)
    cells = np.bincount(roots[run_of[mask]], minlength=count)
    return mask & (roots[run_of] == int(np.argmax(cells)))


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    """How the cell grid maps onto the output image."""

    cells_w: int
    cells_h: int
    scale: int
    offset_x: int
    offset_y: int


def _layout(width: int, height: int) -> _Layout:
    if max(width, height) <= MAX_CELLS:
        return _Layout(width, height, 1, 0, 0)
    scale = -(-max(width, height) // MAX_CELLS)
    if width % 2 == 1 and scale % 2 == 0:
        scale += 1  # an odd width needs an odd scale to centre the grid symmetrically
    cells_w = max(MIN_SIZE, width // scale)
    if (width - cells_w * scale) % 2:
        cells_w -= 1
    cells_h = max(MIN_SIZE, height // scale)
    return _Layout(cells_w, cells_h, scale, (width - cells_w * scale) // 2, (height - cells_h * scale) // 2)


# --------------------------------------------------------------------------- blueprints


@dataclass
class _Blueprint:
    """The base sprite in cell space plus everything frames need to vary it."""

    style: str
    labels: np.ndarray  # int8, (cells_h, cells_w)
    ramps: np.ndarray  # uint8, (4 materials incl. unused 0, TONES, 3)
    outline: np.ndarray  # uint8 (3,)
    eye: np.ndarray  # uint8 (3,)
    leg_row: int | None  # first row of the legs (walk/idle split), None when legless
    cells: np.ndarray  # int8 ``label * 4 + tone``: the base sprite, shaded once


@dataclass
class _Shape:
    """What a style template returns."""

    labels: np.ndarray
    leg_row: int | None = None
    tones: np.ndarray | None = None


class _HalfGrid:
    """Normalised coordinates of the left half (plus centre column) of the grid.

    ``u`` is 0 at the vertical centre line and 1 at the inner edge of the 1-cell
    outline margin; ``v`` is 0 at the top of the usable area and 1 at its bottom.
    ``half_span`` (cells per u unit) and ``span`` (cells per v unit) convert back to
    cells, so round shapes can be measured in cells and stay round.
    """

    def __init__(self, cells_w: int, cells_h: int, top_margin: int):
        self.cells_w, self.cells_h = cells_w, cells_h
        self.half = (cells_w + 1) // 2
        center = (cells_w - 1) / 2.0
        half_span = max(1.0, (cells_w - 2) / 2.0)
        top = 1 + top_margin
        bottom = cells_h - 2
        span = max(1.0, bottom - top)
        xs = np.arange(self.half)
        ys = np.arange(cells_h)
        self.u = np.broadcast_to(((center - xs) / half_span)[None, :], (cells_h, self.half))
        self.v = np.broadcast_to(((ys - top) / span)[:, None], (cells_h, self.half))
        self.half_span, self.top, self.span = half_span, top, span
        self.inside = (self.v >= -1e-9) & (self.v <= 1 + 1e-9) & (self.u <= 1 + 1e-9)
        self.inside &= (xs >= 1)[None, :]
        self.inside.flags.writeable = False  # shared by every sprite of this size (:meth:`of`)

    @staticmethod
    def of(cells_w: int, cells_h: int, top_margin: int) -> _HalfGrid:
        """The grid of this size, made once: it holds no per-sprite state."""
        return _half_grid(cells_w, cells_h, top_margin)

    def row_of(self, v: float) -> int:
        """The grid row at normalised height ``v``, kept off the outline ring."""
        return min(max(int(round(self.top + v * self.span)), 1), self.cells_h - 2)

    def full(self, half_mask: np.ndarray) -> np.ndarray:
        """The mirrored full-width version of a half-grid boolean mask."""
        full = np.zeros((self.cells_h, self.cells_w), dtype=bool)
        full[:, : self.half] = half_mask
        full[:, self.cells_w - self.half :] |= half_mask[:, ::-1]
        return full

    def mirror(self, half_labels: np.ndarray) -> np.ndarray:
        full = np.zeros((self.cells_h, self.cells_w), dtype=np.int8)
        full[:, : self.half] = half_labels
        full[:, self.cells_w - self.half :] = half_labels[:, ::-1]
        return full


_half_grid = lru_cache(maxsize=256)(_HalfGrid)


def _choice(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """``rng.choice(options)`` as a plain value: the one draw ``Generator.choice`` makes
    (``integers(0, n)`` as int64), without turning ``options`` into an array first."""
    return options[int(rng.integers(0, len(options), dtype=np.int64))]


def _noise_block(cells_w: int, cells_h: int) -> int:
    """Side of the square blocks random draws are made in: 1 cell up to ~48 cells,
    so big sprites get chunky shapes instead of 1-pixel fuzz."""
    return max(1, min(cells_w, cells_h) // 24)


def _sample(rng: np.random.Generator, probability: np.ndarray, grid: _HalfGrid) -> np.ndarray:
    block = _noise_block(grid.cells_w, grid.cells_h)
    h, w = probability.shape
    if block == 1:
        draws = rng.random((h, w))
    else:
        coarse = rng.random((-(-h // block), -(-w // block)))
        # Blocks are anchored at the centre column so mirrored blocks line up.
        draws = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:h, -w:]
    return (draws < probability) & grid.inside


def _finish_labels(labels: np.ndarray, material_fallback: int = PRIMARY) -> np.ndarray:
    """Keep the main body, fill one-cell holes, clear the outline ring."""
    labels[0, :] = labels[-1, :] = 0
    labels[:, 0] = labels[:, -1] = 0
    body = _largest_component(labels > 0)
    if not body.any():  # tiny grids: never return an empty sprite
        h, w = labels.shape
        body[min(h // 2, h - 2), max(1, (w - 1) // 2) : max(2, w - 1 - (w - 1) // 2 + 1)] = True
        body[0, :] = body[-1, :] = False
        body[:, 0] = body[:, -1] = False
    labels = np.where(body, labels, 0).astype(np.int8)
    labels[body & (labels == 0)] = material_fallback
    holes = ~body & _neighbors_all(body)
    labels[holes] = material_fallback
    return labels


def _place_eyes(labels: np.ndarray, row: int, offset: int, eye_size: int) -> None:
    """A symmetric pair of eyes at ``row``, ``offset`` cells left and right of the
    centre line, only where every eye cell is surrounded by body.

    ``eye_size`` 1: a single dark pixel (small sprites read best with ink eyes);
    2: a light pixel over a dark pupil; 3: a 2x2 light eye with the pupil at the
    inner bottom; 4: a 2x2 ink eye (big faces)."""
    h, w = labels.shape
    body = labels > 0
    interior = body & _neighbors_all(body)
    left = (w - 1) // 2 - offset
    if left < 1 or w - 1 - left <= left:
        return
    if eye_size == 4:
        cells = [(row, left - 1, PUPIL), (row, left, PUPIL), (row + 1, left - 1, PUPIL), (row + 1, left, PUPIL)]
    elif eye_size == 3:
        cells = [(row, left - 1, EYE), (row, left, EYE), (row + 1, left - 1, EYE), (row + 1, left, PUPIL)]
    elif eye_size == 2:
        cells = [(row, left, EYE), (row + 1, left, PUPIL)]
    else:
        cells = [(row, left, PUPIL)]
    if w - 1 - (left - (eye_size >= 3)) <= left:
        return
    if not all(0 <= y < h and 0 <= x < w and interior[y, x] and interior[y, w - 1 - x] for y, x, _ in cells):
        return
    for y, x, label in cells:
        labels[y, x] = label
        labels[y, w - 1 - x] = label


def _eye_size(cells_w: int, cells_h: int, feature_cells: float) -> int:
    """Eye style for a head/body ``feature_cells`` wide."""
    if feature_cells >= 12 and min(cells_w, cells_h) >= 28:
        return 3
    if feature_cells >= 7 and min(cells_w, cells_h) >= 16:
        return 2
    return 1


def _creature(rng: np.random.Generator, cells_w: int, cells_h: int) -> _Shape:
    grid = _HalfGrid.of(cells_w, cells_h, top_margin=max(0, cells_h // 12))
    u, v = grid.u, grid.v
    one_v = 1.0 / grid.span  # one cell in v units
    center_v = rng.uniform(0.38, 0.55)
    radius_v = rng.uniform(0.26, 0.4)
    radius_u = rng.uniform(0.55, 0.9)
    d = np.sqrt((u / radius_u) ** 2 + ((v - center_v) / radius_v) ** 2)
    p = np.where(d < 0.6, 1.0, np.where(d < 0.85, 0.75, np.where(d < 1.12, 0.3, 0.0)))
    legs_top = center_v + radius_v * 0.45
    leg_pairs = _choice(rng, (0, 1, 1, 2, 2))
    if leg_pairs:
        width = max(rng.uniform(0.16, 0.28), 2.0 / grid.half_span)
        starts = [rng.uniform(0.2, 0.45)] if leg_pairs == 1 else [rng.uniform(0.08, 0.2), rng.uniform(0.5, 0.66)]
        for start in starts:
            in_leg = (u >= start) & (u <= start + width) & (v >= legs_top)
            p = np.where(in_leg, np.maximum(p, 0.95), p)
    horns = np.zeros_like(p, dtype=bool)
    if rng.random() < 0.55:  # horns / ears / antennae
        start = rng.uniform(0.15, 0.5)
        top_v = max(0.0, center_v - radius_v - rng.uniform(0.12, 0.3))
        horns = (
            (u >= start)
            & (u <= start + max(0.2, 2.0 / grid.half_span))
            & (v >= top_v)
            & (v <= center_v - radius_v * 0.6)
        )
        p = np.where(horns, np.maximum(p, 0.8), p)
    if rng.random() < 0.45:  # arms / fins / wings, at least two cells thick
        low = center_v - rng.uniform(0.0, 0.15)
        thick = max(rng.uniform(0.12, 0.25), 2.0 * one_v)
        in_arm = (
            (u >= radius_u * 0.8)
            & (u <= min(1.0, radius_u + rng.uniform(0.15, 0.35)))
            & (v >= low)
            & (v <= low + thick)
        )
        p = np.where(in_arm, np.maximum(p, 0.85), p)
    body = _sample(rng, p, grid)
    half = np.where(body, PRIMARY, EMPTY).astype(np.int8)
    if rng.random() < 0.65:  # belly
        belly_u, belly_v = radius_u * rng.uniform(0.35, 0.6), radius_v * rng.uniform(0.45, 0.7)
        belly_center = center_v + radius_v * rng.uniform(0.1, 0.35)
        belly = (u / belly_u) ** 2 + ((v - belly_center) / belly_v) ** 2 <= 1.0
        half[body & belly] = SECONDARY
    if rng.random() < 0.35:  # spots, in 2-cell clumps so they read as markings, not noise
        seeds = rng.random(body.shape) < 0.06
        spots = seeds | _shift(seeds, 1, 0, wrap=False) | _shift(seeds, 0, 1, wrap=False)
        half[body & spots & (d < 0.8)] = SECONDARY
    if leg_pairs and rng.random() < 0.5:
        half[body & (v >= legs_top)] = SECONDARY
    half[body & horns & (v < center_v - radius_v * 0.75)] = ACCENT
    labels = _finish_labels(grid.mirror(half))
    eye_row = grid.row_of(center_v - radius_v * 0.3)
    body_cells = radius_u * (cells_w - 2)
    eye_offset = max(1, int(round(radius_u * (cells_w - 2) / 2 * rng.uniform(0.25, 0.45))))
    _place_eyes(labels, eye_row, eye_offset, _eye_size(cells_w, cells_h, body_cells * 0.7))
    leg_row = grid.row_of(legs_top) if leg_pairs else grid.row_of(center_v + radius_v * 0.3)
    return _Shape(labels, leg_row)


def _character(rng: np.random.Generator, cells_w: int, cells_h: int) -> _Shape:
    grid = _HalfGrid.of(cells_w, cells_h, top_margin=max(0, cells_h // 16))
    u, v = grid.u, grid.v
    one_u = 1.0 / grid.half_span  # one cell in u units
    head_h = rng.uniform(0.3, 0.36)
    head_w = rng.uniform(0.48, 0.62)
    legs_v = rng.uniform(0.63, 0.7)
    torso_w = rng.uniform(0.4, 0.55)
    arm_w = max(rng.uniform(0.16, 0.24), 2 * one_u)
    gap = one_u if cells_w >= 14 else 0.0  # outline between arm and torso below the shoulder
    leg_gap = one_u * 0.9 if cells_w >= 10 else 0.0
    robe = rng.random() < 0.2

    head_d = np.sqrt((u / head_w) ** 2 + ((v - head_h / 2) / (head_h / 2)) ** 2)
    in_head = head_d <= 1.0
    in_neck = (v > head_h * 0.8) & (v <= head_h + 0.04) & (u <= head_w * 0.45)
    shoulder = head_h + 0.02
    in_torso = (v > head_h) & (v < legs_v) & (u <= torso_w)
    in_shoulder = (v > shoulder) & (v <= shoulder + 0.06) & (u <= torso_w + gap + arm_w)
    in_arm = (v > shoulder) & (v < legs_v + 0.04) & (u > torso_w + gap) & (u <= torso_w + gap + arm_w)
    if robe:
        flare = torso_w + (v - legs_v) * 0.6
        in_legs = (v >= legs_v) & (u <= flare)
    else:
        in_legs = (v >= legs_v) & (u >= leg_gap) & (u <= torso_w * rng.uniform(0.8, 0.95))
    p = np.zeros_like(u)
    p = np.where(in_head, np.where(head_d < 0.85, 1.0, 0.7), p)
    p = np.where(in_neck | in_torso | in_shoulder | in_arm | in_legs, 1.0, p)
    body = _sample(rng, p, grid)

    half = np.zeros(body.shape, dtype=np.int8)
    half[body & (in_torso | in_arm | in_shoulder)] = PRIMARY
    half[body & in_legs] = PRIMARY if robe else SECONDARY
    half[body & (in_head | in_neck)] = DETAIL
    half[body & in_arm & (v >= legs_v - 0.04)] = DETAIL  # hands
    if rng.random() < 0.6:  # belt
        half[body & in_torso & (v >= legs_v - 0.05) & (v < legs_v)] = SECONDARY
    if not robe and rng.random() < 0.7:  # boots
        half[body & in_legs & (v >= 0.9)] = ACCENT
    if rng.random() < 0.85:  # hair, hood or helmet over the top of the head
        hair_bottom = head_h * rng.uniform(0.3, 0.5)
        in_hair = (head_d <= 1.08) & (v <= hair_bottom)
        if rng.random() < 0.4:  # long hair down the sides
            in_hair |= (head_d <= 1.08) & (u >= head_w * 0.7) & (v <= head_h * 0.85)
        hair = in_hair & grid.inside
        half[hair] = ACCENT
        body |= hair
    half[body & (half == 0)] = PRIMARY
    labels = _finish_labels(grid.mirror(half))
    # Characters get ink eyes (one pixel, two tall on big heads): faces read better.
    eye_row = grid.row_of(head_h * 0.55)
    eye_offset = max(1, int(round(head_w * (cells_w - 2) / 2 * 0.4)))
    head_cells = head_w * (cells_w - 2)
    _place_eyes(labels, eye_row, eye_offset, 4 if head_cells >= 18 else 1)
    return _Shape(labels, grid.row_of(legs_v))


def _item(rng: np.random.Generator, cells_w: int, cells_h: int) -> _Shape:
    grid = _HalfGrid.of(cells_w, cells_h, top_margin=max(0, cells_h // 10))
    # Items sit in the middle: shrink the usable area a little on every side.
    inset = 0.12
    u = grid.u / (1 - inset)
    v = (grid.v - inset / 2) / (1 - inset)
    one_u = 1.0 / grid.half_span
    kind = _choice(rng, ("gem", "potion", "sword", "shield", "orb", "axe", "staff"))
    half = np.zeros(u.shape, dtype=np.int8)
    if kind == "gem":
        width = rng.uniform(0.7, 0.95)
        crown_top, girdle = rng.uniform(0.15, 0.3), rng.uniform(0.38, 0.5)
        crown = (v >= crown_top) & (v < girdle) & (u <= width * (0.6 + 0.4 * (v - crown_top) / (girdle - crown_top)))
        pavilion = (v >= girdle) & (v <= 0.95) & (u <= width * (1 - (v - girdle) / (0.95 - girdle)) + one_u * 0.5)
        body = (crown | pavilion) & grid.inside
        half[body] = PRIMARY
        half[body & crown] = ACCENT
        half[body & pavilion & (u <= width * 0.3) & (v < 0.7)] = ACCENT
    elif kind == "orb":
        radius = rng.uniform(0.7, 0.95)
        d = np.sqrt((u / radius) ** 2 + ((v - 0.42) / 0.4) ** 2)
        stand = (v >= 0.8) & (v <= 0.98) & (u <= rng.uniform(0.35, 0.6) + (v - 0.8))
        body = ((d <= 1.0) | stand) & grid.inside
        half[body] = PRIMARY
        half[body & stand & (d > 1.0)] = DETAIL
    elif kind == "potion":
        neck_w = max(rng.uniform(0.18, 0.3), 1.5 * one_u)
        bulb_r = rng.uniform(0.65, 0.95)
        neck = (v >= 0.0) & (v <= 0.4) & (u <= neck_w)
        cork = neck & (v <= 0.14)
        bulb_d = np.sqrt((u / bulb_r) ** 2 + ((v - 0.68) / 0.32) ** 2)
        bulb = bulb_d <= 1.0
        body = (neck | bulb) & grid.inside
        half[body] = ACCENT  # glass
        level = rng.uniform(0.5, 0.7)
        half[body & bulb & (v >= level)] = PRIMARY  # the liquid
        half[body & cork] = SECONDARY
    elif kind in ("sword", "staff"):
        shaft_w = max(rng.uniform(0.1, 0.2), one_u)
        guard_v = rng.uniform(0.58, 0.7) if kind == "sword" else rng.uniform(0.25, 0.35)
        if kind == "sword":
            blade = (v >= 0.0) & (v < guard_v) & (u <= shaft_w)
            tip = blade & (v < 0.08) & (u > shaft_w * 0.5)
            guard = (v >= guard_v) & (v < guard_v + 0.08) & (u <= rng.uniform(0.45, 0.8))
            grip = (v >= guard_v + 0.08) & (v < 0.92) & (u <= max(0.12, one_u))
            pommel = (v >= 0.92) & (u <= max(0.22, 1.5 * one_u))
            body = ((blade & ~tip) | guard | grip | pommel) & grid.inside
            half[body & blade] = DETAIL  # steel
            half[body & (guard | pommel)] = SECONDARY
            half[body & grip] = PRIMARY
        else:
            # A round orb (measured in cells, so it stays round) on a shaft, with a collar.
            half_span = grid.half_span
            radius = max(1.5, rng.uniform(0.13, 0.18) * min(cells_w, cells_h))
            orb_v = (radius + 0.5) / grid.span
            orb = np.sqrt((grid.u * half_span) ** 2 + ((grid.v - orb_v) * grid.span) ** 2) <= radius
            collar_v = orb_v + radius / grid.span
            collar = (
                (grid.v >= collar_v - 1.0 / grid.span)
                & (grid.v <= collar_v + 1.0 / grid.span)
                & (grid.u <= radius * 0.7 / half_span)
            )
            shaft = (grid.v >= orb_v) & (grid.v <= 1.0) & (u <= shaft_w)
            body = (orb | shaft | collar) & grid.inside
            half[body & shaft] = SECONDARY
            half[body & collar] = DETAIL
            half[body & orb] = PRIMARY
    elif kind == "axe":
        shaft_w = max(0.12, one_u)
        shaft = (u <= shaft_w) & (v >= 0.0) & (v <= 1.0)
        top, bottom = rng.uniform(0.05, 0.15), rng.uniform(0.45, 0.6)
        reach = rng.uniform(0.75, 1.0)
        mid = (top + bottom) / 2
        blade = (u > shaft_w) & (u <= reach) & (np.abs(v - mid) <= (bottom - top) / 2 * (0.45 + 0.55 * u / reach))
        body = (shaft | blade) & grid.inside
        half[body & shaft] = SECONDARY
        half[body & blade] = DETAIL
    else:  # shield
        width = rng.uniform(0.7, 0.95)
        taper = np.where(v > 0.55, 1.0 - (v - 0.55) / 0.45, 1.0)
        shape = (v >= 0.0) & (v <= 1.0) & (u <= width * np.sqrt(np.clip(taper, 0, 1)))
        body = shape & grid.inside
        half[body] = PRIMARY
        rim = body & ~_neighbors_all(grid.full(body))[:, : grid.half]
        emblem_kind = int(rng.integers(3))
        if emblem_kind == 0:  # cross
            bar = max(0.12, one_u)
            emblem = ((u <= bar) & (v > 0.12) & (v < 0.82)) | ((np.abs(v - 0.38) <= 0.06) & (u < width * 0.7))
        elif emblem_kind == 1:  # boss
            emblem = (u / (width * 0.4)) ** 2 + ((v - 0.42) / 0.2) ** 2 <= 1.0
        else:  # chevron
            emblem = np.abs(v - (0.3 + u * 0.5)) <= 0.08
        emblem &= body
        half[emblem] = SECONDARY
        half[rim] = DETAIL
    return _Shape(_finish_labels(grid.mirror(half)))


def _torus_value_noise(rng: np.random.Generator, cells_w: int, cells_h: int, period: int) -> np.ndarray:
    """Smooth noise that wraps around both axes (seamless tiles)."""
    gw, gh = max(1, cells_w // period), max(1, cells_h // period)
    lattice = rng.random((gh, gw))
    ys = np.arange(cells_h) * gh / cells_h
    xs = np.arange(cells_w) * gw / cells_w
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    y1, x1 = (y0 + 1) % gh, (x0 + 1) % gw
    top = lattice[y0][:, x0] * (1 - fx) + lattice[y0][:, x1] * fx
    bottom = lattice[y1][:, x0] * (1 - fx) + lattice[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def _tile(rng: np.random.Generator, cells_w: int, cells_h: int) -> _Shape:
    kind = _choice(rng, ("cobble", "brick", "ground"))
    ys, xs = np.mgrid[0:cells_h, 0:cells_w]
    if kind == "cobble":
        stone = max(3.0, min(cells_w, cells_h) / rng.uniform(2.2, 3.5))
        count = max(2, int(round(cells_w * cells_h / (stone * stone))))
        points = rng.random((count, 2)) * [cells_h, cells_w]
        dy = np.abs(ys[None] + 0.5 - points[:, 0, None, None])
        dx = np.abs(xs[None] + 0.5 - points[:, 1, None, None])
        dy = np.minimum(dy, cells_h - dy)
        dx = np.minimum(dx, cells_w - dx)
        dist = np.sqrt(dy * dy + dx * dx)
        order = np.sort(dist, axis=0)
        nearest = np.argmin(dist, axis=0)
        materials = np.where(rng.random(count) < 0.3, SECONDARY, PRIMARY).astype(np.int8)
        labels = materials[nearest]
        labels[(order[1] - order[0]) < 1.0] = MORTAR
    elif kind == "brick":
        rows = max(1, int(round(cells_h / rng.uniform(4.0, 6.0))))
        bricks = max(1, int(round(cells_w / rng.uniform(7.0, 10.0))))
        row_of = (ys * rows) // cells_h
        row_top = (row_of * cells_h + rows - 1) // rows
        shifted = (xs + (row_of % 2) * (cells_w // (2 * bricks))) % cells_w
        col_of = (shifted * bricks) // cells_w
        col_left = (col_of * cells_w + bricks - 1) // bricks
        ids = row_of * bricks + col_of
        materials = np.where(rng.random(rows * bricks) < 0.25, SECONDARY, PRIMARY).astype(np.int8)
        labels = materials[ids]
        labels[(ys == row_top) | (shifted == col_left)] = MORTAR
    else:  # ground: two materials from wrapped noise, tones from finer noise, pebbles
        noise = _torus_value_noise(rng, cells_w, cells_h, period=max(2, min(cells_w, cells_h) // 3))
        labels = np.where(noise > np.median(noise) + 0.08, SECONDARY, PRIMARY).astype(np.int8)
        detail = _torus_value_noise(rng, cells_w, cells_h, period=max(2, min(cells_w, cells_h) // 8))
        detail = 0.7 * detail + 0.3 * rng.random((cells_h, cells_w))
        tones = np.digitize(detail, np.quantile(detail, [0.12, 0.6, 0.94])).astype(np.int8)
        pebbles = rng.random((cells_h, cells_w)) < 0.015
        labels[pebbles] = ACCENT
        tones[pebbles] = 2
        below = np.roll(pebbles, 1, axis=0)  # a shadow under each pebble
        tones[below & ~pebbles] = 0
        return _Shape(labels, None, tones)
    return _Shape(labels)


_TEMPLATES = {"creature": _creature, "character": _character, "item": _item, "tile": _tile}


# --------------------------------------------------------------------------- rendering


def _run_positions(rows_of: np.ndarray, columns_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every cell, its position ``p / (n + 1)`` inside the run of equal region ids
    that contains it (``p`` 1-based, ``n`` the run length): along the rows of
    ``rows_of``, and along the columns of ``columns_of``. Both in one pass over the
    rows followed by the columns, laid end to end."""
    h, w = rows_of.shape
    column_h, column_w = columns_of.shape
    split = h * w
    ids = np.concatenate([rows_of.ravel(), columns_of.T.ravel()])
    n = ids.size
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(ids[1:], ids[:-1], out=starts[1:])
    starts[:split:w] = True  # every row and every column starts a run
    starts[split::column_h] = True
    first = np.flatnonzero(starts)
    run = np.cumsum(starts) - 1
    position = (np.arange(n) - first[run] + 1) / (np.diff(first, append=n)[run] + 1)
    return position[:split].reshape(h, w), position[split:].reshape(column_w, column_h).T


_TONE_STEPS = np.array([0.24, 0.42, 0.7])


def _shade(regions: np.ndarray, wrap: bool) -> np.ndarray:
    """Tone index 0..3 (shadow, mid, light, highlight) per cell.

    ``regions`` holds a region id per cell (0 = not shaded). Each cell's position
    across its region, horizontally and vertically, says how far it is from the
    top-left (lit) edge toward the bottom-right (shadowed) one. Wrapped grids (tiles)
    are shaded as the centre of a 3x3 repeat so the result stays seamless.
    """
    if wrap:
        # the centre of a 3x3 repeat: its rows see the row repeated three times, its
        # columns the column repeated three times
        h, w = regions.shape
        across, down = _run_positions(np.tile(regions, (1, 3)), np.tile(regions, (3, 1)))
        t = 0.5 * (across[:, w : 2 * w] + down[h : 2 * h, :])
    else:
        across, down = _run_positions(regions, regions)
        t = 0.5 * (across + down)
    # below 0.24: 3 (highlight), below 0.42: 2, below 0.7: 1, else 0
    return (3 - np.searchsorted(_TONE_STEPS, t, side="right")).astype(np.int8)  # np.digitize's count


_MATERIAL_OF_LABEL = np.array([PRIMARY, PRIMARY, SECONDARY, DETAIL, ACCENT, PRIMARY, PRIMARY, PRIMARY], dtype=np.int8)


def _color_table(blueprint: _Blueprint) -> np.ndarray:
    """RGBA per (label, tone): shaded materials use their ramp, eyes, pupils and
    mortar a flat colour; label 0 is transparent."""
    table = np.zeros((len(_MATERIAL_OF_LABEL), TONES, 4), dtype=np.uint8)
    table[:, :, :3] = blueprint.ramps[_MATERIAL_OF_LABEL]
    table[EYE, :, :3] = blueprint.eye
    table[PUPIL, :, :3] = blueprint.outline
    table[MORTAR, :, :3] = blueprint.outline
    table[EMPTY] = 0
    table[1:, :, 3] = 255
    return table


def _render(cells: np.ndarray, blueprint: _Blueprint, table: np.ndarray) -> np.ndarray:
    """RGBA for one cell grid (``label * 4 + tone`` per cell), outline added."""
    rows = table.reshape(-1, 4)  # cells = label * 4 + tone: row label * TONES + tone
    if blueprint.style == "tile":
        return np.take(rows, cells, axis=0)
    body = cells > 0
    outline = _neighbors_any(body) & ~body
    rows = np.concatenate([rows, np.array([(*blueprint.outline.tolist(), 255)], np.uint8)])  # + the outline
    return np.take(rows, np.where(outline, len(rows) - 1, cells), axis=0)


def _to_image(cells: np.ndarray, layout: _Layout, width: int, height: int, tile: bool) -> np.ndarray:
    if layout.scale == 1 and cells.shape[:2] == (height, width):
        return cells
    h, w, channels = cells.shape
    s = layout.scale
    big = np.broadcast_to(cells[:, None, :, None, :], (h, s, w, s, channels)).reshape(h * s, w * s, channels)
    if tile:
        reps_y = -(-height // big.shape[0])
        reps_x = -(-width // big.shape[1])
        return np.ascontiguousarray(np.tile(big, (reps_y, reps_x, 1))[:height, :width])
    out = np.zeros((height, width, 4), dtype=np.uint8)
    out[layout.offset_y : layout.offset_y + big.shape[0], layout.offset_x : layout.offset_x + big.shape[1]] = big
    return out


# --------------------------------------------------------------------------- animation


def _room(labels: np.ndarray, box: tuple[int, int, int, int] | None = None) -> tuple[int, int, int, int]:
    """Free cells between the body's bounding box (``box``, when known) and the 1-cell
    outline ring: (top, bottom, left, right)."""
    if box is None:
        box = _bbox(labels > 0)
    h, w = labels.shape
    if box is None:
        return 0, 0, 0, 0
    top, bottom, left, right = box
    return max(0, top - 1), max(0, h - 2 - bottom), max(0, left - 1), max(0, w - 2 - right)


def _clear_ring(labels: np.ndarray) -> np.ndarray:
    labels[0, :] = labels[-1, :] = 0
    labels[:, 0] = labels[:, -1] = 0
    return labels


def _move_region(labels: np.ndarray, region: np.ndarray, dy: int, dx: int, on_top: bool) -> np.ndarray:
    """Move the cells in ``region`` by (dy, dx); ``on_top`` decides who wins overlaps."""
    moving = np.where(region, labels, 0).astype(np.int8)
    rest = np.where(region, 0, labels).astype(np.int8)
    moved = _shift(moving, dy, dx, wrap=False)
    if on_top:
        return np.where(moved > 0, moved, rest).astype(np.int8)
    return np.where(rest > 0, rest, moved).astype(np.int8)


def _warp(labels: np.ndarray, scale_x: float, scale_y: float, dx: int, dy: int) -> np.ndarray:
    """Nearest-neighbour scale about the body's bottom centre, then shift."""
    box = _bbox(labels > 0)
    if box is None:
        return labels.copy()
    top, bottom, left, right = box
    h, w = labels.shape
    anchor_x = (left + right + 1) / 2.0
    anchor_y = bottom + 1.0
    xs = np.arange(w) + 0.5 - dx
    ys = np.arange(h) + 0.5 - dy
    src_x = np.floor(anchor_x + (xs - anchor_x) / scale_x).astype(int)
    src_y = np.floor(anchor_y + (ys - anchor_y) / scale_y).astype(int)
    valid = (src_y[:, None] >= 0) & (src_y[:, None] < h) & (src_x[None, :] >= 0) & (src_x[None, :] < w)
    out = labels[np.clip(src_y, 0, h - 1)][:, np.clip(src_x, 0, w - 1)]
    return _clear_ring(np.where(valid, out, 0).astype(np.int8))


def _animation_kind(animation: str, style: str, has_legs: bool) -> str:
    name = animation.lower()
    if style == "tile":
        return "scroll"
    for kind, words in (
        ("idle", ("idle", "breath", "stand")),
        ("run", ("run", "dash", "sprint")),
        ("walk", ("walk", "move", "step")),
        ("jump", ("jump", "hop", "fall")),
        ("attack", ("attack", "hit", "strike", "slash", "punch", "shoot", "cast")),
    ):
        if any(word in name for word in words):
            if kind in ("walk", "run") and not has_legs:
                return "hop"
            return kind
    return "pulse"


def _blink(cells: np.ndarray) -> np.ndarray:
    """Close the eyes: an eye cell with more eye below becomes lid (mid primary);
    the bottom row of the eye becomes a dark line."""
    label = cells >> 2
    eyeish = (label == EYE) | (label == PUPIL)
    below = np.zeros_like(eyeish)
    below[:-1] = eyeish[1:]
    lid = PRIMARY * TONES + 1
    line = PUPIL * TONES
    out = np.where(eyeish & below, lid, cells)
    out = np.where(eyeish & ~below, line, out)
    return out.astype(np.int8)


def _scroll_amount(index: int, count: int, cells_w: int) -> int:
    return index * max(1, cells_w // max(2, count))


def _frame_labels(blueprint: _Blueprint, spec: FrameSpec, count: int) -> np.ndarray:
    """The label grid of frame ``spec.index`` of an animation with ``count`` frames;
    the base sprite when a transform would leave nothing (tiny grids)."""
    cells = _transform_frame(blueprint, spec, count)
    return cells if cells.any() else blueprint.cells  # cells are >= 0


def _transform_frame(blueprint: _Blueprint, spec: FrameSpec, count: int) -> np.ndarray:
    """Moves, lifts, squashes or scrolls the base cells; tones travel with them."""
    base = blueprint.cells
    index = spec.index % max(1, count)
    if index == 0:
        return base
    kind = _animation_kind(spec.animation, blueprint.style, blueprint.leg_row is not None)
    theta = 2.0 * math.pi * index / max(2, count)
    h, w = base.shape
    box = _bbox(base > 0)
    room_top, room_bottom, room_left, room_right = _room(base, box)
    body_h = box[1] - box[0] + 1 if box else h
    body_w = box[3] - box[2] + 1 if box else w

    if kind == "scroll":
        return np.roll(base, _scroll_amount(index, count, w), axis=1)

    if kind == "idle":
        split = blueprint.leg_row if blueprint.leg_row is not None else h
        down = int(math.floor((1 - math.cos(theta)) / 2 + 0.5))
        labels = base
        if down:
            upper = np.zeros_like(base, dtype=bool)
            upper[:split] = True
            if split >= h:  # legless: float up if there is room, else squash
                if room_top:
                    labels = _move_region(base, upper, -1, 0, on_top=True)
                else:
                    labels = _warp(base, 1.0, 1 - 1.2 / max(2, body_h), 0, 0)
            else:
                labels = _move_region(base, upper, 1, 0, on_top=True)
        if count >= 4 and index == count - 1:
            labels = _blink(labels)
        return _clear_ring(labels.copy())

    if kind in ("walk", "run"):
        amplitude = 2 if kind == "run" and body_h >= 12 else 1
        split = blueprint.leg_row
        s, c = math.sin(theta), math.cos(theta)
        lift_left = amplitude if s > 0.38 else 0
        lift_right = amplitude if s < -0.38 else 0
        spread = 1 if c < -0.38 else 0
        bob = 1 if abs(s) > 0.92 or (kind == "run" and (lift_left or lift_right)) else 0
        cols = np.arange(w)
        left_side = cols < (w - 1) / 2.0
        right_side = cols > (w - 1) / 2.0
        legs = np.zeros_like(base, dtype=bool)
        legs[split:] = True
        labels = base
        if spread:
            labels = _move_region(labels, legs & left_side[None, :], 0, -min(spread, room_left), on_top=True)
            labels = _move_region(labels, legs & right_side[None, :], 0, min(spread, room_right), on_top=True)
        if lift_left:
            labels = _move_region(labels, legs & left_side[None, :], -lift_left, 0, on_top=False)
        if lift_right:
            labels = _move_region(labels, legs & right_side[None, :], -lift_right, 0, on_top=False)
        if bob:
            upper = np.zeros_like(base, dtype=bool)
            upper[:split] = True
            labels = _move_region(labels, upper, 1, 0, on_top=True)
        return _clear_ring(labels.copy())

    if kind == "hop":
        up = min(room_top, 1)
        if index % 2:
            return _warp(base, 1.0, 1.0, 0, -up) if up else _warp(base, 1.1, 0.85, 0, 0)
        return _warp(base, 1.08, 1 - 1.2 / max(2, body_h), 0, 0)

    if kind == "jump":
        if count >= 4 and index == 1:  # anticipation crouch
            return _warp(base, 1.12, 1 - max(0.12, 1.2 / max(2, body_h)), 0, 0)
        height = max(1, min(room_top, max(1, body_h // 4)))
        arc = math.sin(math.pi * index / count)
        rise = max(1, int(round(height * arc))) if room_top else 0
        stretch = 1.0 + (0.1 if index < count / 2 else 0.0)
        if not rise:
            return _warp(base, 0.92, 1.0 + max(0.1, 1.2 / max(2, body_h)), 0, 0)
        return _warp(base, 1.0 / stretch, 1.0, 0, -rise)

    if kind == "attack":
        phase = index / count
        reach = max(1, min(room_right, max(1, body_w // 6)))
        if phase <= 1 / 3:
            back = min(1, room_left)
            return _warp(base, 0.9, 1.0, -back, 0) if back else _warp(base, 0.88, 1.0, 0, 0)
        if phase <= 2 / 3:
            return _warp(base, 1.12, 0.95, reach if room_right else 0, 0)
        return _warp(base, 1.05, 1.0, min(1, room_right), 0)

    # pulse: squash and stretch, anchored at the feet
    k = (1 - math.cos(theta)) / 2
    amount = max(0.15, 1.5 / max(2, body_h))
    return _warp(base, 1 + k * amount * 0.8, 1 - k * amount, 0, 0)


# --------------------------------------------------------------------------- rig: parts and views

RIG_STYLES = ("character", "creature")
"""Styles with a body rig (parts, views); items and tiles have none."""

# Body part ids of :func:`part_map` (image left/right, as seen on screen).
HEAD, TORSO, ARM_LEFT, ARM_RIGHT, LEG_LEFT, LEG_RIGHT = 1, 2, 3, 4, 5, 6
PART_NAMES = ("", "head", "torso", "arm_left", "arm_right", "leg_left", "leg_right")

_SIDE_SCALE = 0.6  # width of a side (profile) view relative to the front
_DIAGONAL_SCALE = 0.8  # width of a three-quarter view


def part_map(blueprint: _Blueprint) -> np.ndarray:
    """Body part id per cell of the blueprint's base cells (0 outside the body).

    Legs are the rows from ``leg_row`` down, split at the grid's centre column (the
    same split the walk cycle lifts); the head is the top 40% of the rest; arms are
    the trunk cells beyond 70% of its widest half-extent (only when that is at least
    2 cells, so blobs have no arms)."""
    body = blueprint.cells > 0
    parts = np.zeros(body.shape, dtype=np.int8)
    box = _bbox(body)
    if box is None:
        return parts
    top, bottom, _, _ = box
    h, w = body.shape
    split = blueprint.leg_row if blueprint.leg_row is not None else bottom + 1
    split = min(max(split, top + 1), bottom + 1)
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    centre = (w - 1) / 2.0
    left, right = cols < centre, cols > centre
    head = body & (rows < top + max(1, int(round((split - top) * 0.4))))
    trunk = body & (rows < split) & ~head
    parts[head] = HEAD
    parts[trunk] = TORSO
    if trunk.any():
        reach = np.abs(cols - centre) * trunk
        widest = float(reach.max())
        if widest >= 2:
            arm = trunk & (np.abs(cols - centre) > 0.7 * widest)
            parts[arm & left] = ARM_LEFT
            parts[arm & right] = ARM_RIGHT
    legs = body & (rows >= split)
    parts[legs] = TORSO  # the centre column of an odd grid
    parts[legs & left] = LEG_LEFT
    parts[legs & right] = LEG_RIGHT
    return parts


def _warped_column(x: int, anchor: float, scale: float) -> int:
    """Where :func:`_warp` with ``scale_x`` puts source column ``x``."""
    return int(math.floor(anchor + (x + 0.5 - anchor) * scale))


def view(blueprint: _Blueprint, direction: str) -> _Blueprint:
    """The blueprint seen from ``direction`` — a 2D turnaround, not a 3D model:
    the back (``n``) hides the eyes (and turns a character's face into hair); side
    views squash the body to 60% of its width with one eye at the front; diagonals
    squash to 80% with the eyes moved a cell toward the facing side; west-facing
    views mirror the east-facing ones. ``s`` (and sprites without a rig) are the
    blueprint itself, so a sprite without ``directions`` is unchanged."""
    if direction in ("", "s") or blueprint.style not in RIG_STYLES:
        return blueprint
    mirrored = direction in ("w", "sw", "nw")
    facing = {"w": "e", "sw": "se", "nw": "ne"}.get(direction, direction)
    back = facing in ("n", "ne")
    cells = blueprint.cells.copy()
    label = cells >> 2
    eyes = [(int(y), int(x), int(cells[y, x])) for y, x in zip(*np.nonzero((label == EYE) | (label == PUPIL)))]
    face = DETAIL if blueprint.style == "character" else PRIMARY
    for y, x, value in eyes:
        cells[y, x] = face * TONES + (value & 3)
    if back and blueprint.style == "character":
        head = part_map(blueprint) == HEAD
        skin = head & ((cells >> 2) == DETAIL)
        cells[skin] = ACCENT * TONES + (cells[skin] & 3)
    scale = {"n": 1.0, "e": _SIDE_SCALE}.get(facing, _DIAGONAL_SCALE)
    box = _bbox(cells > 0)
    if scale < 1.0 and box is not None:
        anchor = (box[2] + box[3] + 1) / 2.0
        cells = _warp(cells, scale, 1.0, 0, 0)
        if not back:
            body = cells > 0
            interior = body & _neighbors_all(body)
            centre = (blueprint.cells.shape[1] - 1) / 2.0
            shift = 1 if facing == "se" else max(1, int(round((box[3] - box[2] + 1) * (1 - scale) / 4)))
            for y, x, value in eyes:
                if facing == "e" and x < centre:
                    continue  # a profile shows one eye
                target = _warped_column(x, anchor, scale) + shift
                for column in (target, target - 1):
                    if 0 <= column < cells.shape[1] and interior[y, column]:
                        cells[y, column] = value
                        break
    if mirrored:
        cells = np.ascontiguousarray(cells[:, ::-1])
    return replace(blueprint, cells=cells.astype(np.int8), labels=(cells >> 2).astype(np.int8))


def frame_cells(blueprint: _Blueprint, spec: FrameSpec, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The rig's frame: (cells, part ids) of frame ``spec`` seen from ``spec.direction``.

    The part map rides through the very same transform as the cells (every transform
    moves cells by where the body is, never by their values), so each part's pose
    in a frame is exactly where the animation put it."""
    seen = view(blueprint, spec.direction)
    cells = _frame_labels(seen, spec, count)
    parts = part_map(seen)
    return cells, _frame_labels(replace(seen, cells=parts), spec, count)


# --------------------------------------------------------------------------- generator


_KNOWN_DIRECTIONS = frozenset({"", *DIRECTIONS[8]})


def _palette_hex(palette: Sequence[tuple[int, int, int]]) -> list[str]:
    """``rrggbb`` of every colour."""
    return [f"{r:02x}{g:02x}{b:02x}" for r, g, b in palette]


def _style_of(request: GenerationRequest) -> Any:
    return request.options.get("style", DEFAULT_STYLE)


def _prompt_colors(prompt: str | None) -> list[tuple[float, float | None, float | None]]:
    if not prompt:
        return []
    return [_COLOR_WORDS[w] for w in _WORD.findall(prompt.lower()) if w in _COLOR_WORDS]


def _seed_for(request: GenerationRequest, style: str) -> int:
    text = f"sparky-procedural/v{ALGORITHM_VERSION}/{style}/{request.seed}/{request.sprite}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "little")


def _blueprint(request: GenerationRequest) -> tuple[_Blueprint, _Layout]:
    style = str(_style_of(request))
    layout = _layout(request.width, request.height)
    rng = np.random.Generator(np.random.PCG64(_seed_for(request, style)))
    shape = _TEMPLATES[style](rng, layout.cells_w, layout.cells_h)
    labels, leg_row = shape.labels, shape.leg_row

    colors = _ColorSource.of(request.palette)
    words = _prompt_colors(request.prompt)
    primary = colors.anchor(rng, words[0] if words else None, (0.09, 0.16), (0.5, 0.66))
    if len(words) > 1:
        secondary = colors.anchor(rng, words[1], (0.07, 0.14), (0.45, 0.7))
    else:
        # Creatures, characters and items may contrast; tiles stay analogous.
        offsets = [-35.0, -20.0, 20.0, 35.0] if style == "tile" else [-50.0, 40.0, 150.0, 180.0, 210.0]
        offset = _choice(rng, offsets)
        lightness = primary.lightness + float(rng.uniform(-0.12, 0.12))
        secondary_word = ((primary.hue + offset) % 360.0, None, min(0.8, max(0.35, lightness)))
        secondary = colors.anchor(rng, secondary_word, (0.07, 0.14), (0.42, 0.68))
    if style == "character":  # skin
        detail_word = (float(rng.uniform(45, 70)), float(rng.uniform(0.05, 0.09)), float(rng.uniform(0.68, 0.8)))
        if rng.random() < 0.2:  # orcs, aliens, ghosts
            detail_word = (float(rng.uniform(0, 360)), 0.1, 0.7)
    elif style == "item":  # steel
        detail_word = (float(rng.uniform(230, 260)), 0.025, 0.72)
    else:
        detail_word = ((primary.hue + 90.0) % 360.0, 0.05, 0.75)
    detail = colors.anchor(rng, detail_word, (0.03, 0.08), (0.6, 0.8))
    if style == "character":  # hair / hats: black, brown, blond, red, white, or any hue
        accent_word = [
            (280.0, 0.02, 0.3),
            (55.0, 0.07, 0.42),
            (90.0, 0.11, 0.8),
            (40.0, 0.14, 0.58),
            (250.0, 0.01, 0.88),
            (float(rng.uniform(0, 360)), 0.12, 0.55),
        ][int(rng.integers(6))]
    elif style == "creature":  # horns, claws: bone
        accent_word = (85.0, 0.04, 0.86)
    else:
        accent_word = (
            (primary.hue + _choice(rng, (-20.0, 20.0))) % 360.0,
            0.1,
            min(0.85, primary.lightness + 0.15),
        )
    accent = colors.anchor(rng, accent_word, (0.05, 0.12), (0.5, 0.8))
    ramps = np.zeros((len(SHADED_MATERIALS) + 1, TONES, 3), dtype=np.uint8)
    for material, spec in ((PRIMARY, primary), (SECONDARY, secondary), (DETAIL, detail), (ACCENT, accent)):
        ramps[material] = colors.ramp(spec)
    ramps[EMPTY] = ramps[PRIMARY]
    eye_choice = [(0.96, 0.02, 100.0), (0.88, 0.17, 95.0), (0.63, 0.22, 29.0), (0.85, 0.12, 195.0)]
    eye_l, eye_c, eye_h = eye_choice[int(rng.integers(len(eye_choice)))]
    eye = colors.pick_lch(eye_l, eye_c, eye_h)
    outline = colors.outline(primary)
    if style == "tile" and not colors.constrained:
        # Mortar reads as a deep shade of the stone, not ink black.
        outline = oklab_to_srgb(
            lch(max(0.15, primary.lightness - 0.35), primary.chroma * 0.6, _lerp_hue(primary.hue, 285.0, 0.3))
        )
    if shape.tones is not None:
        tones = shape.tones
    elif style == "tile":
        tones = _shade(np.where(labels == MORTAR, 0, labels), wrap=True)
    else:
        tones = _shade((labels > 0).astype(np.int8), wrap=False)
    cells = np.where(labels > 0, labels * TONES + tones, 0).astype(np.int8)
    blueprint = _Blueprint(
        style, labels, ramps, np.asarray(outline, np.uint8), np.asarray(eye, np.uint8), leg_row, cells
    )
    return blueprint, layout


def _frame_counts(frames: Sequence[FrameSpec]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for spec in frames:
        counts[spec.animation] = max(counts.get(spec.animation, 0), spec.index + 1)
    return counts


class ProceduralGenerator(Generator):
    """Seeded mirrored-mask sprites: the default generator, needs no GPU and no files.

    Options (per sprite): ``style`` — one of :data:`STYLES` (default ``creature``).
    It declares ``uses_palette``: the sprite's palette supplies every colour (nearest
    in OKLab to the ramps it would build), so the quantize step keeps them as they are;
    colour words in the prompt steer the hues.
    """

    name: ClassVar[str] = "procedural"
    doc: ClassVar[str] = "Seeded mirrored-mask sprites on the CPU: no GPU, no files (the default)."
    uses_palette: ClassVar[bool] = True
    runs_on: ClassVar[str] = "cpu"
    option_fields: ClassVar[dict[str, Field]] = {
        # the style's values are checked by validate (its message names the procedural styles)
        "style": Field("str", "What to draw: " + ", ".join(f"`{s}`" for s in STYLES) + ".", DEFAULT_STYLE),
    }

    def validate(self, request: GenerationRequest, reads: ReadContext | None = None) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        style = _style_of(request)
        if not isinstance(style, str) or style not in STYLES:
            problems.append(
                Diagnostic(
                    f"unknown procedural style {style!r}",
                    key="style",
                    sprite=request.sprite,
                    stage="generate",
                    expected=f"one of {', '.join(STYLES)}",
                    found=repr(style),
                    hint=suggest(style, STYLES) if isinstance(style, str) else None,
                )
            )
        for axis, value in (("width", request.width), ("height", request.height)):
            if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIZE <= value <= MAX_SIZE:
                problems.append(
                    Diagnostic(
                        f"sprite {axis} out of range for the procedural generator",
                        key="size",
                        sprite=request.sprite,
                        stage="generate",
                        expected=f"an integer {MIN_SIZE}..{MAX_SIZE}",
                        found=repr(value),
                    )
                )
        unknown = sorted({spec.direction for spec in request.frames} - _KNOWN_DIRECTIONS)
        if unknown:
            problems.append(
                Diagnostic(
                    f"unknown direction {unknown[0]!r}",
                    key="directions",
                    sprite=request.sprite,
                    stage="generate",
                    expected=", ".join(DIRECTIONS[8]),
                    found=", ".join(unknown),
                )
            )
        for spec in request.frames:
            if spec.index < 0:
                problems.append(
                    Diagnostic(
                        "negative frame index",
                        key=f"animations.{spec.animation}",
                        sprite=request.sprite,
                        stage="generate",
                        expected="an index >= 0",
                        found=str(spec.index),
                    )
                )
        return problems

    def cache_key(self, request: GenerationRequest, reads: ReadContext | None = None) -> Mapping[str, Any]:
        """Everything that shapes the output. The palette is included because the
        colours are picked from it; the prompt only through its colour words."""
        return {
            "generator": self.name,
            "algorithm": ALGORITHM_VERSION,
            "sprite": request.sprite,
            "seed": request.seed,
            "size": [request.width, request.height],
            "style": _style_of(request),
            "frames": [
                [spec.animation, spec.index] + ([spec.direction] if spec.direction else []) for spec in request.frames
            ],
            "animation_lengths": _frame_counts(request.frames),
            "palette": _palette_hex(request.palette),
            "prompt_colors": [list(w) for w in _prompt_colors(request.prompt)],
        }

    def warm(self, palettes: Sequence[tuple[tuple[int, int, int], ...]]) -> None:
        """A throwaway 8×8 sprite of every style with each palette (the first four): what
        numpy loads on first use, the per-palette colour sources and the shape grids."""
        frames = (FrameSpec("idle", 0), FrameSpec("walk", 0), FrameSpec("walk", 1))
        self.generate(
            [
                GenerationRequest(
                    f"warm-{style}", 8, 8, frames, 0, Path("."), palette=palette, options={"style": style}
                )
                for palette in list(palettes)[:4] or [()]
                for style in STYLES
            ]
        )

    def generate(
        self, requests: Sequence[GenerationRequest], reads: ReadContext | None = None
    ) -> list[list[np.ndarray]]:
        results: list[list[np.ndarray]] = []
        for request in requests:
            problems = self.validate(request)
            if problems:
                from ..errors import InvalidInput

                raise InvalidInput(problems)
            blueprint, layout = _blueprint(request)
            counts = _frame_counts(request.frames)
            tile = blueprint.style == "tile"
            rendered: dict[bytes, np.ndarray] = {}
            table = _color_table(blueprint)
            frames: list[np.ndarray] = []
            views = {direction: view(blueprint, direction) for direction in {spec.direction for spec in request.frames}}
            for spec in request.frames:
                cells = _frame_labels(views[spec.direction], spec, counts[spec.animation])
                key = cells.tobytes()
                if key not in rendered:
                    image_cells = _render(cells, blueprint, table)
                    rendered[key] = _to_image(image_cells, layout, request.width, request.height, tile)
                frames.append(rendered[key].copy())
            results.append(frames)
        return results
