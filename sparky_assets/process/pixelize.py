"""Pixelize: turn "fake pixel art" (a high-resolution image that *looks* like pixel
art — blurred, noisy, JPEG-damaged, at an unknown scale and offset) into real pixel
art at sprite resolution.

Three pure steps, numpy only:

1. :func:`detect_grid` finds the pixel grid's period and phase per axis from the
   colour-change profile (per-column / per-row sum of absolute neighbour
   differences). Each candidate period ``P`` in ``2..64`` is scored with every phase
   at once (a ``bincount`` of the profile by ``position mod P``); the score is the
   contrast between grid-line positions and the rest, weighted by ``sqrt`` of the
   number of grid lines (so a long period cannot win by fitting a few strong edges),
   then the winner is checked against its divisors and multiples (the usual
   octave errors of period detection).
2. :func:`collapse_cells` takes each cell's dominant colour: the mode of the
   cell's central half after coarse (5-bit) quantisation, reported as the mean of the
   pixels in the winning bin — or the per-channel median (``method="median"``).
3. Background → alpha 0 (``"auto"``: flood fill from the corners of the collapsed
   image with the corners' colour, within ``tolerance``; a key colour; or none), then
   the result is fitted to ``target_size`` (crop to full cells around the content,
   pad by centring, or — when the content is larger than the target — resample the
   cell grid by nearest cell centre).

Invariants: outputs are RGBA ``uint8`` with alpha exactly 0 or 255 and RGB zero
where alpha is 0; every function is deterministic (no RNG, ties broken by index).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

MIN_PERIOD = 2
MAX_PERIOD = 64
MIN_REPEATS = 3
"""A period must repeat at least this many times across the image to be a candidate."""
NOISE_FLOOR = 3.0
"""Pixel differences below this multiple of the median difference count as noise."""
UNMIX_TOLERANCE = 24
"""Colour distance (max per channel) within which cells share a palette colour."""
OCTAVE_SCORE = 0.6
"""See :func:`_resolve_octaves`."""
NULL_PERMUTATIONS = 6
"""Shuffled profiles scored to calibrate :attr:`Grid.confidence`."""
OCTAVE_SUPPORT = 0.2
"""See :func:`_resolve_octaves`."""
LOW_CONFIDENCE = 0.2
"""Below this grid confidence, ``pixelize`` with a ``target_size`` keeps the detected
grid only if it gives about ``target_size`` cells; otherwise it divides the image
evenly into ``target_size`` cells."""
DEFAULT_TOLERANCE = 40
"""Largest per-channel difference (0–255) still counted as the background colour."""

Background = Literal["auto", "none"] | str | tuple[int, int, int]


@dataclass(frozen=True)
class Grid:
    """A pixel grid: cells are ``period`` image pixels wide and the first full cell
    starts at ``phase`` (``0 <= phase < period``). Periods may be fractional when the
    grid comes from dividing an image evenly; detected periods are integers."""

    period_x: float
    period_y: float
    phase_x: float
    phase_y: float
    confidence: float
    """0 (no grid found) .. 1 (crisp grid: all colour changes on grid lines)."""


# --------------------------------------------------------------------------- detection


def _as_rgba(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3|4) image, found shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, found dtype {array.dtype}")
    if array.shape[2] == 3:
        alpha = np.full(array.shape[:2] + (1,), 255, np.uint8)
        array = np.concatenate([array, alpha], axis=2)
    return array


def _change_profiles(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour-change energy between neighbouring columns (x) and rows (y).

    ``profile_x[i]`` measures the change between columns ``i`` and ``i + 1``. Alpha
    counts as a fourth channel; each pixel difference is capped so a handful of very
    strong edges cannot outvote the regular grid.
    """
    data = rgba.astype(np.int16)
    dx = np.abs(np.diff(data, axis=1)).sum(axis=2, dtype=np.int32)
    dy = np.abs(np.diff(data, axis=0)).sum(axis=2, dtype=np.int32)
    # Noise and JPEG ringing put small differences everywhere; real colour changes are
    # large. Subtracting a noise floor (a multiple of the median difference, which is
    # noise: most neighbours lie inside one cell) keeps only the changes.
    floor = NOISE_FLOOR * max(float(np.median(dx)), float(np.median(dy)), 1.0)
    cap = 96
    profile_x = np.clip(dx - floor, 0, cap).sum(axis=0, dtype=np.float64)
    profile_y = np.clip(dy - floor, 0, cap).sum(axis=1, dtype=np.float64)
    return profile_x, profile_y


