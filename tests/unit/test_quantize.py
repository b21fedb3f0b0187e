"""Palette lock tables: the table is the exact OKLab nearest colour, on every machine.

Compared against :func:`nearest_exact` (per colour, every palette entry, float64 plus
the decimal tie-breaker) on random colours, a dense slice of the RGB cube and a real
image; the on-disk cache never trusts a damaged file; and the table is bit-identical
with numpy's SIMD dispatch turned off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparky_assets.colour import exact_oklab, srgb_to_oklab
from sparky_assets.palettes import Palette
from sparky_assets.palettes.builtin import BUILTIN_PALETTES
from sparky_assets.process import quantize
from sparky_assets.process.quantize import build_table, nearest_exact, palette_table, quantize_to_palette

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_table_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKY_TABLE_CACHE", str(tmp_path / "tables"))
    monkeypatch.setattr(quantize, "_tables", type(quantize._tables)())
    monkeypatch.setattr(quantize, "_lock_memo", type(quantize._lock_memo)())


def _codes_to_rgb(codes: np.ndarray) -> np.ndarray:
    return np.stack([codes & 255, (codes >> 8) & 255, codes >> 16], axis=1).astype(np.uint8)


PALETTES = {
    "gameboy": np.array(BUILTIN_PALETTES["gameboy"].colors, np.uint8),
    "pico-8": np.array(BUILTIN_PALETTES["pico-8"].colors, np.uint8),
    "endesga-32": np.array(BUILTIN_PALETTES["endesga-32"].colors, np.uint8),
    "random-64": np.random.default_rng(5).integers(0, 256, (64, 3)).astype(np.uint8),
    "greys-with-duplicates": np.array(
        [[0, 0, 0], [128, 128, 128], [0, 0, 0], [255, 255, 255], [128, 128, 128]], np.uint8
    ),
    "two": np.array([[255, 0, 0], [0, 0, 255]], np.uint8),
}


@pytest.mark.parametrize("name", sorted(PALETTES))
def test_table_is_the_exact_nearest_colour_on_random_colours(name):
    colors = PALETTES[name]
    table = build_table(colors)
    codes = np.random.default_rng(11).integers(0, 1 << 24, 60_000)
    assert np.array_equal(table[codes], nearest_exact(_codes_to_rgb(codes), colors))


def test_table_is_exact_on_a_dense_slice_of_the_cube():
    # every colour whose channels are multiples of 5 (52³ = 140,608 colours), pico-8
    colors = PALETTES["pico-8"]
    v = np.arange(0, 256, 5)
    b, g, r = np.meshgrid(v, v, v, indexing="ij")
    codes = (r | (g << 8) | (b << 16)).ravel()
    assert np.array_equal(build_table(colors)[codes], nearest_exact(_codes_to_rgb(codes), colors))


def test_duplicates_and_single_colour_palettes():
    table = build_table(PALETTES["greys-with-duplicates"])
    assert set(np.unique(table).tolist()) == {0, 1, 3}  # duplicates resolve to their first index
    assert np.array_equal(build_table(np.array([[9, 9, 9]], np.uint8)), np.zeros(1 << 24, np.uint8))


def test_lock_of_a_real_image_matches_the_exact_search():
    with Image.open(ROOT / "examples/dungeon/art/potion.png") as im:
        small = np.asarray(im.convert("RGBA"))
    # upscale with smooth interpolation: many in-between colours, like a model's output
    image = np.asarray(Image.fromarray(small, "RGBA").resize((96, 96), Image.Resampling.BICUBIC))
    palette = BUILTIN_PALETTES["endesga-32"]
    out = quantize_to_palette(image, palette)
    opaque = image[..., 3] >= 128
    expected = np.array(palette.colors, np.uint8)[nearest_exact(image[..., :3][opaque], palette.colors)]
    assert np.array_equal(out[opaque][:, :3], expected) and (out[opaque][:, 3] == 255).all()
    assert not out[~opaque].any()


def test_lock_equals_a_pixel_by_pixel_table_lookup():
    """Odd and even pixel counts (the lock reads indices in pairs), cut-out alpha,
    256 colours (the last pair-table entry) and a non-contiguous input."""
    rng = np.random.default_rng(11)
    colors = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    palette = Palette("random-256", tuple(map(tuple, colors.tolist())))
    table = palette_table(colors)
    for shape in [(7, 5), (1, 1), (16, 9), (0, 3)]:
        for dither in ["none", "bayer2"]:
            _check_lock_against_table(rng, colors, palette, table, shape, dither)


def _check_lock_against_table(rng, colors, palette, table, shape, dither):
    wide = rng.integers(0, 256, (shape[0], shape[1] * 2, 4)).astype(np.uint8)
    image = wide[:, ::2]
    out = quantize_to_palette(image, palette, dither)
    rgb = image[..., :3].astype(np.int64).reshape(-1, 3)
    if dither != "none":
        offsets = quantize.dither_offsets(2, quantize.dither_amplitude(colors))
        tiled = np.tile(offsets, (shape[0] // 2 + 1, shape[1] // 2 + 1))[: shape[0], : shape[1]].reshape(-1, 1)
        rgb = np.clip(rgb + tiled, 0, 255)
    expected = np.zeros((rgb.shape[0], 4), np.uint8)
    for i, (r, g, b) in enumerate(rgb.tolist()):
        if image.reshape(-1, 4)[i, 3] >= 128:
            expected[i, :3], expected[i, 3] = colors[table[r | g << 8 | b << 16]], 255
    assert out.shape == image.shape and np.array_equal(out.reshape(-1, 4), expected)


@pytest.mark.parametrize("dither", ["none", "bayer4"])
def test_small_locks_search_directly_with_the_tables_answer(monkeypatch, dither):
    """Below DIRECT_PIXELS a palette locks by searching each distinct colour (no table);
    the result is the table's, and the table is loaded once the budget is spent."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 30, 4)).astype(np.uint8)
    palette = BUILTIN_PALETTES["pico-8"]
    direct = quantize_to_palette(image, palette, dither)
    assert quantize._lock_parts(palette.colors).table is None and not quantize._tables
    monkeypatch.setattr(quantize, "DIRECT_PIXELS", 0)
    tabled = quantize_to_palette(image, palette, dither)
    assert quantize._lock_parts(palette.colors).table is not None
    assert np.array_equal(direct, tabled)


