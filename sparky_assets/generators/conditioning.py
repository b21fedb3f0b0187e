"""Conditioning images rendered from the procedural generator's rig.

A diffusion sprite with a rig style (``character``, ``creature``) gets, for every
frame, the procedural generator's own frame of the same sprite (same name, seed,
size, style, animation, index and direction) drawn four ways at the diffusion render
size:

* ``pose`` — a stick figure on black: head, neck, pelvis, shoulders, hands, hips and
  feet taken from where the animation moved each body part
  (:func:`~sparky_assets.generators.procedural.frame_cells` carries a part map
  through the same transform as the pixels), bones in fixed OpenPose-like colours;
* ``silhouette`` — the sprite's opaque pixels (body and outline) white on black;
* ``depth`` — a bulge: brighter the further a cell is from the silhouette's edge
  (near = bright, like depth ControlNets expect), black background;
* ``flat`` — the body in flat colours (each material's mid tone, eyes, outline) from
  the sprite's palette, on a white background: the init image of rig img2img.

:func:`sheet_layout` / :func:`compose_sheet` / :func:`slice_sheet` lay several
frames side by side in one strip (the ``sheet`` frame mode) and cut them apart.

Invariants: everything is pure numpy integer/float64 arithmetic on the cell grid —
the same request gives byte-identical images on every machine; the cell → render
mapping is nearest-neighbour by pixel centres, so a cell's pixels are exactly the
render pixels whose centres fall in it; the silhouette is exactly the procedural
sprite's alpha, resampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from . import procedural as rig
from .base import FrameSpec, GenerationRequest

CONDITIONING_KINDS = ("pose", "silhouette", "depth", "flat")
FLAT_BACKGROUND = (255, 255, 255)

# Joints drawn in this colour order; bones (a, b, colour) in OpenPose's hue ramp.
_JOINT_COLOURS: dict[str, tuple[int, int, int]] = {
    "head": (255, 0, 0),
    "neck": (255, 85, 0),
    "pelvis": (255, 170, 0),
    "shoulder_left": (255, 255, 0),
    "hand_left": (170, 255, 0),
    "shoulder_right": (85, 255, 0),
    "hand_right": (0, 255, 0),
    "hip_left": (0, 255, 170),
    "foot_left": (0, 170, 255),
    "hip_right": (0, 85, 255),
    "foot_right": (85, 0, 255),
}
BONES: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("head", "neck", (0, 0, 255)),
    ("neck", "pelvis", (255, 0, 85)),
    ("neck", "shoulder_left", (153, 0, 0)),
    ("shoulder_left", "hand_left", (153, 102, 0)),
    ("neck", "shoulder_right", (153, 153, 0)),
    ("shoulder_right", "hand_right", (102, 153, 0)),
    ("pelvis", "hip_left", (0, 153, 0)),
    ("hip_left", "foot_left", (0, 153, 153)),
    ("pelvis", "hip_right", (0, 102, 153)),
    ("hip_right", "foot_right", (0, 0, 153)),
)


def has_rig(request: GenerationRequest) -> bool:
    """Whether the sprite's ``style`` names a rigged body (character, creature)."""
    return request.options.get("style") in rig.RIG_STYLES


@dataclass(frozen=True)
class RigFrame:
    cells: np.ndarray
    """``label * 4 + tone`` per cell (the procedural frame)."""
    parts: np.ndarray
    """Body part id per cell (:data:`~sparky_assets.generators.procedural.PART_NAMES`)."""


