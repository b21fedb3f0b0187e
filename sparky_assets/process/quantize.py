"""Palette lock: every opaque pixel becomes its nearest palette colour in OKLab.

Invariants of :func:`quantize_to_palette`'s output: alpha is 0 or 255 (threshold 128);
every pixel with alpha 255 has an RGB that is exactly one of the palette's colours;
every pixel with alpha 0 is (0, 0, 0, 0). Nearest means smallest Euclidean distance
in OKLab (perceptual), not in RGB; exact ties go to the lower palette index.

How: a palette's *table* maps every 24-bit sRGB colour to its nearest palette index
(16 MiB, uint8), so locking an image is one gather per pixel. The table is built
by subdividing the RGB cube (:func:`build_table`): for each cube, palette entries
that provably cannot be nearest anywhere in it are dropped (:func:`_prune`); cubes
left with one candidate are filled whole, the rest split, down to single colours
decided among their few candidates. A palette that has locked fewer than
:data:`DIRECT_PIXELS` pixels searches each distinct colour directly instead (the same
exact answer, without building or loading 16 MiB).

Determinism on every CPU and numpy version: the decision is made in float64; where
the best and second-best distances are closer than :data:`~sparky_assets.colour.TIE_BAND`
(far above float noise), the candidates are re-ranked in 50-digit decimal arithmetic
(:func:`~sparky_assets.colour.exact_oklab`), whose result does not depend on the
machine. So the table is the mathematically exact nearest colour, ties to the lower
index, everywhere.

Tables are cached in memory and on disk (:func:`table_cache_dir`) under the digest
of the palette's colours; a file whose stored SHA-256 does not match its content is
rebuilt and rewritten, never used.

Ordered (Bayer) dithering adds a position-dependent integer offset to each sRGB
channel (amplitude: the palette's typical neighbour distance in sRGB) and then looks
up the same table, so it is as fast and as deterministic as the plain lock.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import sys
import zlib
from collections import OrderedDict
from decimal import Decimal
from pathlib import Path

import numpy as np

from ..colour import M1, M2, SRGB8_TO_LINEAR, TIE_BAND, apply3, exact_oklab, srgb_to_oklab
from ..palettes import Palette

QUANTIZE_VERSION = 2
"""Bump when locking, dithering or outlining changes its output (part of every process key).
2: float64 decision with exact tie-breaking; dithering offsets in sRGB."""

TABLE_VERSION = 1
"""Bump when :func:`build_table` changes (part of the on-disk table's name and header)."""
TABLE_MAGIC = b"SPARKY-PALETTE-TABLE\n"
PRUNE_SIZES = (64, 32, 16, 8, 4, 2)
"""Cube sides pruned in turn; cubes of the last size still ambiguous are decided colour by colour."""
_MEMORY_TABLES = 8
_tables: OrderedDict[str, np.ndarray] = OrderedDict()


# --------------------------------------------------------------------------- table


def palette_digest(colors: np.ndarray) -> str:
    return hashlib.sha256(
        b"table%d:" % TABLE_VERSION + np.ascontiguousarray(colors, dtype=np.uint8).tobytes()
    ).hexdigest()


def _prune(origin: np.ndarray, size: int, cand: np.ndarray, plab: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Drop from each cube's candidate columns ``cand`` (``(n, m)``) those that cannot
    come within ``TIE_BAND`` of the nearest anywhere in the sRGB cube ``origin + [0, size)³``;
    returns the cubes grouped by how many candidates they keep: ``[(origin, columns)]``
    with columns ``(n, count)`` ascending.

    With ``c`` the candidate nearest the cube's centre, ``q`` is kept unless a lower
    bound of ``d(q, x) - d(c, x)`` over the cube exceeds ``2 * TIE_BAND``. The bound is
    the larger of two valid ones (each sound, each tight where the other is loose):

    - *corner box*: ``d(q, x) - d(c, x)`` is linear in OKLab and so in cube-rooted
      LMS ``y`` (``x = M2 y``); every ``y`` grows with every channel, so the cube's low
      and high corners bound ``y`` and the minimum over that box is at a corner chosen
      by coefficient signs;
    - *mean value*: in linear sRGB the cube is a box; the difference at the box centre
      minus the largest possible slope times the half widths, the slope bounded with
      the cube root's derivative over each LMS range (tight for small cubes, useless
      next to black, where the derivative is unbounded).

    Float error in the bounds is ~1e-15, far below the band."""
    lin_lo = SRGB8_TO_LINEAR[origin]
    lin_hi = SRGB8_TO_LINEAR[origin + (size - 1)]
    lms_lo, lms_hi = apply3(M1, lin_lo), apply3(M1, lin_hi)
    root_lo, root_hi = np.cbrt(lms_lo) - 1e-12, np.cbrt(lms_hi) + 1e-12
    lin_mid, half = (lin_lo + lin_hi) * 0.5, (lin_hi - lin_lo) * 0.5
    centre = apply3(M2, np.cbrt(apply3(M1, lin_mid)))
    cand_lab = plab[cand]  # (n, m, 3)
    d = [(cand_lab[:, :, i] - centre[:, None, i]) ** 2 for i in range(3)]
    d_centre = (d[0] + d[1]) + d[2]
    ref_pos = np.argmin(d_centre, axis=1)[:, None]
    ref = np.take_along_axis(cand, ref_pos, axis=1)  # (n, 1)
    diff = cand_lab - plab[ref]  # q - c, (n, m, 3)
    w = [(diff[:, :, 0] * M2[0][j] + diff[:, :, 1] * M2[1][j]) + diff[:, :, 2] * M2[2][j] for j in range(3)]
    sq = (plab * plab).sum(axis=1)
    box = sq[cand] - sq[ref]
    for j in range(3):  # minus 2 * the largest w_j y_j over the box
        box -= 2 * np.where(w[j] > 0, w[j] * root_hi[:, None, j], w[j] * root_lo[:, None, j])
    # d/dt cbrt(t) = 1 / (3 cbrt(t)^2), bounded over [lms_lo, lms_hi] (huge, not inf, at 0)
    slope_lo = 1.0 / (3.0 * np.cbrt(lms_hi) ** 2)
    slope_hi = 1.0 / (3.0 * np.maximum(np.cbrt(lms_lo), 1e-100) ** 2)
    w_lo = [np.where(w[j] > 0, w[j] * slope_lo[:, None, j], w[j] * slope_hi[:, None, j]) for j in range(3)]
    w_hi = [np.where(w[j] > 0, w[j] * slope_hi[:, None, j], w[j] * slope_lo[:, None, j]) for j in range(3)]
    mean_value = d_centre - np.take_along_axis(d_centre, ref_pos, axis=1)
    for c in range(3):  # d/dlin_c of -2 w.y = -2 sum_j w_j cbrt'(lms_j) M1[j][c]
        g_lo = (M1[0][c] * w_lo[0] + M1[1][c] * w_lo[1]) + M1[2][c] * w_lo[2]
        g_hi = (M1[0][c] * w_hi[0] + M1[1][c] * w_hi[1]) + M1[2][c] * w_hi[2]
        mean_value -= 2 * np.maximum(np.abs(g_lo), np.abs(g_hi)) * half[:, None, c] * (1 + 1e-9)
    kept = np.where(np.maximum(box, mean_value) <= 2 * TIE_BAND, cand, len(plab))
    kept[np.arange(len(cand)), ref_pos[:, 0]] = ref[:, 0]
    kept.sort(axis=1)
    counts = (kept < len(plab)).sum(axis=1)
    return [(origin[counts == n], kept[counts == n, :n]) for n in np.unique(counts).tolist()]


def _fill(table: np.ndarray, origin: np.ndarray, size: int, values: np.ndarray) -> None:
    """``table[r | g << 8 | b << 16] = value`` over each cube ``origin + [0, size)³``."""
    n = 256 // size
    view = table.reshape(n, size, n, size, n, size)  # b, db, g, dg, r, dr
    cell = origin // size
    view[cell[:, 2], :, cell[:, 1], :, cell[:, 0], :] = values[:, None, None, None]


def build_table(colors: np.ndarray) -> np.ndarray:
    """``(2**24,)`` uint8: the nearest palette index of every colour ``r | g << 8 | b << 16``.
    Duplicated palette colours resolve to their first index.

    Cubes of 32, 16, 8, 4, then 2 sRGB values a side keep the candidates :func:`_prune`
    cannot rule out; a cube left with one is filled whole, the others split into their
    eight children, and the single colours still ambiguous are decided one by one."""
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if not 1 <= len(colors) <= 256:
        raise ValueError(f"a palette table needs 1..256 colours, found {len(colors)}")
    _, first = np.unique(colors, axis=0, return_index=True)
    keep = np.sort(first)  # distinct colours in palette order, first occurrences
    plab = srgb_to_oklab(colors[keep])
    table = np.empty(1 << 24, dtype=np.uint8)
    if len(keep) == 1:
        table[:] = keep[0]
        return table

    steps = np.arange(0, 256, PRUNE_SIZES[0])
    b, g, r = np.meshgrid(steps, steps, steps, indexing="ij")
    origin = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=-1)
    groups = [(origin, np.broadcast_to(np.arange(len(keep)), (len(origin), len(keep))))]
    for size in PRUNE_SIZES:
        pending: dict[int, list] = {}
        for origin, cand in groups:
            for kept_origin, kept in _prune(origin, size, cand, plab):
                pending.setdefault(kept.shape[1], []).append((kept_origin, kept))
        groups = []
        # cubes left with one candidate are filled; the others split into their children
        child = size // 2 if size > PRUNE_SIZES[-1] else 1
        for width, parts in sorted(pending.items()):
            origin = np.concatenate([o for o, _ in parts])
            cand = np.concatenate([c for _, c in parts])
            if width == 1:
                _fill(table, origin, size, keep[cand[:, 0]])
                continue
            steps = np.arange(0, size, child)
            db, dg, dr = np.meshgrid(steps, steps, steps, indexing="ij")
            corners = np.stack([dr.ravel(), dg.ravel(), db.ravel()], axis=-1)
            groups.append(((origin[:, None, :] + corners[None]).reshape(-1, 3), np.repeat(cand, len(corners), axis=0)))
    for rgb, cand in groups:  # single colours now: decide each among its candidates
        _decide(table, rgb, cand, colors, keep, plab)
    return table


def _decide(table, rgb, cand, colors, keep, plab) -> None:
    """Set ``table`` for single colours ``rgb`` ``(n, 3)`` from their candidate columns
    ``cand`` ``(n, m)``: float64 nearest, near-ties re-ranked exactly."""
    codes = (rgb[:, 0] | (rgb[:, 1] << 8)) | (rgb[:, 2] << 16)
    lab = apply3(M2, np.cbrt(apply3(M1, SRGB8_TO_LINEAR[rgb])))
    cand_lab = plab[cand]
    d = [(cand_lab[:, :, i] - lab[:, None, i]) ** 2 for i in range(3)]
    dist = (d[0] + d[1]) + d[2]  # (n, m)
    rows = np.arange(len(cand))
    best = np.argmin(dist, axis=1)  # first minimum: lowest column (rows are ascending)
    best_d = dist[rows, best]
    table[codes] = keep[cand[rows, best]]
    dist[rows, best] = np.inf
    for row in np.flatnonzero(dist.min(axis=1) - best_d < TIE_BAND).tolist():
        dist[row, best[row]] = best_d[row]
        near = cand[row][dist[row] < best_d[row] + TIE_BAND]
        table[codes[row]] = keep[_exact_nearest(int(codes[row]), colors[keep[near]], near)]


def _exact_nearest(code: int, candidate_colors: np.ndarray, candidate_columns: np.ndarray) -> int:
    """Among near-tied candidates, the exactly nearest (decimal arithmetic); equal
    distances to 40 digits go to the lowest palette column."""
    lab = exact_oklab((code & 255, (code >> 8) & 255, code >> 16))
    best, best_d = None, None
    for column, color in sorted(zip(candidate_columns.tolist(), candidate_colors.tolist())):
        p = exact_oklab(tuple(color))
        d = sum(((a - b) ** 2 for a, b in zip(lab, p)), Decimal(0))
        if best_d is None or d < best_d - Decimal("1e-40"):
            best, best_d = column, d
    return best


def table_cache_dir() -> Path | None:
    """Where palette tables are kept between runs: ``SPARKY_TABLE_CACHE`` (``off``
    disables), else the user cache folder (``XDG_CACHE_HOME``, ``LOCALAPPDATA``,
    ``~/Library/Caches``, ``~/.cache``) under ``sparky-assets/palette-tables``."""
    env = os.environ.get("SPARKY_TABLE_CACHE")
    if env:
        return None if env.lower() in ("off", "0", "none") else Path(env)
    if os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"])
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path.home() / ".cache"
    return base / "sparky-assets" / "palette-tables"


def _read_table(path: Path) -> np.ndarray | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    header = len(TABLE_MAGIC) + 4 + 32
    if len(raw) < header or not raw.startswith(TABLE_MAGIC):
        return None
    (version,) = struct.unpack(">I", raw[len(TABLE_MAGIC) : len(TABLE_MAGIC) + 4])
    digest = raw[len(TABLE_MAGIC) + 4 : header]
    try:
        data = zlib.decompress(raw[header:])
    except zlib.error:
        return None
    if version != TABLE_VERSION or len(data) != 1 << 24 or hashlib.sha256(data).digest() != digest:
        return None
    return np.frombuffer(data, dtype=np.uint8)


def _write_table(path: Path, table: np.ndarray) -> None:
    data = table.tobytes()
    blob = TABLE_MAGIC + struct.pack(">I", TABLE_VERSION) + hashlib.sha256(data).digest() + zlib.compress(data, 1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs rebuild time


def palette_table(colors) -> np.ndarray:
    """The (memory- and disk-cached) table of ``colors`` — see :func:`build_table`."""
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    digest = palette_digest(colors)
    table = _tables.get(digest)
    if table is not None:
        _tables.move_to_end(digest)
        return table
    folder = table_cache_dir()
    path = folder / f"{digest}.bin" if folder is not None else None
    table = _read_table(path) if path is not None else None
    if table is None:
        table = build_table(colors)
        table.flags.writeable = False
        if path is not None:
            _write_table(path, table)
    _tables[digest] = table
    while len(_tables) > _MEMORY_TABLES:
        _tables.popitem(last=False)
    return table


# --------------------------------------------------------------------------- lock


def nearest_exact(rgb: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Reference search, colour by colour against every palette entry (float64 with
    the same exact tie-breaking as the table). Slow; for tests and benchmarks."""
    rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    _, first = np.unique(colors, axis=0, return_index=True)
    keep = np.sort(first)  # a duplicated colour is always its first index
    plab = srgb_to_oklab(colors[keep])
    lab = srgb_to_oklab(rgb)
    d = [(lab[:, None, i] - plab[None, :, i]) ** 2 for i in range(3)]
    dist = (d[0] + d[1]) + d[2]
    out = keep[np.argmin(dist, axis=1)]
    best = dist.min(axis=1)
    for row in np.flatnonzero(((dist < best[:, None] + TIE_BAND).sum(axis=1)) > 1).tolist():
        near = np.flatnonzero(dist[row] < best[row] + TIE_BAND)
        r, g, b = (int(v) for v in rgb[row])
        out[row] = keep[_exact_nearest(r | g << 8 | b << 16, colors[keep[near]], near)]
    return out


_BAYER2 = np.array([[0, 2], [3, 1]], dtype=np.int64)


def _bayer_ranks(n: int) -> np.ndarray:
    m = _BAYER2
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


def dither_amplitude(colors: np.ndarray) -> int:
    """Typical distance (sRGB units, integer) between neighbouring palette colours:
    the root mean square over colours of the distance to the nearest other colour."""
    c = np.unique(np.asarray(colors, dtype=np.int64).reshape(-1, 3), axis=0)
    if len(c) < 2:
        return 0
    d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.iinfo(np.int64).max)
    return math.isqrt(int(d2.min(axis=1).sum()) // len(c))


def dither_offsets(n: int, amplitude: int) -> np.ndarray:
    """``(n, n)`` integer offsets, centred thresholds ``(rank + 0.5)/n² - 0.5`` times
    ``amplitude``, in exact integer arithmetic (floor division)."""
    ranks = _bayer_ranks(n)
    return ((2 * ranks + 1 - n * n) * amplitude) // (2 * n * n)


DIRECT_PIXELS = 1 << 16
"""Pixels a palette locks by searching each distinct colour directly (:func:`nearest_exact`,
the same exact answer as the table) before its table is loaded or built: a palette that
locks one small sprite (a palette file being edited in ``watch``) never pays the table's
0.5–1 s build or ~50 ms load."""


class _LockParts:
    """What locking against one palette needs, memoised (a build locks thousands of small
    frames against a handful of palettes): the colours ``(n, 3)``, the pair table and,
    once :data:`DIRECT_PIXELS` pixels were locked without it (or it is in memory), the
    palette's table.

    The pair table maps two palette indices ``i | j << 8`` to their two opaque RGBA words
    ``word(i) | word(j) << 32``: the indices of two neighbouring pixels, read as one
    little-endian 16-bit number, become both output pixels with one lookup into a
    512 KiB table (cache-resident), half the gathers of a word-per-pixel lookup."""

    def __init__(self, palette_colors: tuple):
        self.colors = np.array(palette_colors, dtype=np.uint8).reshape(-1, 3)
        rgba = np.zeros((256, 4), dtype=np.uint8)
        rgba[: len(self.colors), :3], rgba[: len(self.colors), 3] = self.colors, 255
        words = rgba.view("<u4")[:, 0].astype("<u8")
        pairs = np.arange(1 << 16)
        self.pair_table = (words[pairs & 255] | (words[pairs >> 8] << np.uint64(32))).astype("<u8")
        self.table: np.ndarray | None = _tables.get(palette_digest(self.colors))
        self.direct_pixels = 0

    def indices(self, codes: np.ndarray) -> np.ndarray:
        """The palette index (uint8) of every code ``r | g << 8 | b << 16``."""
        if self.table is None and self.direct_pixels + codes.size > DIRECT_PIXELS:
            self.table = palette_table(self.colors)
        if self.table is not None:
            return np.take(self.table, codes, mode="wrap")  # every code is < 2**24: no bounds check needed
        self.direct_pixels += codes.size
        distinct, inverse = np.unique(codes, return_inverse=True)
        rgb = np.stack([distinct & 255, (distinct >> 8) & 255, distinct >> 16], axis=1)
        return nearest_exact(rgb, self.colors).astype(np.uint8)[inverse.reshape(-1)]


_lock_memo: OrderedDict[tuple, _LockParts] = OrderedDict()


def _lock_parts(palette_colors: tuple) -> _LockParts:
    parts = _lock_memo.get(palette_colors)
    if parts is None:
        parts = _lock_memo[palette_colors] = _LockParts(palette_colors)
        while len(_lock_memo) > _MEMORY_TABLES:
            _lock_memo.popitem(last=False)
    return parts


def prepare_palette(palette_colors: tuple) -> None:
    """Load the table of a palette this process will lock many pixels against (a build
    warming its workers), instead of after :data:`DIRECT_PIXELS` searched directly."""
    parts = _lock_parts(palette_colors)
    if parts.table is None:
        parts.table = palette_table(parts.colors)


def quantize_to_palette(image: np.ndarray, palette: Palette, dither: str = "none") -> np.ndarray:
    """RGBA ``(h, w, 4)`` uint8 → RGBA locked to ``palette`` (see module invariants)."""
    if image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an RGBA image (h, w, 4), found shape {image.shape}")
    parts = _lock_parts(palette.colors)
    h, w = image.shape[:2]
    # One little-endian 32-bit word per pixel: r | g << 8 | b << 16 | a << 24.
    words = np.ascontiguousarray(image).view("<u4").reshape(-1)
    n = words.size
    codes = np.empty(n + (n & 1), np.intp)  # table positions, already index-sized for np.take
    codes[n:] = 0  # an odd pixel count is padded to whole pairs
    if dither != "none":
        step = int(dither.removeprefix("bayer"))
        offsets = dither_offsets(step, dither_amplitude(parts.colors))
        tiled = np.tile(offsets, (h // step + 1, w // step + 1))[:h, :w].reshape(-1, 1)
        rgb = np.clip(image[:, :, :3].reshape(-1, 3).astype(np.int16) + tiled, 0, 255).astype(np.intp)
        np.bitwise_or(rgb[:, 0] | (rgb[:, 1] << 8), rgb[:, 2] << 16, out=codes[:n])
    else:
        np.bitwise_and(words, 0xFFFFFF, out=codes[:n], casting="unsafe")
    index = parts.indices(codes)
    locked = np.take(parts.pair_table, index.view("<u2").astype(np.intp), mode="wrap").view("<u4")[:n]
    if n and words.min() < 0x80000000:  # some alpha < 128
        locked[words < 0x80000000] = 0
    return locked.view(np.uint8).reshape(h, w, 4)
