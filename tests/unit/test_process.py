"""Pure processing stages: palette lock (OKLab nearest), dithering, outline, trim, extrude."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from sparky_assets.export.base import encode_png
from sparky_assets.palettes import Palette
from sparky_assets.palettes.builtin import BUILTIN_PALETTES
from sparky_assets.process.quantize import quantize_to_palette, srgb_to_oklab
from sparky_assets.process.shape import add_outline, darkest, extrude, opaque_bounds


def oklab_reference(rgb):
    """Scalar OKLab straight from Ottosson's post, independent of the vectorised code."""

    def lin(c):
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(c)) for c in rgb)
    l = 0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b
    m = 0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b
    s = 0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b
    l, m, s = (math.copysign(abs(v) ** (1 / 3), v) for v in (l, m, s))
    return (
        0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s,
        1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s,
        0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s,
    )


def test_oklab_matches_the_reference_formulas():
    rng = np.random.default_rng(0)
    for rgb in rng.integers(0, 256, (200, 3)):
        assert np.allclose(srgb_to_oklab(rgb.astype(np.uint8)), oklab_reference(rgb), atol=2e-5)
    assert np.allclose(srgb_to_oklab(np.array([255, 255, 255], np.uint8)), (1, 0, 0), atol=1e-4)


@pytest.mark.parametrize("name", ["pico-8", "endesga-32", "gameboy", "1bit"])
def test_lock_picks_the_oklab_nearest_colour_for_every_pixel(name):
    palette = BUILTIN_PALETTES[name]
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
    out = quantize_to_palette(image, palette)
    pal_lab = [oklab_reference(c) for c in palette.colors]
    for y in range(24):
        for x in range(24):
            if image[y, x, 3] < 128:
                assert tuple(out[y, x]) == (0, 0, 0, 0)
                continue
            lab = oklab_reference(image[y, x, :3])
            d = [sum((a - b) ** 2 for a, b in zip(lab, p)) for p in pal_lab]
            best = min(d)
            got = palette.colors.index(tuple(int(v) for v in out[y, x, :3]))
            assert out[y, x, 3] == 255
            assert d[got] <= best + 1e-6, (tuple(image[y, x]), got, d.index(best))


def test_oklab_lock_differs_from_rgb_nearest_where_perception_says_so():
    # a dark saturated blue: RGB-nearest picks grey, OKLab keeps it blue
    palette = Palette("t", ((40, 40, 40), (20, 20, 140)))
    image = np.zeros((1, 1, 4), np.uint8)
    image[0, 0] = (30, 30, 90, 255)
    rgb_nearest = min(palette.colors, key=lambda c: sum((a - b) ** 2 for a, b in zip(c, (30, 30, 90))))
    assert rgb_nearest == (40, 40, 40)
    assert tuple(quantize_to_palette(image, palette)[0, 0, :3]) == (20, 20, 140)


def test_dither_keeps_only_palette_colours_and_mixes_a_gradient():
    palette = BUILTIN_PALETTES["gameboy"]
    ramp = np.zeros((8, 64, 4), np.uint8)
    ramp[..., :3] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None]
    ramp[..., 3] = 255
    plain = quantize_to_palette(ramp, palette)
    dithered = quantize_to_palette(ramp, palette, "bayer4")
    for out in (plain, dithered):
        assert {tuple(c) for c in out[..., :3].reshape(-1, 3)} <= set(palette.colors)
    # columns with two colours appear only with dithering
    mixed = lambda img: sum(len({tuple(img[y, x, :3]) for y in range(8)}) > 1 for x in range(64))
    assert mixed(plain) == 0 and mixed(dithered) > 10
    assert np.array_equal(dithered, quantize_to_palette(ramp, palette, "bayer4"))  # deterministic


def test_outline_rings_the_shape_with_one_colour():
    image = np.zeros((7, 7, 4), np.uint8)
    image[2:5, 2:5] = (200, 10, 10, 255)
    out = add_outline(image, (1, 2, 3))
    ring = (out[..., 3] == 255) & (image[..., 3] == 0)
    assert ring.sum() == 12  # 4-neighbourhood ring of a 3x3 square
    assert {tuple(c) for c in out[ring][:, :3]} == {(1, 2, 3)}
    assert np.array_equal(out[2:5, 2:5], image[2:5, 2:5])


def test_trim_bounds_and_extrude():
    image = np.zeros((10, 8, 4), np.uint8)
    image[3:6, 2:4, 3] = 255
    assert opaque_bounds(image) == (2, 3, 2, 3)
    assert opaque_bounds(np.zeros((4, 4, 4), np.uint8)) is None
    frame = np.arange(2 * 2 * 4, dtype=np.uint8).reshape(2, 2, 4)
    e = extrude(frame, 2)
    assert e.shape == (6, 6, 4) and np.array_equal(e[2:4, 2:4], frame)
    assert np.array_equal(e[0, 0], frame[0, 0]) and np.array_equal(e[5, 5], frame[1, 1])


def test_darkest_is_the_lowest_luma():
    assert darkest(BUILTIN_PALETTES["pico-8"].colors) == (0, 0, 0)


def test_png_encoding_is_lossless_and_indexed_when_it_can_be():
    rng = np.random.default_rng(3)
    few = np.zeros((16, 16, 4), np.uint8)
    few[..., :3] = rng.integers(0, 4, (16, 16, 1)) * 60
    few[..., 3] = np.where(rng.random((16, 16)) < 0.5, 255, 0)
    few[few[..., 3] == 0] = 0
    many = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    many[..., 3] = 255
    for img, mode in ((few, "P"), (many, "RGB")):
        data = encode_png(img)
        decoded = Image.open(io.BytesIO(data))
        assert decoded.mode == mode
        assert np.array_equal(np.asarray(decoded.convert("RGBA")), img)
        assert encode_png(img) == data