def test_exact_oklab_agrees_with_float64():
    rgb = np.random.default_rng(2).integers(0, 256, (50, 3))
    floats = srgb_to_oklab(rgb.astype(np.uint8))
    exact = np.array([[float(v) for v in exact_oklab(tuple(c))] for c in rgb.tolist()])
    assert np.allclose(floats, exact, atol=1e-12)


def test_disk_cache_is_used_and_a_damaged_file_is_rebuilt(tmp_path, monkeypatch):
    colors = PALETTES["pico-8"]
    first = palette_table(colors).copy()
    files = list((tmp_path / "tables").glob("*.bin"))
    assert len(files) == 1
    good = files[0].read_bytes()
    # a cached file is read back without building
    monkeypatch.setattr(quantize, "_tables", type(quantize._tables)())
    monkeypatch.setattr(quantize, "build_table", lambda c: pytest.fail("rebuilt a valid cached table"))
    assert np.array_equal(palette_table(colors), first)
    # a damaged payload (still valid zlib: one byte of the table changed) is not trusted
    monkeypatch.undo()
    monkeypatch.setenv("SPARKY_TABLE_CACHE", str(tmp_path / "tables"))
    import zlib

    header = len(quantize.TABLE_MAGIC) + 4 + 32
    raw = bytearray(zlib.decompress(good[header:]))
    raw[12345] ^= 1
    files[0].write_bytes(good[:header] + zlib.compress(bytes(raw)))
    for damaged in (None, good[:100], b"junk"):
        if damaged is not None:
            files[0].write_bytes(damaged)
        monkeypatch.setattr(quantize, "_tables", type(quantize._tables)())
        assert np.array_equal(palette_table(colors), first)
        assert files[0].read_bytes() == good  # rewritten whole


def test_dithering_uses_integer_offsets_and_the_same_table():
    palette = Palette("t", ((0, 0, 0), (255, 255, 255)))
    grey = np.full((8, 8, 4), 128, np.uint8)
    grey[..., 3] = 255
    out = quantize_to_palette(grey, palette, "bayer4")
    white = (out[..., 0] == 255).mean()
    assert 0.25 <= white <= 0.75  # a mid grey becomes a mix
    assert np.array_equal(out, quantize_to_palette(grey, palette, "bayer4"))


def _simd_features() -> list[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]


def test_table_is_bit_identical_with_numpy_simd_dispatch_disabled(tmp_path):
    features = _simd_features()
    script = (
        "import hashlib, numpy as np\n"
        "from sparky_assets.process.quantize import build_table\n"
        f"colors = np.array({PALETTES['random-64'].tolist()!r}, np.uint8)\n"
        "print(hashlib.sha256(build_table(colors).tobytes()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NPY_DISABLE_CPU_FEATURES": " ".join(features)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(build_table(PALETTES["random-64"]).tobytes()).hexdigest()


def test_exact_tie_breaker_agrees_with_float64_where_they_overlap(monkeypatch):
    # Widen the tie band so thousands of colours are decided in decimal arithmetic:
    # wherever float64 is unambiguous the two must agree.
    colors = PALETTES["gameboy"]
    plain = build_table(colors)
    calls = []
    exact = quantize._exact_nearest
    monkeypatch.setattr(quantize, "TIE_BAND", 2e-7)
    monkeypatch.setattr(quantize, "_exact_nearest", lambda *a: calls.append(a) or exact(*a))
    assert np.array_equal(build_table(colors), plain)
    assert len(calls) > 100
