"""The PNG writer: bytes that depend only on the pixels, the mode and this package's version.

Every PNG the package writes (atlas pages, the generated store) comes from
:func:`encode_png`. What makes the bytes reproducible on every machine:

- the compressed stream comes from libdeflate, statically built into the ``deflate``
  wheel that ``pyproject.toml`` pins to one version — never from the zlib that
  Pillow or Python happens to link (Pillow's newer wheels link zlib-ng, whose stream
  differs). libdeflate's output is a pure function of its input and level; its CPU
  dispatch only picks checksum kernels, whose results are fixed by definition;
- the chunks are always ``IHDR PLTE [tRNS] IDAT IEND`` (or ``IHDR IDAT IEND``), one
  IDAT, no timestamps, text, gamma or physical-size chunks;
- the palette order, bit depth, filters and level are chosen by fixed rules from the
  pixels alone.

Size (the default, ``fast=False``): indexed colour whenever there are at most 256
colours, at the smallest bit depth (1, 2, 4 or 8) that holds them, transparent
entries first so ``tRNS`` stays short; the filter strategy is picked by compressing
each candidate at a quick level — for indexed images no filter or the per-row
minimum-sum choice, for truecolour also each single filter on every row — and the
winner is compressed at libdeflate level 10 (its near-optimal parser; levels 11-12
take about twice the time for ~1% fewer bytes).
``fast=True`` (``--fast-png``, the default under ``watch``) skips the trials and uses
level 6: a little larger, many times quicker.

Changing anything here that changes bytes must bump :data:`PNG_VERSION`.
"""

from __future__ import annotations

import struct
import zlib

import deflate
import numpy as np

PNG_VERSION = 4
"""Bump when :func:`encode_png` changes its bytes (it is part of every export key).
2: own writer (libdeflate, smallest bit depth, filter trials); 3: indexed images try
only no filter and the per-row choice; 4: level 10."""

