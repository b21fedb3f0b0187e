"""The PNG writer: lossless, smallest bit depth, fixed chunks, bytes pinned by digest."""

from __future__ import annotations

import hashlib
import io
import struct

import numpy as np
import pytest
from PIL import Image

from sparky_assets.export.png import encode_png, index_colours


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA"))


def image_with(colours: int, shape=(13, 29), alpha=True, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colours, 4), dtype=np.uint8)
    palette[:, 3] = 255
    if alpha:
        palette[0] = 0
    return palette[rng.integers(0, colours, shape)]


@pytest.mark.parametrize("colours,depth", [(2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (256, 8)])
@pytest.mark.parametrize("fast", [False, True])
def test_indexed_at_the_smallest_bit_depth_and_lossless(colours, depth, fast):
    image = image_with(colours, shape=(13, 29) if colours < 200 else (40, 41))
    data = encode_png(image, fast=fast)
    kinds = [k for k, _ in chunks(data)]
    assert kinds == [b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"]  # fixed order, nothing else
    ihdr = dict(chunks(data))[b"IHDR"]
    assert ihdr[8] == depth and ihdr[9] == 3
    assert np.array_equal(decode(data), image)
    assert len(dict(chunks(data))[b"tRNS"]) == 1  # transparent first: one tRNS entry


def test_truecolour_above_256_colours_rgb_when_opaque():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (33, 35, 4), dtype=np.uint8)
    for alpha, colour_type in ((True, 6), (False, 2)):
        img = image.copy()
        img[..., 3] = np.where(rng.random((33, 35)) < 0.5, 255, 77) if alpha else 255
        for fast in (False, True):
            data = encode_png(img, fast=fast)
            assert dict(chunks(data))[b"IHDR"][9] == colour_type
            assert np.array_equal(decode(data), img)


def test_hidden_colour_is_cleared_for_pages_and_kept_for_the_store():
    image = image_with(5)
    image[0, 0] = (10, 20, 30, 0)
    assert tuple(decode(encode_png(image))[0, 0]) == (0, 0, 0, 0)
    assert tuple(decode(encode_png(image, clear_hidden=False))[0, 0]) == (10, 20, 30, 0)


def test_candidates_give_the_same_bytes_as_the_general_path():
    image = image_with(20, alpha=True)
    flat = image.reshape(-1, 4).astype(np.uint32)
    used = np.unique((flat[:, 0] << 24) | (flat[:, 1] << 16) | (flat[:, 2] << 8) | flat[:, 3])
    extra = np.array([0x01020304, 0xFFFFFFFF], np.uint32)
    candidates = np.unique(np.concatenate([used, extra]))
    assert encode_png(image, candidates) == encode_png(image)
    assert index_colours(image, candidates[:3]) is not None  # candidates missing colours: general path


def test_bytes_are_pinned():
    # If this changes, the deflate dependency or the writer changed: bump PNG_VERSION.
    image = image_with(12, shape=(64, 48), seed=7)
    digests = {fast: hashlib.sha256(encode_png(image, fast=fast)).hexdigest()[:16] for fast in (False, True)}
    assert digests == PINNED


PINNED = {False: "cf17e8e37458cd27", True: "9180e45c55d44257"}


def pinned_set() -> list[np.ndarray]:
    """Images of every kind the writer tells apart: 1-256 colours (each bit depth, with and
    without transparency), opaque and translucent truecolour, gradients, odd sizes."""
    rng = np.random.default_rng(11)
    images = []
    for i in range(48):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        if i % 4 == 0:
            palette = rng.integers(0, 256, ((1, 2, 3, 4, 7, 16, 17, 90, 256)[i // 4 % 9], 4), dtype=np.uint8)
            palette[:, 3] = rng.choice(np.array([0, 128, 255], np.uint8), len(palette))
            images.append(palette[rng.integers(0, len(palette), (h, w))])
        elif i % 4 == 1:
            image = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
            image[..., 3] = 255 if i % 8 == 1 else image[..., 3]
            images.append(image)
        elif i % 4 == 2:
            y, x = np.mgrid[0:h, 0:w]
            images.append(
                np.stack([x * 7 % 256, y * 5 % 256, (x + y) % 256, np.full_like(x, 255)], -1).astype(np.uint8)
            )
        else:
            images.append(image_with(int(rng.integers(2, 30)), shape=(h, w), seed=i, alpha=bool(i % 2)))
    return images


def test_bytes_are_pinned_for_every_kind_of_image():
    # Written by the writer before its speed work; a change here is a change of bytes.
    digests = {}
    for fast in (False, True):
        for clear in (True, False):
            digest = hashlib.sha256()
            for image in pinned_set():
                digest.update(encode_png(image, fast=fast, clear_hidden=clear))
            digests[fast, clear] = digest.hexdigest()[:16]
    assert digests == PINNED_SET


PINNED_SET = {
    (False, True): "e2de9b41c6635bad",
    (False, False): "b321a75739d5a06b",
    (True, True): "ee0f463a0fbe5a71",
    (True, False): "1b7333d1486f5713",
}


def test_smaller_than_pillow_optimize_on_an_atlas_like_page():
    # sprites: blobs of a few colours on transparent background, like a packed page
    rng = np.random.default_rng(4)
    page = np.zeros((256, 256, 4), np.uint8)
    palette = rng.integers(0, 256, (24, 3), dtype=np.uint8)
    for y in range(0, 256, 32):
        for x in range(0, 256, 32):
            yy, xx = np.mgrid[:28, :28]
            mask = (yy - 14) ** 2 + (xx - 14) ** 2 < rng.integers(60, 196)
            colours = palette[rng.integers(0, 24, 4)]
            tile = colours[(yy // 7) % 4]
            page[y : y + 28, x : x + 28, :3] = np.where(mask[..., None], tile, 0)
            page[y : y + 28, x : x + 28, 3] = mask * 255
    ours = encode_png(page)
    # Pillow's best: the same indexed image (palette + transparency), optimize=True
    indices, palette = index_colours(page)
    im = Image.fromarray(indices, "P")
    im.putpalette(palette[:, :3].tobytes())
    optimised = io.BytesIO()
    im.save(optimised, "PNG", optimize=True, transparency=palette[:, 3].tobytes())
    assert np.array_equal(decode(ours), page) and np.array_equal(decode(optimised.getvalue()), page)
    assert len(ours) < len(optimised.getvalue())