@dataclass(frozen=True)
class _AxisScores:
    periods: np.ndarray  # candidate periods
    score: np.ndarray  # significance: contrast * sqrt(grid lines)
    contrast: np.ndarray  # aligned mean - overall mean, best phase
    phase: np.ndarray  # best phase of the *profile* (a grid line index mod P)


def _score_axis(profile: np.ndarray, max_period: int) -> _AxisScores:
    n = profile.size
    positions = np.arange(n)
    total = profile.sum()
    mean = total / max(n, 1)
    periods = np.arange(MIN_PERIOD, max_period + 1)
    score = np.zeros(periods.size)
    contrast = np.zeros(periods.size)
    phase = np.zeros(periods.size, dtype=np.int64)
    for i, period in enumerate(periods):
        residues = positions % period
        sums = np.bincount(residues, weights=profile, minlength=period)
        counts = np.bincount(residues, minlength=period).astype(np.float64)
        aligned = sums / counts
        best = int(np.argmax(aligned))  # argmax: lowest phase wins ties
        others = (total - sums[best]) / max(n - counts[best], 1.0)
        phase[i] = best
        contrast[i] = aligned[best] - mean
        score[i] = (aligned[best] - others) * math.sqrt(counts[best])
    return _AxisScores(periods, score, contrast, phase)


