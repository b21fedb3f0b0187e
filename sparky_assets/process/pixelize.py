"""Pixelize: turn "fake pixel art" (a high-resolution image that *looks* like pixel
art — upscaled by any factor, fractional or drifting, blurred, noised, JPEG-damaged,
bicubic-smoothed the way diffusion models render it) into real one-pixel-per-cell art.

Four pure steps, numpy only (threadpoolctl keeps numpy's BLAS on one thread meanwhile:
the products are small, and a second thread only stalls on a busy machine):

1. **Grid** (:func:`detect_grid`, :func:`fit_grid`). Per axis, a colour-change profile
   (how much the image changes between neighbouring columns / rows) is matched against
   a *phase-coherent comb*: ``|Σ profile[b] · exp(-2πi·cell(b))|`` where ``cell(b)`` is
   the (fractional) cell coordinate of boundary ``b``. Any real period is a candidate
   (not only integers), and a quadratic term in ``cell(b)`` lets the grid drift (cells a
   pixel wider on one side than the other). The comb magnitude over the total change,
   the *coherence*, is 1 when every change sits on a grid line and ≈ 0 for noise; its
   peak's argument gives the phase. Octave errors: a comb also peaks at the harmonics
   ``k/P`` of the true period ``P`` (a grid line every ``P/k`` px) and, with few lines,
   weakly at ``P·k``; the detector takes the strongest peak and then the longest period
   whose comb still holds most of it (lines between the chosen ones would cancel it).
   Then the cells decide (:func:`settle_octave`): pixel-art cells are flat, so a grid
   twice or three times too fine only splits flat cells (its added lines explain no
   more than the noise: an F statistic, :func:`refinement_gain`), and one too coarse
   leaves real lines inside its cells; a finer grid is tried only where its added lines
   hold crisp change (a bicubic render has no flat interiors to split). Sums over any
   set of cell rectangles come from integral images, so each test costs O(cells).
   With a **known size** (the build always knows the sprite's size) only grids of that
   many cells (up to two extra, cut cells at the edges) are searched, unless the image
   has an overwhelmingly clearer grid of another size; the comb's grid then has to be
   flatter (:func:`grid_misfit`) than the frame-exact even division to be used.
2. **Colour** (:func:`collapse_cells`). The image is modelled as the cell colours seen
   through a separable kernel — a box per cell blurred by a Gaussian of σ ∈ {0, 0.6,
   1, 1.5} px, or cubic interpolation between cell centres (what a bicubic upscale
   is) — and solved by least squares per channel in YCbCr (JPEG blurs chroma more
   than luma, so each channel picks its own kernel by residual). Without blur this
   is the plain mean of each cell; with blur it undoes exactly the bleeding between
   cells and nothing else, so real shading ramps survive (nothing is clustered or
   merged). A small ridge towards each cell's centre median keeps barely-seen cells
   (cut at the image edge) sane.
3. **Palette** (optional). With the sprite's palette every opaque cell takes its
   nearest palette colour in OKLab (:func:`~sparky_assets.process.quantize.quantize_to_palette`);
   without one, cells whose colours differ by less than the measurement noise
   collapse to their most common member.
4. **Background → alpha** (:func:`background_mask`). The key colour is the one that
   covers most of the image's border ring (``"auto"``), a given colour, or none;
   cells within ``tolerance`` of it — and, with a palette, nearer to it than to any
   palette colour — become transparent, plus, connected to them, soft shadows (the key
   colour darkened, same hue). Outlines stay: they differ from the key in lightness.

The result is fitted to ``target_size`` (the ``W×H`` window of cells that holds the
content with the fewest cut cells, or centred padding).

Invariants: outputs are RGBA ``uint8`` with alpha exactly 0 or 255 and RGB zero where
alpha is 0; every function is deterministic (no RNG, ties broken by index).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property, wraps
from typing import Any, Literal, TypeVar

import numpy as np

PIXELIZE_VERSION = 5
"""Bump when any step changes its output (part of the diffusion generator's cache key)."""

MIN_PERIOD = 2.0
MAX_PERIOD = 96.0
MIN_REPEATS = 3
"""A period must repeat at least this many times across the image to be a candidate."""
NOISE_FLOOR = 3.0
"""Pixel differences below this multiple of the median difference count as noise."""
OCTAVE_SUPPORT = 0.25
"""... and only when the lines in between carry less than this share of the kept ones
(:func:`_between_support`)."""
SOFT_PROFILE_HANDICAP = 1.3
"""Without a size, the soft-edge profile's grid wins only when this much clearer (its
blur makes coarse structures look like grids)."""
OCTAVE_FINE, OCTAVE_FINE_SUPPORT = 0.5, 0.3
"""A k-times finer grid replaces the chosen one when its coherence is at least
OCTAVE_FINE of it and the lines it adds carry OCTAVE_FINE_SUPPORT of the chosen lines'."""
OCTAVE_KEEP = 0.62
"""A longer period ``k·P`` replaces the comb's strongest peak ``P`` when its coherence
is at least this fraction of the peak's (lines between its lines would cancel it)."""
OVERRIDE_RATIO = 4.0
"""With a known size, another grid wins only when its coherence is at least
:data:`OVERRIDE_MIN` (a crisp grid) and this many times the best grid of the known
size, *and* the known-size grid's coherence is below :data:`OVERRIDE_FLOOR` (there is
no grid of that size in the image). Measured: a crisp 16-cell image asked for 8 cells
0.10 vs 1.0; a ×3 blurred sprite (a weak grid of the right size) 0.09 vs 0.33."""
OVERRIDE_FLOOR = 0.15
EVEN_BELOW = 0.3
"""With a known size and a grid less confident than this, cells divide the image evenly."""
OVERRIDE_MIN = 0.6
NULL_PERMUTATIONS = 4
"""Shuffled profiles searched to measure chance coherence (:func:`calibrated_confidence`)."""
DRIFT_GAIN = 1.08
"""A drifting grid replaces the uniform one only when its coherence is this much higher"""
DRIFT_MIN_COHERENCE = 0.25
"""... and only for grids clear enough that a bend is not just fitting noise."""
MAX_DRIFT = 1.0
"""Largest bend searched: the middle of the image a full cell off a uniform grid."""
DRIFT_MIN_CELLS = 16
"""... and only on axes of at least this many cells (fewer lines cannot show a bend)."""
DRIFT_MIN_PERIOD = 3.0
"""... and only for cells of at least this many pixels: cells of 2–3 px round to whole
pixels so unevenly that a bend fits the rounding (a grid one cell too long)."""
KERNELS: tuple[tuple[str, float], ...] = (("box", 0.0), ("box", 0.6), ("box", 1.0), ("box", 1.5), ("cubic", 0.0))
"""Colour models tried per channel (:func:`collapse_cells`)."""
INTERIOR_INSET = 0.3
"""Share of a cell's width on each side that its interior mean leaves out (see
:func:`_interior_spans`)."""
INSET_MIN_WIDTH = 12.0
LARGE_CELL = 12.0
SPLIT_GAIN = 12.0
"""A finer grid's added lines are real when each added cell removes this many times
the noise variance (:func:`refinement_gain`; measured on the tuning half: a true grid
split in 2 or 3 reaches up to ~11 under blur and JPEG, a real split is mostly ≥ 20)."""
SPLIT_MARGIN = 0.2
"""Share of a coarse cell's width on each side (at least 1 px) left out of the test."""
NOISE_VARIANCE_MIN = 1.0
SETTLE_MIN_PERIOD = 2.0
COARSEN_MIN_PERIOD, SPLIT_GAIN_SMALL = 3.0, 3.0
MISFIT_MARGIN = 0.15
FIT_CELL = 8.0
"""With a known size and cells at least twice this wide, :func:`fit_grid` sums the
change profiles over every ``⌊cell / FIT_CELL⌋``-th row / column and compares grids'
flatness on the image box-averaged by that factor."""
CUT_COVERAGE, CUT_SLACK, CUT_CLEAR = 0.95, 0.0, 0.5
"""Without a size, a cut cell at the image edge (under CUT_COVERAGE of a cell shown, or
more than CUT_SLACK px — besides the half pixel of rounding :func:`cell_edges` allows —
short of a full cell; never for cells under 3 px, whose rounding looks the same) goes
when at least CUT_CLEAR of its row / column is background (a render's margin; a halo
may leave a few cells of it opaque). CUT_SLACK 0 (was 1 px) on the tuning half: phase
row 81.5 → 95.5%, model row 80.9 → 84.4% (margins of 0.95–1 cell), blur 91.5 → 89.9%."""
REFINE_SUPPORT = 0.15
"""Octaves are settled by flatness between grids of these periods only: below, pixel
rounding of 2–3 px cells looks like structure; above, bicubic renders have no flat
cell interiors."""
"""Cells at least this wide (median, both axes) take their interior mean directly
(:func:`collapse_cells`)."""
RIDGE = 0.02
"""Ridge weight (relative to a full cell's squared footprint) towards the centre median."""
CONFIDENCE_SLOPE, CONFIDENCE_MIDPOINT = 14.0, 0.18
"""``confidence = 1 / (1 + exp(-SLOPE · (excess - MIDPOINT)))`` with ``excess`` the
coherence above chance (:func:`calibrated_confidence`); set by hand on the bench's tuning
half. bench/pixelize.py prints how often grids in each confidence band were right: it
reads as that chance at the top; low values are pessimistic with a known size (the
even-division fallback is usually right)."""
MERGE_TOLERANCE = 6
"""Without a palette, cell colours this close (max per channel) are one colour seen
through noise or a model's per-cell jitter (:func:`merge_noise`)."""
LINE_CAP = 3.0
"""See :func:`change_profiles`."""
DEFAULT_TOLERANCE = 40
"""Largest per-channel difference (0–255) still counted as the background colour."""
BORDER_SHARE = 0.5
"""``"auto"`` background: a colour must cover at least this share of the border ring."""

Background = Literal["auto", "none"] | str | tuple[int, int, int]
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_INV = np.linalg.inv(_YCC)
_F = TypeVar("_F", bound=Callable[..., Any])
_LIMITED = threading.local()


@cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread(function: _F) -> _F:
    """Run ``function`` with the BLAS library (numpy's OpenBLAS) on one thread (once, at
    the outermost of the decorated calls: the others run inside that limit).

    Every product here is small (a few hundred rows): a second BLAS thread saves
    microseconds on an idle machine and, on a busy one, stalls the call until the
    scheduler runs it — measured on 2 loaded cores, a 20×466×93 complex product took
    0.1 ms at the median and 7 ms on average with two threads, 0.3 ms with one.
    """

    @wraps(function)
    def limited(*args: Any, **kwargs: Any) -> Any:
        if getattr(_LIMITED, "active", False):
            return function(*args, **kwargs)
        _LIMITED.active = True
        try:
            with _blas_controller().limit(limits=1, user_api="blas"):
                return function(*args, **kwargs)
        finally:
            _LIMITED.active = False

    return limited  # type: ignore[return-value]


@dataclass(frozen=True)
class Grid:
    """A pixel grid. Along x, cell ``k`` spans the pixels whose cell coordinate
    ``(t - phase_x) / period_x + drift_x · (4u² - 1/3)`` (``u = t / width - ½``) lies in
    ``[k, k + 1)``: ``period`` may be fractional, ``phase`` (``0 <= phase < period``) is
    where a grid line falls, ``drift`` (in cells) bends the grid so cells grow or shrink
    smoothly across the image. ``confidence`` is the calibrated chance the grid is right
    (1 for a grid given by the user)."""

    period_x: float
    period_y: float
    phase_x: float = 0.0
    phase_y: float = 0.0
    confidence: float = 1.0
    drift_x: float = 0.0
    drift_y: float = 0.0


@dataclass(frozen=True)
class PixelizeResult:
    """What :func:`pixelize_result` did, for the build report and the CLI."""

    image: np.ndarray
    grid: Grid
    cells: tuple[int, int]
    """Cells the grid lays over the whole image (before fitting to the target)."""
    source: Literal["given", "identity", "size", "detected", "override"]
    """``given``: the caller's grid; ``identity``: the image already had the target size;
    ``size``: fitted to the known size; ``detected``: found without a size; ``override``:
    a size was known but the image's grid had overwhelmingly another cell count."""
    kernel: dict[str, str] = field(default_factory=dict)
    """Colour model chosen per channel (``Y``, ``Cb``, ``Cr``, ``A``)."""
    background: tuple[int, int, int] | None = None

    def summary(self) -> str:
        """One line: ``16x16 cells of 32.00x32.00 px (size, confidence 0.97)``."""
        g = self.grid
        drift = f", drift {g.drift_x:+.2f}/{g.drift_y:+.2f}" if g.drift_x or g.drift_y else ""
        return (
            f"{self.cells[0]}x{self.cells[1]} cells of {g.period_x:.2f}x{g.period_y:.2f} px"
            f" ({self.source}, confidence {g.confidence:.2f}{drift})"
        )

    def as_dict(self) -> dict[str, Any]:
        g = self.grid
        return {
            "cells": list(self.cells),
            "period": [round(g.period_x, 4), round(g.period_y, 4)],
            "phase": [round(g.phase_x, 3), round(g.phase_y, 3)],
            "drift": [round(g.drift_x, 4), round(g.drift_y, 4)],
            "confidence": round(g.confidence, 3),
            "source": self.source,
            "kernel": dict(self.kernel),
            "background": list(self.background) if self.background else None,
        }


# --------------------------------------------------------------------------- input


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


# --------------------------------------------------------------------------- grid


def _int_median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of non-negative integers, by counting (no sort)."""
    flat = values.ravel()
    counts = np.cumsum(np.bincount(flat))
    middle = flat.size // 2
    upper = int(np.searchsorted(counts, middle, side="right"))
    if flat.size % 2:
        return float(upper)
    return (int(np.searchsorted(counts, middle - 1, side="right")) + upper) / 2


def _channel_sum(values: np.ndarray) -> np.ndarray:
    """``values.sum(axis=2)`` as int32, one channel plane at a time (numpy's reduction
    over a short last axis is several times slower)."""
    total = values[..., 0].astype(np.int32)
    for c in range(1, values.shape[2]):
        total += values[..., c]
    return total


def change_profiles(rgba: np.ndarray, reach: int = 1, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Colour-change energy at every column boundary (x) and row boundary (y).

    ``profile_x[b]`` (``0 <= b <= width``) is the change between columns ``b - reach``
    and ``b + reach - 1`` summed over rows (the ends are 0): ``reach`` 1 sees crisp
    edges, a longer reach sees the soft ones of large smooth cells (a bicubic upscale
    spreads an edge over a whole cell). Differences below a noise floor (a multiple of
    the median difference: most neighbours share a cell) are dropped and each is
    capped, so noise and a few very strong edges cannot outvote the grid. ``stride``
    sums every ``stride``-th row (x) / column (y) only: for cells many pixels tall the
    rows of a cell repeat one another, and the positions along the axis stay exact.
    """
    rgba = _as_rgba(rgba)
    height, width = rgba.shape[:2]
    profile_x = np.zeros(width + 1)
    profile_y = np.zeros(height + 1)
    reach = max(1, min(int(reach), (min(height, width) - 1) // 2 or 1))
    rows = rgba[::stride].astype(np.int16)
    cols = rgba[:, ::stride].astype(np.int16) if stride > 1 else rows
    dx = _channel_sum(np.abs(rows[:, 2 * reach - 1 :] - rows[:, : width - 2 * reach + 1]))
    dy = _channel_sum(np.abs(cols[2 * reach - 1 :] - cols[: height - 2 * reach + 1]))
    if dx.size == 0 or dy.size == 0:
        return profile_x, profile_y
    floor = NOISE_FLOOR * max(_int_median(dx), _int_median(dy), 1.0)
    cap = 96.0
    profile_x[reach : width - reach + 1] = np.clip(dx - floor, 0, cap).sum(axis=0, dtype=np.float64)
    profile_y[reach : height - reach + 1] = np.clip(dy - floor, 0, cap).sum(axis=1, dtype=np.float64)
    # One boundary may weigh at most LINE_CAP times the typical changing boundary: a
    # single strong line (the edge of a background) is coherent with every period.
    for profile in (profile_x, profile_y):
        active = profile[profile > 0]
        if active.size:
            np.minimum(profile, LINE_CAP * float(np.median(active)), out=profile)
    return profile_x, profile_y


def _warp(length: int, positions: np.ndarray) -> np.ndarray:
    u = positions / max(length, 1) - 0.5
    return 4.0 * u * u - 1.0 / 3.0


def _comb(profile: np.ndarray, freqs: np.ndarray, drift: float = 0.0) -> np.ndarray:
    """Complex comb response ``Σ p[b] exp(-2πi (f·b + drift·warp(b)))`` per frequency."""
    nonzero = np.nonzero(profile)[0]
    if nonzero.size == 0:
        return np.zeros(len(freqs), complex)
    weights = profile[nonzero]
    length = profile.size - 1
    bend = drift * _warp(length, nonzero.astype(np.float64))
    out = np.empty(len(freqs), complex)
    step = max(1, (1 << 21) // nonzero.size)
    for start in range(0, len(freqs), step):
        f = freqs[start : start + step, None]
        out[start : start + step] = (weights * np.exp(-2j * np.pi * (f * nonzero + bend))).sum(axis=1)
    return out


def _coherence(profile: np.ndarray, freqs: np.ndarray, drift: float = 0.0) -> np.ndarray:
    total = profile.sum()
    if total <= 0:
        return np.zeros(len(freqs))
    return np.abs(_comb(profile, freqs, drift)) / total


def _freq_grid(low: float, high: float, length: int) -> np.ndarray:
    """Frequencies (cells per pixel) from ``low`` to ``high``, fine enough that
    neighbouring candidates drift apart by at most 1/20 cell across the image."""
    step = 0.05 / max(length, 1)
    count = max(2, int(math.ceil((high - low) / step)) + 1)
    return np.linspace(low, high, count)


def _band(profile: np.ndarray, low: float, high: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coherence at every frequency in ``[low, high]`` on an FFT grid of ``size`` points
    (the comb without drift is a zero-padded Fourier transform)."""
    total = profile.sum()
    k_low, k_high = int(math.floor(low * size)), int(math.ceil(high * size))
    freqs = np.arange(max(k_low, 1), min(k_high, size // 2) + 1) / size
    if total <= 0 or freqs.size == 0:
        return freqs, np.zeros(freqs.size)
    spectrum = np.abs(np.fft.rfft(profile, size))
    return freqs, spectrum[(freqs * size).round().astype(np.int64)] / total


def _fft_size(lengths: Sequence[int]) -> int:
    """FFT points for a frequency step of at most 1/20 cell across the longest axis."""
    return 1 << int(math.ceil(math.log2(20 * (max(lengths) + 1))))


def _null(profile: np.ndarray, low: float, high: float, size: int) -> float:
    """Best coherence in the band that the same profile values reach in random order
    (mean over :data:`NULL_PERMUTATIONS` fixed shuffles): what the search finds by chance."""
    if profile.sum() <= 0:
        return 1.0
    rng = np.random.default_rng(0)
    best = []
    for _ in range(NULL_PERMUTATIONS):
        shuffled = profile.copy()
        shuffled[1:-1] = rng.permutation(profile[1:-1])
        best.append(float(_band(shuffled, low, high, size)[1].max(initial=0.0)))
    return float(np.mean(best))


def _refine(profiles: Sequence[np.ndarray], freq: float, span: float) -> float:
    """Frequency with the highest summed coherence within ``freq ± span`` (two passes)."""
    for _ in range(2):
        candidates = np.linspace(freq - span, freq + span, 21)
        candidates = candidates[candidates > 0]
        score = sum(_coherence(p, candidates) for p in profiles)
        freq = float(candidates[int(np.argmax(score))])
        span /= 10
    return freq


@dataclass(frozen=True)
class _AxisFit:
    period: float
    phase: float
    drift: float
    coherence: float
    null: float = 0.0


def _fit_axis(profile: np.ndarray, freq: float) -> _AxisFit:
    """Phase and drift of the grid of frequency ``freq`` along one axis."""
    length = profile.size - 1
    base = _coherence(profile, np.array([freq]))[0]
    best = (base, 0.0, freq)
    if length * freq < DRIFT_MIN_CELLS or base < DRIFT_MIN_COHERENCE or freq * DRIFT_MIN_PERIOD > 1:
        response = _comb(profile, np.array([freq]))[0]
        return _AxisFit(1.0 / freq, float((-np.angle(response) / (2 * np.pi)) % 1.0) / freq, 0.0, float(base))
    # Drift: a quadratic bend of up to ±MAX_DRIFT cells, with the frequency re-fitted
    # around it on one shared frequency grid (1/20 cell across the image apart):
    # exp(-2πi(f·b + d·warp(b))) factors into a frequency part and a drift part, so
    # every (drift, frequency) pair is one complex matrix product.
    drifts = np.linspace(-MAX_DRIFT, MAX_DRIFT, int(round(MAX_DRIFT * 20)) + 1)
    drifts = drifts[drifts != 0]
    step = 1.0 / (20 * max(length, 1))
    reach = int(np.ceil((0.3 + 2 * MAX_DRIFT) / max(length, 1) / step))
    offsets = np.arange(-reach, reach + 1) * step
    freqs = freq + offsets
    nonzero = np.nonzero(profile)[0]
    weights = profile[nonzero]
    positions = nonzero.astype(np.float64)
    bend = np.exp(-2j * np.pi * drifts[:, None] * _warp(length, positions)[None, :]) * weights
    # exp(-2πi(f₀ + (10a + c)·step)·b) = coarse[a]·fine[c]: a tenth of the exponentials.
    coarse = np.exp(-2j * np.pi * (freqs[0] + 10 * step * np.arange(-(-freqs.size // 10)))[:, None] * positions)
    fine = np.exp(-2j * np.pi * (step * np.arange(10))[:, None] * positions)
    waves = (coarse[:, None, :] * fine[None, :, :]).reshape(-1, positions.size)[: freqs.size]
    values = np.abs(bend @ waves.T) / profile.sum()  # (drifts, freqs)
    # A bend moves the best straight-line period by up to ~2·drift cells over the image.
    spans = (0.3 + 2 * np.abs(drifts)) / max(length, 1)
    values[np.abs(offsets)[None, :] > spans[:, None] + 1e-12] = -1.0
    for i, drift in enumerate(drifts):
        j = int(np.argmax(values[i]))
        if values[i, j] > best[0] * DRIFT_GAIN and values[i, j] > best[0] + 1e-9:
            best = (float(values[i, j]), float(drift), float(freqs[j]))
    coherence, drift, freq = best
    response = _comb(profile, np.array([freq]), drift)[0]
    period = 1.0 / freq
    # Lines sit where f·b + drift·warp(b) + arg/2π is an integer; phase = the first one.
    phase = float((-np.angle(response) / (2 * np.pi)) % 1.0) * period
    return _AxisFit(period, phase, drift, float(coherence))


def calibrated_confidence(coherence: float, null: float = 0.0) -> float:
    """Coherence (0..1) of the chosen grid → the chance it is right. ``null`` is the
    coherence the same search reaches by chance (:func:`_null`: a comb of few lines,
    or a sparse profile, fits some period well); only the excess over it counts
    (:data:`CONFIDENCE_SLOPE`)."""
    null = min(max(null, 0.0), 0.99)
    excess = (coherence - null) / (1.0 - null)
    return float(1.0 / (1.0 + math.exp(float(np.clip(-CONFIDENCE_SLOPE * (excess - CONFIDENCE_MIDPOINT), -50, 50)))))


def _detect_freq(profiles: Sequence[np.ndarray], lengths: Sequence[int], max_period: float) -> tuple[float, float]:
    """Strongest comb frequency (square cells: both axes' coherence summed) with octave
    resolution; returns ``(freq, summed coherence)``."""
    low = 1.0 / min(max_period, min(lengths) / MIN_REPEATS)
    high = 1.0 / MIN_PERIOD
    size = _fft_size(lengths)
    freqs = _band(profiles[0], low, high, size)[0]
    score = sum(_band(p, low, high, size)[1] for p in profiles)
    # A comb of few lines is coherent by chance (≈ 0.886/√lines for random phases), which
    # favours long periods; rank by the excess over that.
    score = score - sum(0.886 / np.sqrt(np.maximum(length * freqs, 1.0)) for length in lengths)
    best = int(np.argmax(score))
    peak = _refine(profiles, float(freqs[best]), 2.0 / size)
    peak_score = float(sum(_coherence(p, np.array([peak]))[0] for p in profiles))
    # Octaves: the peak may be the k-th harmonic of a longer true period. Take the
    # longest sub-frequency peak / k whose comb keeps OCTAVE_KEEP of the peak's.
    chosen, chosen_score = peak, peak_score
    for k in range(2, 9):
        sub = peak / k
        if sub < low:
            break
        sub = _refine(profiles, sub, 0.5 / max(lengths) / k)
        sub_score = float(sum(_coherence(p, np.array([sub]))[0] for p in profiles))
        if sub_score >= OCTAVE_KEEP * peak_score and _between_support(profiles, peak, k) < OCTAVE_SUPPORT:
            chosen, chosen_score = sub, sub_score
    # ... or a sub-multiple: the strongest peak can be a coarse structure (a shape's
    # outline every few cells) when the finer grid's lines between are real too.
    finer: tuple[float, float] | None = None
    for k in range(2, 7):
        fine = chosen * k
        if fine > high:
            break
        fine = _refine(profiles, fine, 0.5 / max(lengths))
        fine_score = float(sum(_coherence(p, np.array([fine]))[0] for p in profiles))
        if fine_score >= OCTAVE_FINE * chosen_score and _between_support(profiles, fine, k) >= OCTAVE_FINE_SUPPORT:
            if finer is None or fine_score > finer[1]:
                finer = (fine, fine_score)
    return finer if finer else (chosen, chosen_score)


def _between_support(profiles: Sequence[np.ndarray], freq: float, k: int) -> float:
    """How much change sits on the lines of the grid of ``freq`` that a grid ``k`` times
    coarser would skip, relative to the lines it keeps (≈1: they are real lines, so the
    finer grid is right; ≈0: only every k-th line changes)."""
    mass = np.zeros(k)
    for profile in profiles:
        positions = np.nonzero(profile)[0]
        if positions.size == 0:
            continue
        response = _comb(profile, np.array([freq]))[0]
        coordinate = positions * freq + np.angle(response) / (2 * np.pi)
        line = np.round(coordinate)
        near = np.abs(coordinate - line) < 0.2
        np.add.at(mass, (line[near].astype(np.int64)) % k, profile[positions][near])
    main = mass.max()
    if main <= 0:
        return 0.0
    return float((mass.sum() - main) / (k - 1) / main)


@_one_blas_thread
def detect_grid(image: np.ndarray, *, square: bool = True, max_period: float = MAX_PERIOD) -> Grid:
    """Find the pixel grid of fake pixel art without knowing the sprite's size.

    ``square=True`` assumes square cells (one period from both axes' evidence, phase
    and drift per axis); ``square=False`` lets the axes differ.
    """
    return _detect(_as_rgba(image), square, max_period)[0]


def _detect(rgba: np.ndarray, square: bool, max_period: float) -> tuple[Grid, float]:
    """:func:`detect_grid` and the grid's mean coherence over both axes."""
    height, width = rgba.shape[:2]
    if min(width, height) < MIN_PERIOD * MIN_REPEATS:
        return Grid(1.0, 1.0, 0.0, 0.0, 0.0), 0.0
    best: tuple[float, Grid, float, int] | None = None
    # Crisp edges (reach 1) and the soft edges of large smooth cells (reach 4): the
    # clearer comb wins.
    for reach in (1, 4):
        profile_x, profile_y = change_profiles(rgba, reach)
        if profile_x.sum() == 0 or profile_y.sum() == 0:
            continue
        if square:
            freq, score = _detect_freq([profile_x, profile_y], [width, height], max_period)
            fx, fy = _fit_axis(profile_x, freq), _fit_axis(profile_y, freq)
        else:
            fx = _fit_axis(profile_x, _detect_freq([profile_x], [width], max_period)[0])
            fy = _fit_axis(profile_y, _detect_freq([profile_y], [height], max_period)[0])
            score = fx.coherence + fy.coherence
        if reach > 1 and min(fx.period, fy.period) < 3 * reach:
            continue  # a reach longer than a third of the cell blurs the lines it finds
        low = 1.0 / min(max_period, min(width, height) / MIN_REPEATS)
        size = _fft_size((width, height))
        fx = replace(fx, null=_null(profile_x, low, 1.0 / MIN_PERIOD, size))
        fy = replace(fy, null=_null(profile_y, low, 1.0 / MIN_PERIOD, size))
        if reach > 1:
            score /= SOFT_PROFILE_HANDICAP
        if best is None or score > best[0]:
            best = (score, _grid(fx, fy, (width, height)), (fx.coherence + fy.coherence) / 2, reach)
    if best is None:
        return Grid(1.0, 1.0, 0.0, 0.0, 0.0), 0.0
    grid = best[1]
    if square:
        grid = settle_octave(rgba, grid, max_period)
    return grid, best[2]


class _Flatness:
    """Integral images of an RGB image and of its squared values: the sum of squared
    deviations from the mean inside any set of rectangles in O(rectangles)."""

    def __init__(self, rgba: np.ndarray) -> None:
        self.rgb = rgba[..., :3]
        self.height, self.width = self.rgb.shape[:2]
        # Integer running sums (exact, and faster than float ones) stored as float64,
        # one contiguous plane per channel (a cumsum across an interleaved axis is slow).
        ints = self.rgb.astype(np.int64)
        planes = np.zeros((3, self.height + 1, self.width + 1))
        for c in range(3):
            np.cumsum(ints[..., c].cumsum(0), 1, out=planes[c, 1:, 1:])
        self.sums = planes.transpose(1, 2, 0)
        self.squares = np.zeros((self.height + 1, self.width + 1))
        self.squares[1:, 1:] = _channel_sum(ints * ints).cumsum(0, dtype=np.int64).cumsum(1)

    @cached_property
    def noise(self) -> float:
        """Noise variance per channel: neighbouring pixels mostly share a cell, and the
        sum over 3 channels of a difference of two noisy pixels is 6σ²·χ²₃/3 (median
        0.789 of its mean). Only :func:`refinement_gain` needs it."""
        ints = self.rgb.astype(np.int32)
        dx = ((ints[:, 1:] - ints[:, :-1]) ** 2).sum(-1)
        dy = ((ints[1:] - ints[:-1]) ** 2).sum(-1)
        if not (dx.size and dy.size):
            return 0.0
        return _int_median(np.concatenate([dx.ravel(), dy.ravel()])) / (6 * 0.789)

    def sse(self, x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per rectangle ``[y0, y1) × [x0, x1)`` (every y range with every x range): the
        sum of squared deviations from its mean colour, and its pixel count."""

        def rect(table: np.ndarray) -> np.ndarray:
            return table[y1][:, x1] - table[y0][:, x1] - table[y1][:, x0] + table[y0][:, x0]

        count = (y1 - y0)[:, None] * (x1 - x0)[None, :]
        sums = rect(self.sums)
        sse = rect(self.squares) - (sums * sums).sum(-1) / np.maximum(count, 1)
        return np.maximum(sse, 0.0), count


def _inset_spans(edges: np.ndarray, margin: float, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the pixels ``[lo, hi)`` whose centres lie ``margin`` px inside it."""
    lo = np.clip(np.ceil(edges[:-1] + margin - 0.5).astype(np.int64), 0, length)
    hi = np.clip(np.floor(edges[1:] - margin - 0.5).astype(np.int64) + 1, 0, length)
    return lo, np.maximum(hi, lo)


def _split_spans(lo: np.ndarray, hi: np.ndarray, fine_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spans ``[lo, hi)`` cut at the lines of a finer grid (pixels go by centre)."""
    cuts = np.ceil(fine_edges[1:-1] - 0.5).astype(np.int64)
    bounds = np.unique(np.concatenate([lo, hi, cuts]))
    start, end = bounds[:-1], bounds[1:]
    owner = np.clip(np.searchsorted(lo, start, side="right") - 1, 0, None)
    inside = (start >= lo[owner]) & (end <= hi[owner])
    return start[inside], end[inside]


def refinement_gain(flat: _Flatness, coarse: Grid, fine: Grid) -> float:
    """How much better the cells of ``fine`` (a grid whose lines include every line of
    ``coarse``) explain the image inside ``coarse``'s cells (away from its lines) than
    ``coarse``'s own cells: an F statistic, the squared error each added cell removes
    over the noise variance. ≈ 1 when the added lines split flat cells (``coarse`` is
    the grid), large when they are real colour changes."""
    width, height = flat.width, flat.height
    spans = []
    for length, period, phase, drift, fine_period, fine_phase, fine_drift in (
        (width, coarse.period_x, coarse.phase_x, coarse.drift_x, fine.period_x, fine.phase_x, fine.drift_x),
        (height, coarse.period_y, coarse.phase_y, coarse.drift_y, fine.period_y, fine.phase_y, fine.drift_y),
    ):
        edges = cell_edges(length, period, phase, drift)[0]
        lo, hi = _inset_spans(edges, max(1.0, SPLIT_MARGIN * period), length)
        cut = _split_spans(lo, hi, cell_edges(length, fine_period, fine_phase, fine_drift)[0])
        spans.append(((lo, hi), cut))
    (cx, fx), (cy, fy) = spans
    coarse_sse, count = flat.sse(cx[0], cx[1], cy[0], cy[1])
    fine_sse, fine_count = flat.sse(fx[0], fx[1], fy[0], fy[1])
    cells, fine_cells = int((count > 0).sum()), int((fine_count > 0).sum())
    pixels = int(count.sum())
    added = max(3 * (fine_cells - cells), 1)
    residual = float(fine_sse.sum()) / max(3 * (pixels - fine_cells), 1)
    return (float(coarse_sse.sum()) - float(fine_sse.sum())) / added / max(flat.noise, residual, NOISE_VARIANCE_MIN)


def _scaled(grid: Grid, k: float, offset_x: int = 0, offset_y: int = 0) -> Grid:
    """The grid with ``k`` times longer cells whose lines are every ``k``-th line of
    ``grid`` (starting at its ``offset``-th), or ``1/k`` for ``k < 1`` (lines added)."""
    return Grid(
        grid.period_x * k,
        grid.period_y * k,
        grid.phase_x + offset_x * grid.period_x,
        grid.phase_y + offset_y * grid.period_y,
        grid.confidence,
        grid.drift_x / k,
        grid.drift_y / k,
    )


def _added_line_share(energy: tuple[np.ndarray, np.ndarray], grid: Grid, k: int) -> float:
    """Share of the image's squared colour change (per column / row boundary) that
    sits on the lines a ``k`` times finer grid adds to ``grid``."""
    near = total = 0.0
    for profile, period, phase, drift in (
        (energy[0], grid.period_x, grid.phase_x, grid.drift_x),
        (energy[1], grid.period_y, grid.phase_y, grid.drift_y),
    ):
        length = profile.size + 1
        kept = cell_edges(length, period, phase, drift)[0][1:-1]
        fine = cell_edges(length, period / k, phase, drift * k)[0][1:-1]
        added = fine[np.abs(fine[:, None] - kept[None, :]).min(axis=1, initial=np.inf) > period / k / 2]
        boundaries = np.arange(1, length, dtype=np.float64)
        if added.size:
            distance = np.abs(boundaries[:, None] - added[None, :]).min(axis=1)
            near += float(profile[distance < 0.75].sum())
        total += float(profile.sum())
    return near / total if total > 0 else 0.0


def settle_octave(rgba: np.ndarray, grid: Grid, max_period: float = MAX_PERIOD) -> Grid:
    """Octave errors, decided by the cells themselves: pixel-art cells are flat, so a
    grid ``k`` times finer than the true one splits flat cells (its added lines explain
    nothing: :func:`refinement_gain` ≈ 1) and one ``k`` times coarser leaves real lines
    inside its cells. A finer grid (``1/2``, ``1/3``) replaces ``grid`` when its added
    lines are real (gain above :data:`SPLIT_GAIN`); otherwise a coarser one (``×2``,
    ``×3``, best offset) replaces it when ``grid``'s lines inside it are not."""
    height, width = rgba.shape[:2]
    flat = _Flatness(rgba)
    longest = min(max_period, min(width, height) / MIN_REPEATS)
    ints = rgba[..., :3].astype(np.int32)
    energy = (
        ((ints[:, 1:] - ints[:, :-1]) ** 2).sum(axis=(0, 2)).astype(np.float64),
        ((ints[1:] - ints[:-1]) ** 2).sum(axis=(1, 2)).astype(np.float64),
    )
    for _ in range(4):
        period = min(grid.period_x, grid.period_y)
        finer = [k for k in (2, 3) if period / k >= SETTLE_MIN_PERIOD]
        # A smooth render (bicubic) has no flat cell interiors to split: a finer grid
        # is tried only when its added lines hold crisp edges.
        finer = [k for k in finer if _added_line_share(energy, grid, k) >= REFINE_SUPPORT]
        gains = {k: refinement_gain(flat, grid, _scaled(grid, 1 / k)) for k in finer}
        real = [k for k in finer if gains[k] > SPLIT_GAIN]
        if real:
            grid = _scaled(grid, 1 / max(real, key=lambda k: gains[k]))
            break
        moved = False
        # Cells of 2–3 px round to whole pixels unevenly: a stricter test below that.
        limit = SPLIT_GAIN if period >= COARSEN_MIN_PERIOD else SPLIT_GAIN_SMALL
        for k in (2, 3):
            if max(grid.period_x, grid.period_y) * k > longest:
                break
            options = [_scaled(grid, k, ox, oy) for ox in range(k) for oy in range(k)]
            scored = [(refinement_gain(flat, option, grid), i) for i, option in enumerate(options)]
            gain, best = min(scored)
            if gain <= limit:
                grid = options[best]
                moved = True
                break
        if not moved:
            break
    return grid


def _grid(fx: _AxisFit, fy: _AxisFit, lengths: tuple[int, int]) -> Grid:
    coherence = (fx.coherence + fy.coherence) / 2
    confidence = calibrated_confidence(coherence, (fx.null + fy.null) / 2)
    return Grid(fx.period, fy.period, fx.phase, fy.phase, confidence, fx.drift, fy.drift)


def _box_average(rgba: np.ndarray, factor: int) -> np.ndarray:
    """The image averaged over ``factor × factor`` blocks (rounded; a last partial
    row / column of blocks is left out)."""
    height, width = rgba.shape[0] // factor * factor, rgba.shape[1] // factor * factor
    dtype = np.uint16 if factor * factor * 255 < 1 << 16 else np.uint32
    values = rgba[:height, :width].astype(dtype)
    rows = values[0::factor].copy()
    for i in range(1, factor):
        rows += values[i::factor]
    total = rows[:, 0::factor].copy()
    for i in range(1, factor):
        total += rows[:, i::factor]
    area = factor * factor
    return ((total + area // 2) // area).astype(np.uint8)


@_one_blas_thread
def fit_grid(image: np.ndarray, target_size: tuple[int, int]) -> tuple[Grid, bool]:
    """The grid of a sprite of known ``target_size`` (``(width, height)`` cells).

    Searches only periods that lay ``target`` to ``target + 2`` cells over the image
    (a frame-exact render, or one with cut cells at the edges), on crisp-edge and
    soft-edge profiles (the clearer wins). Returns ``(grid, overridden)``:
    ``overridden`` when the image holds no grid of that size but an overwhelmingly
    clearer one of another (:data:`OVERRIDE_RATIO`). See :data:`FIT_CELL` for cells of
    many pixels."""
    rgba = _as_rgba(image)
    height, width = rgba.shape[:2]
    expected = min(width / target_size[0], height / target_size[1])
    factor = max(1, int(expected // FIT_CELL))
    best: tuple[float, Grid] | None = None
    for reach in sorted({1, int(np.clip(round(expected / 6), 1, 8))}):
        profile_x, profile_y = change_profiles(rgba, reach, factor)
        fits = _fit_known(profile_x, profile_y, (width, height), target_size)
        coherence = (fits[0].coherence + fits[1].coherence) / 2
        if best is None or coherence > best[0]:
            best = (coherence, _grid(fits[0], fits[1], (width, height)))
    assert best is not None
    known_coherence, known = best
    if known_coherence < OVERRIDE_FLOOR:
        detected, detected_coherence = _detect(rgba, True, MAX_PERIOD)
        if detected_coherence >= OVERRIDE_MIN and detected_coherence > OVERRIDE_RATIO * known_coherence:
            return detected, True
    even = Grid(width / target_size[0], height / target_size[1], 0.0, 0.0, known.confidence)
    if known.confidence < EVEN_BELOW:
        # No credible grid: the frame-exact even division is the prior (a render covers
        # exactly the sprite's frame), and — unlike the best of many weak candidates —
        # it does not jump when a pixel changes.
        return even, False
    if known != even:
        # The comb's best grid against the frame-exact division: the one whose cells are
        # flatter wins, the even division on a tie (what a render covers). Big cells
        # are compared on the image box-averaged by ``factor`` (both grids alike).
        if factor > 1:
            flat = _Flatness(_box_average(rgba, factor))
            pair = (_scaled_down(even, factor), _scaled_down(known, factor))
        else:
            flat = _Flatness(rgba)
            pair = (even, known)
        if grid_misfit(flat, pair[0]) <= grid_misfit(flat, pair[1]):
            return even, False
    return known, False


def _scaled_down(grid: Grid, factor: int) -> Grid:
    """``grid`` in the pixels of the image box-averaged by ``factor``."""
    return replace(
        grid,
        period_x=grid.period_x / factor,
        period_y=grid.period_y / factor,
        phase_x=grid.phase_x / factor,
        phase_y=grid.phase_y / factor,
    )


def grid_misfit(flat: _Flatness, grid: Grid) -> float:
    """Mean squared deviation of each pixel from its cell's mean colour, over cell
    interiors (:data:`MISFIT_MARGIN` of a cell, at least half a pixel, left out at
    each side): lines a grid misplaces leave colour changes inside its cells."""
    spans = []
    for length, period, phase, drift in (
        (flat.width, grid.period_x, grid.phase_x, grid.drift_x),
        (flat.height, grid.period_y, grid.phase_y, grid.drift_y),
    ):
        edges = cell_edges(length, period, phase, drift)[0]
        spans.append(_inset_spans(edges, max(0.5, MISFIT_MARGIN * period), length))
    sse, count = flat.sse(spans[0][0], spans[0][1], spans[1][0], spans[1][1])
    return float(sse.sum()) / max(float(count.sum()), 1.0)


def _fit_known(
    profile_x: np.ndarray, profile_y: np.ndarray, lengths: tuple[int, int], target_size: tuple[int, int]
) -> list[_AxisFit]:
    profiles = (profile_x, profile_y)
    # Period bands (px per cell) of each axis: target .. target + 2 cells over the image.
    bands = [(length / (cells + 2), length / cells * 1.02) for length, cells in zip(lengths, target_size)]
    low, high = max(bands[0][0], bands[1][0]), min(bands[0][1], bands[1][1])
    if low <= high:
        # Square cells (what renders are): one period for both axes from both
        # profiles, then each axis re-fitted within ±1.5% (renders round sizes).
        freqs = _freq_grid(1 / high, min(1 / low, 0.5), max(lengths))
        score = _coherence(profile_x, freqs) + _coherence(profile_y, freqs)
        if score.max() > 0:
            square = 1 / float(freqs[int(np.argmax(score))])
            bands = [(square / 1.015, square * 1.015)] * 2
    fits = []
    for profile, length, cells, (p_low, p_high) in zip(profiles, lengths, target_size, bands):
        freqs = _freq_grid(1 / p_high, min(1 / p_low, 0.5), length)
        values = _coherence(profile, freqs)
        if values.max() <= 0:
            fits.append(_AxisFit(length / cells, 0.0, 0.0, 0.0, 1.0))
            continue
        fit = _fit_axis(profile, float(freqs[int(np.argmax(values))]))
        # Chance level of the whole known-size band (not the narrowed square one).
        band = (length / (cells + 2), length / cells * 1.02)
        fits.append(replace(fit, null=_null(profile, 1 / band[1], min(1 / band[0], 0.5), _fft_size(lengths))))
    return fits


def cell_edges(length: int, period: float, phase: float, drift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Cell boundaries (float pixel positions, ``0`` and ``length`` at the ends) along
    one axis, and per cell the share of a full cell that the image shows (< 1 for cells
    cut by the image edge)."""
    if period <= 1:
        return np.arange(length + 1, dtype=np.float64), np.ones(length)
    samples = np.linspace(0.0, float(length), 8 * length + 1)
    coordinate = (samples - phase) / period + drift * _warp(length, samples)
    if np.any(np.diff(coordinate) <= 0):  # a bend too strong to invert: drop it
        coordinate = (samples - phase) / period
    first, last = int(math.floor(coordinate[0])), int(math.ceil(coordinate[-1]))
    lines = np.arange(first + 1, last)
    inner = np.interp(lines, coordinate, samples)
    inner = inner[(inner > 0.5) & (inner < length - 0.5)]
    edges = np.concatenate([[0.0], inner, [float(length)]])
    widths = np.diff(edges)
    full = float(np.mean(widths[1:-1])) if widths.size > 2 else period
    # Half a pixel of slack: rounded (nearest-neighbour) boundaries put the fitted phase
    # up to that far off, and a full edge cell must not look cut.
    coverage = np.minimum((widths + 0.5) / max(full, 1e-9), 1.0)
    return edges, coverage


# --------------------------------------------------------------------------- colour


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _keys(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5: what bicubic resizing uses)."""
    t = np.abs(t)
    a = -0.5
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _axis_matrix(length: int, edges: np.ndarray, kernel: str, sigma: float) -> np.ndarray:
    """``(length, cells)``: weight of each cell's colour in each pixel."""
    x = np.arange(length) + 0.5
    if kernel == "cubic":
        centres = (edges[:-1] + edges[1:]) / 2
        widths = np.maximum(np.diff(edges), 1e-6)
        full = float(np.median(widths))
        # Cut cells at the image edge: their centre is where the full cell's would be.
        if widths.size > 1:
            centres[0] = edges[1] - full / 2
            centres[-1] = edges[-2] + full / 2
        matrix = _keys((x[:, None] - centres[None, :]) / full)
        return matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1e-9)
    lo = edges[:-1].copy()
    hi = edges[1:].copy()
    lo[0], hi[-1] = -1e9, 1e9  # pixels beyond the edge cells belong to them
    if sigma <= 0:
        return ((x[:, None] >= lo[None, :]) & (x[:, None] < hi[None, :])).astype(np.float64)
    scale = sigma * math.sqrt(2.0)
    return 0.5 * (_erf((hi[None, :] - x[:, None]) / scale) - _erf((lo[None, :] - x[:, None]) / scale))


def _centre_spans(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the pixels ``[lo, hi)`` of its central half (at least one)."""
    a, b = edges[:-1], edges[1:]
    quarter = (b - a) / 4
    lo = np.floor(a + quarter + 0.5).astype(np.int64)
    hi = np.ceil(b - quarter - 0.5).astype(np.int64)
    empty = hi <= lo
    lo = np.where(empty, np.minimum(((a + b) / 2).astype(np.int64), int(edges[-1]) - 1), lo)
    return lo, np.where(empty, lo + 1, hi)


def _centre_median(
    data: np.ndarray,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    convert: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Per cell, the per-channel median of the central half (at least one pixel);
    cells are gathered by span size, so one ``np.median`` call serves each size.
    ``rows`` / ``cols`` (cell indices) restrict it to those cells (the result is
    ``(len(rows), len(cols), C)``); ``convert`` maps the gathered pixels first."""
    (x0, x1), (y0, y1) = _centre_spans(x_edges), _centre_spans(y_edges)
    if rows is not None:
        y0, y1 = y0[rows], y1[rows]
    if cols is not None:
        x0, x1 = x0[cols], x1[cols]
    channels = data.shape[2] if convert is None else convert(data[:1, :1]).shape[-1]
    out = np.empty((len(y0), len(x0), channels))
    for height in np.unique(y1 - y0):
        picked_rows = np.nonzero(y1 - y0 == height)[0]
        ys = y0[picked_rows, None] + np.arange(height)  # (rows, height)
        for width in np.unique(x1 - x0):
            picked_cols = np.nonzero(x1 - x0 == width)[0]
            xs = x0[picked_cols, None] + np.arange(width)  # (cols, width)
            block = data[ys[:, None, :, None], xs[None, :, None, :]]  # (rows, cols, h, w, C)
            if convert is not None:
                block = convert(block)
            shape = (len(picked_rows), len(picked_cols), -1, channels)
            out[np.ix_(picked_rows, picked_cols)] = np.median(block.reshape(shape), axis=2)
    return out


def _to_ycca(rgba: np.ndarray) -> np.ndarray:
    """RGBA (any shape ``(..., 4)``) → float64 Y, Cb, Cr, A."""
    data = rgba.astype(np.float64)
    return np.concatenate([data[..., :3] @ _YCC.T, data[..., 3:]], axis=-1)


def _span_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    """int64 sums of ``values`` over ``[lo[k], hi[k])`` along ``axis`` in one pass
    (``np.add.reduceat``): the spans are ordered and disjoint; empty ones sum to 0."""
    keep = np.nonzero(hi > lo)[0]
    shape = list(values.shape)
    shape[axis] = lo.size
    out = np.zeros(shape, np.int64)
    if keep.size == 0:
        return out
    starts, ends = lo[keep], hi[keep]
    if np.any(starts[1:] < ends[:-1]):
        raise ValueError("spans overlap")
    bounds = np.stack([starts, ends], axis=1).ravel()
    if bounds[-1] >= values.shape[axis]:
        bounds = bounds[:-1]  # the last span runs to the end
    sums = np.add.reduceat(values, bounds, axis=axis, dtype=np.int64)
    index: list[Any] = [slice(None)] * values.ndim
    index[axis] = keep
    out[tuple(index)] = np.take(sums, np.arange(0, 2 * keep.size, 2), axis=axis)
    return out


def _rect_means(
    rgba: np.ndarray, x_spans: tuple[np.ndarray, np.ndarray], y_spans: tuple[np.ndarray, np.ndarray], min_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the exact mean RGBA of the rectangle ``y_spans × x_spans`` (integer
    sums, one pass over the image), and whether both sides hold ``min_width`` pixels."""
    (x0, x1), (y0, y1) = x_spans, y_spans
    sums = _span_sums(_span_sums(rgba, y0, y1, 0), x0, x1, 1)
    count = np.maximum(y1 - y0, 0)[:, None] * np.maximum(x1 - x0, 0)[None, :]
    valid = ((y1 - y0) >= min_width)[:, None] & ((x1 - x0) >= min_width)[None, :]
    return sums / np.maximum(count, 1)[..., None], valid


def _interior_spans(edges: np.ndarray, margin: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the pixel range ``[lo, hi)`` whose centres lie ``margin`` (at least
    :data:`INTERIOR_INSET` of the width in cells of :data:`INSET_MIN_WIDTH` px or more) inside the cell (``None``: the middle 30%);
    empty ranges mean "no interior"."""
    a, b = edges[:-1], edges[1:]
    width = b - a
    if margin is None:
        lo_edge, hi_edge = a + 0.35 * width, b - 0.35 * width
    else:
        # In big cells at least the outer 30% goes too: renders smooth every edge
        # (bicubic, soft brushes) far beyond any blur a kernel here models; small
        # cells need every pixel against noise.
        inset = np.where(width >= INSET_MIN_WIDTH, np.maximum(margin, INTERIOR_INSET * width), margin)
        lo_edge, hi_edge = a + inset, b - inset
    lo = np.ceil(lo_edge - 0.5).astype(np.int64)
    hi = np.floor(hi_edge - 0.5).astype(np.int64) + 1
    return np.clip(lo, 0, None), np.clip(hi, None, int(edges[-1]))


def _interior_means(
    rgba: np.ndarray,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    margins: tuple[float | None, float | None],
    min_width: int = 1,
) -> np.ndarray:
    """Mean Y, Cb, Cr, A of each cell's interior (see :func:`_interior_spans`); NaN
    where it is narrower than ``min_width`` pixels on either axis. The colour
    transform is linear, so it is applied to the exact mean RGBA."""
    means, valid = _rect_means(
        rgba, _interior_spans(x_edges, margins[0]), _interior_spans(y_edges, margins[1]), min_width
    )
    return np.where(valid[..., None], _to_ycca(means), np.nan)


@_one_blas_thread
def collapse_cells(
    rgba: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray, *, kernels: Sequence[tuple[str, float]] = KERNELS
) -> tuple[np.ndarray, dict[str, str]]:
    """One colour per cell: ``((cells_y, cells_x, 4) float64 RGBA, kernel per channel)``.

    Least squares through a separable kernel per channel of YCbCrA, ridge-regularised
    towards each cell's centre median (see the module docstring).
    """
    rgba = _as_rgba(rgba)
    height, width = rgba.shape[:2]
    names = ("Y", "Cb", "Cr", "A")
    if min(float(np.median(np.diff(x_edges))), float(np.median(np.diff(y_edges)))) >= LARGE_CELL:
        # Every full cell has a middle out of its neighbours' reach under every kernel
        # tried (what the least squares below would replace its answer with anyway):
        # its mean is the colour; cut cells too narrow for one take the centre median.
        x_spans, y_spans = _interior_spans(x_edges, None), _interior_spans(y_edges, None)
        cells, valid = _rect_means(rgba, x_spans, y_spans, 2)
        bad_rows = np.nonzero(~valid.any(axis=1))[0]
        bad_cols = np.nonzero(~valid.any(axis=0))[0]
        for rows, cols in ((bad_rows, None), (None, bad_cols)):
            if (rows if rows is not None else cols).size:
                median = _centre_median(rgba, x_edges, y_edges, rows=rows, cols=cols, convert=_to_ycca)
                median = np.concatenate([median[..., :3] @ _YCC_INV.T, median[..., 3:]], axis=-1)
                if rows is not None:
                    cells[rows] = median
                else:
                    cells[:, cols] = median
        return np.clip(cells, 0, 255), {n: "interior" for n in names}
    ycc = _to_ycca(rgba)
    prior = _centre_median(ycc, x_edges, y_edges)
    best: list[tuple[float, np.ndarray, str]] = [(np.inf, prior[..., c], "median") for c in range(4)]
    flat_alpha = float(ycc[..., 3].min()) == float(ycc[..., 3].max())
    channels = [0, 1, 2] if flat_alpha else [0, 1, 2, 3]
    stack = np.ascontiguousarray(ycc[..., channels].transpose(2, 0, 1))  # (C, H, W)
    energy = np.einsum("chw,chw->c", stack, stack)
    prior_c = np.ascontiguousarray(prior[..., channels].transpose(2, 0, 1))
    for kernel, sigma in kernels:
        ay = _axis_matrix(height, y_edges, kernel, sigma)
        ax = _axis_matrix(width, x_edges, kernel, sigma)
        uy, sy, vyt = np.linalg.svd(ay, full_matrices=False)
        ux, sx, vxt = np.linalg.svd(ax, full_matrices=False)
        full = float(np.median(ay.sum(axis=0))) * float(np.median(ax.sum(axis=0)))
        ridge = RIDGE * full
        gain = sy[:, None] * sx[None, :]
        # U's columns are orthonormal: with P = Uyᵀ C Ux, the residual of a fit
        # Uy (G∘Ŝ) Uxᵀ is ‖C‖² − ‖P‖² + ‖P − G∘Ŝ‖², so no full-size image is rebuilt.
        projected = uy.T @ stack @ ux
        prior_hat = vyt @ prior_c @ vxt.T
        solved_hat = (gain * projected + ridge * prior_hat) / (gain * gain + ridge)
        misfit = projected - gain * solved_hat
        residuals = (
            energy - np.einsum("cij,cij->c", projected, projected) + np.einsum("cij,cij->c", misfit, misfit)
        ) / (height * width)
        solved = vyt.T @ solved_hat @ vxt
        for i, c in enumerate(channels):
            residual = float(residuals[i])
            if residual < best[c][0] - 1e-9:
                best[c] = (residual, solved[i], f"{kernel} σ{sigma:g}" if kernel == "box" else kernel)
    cells = np.stack([b[1] for b in best], axis=-1)
    # Where a cell is big enough to have pixels out of its neighbours' reach (two blur
    # sigmas from its edges; the middle 30% under cubic interpolation), their plain
    # mean is the better estimate: no kernel is exactly right, and the mean of
    # untouched pixels needs none.
    interiors: dict[tuple[Any, bool], np.ndarray] = {}
    for c, (_, _, name) in enumerate(best):
        if name.startswith("box"):
            sigma = float(name.split("σ")[1])
            margins = (0.5 + 2 * sigma, 0.5 + 2 * sigma)
        elif name == "cubic":
            margins = (None, None)
        else:
            continue
        if (margins, name == "cubic") not in interiors:
            interiors[margins, name == "cubic"] = _interior_means(
                rgba, x_edges, y_edges, margins, 2 if name == "cubic" else 1
            )
        interior = interiors[margins, name == "cubic"][..., c]
        cells[..., c] = np.where(np.isnan(interior), cells[..., c], interior)
    if flat_alpha:
        cells[..., 3] = ycc[0, 0, 3]
    rgb = cells[..., :3] @ _YCC_INV.T
    out = np.concatenate([rgb, cells[..., 3:]], axis=-1)
    return np.clip(out, 0, 255), {n: b[2] for n, b in zip(names, best)}


def lock_cells(cells: np.ndarray, palette_rgb: np.ndarray) -> np.ndarray:
    """Every opaque cell → its nearest palette colour in OKLab, exactly as
    :func:`~sparky_assets.process.quantize.quantize_to_palette` locks it (same search
    and tie-breaking), but over the image's distinct colours only: a sprite has a few
    hundred cells, and loading a palette's 16 MiB table would cost more than all of them."""
    from .quantize import nearest_exact

    out = cells.copy()
    opaque = out[..., 3] >= 128
    colours = np.clip(palette_rgb.round(), 0, 255).astype(np.uint8)
    if opaque.any():
        keys, inverse = np.unique(out[..., :3][opaque], axis=0, return_inverse=True)
        out[..., :3][opaque] = colours[nearest_exact(keys, colours)][inverse.reshape(-1)]
    out[..., 3] = np.where(opaque, 255, 0)
    out[~opaque] = 0
    return out


def merge_noise(cells: np.ndarray, opaque: np.ndarray, tolerance: float) -> np.ndarray:
    """Cells whose colours differ by at most ``tolerance`` (max per channel) take the
    colour of their most common member; colours further apart are never merged."""
    out = cells.copy()
    colours = cells[..., :3][opaque]
    if colours.size == 0:
        return out
    keys, counts = np.unique(colours, axis=0, return_counts=True)
    order = np.lexsort((np.arange(len(keys)), -counts))
    centres: list[np.ndarray] = []
    mapping = np.empty((len(keys), 3), np.uint8)
    for i in order:
        colour = keys[i].astype(np.int16)
        for centre in centres:
            if np.abs(colour - centre).max() <= tolerance:
                mapping[i] = centre
                break
        else:
            centres.append(colour)
            mapping[i] = colour
    lookup = {tuple(k): m for k, m in zip(keys.tolist(), mapping)}
    out[..., :3][opaque] = np.array([lookup[tuple(c)] for c in colours.tolist()], np.uint8)
    return out


# --------------------------------------------------------------------------- background


def border_colour(rgba: np.ndarray, tolerance: int = DEFAULT_TOLERANCE) -> tuple[int, int, int] | None:
    """The colour covering at least :data:`BORDER_SHARE` of the image's 2-px border
    ring (opaque pixels), or ``None`` (a tile, or an already transparent border)."""
    rgba = _as_rgba(rgba)
    height, width = rgba.shape[:2]
    ring = np.concatenate(
        [rgba[:2].reshape(-1, 4), rgba[-2:].reshape(-1, 4), rgba[:, :2].reshape(-1, 4), rgba[:, -2:].reshape(-1, 4)]
    )
    opaque = ring[ring[:, 3] >= 128][:, :3].astype(np.int16)
    if len(opaque) < BORDER_SHARE * len(ring):
        return None
    # Mode of 4-bit bins, then the mean of every pixel near it.
    bins = (opaque >> 4).astype(np.int64)
    codes = (bins[:, 0] << 8) | (bins[:, 1] << 4) | bins[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    code = int(values[int(np.argmax(counts))])
    centre = np.array([(code >> 8) & 15, (code >> 4) & 15, code & 15]) * 16 + 8
    near = np.abs(opaque - centre).max(axis=1) <= max(tolerance // 2, 12)
    key = opaque[near].mean(axis=0)
    share = (np.abs(opaque - key).max(axis=1) <= tolerance).mean() * len(opaque) / len(ring)
    if share < BORDER_SHARE:
        return None
    return tuple(int(round(v)) for v in key)  # type: ignore[return-value]


def _oklab(rgb: np.ndarray) -> np.ndarray:
    from .quantize import srgb_to_oklab

    return srgb_to_oklab(np.clip(np.asarray(rgb), 0, 255).round().astype(np.uint8))


def background_mask(
    cells: np.ndarray,
    key: tuple[int, int, int] | None,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    palette: np.ndarray | None = None,
    connected: bool = True,
) -> np.ndarray:
    """Background cells of a collapsed ``(h, w, 4)`` image.

    Cells with alpha < 128 always are. With a ``key`` colour: cells within
    ``tolerance`` of it (and, with a ``palette``, nearer to it than to every palette
    colour in OKLab) — only those 4-connected to the border (or to transparent cells)
    when ``connected`` — plus soft shadows: cells connected to those that keep the
    key's hue and are darker by up to a third of its lightness.
    """
    transparent = cells[..., 3] < 128
    if key is None:
        return transparent
    rgb = cells[..., :3]
    close = np.abs(rgb - np.asarray(key, np.float64)).max(axis=-1) <= tolerance
    lab = _oklab(rgb)
    key_lab = _oklab(np.array(key, np.float64))
    if palette is not None and len(palette):
        palette_lab = _oklab(palette)
        to_palette = np.sqrt(((lab[..., None, :] - palette_lab) ** 2).sum(-1)).min(-1)
        to_key = np.sqrt(((lab - key_lab) ** 2).sum(-1))
        close &= to_key < to_palette
        shadow_ok = to_palette > 0.04
    else:
        shadow_ok = np.ones(close.shape, bool)
    chroma = np.sqrt(((lab[..., 1:] - key_lab[1:]) ** 2).sum(-1))
    darker = key_lab[0] - lab[..., 0]
    shadow = (chroma < 0.025) & (darker >= 0) & (darker <= key_lab[0] / 3) & shadow_ok
    if not connected:
        return transparent | close
    return transparent | _flood(close | transparent, close | shadow | transparent)


def _flood(seeds_allowed: np.ndarray, passable: np.ndarray) -> np.ndarray:
    """Cells of ``passable`` 4-connected to a border cell of ``seeds_allowed``; shadow
    cells (passable but not seeds) are reached only through seed-kind cells first."""
    height, width = passable.shape
    filled = np.zeros((height, width), bool)
    queue: deque[tuple[int, int]] = deque()
    for y in range(height):
        for x in range(width):
            if (y in (0, height - 1) or x in (0, width - 1)) and seeds_allowed[y, x]:
                filled[y, x] = True
                queue.append((y, x))
    while queue:
        y, x = queue.popleft()
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= ny < height and 0 <= nx < width and passable[ny, nx] and not filled[ny, nx]:
                filled[ny, nx] = True
                queue.append((ny, nx))
    return filled


# --------------------------------------------------------------------------- fitting


def _window(opaque_per_cell: np.ndarray, target: int, coverage: np.ndarray) -> int:
    """Start of the ``target``-long window over one axis's cells that leaves out the
    least content (opaque cells, weighted by how much of each the image shows) and
    takes in the least cut-cell area; then the one that centres the content, then the
    lowest start."""
    count = opaque_per_cell.size
    weight = opaque_per_cell * coverage
    nonzero = np.nonzero(opaque_per_cell)[0]
    low, high = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, count - 1)
    best_key: tuple | None = None
    best_start = 0
    for start in range(count - target + 1):
        end = start + target
        outside = float(weight[:start].sum() + weight[end:].sum())
        missing = float((1.0 - coverage[start:end]).sum())
        centring = abs((low - start) - (end - 1 - high))
        key = (round(outside + missing * 0.5, 3), centring, start)
        if best_key is None or key < best_key:
            best_key, best_start = key, start
    return best_start


def fit_to_target(
    cells: np.ndarray, coverage_x: np.ndarray, coverage_y: np.ndarray, target: tuple[int, int]
) -> np.ndarray:
    """Crop (a window of cells, see :func:`_window`) or pad (centred) a collapsed RGBA
    image to ``target`` ``(w, h)``; content more than two cells larger than the target
    (a grid of another size won) is resampled by nearest cell centre instead."""
    target_w, target_h = target
    opaque = cells[..., 3] == 255
    out = np.zeros((target_h, target_w, 4), np.uint8)
    height, width = cells.shape[:2]
    if opaque.any():
        ys, xs = np.nonzero(opaque)
        top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
        content_w, content_h = right - left + 1, bottom - top + 1
        if content_w > target_w + 2 or content_h > target_h + 2:
            content = cells[top : bottom + 1, left : right + 1]
            scale = min(target_w / content_w, target_h / content_h)
            new_w = max(1, min(target_w, int(round(content_w * scale))))
            new_h = max(1, min(target_h, int(round(content_h * scale))))
            src_x = np.minimum(((np.arange(new_w) + 0.5) * content_w / new_w).astype(np.int64), content_w - 1)
            src_y = np.minimum(((np.arange(new_h) + 0.5) * content_h / new_h).astype(np.int64), content_h - 1)
            oy, ox = (target_h - new_h) // 2, (target_w - new_w) // 2
            out[oy : oy + new_h, ox : ox + new_w] = content[src_y[:, None], src_x[None, :]]
            return out

    def axis(count: int, size: int, per_cell: np.ndarray, coverage: np.ndarray) -> tuple[int, int, int]:
        if count >= size:
            return _window(per_cell, size, coverage), 0, size
        return 0, (size - count) // 2, count

    sx, dx, nx = axis(width, target_w, opaque.sum(axis=0).astype(np.float64), coverage_x)
    sy, dy, ny = axis(height, target_h, opaque.sum(axis=1).astype(np.float64), coverage_y)
    out[dy : dy + ny, dx : dx + nx] = cells[sy : sy + ny, sx : sx + nx]
    return out


# --------------------------------------------------------------------------- entry point


def _palette_array(palette: Any) -> np.ndarray | None:
    if palette is None:
        return None
    colours = getattr(palette, "colors", palette)
    array = np.asarray([tuple(c)[:3] for c in colours], dtype=np.float64)
    return array if array.size else None


@_one_blas_thread
def pixelize_result(
    image: np.ndarray,
    *,
    grid: Grid | None = None,
    target_size: tuple[int, int] | None = None,
    background: Background = "auto",
    tolerance: int = DEFAULT_TOLERANCE,
    palette: Any = None,
) -> PixelizeResult:
    """Fake pixel art → real pixel art, with the grid used and how sure it is.

    ``target_size`` is ``(width, height)`` in cells; when given the image has exactly
    that size and the grid is fitted to it. ``grid`` skips detection. ``background``
    is ``"auto"`` (the border ring's colour), ``"none"``, or a key colour; ``palette``
    (a :class:`~sparky_assets.palettes.Palette` or RGB triples) locks every opaque cell
    to its nearest palette colour and tells the background from real shades.
    """
    rgba = _as_rgba(image)
    height, width = rgba.shape[:2]
    target: tuple[int, int] | None = None
    if target_size is not None:
        target = (int(target_size[0]), int(target_size[1]))
        if target[0] < 1 or target[1] < 1:
            raise ValueError(f"target_size must be positive, found {target_size!r}")
    palette_rgb = _palette_array(palette)
    source: Literal["given", "identity", "size", "detected", "override"]
    if grid is not None:
        source = "given"
    elif target is not None and (width, height) == target:
        grid, source = Grid(1.0, 1.0, 0.0, 0.0, 1.0), "identity"
    elif target is not None:
        grid, overridden = fit_grid(rgba, target)
        source = "override" if overridden else "size"
    else:
        grid, source = detect_grid(rgba), "detected"
    x_edges, coverage_x = cell_edges(width, grid.period_x, grid.phase_x, grid.drift_x)
    y_edges, coverage_y = cell_edges(height, grid.period_y, grid.phase_y, grid.drift_y)
    if source == "identity":
        values, kernel = rgba.astype(np.float64), {"Y": "identity", "Cb": "identity", "Cr": "identity", "A": "identity"}
    else:
        values, kernel = collapse_cells(rgba, x_edges, y_edges)
    cells = np.clip(values.round(), 0, 255).astype(np.uint8)
    if isinstance(background, str) and background == "none":
        key = None
    elif isinstance(background, str) and background == "auto":
        key = border_colour(rgba, tolerance)
    else:
        key = parse_colour(background)
    mask = background_mask(
        values, key, tolerance=tolerance, palette=palette_rgb, connected=not (palette_rgb is not None or key is None)
    )
    cells[..., 3] = np.where(mask, 0, 255)
    cells[mask, :3] = 0
    if palette_rgb is not None:
        cells = lock_cells(cells, palette_rgb)
    else:
        cells = merge_noise(cells, ~mask, MERGE_TOLERANCE)
    if target is None:
        # Without a size, cut cells at the image edge go when the image shows less than
        # 60% of them, or they are cut (CUT_SLACK) and mostly background.
        clear = cells[..., 3] == 0
        cut_x = coverage_x < _cut_below(grid.period_x)
        cut_y = coverage_y < _cut_below(grid.period_y)
        keep_x = (coverage_x >= 0.6) & ~(cut_x & (clear.mean(axis=0) >= CUT_CLEAR))
        keep_y = (coverage_y >= 0.6) & ~(cut_y & (clear.mean(axis=1) >= CUT_CLEAR))
        xs, ys = np.nonzero(keep_x)[0], np.nonzero(keep_y)[0]
        if xs.size and ys.size:
            cells = cells[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        out = cells
    else:
        out = fit_to_target(cells, coverage_x, coverage_y, target)
    return PixelizeResult(
        out, grid, (len(x_edges) - 1, len(y_edges) - 1), source, kernel, key if key is None else tuple(key)
    )


def _cut_below(period: float) -> float:
    """Coverage under which an edge cell counts as cut (see :data:`CUT_COVERAGE`)."""
    return 0.0 if period < 3 else max(CUT_COVERAGE, 1.0 - CUT_SLACK / period)


def pixelize(image: np.ndarray, **options: Any) -> np.ndarray:
    """:func:`pixelize_result`'s image (same keyword options): ``(h, w, 4)`` RGBA uint8,
    alpha 0 or 255."""
    return pixelize_result(image, **options).image