class Rig:
    """The procedural rig of one sprite request and its conditioning renders."""

    def __init__(self, request: GenerationRequest):
        self.request = request
        self.blueprint, self.layout = rig._blueprint(request)
        self.table = rig._color_table(self.blueprint)
        self.counts = rig._frame_counts(request.frames)

    def frame(self, spec: FrameSpec) -> RigFrame:
        cells, parts = rig.frame_cells(self.blueprint, spec, self.counts.get(spec.animation, 1))
        return RigFrame(cells, parts)

    # -- cell space --------------------------------------------------------------

    def opaque(self, frame: RigFrame) -> np.ndarray:
        """Cells the procedural sprite paints: the body and its 1-cell outline."""
        body = frame.cells > 0
        return body | rig._neighbors_any(body)

    def sprite_rgba(self, frame: RigFrame) -> np.ndarray:
        """The procedural generator's own pixels for this frame (sprite size)."""
        return rig._to_image(
            rig._render(frame.cells, self.blueprint, self.table),
            self.layout,
            self.request.width,
            self.request.height,
            False,
        )

    def joints(self, frame: RigFrame) -> dict[str, tuple[float, float]]:
        """Joint positions in cell units (x, y; cell centres at +0.5) from where each
        part is in this frame. Parts absent from the frame give no joints."""
        parts = frame.parts
        out: dict[str, tuple[float, float]] = {}

        def cells_of(part: int) -> tuple[np.ndarray, np.ndarray]:
            ys, xs = np.nonzero(parts == part)
            return ys, xs

        def row_centre(ys: np.ndarray, xs: np.ndarray, row: int, edge: float) -> tuple[float, float]:
            return float(xs[ys == row].mean()) + 0.5, row + edge

        ys, xs = cells_of(rig.HEAD)
        if len(ys):
            out["head"] = (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)
        ys, xs = cells_of(rig.TORSO)
        if len(ys):
            out["neck"] = row_centre(ys, xs, int(ys.min()), 0.0)
            out["pelvis"] = row_centre(ys, xs, int(ys.max()), 1.0)
        elif "head" in out:
            out["neck"] = out["head"]
        for side in ("left", "right"):
            ys, xs = cells_of(rig.ARM_LEFT if side == "left" else rig.ARM_RIGHT)
            if len(ys):
                out[f"shoulder_{side}"] = row_centre(ys, xs, int(ys.min()), 0.5)
                out[f"hand_{side}"] = row_centre(ys, xs, int(ys.max()), 0.5)
            ys, xs = cells_of(rig.LEG_LEFT if side == "left" else rig.LEG_RIGHT)
            if len(ys):
                out[f"hip_{side}"] = row_centre(ys, xs, int(ys.min()), 0.5)
                out[f"foot_{side}"] = row_centre(ys, xs, int(ys.max()), 0.5)
        if "pelvis" not in out and ("hip_left" in out or "hip_right" in out):
            hips = [out[k] for k in ("hip_left", "hip_right") if k in out]
            out["pelvis"] = (sum(x for x, _ in hips) / len(hips), min(y for _, y in hips))
        return out

    def depth_cells(self, frame: RigFrame) -> np.ndarray:
        """uint8 per cell: 0 outside; inside 80..255 by 4-connected distance to the
        edge of the opaque region (a bulge: thick parts come forward)."""
        mask = self.opaque(frame)
        distance = np.zeros(mask.shape, dtype=np.int32)
        current = mask.copy()
        while current.any():
            distance += current
            current = current & rig._neighbors_all(current)
        peak = max(1, int(distance.max()))
        level = 80 + np.round(175 * np.sqrt(distance / peak)).astype(np.int32)
        return np.where(mask, level, 0).astype(np.uint8)

    def flat_cells(self, frame: RigFrame) -> np.ndarray:
        """RGB per cell: material mid tones, eye colours, outline; background white."""
        mid = self.table[:, 1, :3].copy()
        out = mid[frame.cells >> 2]
        body = frame.cells > 0
        outline = rig._neighbors_any(body) & ~body
        out[outline] = self.blueprint.outline
        out[~(body | outline)] = FLAT_BACKGROUND
        return out.astype(np.uint8)

    # -- render space ------------------------------------------------------------

    def _sampler(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every render pixel: the cell (row, column) under its centre and
        whether that is inside the cell grid (nearest neighbour, integer maths)."""
        sw, sh = self.request.width, self.request.height
        sx = (2 * np.arange(width) + 1) * sw // (2 * width)
        sy = (2 * np.arange(height) + 1) * sh // (2 * height)
        lay = self.layout
        cx = (sx - lay.offset_x) // lay.scale
        cy = (sy - lay.offset_y) // lay.scale
        inside = ((cy >= 0) & (cy < lay.cells_h))[:, None] & ((cx >= 0) & (cx < lay.cells_w))[None, :]
        return np.clip(cy, 0, lay.cells_h - 1), np.clip(cx, 0, lay.cells_w - 1), inside

    def _upsample(self, per_cell: np.ndarray, width: int, height: int, outside) -> np.ndarray:
        rows, cols, inside = self._sampler(width, height)
        image = per_cell[rows][:, cols]
        fill = np.asarray(outside, dtype=per_cell.dtype)
        return np.where(inside[..., None] if image.ndim == 3 else inside, image, fill)

    def render(self, frame: RigFrame, kind: str, width: int, height: int) -> np.ndarray:
        """The ``kind`` conditioning image of ``frame``, ``(height, width, 3) uint8``."""
        if kind == "silhouette":
            mask = self._upsample(self.opaque(frame), width, height, False)
            return np.repeat((mask * np.uint8(255))[..., None], 3, axis=2).astype(np.uint8)
        if kind == "depth":
            level = self._upsample(self.depth_cells(frame), width, height, 0)
            return np.repeat(level[..., None], 3, axis=2)
        if kind == "flat":
            return self._upsample(self.flat_cells(frame), width, height, FLAT_BACKGROUND)
        if kind == "pose":
            return self._pose(frame, width, height)
        raise ValueError(f"unknown conditioning kind {kind!r}; expected one of {', '.join(CONDITIONING_KINDS)}")

    def _pose(self, frame: RigFrame, width: int, height: int) -> np.ndarray:
        lay = self.layout
        fx = width / self.request.width
        fy = height / self.request.height
        points = {
            name: ((lay.offset_x + x * lay.scale) * fx, (lay.offset_y + y * lay.scale) * fy)
            for name, (x, y) in self.joints(frame).items()
        }
        image = np.zeros((height, width, 3), dtype=np.uint8)
        px = np.arange(width, dtype=np.float64)[None, :] + 0.5
        py = np.arange(height, dtype=np.float64)[:, None] + 0.5
        radius = max(1.0, min(width, height) / 64.0)
        for a, b, colour in BONES:
            if a in points and b in points:
                (ax, ay), (bx, by) = points[a], points[b]
                dx, dy = bx - ax, by - ay
                length2 = dx * dx + dy * dy
                t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0) if length2 else 0.0
                near = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2 <= radius * radius
                image[near] = colour
        for name, colour in _JOINT_COLOURS.items():
            if name in points:
                x, y = points[name]
                image[(px - x) ** 2 + (py - y) ** 2 <= (radius * 1.5) ** 2] = colour
        return image


def rig_request(request: GenerationRequest) -> GenerationRequest:
    """The request the procedural rig is built from: the diffusion sprite's own name,
    seed, size, frames, style, palette and prompt (its colour words)."""
    return replace(request, options={"style": request.options.get("style")}, settings={})


# --------------------------------------------------------------------------- sheets


@dataclass(frozen=True)
class SheetLayout:
    """Frames side by side in one strip: frame ``i`` occupies columns
    ``[i * frame_width, (i + 1) * frame_width)``."""

    frames: int
    frame_width: int
    frame_height: int

    @property
    def width(self) -> int:
        return self.frames * self.frame_width

    @property
    def height(self) -> int:
        return self.frame_height

    def box(self, index: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of frame ``index``, right/bottom exclusive."""
        if not 0 <= index < self.frames:
            raise IndexError(index)
        return index * self.frame_width, 0, (index + 1) * self.frame_width, self.frame_height


def sheet_layout(frames: int, frame_width: int, frame_height: int) -> SheetLayout:
    if frames < 1 or frame_width < 1 or frame_height < 1:
        raise ValueError("a sheet needs at least one frame of at least 1x1 pixels")
    return SheetLayout(frames, frame_width, frame_height)


def compose_sheet(layout: SheetLayout, images: Sequence[np.ndarray]) -> np.ndarray:
    """One strip image from ``images`` (each ``(frame_height, frame_width, C)``)."""
    if len(images) != layout.frames:
        raise ValueError(f"sheet of {layout.frames} frames got {len(images)} images")
    for image in images:
        if image.shape[:2] != (layout.frame_height, layout.frame_width):
            raise ValueError(f"frame {image.shape[:2]} does not fit a {layout.frame_width}x{layout.frame_height} cell")
    return np.ascontiguousarray(np.concatenate(list(images), axis=1))


def slice_sheet(layout: SheetLayout, sheet: np.ndarray) -> list[np.ndarray]:
    """The frames of a strip made with ``layout`` (exact inverse of :func:`compose_sheet`)."""
    if sheet.shape[:2] != (layout.height, layout.width):
        raise ValueError(f"sheet {sheet.shape[1]}x{sheet.shape[0]} is not {layout.width}x{layout.height}")
    out = []
    for i in range(layout.frames):
        left, top, right, bottom = layout.box(i)
        out.append(np.ascontiguousarray(sheet[top:bottom, left:right]))
    return out