def _lattice_support(residue_means: np.ndarray, phase: int, divisor: int) -> float:
    """How strongly the lines of period ``divisor`` *between* the winner's lines show
    up, as a fraction of the winner's own line strength (≈1: they are real grid lines,
    ≈0: they fall inside cells).

    ``residue_means`` are profile means per residue of the winning period ``W``;
    ``phase`` is the winner's residue. The baseline is the median of residues that are
    neither on the divisor's lattice nor next to it (blur spreads a line to its
    neighbours); when every residue is on or next to it, the off-lattice mean.
    """
    period = residue_means.size
    lattice = {(phase + j * divisor) % period for j in range(period // divisor)}
    near = lattice | {(r + 1) % period for r in lattice} | {(r - 1) % period for r in lattice}
    off = [r for r in range(period) if r not in near]
    if off:
        baseline = float(np.median(residue_means[off])) if len(off) > 2 else float(np.mean(residue_means[off]))
    else:
        # Tiny periods: every residue is on or next to the lattice. The quietest one
        # is the best estimate of "inside a cell" (its neighbours carry blur).
        off = [r for r in range(period) if r not in lattice]
        if not off:
            return 1.0
        baseline = float(np.min(residue_means[off]))
    main = residue_means[phase] - baseline
    if main <= 0:
        return 0.0
    between = np.mean([residue_means[r] for r in lattice if r != phase]) - baseline
    return float(between / main)


def _significance(profile: np.ndarray, limit: int, observed: float) -> float:
    """0..1: how far the chosen period's score stands above the best score the same
    profile values reach in a random order — the period search run on
    :data:`NULL_PERMUTATIONS` fixed permutations. ``observed / mean(null best) - 1``,
    clipped: 0 for noise or photos (some period always fits a few spikes), ≈0.5 for
    typical fake pixel art, 1 for a crisp grid."""
    if observed <= 0:
        return 0.0
    rng = np.random.default_rng(0)
    null = [float(_score_axis(rng.permutation(profile), limit).score.max()) for _ in range(NULL_PERMUTATIONS)]
    return float(np.clip(observed / max(float(np.mean(null)), 1e-9) - 1.0, 0.0, 1.0))


def _residue_means(profile: np.ndarray, period: int) -> np.ndarray:
    residues = np.arange(profile.size) % period
    sums = np.bincount(residues, weights=profile, minlength=period)
    counts = np.maximum(np.bincount(residues, minlength=period), 1)
    return sums / counts


def _resolve_octaves(
    profiles: Sequence[np.ndarray], phases: Sequence[int], winner: int, score: np.ndarray | None = None
) -> int:
    """The smallest divisor of the winning period whose in-between lines are real.

    Period detection's classic error is an octave: a multiple ``kP`` of the true
    period fits the evidence almost as well (its lines are a subset of the real ones,
    and with few lines the best subset can even fit better). The divisor ``P`` is
    accepted when the lines it adds between the winner's carry at least
    :data:`OCTAVE_SUPPORT` of the winner's line strength (averaged over the axes) and
    its own score is at least :data:`OCTAVE_SCORE` of the winner's (measured: true
    divisors 0.74–1.0, false ones 0.02–0.43 — JPEG's 2-px chroma and 8-px blocks
    make false divisors look supported at tiny periods).
    """
    means = [_residue_means(p, winner) for p in profiles]
    for divisor in range(MIN_PERIOD, winner):
        if winner % divisor:
            continue
        support = np.mean([_lattice_support(m, ph, divisor) for m, ph in zip(means, phases)])
        relative = score[divisor - MIN_PERIOD] / score[winner - MIN_PERIOD] if score is not None else 1.0
        if support >= OCTAVE_SUPPORT and relative >= OCTAVE_SCORE:
            return divisor
    return winner


def detect_grid(image: np.ndarray, *, square: bool = True, max_period: int = MAX_PERIOD) -> Grid:
    """Find the pixel grid of fake pixel art.

    ``square=True`` (the default) assumes square pixels and chooses one period for
    both axes from the summed evidence (phases stay per axis); ``square=False`` lets
    the axes differ. The returned phase is where the first full cell starts.
    """
    rgba = _as_rgba(image)
    height, width = rgba.shape[:2]
    profile_x, profile_y = _change_profiles(rgba)
    limit_x = min(max_period, (width - 1) // MIN_REPEATS)
    limit_y = min(max_period, (height - 1) // MIN_REPEATS)
    if min(limit_x, limit_y) < MIN_PERIOD or profile_x.sum() + profile_y.sum() == 0:
        return Grid(1, 1, 0, 0, 0.0)
    if square:
        limit = min(limit_x, limit_y)
        sx = _score_axis(profile_x, limit)
        sy = _score_axis(profile_y, limit)
        # Each axis's significance is normalised so a wide image cannot drown a tall one.
        score = sx.score / max(sx.score.max(), 1e-9) + sy.score / max(sy.score.max(), 1e-9)
        w = int(np.argmax(score))
        winner = int(sx.periods[w])
        period = _resolve_octaves([profile_x, profile_y], [int(sx.phase[w]), int(sy.phase[w])], winner, score)
        i = period - MIN_PERIOD
        confidence = (
            _significance(profile_x, limit, float(sx.score[i])) + _significance(profile_y, limit, float(sy.score[i]))
        ) / 2
        return Grid(period, period, (int(sx.phase[i]) + 1) % period, (int(sy.phase[i]) + 1) % period, confidence)
    axes = []
    for profile, limit in ((profile_x, limit_x), (profile_y, limit_y)):
        scores = _score_axis(profile, limit)
        w = int(np.argmax(scores.score))
        winner = int(scores.periods[w])
        period = _resolve_octaves([profile], [int(scores.phase[w])], winner, scores.score)
        i = period - MIN_PERIOD
        axes.append(
            (period, (int(scores.phase[i]) + 1) % period, _significance(profile, limit, float(scores.score[i])))
        )
    (px, fx, cx), (py, fy, cy) = axes
    return Grid(px, py, fx, fy, (cx + cy) / 2)


# --------------------------------------------------------------------------- collapse


def cell_edges(length: int, period: float, phase: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell boundaries along one axis and a flag per cell for partial (cut) cells.

    Cells are ``[edges[i], edges[i+1])``. A partial cell at either end is kept only
    when it covers at least half a period.
    """
    if period <= 1:
        return np.arange(length + 1), np.zeros(length, dtype=bool)
    first = phase % period
    count = int(math.floor((length - first) / period + 1e-9))
    lines = [first + k * period for k in range(count + 1)]
    edges = [int(round(v)) for v in lines if 0 < round(v) < length]
    boundaries = [0] + edges + [length]
    partial = []
    cells = []
    for a, b in zip(boundaries[:-1], boundaries[1:]):
        size = b - a
        is_partial = size < period - 0.5
        if is_partial and size < period / 2:
            continue
        cells.append((a, b))
        partial.append(is_partial)
    if not cells:
        return np.array([0, length]), np.array([True])
    # Consecutive kept cells share boundaries; a dropped end cell removes its span.
    starts = np.array([a for a, _ in cells])
    ends = np.array([b for _, b in cells])
    return np.concatenate([starts, ends[-1:]]), np.array(partial)


def _sample_offsets(starts: np.ndarray, ends: np.ndarray, samples: int) -> np.ndarray:
    """Pixel indices inside the central half of each cell, ``samples`` per cell."""
    sizes = (ends - starts).astype(np.float64)
    fractions = 0.25 + 0.5 * (np.arange(samples) + 0.5) / samples
    offsets = np.floor(sizes[:, None] * fractions[None, :]).astype(np.int64)
    return np.minimum(starts[:, None] + offsets, ends[:, None] - 1)


def collapse_cells(
    rgba: np.ndarray,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    *,
    method: Literal["mode", "median"] = "mode",
) -> np.ndarray:
    """One colour per cell (``(cells_y, cells_x, 4)`` uint8) from the cells' centres."""
    rgba = _as_rgba(rgba)
    period_x = float(np.median(np.diff(x_edges)))
    period_y = float(np.median(np.diff(y_edges)))
    samples_x = int(np.clip(round(period_x / 2), 1, 8))
    samples_y = int(np.clip(round(period_y / 2), 1, 8))
    xs = _sample_offsets(x_edges[:-1], x_edges[1:], samples_x)  # (nx, sx)
    ys = _sample_offsets(y_edges[:-1], y_edges[1:], samples_y)  # (ny, sy)
    ny, nx = ys.shape[0], xs.shape[0]
    # (ny, nx, sy*sx, 4): every sampled pixel of every cell.
    patch = rgba[ys[:, None, :, None], xs[None, :, None, :]]
    patch = patch.reshape(ny, nx, samples_y * samples_x, 4)
    if method == "median":
        return np.median(patch, axis=2).round().astype(np.uint8)
    if method != "mode":
        raise ValueError(f"unknown collapse method {method!r}: expected 'mode' or 'median'")
    quantised = (patch >> 3).astype(np.int64)  # 5 bits per channel
    code = (quantised[..., 0] << 15) | (quantised[..., 1] << 10) | (quantised[..., 2] << 5) | quantised[..., 3]
    cells = ny * nx
    per_cell = samples_y * samples_x
    code = code.reshape(cells, per_cell)
    order = np.argsort(code, axis=1, kind="stable")
    sorted_codes = np.take_along_axis(code, order, axis=1)
    # Run lengths in each sorted row: the longest run is the mode (first one wins ties).
    starts = np.ones_like(sorted_codes, dtype=bool)
    starts[:, 1:] = sorted_codes[:, 1:] != sorted_codes[:, :-1]
    run_id = np.cumsum(starts, axis=1) - 1
    run_len = np.zeros_like(sorted_codes)
    rows = np.repeat(np.arange(cells), per_cell)
    np.add.at(run_len, (rows, run_id.ravel()), 1)
    winner_run = np.argmax(run_len, axis=1)
    in_winner = run_id == winner_run[:, None]  # mask over sorted positions
    pixels = patch.reshape(cells, per_cell, 4)
    pixels_sorted = np.take_along_axis(pixels, order[..., None], axis=1).astype(np.float64)
    weight = in_winner[..., None]
    colour = (pixels_sorted * weight).sum(axis=1) / weight.sum(axis=1)
    return colour.round().astype(np.uint8).reshape(ny, nx, 4)


def _neighbour_mean(colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each cell's existing 4-neighbours and the largest per-channel difference
    to any of them."""
    height, width = colours.shape[:2]
    total = np.zeros_like(colours)
    count = np.zeros((height, width, 1))
    spread = np.zeros((height, width))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ys = slice(max(0, dy), height + min(0, dy))
        yd = slice(max(0, -dy), height + min(0, -dy))
        xs = slice(max(0, dx), width + min(0, dx))
        xd = slice(max(0, -dx), width + min(0, -dx))
        total[yd, xd] += colours[ys, xs]
        count[yd, xd] += 1
        spread[yd, xd] = np.maximum(spread[yd, xd], np.abs(colours[ys, xs] - colours[yd, xd]).max(axis=-1))
    return total / np.maximum(count, 1), spread


def unmix_cells(cells: np.ndarray, *, tolerance: float = UNMIX_TOLERANCE) -> np.ndarray:
    """Undo blur bleeding between cells using the image's own palette.

    Blur and chroma subsampling mix a cell's colour with its neighbours' — at small
    scales enough to flip it to the wrong palette entry. Pixel art has few colours:
    cells whose neighbours all match them are uncontaminated, and their colours
    (greedily clustered within ``tolerance``) are the palette. Every cell is then
    modelled as ``(1 - a) * own + a * mean(neighbours)`` with one bleed factor ``a``
    for the image (least squares over a grid of values), and takes the palette colour
    that explains it — when one explains it within ``tolerance``; other cells (colours
    not in the palette, e.g. gradients) keep their measured colour.
    """
    rgb = cells[..., :3].astype(np.float64)
    height, width = rgb.shape[:2]
    if height < 3 or width < 3:
        return cells
    neighbours, spread = _neighbour_mean(rgb)
    clean = spread <= tolerance
    if not clean.any():
        return cells
    palette: list[np.ndarray] = []
    members: list[list[np.ndarray]] = []
    for colour in rgb[clean]:
        for i, centre in enumerate(palette):
            if np.abs(colour - centre).max() <= tolerance:
                members[i].append(colour)
                palette[i] = np.mean(members[i], axis=0)
                break
        else:
            palette.append(colour.copy())
            members.append([colour])
    centres = np.array(palette)  # (k, 3)
    best_error, best_bleed = np.inf, 0.0
    for bleed in np.arange(0.0, 0.55, 0.05):
        model = (1 - bleed) * centres[None, None] + bleed * neighbours[:, :, None]  # (h, w, k, 3)
        error = np.abs(rgb[:, :, None] - model).max(axis=-1).min(axis=-1)
        total = float(np.minimum(error, 2 * tolerance).sum())
        if total < best_error - 1e-9:
            best_error, best_bleed = total, float(bleed)
    model = (1 - best_bleed) * centres[None, None] + best_bleed * neighbours[:, :, None]
    error = np.abs(rgb[:, :, None] - model).max(axis=-1)
    choice = np.argmin(error, axis=-1)
    explained = np.take_along_axis(error, choice[..., None], axis=-1)[..., 0] <= tolerance
    out = cells.copy()
    out[..., :3] = np.where(explained[..., None], centres[choice].round(), rgb).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- background


def parse_colour(value: str | Sequence[int]) -> tuple[int, int, int]:
    """``"#rrggbb"`` / ``"rrggbb"`` / ``(r, g, b)`` → ``(r, g, b)``."""
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError(f"expected a colour like '#rrggbb', found {value!r}")
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    parts = tuple(int(v) for v in value)
    if len(parts) != 3 or any(not 0 <= v <= 255 for v in parts):
        raise ValueError(f"expected (r, g, b) with values 0..255, found {value!r}")
    return parts  # type: ignore[return-value]


def _close_to(cells: np.ndarray, colour: Sequence[int], tolerance: int) -> np.ndarray:
    difference = np.abs(cells[..., :3].astype(np.int16) - np.asarray(colour, np.int16))
    return difference.max(axis=-1) <= tolerance


def background_mask(
    cells: np.ndarray, background: Background = "auto", tolerance: int = DEFAULT_TOLERANCE
) -> np.ndarray:
    """Boolean mask of background cells in a collapsed image.

    Cells that were already transparent (alpha < 128) are always background.
    ``"auto"``: the corner colour shared by most corners (ties: top-left first) is the
    background; flood fill (4-connected) from every corner of that colour through
    cells within ``tolerance``. A key colour removes every cell within tolerance of it.
    """
    transparent = cells[..., 3] < 128
    if isinstance(background, str) and background == "none":
        return transparent
    if isinstance(background, str) and background == "auto":
        return transparent | _flood_from_corners(cells, transparent, tolerance)
    key = parse_colour(background)
    return transparent | _close_to(cells, key, tolerance)


def _flood_from_corners(cells: np.ndarray, transparent: np.ndarray, tolerance: int) -> np.ndarray:
    height, width = cells.shape[:2]
    corners = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)]
    opaque_corners = [c for c in corners if not transparent[c]]
    if not opaque_corners:
        # Already keyed (e.g. an RGBA source): transparent corners flood nothing new.
        return np.zeros((height, width), dtype=bool)
    colours = [cells[c][:3].astype(np.int16) for c in opaque_corners]
    votes = [sum(int(np.abs(a - b).max() <= tolerance) for b in colours) for a in colours]
    key = colours[int(np.argmax(votes))]
    similar = _close_to(cells, key, tolerance) & ~transparent
    seeds = [c for c, colour in zip(opaque_corners, colours) if np.abs(colour - key).max() <= tolerance]
    filled = np.zeros((height, width), dtype=bool)
    # Transparent cells also conduct the fill, so a key colour beside a hole is reached.
    passable = similar | transparent
    queue = deque(seeds)
    for seed in seeds:
        filled[seed] = True
    while queue:
        y, x = queue.popleft()
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= ny < height and 0 <= nx < width and passable[ny, nx] and not filled[ny, nx]:
                filled[ny, nx] = True
                queue.append((ny, nx))
    return filled & similar


# --------------------------------------------------------------------------- fitting


def _window(count: int, target: int, content: tuple[int, int], partial: np.ndarray) -> int:
    """Start of the ``target``-long window over ``count`` cells: it must contain the
    content span if possible, holds as few partial cells as possible, then centres the
    content (lowest start wins ties)."""
    low, high = content  # inclusive
    best_key: tuple | None = None
    best_start = 0
    for start in range(count - target + 1):
        end = start + target
        covers = start <= low and high < end
        cut = int(partial[start:end].sum())
        centring = abs((low - start) - (end - 1 - high))
        key = (not covers, cut, centring, start)
        if best_key is None or key < best_key:
            best_key, best_start = key, start
    return best_start


def _fit_to_target(
    cells: np.ndarray, partial_x: np.ndarray, partial_y: np.ndarray, target: tuple[int, int]
) -> np.ndarray:
    target_w, target_h = target
    opaque = cells[..., 3] == 255
    out = np.zeros((target_h, target_w, 4), np.uint8)
    if not opaque.any():
        return out
    ys, xs = np.nonzero(opaque)
    top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    content_w, content_h = right - left + 1, bottom - top + 1
    if content_w > target_w or content_h > target_h:
        # The content is bigger than the sprite: resample the cell grid (nearest cell
        # centre), keeping the aspect ratio, then centre it.
        content = cells[top : bottom + 1, left : right + 1]
        scale = min(target_w / content_w, target_h / content_h)
        new_w = max(1, min(target_w, int(round(content_w * scale))))
        new_h = max(1, min(target_h, int(round(content_h * scale))))
        src_x = np.minimum(((np.arange(new_w) + 0.5) * content_w / new_w).astype(np.int64), content_w - 1)
        src_y = np.minimum(((np.arange(new_h) + 0.5) * content_h / new_h).astype(np.int64), content_h - 1)
        resampled = content[src_y[:, None], src_x[None, :]]
        oy, ox = (target_h - new_h) // 2, (target_w - new_w) // 2
        out[oy : oy + new_h, ox : ox + new_w] = resampled
        return out
    height, width = cells.shape[:2]

    # Per axis: crop a window (when there are more cells) or pad centred (fewer).
    def axis(count: int, size: int, span: tuple[int, int], partial: np.ndarray) -> tuple[int, int, int]:
        if count >= size:
            return _window(count, size, span, partial), 0, size
        return 0, (size - count) // 2, count

    sx, dx, nx = axis(width, target_w, (left, right), partial_x)
    sy, dy, ny = axis(height, target_h, (top, bottom), partial_y)
    out[dy : dy + ny, dx : dx + nx] = cells[sy : sy + ny, sx : sx + nx]
    return out


# --------------------------------------------------------------------------- entry point


def _plausible(grid: Grid, size: tuple[int, int], target: tuple[int, int]) -> bool:
    """Whether to trust a detected grid for a sprite of ``target`` size: always when
    confident; otherwise only when it gives about the target's number of cells (a
    weak grid that disagrees with the sprite size is more likely noise)."""
    if grid.period_x <= 1:
        return False
    if grid.confidence >= LOW_CONFIDENCE:
        return True
    cells = (size[0] / grid.period_x, size[1] / grid.period_y)
    return all(t * 0.8 - 1 <= c <= t * 1.25 + 2 for c, t in zip(cells, target))


def pixelize(
    image: np.ndarray,
    *,
    grid: Grid | None = None,
    target_size: tuple[int, int] | None = None,
    background: Background = "auto",
    tolerance: int = DEFAULT_TOLERANCE,
    method: Literal["mode", "median"] = "median",
    unmix: bool = True,
) -> np.ndarray:
    """Fake pixel art → real pixel art: ``(h, w, 4)`` RGBA uint8, alpha 0 or 255.

    ``target_size`` is ``(width, height)``; when given the result has exactly that
    size. ``grid`` skips detection. ``background`` is ``"auto"``, ``"none"``, or a key
    colour (``"#rrggbb"`` or ``(r, g, b)``); ``tolerance`` is the largest per-channel
    difference still counted as background.
    """
    rgba = _as_rgba(image)
    height, width = rgba.shape[:2]
    if target_size is not None:
        target_w, target_h = (int(v) for v in target_size)
        if target_w < 1 or target_h < 1:
            raise ValueError(f"target_size must be positive, found {target_size!r}")
    if grid is None:
        if target_size is not None and (width, height) == (target_w, target_h):
            grid = Grid(1, 1, 0, 0, 1.0)
        else:
            grid = detect_grid(rgba)
            if target_size is not None and not _plausible(grid, (width, height), (target_w, target_h)):
                grid = Grid(width / target_w, height / target_h, 0, 0, grid.confidence)
    x_edges, partial_x = cell_edges(width, grid.period_x, grid.phase_x)
    y_edges, partial_y = cell_edges(height, grid.period_y, grid.phase_y)
    cells = collapse_cells(rgba, x_edges, y_edges, method=method)
    if unmix:
        cells = unmix_cells(cells)
    mask = background_mask(cells, background, tolerance)
    cells[..., 3] = np.where(mask, 0, 255)
    cells[mask, :3] = 0
    if target_size is None:
        return cells
    return _fit_to_target(cells, partial_x, partial_y, (target_w, target_h))
