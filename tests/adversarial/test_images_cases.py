"""Images and palettes: source sheets and palette files that are truncated, oddly
encoded, enormous or not images at all. Unusual but valid files build (and keep their
colours); broken and hostile ones are exit 2 located at the manifest key naming them.
No image is decoded before its header's size is checked.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.adversarial.rig import check_run, coin_png, expect, line_of

SOURCE_AT = r"sparky\.toml:14:"
PALETTE_AT = r"sparky\.toml:3:"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, raw: bytes, *, depth: int = 8, colour: int = 6) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")


def _save(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def truncated_zlib() -> bytes:
    rows = b"".join(b"\0" + bytes([255, 0, 0, 255]) * 8 for _ in range(8))
    return _png(8, 8, zlib.compress(rows)[:-10])  # valid chunk CRCs, cut deflate stream


def truncated_file() -> bytes:
    data = coin_png()
    return data[: len(data) // 2]


def bad_crc() -> bytes:
    data = bytearray(coin_png())
    data[30] ^= 0xFF
    return bytes(data)


def bomb(width: int, height: int) -> bytes:
    """A tiny file declaring a huge image (the body is a few zero rows)."""
    return _png(width, height, zlib.compress(b"\0" * (width * 4 + 1) * 2))


def grey16() -> bytes:
    return _save(Image.fromarray(np.full((8, 8), 0x8000, dtype=np.uint16)))


def rgba16() -> bytes:
    rows = b"".join(b"\0" + struct.pack(">4H", 0x8000, 0x4000, 0x2000, 0xFFFF) * 8 for _ in range(8))
    return _png(8, 8, zlib.compress(rows), depth=16, colour=6)


def cmyk_jpeg() -> bytes:
    return _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")


def gif_animated() -> bytes:
    frames = [Image.new("P", (8, 8), i) for i in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:])


def apng() -> bytes:
    frames = [Image.new("RGBA", (8, 8), (255, i * 80, 0, 255)) for i in range(3)]
    return _save(frames[0], "PNG", save_all=True, append_images=frames[1:])


def palette_transparent() -> bytes:
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 255, 0, 77] + [0] * 762)
    return _save(im, transparency=0)


# id, source bytes (or None: make it a folder / FIFO), exit code, location, fragments
SOURCES = [
    ("truncated-zlib", truncated_zlib, 2, SOURCE_AT, ["cannot be"]),
    ("truncated-file", truncated_file, 2, SOURCE_AT, ["cannot be"]),
    ("zero-bytes", lambda: b"", 2, SOURCE_AT, ["cannot be read"]),
    ("text-not-image", lambda: b"hello, I am not a PNG\n" * 10, 2, SOURCE_AT, ["cannot be read"]),
    ("bad-crc", bad_crc, 2, SOURCE_AT, ["cannot be"]),
    ("bomb-30000", lambda: bomb(30000, 30000), 2, SOURCE_AT, []),
    ("bomb-9000", lambda: bomb(9000, 9000), 2, SOURCE_AT, ["larger than a sprite"]),
    ("wide-without-size", lambda: _save(Image.new("RGBA", (5000, 4))), 2, SOURCE_AT, ["larger than a sprite"]),
    ("grey-16-bit", grey16, 0, None, []),
    ("rgba-16-bit", rgba16, 0, None, []),
    ("cmyk-jpeg", cmyk_jpeg, 0, None, []),
    ("gif-animated", gif_animated, 0, None, []),
    ("apng", apng, 0, None, []),
    ("palette-mode-transparent", palette_transparent, 0, None, []),
    ("greyscale-alpha", lambda: _save(Image.new("LA", (8, 8), (128, 200))), 0, None, []),
    ("one-bit", lambda: _save(Image.new("1", (8, 8), 1)), 0, None, []),
    ("one-pixel", lambda: _save(Image.new("RGBA", (1, 1), (255, 0, 0, 255))), 0, None, []),
    ("bmp-named-png", lambda: _save(Image.new("RGB", (8, 8), (0, 255, 0)), "BMP"), 0, None, []),
    ("folder", None, 2, SOURCE_AT, ["not found"]),
    ("fifo", "fifo", 2, SOURCE_AT, ["not found"]),
]


@pytest.mark.parametrize("case", SOURCES, ids=[c[0] for c in SOURCES])
def test_source_image(project, case):
    name, make, code, where, fragments = case
    source = project.root / "art/coin.png"
    source.unlink()
    if make is None:
        source.mkdir()
    elif make == "fifo":
        os.mkfifo(source)
    else:
        source.write_bytes(make())
    expect(project, code, where=where, contains=fragments)


def test_a_sheet_over_the_pixel_limit_is_refused_from_its_header(project):
    (project.root / "art/coin.png").write_bytes(bomb(9000, 9000))
    project.edit('source = "art/coin.png"', 'source = "art/coin.png"\ngrid = [8, 8]')
    expect(project, 2, where=SOURCE_AT, contains=("more than",))


def test_a_16_bit_greyscale_source_keeps_its_tone(project):
    """Mid grey (0x8000 of 0xFFFF) locks to a mid palette colour, not to white."""
    (project.root / "art/coin.png").write_bytes(grey16())
    project.edit('palette = "pal.hex"', 'palette = "pal.hex"')  # same palette: black, greys, white…
    (project.root / "pal.hex").write_text("000000\n808080\nffffff\n")
    outcome = project.build()
    check_run(project, outcome, 0, outside_before=project.outside_before)
    from tests.adversarial.rig import tree  # noqa: F401 - the rig's tree is what check_run compares

    page = np.asarray(Image.open(project.root / "build/sprites/sheets/all_0.png").convert("RGBA"))
    colours = {tuple(c) for c in page.reshape(-1, 4) if c[3] == 255}
    assert (128, 128, 128, 255) in colours and (255, 255, 255, 255) not in colours, colours


# -- palettes -------------------------------------------------------------------

PALETTES = [
    # id, file name, bytes, exit code, fragments
    ("hex-empty", "pal.hex", b"", 2, []),
    ("hex-garbage", "pal.hex", b"zzzzzz\nnot a colour\n", 2, []),
    ("hex-nul", "pal.hex", b"000000\n\x00\x00\n", 2, []),
    ("hex-not-utf8", "pal.hex", b"000000\n\xff\xfe\n", 2, []),
    ("hex-too-many", "pal.hex", b"".join(b"%06x\n" % i for i in range(0, 300 * 997, 997)), 2, ["at most 256"]),
    ("hex-huge-file", "pal.hex", b"000000\n" * (3 << 20), 2, ["too big"]),
    ("hex-one-colour", "pal.hex", b"ff0000\n", 0, []),
    ("hex-bom-crlf", "pal.hex", b"\xef\xbb\xbf000000\r\nffffff\r\n", 0, []),
    ("gpl-bad-header", "pal.gpl", b"not gimp\n0 0 0\n", 2, []),
    ("gpl-out-of-range", "pal.gpl", b"GIMP Palette\n999 0 0 red\n", 2, []),
    ("pal-bad", "pal.pal", b"JASC-PAL\n0100\n2\n0 0 0\n", 2, []),
    ("png-bomb", "pal.png", bomb(30000, 30000), 2, []),
    ("png-large", "pal.png", bomb(5000, 5000), 2, ["more than"]),
    ("png-truncated", "pal.png", truncated_zlib(), 2, []),
    ("png-16-bit-grey", "pal.png", grey16(), 0, []),
    ("png-text", "pal.png", b"not a png", 2, []),
    ("palette-is-folder", "pal.hex", None, 2, []),
    ("palette-is-fifo", "pal.hex", "fifo", 2, []),
]


@pytest.mark.parametrize("case", PALETTES, ids=[c[0] for c in PALETTES])
def test_palette_file(project, case):
    name, filename, data, code, fragments = case
    path = project.root / filename
    if path.exists():
        path.unlink()
    if data is None:
        path.mkdir()
    elif data == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(data)
    project.edit('palette = "pal.hex"', f'palette = "{filename}"')
    where = rf"(sparky\.toml:{line_of(project.manifest.read_text(), 'palette =')}:|{filename})" if code else None
    expect(project, code, where=where, contains=fragments)