STRONG_LEVEL = 10
"""libdeflate's near-optimal parsing starts at 10; 11-12 cost 1.7-2.2x the time for ~1% fewer bytes."""
FAST_LEVEL = 6
TRIAL_LEVEL = 4
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    # zlib.crc32 is CRC-32 by definition: the same on every zlib build
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def index_colours(rgba: np.ndarray, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(indices (h, w) uint8, palette (n, 4) uint8)`` with the palette in ascending
    RGBA order (transparent black first), or None above 256 colours.

    ``candidates`` (sorted uint32 ``r<<24|g<<16|b<<8|a`` that may occur) replaces a full
    sort of the pixels by a binary search; pixels not among them fall back to the general
    path, so the result never depends on it."""
    # the four bytes of a pixel read as one big-endian word: r<<24 | g<<16 | b<<8 | a
    packed = np.ascontiguousarray(rgba, dtype=np.uint8).view(">u4").reshape(-1).astype(np.uint32)
    colors = inverse = None
    if candidates is not None and len(candidates):
        pos = np.minimum(np.searchsorted(candidates, packed), len(candidates) - 1)
        if np.array_equal(candidates[pos], packed):
            used = np.bincount(pos, minlength=len(candidates)) > 0
            colors = candidates[used]
            inverse = (np.cumsum(used) - 1)[pos]
    if colors is None:
        # np.unique(packed, return_inverse=True), in fewer passes: sort, keep the
        # first of each value, then find every pixel's value among them
        ordered = np.sort(packed)
        first = np.empty(len(ordered), dtype=bool)
        first[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        colors = ordered[first]
        inverse = np.searchsorted(colors, packed)
    if len(colors) > 256:
        return None
    palette = np.stack([(colors >> s) & 255 for s in (24, 16, 8, 0)], axis=1).astype(np.uint8)
    return inverse.reshape(rgba.shape[:2]).astype(np.uint8), palette


def _pack_bits(indices: np.ndarray, depth: int) -> np.ndarray:
    """``(h, w)`` indices → ``(h, ceil(w*depth/8))`` bytes, leftmost pixel in the high bits."""
    if depth == 8:
        return indices
    per = 8 // depth
    h, w = indices.shape
    cells = np.zeros((h, w + (-w) % per), dtype=np.uint8)
    cells[:, :w] = indices
    cells = cells.reshape(h, -1, per)
    out = cells[:, :, 0] << (8 - depth)
    for i in range(1, per):
        out |= cells[:, :, i] << (8 - depth * (i + 1))
    return out


def _filtered(raw: np.ndarray, bpp: int) -> np.ndarray:
    """The five PNG filters applied to every row of ``raw`` ``(h, rowbytes)``:
    ``(5, h, rowbytes)`` uint8, filter type first."""
    h, rowbytes = raw.shape
    preds = np.zeros((5, h, rowbytes), dtype=np.int16)  # none, sub, up, average, paeth
    left, up, average, paeth = preds[1], preds[2], preds[3], preds[4]
    left[:, bpp:] = raw[:, :-bpp]
    up[1:] = raw[:-1]
    corner = np.zeros_like(left)
    corner[1:, bpp:] = raw[:-1, :-bpp]
    np.right_shift(left + up, 1, out=average)
    p = left + up - corner
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - corner)
    paeth[...] = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
    np.subtract(raw, preds, out=preds)
    return preds.astype(np.uint8)  # (x - pred) mod 256


def _with_filter_bytes(rows: np.ndarray, kinds: np.ndarray) -> bytes:
    return np.concatenate([kinds.astype(np.uint8)[:, None], rows], axis=1).tobytes()


def _strategies(raw: np.ndarray, bpp: int, every_filter: bool = True) -> list[bytes]:
    """Filtered scanlines under each strategy: no filter; each filter on every row (only
    with ``every_filter``); per row, the filter with the smallest sum of absolute signed
    bytes (libpng's heuristic)."""
    h = raw.shape[0]
    filtered = _filtered(raw, bpp)
    out = [_with_filter_bytes(f, np.full(h, k)) for k, f in enumerate(filtered if every_filter else filtered[:1])]
    costs = np.abs(filtered.view(np.int8).astype(np.int32)).sum(axis=2)
    best = np.argmin(costs, axis=0)
    rows = filtered[best, np.arange(h)]
    out.append(_with_filter_bytes(rows, best))
    return out


def _compress(raw: np.ndarray, bpp: int, fast: bool, indexed: bool) -> bytes:
    if fast:
        if indexed:  # palette images: no filter is almost always best (PNG spec advice)
            return deflate.zlib_compress(_with_filter_bytes(raw, np.zeros(len(raw))), FAST_LEVEL)
        return deflate.zlib_compress(_strategies(raw, bpp, every_filter=False)[-1], FAST_LEVEL)
    # a filter for every row rarely helps palette images: none vs the per-row choice
    trials = _strategies(raw, bpp, every_filter=not indexed)
    sizes = [len(deflate.zlib_compress(t, TRIAL_LEVEL)) for t in trials]
    return deflate.zlib_compress(trials[int(np.argmin(sizes))], STRONG_LEVEL)


def encode_png(
    rgba: np.ndarray,
    candidates: np.ndarray | None = None,
    *,
    fast: bool = False,
    clear_hidden: bool = True,
) -> bytes:
    """PNG bytes of an RGBA ``(h, w, 4)`` uint8 image (see the module docstring).

    ``clear_hidden`` stores fully transparent pixels as (0, 0, 0, 0) (their colour is
    invisible; atlas pages); the generated store passes False to keep pixels exact."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    if clear_hidden:
        rgba = np.where(rgba[:, :, 3:] == 0, np.uint8(0), rgba)
    h, w = rgba.shape[:2]
    indexed = index_colours(rgba, candidates)
    if indexed is not None:
        indices, palette = indexed
        n = len(palette)
        depth = 1 if n <= 2 else 2 if n <= 4 else 4 if n <= 16 else 8
        idat = _compress(_pack_bits(indices, depth), 1, fast, indexed=True)
        header = struct.pack(">IIBBBBB", w, h, depth, 3, 0, 0, 0)
        chunks = [_chunk(b"IHDR", header), _chunk(b"PLTE", palette[:, :3].tobytes())]
        translucent = np.flatnonzero(palette[:, 3] != 255)
        if len(translucent):
            chunks.append(_chunk(b"tRNS", palette[: translucent[-1] + 1, 3].tobytes()))
    else:
        opaque = bool((rgba[:, :, 3] == 255).all())
        pixels = rgba[:, :, :3] if opaque else rgba
        bpp = 3 if opaque else 4
        idat = _compress(np.ascontiguousarray(pixels).reshape(h, w * bpp), bpp, fast, indexed=False)
        chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if opaque else 6, 0, 0, 0))]
    return _SIGNATURE + b"".join(chunks) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
